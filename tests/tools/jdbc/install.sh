#!/usr/bin/env bash
# Install the PostgreSQL JDBC driver from Debian, pinned, and a JDK (javac) when none
# is on the PATH yet.
set -euo pipefail

driver="libpostgresql-jdbc-java=42.5.5-0+deb12u1"

missing=()
installed=$(dpkg-query -W -f='${Status} ${Version}' "${driver%%=*}" 2>/dev/null || true)
[ "$installed" = "install ok installed ${driver#*=}" ] || missing+=("$driver")
command -v javac >/dev/null && command -v java >/dev/null || missing+=(default-jdk-headless)
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
[ -r /usr/share/java/postgresql.jar ] || {
  echo "/usr/share/java/postgresql.jar is missing after the install" >&2
  exit 1
}
