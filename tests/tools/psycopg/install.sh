#!/usr/bin/env bash
# psycopg 3 (with its bundled libpq) for tests/tests/tool_psycopg.rs, pinned in requirements.txt, into the Python venv
# the Python tools share at $TOOLS_DIR/venv. Idempotent: seconds when already installed.
# On failure the last line on stderr says why (install-all.sh records it as the skip reason).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
tools_dir=${TOOLS_DIR:-${CARGO_TARGET_DIR:-$root/target}/tools}
venv=$tools_dir/venv
fail() { printf 'psycopg: %s\n' "$*" >&2; exit 1; }

command -v python3 >/dev/null || fail "no python3 on PATH"
mkdir -p "$tools_dir"
# The Python tools share one venv: install into it one at a time.
exec 9>"$tools_dir/venv.lock"
flock 9
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2 || { rm -rf "$venv"; fail "python3 -m venv failed"; }
fi
# The copy of requirements.txt inside the venv says what is already installed.
stamp=$venv/.psycopg-requirements.txt
if ! cmp -s "$here/requirements.txt" "$stamp"; then
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$here/requirements.txt" >&2 \
    || fail "pip install -r tests/tools/psycopg/requirements.txt failed"
  cp "$here/requirements.txt" "$stamp"
fi
"$venv/bin/python" -c 'import psycopg; psycopg.pq.version()' || fail "psycopg does not load its libpq in $venv"
