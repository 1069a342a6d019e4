#!/usr/bin/env bash
# Run every check and test: format, clippy, policy/proxy/CLI unit tests, pgrx tests in
# a real PostgreSQL 15, end-to-end tests against throwaway clusters with the extension
# preloaded and the proxy in front, and PostgreSQL 15's own regression suite four ways.
# Bootstraps the machine first if needed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log() { printf '\n[test] %s\n' "$*" >&2; }
pg_config=$(command -v pg_config || echo /usr/bin/pg_config)

bash scripts/bootstrap.sh

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

log "pgrx tests (extension inside a real PostgreSQL 15)"
pgrx_data=$(mktemp -d /tmp/sm-pgrx-XXXXXX)
chown postgres:postgres "$pgrx_data"
trap 'rm -rf "$pgrx_data"' EXIT
(cd extension && cargo pgrx test pg15 --runas postgres --pgdata "$pgrx_data/data")

log "installing the extension into $("$pg_config" --pkglibdir) for the end-to-end tests"
bash scripts/install-extension.sh

log "extension: multi-session scenarios (logins, blockers, server log)"
SKIP_INSTALL=1 bash extension/tests/e2e.sh

log "building the safe-migrations binary"
cargo build -p safe-migrations --bin safe-migrations

log "installing the migration tools the tool tests drive"
bash tests/tools/install-all.sh

log "unit, integration and end-to-end tests"
cargo test --workspace --exclude safe_migrations

log "PostgreSQL 15's regression suite: direct, through the proxy (off, warn), with the extension (warn)"
bash tests/regress/run.sh direct proxy-off proxy-warn extension-warn

log "all tests passed"
