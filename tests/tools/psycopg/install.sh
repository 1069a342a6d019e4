#!/usr/bin/env bash
# psycopg 3 (with its bundled libpq) for tests/tests/tool_psycopg.rs, pinned in requirements.txt, into the Python venv the Python tools share
# (tests/tools/python-venv.sh). Idempotent: seconds when already installed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
fail() { printf 'psycopg: %s\n' "$*" >&2; exit 1; }
# shellcheck source=../python-venv.sh
. "$here/../python-venv.sh"
install_requirements psycopg "$here"
"$venv/bin/python" -c 'import psycopg; psycopg.pq.version()' || fail "psycopg does not load its libpq in $venv"
