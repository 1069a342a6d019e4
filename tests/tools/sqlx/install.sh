#!/usr/bin/env bash
# Install sqlx-cli (the `sqlx` binary) from crates.io, pinned, and link it as
# $TOOLS_DIR/cargo/bin/sqlx. Compiling it takes minutes, so it is built once per machine
# into ~/.cache/safe_migrations (SQLX_CLI_ROOT), and fresh clones link to that build.
set -euo pipefail

version=0.9.0
root=$(cd "$(dirname "$0")/../../.." && pwd)
tools_dir=${TOOLS_DIR:-${CARGO_TARGET_DIR:-$root/target}/tools}
bin="$tools_dir/cargo/bin/sqlx"
cache_root=${SQLX_CLI_ROOT:-$HOME/.cache/safe_migrations/sqlx-cli-$version}
cached="$cache_root/bin/sqlx"

link() {
  mkdir -p "$(dirname "$bin")"
  ln -sfn "$cached" "$bin"
}
if [ -x "$cached" ] && "$cached" --version 2>/dev/null | grep -qw "$version"; then
  link
  exit 0
fi
if ! command -v cargo >/dev/null; then
  echo "cargo is not installed" >&2
  exit 1
fi
# rustls instead of native-tls: no OpenSSL headers needed; postgres only.
if ! log=$(cargo install --locked --quiet --version "=$version" --root "$cache_root" \
  --no-default-features --features postgres,rustls sqlx-cli 2>&1); then
  printf '%s\n' "$log" | tail -n 20 >&2
  cause=$(printf '%s\n' "$log" | grep -m 1 '^error' || printf '%s\n' "$log" | tail -n 1)
  echo "cargo install sqlx-cli@$version failed: $cause" >&2
  exit 1
fi
link
"$bin" --version >/dev/null
