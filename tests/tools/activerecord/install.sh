#!/usr/bin/env bash
# Install ActiveRecord standalone (no Rails app) from Debian packages: the Ruby
# interpreter, ruby-activerecord and the pg driver. Pinned to an upstream release;
# Debian's security revisions of it (~deb12uN, which replace the older ones in the
# archive) are taken as they come.
set -euo pipefail

# name and the version prefix it must have
packages=(
  "ruby-activerecord 2:6.1.7.10+dfsg-1~deb12u"
  "ruby-pg 1.4.5-1"
)

missing=()
for entry in "${packages[@]}"; do
  read -r name prefix <<<"$entry"
  installed=$(dpkg-query -W -f='${Status} ${Version}' "$name" 2>/dev/null || true)
  case "$installed" in
    "install ok installed $prefix"*) ;;
    *) missing+=("$name") ;;
  esac
done
if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "apt-get is not available to install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt=(apt-get -o DPkg::Lock::Timeout=300 -qq)
  if ! "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
    "${apt[@]}" update >/dev/null 2>&1 || true
    if ! log=$("${apt[@]}" install -y --no-install-recommends "${missing[@]}" 2>&1); then
      printf '%s\n' "$log" | tail -n 5 >&2
      cause=$(printf '%s\n' "$log" | grep -m 1 '^E:' || printf '%s\n' "$log" | tail -n 1)
      echo "apt-get install ${missing[*]} failed: $cause" >&2
      exit 1
    fi
  fi
fi
for entry in "${packages[@]}"; do
  read -r name prefix <<<"$entry"
  installed=$(dpkg-query -W -f='${Version}' "$name" 2>/dev/null || true)
  case "$installed" in
    "$prefix"*) ;;
    *)
      echo "$name $installed installed, the tests are written for $prefix*" >&2
      exit 1
      ;;
  esac
done
ruby -e 'require "active_record"; require "pg"' || {
  echo "ruby cannot load active_record and pg" >&2
  exit 1
}
