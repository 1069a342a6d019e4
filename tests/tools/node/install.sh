#!/usr/bin/env bash
# node-pg-migrate and pg for tests/tests/tool_node.rs, exactly as package-lock.json pins
# them, into tests/tools/node/node_modules. Idempotent: seconds when already installed.
# On failure the last line on stderr says why (install-all.sh records it as the skip reason).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
fail() { printf 'node: %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null || fail "no node on PATH"
command -v npm >/dev/null || fail "no npm on PATH"
# node-pg-migrate 9 declares engines.node >= 20.11.
node -e 'const [major, minor] = process.versions.node.split(".").map(Number);
         process.exit(major > 20 || (major === 20 && minor >= 11) ? 0 : 1)' \
  || fail "node $(node --version) is older than the 20.11 node-pg-migrate 9 needs"
# The copy of package-lock.json inside node_modules says what is already installed.
stamp=$here/node_modules/.installed-package-lock.json
if ! cmp -s "$here/package-lock.json" "$stamp"; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) >&2 || fail "npm ci in tests/tools/node failed"
  cp "$here/package-lock.json" "$stamp"
fi
[ -x "$here/node_modules/.bin/node-pg-migrate" ] || fail "no node_modules/.bin/node-pg-migrate after npm ci"
