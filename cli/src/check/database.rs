//! `check --database-url`: one read-only session on the database the migrations will run
//! on, asked the same catalog questions the proxy asks on a client's session
//! (`proxy::catalog::Question`, the same SQL), each answer kept for the run.
//!
//! It connects as libpq would: host, port, user, database and password from the URL,
//! else `PGUSER`, `PGDATABASE`, `PGPASSWORD` and the password file (`PGPASSFILE`,
//! `~/.pgpass`); TLS as the URL's `sslmode` says (`disable`; `prefer`, the default, and
//! `require` encrypt without verifying the certificate, as libpq does without a root
//! certificate file; `verify-full` verifies it against `sslrootcert` or the system's
//! roots, and the host name). The session is read-only (`default_transaction_read_only`),
//! waits at most a second for a lock and thirty for a statement: nothing of the files is
//! executed, only catalog queries and `EXPLAIN` without `ANALYZE`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use postgres::{Client, SimpleQueryMessage, Socket};
use proxy::catalog::{Answer, Question};
use proxy::UpstreamTls;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::pgpass;
use crate::url::DatabaseUrl;

/// The session's own settings, at connect and again after it follows a search_path:
/// read-only; standard strings, so that the statements' texts sent in an EXPLAIN or
/// PREPARE are read by the server as libpg_query read them, one statement each (with
/// backslash escapes a quote could end a literal early); never a long wait.
const SESSION_SETTINGS: &str = "SET default_transaction_read_only = on; SET standard_conforming_strings = on; \
     SET lock_timeout = '1s'; SET statement_timeout = '30s'";

/// The session and what it has answered so far.
pub struct Database {
    client: RefCell<Client>,
    answers: RefCell<HashMap<Question, Answer>>,
    /// Where it connected, for messages (`user@host:port/database`).
    pub name: String,
    pub server_version_num: Option<u32>,
    pub timezone: Option<String>,
    pub superuser: Option<bool>,
}

impl Database {
    /// Connect to the database `url` names.
    pub fn connect(url: &str) -> Result<Database, String> {
        // The parser's advice is run's (--upstream); check has none.
        let parsed = DatabaseUrl::parse(url).map_err(|err| {
            if err.starts_with("not a postgres://") {
                return "not a postgres:// or postgresql:// URL".to_string();
            }
            err.replace(": pass --upstream HOST:PORT for the one to guard", "")
                .replace(": pass --upstream HOST:PORT", "")
        })?;
        for unsupported in ["sslcert", "sslkey", "sslcrl", "sslpassword"] {
            if parsed.parameter(unsupported).is_some_and(|value| !value.is_empty()) {
                return Err(format!(
                    "{unsupported}: client certificates are not supported by check; use a password"
                ));
            }
        }
        if parsed.parameter("channel_binding").as_deref() == Some("require") {
            return Err("channel_binding=require: check cannot bind SCRAM to the TLS channel".to_string());
        }
        let user = parsed
            .user()
            .or_else(|| std::env::var("PGUSER").ok().filter(|user| !user.is_empty()))
            .or_else(|| std::env::var("USER").ok().filter(|user| !user.is_empty()))
            .ok_or("names no user, and neither PGUSER nor USER is set")?;
        let dbname = parsed
            .dbname()
            .or_else(|| std::env::var("PGDATABASE").ok().filter(|name| !name.is_empty()))
            .unwrap_or_else(|| user.clone());
        // As libpq: an empty password is none, and the next source is asked.
        let password = parsed
            .password()
            .filter(|password| !password.is_empty())
            .or_else(|| std::env::var("PGPASSWORD").ok().filter(|password| !password.is_empty()))
            .or_else(|| {
                pgpass::location().and_then(|path| pgpass::lookup(&path, parsed.host(), parsed.port(), &dbname, &user))
            });
        let mut config = postgres::Config::new();
        config
            .host(parsed.host())
            .port(parsed.port())
            .user(&user)
            .dbname(&dbname)
            .application_name("safe-migrations check")
            .connect_timeout(Duration::from_secs(10));
        if let Some(password) = &password {
            config.password(password);
        }
        if let Some(options) = parsed.parameter("options") {
            config.options(&options);
        }
        // sslrootcert=system: the system's roots, and verify-full, as libpq 16 has it.
        let system_roots = parsed.parameter("sslrootcert").as_deref() == Some("system");
        let mode = match parsed.upstream_tls() {
            Ok(mode) => mode.unwrap_or(if system_roots {
                UpstreamTls::VerifyFull
            } else {
                UpstreamTls::Prefer
            }),
            Err(err) => {
                return Err(err
                    .replace("the proxy verifies", "check verifies")
                    .replace("pass --upstream-tls", "use sslmode=verify-full"))
            }
        };
        // libpq verifies the chain (verify-ca) when a root certificate file is given with
        // a weaker sslmode; check verifies only with the host name too.
        if parsed.root_cert().is_some() && matches!(mode, UpstreamTls::Prefer | UpstreamTls::Require) {
            return Err(
                "sslrootcert with sslmode=prefer or require: use sslmode=verify-full to verify the server".to_string(),
            );
        }
        if system_roots && mode != UpstreamTls::VerifyFull {
            return Err("sslrootcert=system needs sslmode=verify-full (or no sslmode)".to_string());
        }
        let root = parsed.root_cert().map(std::path::PathBuf::from);
        let connector = proxy::tls::upstream_connector(mode, root.as_deref()).map_err(|err| {
            err.replace("--upstream-tls verify-full", "sslmode=verify-full")
                .replace("--upstream-ca", "sslrootcert")
        })?;
        config.ssl_mode(match mode {
            UpstreamTls::Disable => postgres::config::SslMode::Disable,
            UpstreamTls::Prefer => postgres::config::SslMode::Prefer,
            UpstreamTls::Require | UpstreamTls::VerifyFull => postgres::config::SslMode::Require,
        });
        let name = format!("{user}@{}/{dbname}", parsed.upstream());
        let client = match connector {
            Some(connector) => config.connect(MakeRustls(connector)),
            None => config.connect(postgres::NoTls),
        }
        .map_err(|err| format!("cannot connect to {name}: {}", describe(&err)))?;
        let mut database = Database {
            client: RefCell::new(client),
            answers: RefCell::new(HashMap::new()),
            name,
            server_version_num: None,
            timezone: None,
            superuser: None,
        };
        database
            .client
            .get_mut()
            .batch_execute(SESSION_SETTINGS)
            .map_err(|err| format!("{}: {}", database.name, describe(&err)))?;
        let row = database
            .row(
                "SELECT pg_catalog.current_setting('server_version_num'), pg_catalog.current_setting('TimeZone'), \
                 pg_catalog.current_setting('is_superuser')",
            )
            .map_err(|err| format!("{}: {err}", database.name))?;
        database.server_version_num = row.first().cloned().flatten().and_then(|v| v.parse().ok());
        database.timezone = row.get(1).cloned().flatten();
        database.superuser = row.get(2).cloned().flatten().map(|v| v == "on");
        Ok(database)
    }

    /// The values of `current_setting(name, true)` for each name (None: not set).
    pub fn settings(&self, names: &[String]) -> Result<Vec<Option<String>>, String> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let columns: Vec<String> = names
            .iter()
            .map(|name| format!("pg_catalog.current_setting({}, true)", policy::sql::literal(name)))
            .collect();
        self.row(&format!("SELECT {}", columns.join(", ")))
    }

    /// The first row of `sql`'s answer.
    fn row(&self, sql: &str) -> Result<Vec<Option<String>>, String> {
        Ok(self.rows(sql)?.into_iter().next().unwrap_or_default())
    }

    fn rows(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        let messages = self
            .client
            .borrow_mut()
            .simple_query(sql)
            .map_err(|err| describe(&err))?;
        Ok(messages
            .into_iter()
            .filter_map(|message| match message {
                SimpleQueryMessage::Row(row) => Some((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect()),
                _ => None,
            })
            .collect())
    }

    /// The planner's estimate of the rows the write changes (`Question::RowsChanged`), by
    /// EXPLAIN (never run): of the statement; of an EXECUTE's query prepared under a name
    /// of the check's, planned for the EXECUTE's constant arguments (a generic plan when
    /// one is not a constant, or when a query has parameters and no EXECUTE); when that
    /// fails, of its read-only stand-in (the rows it changes: a statement a DO block runs
    /// may name the block's variables in what it sets). None when none can be planned.
    pub fn rows_changed(&self, question: Question) -> Answer {
        if let Some(answer) = self.answers.borrow().get(&question) {
            return answer.clone();
        }
        let Question::RowsChanged(estimate) = &question else {
            return self.ask(question);
        };
        let sql = &estimate.statement;
        let mut rows = None;
        let parameters = parse::calls::parameter_count(sql);
        let name = "safe_migrations_check_estimate";
        // An EXECUTE's query, planned for its constant arguments (others NULL, and the
        // plan generic), as the proxy plans it; a query with parameters and no EXECUTE,
        // generically.
        let execute = match &estimate.executed {
            Some(executed) => parse::prepared::execute_as(&executed.execute, name, false),
            None if parameters > 0 && parameters <= usize::from(u16::MAX) => Some((
                format!("EXECUTE {name}({})", vec!["NULL"; parameters].join(", ")),
                false,
            )),
            None => None,
        };
        match execute {
            Some((execute, constants)) => {
                if self.rows(&format!("PREPARE {name} AS {sql}")).is_ok() {
                    let generic = if constants {
                        ""
                    } else {
                        "SET plan_cache_mode = force_generic_plan; "
                    };
                    rows = self.rows(&format!("{generic}EXPLAIN (FORMAT JSON) {execute}")).ok();
                    let _ = self.rows(&format!("DEALLOCATE {name}; RESET plan_cache_mode"));
                }
            }
            None => rows = self.rows(&proxy::catalog::explain_sql(sql)).ok(),
        }
        if rows.is_none() {
            if let Some(stand_in) = parse::probe::rows_changed_probe(sql) {
                rows = self.rows(&proxy::catalog::explain_sql(&stand_in)).ok();
            }
        }
        let answer = question.answer(rows);
        self.answers.borrow_mut().insert(question, answer.clone());
        answer
    }

    /// The indexes that depend on `table.column` (dropped with it), by name.
    pub fn indexes_on_column(&self, table: &policy::QualifiedName, column: &str) -> Vec<String> {
        let sql = format!(
            "SELECT c.relname FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class c ON c.oid = d.objid \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
             WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass \
             AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
             AND d.refobjid = {} AND a.attname = {} AND c.relkind IN ('i', 'I')",
            policy::catalog_queries::regclass(table),
            policy::sql::literal(column)
        );
        self.rows(&sql)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|row| row.into_iter().next().flatten())
            .collect()
    }

    /// Run the run's own `SET search_path` (or `RESET`) on the session, so that names
    /// resolve as they will for the migration; the answers kept so far are dropped (a
    /// name may stand for another relation now). False when the server refused it.
    pub fn follow_search_path(&self, set: &str) -> bool {
        self.answers.borrow_mut().clear();
        let followed = self.client.borrow_mut().batch_execute(set).is_ok();
        // Whatever it was, the session stays read-only and reads standard strings.
        let kept = self.client.borrow_mut().batch_execute(SESSION_SETTINGS).is_ok();
        followed && kept
    }

    /// The session's search_path, as SHOW gives it (a list SET search_path TO takes).
    pub fn search_path(&self) -> Option<String> {
        self.row("SHOW search_path").ok()?.into_iter().next().flatten()
    }

    /// The schema unqualified names are created in on the session.
    pub fn current_schema(&self) -> Option<String> {
        self.row("SELECT pg_catalog.current_schema()")
            .ok()?
            .into_iter()
            .next()
            .flatten()
    }

    /// The answer to `question`, asked once. A query that fails (a name that does not
    /// resolve in an EXPLAIN, a lock not granted within the second) answers "unknown".
    pub fn ask(&self, question: Question) -> Answer {
        if let Some(answer) = self.answers.borrow().get(&question) {
            return answer.clone();
        }
        let answer = question.answer(self.rows(&question.sql()).ok());
        self.answers.borrow_mut().insert(question, answer.clone());
        answer
    }
}

/// A server error's message with its DETAIL, or the client's error.
fn describe(err: &postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        },
        None => err.to_string(),
    }
}

/// TLS for the session by rustls, configured as the proxy's connection to its upstream
/// (`proxy::tls::upstream_connector`). No channel binding is offered: SCRAM goes without
/// it, as with libpq's `channel_binding=prefer` when the client cannot bind.
struct MakeRustls(tokio_rustls::TlsConnector);

struct Connect {
    connector: tokio_rustls::TlsConnector,
    host: String,
}

struct RustlsStream(tokio_rustls::client::TlsStream<Socket>);

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = Connect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<Connect> {
        Ok(Connect {
            connector: self.0.clone(),
            host: domain.to_string(),
        })
    }
}

impl TlsConnect<Socket> for Connect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let name =
                proxy::tls::server_name(&self.host).map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
            Ok(RustlsStream(self.connector.connect(name, stream).await?))
        })
    }
}

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
