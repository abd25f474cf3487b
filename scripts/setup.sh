#!/usr/bin/env bash
# Prepare a machine for perfkit: PostgreSQL server + contrib + hypopg (apt-get, when root on
# Debian and missing), then a virtual environment in .venv with perfkit and its dev extra.
# Safe to run again: it only does what is missing. Usage: scripts/setup.sh [extra,...]
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
EXTRAS=${1:-dev}
PYTHON=${PYTHON:-python3}

log() { printf 'setup: %s\n' "$*" >&2; }
is_root() { [ "$(id -u)" = 0 ]; }
have_apt() { command -v apt-get >/dev/null 2>&1; }
APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pg_bindir() {
  local dir
  if command -v pg_config >/dev/null 2>&1; then
    dir=$(pg_config --bindir 2>/dev/null || true)
    [ -x "$dir/initdb" ] && { echo "$dir"; return; }
  fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/initdb" ] && { echo "$dir"; return; }
  done
  dir=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
  [ -x "$dir/initdb" ] && { echo "$dir"; return; }
  return 1
}

# --- PostgreSQL server, contrib (pg_stat_statements, auto_explain) and hypopg -----------------
if ! bindir=$(pg_bindir); then
  if is_root && have_apt; then
    # a throwaway-cluster tool has no use for Debian's always-on main cluster
    mkdir -p /etc/postgresql-common
    if [ ! -f /etc/postgresql-common/createcluster.conf ]; then
      echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
    fi
    apt_install postgresql postgresql-contrib
    bindir=$(pg_bindir)
  else
    log "PostgreSQL server binaries (initdb, pg_ctl, postgres) are missing."
    log "Install them, e.g. on Debian/Ubuntu: sudo apt-get install postgresql postgresql-contrib postgresql-15-hypopg"
    log "(or set PERFKIT_PG_BINDIR to the directory holding initdb), then run this again."
    exit 1
  fi
fi
pg_major=$("$bindir/postgres" --version | sed -E 's/[^0-9]*([0-9]+).*/\1/')
sharedir=$("$bindir/pg_config" --sharedir 2>/dev/null || echo "/usr/share/postgresql/$pg_major")
if [ ! -f "$sharedir/extension/pg_stat_statements.control" ]; then
  if is_root && have_apt; then apt_install postgresql-contrib; else
    log "pg_stat_statements is missing: install postgresql-contrib for PostgreSQL $pg_major"; exit 1; fi
fi
if [ ! -f "$sharedir/extension/hypopg.control" ]; then
  if is_root && have_apt; then apt_install "postgresql-$pg_major-hypopg"; else
    log "hypopg is missing: install postgresql-$pg_major-hypopg (what-if index advice needs it)"; exit 1; fi
fi
log "PostgreSQL $pg_major in $bindir (pg_stat_statements, hypopg present)"

# --- chromium (headless), for the test that opens the HTML report in a real browser -------------
# Installed when root on Debian and missing; elsewhere that one test is skipped with a message.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if is_root && have_apt && [ -f /etc/debian_version ]; then
    apt_install chromium
  else
    log "chromium is missing: the HTML report's browser test will be skipped (Debian: apt-get install chromium)"
  fi
fi
# --- end of chromium ---------------------------------------------------------------------------

# --- pgbouncer, for the test that runs perfkit behind a transaction-mode pooler ---------------------
if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
  if is_root && have_apt; then apt_install pgbouncer; else
    log "pgbouncer is missing: install it (Debian: apt-get install pgbouncer); the pooler test needs it"; exit 1; fi
fi
# --- end of pgbouncer ----------------------------------------------------------------------------
# --- pgBadger, which the log tests and `make bench` (the bench extra) run beside perfkit ---------
if ! command -v pgbadger >/dev/null 2>&1; then
  if is_root && have_apt; then
    apt_install pgbadger
  elif [[ ",$EXTRAS," == *",bench,"* ]]; then
    log "pgbadger is missing: benchmarks/bench_logs.py compares perfkit with it (Debian: apt-get install pgbadger)"
    exit 1
  fi
fi

# --- Python virtual environment ----------------------------------------------------------------
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  log "perfkit needs Python >= 3.11 ($PYTHON is $("$PYTHON" --version 2>&1))"; exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    if is_root && have_apt; then apt_install python3-venv; "$PYTHON" -m venv "$VENV"; else
      log "python venv is missing: install python3-venv"; exit 1; fi
  fi
fi
stamp="$VENV/.perfkit-installed-$EXTRAS"
# the tested versions (scripts/constraints.txt); PERFKIT_CONSTRAINTS= (empty) for the newest allowed
CONSTRAINTS=${PERFKIT_CONSTRAINTS-scripts/constraints.txt}
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || { [ -n "$CONSTRAINTS" ] && [ "$CONSTRAINTS" -nt "$stamp" ]; }; then
  log "installing perfkit[$EXTRAS] into $VENV${CONSTRAINTS:+ (versions from $CONSTRAINTS)}"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q ${CONSTRAINTS:+-c "$CONSTRAINTS"} -e ".[$EXTRAS]"
  touch "$stamp"
fi
log "ready: $VENV/bin/perfkit"
