#!/usr/bin/env bash
# Make a fresh Debian bookworm machine ready to build and test safe_migrations.
# Idempotent: every step checks first, so a ready machine passes through in seconds.
set -euo pipefail

PGRX_VERSION=0.18.1
PG_MAJOR=15
log() { printf '[bootstrap] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# --- apt packages -----------------------------------------------------------
# postgresql-server-dev-15 must match the installed server exactly, otherwise apt
# upgrades the server underneath the tests.
server_version=$(dpkg-query -W -f='${Version}' "postgresql-${PG_MAJOR}" 2>/dev/null || true)
want=(libclang-dev clang sudo pkg-config libssl-dev "postgresql-contrib")
if [ -z "$server_version" ]; then
  want+=("postgresql-${PG_MAJOR}")
fi
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
dev_pkg="postgresql-server-dev-${PG_MAJOR}"
dev_version=$( (dpkg-query -W -f='${Status} ${Version}' "$dev_pkg" 2>/dev/null || true) | sed -n 's/^install ok installed //p')
if [ -z "$server_version" ] || [ "$dev_version" != "$server_version" ]; then
  missing+=("$dev_pkg")
fi
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  if [ -z "$server_version" ]; then
    as_root apt-get install -y -qq "${missing[@]}"
  else
    pinned=()
    for pkg in "${missing[@]}"; do
      if [ "$pkg" = "$dev_pkg" ]; then pinned+=("$pkg=$server_version"); else pinned+=("$pkg"); fi
    done
    as_root apt-get install -y -qq --no-install-recommends "${pinned[@]}"
  fi
else
  log "apt packages present"
fi

# --- cargo-pgrx ---------------------------------------------------------------
if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
  log "installing cargo-pgrx $PGRX_VERSION (about 9 minutes on 2 cores)"
  cargo install cargo-pgrx --version "=$PGRX_VERSION" --locked
else
  log "cargo-pgrx $PGRX_VERSION present"
fi

# --- pgrx init against the system pg15 -----------------------------------------
pg_config=$(command -v pg_config)
pgrx_home=${PGRX_HOME:-$HOME/.pgrx}
if ! grep -qs "pg${PG_MAJOR} = \"${pg_config}\"" "$pgrx_home/config.toml"; then
  log "cargo pgrx init --pg${PG_MAJOR} ${pg_config}"
  cargo pgrx init "--pg${PG_MAJOR}" "$pg_config"
else
  log "pgrx initialised for pg${PG_MAJOR}"
fi

# The extension is installed into the system pg15 so test clusters can preload it;
# the postgres OS user needs to traverse the temp dirs the tests create.
id postgres >/dev/null 2>&1 || { log "no postgres OS user: is postgresql-${PG_MAJOR} installed?"; exit 1; }
log "ready"
