#!/usr/bin/env bash
# Validates every FHIR resource the server emits: runs the FHIR and Bulk Data API tests (SQLite
# and PostgreSQL; each ndjson line of an export is kept as its own body) with COMPANION_FHIR_DUMP_DIR set, so each response body is written to a folder,
# then validates them all with the `fhir.resources` R4B models (tests/fhir/validate.py),
# installed from PyPI into a virtual environment (COMPANION_FHIR_VENV, default target/fhir-venv).
# Fails when either backend ran no FHIR test, or when any body is invalid.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

venv=${COMPANION_FHIR_VENV:-$root/target/fhir-venv}
if ! "$venv/bin/python" -c 'import fhir.resources.R4B' 2>/dev/null; then
  echo "== installing fhir.resources into $venv"
  if ! python3 -m venv "$venv"; then
    echo "python3 cannot create a virtual environment (on Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "fhir.resources==8.3.0"
fi

dump=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$dump" "$log"' EXIT

echo "== FHIR API tests, every response kept in $dump"
COMPANION_FHIR_DUMP_DIR="$dump" cargo test --workspace --test api -- fhir:: bulk:: 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || exit "$status"
sqlite=$(grep -cE '^test (fhir|bulk)::sqlite::.* \.\.\. ok$' "$log" || true)
postgres=$(grep -cE '^test (fhir|bulk)::postgres::.* \.\.\. ok$' "$log" || true)
if [ "$sqlite" -eq 0 ] || [ "$sqlite" -ne "$postgres" ]; then
  echo "FHIR tests passed: $sqlite on SQLite, $postgres on PostgreSQL: both halves must run" >&2
  exit 1
fi

echo "== validating as FHIR R4"
"$venv/bin/python" tests/fhir/validate.py "$dump"
