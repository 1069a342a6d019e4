#!/usr/bin/env bash
# End-to-end scenarios that need real logins and several sessions: ALTER ROLE / ALTER
# DATABASE / PGOPTIONS routes, RESET ALL and DISCARD ALL, the lock_timeout cap behind a
# blocking transaction, warn-mode warnings, procedures that COMMIT, multi-statement
# strings, acknowledgements in the server log, and CREATE EXTENSION without preloading.
#
# Runs as root: installs the extension into the system PostgreSQL 15, starts a
# throwaway cluster as the postgres OS user, and always tears it down.
#   extension/tests/e2e.sh            # install, then run
#   SKIP_INSTALL=1 extension/tests/e2e.sh
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_CONFIG=${PG_CONFIG:-/usr/bin/pg_config}
HERE=$(cd "$(dirname "$0")/.." && pwd)

if [[ -z "${SKIP_INSTALL:-}" ]]; then
    PG_CONFIG="$PG_CONFIG" bash "$HERE/../scripts/install-extension.sh"
fi

WORK=$(mktemp -d /tmp/sm-e2e.XXXXXX)
chown postgres "$WORK"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_postgres() { env -u RUST_BACKTRACE runuser -u postgres -- "$@"; }
teardown() {
    as_postgres "$PG_BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap teardown EXIT

as_postgres "$PG_BIN/initdb" -D "$WORK/data" -A trust >/dev/null
cat >>"$WORK/data/postgresql.conf" <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
shared_preload_libraries = 'safe_migrations'
log_min_messages = log
EOF
as_postgres "$PG_BIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w start >/dev/null

# psql as a role: sql ROLE [psql args...]; stdout+stderr, never fails the script.
sql() {
    local role=$1
    shift
    as_postgres env ${PGOPTIONS_FOR:+PGOPTIONS="$PGOPTIONS_FOR"} "$PG_BIN/psql" -h "$WORK" -p "$PORT" \
        -U "$role" -d "${DB:-postgres}" -X -q -v VERBOSITY=verbose "$@" 2>&1 || true
}

FAILED=0
PASSED=0
# expect NAME OUTPUT PATTERN: OUTPUT must contain PATTERN (fixed string).
expect() {
    if grep -qF -- "$3" <<<"$2"; then
        PASSED=$((PASSED + 1))
        echo "ok   - $1"
    else
        FAILED=$((FAILED + 1))
        echo "FAIL - $1: expected to find: $3"
        sed 's/^/       | /' <<<"$2"
    fi
}
# reject NAME OUTPUT PATTERN: OUTPUT must not contain PATTERN.
reject() {
    if grep -qF -- "$3" <<<"$2"; then
        FAILED=$((FAILED + 1))
        echo "FAIL - $1: did not expect: $3"
        sed 's/^/       | /' <<<"$2"
    else
        PASSED=$((PASSED + 1))
        echo "ok   - $1"
    fi
}

sql postgres >/dev/null <<'EOF'
CREATE EXTENSION safe_migrations;
CREATE ROLE migrator LOGIN;
CREATE ROLE warner LOGIN;
CREATE ROLE app LOGIN;
CREATE DATABASE migrator_db OWNER migrator;
ALTER ROLE migrator SET safe_migrations.mode = 'enforce';
ALTER ROLE migrator SET safe_migrations.lock_timeout = '2s';
-- The cap alone: retries are tests/tests/lock_retry.rs's.
ALTER ROLE migrator SET safe_migrations.lock_retries = 0;
ALTER ROLE warner SET safe_migrations.mode = 'warn';
CREATE TABLE orders (id int PRIMARY KEY, c int, note text);
INSERT INTO orders SELECT g, g, 'n' FROM generate_series(1, 100) g;
CREATE TABLE u (id int);
CREATE UNIQUE INDEX u_id ON u (id);
INSERT INTO u VALUES (1);
ALTER TABLE orders OWNER TO migrator;
ALTER TABLE u OWNER TO migrator;
GRANT CREATE ON SCHEMA public TO migrator, warner, app;
GRANT migrator TO warner, app;
EOF

echo "# the guard"
out=$(sql migrator -c "CREATE INDEX i ON orders (c)")
expect "enforce: CREATE INDEX is refused with SM001" "$out" \
    "ERROR:  SM001: create_index_non_concurrently: CREATE INDEX i on orders without CONCURRENTLY blocks writes while the index builds"
expect "enforce: DETAIL names the lock" "$out" "DETAIL:  Lock: SHARE on orders, blocks writes."
expect "enforce: HINT is the CONCURRENTLY form" "$out" "    CREATE INDEX CONCURRENTLY i ON orders (c);"
out=$(sql migrator -c "CREATE INDEX CONCURRENTLY i ON orders (c)" -c "SELECT indexname FROM pg_indexes WHERE indexname = 'i'" \
    -c "DROP INDEX CONCURRENTLY i")
expect "enforce: CREATE INDEX CONCURRENTLY passes" "$out" " i"
reject "enforce: CREATE INDEX CONCURRENTLY passes without findings" "$out" "ERROR"

out=$(sql warner -c "CREATE INDEX w ON orders (c)" -c "SELECT count(*) AS built FROM pg_indexes WHERE indexname = 'w'" -c "DROP INDEX w")
expect "warn: the same text is a WARNING" "$out" \
    "WARNING:  SM001: create_index_non_concurrently: CREATE INDEX w on orders without CONCURRENTLY blocks writes while the index builds"
expect "warn: the statement runs" "$out" "     1"
out=$(sql app -c "CREATE INDEX a ON orders (c)" -c "DROP INDEX a")
reject "off: nothing reported" "$out" "SM001"

echo "# settings changed mid-session take effect at the next statement"
# (a row in st: an empty table is indexed at once, and passes)
out=$(sql postgres -c "CREATE TABLE st (c int)" -c "INSERT INTO st VALUES (1)" -c "SET safe_migrations.mode = enforce" \
    -c "CREATE INDEX st_0 ON st (c)" \
    -c "SET safe_migrations.allow = 'create_index_non_concurrently'" -c "CREATE INDEX st_a ON st (c)" \
    -c "BEGIN" -c "SET LOCAL safe_migrations.allow = ''" -c "CREATE INDEX st_x ON st (c)" -c "ROLLBACK" \
    -c "CREATE INDEX st_b ON st (c)" \
    -c "RESET safe_migrations.allow" -c "CREATE INDEX st_c ON st (c)" \
    -c "SET safe_migrations.mode = off" -c "CREATE INDEX st_d ON st (c)" \
    -c "SELECT string_agg(indexname, ',' ORDER BY indexname) AS built FROM pg_indexes WHERE tablename = 'st'" \
    -c "DROP TABLE st")
expect "SET mode, SET allow, SET LOCAL rolled back, RESET, mode off: each seen by the next statement" "$out" " st_a,st_b,st_d"
expect "SET LOCAL inside the transaction applied" "$out" "CREATE INDEX st_x on st without CONCURRENTLY"
expect "RESET applied" "$out" "CREATE INDEX st_c on st without CONCURRENTLY"

echo "# turning the guard off"
out=$(PGOPTIONS_FOR="-c safe_migrations.mode=off" sql migrator -c "SHOW safe_migrations.mode")
expect "PGOPTIONS cannot set the mode" "$out" "permission denied to set parameter \"safe_migrations.mode\""
out=$(DB=migrator_db sql migrator -c "ALTER DATABASE migrator_db SET safe_migrations.mode = off")
expect "ALTER DATABASE it owns cannot set the mode" "$out" "policy_change: a guarded role cannot change its safe_migrations settings"
out=$(sql migrator -c "ALTER ROLE migrator SET safe_migrations.mode = off")
expect "ALTER ROLE itself cannot set the mode" "$out" "policy_change: a guarded role cannot change its safe_migrations settings"
out=$(sql migrator -c "SET safe_migrations.mode = off")
expect "SET cannot set the mode" "$out" "policy_change: a guarded role cannot change its safe_migrations settings"
out=$(sql migrator -c "RESET ALL" -c "SHOW safe_migrations.mode" -c "DISCARD ALL" -c "SHOW safe_migrations.mode" -c "CREATE INDEX i ON orders (c)")
expect "RESET ALL / DISCARD ALL keep the role's mode" "$out" "SM001: create_index_non_concurrently"
reject "RESET ALL / DISCARD ALL do not turn it off" "$out" " off"
out=$(sql migrator -c "SET ROLE app" -c "CREATE INDEX i ON orders (c)")
expect "SET ROLE to an unguarded role keeps the guard" "$out" "SM001: create_index_non_concurrently"

echo "# where DDL runs"
out=$(sql migrator -c "SELECT 1; CREATE INDEX CONCURRENTLY i ON orders (c)")
expect "multi-statement string: CONCURRENTLY is refused before it runs" "$out" "ERROR:  25001: concurrently_in_transaction"
out=$(sql migrator -c "SELECT 1; CREATE INDEX i ON orders (c)")
expect "multi-statement string: each statement is judged" "$out" "SM001: create_index_non_concurrently"
out=$(sql migrator -c "/* up; down */ CREATE INDEX CONCURRENTLY semi ON orders (c); -- down: DROP INDEX semi; then VACUUM" \
    -c "SELECT count(*) AS semi_built FROM pg_indexes WHERE indexname = 'semi'" -c "DROP INDEX semi")
expect "semicolons in comments are not other statements" "$out" "     1"
reject "semicolons in comments are not other statements (no refusal)" "$out" "concurrently_in_transaction"
out=$(sql migrator <<'EOF'
CREATE PROCEDURE migrate() LANGUAGE plpgsql AS $$ BEGIN COMMIT; CREATE INDEX i ON orders (c); END $$;
CALL migrate();
EOF
)
expect "procedure with COMMIT inside is guarded" "$out" "SM001: create_index_non_concurrently"
out=$(sql migrator -c "DO \$\$ BEGIN EXECUTE 'CREATE INDEX i ON orders (c)'; END \$\$")
expect "DO with EXECUTE is guarded" "$out" "SM001: create_index_non_concurrently"

echo "# error fields"
unguarded=$(sql app -c "DO \$\$ BEGIN INSERT INTO u VALUES (1); END \$\$")
guarded=$(sql migrator -c "DO \$\$ BEGIN INSERT INTO u VALUES (1); END \$\$")
expect "unique violation in DO keeps CONTEXT" "$guarded" 'CONTEXT:  SQL statement "INSERT INTO u VALUES (1)"'
expect "unique violation in DO keeps the constraint name" "$guarded" "CONSTRAINT NAME:  u_id"
if [[ "$guarded" == "$unguarded" ]]; then
    PASSED=$((PASSED + 1))
    echo "ok   - error fields identical with and without the guard"
else
    FAILED=$((FAILED + 1))
    echo "FAIL - error fields differ"
    diff <(echo "$unguarded") <(echo "$guarded") || true
fi

echo "# lock_timeout"
sql postgres -c "BEGIN; LOCK TABLE orders IN ACCESS SHARE MODE; SELECT pg_sleep(8); COMMIT;" >/dev/null &
BLOCKER=$!
sleep 1
start=$(date +%s.%N)
out=$(sql migrator -c "SET lock_timeout = 0" -c "SELECT set_config('lock_timeout', '0', false)" \
    -c "ALTER TABLE orders ADD COLUMN capped int" -c "SHOW lock_timeout")
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
expect "guarded ALTER TABLE behind a lock fails with lock_not_available" "$out" \
    "ERROR:  55P03: lock_timeout: gave up waiting for ACCESS EXCLUSIVE on orders after 1 attempt, each capped at 2s"
expect "the session's own lock_timeout is restored" "$out" $'lock_timeout \n--------------\n 0'
if (($(echo "$elapsed >= 1.8 && $elapsed < 4" | bc))); then
    PASSED=$((PASSED + 1))
    echo "ok   - it failed after about the 2s cap (${elapsed}s)"
else
    FAILED=$((FAILED + 1))
    echo "FAIL - expected about 2s, took ${elapsed}s"
fi
start=$(date +%s.%N)
out=$(sql app -c "SET lock_timeout = 0" -c "ALTER TABLE orders ADD COLUMN waited int")
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
wait "$BLOCKER"
reject "unguarded ALTER TABLE waits as before" "$out" "ERROR"
if (($(echo "$elapsed >= 4" | bc))); then
    PASSED=$((PASSED + 1))
    echo "ok   - the unguarded role waited for the blocker (${elapsed}s)"
else
    FAILED=$((FAILED + 1))
    echo "FAIL - the unguarded role did not wait (${elapsed}s)"
fi

echo "# acknowledgements"
# psql drops a "--" comment that precedes a statement; a block comment reaches the server.
out=$(sql migrator <<'EOF'
/* safe_migrations:allow drop_column -- note is unused since v2 */
ALTER TABLE orders DROP COLUMN note;
EOF
)
expect "acknowledged drop_column runs with a NOTICE" "$out" "NOTICE:  00000: safe_migrations: drop_column acknowledged: note is unused since v2"
sleep 0.5
expect "acknowledgement logged with role and reason" "$(cat "$WORK/server.log")" \
    'LOG:  safe_migrations: role "migrator" acknowledged drop_column: note is unused since v2'

echo "# CREATE EXTENSION without preloading"
sed -i "s/^shared_preload_libraries = 'safe_migrations'/shared_preload_libraries = ''/" "$WORK/data/postgresql.conf"
as_postgres "$PG_BIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w restart >/dev/null
out=$(DB=migrator_db sql postgres -c "CREATE EXTENSION safe_migrations" -c "SELECT safe_migrations.guard_active()")
expect "CREATE EXTENSION warns that the guard is not active" "$out" \
    "WARNING:  01000: safe_migrations: the guard is not active: the library is not in shared_preload_libraries"

echo
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
