#!/usr/bin/env bash
# Django and psycopg 3 for tests/tests/tool_django.rs, pinned in requirements.txt, into the Python venv the Python tools share
# (tests/tools/python-venv.sh). Idempotent: seconds when already installed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
fail() { printf 'django: %s\n' "$*" >&2; exit 1; }
# shellcheck source=../python-venv.sh
. "$here/../python-venv.sh"
install_requirements django "$here"
"$venv/bin/python" -c 'import django, psycopg' || fail "django or psycopg does not import from $venv"
