#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis that DATABASE_URL and REDIS_URL point at answer.
#
# A local server that does not answer is started (the Debian cluster with pg_ctlcluster, Redis
# with redis-server --daemonize); a remote one is only checked. The database named in
# DATABASE_URL is created when it does not exist (pytest-django then makes test_<name> beside it).
# With DATABASE_URL unset or SQLite, PostgreSQL is left alone; with REDIS_URL unset, Redis is.
set -euo pipefail

DATABASE_URL="${DATABASE_URL:-}"
REDIS_URL="${REDIS_URL:-}"

# host port name [user] of a URL, parsed by Python rather than by hand.
url_parts() {
  python3 - "$1" <<'PY'
import sys
from urllib.parse import urlsplit
url = urlsplit(sys.argv[1])
print(url.hostname or "127.0.0.1", url.port or {"redis": 6379}.get(url.scheme, 5432),
      url.path.lstrip("/") or "0", url.username or "postgres")
PY
}

is_local() { [[ "$1" == "127.0.0.1" || "$1" == "localhost" || "$1" == "::1" ]]; }

wait_for() {  # wait_for DESCRIPTION COMMAND...
  local what="$1"; shift
  for _ in $(seq 1 30); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "$what did not answer within 30 s." >&2
  return 1
}

if [[ "$DATABASE_URL" == postgres* ]]; then
  read -r pg_host pg_port pg_name pg_user < <(url_parts "$DATABASE_URL")
  if ! pg_isready -q -h "$pg_host" -p "$pg_port"; then
    if is_local "$pg_host" && command -v pg_ctlcluster >/dev/null; then
      for version in $(ls /etc/postgresql 2>/dev/null); do
        echo "Starting PostgreSQL $version (cluster main)..."
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
      done
    fi
    wait_for "PostgreSQL at $pg_host:$pg_port" pg_isready -q -h "$pg_host" -p "$pg_port"
  fi
  exists=$(psql -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$pg_name'" 2>/dev/null || true)
  if [ "$exists" != "1" ]; then
    echo "Creating database $pg_name..."
    createdb -h "$pg_host" -p "$pg_port" -U "$pg_user" "$pg_name" || true
  fi
  echo "PostgreSQL: $pg_host:$pg_port answers."
fi

if [[ "$REDIS_URL" == redis* ]]; then
  read -r redis_host redis_port _db _user < <(url_parts "$REDIS_URL")
  if ! redis-cli -h "$redis_host" -p "$redis_port" ping >/dev/null 2>&1; then
    if is_local "$redis_host" && command -v redis-server >/dev/null; then
      echo "Starting Redis on port $redis_port..."
      redis-server --daemonize yes --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
        --dir /tmp --logfile /tmp/safeguard-redis-"$redis_port".log
    fi
    wait_for "Redis at $redis_host:$redis_port" redis-cli -h "$redis_host" -p "$redis_port" ping
  fi
  echo "Redis: $redis_host:$redis_port answers."
fi
