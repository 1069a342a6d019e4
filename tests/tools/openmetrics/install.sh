#!/usr/bin/env bash
# prometheus_client (its OpenMetrics text parser) for tests/tests/tool_openmetrics.rs, pinned in
# requirements.txt, into the Python venv the Python tools share (tests/tools/python-venv.sh).
# Idempotent: seconds when already installed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
fail() { printf 'openmetrics: %s\n' "$*" >&2; exit 1; }
# shellcheck source=../python-venv.sh
. "$here/../python-venv.sh"
install_requirements openmetrics "$here"
"$venv/bin/python" -c 'from prometheus_client.openmetrics.parser import text_string_to_metric_families' \
  || fail "prometheus_client's OpenMetrics parser does not import from $venv"
