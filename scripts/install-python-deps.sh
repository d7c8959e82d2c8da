#!/usr/bin/env bash
# Install the server's Python packages into the venv, and the agent package when it exists.
#   scripts/install-python-deps.sh VENV runtime   requirements.txt (what `make run` needs)
#   scripts/install-python-deps.sh VENV dev       requirements-dev.txt (tests and tools on top)
# The agent is installed editable with every extra it declares (its desktop extra included),
# because the test suite exercises the agent too.
set -euo pipefail

venv="$1"
kind="$2"
pip=("$venv/bin/python" -m pip install --disable-pip-version-check --quiet)
[ -t 0 ] || pip+=(--no-input)

case "$kind" in
  runtime) "${pip[@]}" -r requirements.txt ;;
  dev) "${pip[@]}" -r requirements-dev.txt ;;
  *) echo "usage: $0 VENV runtime|dev" >&2; exit 2 ;;
esac

if [ -f agent/pyproject.toml ]; then
  extras=$("$venv/bin/python" - <<'PY'
import tomllib
with open("agent/pyproject.toml", "rb") as handle:
    project = tomllib.load(handle).get("project", {})
print(",".join(sorted(project.get("optional-dependencies", {}))))
PY
)
  if [ "$kind" = "runtime" ]; then
    extras=""  # the server needs only the agent's keyword engine, not its desktop dependencies
  fi
  "${pip[@]}" -e "./agent${extras:+[$extras]}"
fi
