#!/usr/bin/env bash
# The extension and the proxy against PostgreSQL 17 or 18 (issue #18).
#
# usage: scripts/pg-major.sh 17|18 [extension|all]
#   extension  the extension's pgrx tests and its multi-session script (extension/tests/e2e.sh)
#   all        (default) also the end-to-end tests (tests/tests/*.rs but the tool_* ones that
#              drive installed migration tools): the extension loaded, the proxy in front,
#              the parity corpus judged by both, against a server of that major
#
# This machine's Debian (bookworm) ships PostgreSQL 15 only. Debian 13 (trixie) has 17
# and Debian testing (forky) 18, server headers included; no Debian release has 16. The
# script makes a minimal root filesystem of that release (debootstrap), installs the
# server, its headers, clang and the tools the tests call there, and runs the tests
# inside it (chroot) with this machine's Rust toolchain, cargo-pgrx, the source tree and
# the target directory bind-mounted at the same paths (binaries built against
# bookworm's glibc run on the newer one; the newer pg_config does not run here). The
# end-to-end test binaries and the proxy are built here, once, for every major.
#
# Idempotent: the root filesystem, pgrx's configuration for the major and the
# extension's build are cached under
# ${SAFE_MIGRATIONS_CACHE:-$HOME/.cache/safe_migrations}/pg<NN>/; a second run only
# builds what changed and tests. Run as root.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/rootfs.sh
. "$ROOT_DIR/scripts/rootfs.sh"
rootfs_private "$0" "$@"
case "${1:-}" in
    17 | 18) ;;
    *) echo "usage: $0 17|18 [extension|all] (the majors a Debian release ships besides this machine's 15)" >&2; exit 2 ;;
esac
WHAT=${2:-all}
case "$WHAT" in
    extension | all) ;;
    *) echo "usage: $0 17|18 [extension|all]; '$WHAT' is neither" >&2; exit 2 ;;
esac
rootfs_init "$1"
log() { echo "[pg-major $MAJOR] $*"; }

TARGET=${CARGO_TARGET_DIR:-$ROOT_DIR/target}
if [[ $WHAT == all ]]; then
    # Built here (the chroot's toolchain is this one): the proxy and the test binaries.
    log "building the proxy and the end-to-end tests"
    (cd "$ROOT_DIR" && cargo build -q -p safe-migrations --bin safe-migrations)
    # The test binaries from cargo's messages (a build failure fails the script).
    (cd "$ROOT_DIR" && cargo test -q -p e2e --no-run --message-format=json) >"$CACHE/e2e-build.json"
    mapfile -t TESTS < <(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable") and message["target"]["kind"] == ["test"]:
        name = message["target"]["name"]
        # The tool_* tests drive migration tools installed on this machine (tests/tools).
        if not name.startswith("tool_") or name == "tool_wire_replays":
            print(message["executable"])' "$CACHE/e2e-build.json")
    [[ ${#TESTS[@]} -gt 10 ]] || { echo "found only ${#TESTS[@]} end-to-end test binaries" >&2; exit 1; }
fi

rootfs_toolchain "$ROOT_DIR" "$TARGET"
PG_BIN=/usr/lib/postgresql/$MAJOR/bin

log "cargo pgrx test pg$MAJOR"
rootfs_run bash -c "
    set -e
    data=\$(mktemp -d /tmp/sm-pgrx-XXXXXX)
    chown postgres:postgres \"\$data\"
    trap 'rm -rf \"\$data\"' EXIT
    cd '$ROOT_DIR/extension'
    cargo pgrx test pg$MAJOR --runas postgres --pgdata \"\$data/data\"
"

log "installing the extension into PostgreSQL $MAJOR"
rootfs_run PG_CONFIG=$PG_BIN/pg_config bash "$ROOT_DIR/scripts/install-extension.sh"

log "extension: multi-session scenarios on PostgreSQL $MAJOR"
rootfs_run PG_BIN=$PG_BIN PG_CONFIG=$PG_BIN/pg_config SKIP_INSTALL=1 bash "$ROOT_DIR/extension/tests/e2e.sh"

if [[ $WHAT == all ]]; then
    FAILED=()
    for test in "${TESTS[@]}"; do
        name=$(basename "$test")
        log "end-to-end: ${name%-*} against PostgreSQL $MAJOR"
        if ! rootfs_run SM_PG_BIN=$PG_BIN SAFE_MIGRATIONS_BIN="$TARGET/debug/safe-migrations" \
            bash -c "cd '$ROOT_DIR/tests' && '$test' -q"; then
            FAILED+=("${name%-*}")
        fi
    done
    if [[ ${#FAILED[@]} -gt 0 ]]; then
        echo "[pg-major $MAJOR] end-to-end tests failed against PostgreSQL $MAJOR: ${FAILED[*]}" >&2
        exit 1
    fi
fi
log "all passed on PostgreSQL $MAJOR"
