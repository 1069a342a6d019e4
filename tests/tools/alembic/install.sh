#!/usr/bin/env bash
# Alembic, SQLAlchemy and psycopg 3 for tests/tests/tool_alembic.rs, pinned in requirements.txt, into the Python venv the Python tools share
# (tests/tools/python-venv.sh). Idempotent: seconds when already installed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
fail() { printf 'alembic: %s\n' "$*" >&2; exit 1; }
# shellcheck source=../python-venv.sh
. "$here/../python-venv.sh"
install_requirements alembic "$here"
[ -x "$venv/bin/alembic" ] || fail "no alembic command in $venv/bin"
"$venv/bin/python" -c 'import sqlalchemy, psycopg' || fail "sqlalchemy or psycopg does not import from $venv"
