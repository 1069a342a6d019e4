#!/usr/bin/env bash
# pre-commit for tests/tests/tool_precommit.rs, pinned in requirements.txt, into the Python
# venv the Python tools share (tests/tools/python-venv.sh). Idempotent: seconds when already installed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
fail() { printf 'precommit: %s\n' "$*" >&2; exit 1; }
# shellcheck source=../python-venv.sh
. "$here/../python-venv.sh"
install_requirements precommit "$here"
[ -x "$venv/bin/pre-commit" ] || fail "no pre-commit command in $venv/bin"
command -v git >/dev/null || fail "no git on PATH"
