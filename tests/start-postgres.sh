#!/usr/bin/env bash
# Prints a PostgreSQL URL the test suite can create databases on (as user postgres).
# Uses the server at 127.0.0.1:5432 when one answers; otherwise starts (or reuses) a throwaway
# cluster from the installed PostgreSQL binaries under /tmp and prints its URL. The cluster is
# left running for later runs; stop it with: pg_ctl -D /tmp/companion-test-pg/data stop
set -euo pipefail

if [ -n "${COMPANION_TEST_PG_URL:-}" ]; then
  echo "$COMPANION_TEST_PG_URL"
  exit 0
fi

# COMPANION_TEST_PG_THROWAWAY=1 skips the shared server (e.g. when 5432 is someone else's).
if [ "${COMPANION_TEST_PG_THROWAWAY:-0}" != "1" ] && command -v pg_isready >/dev/null 2>&1 \
   && pg_isready -q -h 127.0.0.1 -p 5432 -U postgres; then
  echo "postgres://postgres@127.0.0.1:5432/postgres"
  exit 0
fi

bindir=""
if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
  bindir=$(pg_config --bindir)
fi
if [ -z "$bindir" ]; then
  for candidate in /usr/lib/postgresql/*/bin /usr/local/pgsql/bin /usr/local/bin /usr/bin; do
    if [ -x "$candidate/initdb" ] && [ -x "$candidate/pg_ctl" ]; then bindir=$candidate; break; fi
  done
fi
if [ -z "$bindir" ]; then
  echo "start-postgres: no PostgreSQL at 127.0.0.1:5432 and no initdb/pg_ctl installed" >&2
  echo "start-postgres: install PostgreSQL (e.g. apt-get install postgresql) or set COMPANION_TEST_PG_URL" >&2
  exit 1
fi

port=${COMPANION_TEST_PG_PORT:-55432}
root=/tmp/companion-test-pg
url="postgres://postgres@127.0.0.1:${port}/postgres"

if [ -x "$bindir/pg_isready" ] && "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; then
  echo "$url"
  exit 0
fi

as_owner=()
if [ "$(id -u)" = "0" ]; then
  # initdb refuses to run as root: run the cluster as the postgres user (created if missing).
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  as_owner=(runuser -u postgres --)
fi

rm -rf "$root"
mkdir -p "$root"
[ "$(id -u)" = "0" ] && chown postgres "$root"
"${as_owner[@]}" "$bindir/initdb" -D "$root/data" -U postgres -A trust --no-sync >"$root/initdb.log" 2>&1 || {
  cat "$root/initdb.log" >&2; exit 1; }
"${as_owner[@]}" "$bindir/pg_ctl" -D "$root/data" -l "$root/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $root -c fsync=off -c max_connections=300" start >/dev/null || {
  cat "$root/server.log" >&2; exit 1; }
echo "$url"
