#!/usr/bin/env bash
# Build the extension and install it into the PostgreSQL that pg_config names.
#
# Unlike `cargo pgrx install`, every file is written beside its destination and renamed
# into place: backends that already mapped the old safe_migrations.so keep the old
# inode instead of crashing on a library rewritten under them (test clusters of another
# run may be up). Concurrent installs are serialized with flock.
#   PG_CONFIG  pg_config to install for (default: the one on PATH)
#   PROFILE    cargo profile: debug (default) or release
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
pg_config=${PG_CONFIG:-$(command -v pg_config)}
profile=${PROFILE:-debug}
target_dir=${CARGO_TARGET_DIR:-$root/target}
out=$target_dir/$profile/safe_migrations-package

profile_flag=(--debug)
[ "$profile" = release ] && profile_flag=()
(cd "$root/extension" && cargo pgrx package "${profile_flag[@]}" --pg-config "$pg_config" --out-dir "$out" >&2)

exec 9>/tmp/safe_migrations-install.lock
flock 9
pkglibdir=$("$pg_config" --pkglibdir)
sharedir=$("$pg_config" --sharedir)
install_atomically() { # src dest mode
  local tmp
  tmp="$(dirname "$2")/.$(basename "$2").$$"
  install -m "$3" "$1" "$tmp"
  mv -f "$tmp" "$2"
}
install_atomically "$out$pkglibdir/safe_migrations.so" "$pkglibdir/safe_migrations.so" 0755
for file in "$out$sharedir"/extension/safe_migrations*; do
  install_atomically "$file" "$sharedir/extension/$(basename "$file")" 0644
done
printf '[install-extension] installed safe_migrations (%s) into %s\n' "$profile" "$pkglibdir" >&2
