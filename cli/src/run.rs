//! `safe-migrations run -- <command>`: guard any migration tool without configuring it.
//! The proxy starts on a free loopback port in front of the database the command would
//! have used, the command runs with its database URL (and `PGHOST`/`PGPORT`) pointing
//! at the proxy, signals sent to `run` reach the command, and when the command ends the
//! proxy stops and `run` exits with the command's status.

use std::ffi::OsString;
use std::process::ExitCode;

use proxy::{Background, ProxyArgs, UpstreamTls};

mod child;

use crate::url::DatabaseUrl;

/// Exit status of `run` itself failing (bad arguments, the command not found), as the
/// shell uses: 2 for usage, 127 for a command that cannot be run.
const EXIT_USAGE: u8 = 2;
const EXIT_CANNOT_RUN: u8 = 127;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The server the proxy forwards to (host:port). Default: the host and port of the URL
    /// in --url-env.
    #[arg(long, value_name = "HOST:PORT")]
    pub upstream: Option<String>,
    /// The environment variable holding the database URL the command reads. Its value is
    /// rewritten for the command to point at the proxy (user, password, database and
    /// parameters kept; sslmode=disable, the proxy being on loopback).
    #[arg(long, value_name = "NAME", default_value = "DATABASE_URL")]
    pub url_env: String,
    /// The proxy's configuration file (see `safe-migrations proxy --config`).
    #[arg(long, env = "SAFE_MIGRATIONS_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// TLS from the proxy to the server. Default: what the URL's sslmode asks for
    /// (disable, prefer, require, verify-full), else prefer.
    #[arg(long, value_enum)]
    pub upstream_tls: Option<UpstreamTls>,
    /// CA certificates to verify the server with (verify-full).
    #[arg(long)]
    pub upstream_ca: Option<std::path::PathBuf>,
    /// The command and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

pub fn run(args: RunArgs) -> ExitCode {
    match start(args) {
        Ok(status) => status,
        Err((status, message)) => {
            eprintln!("safe-migrations run: {message}");
            ExitCode::from(status)
        }
    }
}

fn start(args: RunArgs) -> Result<ExitCode, (u8, String)> {
    let usage = |message: String| (EXIT_USAGE, message);
    let original = std::env::var_os(&args.url_env);
    // A URL that cannot be rewritten is not passed on unchanged (it would lead around
    // the proxy): without --upstream it is an error, with it the variable is dropped.
    let url = match &original {
        Some(value) => match value
            .to_str()
            .ok_or_else(|| "is not valid UTF-8".to_string())
            .and_then(DatabaseUrl::parse)
        {
            Ok(url) => Some(url),
            Err(err) if args.upstream.is_some() => {
                eprintln!(
                    "safe-migrations run: {} {err}; the command runs without it (--upstream names the server)",
                    args.url_env
                );
                None
            }
            Err(err) => return Err(usage(format!("{}: {err}", args.url_env))),
        },
        None => None,
    };
    // A command that names the database itself (`psql "$DATABASE_URL"`, expanded by the
    // shell before `run` starts) would connect to it around the proxy.
    if let Some(value) = original
        .as_ref()
        .and_then(|value| value.to_str())
        .filter(|value| !value.is_empty())
    {
        if args.command.iter().any(|arg| arg.to_string_lossy().contains(value)) {
            return Err(usage(format!(
                "the command's arguments hold {}'s URL itself, which would connect around the proxy: \
                 let the command read ${} (quote it: '$DATABASE_URL' in sh -c, or leave it out)",
                args.url_env, args.url_env
            )));
        }
    }
    let upstream = match (&args.upstream, &url) {
        (Some(upstream), _) => upstream.clone(),
        (None, Some(url)) => url.upstream(),
        (None, None) => {
            return Err(usage(format!(
                "no database to guard: set {} to the database's URL, or pass --upstream HOST:PORT",
                args.url_env
            )))
        }
    };
    let upstream_tls = match (args.upstream_tls, &url) {
        (Some(tls), _) => tls,
        (None, Some(url)) => url
            .upstream_tls()
            .map_err(|err| usage(format!("{}: {err}", args.url_env)))?
            .unwrap_or(UpstreamTls::Prefer),
        (None, None) => UpstreamTls::Prefer,
    };
    let upstream_ca = args.upstream_ca.or_else(|| {
        url.as_ref()
            .and_then(DatabaseUrl::root_cert)
            .map(std::path::PathBuf::from)
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|err| (1, format!("cannot listen on a loopback port: {err}")))?;
    let port = listener
        .local_addr()
        .map_err(|err| (1, format!("cannot read the proxy's port: {err}")))?
        .port();
    proxy::init_logging(proxy::LogFormat::Text);
    let proxy = Background::start(
        ProxyArgs {
            listen: format!("127.0.0.1:{port}"),
            upstream,
            config: args.config,
            tls_cert: None,
            tls_key: None,
            upstream_tls,
            upstream_ca,
            login_timeout: 60,
            // The command has ended when the proxy stops: what it left open goes soon.
            shutdown_timeout: 5,
            max_statement_bytes: 64 << 20,
            threads: Some(1),
            busy_poll_us: 0,
            metrics_listen: None,
            log_format: proxy::LogFormat::Text,
        },
        listener,
    )
    .map_err(usage)?;

    let mut command = std::process::Command::new(&args.command[0]);
    command
        .args(&args.command[1..])
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", port.to_string())
        .env("PGSSLMODE", "disable")
        // What would send a libpq client elsewhere than PGHOST says: a host address
        // (used instead of the host's), a service file entry (its host beats PGHOST).
        .env_remove("PGHOSTADDR")
        .env_remove("PGSERVICE");
    match &url {
        Some(url) => {
            let pointed = url.pointed_at("127.0.0.1", port);
            // Read back, it must name the proxy and nothing else.
            if DatabaseUrl::parse(&pointed).map(|back| back.upstream()) != Ok(format!("127.0.0.1:{port}")) {
                return Err(usage(format!(
                    "{} cannot be pointed at the proxy safely: pass --upstream and a plain URL",
                    args.url_env
                )));
            }
            command.env(&args.url_env, pointed);
        }
        None => {
            command.env_remove(&args.url_env);
        }
    }
    let status = child::run(command).map_err(|err| {
        (
            EXIT_CANNOT_RUN,
            format!("cannot run {}: {err}", args.command[0].to_string_lossy()),
        )
    });
    let _ = proxy.stop();
    if status.is_ok() && proxy::connections_accepted() == 0 {
        eprintln!(
            "safe-migrations run: the command never connected through the proxy: if it used the database, \
             it went around the guard (does it read ${}, or PGHOST and PGPORT?)",
            args.url_env
        );
    }
    status
}
