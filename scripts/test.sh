#!/usr/bin/env bash
# Run every check and test: format, clippy, policy/proxy/CLI unit tests, pgrx tests in
# a real PostgreSQL 15, end-to-end tests against throwaway clusters with the extension
# preloaded and the proxy in front, PostgreSQL 15's own regression suite four ways; then
# the extension's tests and the end-to-end tests against PostgreSQL 17 and 18 (in root
# filesystems of the Debian releases that ship them), and the Debian package of each
# major installed and loaded in a clean root filesystem. Bootstraps the machine first
# if needed.
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

log "PostgreSQL 17 and 18: pgrx tests, multi-session script, end-to-end tests (scripts/pg-major.sh)"
bash scripts/pg-major.sh 17
bash scripts/pg-major.sh 18

log "Debian packages for 15, 17 and 18, each installed and loaded in a clean root filesystem of its release"
for major in 15 17 18; do
  bash scripts/package-deb.sh "$major" --test
done

log "all tests passed"
