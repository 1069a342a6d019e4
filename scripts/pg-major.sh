#!/usr/bin/env bash
# The extension's pgrx tests on PostgreSQL 17 or 18 (issue #18, first step).
#
# usage: scripts/pg-major.sh 17|18
#
# This machine's Debian (bookworm) ships PostgreSQL 15 only. Debian 13 (trixie) has 17
# and Debian testing (forky) 18, server headers included; no Debian release has 16. The
# script makes a minimal root filesystem of that release (debootstrap), installs the
# server, its headers, clang and sudo there, and runs `cargo pgrx test pgNN` inside it
# with this machine's Rust toolchain and cargo-pgrx bind-mounted (binaries built against
# bookworm's glibc run on the newer one; the newer pg_config does not run here).
#
# Idempotent: the root filesystem, pgrx's configuration for the major and the build are
# cached under ${SAFE_MIGRATIONS_CACHE:-$HOME/.cache/safe_migrations}/pg<NN>/; a second
# run only builds and tests. Run as root. Not part of scripts/test.sh yet.
set -euo pipefail

MAJOR=${1:-}
case "$MAJOR" in
    17) SUITE=trixie; SCRIPT=trixie; APT_OPTS=() ;;
    # bookworm's debootstrap has no script for forky: testing bootstraps as sid does.
    18) SUITE=forky; SCRIPT=sid; APT_OPTS=(-o Acquire::Check-Valid-Until=false) ;;
    *) echo "usage: $0 17|18 (the majors a Debian release ships besides this machine's 15)" >&2; exit 2 ;;
esac

ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${SAFE_MIGRATIONS_CACHE:-$HOME/.cache/safe_migrations}/pg$MAJOR
FS=$CACHE/rootfs
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
log() { echo "[pg-major $MAJOR] $*"; }

[[ $(id -u) -eq 0 ]] || { echo "run as root (debootstrap, chroot, mounts)" >&2; exit 1; }
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null

# Mounts into the root filesystem, undone on exit.
MOUNTS=()
mount_into() {
    local src=$1 dst=$FS$1
    mkdir -p "$dst"
    if ! mountpoint -q "$dst"; then
        mount --bind "$src" "$dst"
        MOUNTS+=("$dst")
    fi
}
cleanup() {
    local dst
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        dst=${MOUNTS[i]}
        umount "$dst" 2>/dev/null || umount -l "$dst" 2>/dev/null || true
    done
}
trap cleanup EXIT
if [[ ! -x $FS/usr/lib/postgresql/$MAJOR/bin/pg_config ]]; then
    if [[ ! -e $FS/etc/debian_version ]]; then
        log "debootstrap $SUITE into $FS"
        mkdir -p "$FS"
        debootstrap --variant=minbase "$SUITE" "$FS" "$MIRROR" "/usr/share/debootstrap/scripts/$SCRIPT" \
            >"$CACHE/debootstrap.log" 2>&1 ||
            { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
    fi
    cp /etc/resolv.conf "$FS/etc/resolv.conf"
    # Package scripts need /proc.
    mountpoint -q "$FS/proc" || { mount -t proc proc "$FS/proc"; MOUNTS+=("$FS/proc"); }
    log "apt: postgresql-$MAJOR, its headers, clang, sudo"
    chroot "$FS" env DEBIAN_FRONTEND=noninteractive bash -c "
        apt-get ${APT_OPTS[*]} update -q &&
        apt-get ${APT_OPTS[*]} install -y -q --no-install-recommends postgresql-$MAJOR \
            postgresql-server-dev-$MAJOR clang libclang-dev build-essential pkg-config sudo ca-certificates" \
        >"$CACHE/apt.log" 2>&1 || { tail -20 "$CACHE/apt.log" >&2; exit 1; }
fi

# The toolchain, cargo-pgrx and the source tree, at the same paths inside.
mountpoint -q "$FS/proc" || { mount -t proc proc "$FS/proc"; MOUNTS+=("$FS/proc"); }
mount_into /dev
mount_into "${CARGO_HOME:-$HOME/.cargo}"
mount_into "${RUSTUP_HOME:-$HOME/.rustup}"
mount_into "$ROOT_DIR"

log "cargo pgrx test pg$MAJOR"
chroot "$FS" env -u RUST_BACKTRACE HOME="$HOME" PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/usr/bin:/bin:/usr/sbin:/sbin" \
    RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" \
    PGRX_HOME=/pgrx-home CARGO_TARGET_DIR=/pgrx-target bash -c "
        set -e
        mkdir -p /pgrx-home /pgrx-target
        [[ -e /pgrx-home/config.toml ]] || cargo pgrx init --pg$MAJOR /usr/lib/postgresql/$MAJOR/bin/pg_config >/dev/null
        data=\$(mktemp -d /tmp/sm-pgrx-XXXXXX)
        chown postgres:postgres \"\$data\"
        cd '$ROOT_DIR/extension'
        cargo pgrx test pg$MAJOR --runas postgres --pgdata \"\$data/data\"
    "
