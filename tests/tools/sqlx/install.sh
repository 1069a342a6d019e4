#!/usr/bin/env bash
# Install sqlx-cli (the `sqlx` binary) from crates.io into $TOOLS_DIR/cargo/bin, pinned.
# Compiling it takes minutes, so an already installed binary of the pinned version
# returns at once.
set -euo pipefail

version=0.9.0
root=$(cd "$(dirname "$0")/../../.." && pwd)
tools_dir=${TOOLS_DIR:-${CARGO_TARGET_DIR:-$root/target}/tools}
bin="$tools_dir/cargo/bin/sqlx"

if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qw "$version"; then
  exit 0
fi
if ! command -v cargo >/dev/null; then
  echo "cargo is not installed" >&2
  exit 1
fi
# rustls instead of native-tls: no OpenSSL headers needed; postgres only.
if ! log=$(cargo install --locked --quiet --version "=$version" --root "$tools_dir/cargo" \
  --no-default-features --features postgres,rustls sqlx-cli 2>&1); then
  printf '%s\n' "$log" | tail -n 20 >&2
  cause=$(printf '%s\n' "$log" | grep -m 1 '^error' || printf '%s\n' "$log" | tail -n 1)
  echo "cargo install sqlx-cli@$version failed: $cause" >&2
  exit 1
fi
"$bin" --version >/dev/null
