#!/usr/bin/env bash
# Browser tests of the care-team console and the patient app (/app): builds the real `companion` binary, starts it on a
# fresh SQLite data directory, seeds a clinic through the JSON API, and drives Debian's headless
# Chromium (through Python playwright) through the console. Screenshots go to the folder named
# by BROWSER_SCREENSHOTS (default: target/browser-screenshots).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
shots=${BROWSER_SCREENSHOTS:-$root/target/browser-screenshots}

if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
if ! python3 -c 'import playwright' 2>/dev/null; then
  # Only the Python package: the browser is Debian's, never a downloaded build.
  pip install -q playwright 2>/dev/null || pip install -q --break-system-packages playwright
fi

# axe-core (accessibility checks of the patient app), from npm into tests/browser/node_modules.
if [ ! -f tests/browser/node_modules/axe-core/axe.min.js ]; then
  if ! command -v npm >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
  fi
  npm install --no-save --no-audit --no-fund --prefix tests/browser axe-core@4 >/dev/null
fi

bin=$(bash tests/server-bin.sh)
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export COMPANION_DATA_DIR="$data" COMPANION_ADDR="127.0.0.1:$port" COMPANION_LOG=warn COMPANION_LOG_FORMAT=text
unset DATABASE_URL
admin_password='browser test admin passphrase'
COMPANION_ADMIN_PASSWORD="$admin_password" "$bin" admin create-org-admin \
  --email admin@browser.example >/dev/null

"$bin" serve >"$data/server.log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health/ready')" 2>/dev/null; then
    break
  fi
  sleep 0.2
done

mkdir -p "$shots"
python3 tests/browser/console_test.py \
  --base "http://127.0.0.1:$port" \
  --admin-email admin@browser.example --admin-password "$admin_password" \
  --shots "$shots" || { echo "server log:"; tail -n 50 "$data/server.log"; exit 1; }
python3 tests/browser/app_test.py \
  --base "http://127.0.0.1:$port" \
  --admin-email admin@browser.example --admin-password "$admin_password" \
  --shots "$shots" || { echo "server log:"; tail -n 50 "$data/server.log"; exit 1; }
# The load budget (printed, not asserted): BROWSER_BUDGET=1 tests/browser/run.sh
if [ "${BROWSER_BUDGET:-0}" = 1 ]; then
  (cd tests/browser && python3 app_budget.py --base "http://127.0.0.1:$port" \
    --admin-email admin@browser.example --admin-password "$admin_password")
fi
