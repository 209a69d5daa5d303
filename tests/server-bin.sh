#!/usr/bin/env bash
# Prints the path of the `companion` binary that the README's test command builds (the one the
# API tests run), building it if needed. The scripts beside this one start that binary rather
# than building another: `cargo build -p companion-server` resolves features differently and
# would compile the whole dependency tree a second time.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --no-run --message-format=json -q | python3 -c '
import json, sys
found = None
for line in sys.stdin:
    message = json.loads(line)
    if (message.get("reason") == "compiler-artifact" and message["target"]["name"] == "companion"
            and "bin" in message["target"]["kind"] and not message["profile"]["test"]):
        found = message["executable"]
if not found:
    sys.exit("the companion binary was not built")
print(found)
'
