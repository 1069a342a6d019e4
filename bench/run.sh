#!/usr/bin/env bash
# What the guard costs, side by side with PgBouncer and a direct connection (issue 7).
#
#   bench/run.sh                  # full run (about 15 min on 2 cores once built):
#                                 #   writes bench/results.json and bench/RESULTS.md
#   bench/run.sh --quick          # 1 repetition of 2 s: a smoke test; writes to a temp
#                                 #   directory (printed), never over the published figures
#   bench/run.sh --reps 7 --duration 6    # more repetitions / longer runs
#   bench/run.sh --no-build       # measure the binaries already in the target directory
#
# Run as root on Debian bookworm with PostgreSQL 15 (what scripts/run.sh sets up). Not
# part of scripts/test.sh. Environment: CARGO_TARGET_DIR (default ./target), PG_BIN
# (default /usr/lib/postgresql/15/bin), SCALE (pgbench scale, default 10), BUSY_POLL_US (the
# --busy-poll-us of the fifth target, an unguarded proxy measured at -c 1 only; default 200).
#
# What it does, in this order:
#   1. installs PgBouncer and valgrind from Debian if they are missing (PgBouncer's system
#      service is not started);
#   2. builds the proxy and classify_bench in the release profile (what users run; fat LTO,
#      about 10 min from scratch on 2 quiet cores, 30 under load) and packages the extension;
#   3. starts a throwaway PG15 cluster in a temp directory (fsync, synchronous_commit and
#      full_page_writes off: the bench measures the hop, not the disk), PgBouncer 1.18 in
#      session mode and the proxy (`--upstream-tls disable`) in front of it; all of it is
#      stopped and removed on exit, Ctrl-C included;
#   4. pgbench -S in -M simple/extended/prepared and the TPC-B-like default script, at -c 1
#      (-j 1) and -c 16 (-j 2), through: direct, pgbouncer, proxy with an unguarded role,
#      proxy with a guarded role (safe_migrations.mode = enforce as a placeholder role
#      setting: the extension is NOT loaded for these runs); at -c 1 also through a second
#      proxy started with --busy-poll-us (unguarded role). Interleaved: every repetition
#      runs every workload through the targets one after the other.
#      Besides TPS and latency, PgBouncer's or the proxy's CPU time and context switches
#      per transaction (from /proc), which other load on the machine disturbs far less;
#   5. the hook: a pgbench script of safe utility statements (bench/hook.sql) at -c 1,
#      directly, with the extension not loaded (restart without shared_preload_libraries),
#      loaded with mode off, and loaded with mode enforce; interleaved the same way; TPS
#      and the backend's CPU time per transaction; then mode off and enforce at the same
#      time on the loaded server, each backend charged its own CPU (the drift between runs
#      hits both alike);
#      then the same script's instructions per transaction, counted by callgrind in one
#      backend per variant (bench/hook_instructions.py: a figure the machine's load does
#      not move, for the 2% budget that wall-clock figures here cannot resolve);
#   6. classification: statements/s of libpg_query parse + policy decision, one thread;
#   7. medians, ratios and the issue's targets: bench/report.py.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
target=$CARGO_TARGET_DIR
pg_bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
scale=${SCALE:-10}
busy_poll_us=${BUSY_POLL_US:-200}
reps=5
duration=4
quick=false
build=true

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=true; reps=1; duration=2 ;;
        --reps) reps=${2:?--reps needs a number}; shift ;;
        --duration) duration=${2:?--duration needs seconds}; shift ;;
        --no-build) build=false ;;
        -h|--help) usage ;;
        *) echo "bench/run.sh: unknown argument $1" >&2; usage ;;
    esac
    shift
done

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (the cluster and PgBouncer run as the postgres user via runuser)"
[ -x "$pg_bin/pgbench" ] || die "$pg_bin/pgbench not found (set PG_BIN)"
started=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 1. PgBouncer, valgrind -------------------------------------------------------
missing=()
command -v pgbouncer > /dev/null || missing+=(pgbouncer)
command -v callgrind_annotate > /dev/null || missing+=(valgrind)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} from Debian"
    # Debian starts a package's service on install unless policy-rc.d says no (101).
    own_policy=false
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=true
    fi
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q "${missing[@]}" >&2 \
        || { $own_policy && rm -f /usr/sbin/policy-rc.d; die "apt-get install ${missing[*]} failed"; }
    if $own_policy; then rm -f /usr/sbin/policy-rc.d; fi
fi

# --- 2. Builds --------------------------------------------------------------------
proxy_bin=$target/release/safe-migrations
package=$target/release/safe_migrations-package
extension_so=$package$("$pg_bin/pg_config" --pkglibdir)/safe_migrations.so
if $build; then
    log "building the proxy and classify_bench (release; a no-op when up to date)"
    cargo build --quiet --release -p safe-migrations --bin safe-migrations --example classify_bench
    log "packaging the extension (release)"
    (cd extension && cargo pgrx package --pg-config "$pg_bin/pg_config" --out-dir "$package" > /dev/null)
fi
for built in "$proxy_bin" "$target/release/examples/classify_bench" "$extension_so"; do
    [ -f "$built" ] || die "$built was not built (run without --no-build)"
done

# --- 3. Cluster, PgBouncer, proxy -------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/safe-migrations-bench.XXXXXX")
proxy_pid="" poll_pid=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in $proxy_pid $poll_pid; do
        kill "$pid" 2> /dev/null && wait "$pid" 2> /dev/null
    done
    [ -f "$work/pgbouncer.pid" ] && kill "$(cat "$work/pgbouncer.pid")" 2> /dev/null
    [ -f "$work/data/postmaster.pid" ] \
        && runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/data" stop -m immediate > /dev/null 2>&1
    if [ "$status" -ne 0 ]; then
        log "failed (exit $status); logs kept in $work/logs"
        find "$work" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$work/logs" "$work/sock" "$work/lib"
# The extension from this build, under a private path: an install by another run on
# this machine cannot swap it mid-bench. The hook needs only the preload (CREATE
# EXTENSION adds SQL functions the workload does not call).
install -m 0755 "$extension_so" "$work/lib/safe_migrations.so"
chown -R postgres:postgres "$work"
chmod 755 "$work"

as_postgres() { runuser -u postgres -- env -u RUST_BACKTRACE "$@"; }
read -r pg_port bouncer_port proxy_port poll_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')

log "starting PostgreSQL 15 on 127.0.0.1:$pg_port (data in $work/data)"
as_postgres "$pg_bin/initdb" -D "$work/data" -U postgres -A trust --no-sync > "$work/logs/initdb.log"
cat >> "$work/data/postgresql.conf" << EOF

# safe_migrations bench: a throwaway cluster
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$work/sock'
max_connections = 100
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
# No background workers that come and go: the hook section charges the backends by the
# CPU time of the postmaster's ended children.
autovacuum = off
include_if_exists = 'bench_preload.conf'
EOF

# with_extension true|false: restart with or without shared_preload_libraries.
with_extension() {
    if [ "$1" = true ]; then
        echo "shared_preload_libraries = '$work/lib/safe_migrations.so'" > "$work/data/bench_preload.conf"
    else
        : > "$work/data/bench_preload.conf"
    fi
    chown postgres:postgres "$work/data/bench_preload.conf"
    if [ -f "$work/data/postmaster.pid" ]; then
        as_postgres "$pg_bin/pg_ctl" -D "$work/data" -w -t 60 -m fast stop > /dev/null
    fi
    as_postgres "$pg_bin/pg_ctl" -D "$work/data" -w -t 60 -l "$work/logs/postgres.log" start > /dev/null
}
psql_admin() { "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$work/sock" -p "$pg_port" -U postgres "$@"; }

with_extension false
psql_admin -d postgres << 'EOF'
CREATE ROLE bench_owner NOLOGIN;
CREATE ROLE bench_plain LOGIN IN ROLE bench_owner;
CREATE ROLE bench_guarded LOGIN IN ROLE bench_owner;
ALTER ROLE bench_guarded SET safe_migrations.mode = 'enforce';
CREATE DATABASE bench OWNER bench_owner;
EOF
log "pgbench -i -s $scale"
"$pg_bin/pgbench" -i -q -s "$scale" -h "$work/sock" -p "$pg_port" -U postgres bench > "$work/logs/pgbench-init.log" 2>&1
psql_admin -d bench << 'EOF'
ALTER TABLE pgbench_accounts OWNER TO bench_owner;
ALTER TABLE pgbench_branches OWNER TO bench_owner;
ALTER TABLE pgbench_tellers OWNER TO bench_owner;
ALTER TABLE pgbench_history OWNER TO bench_owner;
CREATE TABLE hook_tiny (id int PRIMARY KEY, v text);
INSERT INTO hook_tiny SELECT g, 'row ' || g FROM generate_series(1, 10) g;
ALTER TABLE hook_tiny OWNER TO bench_owner;
VACUUM ANALYZE;
EOF

cat > "$work/userlist.txt" << 'EOF'
"bench_plain" ""
"bench_guarded" ""
EOF
cat > "$work/pgbouncer.ini" << EOF
[databases]
bench = host=127.0.0.1 port=$pg_port dbname=bench

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
unix_socket_dir =
auth_type = trust
auth_file = $work/userlist.txt
pool_mode = session
max_client_conn = 100
default_pool_size = 20
server_tls_sslmode = disable
ignore_startup_parameters = extra_float_digits
logfile = $work/logs/pgbouncer.log
pidfile = $work/pgbouncer.pid
EOF
chown postgres:postgres "$work/userlist.txt" "$work/pgbouncer.ini"
log "starting PgBouncer $(pgbouncer --version | head -1 | cut -d' ' -f2) on 127.0.0.1:$bouncer_port (session mode)"
as_postgres pgbouncer -d -q "$work/pgbouncer.ini"

log "starting the proxy on 127.0.0.1:$proxy_port"
SAFE_MIGRATIONS_LOG=warn "$proxy_bin" proxy --listen "127.0.0.1:$proxy_port" \
    --upstream "127.0.0.1:$pg_port" --upstream-tls disable 2> "$work/logs/proxy.log" &
proxy_pid=$!
log "starting the proxy with --busy-poll-us $busy_poll_us on 127.0.0.1:$poll_port (unguarded role, -c 1 only)"
SAFE_MIGRATIONS_LOG=warn "$proxy_bin" proxy --listen "127.0.0.1:$poll_port" --busy-poll-us "$busy_poll_us" \
    --upstream "127.0.0.1:$pg_port" --upstream-tls disable 2> "$work/logs/proxy-busy-poll.log" &
poll_pid=$!

export PGSSLMODE=disable PGDATABASE=bench
declare -A port_of=([direct]=$pg_port [pgbouncer]=$bouncer_port [proxy_unguarded]=$proxy_port [proxy_guarded]=$proxy_port
    [proxy_busy_poll]=$poll_port)
declare -A role_of=([direct]=bench_plain [pgbouncer]=bench_plain [proxy_unguarded]=bench_plain [proxy_guarded]=bench_guarded
    [proxy_busy_poll]=bench_plain)
targets=(direct pgbouncer proxy_unguarded proxy_guarded proxy_busy_poll)

for t in "${targets[@]}"; do
    for _ in $(seq 50); do
        "$pg_bin/psql" -X -Atq -h 127.0.0.1 -p "${port_of[$t]}" -U "${role_of[$t]}" -c 'SELECT 1' > /dev/null 2>&1 && break
        sleep 0.2
    done
    "$pg_bin/psql" -X -Atq -h 127.0.0.1 -p "${port_of[$t]}" -U "${role_of[$t]}" -c 'SELECT 1' > /dev/null \
        || die "cannot connect through $t"
done
# Whose CPU time a run is charged with (PgBouncer's pidfile exists once it accepts).
declare -A pid_of=([direct]=- [pgbouncer]=$(cat "$work/pgbouncer.pid") [proxy_unguarded]=$proxy_pid
    [proxy_guarded]=$proxy_pid [proxy_busy_poll]=$poll_pid)
# The guarded role is guarded through the proxy, and only there.
refusal=$("$pg_bin/psql" -X -Atq -h 127.0.0.1 -p "$proxy_port" -U bench_guarded \
    -c 'CREATE INDEX ON hook_tiny (v)' 2>&1 || true)
case $refusal in
    *create_index_non_concurrently*) ;;
    *) die "the proxy did not guard bench_guarded: $refusal" ;;
esac

samples=$work/samples.tsv
printf 'section\tworkload\tclients\ttarget\trep\ttps\tlatency_ms\tcpu_us_per_txn\tctx_switches_per_txn\n' \
    > "$samples"
ticks_per_s=$(getconf CLK_TCK)

# CPU time (user + system, clock ticks) and context switches of a process, all threads;
# for children:PID, the CPU time of PID's children that have ended (the postmaster's
# backends, once pgbench disconnects), and no context switches.
cpu_ticks() {
    case $1 in
        children:*) awk '{ print $16 + $17 }' "/proc/${1#children:}/stat" ;;
        *) awk '{ print $14 + $15 }' "/proc/$1/stat" ;;
    esac
}
ctx_switches() {
    case $1 in
        children:*) echo 0 ;;
        *) cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ { n += $2 } END { print n }' ;;
    esac
}

# bench SECTION WORKLOAD CLIENTS TARGET REP PORT ROLE MIDDLE_PID [pgbench options...]: one
# run, one row. MIDDLE_PID (PgBouncer, the proxy; children:<postmaster> for the backends;
# - for none) is charged its CPU time and context switches per transaction: a figure the
# machine's other load disturbs far less than TPS.
bench() {
    local section=$1 workload=$2 clients=$3 name=$4 rep=$5 port=$6 role=$7 pid=$8
    shift 8
    local jobs=1 out cpu0=0 ctx0=0 cpu1=0 ctx1=0
    [ "$clients" -gt 1 ] && jobs=2
    out=$work/logs/$section-$workload-c$clients-$name-$rep.log
    if [ "$pid" != - ]; then cpu0=$(cpu_ticks "$pid"); ctx0=$(ctx_switches "$pid"); fi
    if "$pg_bin/pgbench" -n -h 127.0.0.1 -p "$port" -U "$role" -c "$clients" -j "$jobs" -T "$duration" \
        "$@" bench > "$out" 2>&1; then
        # A backend's time reaches its parent's children total once it has exited and been reaped.
        case $pid in children:*) sleep 0.5 ;; esac
        if [ "$pid" != - ]; then cpu1=$(cpu_ticks "$pid"); ctx1=$(ctx_switches "$pid"); fi
        local tps latency txns cpu=nan ctx=nan
        tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out")
        latency=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$out")
        txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
        if [ "$pid" != - ] && [ "${txns:-0}" -gt 0 ]; then
            cpu=$(awk -v t=$((cpu1 - cpu0)) -v n="$txns" -v hz="$ticks_per_s" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
            ctx=$(awk -v c=$((ctx1 - ctx0)) -v n="$txns" 'BEGIN { printf "%.3f", c / n }')
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$section" "$workload" "$clients" "$name" "$rep" \
            "${tps:-nan}" "${latency:-nan}" "$cpu" "$ctx" >> "$samples"
        printf '  %-8s %-16s c%-2s %-16s tps %10.1f  latency %7.3f ms  cpu %s us/txn\n' "$section" "$workload" \
            "$clients" "$name" "${tps:-0}" "${latency:-0}" "$cpu" >&2
    else
        log "pgbench failed: $section $workload c$clients $name (rep $rep):"
        tail -5 "$out" >&2
        printf '%s\t%s\t%s\t%s\t%s\tnan\tnan\tnan\tnan\n' "$section" "$workload" "$clients" "$name" "$rep" \
            >> "$samples"
    fi
}

declare -A workload_args=(
    [select_simple]="-S -M simple"
    [select_extended]="-S -M extended"
    [select_prepared]="-S -M prepared"
    [tpcb_simple]="-M simple"
)
workloads=(select_simple select_extended select_prepared tpcb_simple)

# --- 4. Proxy overhead ------------------------------------------------------------
log "warming up the buffer cache"
"$pg_bin/pgbench" -n -S -T 2 -h 127.0.0.1 -p "$pg_port" -U bench_plain bench > /dev/null 2>&1
log "proxy overhead: ${#workloads[@]} workloads x 2 client counts x ${#targets[@]} targets x $reps reps x ${duration}s"
for rep in $(seq "$reps"); do
    cut -d' ' -f1 /proc/loadavg >> "$work/load.txt"
    for workload in "${workloads[@]}"; do
        for clients in 1 16; do
            if [ "$workload" = tpcb_simple ]; then
                # What pgbench does before a run unless -n; here once per workload, all targets alike.
                psql_admin -d bench -c 'VACUUM pgbench_branches, pgbench_tellers' -c 'TRUNCATE pgbench_history'
            fi
            for t in "${targets[@]}"; do
                # Busy-polling is for few clients (at 16 no session has its thread to itself).
                [ "$t" = proxy_busy_poll ] && [ "$clients" != 1 ] && continue
                # shellcheck disable=SC2086 # the options are words
                bench proxy "$workload" "$clients" "$t" "$rep" "${port_of[$t]}" "${role_of[$t]}" "${pid_of[$t]}" \
                    ${workload_args[$workload]}
            done
        done
    done
done

kill "$proxy_pid" "$poll_pid" 2> /dev/null && wait "$proxy_pid" "$poll_pid" 2> /dev/null || true
proxy_pid="" poll_pid=""
kill "$(cat "$work/pgbouncer.pid")" 2> /dev/null || true
rm -f "$work/pgbouncer.pid"

# --- 5. Hook cost -----------------------------------------------------------------
install -m 0644 -o postgres "$root/bench/hook.sql" "$work/hook.sql"
hook_run() { # VARIANT REP ROLE
    "$pg_bin/pgbench" -n -f "$work/hook.sql" -T 1 -h 127.0.0.1 -p "$pg_port" -U "$3" bench > /dev/null 2>&1 \
        || true # warm-up after the restart: catalog caches, the library's first use
    sleep 0.5 # its backend's CPU time is reaped before the measured run starts
    bench hook utility 1 "$1" "$2" "$pg_port" "$3" "children:$(head -1 "$work/data/postmaster.pid")" \
        -f "$work/hook.sql" -M simple
}
log "hook cost: 3 variants x $reps reps x ${duration}s, a restart per variant change"
for rep in $(seq "$reps"); do
    cut -d' ' -f1 /proc/loadavg >> "$work/load.txt"
    with_extension false
    hook_run not_loaded "$rep" bench_plain
    with_extension true
    if [ "$rep" = 1 ]; then
        mode=$("$pg_bin/psql" -X -Atq -h 127.0.0.1 -p "$pg_port" -U bench_guarded -c 'SHOW safe_migrations.mode')
        [ "$mode" = enforce ] || die "bench_guarded has safe_migrations.mode = '$mode' with the extension loaded"
        refusal=$("$pg_bin/psql" -X -Atq -h 127.0.0.1 -p "$pg_port" -U bench_guarded \
            -c 'CREATE INDEX ON hook_tiny (v)' 2>&1 || true)
        case $refusal in
            *create_index_non_concurrently*) ;;
            *) die "the hook did not guard bench_guarded: $refusal" ;;
        esac
    fi
    # Alternate which of the two loaded variants follows the restart.
    if [ $((rep % 2)) -eq 1 ]; then
        hook_run loaded_off "$rep" bench_plain
        hook_run loaded_enforce "$rep" bench_guarded
    else
        hook_run loaded_enforce "$rep" bench_guarded
        hook_run loaded_off "$rep" bench_plain
    fi
done
# The same two roles at the same time on the loaded server: the machine's drift between
# runs (±10% here) hits both alike, and each backend is charged its own CPU, read from /proc
# until it exits. Ratios per repetition: enforce / off.
backend_ticks() { # PID: the backend's user + system ticks, last read before it exits
    python3 -c '
import sys, time
path, last = f"/proc/{sys.argv[1]}/stat", "nan"
while True:
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        break
    last = int(fields[11]) + int(fields[12])
    time.sleep(0.002)
print(last)' "$1"
}
log "hook cost, both roles at once: $reps reps x ${duration}s"
for rep in $(seq "$reps"); do
    declare -A bench_pid=() ticks_file=()
    for role in bench_plain bench_guarded; do
        "$pg_bin/pgbench" -n -f "$work/hook.sql" -M simple -c 1 -T "$duration" -h 127.0.0.1 -p "$pg_port" \
            -U "$role" bench > "$work/logs/hook-paired-$role-$rep.log" 2>&1 &
        bench_pid[$role]=$!
    done
    sleep 0.3
    watchers=()
    for role in bench_plain bench_guarded; do
        pid=$(psql_admin -d postgres -Atc "SELECT pid FROM pg_stat_activity
            WHERE usename = '$role' AND backend_type = 'client backend'")
        ticks_file[$role]=$work/hook-paired-$role.ticks
        backend_ticks "$pid" > "${ticks_file[$role]}" &
        watchers+=($!)
    done
    wait "${bench_pid[bench_plain]}" "${bench_pid[bench_guarded]}" "${watchers[@]}" || true
    for role in bench_plain bench_guarded; do
        variant=loaded_off
        [ "$role" = bench_guarded ] && variant=loaded_enforce
        out=$work/logs/hook-paired-$role-$rep.log
        tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out")
        latency=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$out")
        txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
        cpu=$(awk -v t="$(cat "${ticks_file[$role]}")" -v n="${txns:-0}" -v hz="$ticks_per_s" \
            'BEGIN { if (n > 0 && t != "nan") printf "%.2f", t * 1e6 / hz / n; else print "nan" }')
        printf 'hook_paired\tutility\t1\t%s\t%s\t%s\t%s\t%s\tnan\n' "$variant" "$rep" "${tps:-nan}" \
            "${latency:-nan}" "$cpu" >> "$samples"
        printf '  %-8s %-16s c%-2s %-16s tps %10.1f  latency %7.3f ms  cpu %s us/txn\n' hook_pair utility 1 \
            "$variant" "${tps:-0}" "${latency:-0}" "$cpu" >&2
    done
done
pg_version=$("$pg_bin/psql" -X -Atq -h "$work/sock" -p "$pg_port" -U postgres -d postgres -c 'SHOW server_version')
as_postgres "$pg_bin/pg_ctl" -D "$work/data" -w -t 60 -m fast stop > /dev/null

# --- 5b. Hook cost in instructions ------------------------------------------------
# The budget is 2% and the wall-clock figures above move by ±10% between runs here:
# callgrind counts the backend's instructions, which the machine's load does not change.
instr_reps=3 instr_txns=40
$quick && instr_reps=1 instr_txns=10
log "hook cost in instructions: callgrind, $instr_reps reps x $instr_txns transactions"
python3 "$root/bench/hook_instructions.py" --pg-bin "$pg_bin" --lib "$work/lib/safe_migrations.so" \
    --reps "$instr_reps" --txns "$instr_txns" > "$work/logs/hook_instructions.json"

# --- 6. Classification ------------------------------------------------------------
log "classification (classify_bench)"
"$target/release/examples/classify_bench" > "$work/logs/classify.log"
cat "$work/logs/classify.log" >&2

# --- 7. Report --------------------------------------------------------------------
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
if $quick; then
    out_dir=$(mktemp -d "${TMPDIR:-/tmp}/safe-migrations-bench-quick.XXXXXX")
else
    out_dir=$root/bench
fi
commit=$(git rev-parse HEAD 2> /dev/null || echo unknown)
git diff --quiet HEAD 2> /dev/null || commit="$commit (with uncommitted changes)"
python3 "$root/bench/report.py" \
    --samples "$samples" \
    --classify "$work/logs/classify.log" \
    --hook-instructions "$work/logs/hook_instructions.json" \
    --out-dir "$out_dir" \
    --meta date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --meta cores="$(nproc)" \
    --meta cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
    --meta pg_version="$pg_version" \
    --meta pgbouncer_version="$(pgbouncer --version | head -1 | cut -d' ' -f2)" \
    --meta commit="$commit" \
    --meta scale="$scale" \
    --meta busy_poll_us="$busy_poll_us" \
    --meta reps="$reps" \
    --meta duration_s="$duration" \
    --meta quick="$quick" \
    --meta load_before="$load_before" \
    --meta load_after="$load_after" \
    --meta load_during="$(sort -n "$work/load.txt" | sed -n '1p;$p' | paste -sd' ')" \
    --meta wall_s="$(($(date +%s) - started))"
log "done in $(($(date +%s) - started)) s: $out_dir/results.json, $out_dir/RESULTS.md"
