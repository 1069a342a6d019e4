#!/usr/bin/env bash
# The stall the guard exists to prevent (issue 17), measured.
#
#   bench/stall.sh                 # about 2 min once built: writes bench/STALL.md and bench/stall.json
#   bench/stall.sh --duration 20   # seconds of application traffic per variant (default 16)
#   bench/stall.sh --no-build      # use the release binaries already built
#
# Run as root on Debian bookworm with PostgreSQL 15 (what scripts/run.sh sets up). Not
# part of scripts/test.sh. Environment: CARGO_TARGET_DIR (default ./target), PG_BIN, PROFILE
# (release, the default, or debug: the stalls are lock waits, which the build does not
# change, and a debug build is minutes instead of the release build's fat LTO).
#
# A throwaway cluster (the extension preloaded), pgbench's TPC-B-like traffic on
# pgbench_accounts (-c 8 -j 2, reads and writes), and a long transaction that holds ACCESS
# SHARE on pgbench_accounts for 3 s at a time with 1 s gaps (a report that reads the table
# in an open transaction). One second into the traffic (1 s into the first hold), a migration needs ACCESS
# EXCLUSIVE on the table (ALTER TABLE pgbench_accounts ADD COLUMN). Variants:
#   no_guard              the migration's role is not guarded: it queues behind the long
#                         transaction, and every query of the application queues behind it;
#   extension_no_retries  guarded by the extension, lock_timeout capped at 1 s, no retries;
#   extension_retries     the same with lock_retries = 6, lock_retry_delay = 300ms;
#   proxy_retries         guarded by the proxy (its config file), the same settings.
# Per variant: the application's worst stall (its slowest transaction), p99 latency and
# TPS over the run, and whether and when the migration completed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
target=$CARGO_TARGET_DIR
pg_bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
duration=16
build=true
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        --duration) duration=${2:?--duration needs seconds}; shift ;;
        --no-build) build=false ;;
        -h|--help) usage ;;
        *) echo "bench/stall.sh: unknown argument $1" >&2; usage ;;
    esac
    shift
done
log() { printf '[stall %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (the cluster runs as the postgres user via runuser)"
[ -x "$pg_bin/pgbench" ] || die "$pg_bin/pgbench not found (set PG_BIN)"
[ "$duration" -ge 8 ] 2> /dev/null || die "--duration must be a whole number of seconds, 8 or more"

profile=${PROFILE:-release}
case $profile in
    release) cargo_flag=(--release); pgrx_flag=() ;;
    debug) cargo_flag=(); pgrx_flag=(--debug) ;;
    *) die "PROFILE must be release or debug, not $profile" ;;
esac
proxy_bin=$target/$profile/safe-migrations
package=$target/$profile/safe_migrations-package
extension_so=$package$("$pg_bin/pg_config" --pkglibdir)/safe_migrations.so
if $build; then
    log "building the proxy and packaging the extension ($profile; a no-op when up to date)"
    cargo build --quiet "${cargo_flag[@]}" -p safe-migrations --bin safe-migrations
    (cd extension && cargo pgrx package "${pgrx_flag[@]}" --pg-config "$pg_bin/pg_config" --out-dir "$package" > /dev/null)
fi
for built in "$proxy_bin" "$extension_so"; do
    [ -f "$built" ] || die "$built was not built (run without --no-build)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/safe-migrations-stall.XXXXXX")
proxy_pid="" holder_pid=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in $proxy_pid $holder_pid; do
        kill "$pid" 2> /dev/null && wait "$pid" 2> /dev/null
    done
    [ -f "$work/data/postmaster.pid" ] \
        && runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/data" stop -m immediate > /dev/null 2>&1
    if [ "$status" -ne 0 ]; then
        log "failed (exit $status); logs kept in $work/logs"
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$work/logs" "$work/sock" "$work/lib" "$work/runs"
install -m 0755 "$extension_so" "$work/lib/safe_migrations.so"
chown -R postgres:postgres "$work"
chmod 755 "$work"
as_postgres() { runuser -u postgres -- env -u RUST_BACKTRACE "$@"; }
read -r pg_port proxy_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')

log "starting PostgreSQL 15 on 127.0.0.1:$pg_port, the extension preloaded"
as_postgres "$pg_bin/initdb" -D "$work/data" -U postgres -A trust --no-sync > "$work/logs/initdb.log"
cat >> "$work/data/postgresql.conf" << EOF

# safe_migrations stall bench: a throwaway cluster
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$work/sock'
max_connections = 50
fsync = off
synchronous_commit = off
full_page_writes = off
shared_preload_libraries = '$work/lib/safe_migrations.so'
log_min_messages = log
EOF
as_postgres "$pg_bin/pg_ctl" -D "$work/data" -w -t 60 -l "$work/logs/postgres.log" start > /dev/null
psql_admin() { "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$work/sock" -p "$pg_port" -U postgres "$@"; }
psql_admin -d postgres << 'EOF'
CREATE DATABASE bench;
CREATE ROLE app LOGIN;
CREATE ROLE no_guard LOGIN;
CREATE ROLE extension_no_retries LOGIN;
ALTER ROLE extension_no_retries SET safe_migrations.mode = 'enforce';
ALTER ROLE extension_no_retries SET safe_migrations.lock_timeout = '1s';
ALTER ROLE extension_no_retries SET safe_migrations.lock_retries = 0;
CREATE ROLE extension_retries LOGIN;
ALTER ROLE extension_retries SET safe_migrations.mode = 'enforce';
ALTER ROLE extension_retries SET safe_migrations.lock_timeout = '1s';
ALTER ROLE extension_retries SET safe_migrations.lock_retries = 6;
ALTER ROLE extension_retries SET safe_migrations.lock_retry_delay = '300ms';
CREATE ROLE proxy_retries LOGIN;
EOF
"$pg_bin/pgbench" -i -q -s 5 -h "$work/sock" -p "$pg_port" -U postgres bench > "$work/logs/pgbench-init.log" 2>&1
psql_admin -d bench << 'EOF'
CREATE ROLE migrators NOLOGIN;
GRANT migrators TO no_guard, extension_no_retries, extension_retries, proxy_retries;
ALTER TABLE pgbench_accounts OWNER TO migrators;
GRANT ALL ON pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history TO app;
EOF

# The proxy guards proxy_retries by its config file (the server's settings leave the
# role unguarded, so the extension does not guard it too).
cat > "$work/proxy.toml" << 'EOF'
[roles.proxy_retries]
mode = "enforce"
lock_timeout = "1s"
lock_retries = 6
lock_retry_delay = "300ms"
EOF
"$proxy_bin" proxy --listen "127.0.0.1:$proxy_port" --upstream "127.0.0.1:$pg_port" --upstream-tls disable \
    --config "$work/proxy.toml" > "$work/logs/proxy.log" 2>&1 &
proxy_pid=$!
for _ in $(seq 50); do
    "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$proxy_port" && break
    sleep 0.1
done

# The long transaction: reads the table in an open transaction for 3 s, then a 1 s gap.
holder() {
    local sql=""
    for _ in $(seq $((duration / 4 + 2))); do
        sql+="BEGIN; SELECT count(*) FROM pgbench_accounts WHERE aid = 1; SELECT pg_sleep(3); COMMIT; SELECT pg_sleep(1);"
    done
    "$pg_bin/psql" -X -q -h "$work/sock" -p "$pg_port" -U postgres -d bench -c "$sql" > /dev/null 2>&1 || true
}

variant() { # NAME PORT
    local name=$1 port=$2 run=$work/runs/$1
    mkdir -p "$run"
    chown postgres:postgres "$run"
    log "$name: $duration s of pgbench -c 8, the long transaction, the migration at 1 s"
    holder &
    holder_pid=$!
    (cd "$run" && "$pg_bin/pgbench" -n -c 8 -j 2 -T "$duration" -l -h "$work/sock" -p "$pg_port" -U app bench \
        > "$run/pgbench.out" 2>&1) &
    local bench_pid=$!
    sleep 1
    local start end status
    start=$(date +%s.%N)
    if "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$name" -d bench \
        -c "ALTER TABLE pgbench_accounts ADD COLUMN note_$name text" > "$run/migration.out" 2>&1; then
        status=completed
    else
        status=failed
    fi
    end=$(date +%s.%N)
    wait "$bench_pid" || true
    kill "$holder_pid" 2> /dev/null || true
    wait "$holder_pid" 2> /dev/null || true
    holder_pid=""
    printf '%s %s %s\n' "$status" "$start" "$end" > "$run/migration.status"
    psql_admin -d bench -c "ALTER TABLE pgbench_accounts DROP COLUMN IF EXISTS note_$name" > /dev/null
}

variant no_guard "$pg_port"
variant extension_no_retries "$pg_port"
variant extension_retries "$pg_port"
variant proxy_retries "$proxy_port"
grep -h "lock_timeout: attempt" "$work/logs/postgres.log" > "$work/logs/retries.log" || true
grep -h "lock_timeout: attempt" "$work/logs/proxy.log" | sed 's/\x1b\[[0-9;]*m//g' > "$work/logs/proxy-retries.log" || true

commit=$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)
python3 - "$work" "$duration" "$root/bench" "$profile" "$commit" << 'EOF'
import json, statistics, sys, time
from pathlib import Path

work, duration, out, profile, commit = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], sys.argv[5]
variants = ["no_guard", "extension_no_retries", "extension_retries", "proxy_retries"]
rows = []
for name in variants:
    run = work / "runs" / name
    latencies = []
    for log in run.glob("pgbench_log.*"):
        for line in log.read_text().split("\n"):
            fields = line.split()
            if len(fields) >= 3:
                latencies.append(int(fields[2]) / 1000.0)  # ms
    latencies.sort()
    status, start, end = (run / "migration.status").read_text().split()
    error = (run / "migration.out").read_text().strip().splitlines()
    rows.append({
        "variant": name,
        "transactions": len(latencies),
        "tps": round(len(latencies) / duration, 1),
        "worst_stall_ms": round(latencies[-1], 1) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1) if latencies else None,
        "migration": status,
        "migration_seconds": round(float(end) - float(start), 2),
        "migration_error": error[0] if error and status == "failed" else "",
    })
result = {
    "date": time.strftime("%Y-%m-%d %H:%M"),
    "commit": commit,
    "profile": profile,
    "duration_s": duration,
    "cap_ms": 1000,
    "target_worst_stall_ms": 1050,
    "variants": rows,
}
(out / "stall.json").write_text(json.dumps(result, indent=2) + "\n")
lines = [
    "# The stall benchmark (`bench/stall.sh`)",
    "",
    f"Run {result['date']} at commit {commit} on this 2-core machine ({profile} build): pgbench -c 8 (TPC-B-like, reads and writes of pgbench_accounts) "
    f"for {duration} s per variant; a long transaction holds ACCESS SHARE on pgbench_accounts for 3 s at a time with "
    "1 s gaps; 1 s into the first hold a migration runs `ALTER TABLE pgbench_accounts ADD COLUMN ...` (ACCESS EXCLUSIVE). Guarded "
    "variants cap lock_timeout at 1 s; retries: 6, the first after 300 ms. Target: with the guard, the worst stall "
    "at most the cap plus 50 ms.",
    "",
    "| variant | worst stall (ms) | p99 (ms) | TPS | migration | after (s) |",
    "|---|---|---|---|---|---|",
]
for row in rows:
    migration = row["migration"] + (f" ({row['migration_error']})" if row["migration_error"] else "")
    lines.append(f"| {row['variant']} | {row['worst_stall_ms']} | {row['p99_ms']} | {row['tps']} | {migration} | "
                 f"{row['migration_seconds']} |")
retries = (work / "logs" / "retries.log").read_text().strip().splitlines()
if retries:
    lines += ["", "The extension's retries, from the server log:", "", "```"] + [r[:300] for r in retries] + ["```"]
proxy_retries = (work / "logs" / "proxy-retries.log").read_text().strip().splitlines()
if proxy_retries:
    lines += ["", "The proxy's retries, from its log:", "", "```"] + [r[:300] for r in proxy_retries] + ["```"]
(out / "STALL.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
