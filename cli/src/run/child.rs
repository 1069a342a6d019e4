//! The guarded command as a child process: started, sent the signals `run` receives, and
//! waited for; its exit status becomes `run`'s.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitCode;

use tokio::signal::unix::{signal, Signal, SignalKind};

/// Run `command` to its end, forwarding SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and
/// SIGUSR2. Its exit code is returned as is; death by a signal as 128 + the signal, as
/// shells report it.
pub fn run(command: std::process::Command) -> std::io::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        // Handlers first: a signal that arrives once the command runs is its to receive.
        let mut signals = Forwarded::new()?;
        let mut child = tokio::process::Command::from(command).spawn()?;
        let Some(pid) = child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()) else {
            return Ok(exit_code(child.wait().await?));
        };
        loop {
            tokio::select! {
                status = child.wait() => return Ok(exit_code(status?)),
                signo = signals.next() => forward(pid, signo),
            }
        }
    })
}

fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code as u8),
        (None, Some(signo)) => ExitCode::from(128u8.wrapping_add(signo as u8)),
        (None, None) => ExitCode::FAILURE,
    }
}

struct Forwarded {
    streams: Vec<(libc::c_int, Signal)>,
}

impl Forwarded {
    fn new() -> std::io::Result<Forwarded> {
        let kinds = [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
        ];
        let streams = kinds
            .into_iter()
            .map(|signo| Ok((signo, signal(SignalKind::from_raw(signo))?)))
            .collect::<std::io::Result<_>>()?;
        Ok(Forwarded { streams })
    }

    /// The next signal received.
    async fn next(&mut self) -> libc::c_int {
        std::future::poll_fn(|cx| {
            for (signo, stream) in &mut self.streams {
                if stream.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(*signo);
                }
            }
            std::task::Poll::Pending
        })
        .await
    }
}

/// Send `signo` on to the command, unless the terminal already sent it: a Ctrl-C (or
/// Ctrl-\) goes to the terminal's whole foreground process group, the command included.
fn forward(pid: libc::pid_t, signo: libc::c_int) {
    if matches!(signo, libc::SIGINT | libc::SIGQUIT) && in_foreground_of_terminal() {
        return;
    }
    // SAFETY: kill(2) only sends a signal. `pid` is the command's, still unreaped (this
    // runs only while its wait has not completed), so it names no other process.
    unsafe {
        libc::kill(pid, signo);
    }
}

/// Is this process in the foreground process group of its controlling terminal (the
/// group a Ctrl-C goes to), whatever its standard input is?
fn in_foreground_of_terminal() -> bool {
    use std::os::fd::AsRawFd;
    // No controlling terminal: no Ctrl-C came from one.
    let Ok(tty) = std::fs::File::open("/dev/tty") else {
        return false;
    };
    // SAFETY: tcgetpgrp and getpgrp only read process state; `tty` is open for the call.
    unsafe { libc::tcgetpgrp(tty.as_raw_fd()) == libc::getpgrp() }
}
