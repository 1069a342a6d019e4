#!/usr/bin/env bash
# Set everything up and run it: a local PostgreSQL 15 with the extension loaded, a
# guarded role `migrator`, and the proxy in front. Ctrl-C stops both.
#
#   PGPORT_LOCAL  port of the local cluster  (default 54320)
#   PROXY_PORT    port of the proxy          (default 6432)
#   DATA_DIR      where the cluster lives    (default <repo>/.data; reused when present)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
pg_bin=/usr/lib/postgresql/15/bin
pg_port=${PGPORT_LOCAL:-54320}
proxy_port=${PROXY_PORT:-6432}
data_dir=${DATA_DIR:-$root/.data}
pgdata=$data_dir/pg
log() { printf '[run] %s\n' "$*" >&2; }

bash scripts/bootstrap.sh
log "building the extension and the proxy"
bash scripts/install-extension.sh
cargo build -p safe-migrations --bin safe-migrations

as_pg() { runuser -u postgres -- env -u RUST_BACKTRACE "$@"; }

mkdir -p "$data_dir/sock"
chown postgres:postgres "$data_dir" "$data_dir/sock"
if [ ! -f "$pgdata/PG_VERSION" ]; then
  log "initdb in $pgdata"
  rm -rf "$pgdata"
  as_pg "$pg_bin/initdb" -D "$pgdata" -U postgres --auth-local=trust --auth-host=trust -E UTF8 --locale=C >/dev/null
  cat >> "$pgdata/postgresql.conf" <<CONF
# safe_migrations quick start
listen_addresses = '127.0.0.1'
unix_socket_directories = '$data_dir/sock'
shared_preload_libraries = 'safe_migrations'
CONF
fi
# A postmaster left running by an earlier run (or a stale pid file) is stopped first.
as_pg "$pg_bin/pg_ctl" -D "$pgdata" stop -m fast >/dev/null 2>&1 || true
as_pg "$pg_bin/pg_ctl" -D "$pgdata" -l "$data_dir/postgres.log" -o "-p $pg_port" -w start >/dev/null
log "PostgreSQL 15 with safe_migrations preloaded on 127.0.0.1:$pg_port (log: $data_dir/postgres.log)"

proxy_pid=
stop() {
  trap - INT TERM EXIT
  log "stopping"
  if [ -n "$proxy_pid" ]; then kill -TERM "$proxy_pid" 2>/dev/null || true; wait "$proxy_pid" 2>/dev/null || true; fi
  rm -f "$data_dir/proxy.pid"
  as_pg "$pg_bin/pg_ctl" -D "$pgdata" stop -m fast >/dev/null 2>&1 || true
  log "stopped; data kept in $data_dir"
}
trap stop INT TERM EXIT

psql -X -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION IF NOT EXISTS safe_migrations;
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'migrator') THEN
    CREATE ROLE migrator LOGIN;
  END IF;
END $$;
GRANT CREATE ON SCHEMA public TO migrator;
ALTER ROLE migrator SET safe_migrations.mode = 'enforce';
ALTER ROLE migrator SET safe_migrations.lock_timeout = '3s';
CREATE TABLE IF NOT EXISTS t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, c int);
ALTER TABLE t OWNER TO migrator;
SQL

# A proxy left running by an earlier run (killed without its trap) is stopped first;
# any other listener on the port is an error, not something to connect to by mistake.
if [ -f "$data_dir/proxy.pid" ]; then
  kill -TERM "$(cat "$data_dir/proxy.pid")" 2>/dev/null || true
  sleep 0.5
  rm -f "$data_dir/proxy.pid"
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$proxy_port") 2>/dev/null; then
  log "port $proxy_port is already in use: stop what listens there or set PROXY_PORT"
  exit 1
fi
target_dir=${CARGO_TARGET_DIR:-$root/target}
"$target_dir/debug/safe-migrations" proxy --listen "127.0.0.1:$proxy_port" --upstream "127.0.0.1:$pg_port" &
proxy_pid=$!
echo "$proxy_pid" > "$data_dir/proxy.pid"
for _ in $(seq 1 100); do
  kill -0 "$proxy_pid" 2>/dev/null || { log "the proxy exited"; exit 1; }
  (exec 3<>"/dev/tcp/127.0.0.1/$proxy_port") 2>/dev/null && break
  sleep 0.1
done

cat <<INFO

  safe_migrations is running. From another shell:

    direct, enforced by the extension:
      psql "postgres://migrator@127.0.0.1:$pg_port/postgres"
    through the proxy (same rules, for servers without the extension):
      psql "postgres://migrator@127.0.0.1:$proxy_port/postgres"
    as superuser (unguarded):
      psql "postgres://postgres@127.0.0.1:$pg_port/postgres"

  Try, as migrator:   CREATE INDEX i ON t (c);               -- refused
                      CREATE INDEX CONCURRENTLY i ON t (c);  -- runs

  Ctrl-C stops the proxy and the cluster (data stays in $data_dir).

INFO
wait "$proxy_pid"
