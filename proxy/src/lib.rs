//! `safe-migrations proxy`: the PostgreSQL wire protocol between a migration tool and
//! a server that cannot load the extension, enforcing the same policy per role.
//!
//! `frontend` is the client side of the startup phase, `backend` the server side,
//! `messages` one file per wire message, `session` the state machine between them,
//! `tracker` which server response answers which message, `guard` the policy decision,
//! `catalog` the questions the server answers, `lock_timeout` the cap on DDL,
//! `clean_verdicts` the statements a session need not parse again.

mod backend;
mod cancels;
pub mod catalog;
mod clean_verdicts;
mod config;
mod frontend;
pub mod guard;
mod lock_timeout;
mod messages;
mod metrics;
mod passthrough;
mod session;
pub mod tls;
mod tracker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use backend::Upstream;
use config::Config;
use frontend::Hello;
use messages::MAX_MESSAGE_LEN;
use passthrough::BusyPoll;
pub use tls::UpstreamTls;

#[derive(clap::Args, Debug)]
pub struct ProxyArgs {
    /// Address to listen on.
    #[arg(long, env = "SAFE_MIGRATIONS_LISTEN", default_value = "127.0.0.1:6432")]
    pub listen: String,
    /// The PostgreSQL server, host:port.
    #[arg(long, env = "SAFE_MIGRATIONS_UPSTREAM")]
    pub upstream: String,
    /// TOML file with policy defaults and [roles.<name>] overrides (the file wins over
    /// the server's `safe_migrations.*` role settings).
    #[arg(long, env = "SAFE_MIGRATIONS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Certificate chain (PEM) for TLS to clients; without it clients get 'N' to SSLRequest.
    #[arg(long, env = "SAFE_MIGRATIONS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) for --tls-cert.
    #[arg(long, env = "SAFE_MIGRATIONS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// TLS to the upstream, as libpq's sslmode.
    #[arg(long, env = "SAFE_MIGRATIONS_UPSTREAM_TLS", value_enum, default_value = "prefer")]
    pub upstream_tls: UpstreamTls,
    /// CA certificates (PEM) for --upstream-tls verify-full; default: the system roots.
    #[arg(long, env = "SAFE_MIGRATIONS_UPSTREAM_CA")]
    pub upstream_ca: Option<PathBuf>,
    /// How long a new client has to send its startup packet, TLS handshake included
    /// (seconds, 1 to 600, as the server's authentication_timeout); then it is closed.
    #[arg(long, env = "SAFE_MIGRATIONS_LOGIN_TIMEOUT", default_value_t = 60)]
    pub login_timeout: u64,
    /// On SIGTERM/SIGINT, how long open sessions may still run (seconds).
    #[arg(long, env = "SAFE_MIGRATIONS_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    pub shutdown_timeout: u64,
    /// The longest statement (Query, Parse) of a guarded role the proxy reads to check it;
    /// longer ones are refused (SQLSTATE 54000). Other large messages pass in pieces.
    #[arg(long, env = "SAFE_MIGRATIONS_MAX_STATEMENT_BYTES", default_value_t = 64 << 20)]
    pub max_statement_bytes: usize,
    /// Threads serving sessions (each session stays on one); default: one per core.
    #[arg(long, env = "SAFE_MIGRATIONS_THREADS")]
    pub threads: Option<usize>,
    /// Unguarded sessions over plain TCP: after traffic, keep polling the sockets this many
    /// microseconds before sleeping (0 = never). Lowers the hop's latency at few clients
    /// at the price of CPU: at most one session per thread and half the cores poll.
    #[arg(long, env = "SAFE_MIGRATIONS_BUSY_POLL_US", default_value_t = 0)]
    pub busy_poll_us: u64,
    /// Serve OpenMetrics text (GET /metrics) on this address (e.g. 127.0.0.1:9187):
    /// sessions, statements judged, refusals by rule, lock retries and failures,
    /// upstream connection errors. Off unless given.
    #[arg(long, env = "SAFE_MIGRATIONS_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Log lines as text or as one JSON object per line.
    #[arg(long, env = "SAFE_MIGRATIONS_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

struct Shared {
    upstream: Upstream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    /// The configuration new sessions take (replaced on SIGHUP by a file that loads).
    config: std::sync::RwLock<Arc<Config>>,
    /// Sessions between their first byte and their end, for the shutdown log line.
    open_sessions: AtomicUsize,
    max_statement_bytes: usize,
    busy_poll: BusyPoll,
    login_timeout: Duration,
}

pub fn run(args: ProxyArgs) -> ExitCode {
    init_logging(args.log_format);
    let listener = match std::net::TcpListener::bind(&args.listen) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("safe-migrations proxy: cannot listen on {}: {err}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    serve_until(args, listener, shutdown_signal(), true)
}

/// Client connections this process's proxy has accepted so far.
pub fn connections_accepted() -> u64 {
    metrics::CONNECTIONS.get()
}

/// Logs to stderr (`SAFE_MIGRATIONS_LOG` or `RUST_LOG`, default `info`), as text or one
/// JSON object per line (its fields at the top level: role, database, rule, statement).
pub fn init_logging(format: LogFormat) {
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("SAFE_MIGRATIONS_LOG")
            .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// A proxy serving on a listener this process bound, on threads of its own, until
/// [`Background::stop`]: how `safe-migrations run` guards the command it runs.
pub struct Background {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<ExitCode>>,
}

impl Background {
    /// Checks `args` (the error says what is wrong with them) and starts serving on
    /// `listener` (`args.listen` is not read).
    pub fn start(args: ProxyArgs, listener: std::net::TcpListener) -> Result<Background, String> {
        prepare(&args)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("proxy".to_string())
            .spawn(move || {
                serve_until(
                    args,
                    listener,
                    async {
                        let _ = stopped.await;
                    },
                    false,
                )
            })
            .map_err(|err| format!("cannot start the proxy's thread: {err}"))?;
        Ok(Background {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stop accepting, let open sessions finish (up to the shutdown timeout), and say
    /// how the proxy ended.
    pub fn stop(mut self) -> ExitCode {
        self.finish()
    }

    fn finish(&mut self) -> ExitCode {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(code)) => code,
            Some(Err(_)) => ExitCode::FAILURE,
            None => ExitCode::SUCCESS,
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Serve on `listener` until `stop` completes, then let open sessions finish; with
/// `reload_on_hup`, SIGHUP loads the configuration file again.
fn serve_until(
    args: ProxyArgs,
    listener: std::net::TcpListener,
    stop: impl std::future::Future<Output = ()>,
    reload_on_hup: bool,
) -> ExitCode {
    let shared = match prepare(&args) {
        Ok(shared) => Arc::new(shared),
        Err(err) => {
            eprintln!("safe-migrations proxy: {err}");
            return ExitCode::from(2);
        }
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let shutdown_timeout = Duration::from_secs(args.shutdown_timeout);
    let workers = match (0..threads)
        .map(|index| Worker::start(index, shared.clone(), shutdown_timeout))
        .collect::<std::io::Result<Vec<_>>>()
    {
        Ok(workers) => workers,
        Err(err) => {
            eprintln!("safe-migrations proxy: cannot start the session threads: {err}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("safe-migrations proxy: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(serve(args, listener, shared, &workers, stop, reload_on_hup));
    for worker in workers {
        worker.finish();
    }
    code
}

fn prepare(args: &ProxyArgs) -> Result<Shared, String> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let acceptor = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::client_acceptor(cert, key)?),
        _ => None,
    };
    let connector = tls::upstream_connector(args.upstream_tls, args.upstream_ca.as_deref())?;
    if !args.upstream.contains(':') {
        return Err(format!("--upstream {}: expected host:port", args.upstream));
    }
    if args.max_statement_bytes < 1024 || args.max_statement_bytes > MAX_MESSAGE_LEN {
        return Err(format!(
            "--max-statement-bytes {}: expected between 1024 and {MAX_MESSAGE_LEN} (1 GiB, the server's own limit)",
            args.max_statement_bytes
        ));
    }
    if args.busy_poll_us > 10_000 {
        return Err(format!(
            "--busy-poll-us {}: expected at most 10000 (10 ms); polling longer only burns CPU",
            args.busy_poll_us
        ));
    }
    if !(1..=600).contains(&args.login_timeout) {
        return Err(format!(
            "--login-timeout {}: expected 1 to 600 seconds (the range of the server's authentication_timeout)",
            args.login_timeout
        ));
    }
    if args.threads == Some(0) {
        return Err("--threads must be at least 1".to_string());
    }
    Ok(Shared {
        upstream: Upstream::new(&args.upstream, args.upstream_tls, connector),
        acceptor,
        config: std::sync::RwLock::new(Arc::new(config)),
        open_sessions: AtomicUsize::new(0),
        max_statement_bytes: args.max_statement_bytes,
        busy_poll: match args.busy_poll_us {
            0 => BusyPoll::off(),
            us => BusyPoll::new(Duration::from_micros(us)),
        },
        login_timeout: Duration::from_secs(args.login_timeout),
    })
}

/// A thread with a single-threaded runtime that serves the sessions handed to it. Each
/// session stays on its thread, so its wake-ups never cross threads: a multi-threaded
/// runtime's work stealing moved woken sessions between cores and cost a context switch
/// per hand-over (bench/RESULTS.md, the -c 16 rows).
struct Worker {
    sessions: mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>,
    thread: std::thread::JoinHandle<()>,
}

impl Worker {
    fn start(index: usize, shared: Arc<Shared>, shutdown_timeout: Duration) -> std::io::Result<Worker> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (sessions, mut incoming) = mpsc::unbounded_channel::<(std::net::TcpStream, SocketAddr)>();
        let thread = std::thread::Builder::new()
            .name(format!("sessions-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let mut running = JoinSet::new();
                    loop {
                        tokio::select! {
                            next = incoming.recv() => match next {
                                Some((tcp, peer)) => match tokio::net::TcpStream::from_std(tcp) {
                                    Ok(tcp) => {
                                        running.spawn(client(tcp, peer, shared.clone()));
                                    }
                                    Err(err) => tracing::warn!(%peer, error = %err, "cannot adopt a connection"),
                                },
                                // The listener stopped: let the open sessions finish.
                                None => break,
                            },
                            Some(_) = running.join_next(), if !running.is_empty() => {}
                        }
                    }
                    let deadline = tokio::time::sleep(shutdown_timeout);
                    tokio::pin!(deadline);
                    loop {
                        tokio::select! {
                            _ = &mut deadline => {
                                tracing::warn!(sessions = running.len(), "shutdown timeout: closing open sessions");
                                running.abort_all();
                                while running.join_next().await.is_some() {}
                                break;
                            }
                            next = running.join_next() => if next.is_none() { break },
                        }
                    }
                })
            })?;
        Ok(Worker { sessions, thread })
    }

    /// Stop handing sessions to it and wait until its last session has ended.
    fn finish(self) {
        drop(self.sessions);
        let _ = self.thread.join();
    }
}

async fn serve(
    args: ProxyArgs,
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    workers: &[Worker],
    stop: impl std::future::Future<Output = ()>,
    reload_on_hup: bool,
) -> ExitCode {
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|()| TcpListener::from_std(listener))
    {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("safe-migrations proxy: cannot listen on {}: {err}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    if let Some(address) = &args.metrics_listen {
        match TcpListener::bind(address).await {
            Ok(metrics) => {
                tracing::info!(listen = %address, "metrics on GET /metrics");
                let shared = shared.clone();
                tokio::spawn(async move {
                    // A few scrapers at a time; more are closed at once, so that slow
                    // ones cannot take the descriptors the sessions need.
                    let slots = Arc::new(tokio::sync::Semaphore::new(metrics::MAX_SCRAPES));
                    loop {
                        match metrics.accept().await {
                            Ok((stream, _)) => {
                                let Ok(slot) = slots.clone().try_acquire_owned() else {
                                    continue;
                                };
                                let shared = shared.clone();
                                tokio::spawn(async move {
                                    metrics::serve_one(stream, || shared.open_sessions.load(Ordering::Relaxed)).await;
                                    drop(slot);
                                });
                            }
                            Err(err) => {
                                tracing::warn!(error = %err, "metrics: accept failed");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                });
            }
            Err(err) => {
                eprintln!("safe-migrations proxy: cannot listen on {address} for metrics: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(
        listen = %local,
        upstream = %shared.upstream.address,
        threads = workers.len(),
        "proxy listening"
    );
    tokio::pin!(stop);
    let mut hangups = reload_on_hup.then(hangup_signals).flatten();
    let mut next_worker = 0;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(()) = next_hangup(&mut hangups) => reload(&args, &shared),
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    match tcp.into_std() {
                        Ok(tcp) => {
                            let _ = workers[next_worker].sessions.send((tcp, peer));
                            next_worker = (next_worker + 1) % workers.len();
                        }
                        Err(err) => tracing::warn!(%peer, error = %err, "cannot hand over a connection"),
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let open = shared.open_sessions.load(Ordering::Relaxed);
    if open > 0 {
        tracing::info!(
            sessions = open,
            timeout_s = args.shutdown_timeout,
            "shutting down: no new connections; waiting for open sessions"
        );
    }
    ExitCode::SUCCESS
}

/// SIGHUP as a stream, where there is one.
fn hangup_signals() -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signals) => Some(signals),
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGHUP: no configuration reload");
            None
        }
    }
}

async fn next_hangup(signals: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signals {
        Some(signals) => signals.recv().await,
        None => std::future::pending().await,
    }
}

/// SIGHUP: the configuration file again, for sessions that start from now on (open ones
/// keep theirs). A file that does not load is refused and the old configuration kept.
fn reload(args: &ProxyArgs, shared: &Shared) {
    let Some(path) = &args.config else {
        tracing::info!("SIGHUP: no --config file to reload");
        return;
    };
    match Config::load(path) {
        Ok(config) => {
            *shared.config.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(config);
            tracing::info!(config = %path.display(), "SIGHUP: configuration reloaded; new sessions use it");
        }
        Err(err) => {
            tracing::error!(config = %path.display(), error = %err, "SIGHUP: configuration not reloaded, the previous one stays");
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// One client connection, from its first byte to its end. Errors end this session only.
async fn client(tcp: tokio::net::TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    shared.open_sessions.fetch_add(1, Ordering::Relaxed);
    metrics::CONNECTIONS.add();
    let _open = OpenSession(&shared.open_sessions);
    let _on_this_thread = passthrough::OnThisThread::enter();
    // A client that connects and sends no startup packet would hold its socket forever;
    // after the startup packet the server's authentication_timeout bounds the login.
    let Ok(hello) =
        tokio::time::timeout(shared.login_timeout, frontend::negotiate(tcp, shared.acceptor.as_ref())).await
    else {
        tracing::warn!(%peer, timeout_s = shared.login_timeout.as_secs(), "no startup packet in time: closing");
        return;
    };
    match hello {
        Ok(Hello::Cancel(packet)) => {
            if let Err(err) = shared.upstream.cancel(&packet).await {
                tracing::warn!(%peer, error = %err, "cannot forward cancel request");
            }
            // Then the session, which may hold the statement itself (a retry's pause): the
            // server has had the request, so what the session sends next is not cancelled.
            shared.upstream.cancels.cancel(&packet);
        }
        Ok(Hello::Startup { stream, startup, tls }) => {
            let user = startup.parameter("user").unwrap_or_default().to_string();
            tracing::debug!(%peer, %user, tls, "session starts");
            // The configuration as it is now; a reload applies to later sessions.
            let config = shared
                .config
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            if let Err(err) = session::run(
                stream,
                startup,
                &shared.upstream,
                &config,
                shared.max_statement_bytes,
                shared.busy_poll,
            )
            .await
            {
                tracing::warn!(%peer, %user, error = %err, "session ended with an error");
            }
        }
        Ok(Hello::Closed) => {}
        Err(err) => tracing::warn!(%peer, error = %err, "bad startup packet"),
    }
}

/// Counts a session as open until it is dropped (also when its task is aborted).
struct OpenSession<'a>(&'a AtomicUsize);

impl Drop for OpenSession<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
