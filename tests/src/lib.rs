//! End-to-end test harness: throwaway PostgreSQL 15 clusters, and the proxy binary
//! in front of them.
//!
//! Each `Cluster` lives in its own temp dir with its own port and socket dir, so tests
//! run in parallel. Postgres refuses to run as root, so the cluster runs as the
//! `postgres` OS user. A guardian process (in its own session) stops the postmaster and
//! removes the dir when the test process dies, even by SIGKILL; `Drop` does the same
//! sooner on a normal exit or panic.

mod certs;
pub mod tools;
pub use certs::CertDir;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The server's binaries the clusters run: `SM_PG_BIN`, else this machine's PostgreSQL 15
/// (scripts/pg-major.sh sets it to run these tests against 17 and 18).
pub fn pg_bin() -> String {
    std::env::var("SM_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".to_string())
}

/// The major version of [`pg_bin`]'s server (from `postgres --version`), e.g. 15.
pub fn pg_major() -> u32 {
    static MAJOR: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *MAJOR.get_or_init(|| {
        let output = run(Command::new(format!("{}/postgres", pg_bin())).arg("--version"));
        let text = String::from_utf8_lossy(&output.stdout);
        text.split_whitespace()
            .find_map(|word| word.split('.').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no major version in {text:?}"))
    })
}
pub const SUPERUSER: &str = "postgres";
pub const SUPERUSER_PASSWORD: &str = "postgres";

/// How clients authenticate over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Auth {
    Trust,
    Md5,
    #[default]
    ScramSha256,
}

impl Auth {
    fn hba_method(self) -> &'static str {
        match self {
            Auth::Trust => "trust",
            Auth::Md5 => "md5",
            Auth::ScramSha256 => "scram-sha-256",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Preload the extension and run `CREATE EXTENSION safe_migrations`.
    pub extension: bool,
    pub auth: Auth,
    /// Extra postgresql.conf settings.
    pub conf: Vec<(String, String)>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            extension: true,
            auth: Auth::default(),
            conf: Vec::new(),
        }
    }
}

pub struct Cluster {
    dir: PathBuf,
    port: u16,
    guardian: Option<Child>,
    pub options: ClusterOptions,
}

static CLUSTER_SEQ: AtomicU32 = AtomicU32::new(0);

/// A client connection to `url` (no TLS), or a panic that names the URL.
pub fn connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap_or_else(|err| panic!("connect {url}: {err}"))
}

/// Ports this test process has handed out: each goes to one listener only.
static PORTS_GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A TCP port nobody listens on right now, never handed out before in this process, and
/// below the kernel's ephemeral range: a port from bind(0) can be handed out again once
/// its probe closes (two tests' proxies then race for one port, and the loser's
/// readiness probe reaches the winner), and outgoing connections take their local ports
/// from the ephemeral range, so one of them could take the port before its listener binds.
pub fn free_port() -> u16 {
    let range: Vec<u16> = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|port| port.parse().ok())
        .collect();
    let (low, high) = match range[..] {
        [low, high] => (low, high),
        _ => (32768, 60999),
    };
    // Below the ephemeral range, or above it when it starts too low to leave room.
    let (first, last) = if low > 12000 {
        (10000, low - 1)
    } else if high < 64000 {
        (high + 1, 65535)
    } else {
        panic!("the ephemeral port range {low}-{high} leaves no room for test listeners");
    };
    let span = u32::from(last - first) + 1;
    let mut given = PORTS_GIVEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut rng = Rng::new(u64::from(std::process::id()) ^ given.len() as u64);
    for _ in 0..10_000 {
        let port = first + u16::try_from(rng.below(span as usize)).expect("a port offset fits u16");
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port in {first}..={last}");
}

fn run(cmd: &mut Command) -> Output {
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !output.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output
}

fn as_postgres(program: &str) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "postgres", "--", "env", "-u", "RUST_BACKTRACE", program]);
    cmd
}

impl Cluster {
    /// A cluster with the extension preloaded and created.
    pub fn start() -> Cluster {
        Cluster::start_with(ClusterOptions::default())
    }

    pub fn start_with(options: ClusterOptions) -> Cluster {
        let seq = CLUSTER_SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("sm-e2e-{}-{}", std::process::id(), seq));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sock")).expect("create cluster dir");
        run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir));
        let mut cluster = Cluster {
            dir,
            port: 0,
            guardian: None,
            options,
        };
        cluster.guardian = Some(cluster.spawn_guardian());
        cluster.initdb();
        let mut last_error = String::new();
        for _ in 0..5 {
            cluster.port = free_port();
            match cluster.pg_ctl_start() {
                Ok(()) => {
                    if cluster.options.extension {
                        cluster.execute(&cluster.superuser_url(), "CREATE EXTENSION safe_migrations");
                    }
                    return cluster;
                }
                Err(e) => last_error = e,
            }
        }
        panic!("could not start a cluster in {}: {last_error}", cluster.dir.display());
    }

    /// Stops the postmaster and removes the dir once this process is gone, however it ends.
    fn spawn_guardian(&self) -> Child {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.2; done; \
             runuser -u postgres -- {bin}/pg_ctl -D '{data}' stop -m immediate >/dev/null 2>&1; \
             rm -rf '{dir}'",
            pid = std::process::id(),
            bin = pg_bin(),
            data = self.data_dir().display(),
            dir = self.dir.display(),
        );
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Own process group: a Ctrl-C to the test run's group does not reach it.
        cmd.process_group(0);
        cmd.spawn().expect("spawn cluster guardian")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn initdb(&self) {
        let pwfile = self.dir.join("pwfile");
        fs::write(&pwfile, SUPERUSER_PASSWORD).expect("write pwfile");
        run(Command::new("chown").arg("postgres").arg(&pwfile));
        let auth = format!("--auth-host={}", self.options.auth.hba_method());
        run(as_postgres(&format!("{}/initdb", pg_bin()))
            .arg("-D")
            .arg(self.data_dir())
            .args([
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                &auth,
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .arg(format!("--pwfile={}", pwfile.display())));
        let mut conf = String::from("\n# safe_migrations e2e\nfsync = off\nlisten_addresses = '127.0.0.1'\n");
        conf.push_str(&format!(
            "unix_socket_directories = '{}'\n",
            self.dir.join("sock").display()
        ));
        if self.options.auth == Auth::Md5 {
            conf.push_str("password_encryption = 'md5'\n");
        }
        if self.options.extension {
            conf.push_str("shared_preload_libraries = 'safe_migrations'\n");
        }
        for (name, value) in &self.options.conf {
            conf.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
        }
        fs::OpenOptions::new()
            .append(true)
            .open(self.data_dir().join("postgresql.conf"))
            .and_then(|mut file| file.write_all(conf.as_bytes()))
            .expect("append to postgresql.conf");
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let output = as_postgres(&format!("{}/pg_ctl", pg_bin()))
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "60", "-o", &format!("-p {}", self.port), "start"])
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                self.log()
            ))
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// The server log so far (for assertions on LOG lines and for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `postgres://user:password@127.0.0.1:port/db`; every role the harness creates has
    /// its own name as password.
    pub fn url(&self, user: &str, db: &str) -> String {
        let password = if user == SUPERUSER { SUPERUSER_PASSWORD } else { user };
        format!("postgres://{user}:{password}@127.0.0.1:{}/{db}", self.port)
    }

    pub fn superuser_url(&self) -> String {
        self.url(SUPERUSER, "postgres")
    }

    /// Run `sql` with psql (ON_ERROR_STOP, tuples only, unaligned), returning its output
    /// whether it failed or not.
    pub fn psql(&self, url: &str, sql: &str) -> Output {
        Command::new("psql")
            .env_remove("PGOPTIONS")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
            .output()
            .expect("run psql")
    }

    /// Run `sql` with psql and panic, with psql's output, if it fails.
    pub fn execute(&self, url: &str, sql: &str) -> String {
        let output = self.psql(url, sql);
        if !output.status.success() {
            panic!(
                "psql failed for {sql:?}:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// A login role (password = its name) allowed to create in `public`, with
    /// `ALTER ROLE name SET safe_migrations.<setting> = <value>` for each pair.
    pub fn create_role(&self, name: &str, settings: &[(&str, &str)]) {
        let role = policy::sql::ident(name);
        let mut sql = format!(
            "CREATE ROLE {role} LOGIN PASSWORD {pw}; GRANT CREATE ON SCHEMA public TO {role}; \
             GRANT CREATE ON DATABASE postgres TO {role};",
            pw = policy::sql::literal(name)
        );
        for (setting, value) in settings {
            sql.push_str(&format!(
                " ALTER ROLE {role} SET safe_migrations.{setting} = {};",
                policy::sql::literal(value)
            ));
        }
        self.execute(&self.superuser_url(), &sql);
    }

    /// Is a postmaster still running for this cluster?
    pub fn is_running(&self) -> bool {
        self.data_dir().join("postmaster.pid").exists()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(&format!("{}/pg_ctl", pg_bin()))
            .arg("-D")
            .arg(self.data_dir())
            .args(["stop", "-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_dir_all(&self.dir);
        if let Some(mut guardian) = self.guardian.take() {
            let _ = guardian.kill();
            let _ = guardian.wait();
        }
    }
}

/// The `safe-migrations` binary: `SAFE_MIGRATIONS_BIN`, else next to this test binary's
/// target dir (`target/debug/safe-migrations`).
pub fn safe_migrations_bin() -> PathBuf {
    if let Ok(path) = std::env::var("SAFE_MIGRATIONS_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/<test binary> -> target/debug/safe-migrations
    let profile_dir = exe.parent().and_then(Path::parent).expect("target profile dir");
    let bin = profile_dir.join("safe-migrations");
    assert!(
        bin.exists(),
        "{} does not exist: build it first (cargo build -p safe-migrations) or set SAFE_MIGRATIONS_BIN",
        bin.display()
    );
    bin
}

/// The proxy binary running in front of a cluster; killed on drop, and by the kernel
/// if the test process dies (parent-death signal). Its log goes to a file (`log()`),
/// not into the test output.
pub struct Proxy {
    child: Child,
    port: u16,
    log_path: PathBuf,
}

impl Proxy {
    pub fn start(cluster: &Cluster, args: &[&str]) -> Proxy {
        Proxy::start_upstream(&format!("127.0.0.1:{}", cluster.port()), args)
    }

    /// A proxy in front of any upstream address (e.g. one where nothing listens).
    pub fn start_upstream(upstream: &str, args: &[&str]) -> Proxy {
        let port = free_port();
        static PROXY_SEQ: AtomicU32 = AtomicU32::new(0);
        let seq = PROXY_SEQ.fetch_add(1, Ordering::Relaxed);
        let log_path = std::env::temp_dir().join(format!("sm-proxy-{}-{seq}-{port}.log", std::process::id()));
        let log_file = fs::File::create(&log_path).expect("create proxy log");
        let mut cmd = Command::new(safe_migrations_bin());
        cmd.args([
            "proxy",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--upstream",
            upstream,
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("clone the proxy log handle"))
        .stderr(log_file)
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()));
        // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of the calling (child)
        // process and is async-signal-safe, as pre_exec requires.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn safe-migrations proxy");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "proxy exited before listening: {status}\n{}",
                    fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "proxy did not listen on {port} within 20s");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The port answered: it must be this proxy that answered, not one that has it.
        std::thread::sleep(Duration::from_millis(20));
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "proxy exited after its port answered: {status}\n{}",
                fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        Proxy { child, port, log_path }
    }

    /// What the proxy logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self, user: &str, db: &str) -> String {
        let password = if user == SUPERUSER { SUPERUSER_PASSWORD } else { user };
        format!("postgres://{user}:{password}@127.0.0.1:{}/{db}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Still running?
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Send SIGHUP, as a service manager's reload does.
    pub fn hang_up(&mut self) {
        assert!(self.is_alive(), "the proxy exited before SIGHUP:\n{}", self.log());
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) only sends a signal to our unreaped child (see `terminate`).
        let sent = unsafe { libc::kill(pid, libc::SIGHUP) };
        assert_eq!(sent, 0, "kill -HUP {pid}: {}", std::io::Error::last_os_error());
    }

    /// Send SIGTERM, as a service manager does to stop the proxy.
    pub fn terminate(&mut self) {
        assert!(self.is_alive(), "the proxy exited before SIGTERM:\n{}", self.log());
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) only sends a signal. The pid is our child and still unreaped
        // (try_wait just saw it running, and only `&mut self` methods reap it), so it
        // cannot name another process.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(sent, 0, "kill -TERM {pid}: {}", std::io::Error::last_os_error());
    }

    /// The exit status, once the process has exited; panics with the log if it is still
    /// running after `timeout`.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the proxy") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the proxy still runs after {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- proxy log ---\n{}", self.log());
        }
        let _ = fs::remove_file(&self.log_path);
    }
}

/// Null-terminated strings back to back, as the wire protocol writes them (raw-socket tests).
pub fn cstrings(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(part.as_bytes());
        out.push(0);
    }
    out
}

/// A seeded generator for the tests that make up their inputs (xorshift64*, seeds spread
/// by splitmix64 so neighbouring seeds give unrelated streams): small, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// 0..n (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// `name` from the environment as a number, or `default`; panics naming a bad value.
pub fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
        Err(_) => default,
    }
}

/// Read `stream` until the peer closes it (or resets it), at most `limit` from now:
/// Ok(what was read), or Err(how many bytes were read) if it was still open then.
pub fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Result<Vec<u8>, usize> {
    let deadline = Instant::now() + limit;
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(received.len());
        }
        stream.set_read_timeout(Some(left)).expect("a read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return Ok(received),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(err)
                if matches!(
                    err.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => return Ok(received),
        }
    }
}
