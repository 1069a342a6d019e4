//! Migration tools that cannot be installed here, replayed message by message as their
//! drivers put them on the wire, against a guarded role through the extension and
//! through the proxy:
//! - Ecto (Postgrex): Parse+Describe+Flush, then Bind+Execute+Sync, named statements for
//!   its own queries, a second session holding `LOCK TABLE "schema_migrations" IN SHARE
//!   UPDATE EXCLUSIVE MODE` while each migration runs (but the one with
//!   `@disable_migration_lock`, as Ecto advises for CONCURRENTLY);
//! - Prisma (`migrate deploy`, tokio-postgres): the whole migration file as one simple
//!   Query between `pg_advisory_lock(72707369)` and its unlock, `_prisma_migrations`
//!   bookkeeping with prepared statements;
//! - golang-migrate (lib/pq): the multi-statement file as one simple Query, the dirty
//!   flag set before and cleared after, `pg_advisory_lock($1)`.
//!
//! In each, the unsafe migration is stopped with the rule's message and leaves no
//! change, and the safe one leaves the schema exactly as intended.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use e2e::tools::report;
use e2e::{Auth, Cluster, ClusterOptions, Proxy};
use postgres::{Client, NoTls};

const CREATE_INDEX_REFUSED: &str = "create_index_non_concurrently: CREATE INDEX accounts_email_index on accounts \
                                    without CONCURRENTLY blocks writes while the index builds";

/// Where a replay connects: straight to a cluster with the extension, or to the proxy in
/// front of one without it. Trust authentication, so the raw clients need no SCRAM.
struct Target {
    cluster: Cluster,
    port: u16,
    route: &'static str,
    _proxy: Option<Proxy>,
}

impl Target {
    fn both() -> [Target; 2] {
        let trust = |extension| {
            let cluster = Cluster::start_with(ClusterOptions {
                extension,
                auth: Auth::Trust,
                ..ClusterOptions::default()
            });
            cluster.create_role("migrator", &[("mode", "enforce")]);
            cluster
        };
        let direct = trust(true);
        let behind = trust(false);
        let proxy = Proxy::start(&behind, &[]);
        [
            Target {
                port: direct.port(),
                cluster: direct,
                route: "extension",
                _proxy: None,
            },
            Target {
                port: proxy.port(),
                cluster: behind,
                route: "proxy",
                _proxy: Some(proxy),
            },
        ]
    }

    fn url(&self) -> String {
        format!("postgres://migrator@127.0.0.1:{}/postgres", self.port)
    }

    /// `accounts` and the tool's bookkeeping (`bookkeeping` yields one text column), one
    /// line each, read as superuser on the server itself.
    fn schema(&self, bookkeeping: &str) -> String {
        let sql = format!(
            "SELECT line FROM (
                SELECT 1 AS part, ordinal_position AS position, 'column ' || column_name || ' ' || data_type
                    || CASE WHEN is_nullable = 'NO' THEN ' not null' ELSE '' END AS line
                FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'accounts'
                UNION ALL
                SELECT 2, 0, 'index ' || pg_get_indexdef(indexrelid)
                    || CASE WHEN indisvalid THEN '' ELSE ' INVALID' END
                FROM pg_index WHERE indrelid = 'public.accounts'::regclass
                UNION ALL
                SELECT 3, 0, * FROM ({bookkeeping}) bookkeeping
            ) schema ORDER BY part, position, line"
        );
        self.cluster.execute(&self.cluster.superuser_url(), &sql)
    }
}

// ---------------------------------------------------------------------------------------
// A frontend that writes protocol messages one at a time.

/// The fields of an ErrorResponse a migration tool shows.
#[derive(Debug, Clone, PartialEq)]
struct ServerError {
    code: String,
    message: String,
    detail: Option<String>,
    hint: Option<String>,
}

impl std::fmt::Display for ServerError {
    /// As libpq-based tools print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ERROR:  {} (SQLSTATE {})", self.message, self.code)?;
        if let Some(detail) = &self.detail {
            write!(f, "\nDETAIL:  {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\nHINT:  {hint}")?;
        }
        Ok(())
    }
}

type Rows = Vec<Vec<Option<String>>>;

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstring(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
    out.push(0);
}

fn query(sql: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstring(&mut body, sql);
    message(b'Q', &body)
}

fn parse(statement: &str, sql: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstring(&mut body, statement);
    cstring(&mut body, sql);
    body.extend_from_slice(&0i16.to_be_bytes());
    message(b'P', &body)
}

fn describe_statement(statement: &str) -> Vec<u8> {
    let mut body = vec![b'S'];
    cstring(&mut body, statement);
    message(b'D', &body)
}

/// Bind the unnamed portal to `statement` with text parameters.
fn bind(statement: &str, params: &[&str]) -> Vec<u8> {
    let mut body = Vec::new();
    cstring(&mut body, "");
    cstring(&mut body, statement);
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&(params.len() as i16).to_be_bytes());
    for param in params {
        body.extend_from_slice(&(param.len() as i32).to_be_bytes());
        body.extend_from_slice(param.as_bytes());
    }
    body.extend_from_slice(&0i16.to_be_bytes());
    message(b'B', &body)
}

fn execute() -> Vec<u8> {
    message(b'E', &[0, 0, 0, 0, 0])
}

fn close_statement(statement: &str) -> Vec<u8> {
    let mut body = vec![b'S'];
    cstring(&mut body, statement);
    message(b'C', &body)
}

fn flush() -> Vec<u8> {
    message(b'H', &[])
}

fn sync() -> Vec<u8> {
    message(b'S', &[])
}

struct Wire {
    stream: TcpStream,
    /// What the last `send` wrote, for the failure message when no answer comes.
    sent: String,
    /// Named statements prepared on this session (Postgrex's query cache).
    prepared: Vec<String>,
}

impl Wire {
    /// Log in as `user` (trust) and wait for the first ReadyForQuery.
    fn connect(port: u16, user: &str) -> Wire {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("set read timeout");
        let mut wire = Wire {
            stream,
            sent: "the startup packet".into(),
            prepared: Vec::new(),
        };
        let mut body = 196_608i32.to_be_bytes().to_vec();
        for (key, value) in [("user", user), ("database", "postgres")] {
            cstring(&mut body, key);
            cstring(&mut body, value);
        }
        body.push(0);
        let mut startup = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        startup.extend_from_slice(&body);
        wire.stream.write_all(&startup).expect("send startup");
        wire.until_ready().expect("login");
        wire
    }

    fn send(&mut self, messages: &[Vec<u8>]) {
        self.sent = String::from_utf8_lossy(&messages.concat()).into_owned();
        self.stream.write_all(&messages.concat()).expect("send");
    }

    /// The next backend message; a silence of 20s means the exchange hangs.
    fn recv(&mut self) -> (u8, Vec<u8>) {
        let mut head = [0u8; 5];
        if let Err(error) = self.stream.read_exact(&mut head) {
            panic!("no answer within 20s ({error}) after sending {:?}", self.sent);
        }
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        self.stream.read_exact(&mut body).expect("message body");
        (head[0], body)
    }

    /// Read up to ReadyForQuery: the rows of the exchange, or its first error.
    fn until_ready(&mut self) -> Result<Rows, ServerError> {
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.recv() {
                (b'Z', _) => return error.map_or(Ok(rows), Err),
                (b'E', body) => {
                    error.get_or_insert(error_fields(&body));
                }
                (b'D', body) => rows.push(data_row(&body)),
                _ => {}
            }
        }
    }

    /// Read up to the answer to a Describe that ends a Parse+Describe+Flush; on an error,
    /// Sync and wait for ReadyForQuery, as drivers do.
    fn until_described(&mut self) -> Result<(), ServerError> {
        loop {
            match self.recv() {
                (b'T' | b'n', _) => return Ok(()),
                (b'E', body) => {
                    let error = error_fields(&body);
                    self.send(&[sync()]);
                    let _ = self.until_ready();
                    return Err(error);
                }
                (b'Z', _) => panic!("ReadyForQuery before the Describe was answered"),
                _ => {}
            }
        }
    }

    fn simple(&mut self, sql: &str) -> Result<Rows, ServerError> {
        self.send(&[query(sql)]);
        self.until_ready()
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        let _ = self.stream.write_all(&message(b'X', &[]));
    }
}

fn error_fields(body: &[u8]) -> ServerError {
    let mut error = ServerError {
        code: String::new(),
        message: String::new(),
        detail: None,
        hint: None,
    };
    for field in body.split(|byte| *byte == 0).filter(|field| !field.is_empty()) {
        let value = String::from_utf8_lossy(&field[1..]).into_owned();
        match field[0] {
            b'C' => error.code = value,
            b'M' => error.message = value,
            b'D' => error.detail = Some(value),
            b'H' => error.hint = Some(value),
            _ => {}
        }
    }
    error
}

fn data_row(body: &[u8]) -> Vec<Option<String>> {
    let columns = i16::from_be_bytes([body[0], body[1]]);
    let mut at = 2;
    (0..columns)
        .map(|_| {
            let len = i32::from_be_bytes(body[at..at + 4].try_into().unwrap());
            at += 4;
            if len < 0 {
                return None;
            }
            let value = String::from_utf8_lossy(&body[at..at + len as usize]).into_owned();
            at += len as usize;
            Some(value)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Ecto

/// What Postgrex sends for Ecto.
impl Wire {
    /// `Ecto.Adapters.SQL.query/4` (migration DDL, the lock): an unnamed statement,
    /// Parse+Describe+Flush, then Bind+Execute+Close+Sync.
    fn postgrex_unnamed(&mut self, sql: &str, params: &[&str]) -> Result<Rows, ServerError> {
        self.send(&[parse("", sql), describe_statement(""), flush()]);
        self.until_described()?;
        self.send(&[bind("", params), execute(), close_statement(""), sync()]);
        self.until_ready()
    }

    /// A cached repo query (the schema_migrations SELECT and INSERT): the first time,
    /// Close+Parse+Describe+Flush of a named statement; then Bind+Execute+Sync, the
    /// statement dropped from the cache when that fails.
    fn postgrex_named(&mut self, name: &str, sql: &str, params: &[&str]) -> Result<Rows, ServerError> {
        if !self.prepared.iter().any(|prepared| prepared == name) {
            self.send(&[
                close_statement(name),
                parse(name, sql),
                describe_statement(name),
                flush(),
            ]);
            self.until_described()?;
            self.prepared.push(name.to_string());
        }
        self.send(&[bind(name, params), execute(), sync()]);
        let result = self.until_ready();
        if result.is_err() {
            self.prepared.retain(|prepared| prepared != name);
        }
        result
    }
}

struct EctoMigration {
    version: &'static str,
    /// `@disable_ddl_transaction true` when false.
    ddl_transaction: bool,
    /// `@disable_migration_lock true` when false: Ecto's documented companion of
    /// CONCURRENTLY, whose build would otherwise wait for the lock's open transaction.
    migration_lock: bool,
    statements: &'static [&'static str],
}

const ECTO_CREATE_ACCOUNTS: EctoMigration = EctoMigration {
    version: "20240101000001",
    ddl_transaction: true,
    migration_lock: true,
    // A row, as a table in use has: an empty table is indexed at once, and passes.
    statements: &[
        r#"CREATE TABLE "accounts" ("id" bigserial, "name" varchar(255) NOT NULL, PRIMARY KEY ("id"))"#,
        r#"INSERT INTO "accounts" ("name") VALUES ('first')"#,
    ],
};

/// `ecto.migrate`: for each migration, the lock session takes Ecto's table lock in a
/// transaction and reads the applied versions, the runner session applies the migration
/// if pending (in a transaction with its bookkeeping row unless the DDL transaction is
/// disabled), then the lock's transaction ends.
fn ecto_migrate(port: u16, migrations: &[EctoMigration]) -> Result<(), ServerError> {
    let mut runner = Wire::connect(port, "migrator");
    runner.postgrex_unnamed(
        r#"CREATE TABLE IF NOT EXISTS "schema_migrations" ("version" bigint, "inserted_at" timestamp(0), PRIMARY KEY ("version"))"#,
        &[],
    )?;
    let mut lock = Wire::connect(port, "migrator");
    for migration in migrations {
        if migration.migration_lock {
            lock.simple("BEGIN")?;
            lock.postgrex_unnamed(r#"LOCK TABLE "schema_migrations" IN SHARE UPDATE EXCLUSIVE MODE"#, &[])?;
        }
        let applied = lock.postgrex_named(
            "ecto_1",
            r#"SELECT s0."version"::bigint FROM "schema_migrations" AS s0"#,
            &[],
        )?;
        let outcome = if applied.iter().any(|row| row[0].as_deref() == Some(migration.version)) {
            Ok(())
        } else {
            ecto_run(&mut runner, migration)
        };
        if migration.migration_lock {
            lock.simple(if outcome.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
        }
        outcome?;
    }
    Ok(())
}

fn ecto_run(runner: &mut Wire, migration: &EctoMigration) -> Result<(), ServerError> {
    if migration.ddl_transaction {
        runner.simple("BEGIN")?;
    }
    let applied = migration
        .statements
        .iter()
        .try_for_each(|sql| runner.postgrex_unnamed(sql, &[]).map(drop))
        .and_then(|()| {
            runner.postgrex_named(
                "ecto_insert_schema_migrations",
                r#"INSERT INTO "schema_migrations" ("version","inserted_at") VALUES ($1,$2)"#,
                &[migration.version, "2024-01-01 00:00:00"],
            )
        });
    match applied {
        Ok(_) if migration.ddl_transaction => runner.simple("COMMIT").map(drop),
        Ok(_) => Ok(()),
        Err(error) => {
            if migration.ddl_transaction {
                runner.simple("ROLLBACK")?;
            }
            Err(error)
        }
    }
}

#[test]
fn ecto_create_index_is_stopped_and_the_concurrent_index_applies() {
    for target in Target::both() {
        let route = target.route;
        // One deploy creates the table, a later one brings the unsafe migration.
        ecto_migrate(target.port, &[ECTO_CREATE_ACCOUNTS]).unwrap_or_else(|error| panic!("{route}: {error}"));
        let error = ecto_migrate(
            target.port,
            &[
                ECTO_CREATE_ACCOUNTS,
                EctoMigration {
                    version: "20240101000002",
                    ddl_transaction: true,
                    migration_lock: true,
                    statements: &[
                        r#"ALTER TABLE "accounts" ADD COLUMN "email" varchar(255)"#,
                        r#"CREATE INDEX "accounts_email_index" ON "accounts" ("email")"#,
                    ],
                },
            ],
        )
        .expect_err(route);
        assert_eq!(error.code, "SM001", "{route}: {error}");
        assert_eq!(error.message, CREATE_INDEX_REFUSED, "{route}");
        let bookkeeping = "SELECT 'applied ' || version FROM schema_migrations";
        assert_eq!(
            target.schema(bookkeeping),
            "column id bigint not null\n\
             column name character varying not null\n\
             index CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)\n\
             applied 20240101000001\n",
            "{route}: the refused migration left a change behind"
        );

        ecto_migrate(
            target.port,
            &[
                ECTO_CREATE_ACCOUNTS,
                EctoMigration {
                    version: "20240101000003",
                    ddl_transaction: true,
                    migration_lock: true,
                    statements: &[r#"ALTER TABLE "accounts" ADD COLUMN "email" varchar(255)"#],
                },
                EctoMigration {
                    version: "20240101000004",
                    ddl_transaction: false,
                    migration_lock: false,
                    statements: &[r#"CREATE INDEX CONCURRENTLY "accounts_email_index" ON "accounts" ("email")"#],
                },
            ],
        )
        .unwrap_or_else(|error| panic!("{route}: {error}"));
        assert_eq!(
            target.schema(bookkeeping),
            "column id bigint not null\n\
             column name character varying not null\n\
             column email character varying\n\
             index CREATE INDEX accounts_email_index ON public.accounts USING btree (email)\n\
             index CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)\n\
             applied 20240101000001\n\
             applied 20240101000003\n\
             applied 20240101000004\n",
            "{route}"
        );
    }
    report("tool ecto (wire replay): pass");
}

// ---------------------------------------------------------------------------------------
// Prisma

/// Prisma's schema engine uses tokio-postgres: `raw_cmd` is a simple Query, other
/// queries are prepared statements with parameters.
const PRISMA_LOCK: &str = "SELECT pg_advisory_lock(72707369)";
const PRISMA_UNLOCK: &str = "SELECT pg_advisory_unlock(72707369)";
const PRISMA_MIGRATIONS_TABLE: &str = r#"CREATE TABLE "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
);"#;

/// `prisma migrate deploy` over `migrations` (name, file): each pending file is
/// recorded as started, sent whole as one simple Query, then recorded as finished, or
/// its error recorded in `logs` and the deploy stopped.
fn prisma_migrate_deploy(url: &str, migrations: &[(&str, &str)]) -> Result<(), String> {
    let mut client = Client::connect(url, NoTls).map_err(|e| e.to_string())?;
    client.simple_query(PRISMA_LOCK).map_err(|e| e.to_string())?;
    let outcome = prisma_apply_pending(&mut client, migrations);
    client.simple_query(PRISMA_UNLOCK).map_err(|e| e.to_string())?;
    outcome
}

fn prisma_apply_pending(client: &mut Client, migrations: &[(&str, &str)]) -> Result<(), String> {
    let exists = client
        .query_one("SELECT to_regclass('\"_prisma_migrations\"') IS NOT NULL", &[])
        .map_err(|e| e.to_string())?;
    if !exists.get::<_, bool>(0) {
        client
            .simple_query(PRISMA_MIGRATIONS_TABLE)
            .map_err(|e| e.to_string())?;
    }
    let recorded = client
        .query(
            r#"SELECT "migration_name", "finished_at" IS NOT NULL, "rolled_back_at" IS NOT NULL
               FROM "_prisma_migrations" ORDER BY "started_at" ASC"#,
            &[],
        )
        .map_err(|e| e.to_string())?;
    if let Some(failed) = recorded
        .iter()
        .find(|row| !row.get::<_, bool>(1) && !row.get::<_, bool>(2))
    {
        return Err(format!(
            "Error: P3009 migrate found failed migrations in the target database: `{}`",
            failed.get::<_, String>(0)
        ));
    }
    let pending = migrations.iter().filter(|(name, _)| {
        !recorded
            .iter()
            .any(|row| row.get::<_, String>(0) == *name && row.get::<_, bool>(1))
    });
    for (serial, (name, script)) in (recorded.len()..).zip(pending) {
        let id = format!("00000000-0000-4000-8000-{serial:012}");
        client
            .execute(
                r#"INSERT INTO "_prisma_migrations" ("id", "checksum", "started_at", "migration_name")
                   VALUES ($1, $2, now(), $3)"#,
                &[&id, &format!("{:064x}", script.len()), name],
            )
            .map_err(|e| e.to_string())?;
        match client.simple_query(script) {
            Ok(_) => {
                client
                    .execute(
                        r#"UPDATE "_prisma_migrations" SET "applied_steps_count" = "applied_steps_count" + 1 WHERE "id" = $1"#,
                        &[&id],
                    )
                    .map_err(|e| e.to_string())?;
                client
                    .execute(
                        r#"UPDATE "_prisma_migrations" SET "finished_at" = now() WHERE "id" = $1"#,
                        &[&id],
                    )
                    .map_err(|e| e.to_string())?;
            }
            Err(error) => {
                let logs = error
                    .as_db_error()
                    .map(|db| db.message().to_string())
                    .unwrap_or_else(|| error.to_string());
                client
                    .execute(
                        r#"UPDATE "_prisma_migrations" SET "logs" = $1 WHERE "id" = $2"#,
                        &[&logs, &id],
                    )
                    .map_err(|e| e.to_string())?;
                return Err(format!(
                    "Error: P3018 A migration failed to apply.\nMigration name: {name}\nDatabase error: {logs}"
                ));
            }
        }
    }
    Ok(())
}

/// `prisma migrate resolve --rolled-back <name>`.
fn prisma_resolve_rolled_back(url: &str, name: &str) {
    let mut client = Client::connect(url, NoTls).unwrap();
    client
        .execute(
            r#"UPDATE "_prisma_migrations" SET "rolled_back_at" = now()
               WHERE "migration_name" = $1 AND "rolled_back_at" IS NULL"#,
            &[&name],
        )
        .unwrap();
}

const PRISMA_INIT: (&str, &str) = (
    "20240101000001_init",
    "-- CreateTable\nCREATE TABLE \"accounts\" (\n    \"id\" SERIAL NOT NULL,\n    \"name\" TEXT NOT NULL,\n\n    \
     CONSTRAINT \"accounts_pkey\" PRIMARY KEY (\"id\")\n);\n\nINSERT INTO \"accounts\" (\"name\") VALUES ('first');\n",
);

#[test]
fn prisma_whole_file_with_create_index_is_stopped_and_nothing_of_it_applies() {
    let bookkeeping = r#"SELECT 'migration ' || migration_name || ' steps ' || applied_steps_count
        || CASE WHEN finished_at IS NULL THEN ' unfinished' ELSE ' finished' END
        || CASE WHEN rolled_back_at IS NULL THEN '' ELSE ' rolled back' END
        || coalesce(' logs: ' || logs, '') FROM "_prisma_migrations""#;
    for target in Target::both() {
        let route = target.route;
        let url = target.url();
        let unsafe_file = (
            "20240101000002_add_email",
            "-- AlterTable\nALTER TABLE \"accounts\" ADD COLUMN \"email\" TEXT;\n\n\
             -- CreateIndex\nCREATE INDEX \"accounts_email_index\" ON \"accounts\"(\"email\");\n",
        );
        let error = prisma_migrate_deploy(&url, &[PRISMA_INIT, unsafe_file]).expect_err(route);
        assert!(error.contains(CREATE_INDEX_REFUSED), "{route}: {error}");
        assert_eq!(
            target.schema(bookkeeping),
            format!(
                "column id integer not null\n\
                 column name text not null\n\
                 index CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)\n\
                 migration 20240101000001_init steps 1 finished\n\
                 migration 20240101000002_add_email steps 0 unfinished logs: {CREATE_INDEX_REFUSED}\n"
            ),
            "{route}: the refused migration left a change behind"
        );
        // Prisma refuses to go on until the failed migration is resolved.
        let error = prisma_migrate_deploy(&url, &[PRISMA_INIT]).expect_err(route);
        assert!(error.contains("P3009"), "{route}: {error}");
        prisma_resolve_rolled_back(&url, "20240101000002_add_email");

        let safe_files = [
            PRISMA_INIT,
            (
                "20240101000003_add_email",
                "-- AlterTable\nALTER TABLE \"accounts\" ADD COLUMN \"email\" TEXT;\n",
            ),
            (
                "20240101000004_index_email",
                "-- CreateIndex (alone in its file: CONCURRENTLY cannot run in a transaction)\n\
                 CREATE INDEX CONCURRENTLY \"accounts_email_index\" ON \"accounts\"(\"email\");\n",
            ),
        ];
        prisma_migrate_deploy(&url, &safe_files).unwrap_or_else(|error| panic!("{route}: {error}"));
        assert_eq!(
            target.schema(bookkeeping),
            format!(
                "column id integer not null\n\
                 column name text not null\n\
                 column email text\n\
                 index CREATE INDEX accounts_email_index ON public.accounts USING btree (email)\n\
                 index CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)\n\
                 migration 20240101000001_init steps 1 finished\n\
                 migration 20240101000002_add_email steps 0 unfinished rolled back logs: {CREATE_INDEX_REFUSED}\n\
                 migration 20240101000003_add_email steps 1 finished\n\
                 migration 20240101000004_index_email steps 1 finished\n"
            ),
            "{route}"
        );
    }
    report("tool prisma (wire replay): pass");
}

// ---------------------------------------------------------------------------------------
// golang-migrate

/// What lib/pq sends for golang-migrate's postgres driver.
impl Wire {
    /// `db.Exec`/`db.Query`: without arguments one simple Query; with arguments an
    /// unnamed statement, Parse+Describe+Sync, then Bind+Execute+Sync.
    fn libpq(&mut self, sql: &str, args: &[&str]) -> Result<Rows, ServerError> {
        if args.is_empty() {
            return self.simple(sql);
        }
        self.send(&[parse("", sql), describe_statement(""), sync()]);
        self.until_ready()?;
        self.send(&[bind("", args), execute(), sync()]);
        self.until_ready()
    }
}

/// golang-migrate's advisory lock id for database `postgres`, schema `public`, table
/// `schema_migrations`: CRC-32 of the three names joined by NUL, times its salt.
const MIGRATE_LOCK_ID: &str = "143310882";

struct GolangMigrate {
    wire: Wire,
}

impl GolangMigrate {
    /// `postgres.WithInstance`: the database and schema names, and the version table.
    fn open(port: u16) -> Result<GolangMigrate, String> {
        let mut migrate = GolangMigrate {
            wire: Wire::connect(port, "migrator"),
        };
        let wire = &mut migrate.wire;
        wire.libpq("SELECT CURRENT_DATABASE()", &[]).map_err(driver_error)?;
        wire.libpq("SELECT CURRENT_SCHEMA()", &[]).map_err(driver_error)?;
        migrate.lock()?;
        let exists = migrate
            .wire
            .libpq(
                "SELECT COUNT(1) FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2 LIMIT 1",
                &["public", "schema_migrations"],
            )
            .map_err(driver_error)?;
        if exists[0][0].as_deref() == Some("0") {
            migrate
                .wire
                .libpq(
                    r#"CREATE TABLE IF NOT EXISTS "public"."schema_migrations" (version bigint not null primary key, dirty boolean not null)"#,
                    &[],
                )
                .map_err(driver_error)?;
        }
        migrate.unlock()?;
        Ok(migrate)
    }

    fn lock(&mut self) -> Result<(), String> {
        self.wire
            .libpq("SELECT pg_advisory_lock($1)", &[MIGRATE_LOCK_ID])
            .map(drop)
            .map_err(|e| format!("try lock failed: {e}"))
    }

    fn unlock(&mut self) -> Result<(), String> {
        self.wire
            .libpq("SELECT pg_advisory_unlock($1)", &[MIGRATE_LOCK_ID])
            .map(drop)
            .map_err(driver_error)
    }

    fn set_version(&mut self, version: u32, dirty: bool) -> Result<(), String> {
        let wire = &mut self.wire;
        wire.libpq("BEGIN", &[]).map_err(driver_error)?;
        let written = wire
            .libpq(r#"TRUNCATE "public"."schema_migrations""#, &[])
            .and_then(|_| {
                wire.libpq(
                    r#"INSERT INTO "public"."schema_migrations" (version, dirty) VALUES ($1, $2)"#,
                    &[&version.to_string(), &dirty.to_string()],
                )
            });
        match written {
            Ok(_) => wire.libpq("COMMIT", &[]).map(drop).map_err(driver_error),
            Err(error) => {
                let _ = wire.libpq("ROLLBACK", &[]);
                Err(format!("pq: {} in line 0: SetVersion", error.message))
            }
        }
    }

    fn version(&mut self) -> Result<Option<(u32, bool)>, String> {
        let rows = self
            .wire
            .libpq(
                r#"SELECT version, dirty FROM "public"."schema_migrations" LIMIT 1"#,
                &[],
            )
            .map_err(driver_error)?;
        Ok(rows.first().map(|row| {
            (
                row[0].as_deref().unwrap().parse().unwrap(),
                row[1].as_deref() == Some("t"),
            )
        }))
    }

    /// `migrate up` with `files` (version, body) as the migrations directory.
    fn up(&mut self, files: &[(u32, &str)]) -> Result<(), String> {
        self.lock()?;
        let outcome = self.up_locked(files);
        self.unlock()?;
        outcome
    }

    fn up_locked(&mut self, files: &[(u32, &str)]) -> Result<(), String> {
        let current = match self.version()? {
            Some((version, true)) => {
                return Err(format!("Dirty database version {version}. Fix and force version."));
            }
            Some((version, false)) => version,
            None => 0,
        };
        for (version, body) in files.iter().filter(|(version, _)| *version > current) {
            self.set_version(*version, true)?;
            self.wire
                .libpq(body, &[])
                .map_err(|error| format!("migration failed: {} (details: {error})", error.message))?;
            self.set_version(*version, false)?;
        }
        Ok(())
    }

    /// `migrate force <version>`.
    fn force(&mut self, version: u32) -> Result<(), String> {
        self.lock()?;
        let outcome = self.set_version(version, false);
        self.unlock()?;
        outcome
    }
}

fn driver_error(error: ServerError) -> String {
    format!("pq: {}", error.message)
}

const MIGRATE_CREATE_ACCOUNTS: (u32, &str) = (
    1,
    "CREATE TABLE accounts (\n    id bigserial PRIMARY KEY,\n    name text NOT NULL\n);\nINSERT INTO accounts (name) VALUES ('first');\n",
);

/// golang-migrate records its version with `TRUNCATE schema_migrations` (a table of one
/// row) in every run: a migration tool's own bookkeeping passes under the default policy.
#[test]
fn golang_migrate_bookkeeping_passes_under_the_default_policy() {
    for target in Target::both() {
        let mut migrate = GolangMigrate::open(target.port).expect(target.route);
        migrate
            .up(&[MIGRATE_CREATE_ACCOUNTS])
            .unwrap_or_else(|error| panic!("{}: {error}", target.route));
    }
}

#[test]
fn golang_migrate_multi_statement_file_is_stopped_dirty_and_the_fixed_files_apply() {
    for target in Target::both() {
        let route = target.route;
        let mut migrate = GolangMigrate::open(target.port).expect(route);
        let unsafe_file = (
            2,
            "ALTER TABLE accounts ADD COLUMN email text;\nCREATE INDEX accounts_email_index ON accounts (email);\n",
        );
        let error = migrate.up(&[MIGRATE_CREATE_ACCOUNTS, unsafe_file]).expect_err(route);
        assert!(
            error.starts_with(&format!("migration failed: {CREATE_INDEX_REFUSED}")),
            "{route}: {error}"
        );
        let bookkeeping = "SELECT 'version ' || version || CASE WHEN dirty THEN ' dirty' ELSE '' END \
                           FROM schema_migrations";
        assert_eq!(
            target.schema(bookkeeping),
            "column id bigint not null\n\
             column name text not null\n\
             index CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)\n\
             version 2 dirty\n",
            "{route}: the refused migration left a change behind"
        );
        // A dirty database stops every later run until the version is forced.
        let error = migrate.up(&[MIGRATE_CREATE_ACCOUNTS]).expect_err(route);
        assert_eq!(error, "Dirty database version 2. Fix and force version.", "{route}");
        migrate.force(1).unwrap_or_else(|error| panic!("{route}: {error}"));

        let fixed = [
            MIGRATE_CREATE_ACCOUNTS,
            (2, "ALTER TABLE accounts ADD COLUMN email text;\n"),
            (
                3,
                "-- alone in its file: a multi-statement file runs as one implicit transaction\n\
                 CREATE INDEX CONCURRENTLY accounts_email_index ON accounts (email);\n",
            ),
        ];
        migrate.up(&fixed).unwrap_or_else(|error| panic!("{route}: {error}"));
        assert_eq!(
            target.schema(bookkeeping),
            "column id bigint not null\n\
             column name text not null\n\
             column email text\n\
             index CREATE INDEX accounts_email_index ON public.accounts USING btree (email)\n\
             index CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)\n\
             version 3\n",
            "{route}"
        );
        // Nothing left locked: another session takes the same advisory lock at once.
        let mut other = Wire::connect(target.port, "migrator");
        let rows = other
            .simple(&format!("SELECT pg_try_advisory_lock({MIGRATE_LOCK_ID})"))
            .unwrap();
        assert_eq!(rows, vec![vec![Some("t".to_string())]], "{route}");
    }
    report("tool golang-migrate (wire replay): pass");
}
