#!/usr/bin/env bash
# The contract check: the published OpenAPI document against the running server.
#
# Builds the server, starts it on a fresh SQLite data directory, creates an organisation admin
# (command line), a clinic, a clinic admin, a clinician and a patient (API), and runs
# schemathesis with every check for the patient, the clinician and the clinic admin (signing
# out and disabling accounts left out, so that the tokens survive). Before schemathesis, two
# clients generated from the document with their generators' default settings run a short flow
# against the server: the Python one openapi-python-client generates (python_flow.py) and the
# TypeScript example client (examples/typescript: openapi-typescript types, openapi-fetch calls),
# which enrols a patient with an invitation, sends a PHQ-9 with item 9 and finds the alert as a
# clinician. At the end, usage.ts is type-checked with tsc against the openapi-typescript types.
# Exits non-zero on any failure.
#
# Tools: a Python virtualenv in target/contract/, and the example's npm packages, installed with
# `npm ci` from examples/typescript/package-lock.json (openapi-typescript and typescript, pinned
# there, also check usage.ts); the first run needs PyPI and the npm registry.
# CONTRACT_MAX_EXAMPLES bounds the examples per operation (default 25).
#
# baseline.json lists the known mismatches the document cannot state in JSON Schema (see the
# README's "API for third parties"); any other failure fails the check. After a deliberate
# change, CONTRACT_BASELINE_UPDATE=1 records the failures of a run into it: review its diff.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
here=$root/tests/contract
work=$root/target/contract
examples=${CONTRACT_MAX_EXAMPLES:-25}
mkdir -p "$work"

echo "== contract: building the server"
bin=$(bash "$root/tests/server-bin.sh")

echo "== contract: tools"
if [ ! -x "$work/venv/bin/st" ]; then
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install -q "schemathesis==4.32.5"
fi
example=$root/examples/typescript
(cd "$example" && npm ci --silent --no-audit --no-fund)
node_bin=$example/node_modules/.bin

data=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$data"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
# Only the settings given here: an unknown COMPANION_* setting in the caller's environment
# would stop the server.
clean_env=(env -u DATABASE_URL)
for name in $(env | grep -o '^COMPANION_[A-Z0-9_]*' || true); do clean_env+=(-u "$name"); done

echo "== contract: starting the server on $base"
"${clean_env[@]}" COMPANION_DATA_DIR="$data" COMPANION_ADDR="127.0.0.1:$port" \
  COMPANION_ACCESS_TOKEN_TTL=86400 COMPANION_LOG=warn COMPANION_LOG_FORMAT=text \
  "$bin" serve > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$base/health/ready" > /dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.2
done
curl -fsS "$base/health/ready" > /dev/null

"${clean_env[@]}" python3 "$here/setup.py" "$base" "$bin" "$data" "$data/accounts.json"
token() { python3 -c "import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]['token'])" "$data/accounts.json" "$1"; }

# Before schemathesis, whose requests may end the accounts' sessions.
echo "== contract: Python client (openapi-python-client, default settings)"
if [ ! -x "$work/venv/bin/openapi-python-client" ]; then
  "$work/venv/bin/pip" install -q "openapi-python-client==0.29.1"
fi
rm -rf "$work/py" && mkdir -p "$work/py"
if (cd "$work/py" && "$work/venv/bin/openapi-python-client" generate --path "$root/openapi/openapi.json" > "$work/py/generate.log" 2>&1) \
   && "$work/venv/bin/pip" install -q "$work/py/companion-api-client" \
   && "$work/venv/bin/python" "$here/python_flow.py" "$base" "$data/accounts.json"; then
  :
else
  cat "$work/py/generate.log" >&2 || true
  echo "the generated Python client could not be built or failed its flow" >&2
  exit 1
fi

echo "== contract: TypeScript example client (examples/typescript: openapi-typescript, openapi-fetch)"
fixture() { python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['example'][sys.argv[2]])" "$data/accounts.json" "$1"; }
# `npm run build`: the types from openapi/openapi.json with openapi-typescript's default
# settings, then tsc (strict).
if ! (cd "$example" && npm run --silent build > "$work/ts-example-build.log" 2>&1); then
  cat "$work/ts-example-build.log" >&2
  echo "the TypeScript example client does not build against the generated types" >&2
  exit 1
fi
if ! CLINICIAN_EMAIL=$(fixture clinician_email) CLINICIAN_PASSWORD=$(fixture clinician_password) \
     node "$example/dist/main.js" "$base" "$(fixture invitation_code)"; then
  echo "the TypeScript example client failed its flow" >&2
  exit 1
fi

baseline=(--baseline "$here/baseline.json")
if [ "${CONTRACT_BASELINE_UPDATE:-0}" = 1 ]; then
  baseline+=(--baseline-update)
elif [ ! -f "$here/baseline.json" ]; then
  echo "tests/contract/baseline.json is missing" >&2
  exit 1
fi

failed=0
for role in patient clinician clinic_admin; do
  echo "== contract: schemathesis as $role ($examples examples per operation)"
  if ! (cd "$work" && SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$here" \
        "$work/venv/bin/st" --config-file "$here/schemathesis.toml" run "$base/openapi.json" \
        -H "Authorization: Bearer $(token "$role")" \
        --checks all --max-examples "$examples" --workers 2 --seed 16 \
        --exclude-operation-id logout --exclude-operation-id disable_account \
        "${baseline[@]}" \
        --output-truncate false > "$work/schemathesis-$role.txt" 2>&1); then
    tail -n 60 "$work/schemathesis-$role.txt"
    echo "schemathesis found failures as $role (full report: target/contract/schemathesis-$role.txt)" >&2
    failed=1
  else
    tail -n 3 "$work/schemathesis-$role.txt"
  fi
done

echo "== contract: TypeScript client"
mkdir -p "$work/ts"
"$node_bin/openapi-typescript" "$root/openapi/openapi.json" -o "$work/ts/companion.ts" > /dev/null
cp "$here/usage.ts" "$work/ts/usage.ts"
if ! "$node_bin/tsc" --noEmit --strict --target es2020 --module es2020 \
     --moduleResolution bundler "$work/ts/usage.ts"; then
  echo "the generated TypeScript client does not type-check against usage.ts" >&2
  failed=1
fi

if [ "$failed" -ne 0 ]; then
  echo "== contract: FAILED" >&2
  exit 1
fi
echo "== contract: passed"
