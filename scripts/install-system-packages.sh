#!/usr/bin/env bash
# Install the Debian packages the test suite needs, only those missing.
#
# Quick when everything is there (one dpkg query, no apt-get). Needs root for apt-get; as
# another user it says what is missing and carries on, so the tests that need them fail
# with their own message instead of this script failing first.
set -euo pipefail

PACKAGES=(
  xvfb           # a virtual X display for the agent's integration tests
  xdotool        # types keystrokes into a real X window
  xterm          # the window the agent watches
  x11-utils      # xwininfo/xprop, to wait for windows
  trayer         # a system tray host on Xvfb, for the agent's tray icon test
  cups           # a private cupsd the agent's print-logging tests print to (agent/tests/test_printing.py)
  cups-client    # lp, lpstat, lpadmin, cancel, cupsenable/cupsdisable for those tests
  x11-xserver-utils  # xsetroot, to paint a known screen for the screenshot/recording tests
  chromium       # the browser the Playwright tests drive (/usr/bin/chromium)
  poppler-utils  # pdftotext/pdftoppm, to read the PDFs the server renders
  fonts-dejavu-core
  redis-server
  postgresql
  nginx-light    # runs deploy/nginx.conf in tests/core/test_deployment.py
)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "System packages: all present."
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "System packages missing: ${missing[*]}"
  echo "Not root, so not installing them. Run: sudo apt-get install -y --no-install-recommends ${missing[*]}"
  exit 0
fi

echo "System packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1 </dev/null; then
  cat "$log"
  rm -f "$log"
  echo "System packages: apt-get failed (above)." >&2
  exit 1
fi
rm -f "$log"
echo "System packages: installed."
