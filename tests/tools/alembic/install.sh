#!/usr/bin/env bash
# Alembic, SQLAlchemy and psycopg 3 for tests/tests/tool_alembic.rs, pinned in requirements.txt, into the Python venv
# the Python tools share at $TOOLS_DIR/venv. Idempotent: seconds when already installed.
# On failure the last line on stderr says why (install-all.sh records it as the skip reason).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
tools_dir=${TOOLS_DIR:-${CARGO_TARGET_DIR:-$root/target}/tools}
venv=$tools_dir/venv
fail() { printf 'alembic: %s\n' "$*" >&2; exit 1; }

command -v python3 >/dev/null || fail "no python3 on PATH"
mkdir -p "$tools_dir"
# The Python tools share one venv: install into it one at a time.
exec 9>"$tools_dir/venv.lock"
flock 9
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2 || { rm -rf "$venv"; fail "python3 -m venv failed"; }
fi
# The copy of requirements.txt inside the venv says what is already installed.
stamp=$venv/.alembic-requirements.txt
if ! cmp -s "$here/requirements.txt" "$stamp"; then
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$here/requirements.txt" >&2 \
    || fail "pip install -r tests/tools/alembic/requirements.txt failed"
  cp "$here/requirements.txt" "$stamp"
fi
[ -x "$venv/bin/alembic" ] || fail "no alembic command in $venv/bin"
"$venv/bin/python" -c 'import sqlalchemy, psycopg' || fail "sqlalchemy or psycopg does not import from $venv"
