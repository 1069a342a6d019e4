# Debian root filesystems for the PostgreSQL majors this machine's release does not
# ship, sourced by scripts/pg-major.sh and scripts/package-deb.sh (not run by itself).
#
# Per major under ${SAFE_MIGRATIONS_CACHE:-$HOME/.cache/safe_migrations}/pg<NN>/:
#   base.tar   a minimal root filesystem of the release that ships it, as debootstrap
#              made it (nothing else installed): packages are tested in a copy of it
#   rootfs/    that root filesystem with the server, its headers and a build toolchain,
#              where the extension is built and tested for the major
#   apt/       the release's downloaded packages, reused by every copy
# 15 is bookworm (this machine's release), 17 trixie (Debian 13), 18 forky (testing).
# No Debian release has 16. Run as root.

# rootfs_private "$0" "$@": the calling script again, in a mount namespace of its own
# (first thing, before any mount): every mount it makes vanishes when it ends, however it
# ends, and none reaches this machine's mount table (where an `rm -rf` of the cache could
# delete through a leftover bind mount of the source tree, the toolchain or /dev).
rootfs_private() {
    [[ $(id -u) -eq 0 ]] || { echo "run as root (debootstrap, chroot, mounts)" >&2; exit 1; }
    if [[ -z ${SAFE_MIGRATIONS_PRIVATE_MOUNTS:-} ]]; then
        SAFE_MIGRATIONS_PRIVATE_MOUNTS=1 exec unshare --mount --propagation private bash "$@"
    fi
}

# rootfs_init MAJOR: sets SUITE, SCRIPT, APT_OPTS, CACHE, FS, MIRROR for the major.
rootfs_init() {
    MAJOR=$1
    case "$MAJOR" in
        15) SUITE=bookworm; SCRIPT=bookworm; APT_OPTS=() ;;
        17) SUITE=trixie; SCRIPT=trixie; APT_OPTS=() ;;
        # bookworm's debootstrap has no script for forky: testing bootstraps as sid does.
        18) SUITE=forky; SCRIPT=sid; APT_OPTS=(-o Acquire::Check-Valid-Until=false) ;;
        *) echo "PostgreSQL $MAJOR: no Debian release ships it (15: bookworm, 17: trixie, 18: forky)" >&2; return 2 ;;
    esac
    CACHE=${SAFE_MIGRATIONS_CACHE:-$HOME/.cache/safe_migrations}/pg$MAJOR
    FS=$CACHE/rootfs
    MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
    MOUNTS=()
    mkdir -p "$CACHE/apt"
    [[ $(id -u) -eq 0 ]] || { echo "run as root (debootstrap, chroot, mounts)" >&2; return 1; }
    if ! command -v debootstrap >/dev/null; then
        apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
    fi
    # One run per major at a time (they share its root filesystem and mounts).
    exec 8>"$CACHE/lock"
    flock -w 600 8 || { echo "another run holds $CACHE/lock (10 minutes waited)" >&2; return 1; }
    trap rootfs_unmount EXIT
    rootfs_unmount_stale
}

# Mounts under $CACHE left by a run that was killed: the host's /dev, toolchain and
# source tree bind-mounted there would make an `rm -rf` of the cache delete through them.
rootfs_unmount_stale() {
    local target
    findmnt -rn -o TARGET | awk -v prefix="$CACHE/" 'index($0, prefix) == 1' | sort -r | while read -r target; do
        umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true
    done
}

# rootfs_mount SRC [DIR]: bind-mount SRC at the same path inside DIR (default $FS).
rootfs_mount() {
    rootfs_mount_at "$1" "${2:-$FS}$1"
}

# rootfs_proc [DIR]: /proc inside DIR (default $FS); package scripts need it.
rootfs_proc() {
    local dir=${1:-$FS}
    mountpoint -q "$dir/proc" || { mount -t proc proc "$dir/proc"; MOUNTS+=("$dir/proc"); }
}

rootfs_unmount() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" 2>/dev/null || true
    done
    MOUNTS=()
}

# rootfs_base: $CACHE/base.tar, debootstrapped once.
rootfs_base() {
    [[ -s $CACHE/base.tar ]] && return 0
    local dir
    dir=$(mktemp -d "$CACHE/base.XXXXXX")
    echo "[rootfs $MAJOR] debootstrap $SUITE" >&2
    if ! debootstrap --variant=minbase "$SUITE" "$dir" "$MIRROR" "/usr/share/debootstrap/scripts/$SCRIPT" \
        >"$CACHE/debootstrap.log" 2>&1; then
        tail -20 "$CACHE/debootstrap.log" >&2
        rm -rf "$dir"
        return 1
    fi
    rm -rf "$dir"/var/cache/apt/archives/*.deb
    chmod 755 "$dir"
    tar -C "$dir" -cf "$CACHE/base.tar.part" . && mv "$CACHE/base.tar.part" "$CACHE/base.tar"
    rm -rf "$dir"
}

# rootfs_apt DIR PACKAGES...: apt-get install inside DIR, its downloads kept in $CACHE/apt.
rootfs_apt() {
    local dir=$1
    shift
    cp /etc/resolv.conf "$dir/etc/resolv.conf"
    # Package scripts start no services here (a server inside would take this machine's
    # port 5432).
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
    chmod 755 "$dir/usr/sbin/policy-rc.d"
    rootfs_proc "$dir"
    mkdir -p "$dir/var/cache/apt/archives"
    rootfs_mount_at "$CACHE/apt" "$dir/var/cache/apt/archives"
    chroot "$dir" env DEBIAN_FRONTEND=noninteractive bash -c "
        apt-get ${APT_OPTS[*]} update -q &&
        apt-get ${APT_OPTS[*]} install -y -q --no-install-recommends $*" >"$CACHE/apt.log" 2>&1 ||
        { tail -20 "$CACHE/apt.log" >&2; return 1; }
}

# rootfs_mount_at SRC DST: bind-mount SRC at DST.
rootfs_mount_at() {
    mkdir -p "$2"
    if ! mountpoint -q "$2"; then
        mount --bind "$1" "$2"
        MOUNTS+=("$2")
    fi
}

# rootfs_build PACKAGES...: $FS, a copy of the base with PACKAGES installed (again only
# when the list changes).
rootfs_build() {
    local packages="$*"
    [[ $(cat "$CACHE/packages" 2>/dev/null) == "$packages" && -e $FS/etc/debian_version ]] && return 0
    rootfs_base
    if [[ ! -e $FS/etc/debian_version ]]; then
        mkdir -p "$FS"
        tar -C "$FS" -xf "$CACHE/base.tar"
        chmod 755 "$FS"
    fi
    echo "[rootfs $MAJOR] apt: $packages" >&2
    rootfs_apt "$FS" "$packages"
    echo "$packages" >"$CACHE/packages"
}

# rootfs_toolchain ROOT_DIR TARGET: $FS with the server, its headers and a build
# toolchain installed; this machine's Rust toolchain and cargo-pgrx, the source tree
# and the cargo target directory mounted at the same paths; pgrx initialised for the
# major. Binaries built against bookworm's glibc run on the newer releases.
rootfs_toolchain() {
    # The extension's build (server headers, clang), cargo pgrx test --runas (sudo), and
    # what the tests call: python3, pgrep (procps), openssl, bc.
    rootfs_build "postgresql-$MAJOR" "postgresql-server-dev-$MAJOR" clang libclang-dev build-essential \
        pkg-config sudo ca-certificates python3 procps openssl bc
    rootfs_proc
    rootfs_mount /dev
    rootfs_mount "${CARGO_HOME:-$HOME/.cargo}"
    rootfs_mount "${RUSTUP_HOME:-$HOME/.rustup}"
    rootfs_mount "$1"
    mkdir -p "$2"
    rootfs_mount "$2"
    rootfs_run bash -c "mkdir -p /pgrx-home /pgrx-target
        [[ -e /pgrx-home/config.toml ]] || cargo pgrx init --pg$MAJOR /usr/lib/postgresql/$MAJOR/bin/pg_config >/dev/null"
}

# rootfs_run [NAME=VALUE...] COMMAND...: COMMAND inside $FS with the toolchain on PATH,
# pgrx's home and the extension's build directory of the major (cached in $FS).
rootfs_run() {
    chroot "$FS" env -u RUST_BACKTRACE HOME="$HOME" \
        PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/usr/bin:/bin:/usr/sbin:/sbin" \
        RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" \
        PGRX_HOME=/pgrx-home CARGO_TARGET_DIR=/pgrx-target "$@"
}
