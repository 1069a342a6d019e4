#!/usr/bin/env bash
# PostgreSQL 15's own regression suite (parallel_schedule), run directly and through
# safe_migrations, to show that the guard changes nothing but its own warnings.
#
# usage: tests/regress/run.sh [direct] [proxy-off] [proxy-warn] [extension-warn]
#
#   direct          pg_regress against a fresh cluster; pg_regress's own verdict.
#   proxy-off       through `safe-migrations proxy`, the role unguarded.
#   proxy-warn      through the proxy, the role set to safe_migrations.mode = 'warn'.
#   extension-warn  a cluster with shared_preload_libraries = 'safe_migrations', the
#                   role in warn mode.
#
# Without arguments: every way whose binary is present (the proxy at
# target/debug/safe-migrations or $SAFE_MIGRATIONS_BIN; the extension as
# safe_migrations.so in PG15's pkglibdir). A guarded way needs the direct run's
# outputs: the last ones for this server version are reused, else direct runs too.
#
# Each guarded way passes a test when its output, with the guard's own warnings
# removed (compare.py says how), equals the direct run's output. Differences that
# cannot be avoided are listed in tests/regress/inherent.txt. Exit status: 0 when
# nothing differs beyond that list.
#
# Run as root (it configures apt and runs the servers as the postgres user).
# Cached under ${SAFE_MIGRATIONS_CACHE:-$HOME/.cache/safe_migrations}/pg-regress-15:
#   src/<version>/   the Debian source of postgresql-15 matching the installed server
#   lib/<version>/   regress.so built from it
#   runs/<way>/      the last run of each way: results/, pg_regress.log (its verdicts;
#                    regression.diffs too when a test failed against expected/), server
#                    and proxy logs, and compare/<test>.diff for each test that differs
# Environment: REGRESS_TIMEOUT (seconds per way, default 1800).
set -euo pipefail

PG_MAJOR=15
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PGBIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_CONFIG=$PGBIN/pg_config
PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
# Debian ships the PGXS copy of pg_regress next to the PGXS makefiles.
PG_REGRESS=$(dirname "$("$PG_CONFIG" --pgxs)")/../test/regress/pg_regress
PROXY_BIN=${SAFE_MIGRATIONS_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/safe-migrations}
EXTENSION_SO=$PKGLIBDIR/safe_migrations.so
CACHE=${SAFE_MIGRATIONS_CACHE:-$HOME/.cache/safe_migrations}/pg-regress-$PG_MAJOR
RUNS=$CACHE/runs
TIMEOUT=${REGRESS_TIMEOUT:-1800}
PYTHON=$(command -v /usr/bin/python3 || command -v python3)
ALL_WAYS=(direct proxy-off proxy-warn extension-warn)

log() { printf '%s\n' "$*" >&2; }
die() { log "run.sh: $*"; exit 2; }

[ "$(id -u)" = 0 ] || die "run as root (apt, and runuser to the postgres user)"
[ -x "$PG_REGRESS" ] || die "pg_regress not found at $PG_REGRESS"
VERSION=$(dpkg-query -W -f='${Version}' "postgresql-$PG_MAJOR")
SRC=$CACHE/src/$VERSION
LIBDIR=$CACHE/lib/$VERSION

# --- what to run ---------------------------------------------------------------

available() {
    case $1 in
        direct) true ;;
        proxy-*) [ -x "$PROXY_BIN" ] ;;
        extension-*) [ -f "$EXTENSION_SO" ] ;;
    esac
}

WAYS=()
if [ $# -eq 0 ]; then
    for way in "${ALL_WAYS[@]}"; do
        if available "$way"; then WAYS+=("$way"); else log "skipping $way: its binary is not present"; fi
    done
else
    for way in "$@"; do
        case " ${ALL_WAYS[*]} " in *" $way "*) ;; *) die "unknown way '$way' (ways: ${ALL_WAYS[*]})" ;; esac
        available "$way" || die "$way: binary not present (${PROXY_BIN} / ${EXTENSION_SO})"
        case " ${WAYS[*]-} " in *" $way "*) ;; *) WAYS+=("$way") ;; esac
    done
fi
# The comparison needs a direct baseline from this very server version.
if [[ " ${WAYS[*]} " != *" direct "* ]] && [ "$(cat "$RUNS/direct/VERSION" 2>/dev/null)" != "$VERSION" ]; then
    log "no direct run for $VERSION cached: running direct first"
    WAYS=(direct "${WAYS[@]}")
fi

# --- teardown ------------------------------------------------------------------

# What is running now, so an interrupted run leaves no server, proxy or temp dir.
WORK=""
REGRESS_PID=""
PROXY_PID=""
CLUSTER_UP=""

stop_regress() {
    if [ -n "$REGRESS_PID" ]; then
        kill "$REGRESS_PID" 2>/dev/null || true
        wait "$REGRESS_PID" 2>/dev/null || true
        REGRESS_PID=""
    fi
}

stop_proxy() {
    if [ -n "$PROXY_PID" ]; then
        kill "$PROXY_PID" 2>/dev/null || true
        wait "$PROXY_PID" 2>/dev/null || true
        PROXY_PID=""
    fi
}

stop_cluster() {
    if [ -n "$CLUSTER_UP" ]; then
        as_postgres "$PGBIN/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null 2>&1 ||
            as_postgres "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate -w stop >/dev/null 2>&1 || true
        CLUSTER_UP=""
    fi
}

cleanup() {
    stop_regress
    stop_proxy
    stop_cluster
    if [ -n "$WORK" ]; then rm -rf "$WORK"; WORK=""; fi
}
trap cleanup EXIT
trap 'log "interrupted: tearing down"; exit 130' INT TERM

# Servers, pg_regress and psql run as postgres with a clean environment: the
# invoking shell's PG* variables (PGOPTIONS, PGDATABASE, ...) and RUST_BACKTRACE
# would change what the suite sees, differently per way.
as_postgres() {
    runuser -u postgres -- env -i PATH="$PGBIN:/usr/bin:/bin" HOME="$WORK" LANG=C.UTF-8 "$@"
}

# --- the suite's sources and libraries (cached) --------------------------------

# deb-src entries for the Debian suites apt already uses (same mirrors, suites,
# components, keys), so `apt-get source` can fetch exactly the installed version.
# (grep on a captured string: `apt-cache ... | grep -q` fails under pipefail when grep
# exits early.)
source_known() {
    local versions
    versions=$(apt-cache showsrc "postgresql-$PG_MAJOR" 2>/dev/null || true)
    grep -qx "Version: $VERSION" <<<"$versions"
}

ensure_deb_src() {
    source_known && return
    local list=/etc/apt/sources.list.d/safe-migrations-deb-src.sources
    log "adding deb-src entries ($list) and running apt-get update"
    "$PYTHON" - "$list" <<'EOF'
import glob, re, sys

codename = dict(l.rstrip("\n").split("=", 1) for l in open("/etc/os-release") if "=" in l)["VERSION_CODENAME"]
suite_ok = re.compile(r"^%s(-updates|-security)?$" % re.escape(codename))
entries = []  # (uris, suites, components, signed_by)

def one_line(path):
    for line in open(path):
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        signed = ""
        if words[0].startswith("["):
            opts = []
            while True:
                opts.append(words.pop(0))
                if opts[-1].endswith("]"):
                    break
            m = re.search(r"signed-by=([^\s\]]+)", " ".join(opts))
            signed = m.group(1) if m else ""
        uri, suite, comps = words[0], words[1], words[2:]
        entries.append(([uri], [suite], comps, signed))

def deb822(path):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
            continue
        entries.append((fields["uris"].split(), fields["suites"].split(),
                        fields.get("components", "").split(), fields.get("signed-by", "")))

for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        one_line(path)
    except FileNotFoundError:
        pass
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    if path != sys.argv[1]:
        deb822(path)

out = ["# Added by safe_migrations tests/regress/run.sh: PostgreSQL's regression suite comes",
       "# from the source package of the installed server. Mirrors as in the deb entries."]
for uris, suites, comps, signed in entries:
    suites = [s for s in suites if suite_ok.match(s)]
    if not suites:
        continue
    out += ["", "Types: deb-src", "URIs: " + " ".join(uris), "Suites: " + " ".join(suites),
            "Components: " + " ".join(comps)]
    if signed:
        out.append("Signed-By: " + signed)
if len(out) == 2:
    sys.exit("no Debian %s entries found in /etc/apt/sources.list(.d)" % codename)
open(sys.argv[1], "w").write("\n".join(out) + "\n")
EOF
    apt-get -o DPkg::Lock::Timeout=600 -qq update >/dev/null
    source_known || die "the archive has no source for postgresql-$PG_MAJOR=$VERSION"
}

fetch_source() {
    [ -f "$SRC/src/test/regress/parallel_schedule" ] && return
    ensure_deb_src
    local download=$CACHE/download
    rm -rf "$download" "$SRC.partial"
    mkdir -p "$download" "$CACHE/src"
    log "downloading and unpacking the source of postgresql-$PG_MAJOR=$VERSION"
    (cd "$download" && apt-get -qq source --download-only "postgresql-$PG_MAJOR=$VERSION" >/dev/null 2>&1) ||
        die "apt-get source postgresql-$PG_MAJOR=$VERSION failed"
    # Unpacked with Debian's patches applied: the suite the package itself was tested with.
    # (apt checked the files against the signed Sources index; dpkg-source's own gpgv
    # check of the .dsc lacks the uploaders' keys and only warns, hence the log.)
    dpkg-source -x "$download"/*.dsc "$SRC.partial" >"$CACHE/dpkg-source.log" 2>&1 ||
        { cat "$CACHE/dpkg-source.log" >&2; die "dpkg-source -x failed"; }
    mv "$SRC.partial" "$SRC"
    rm -rf "$download"
}

build_libs() {
    [ -f "$LIBDIR/regress.so" ] && return
    if [ ! -f "$("$PG_CONFIG" --includedir-server)/postgres.h" ]; then
        # Headers of another minor version could build a regress.so with a different ABI.
        log "installing postgresql-server-dev-$PG_MAJOR=$VERSION (pinned to the server)"
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq install -y \
            "postgresql-server-dev-$PG_MAJOR=$VERSION" >/dev/null
    fi
    local build=$CACHE/build
    rm -rf "$build" && mkdir -p "$build"
    cp "$SRC/src/test/regress/regress.c" "$build/"
    # with_llvm=no: the JIT bitcode is not needed and would need clang.
    printf 'MODULES = regress\nPG_CONFIG = %s\nPGXS := $(shell $(PG_CONFIG) --pgxs)\ninclude $(PGXS)\n' \
        "$PG_CONFIG" >"$build/Makefile"
    make -s -C "$build" with_llvm=no >"$build/make.log" 2>&1 || { cat "$build/make.log" >&2; die "building regress.so failed"; }
    mkdir -p "$LIBDIR"
    cp "$build/regress.so" "$LIBDIR/regress.so.partial" && mv "$LIBDIR/regress.so.partial" "$LIBDIR/regress.so"
    rm -rf "$build"
}

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- one way -------------------------------------------------------------------

# The suite is copied to a postgres-owned temp dir: the server itself reads data/
# and writes results/ (server-side COPY), and $HOME/.cache is usually not
# reachable for the postgres user.
prepare_work() {
    WORK=$(mktemp -d /tmp/safe-migrations-regress.XXXXXX)
    chmod 755 "$WORK"
    mkdir "$WORK/suite" "$WORK/suite/lib" "$WORK/sock"
    cp -a "$SRC/src/test/regress/"{sql,expected,data,parallel_schedule,resultmap} "$WORK/suite/"
    # The tests load regress, autoinc and refint from one directory (--dlpath);
    # autoinc and refint are the installed server's own contrib/spi builds.
    cp "$LIBDIR/regress.so" "$PKGLIBDIR/autoinc.so" "$PKGLIBDIR/refint.so" "$WORK/suite/lib/"
    chown -R postgres:postgres "$WORK"
}

start_cluster() {
    local port=$1 preload=$2
    as_postgres "$PGBIN/initdb" -D "$WORK/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
        >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
    # Loopback and a private socket dir only, so nothing collides with the system's
    # clusters. fsync off and max_prepared_transactions as `make check` sets them.
    # Autovacuum off: the judgement compares the rule warnings of two runs, and the rules
    # that skip an empty table read its size only when no other session holds or awaits
    # ACCESS EXCLUSIVE on it, which autovacuum's truncation takes at moments of its own.
    cat >>"$WORK/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$WORK/sock'
fsync = off
max_prepared_transactions = 2
autovacuum = off
shared_preload_libraries = '$preload'
EOF
    CLUSTER_UP=1
    as_postgres "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/postmaster.log" -w -t 60 start >/dev/null ||
        { cat "$WORK/postmaster.log" >&2; die "the server did not start"; }
}

psql_server() {
    as_postgres "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2"
}

start_proxy() {
    local port=$1 upstream=$2
    # env -i: SAFE_MIGRATIONS_* variables of the caller (a config file, limits) must
    # not change the proxy under test.
    env -i PATH=/usr/bin:/bin SAFE_MIGRATIONS_LOG=info "$PROXY_BIN" proxy \
        --listen "127.0.0.1:$port" --upstream "127.0.0.1:$upstream" --upstream-tls disable \
        >"$WORK/proxy.log" 2>&1 &
    PROXY_PID=$!
    local i
    for i in $(seq 100); do
        if as_postgres "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then return; fi
        kill -0 "$PROXY_PID" 2>/dev/null || { cat "$WORK/proxy.log" >&2; die "the proxy exited"; }
        sleep 0.2
    done
    cat "$WORK/proxy.log" >&2
    die "the proxy does not accept connections on 127.0.0.1:$port"
}

run_way() {
    local way=$1 started=$SECONDS
    local server_port target_port preload=""
    prepare_work
    server_port=$(free_port)
    target_port=$server_port
    [[ $way == extension-* ]] && preload=safe_migrations
    start_cluster "$server_port" "$preload"
    # The suite needs a superuser, so the guarded role is the bootstrap superuser
    # postgres itself (pg_regress connects as it). The setting is a placeholder on a
    # server without the extension; the proxy reads it at login.
    if [[ $way == *-warn ]]; then
        psql_server "$server_port" "ALTER ROLE postgres SET safe_migrations.mode = 'warn'"
    fi
    # No CREATE EXTENSION for extension-warn: the hook is active once preloaded, and
    # the extension's functions in the test database would change catalog-wide
    # outputs (opr_sanity, \df listings) in ways that say nothing about the guard.
    if [[ $way == proxy-* ]]; then
        target_port=$(free_port)
        start_proxy "$target_port" "$server_port"
    fi

    # Installcheck mode (no --temp-instance): pg_regress creates the database
    # "regression" on the given server itself, through the proxy for proxy ways.
    # In the background with `wait`, so a signal to this script runs the trap at once
    # instead of after pg_regress; $! is timeout itself, which passes a kill on.
    local rc=0
    (cd "$WORK/suite" && exec timeout -k 30 "$TIMEOUT" runuser -u postgres -- \
        env -i PATH="$PGBIN:/usr/bin:/bin" HOME="$WORK" LANG=C.UTF-8 "$PG_REGRESS" \
        --inputdir=. --outputdir=. --bindir="$PGBIN" --dlpath="$WORK/suite/lib" \
        --host=127.0.0.1 --port="$target_port" --user=postgres \
        --schedule=parallel_schedule) >"$WORK/pg_regress.log" 2>&1 &
    REGRESS_PID=$!
    wait "$REGRESS_PID" || rc=$?
    REGRESS_PID=""

    stop_proxy
    stop_cluster
    rm -rf "${RUNS:?}/$way"
    mkdir -p "$RUNS/$way"
    cp -a "$WORK/suite/results" "$RUNS/$way/" 2>/dev/null || mkdir "$RUNS/$way/results"
    local f
    for f in suite/regression.out suite/regression.diffs pg_regress.log postmaster.log proxy.log initdb.log; do
        [ -f "$WORK/$f" ] && cp "$WORK/$f" "$RUNS/$way/"
    done
    echo "$VERSION" >"$RUNS/$way/VERSION"
    rm -rf "$WORK"
    WORK=""

    local summary
    summary=$(grep -E '^(=+|#)? *(All [0-9]+ tests passed|[0-9]+ of [0-9]+ tests (failed|passed))' \
        "$RUNS/$way/pg_regress.log" | sed 's/^[=# ]*//; s/[= ]*$//' | head -1)
    [ -n "$summary" ] || summary="no summary (exit $rc), see $RUNS/$way/pg_regress.log"
    [ "$rc" -eq 124 ] && summary="timed out after ${TIMEOUT}s; $summary"
    log "$way: $((SECONDS - started))s, pg_regress: $summary"
}

# --- main ----------------------------------------------------------------------

setup_started=$SECONDS
fetch_source
build_libs
log "suite: $SRC/src/test/regress ($((SECONDS - setup_started))s setup)"
log "running: ${WAYS[*]}"
for way in "${WAYS[@]}"; do
    run_way "$way"
done

"$PYTHON" "$HERE/compare.py" --runs "$RUNS" --rules-dir "$REPO/policy/src/rules" \
    --inherent "$HERE/inherent.txt" "${WAYS[@]}"
