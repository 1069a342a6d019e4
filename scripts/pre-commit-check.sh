#!/usr/bin/env bash
# The pre-commit hook `safe-migrations-check` (.pre-commit-hooks.yaml): `safe-migrations
# check` on the staged SQL files, with the hook's args. pre-commit runs it from its
# clone of this repository, where the first run builds the binary (cargo, release, a
# few minutes) and later runs reuse it. SAFE_MIGRATIONS_BIN names a binary to use instead.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
bin=${SAFE_MIGRATIONS_BIN:-}
if [[ -z $bin ]]; then
  # Where cargo puts it: CARGO_TARGET_DIR when the environment sets one (a relative one
  # is the build's, below this repository).
  target=${CARGO_TARGET_DIR:-$here/target}
  [[ $target == /* ]] || target=$here/$target
  bin=$target/release/safe-migrations
  if [[ ! -x $bin ]]; then
    command -v cargo >/dev/null || { echo "safe-migrations-check: building the checker needs cargo (Rust), or set SAFE_MIGRATIONS_BIN" >&2; exit 2; }
    echo "safe-migrations-check: building safe-migrations (once)" >&2
    (cd "$here" && cargo build --release -q -p safe-migrations --bin safe-migrations) >&2
  fi
fi
exec "$bin" check "$@"
