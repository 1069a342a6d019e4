#!/usr/bin/env bash
# Install every migration tool the end-to-end tool tests drive. Each tool's own
# tests/tools/<tool>/install.sh is idempotent; when one fails, its one-line reason is
# written to $TOOLS_DIR/<tool>.skip so that tool's test prints "skip (<reason>)", or
# fails when tests/tools/expected lists the tool for this machine kind. Never fails
# itself.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export TOOLS_DIR=${TOOLS_DIR:-${CARGO_TARGET_DIR:-$root/target}/tools}
mkdir -p "$TOOLS_DIR"

for script in "$here"/*/install.sh; do
  [ -e "$script" ] || continue
  tool=$(basename "$(dirname "$script")")
  started=$(date +%s)
  if reason=$(bash "$script" 2>&1 >/dev/null | tail -n 1; exit "${PIPESTATUS[0]}"); then
    rm -f "$TOOLS_DIR/$tool.skip"
    printf '[tools] %s: installed (%ss)\n' "$tool" "$(( $(date +%s) - started ))" >&2
  else
    printf '%s\n' "${reason:-install.sh failed}" > "$TOOLS_DIR/$tool.skip"
    printf '[tools] %s: cannot be installed, its tests will skip: %s\n' "$tool" "${reason:-install.sh failed}" >&2
  fi
done
exit 0
