#!/usr/bin/env bash
# Profiles the server a load tool starts: point the tool's COMPANION_TEST_BIN at this script and
# every `companion serve` it starts runs under `perf record` (call graphs, 999 Hz), writing a file
# every 3 seconds into $PERF_OUT (default /tmp/companion-perf) so that a server the tool kills
# still leaves readable profiles. Other commands (creating the admin) run as they are.
#
#   cargo build --release -p companion-server -p companion-load
#   COMPANION_TEST_BIN=tests/load/perf-server.sh target/release/checkin-load 10 8
#   perf report -i /tmp/companion-perf/serve-PID.data.TIMESTAMP --no-children --sort sym
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=${PROFILED_BIN:-$here/target/release/companion}
out=${PERF_OUT:-/tmp/companion-perf}
unset COMPANION_TEST_BIN
if [ "${1:-}" = "serve" ]; then
  mkdir -p "$out"
  exec perf record --switch-output=3s -F 999 -g -o "$out/serve-$$.data" -- "$bin" "$@"
fi
exec "$bin" "$@"
