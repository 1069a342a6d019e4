//! What operators watch (`--metrics-listen`): counters of this proxy process, served as
//! OpenMetrics text (`GET /metrics`), as PgBouncer exporters and pgdog expose theirs.
//! The counters are process-wide (one proxy per process); sessions open is read from the
//! listener's own count.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A counter of the process.
pub struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    pub fn add(&self) {
        self.add_n(1);
    }

    pub fn add_n(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Client connections accepted (sessions, cancel requests, connections that said nothing).
pub static CONNECTIONS: Counter = Counter::new();
/// Client sessions that logged in, by whether their role is guarded.
pub static GUARDED_SESSIONS: Counter = Counter::new();
pub static UNGUARDED_SESSIONS: Counter = Counter::new();
/// Statements of guarded sessions the policy decided.
pub static STATEMENTS_JUDGED: Counter = Counter::new();
/// Lock waits that gave up under the cap and were tried again, and those that failed
/// the statement after the last try.
pub static LOCK_RETRIES: Counter = Counter::new();
pub static LOCK_TIMEOUT_FAILURES: Counter = Counter::new();
/// Connections to the server that failed (refused, timed out, TLS).
pub static UPSTREAM_CONNECT_ERRORS: Counter = Counter::new();
/// Refusals and acknowledgements, by rule.
static REFUSALS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
static ACKNOWLEDGEMENTS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

fn count(counts: &Mutex<BTreeMap<String, u64>>, rule: &str) {
    let mut counts = counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    *counts.entry(rule.to_string()).or_default() += 1;
}

/// A statement refused by `rule`.
pub fn refused(rule: &str) {
    count(&REFUSALS, rule)
}

/// A finding of `rule` let through by an acknowledgement comment.
pub fn acknowledged(rule: &str) {
    count(&ACKNOWLEDGEMENTS, rule)
}

/// The OpenMetrics exposition: every family with its TYPE and HELP, `# EOF` last.
pub fn render(sessions_open: usize) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        out.push_str(&format!("# TYPE {name} {kind}\n# HELP {name} {help}\n"));
        for (labels, value) in samples {
            let suffix = if kind == "counter" { "_total" } else { "" };
            out.push_str(&format!("{name}{suffix}{labels} {value}\n"));
        }
    };
    family(
        "safe_migrations_sessions_open",
        "gauge",
        "Client connections open now (logging in or logged in).",
        &[(String::new(), sessions_open as u64)],
    );
    family(
        "safe_migrations_sessions",
        "counter",
        "Client sessions that logged in, by whether their role is guarded.",
        &[
            ("{guarded=\"true\"}".to_string(), GUARDED_SESSIONS.get()),
            ("{guarded=\"false\"}".to_string(), UNGUARDED_SESSIONS.get()),
        ],
    );
    family(
        "safe_migrations_statements_judged",
        "counter",
        "Statements of guarded sessions the policy decided.",
        &[(String::new(), STATEMENTS_JUDGED.get())],
    );
    let by_rule = |counts: &Mutex<BTreeMap<String, u64>>| -> Vec<(String, u64)> {
        counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(rule, count)| (format!("{{rule=\"{}\"}}", escape_label(rule)), *count))
            .collect()
    };
    family(
        "safe_migrations_refusals",
        "counter",
        "Statements refused, by rule.",
        &by_rule(&REFUSALS),
    );
    family(
        "safe_migrations_acknowledgements",
        "counter",
        "Findings let through by an acknowledgement comment, by rule.",
        &by_rule(&ACKNOWLEDGEMENTS),
    );
    family(
        "safe_migrations_lock_retries",
        "counter",
        "Lock waits that gave up under the lock_timeout cap and were tried again.",
        &[(String::new(), LOCK_RETRIES.get())],
    );
    family(
        "safe_migrations_lock_timeout_failures",
        "counter",
        "Statements failed because their lock wait gave up after the last try.",
        &[(String::new(), LOCK_TIMEOUT_FAILURES.get())],
    );
    family(
        "safe_migrations_upstream_connect_errors",
        "counter",
        "Connections to the server that failed.",
        &[(String::new(), UPSTREAM_CONNECT_ERRORS.get())],
    );
    out.push_str("# EOF\n");
    out
}

fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Scrapes answered at the same time; connections beyond are closed unanswered.
pub const MAX_SCRAPES: usize = 8;

/// Answer one HTTP connection: `GET /metrics` gets the exposition, anything else 404
/// (a request that does not arrive within 5 s, or is larger than 8 KiB, is dropped).
pub async fn serve_one(mut stream: tokio::net::TcpStream, sessions_open: impl Fn() -> usize) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        true
    };
    if !matches!(
        tokio::time::timeout(std::time::Duration::from_secs(5), read).await,
        Ok(true)
    ) {
        return;
    }
    let line = String::from_utf8_lossy(&request[..request.iter().position(|&b| b == b'\r').unwrap_or(0)]).into_owned();
    let mut parts = line.split(' ');
    let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let response = if (method == "GET" || method == "HEAD") && (path == "/metrics" || path.starts_with("/metrics?")) {
        let body = render(sessions_open());
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        if method == "HEAD" {
            head
        } else {
            head + &body
        }
    } else {
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 24\r\nConnection: close\r\n\r\nonly GET /metrics here.\n"
            .to_string()
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_exposed_with_total_and_eof() {
        refused("create_index_non_concurrently");
        let text = render(2);
        assert!(text.contains("safe_migrations_sessions_open 2\n"), "{text}");
        assert!(
            text.contains("safe_migrations_refusals_total{rule=\"create_index_non_concurrently\"} "),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
