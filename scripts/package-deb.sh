#!/usr/bin/env bash
# The extension as a Debian package for one PostgreSQL major, installable without a Rust
# toolchain; with --test, installed and loaded in a clean root filesystem of the release
# that ships that major.
#
# usage: scripts/package-deb.sh 15|17|18 [--test]
#   PROFILE  cargo profile of the build: release (default) or debug
#
# Writes ${CARGO_TARGET_DIR:-target}/debs/postgresql-<NN>-safe-migrations_<version>_amd64.deb,
# depending on postgresql-<NN> and the C libraries the library links. 15 is built on this
# machine (bookworm); 17 and 18 in the root filesystem scripts/pg-major.sh uses (trixie,
# forky), so each package links the C library of the release it is for.
#
# --test: a copy of the release's minimal root filesystem (nothing else installed),
# `apt-get install ./<package>.deb` there (apt brings the server), then a cluster with
# shared_preload_libraries = 'safe_migrations', CREATE EXTENSION, and a guarded role whose
# plain CREATE INDEX is refused while CREATE INDEX CONCURRENTLY runs. Run as root.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/rootfs.sh
. "$ROOT_DIR/scripts/rootfs.sh"
rootfs_private "$0" "$@"
case "${1:-}" in
    15 | 17 | 18) ;;
    *) echo "usage: $0 15|17|18 [--test]" >&2; exit 2 ;;
esac
TEST=
case "${2:-}" in
    "") ;;
    --test) TEST=1 ;;
    *) echo "usage: $0 15|17|18 [--test]; '$2' is not an option" >&2; exit 2 ;;
esac
rootfs_init "$1"
log() { echo "[package-deb $MAJOR] $*" >&2; }
PROFILE=${PROFILE:-release}
case "$PROFILE" in
    release) PROFILE_FLAG=() ;;
    debug) PROFILE_FLAG=(--debug) ;;
    *) echo "PROFILE must be release or debug, not '$PROFILE'" >&2; exit 2 ;;
esac
TARGET=${CARGO_TARGET_DIR:-$ROOT_DIR/target}
PG_BIN=/usr/lib/postgresql/$MAJOR/bin
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT_DIR/Cargo.toml" | head -1)
NAME=postgresql-$MAJOR-safe-migrations
DEB=$TARGET/debs/${NAME}_${VERSION}_amd64.deb
STAGE=$TARGET/debs/$NAME
mkdir -p "$TARGET/debs"
rm -rf "$STAGE"

# --- build ------------------------------------------------------------------------
if [[ $MAJOR == 15 ]]; then
    bash "$ROOT_DIR/scripts/bootstrap.sh" >/dev/null
    log "cargo pgrx package ($PROFILE) for $PG_BIN/pg_config"
    (cd "$ROOT_DIR/extension" && cargo pgrx package "${PROFILE_FLAG[@]}" --pg-config "$PG_BIN/pg_config" --out-dir "$STAGE" >&2)
    IN_BUILD=()
else
    rootfs_toolchain "$ROOT_DIR" "$TARGET"
    IN_BUILD=(chroot "$FS")
    log "cargo pgrx package ($PROFILE) for PostgreSQL $MAJOR (in $FS)"
    rootfs_run bash -c "
        set -e
        cd '$ROOT_DIR/extension'
        cargo pgrx package ${PROFILE_FLAG[*]} --pg-config $PG_BIN/pg_config --out-dir '$STAGE' >&2
    "
fi

# --- the package -------------------------------------------------------------------
LIB=$STAGE$("${IN_BUILD[@]}" "$PG_BIN/pg_config" --pkglibdir)/safe_migrations.so
[[ -f $LIB ]] || { echo "the build left no $LIB" >&2; exit 1; }
# Debug information stays out of the package (a debug build keeps its own).
# (with the strip of the release it was built in).
[[ $PROFILE == release ]] && "${IN_BUILD[@]}" strip --strip-unneeded "$LIB"
# The C libraries it links, as the release's packages name them, and the newest glibc
# symbol version it uses.
needed=$(readelf -d "$LIB" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
glibc=$(objdump -T "$LIB" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
depends="postgresql-$MAJOR, libc6 (>= $glibc)"
for lib in $needed; do
    case "$lib" in
        libc.so.* | libm.so.* | libdl.so.* | libpthread.so.* | librt.so.* | ld-linux*) ;;
        libgcc_s.so.1) depends="$depends, libgcc-s1" ;;
        *) echo "the library links $lib, which this script does not know a package for" >&2; exit 1 ;;
    esac
done
installed_size=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
mkdir -p "$STAGE/DEBIAN"
cat >"$STAGE/DEBIAN/control" <<EOF
Package: $NAME
Version: $VERSION
Architecture: amd64
Maintainer: safe_migrations <safe-migrations@localhost>
Installed-Size: $installed_size
Depends: $depends
Section: database
Priority: optional
Description: PostgreSQL $MAJOR extension that stops unsafe schema migrations
 safe_migrations guards the roles that run migrations: every DDL statement of a
 guarded role runs under a capped lock_timeout, and DDL that would block traffic
 (a plain CREATE INDEX, a validated foreign key, a rewriting ALTER COLUMN TYPE, ...)
 is refused with the safe alternative in SQL. Load it with
 shared_preload_libraries = 'safe_migrations', then CREATE EXTENSION safe_migrations.
EOF
find "$STAGE" -type d -exec chmod 755 {} +
find "$STAGE" -type f -exec chmod 644 {} +
chmod 755 "$LIB"
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
log "built $DEB ($(du -h "$DEB" | cut -f1); Depends: $depends)"

[[ -n $TEST ]] || exit 0

# --- installed and loaded in a clean root filesystem ---------------------------------
rootfs_base
CLEAN=$(mktemp -d "$CACHE/clean.XXXXXX")
cleanup_clean() {
    rootfs_unmount
    rm -rf "$CLEAN"
}
trap cleanup_clean EXIT
tar -C "$CLEAN" -xf "$CACHE/base.tar"
# The postgres user inside walks from its root.
chmod 755 "$CLEAN"
cp "$DEB" "$CLEAN/tmp/"
log "apt-get install ./$(basename "$DEB") in a clean $SUITE root filesystem"
rootfs_apt "$CLEAN" "/tmp/$(basename "$DEB")"
log "a cluster with the package's extension preloaded"
chroot "$CLEAN" env -u RUST_BACKTRACE bash -c "
    set -euo pipefail
    data=\$(mktemp -d /tmp/sm-deb-XXXXXX)
    chown postgres:postgres \$data
    runuser -u postgres -- $PG_BIN/initdb -D \$data/data -A trust >/dev/null
    cat >>\$data/data/postgresql.conf <<CONF
listen_addresses = ''
unix_socket_directories = '\$data'
shared_preload_libraries = 'safe_migrations'
CONF
    runuser -u postgres -- $PG_BIN/pg_ctl -D \$data/data -l \$data/log -w start >/dev/null
    trap 'runuser -u postgres -- $PG_BIN/pg_ctl -D \$data/data -m immediate stop >/dev/null' EXIT
    psql() { runuser -u postgres -- $PG_BIN/psql -h \$data -X -q -v ON_ERROR_STOP=1 \"\$@\"; }
    psql -U postgres -d postgres -c \"CREATE EXTENSION safe_migrations; CREATE ROLE migrator LOGIN;
        GRANT CREATE ON SCHEMA public TO migrator;
        ALTER ROLE migrator SET safe_migrations.mode = 'enforce';\"
    psql -U migrator -d postgres -c 'CREATE TABLE t (c int); INSERT INTO t VALUES (1)'
    if refused=\$(psql -U migrator -d postgres -c 'CREATE INDEX t_c ON t (c)' 2>&1); then
        echo 'a plain CREATE INDEX of a guarded role ran' >&2
        exit 1
    fi
    grep -q 'CONCURRENTLY' <<<\"\$refused\" || { echo \"unexpected refusal: \$refused\" >&2; exit 1; }
    psql -U migrator -d postgres -c 'CREATE INDEX CONCURRENTLY t_c ON t (c)'
    psql -U postgres -d postgres -At -c \"SELECT extversion FROM pg_extension WHERE extname = 'safe_migrations'\"
"
log "installed, preloaded and guarding on PostgreSQL $MAJOR ($SUITE)"
