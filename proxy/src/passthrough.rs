//! Unguarded sessions after authentication: bytes copied both ways as they come, never
//! parsed. Over plain TCP on both legs the copy works on the sockets themselves (no
//! split halves, one read and one write per chunk) and can busy-poll: after traffic, a
//! session that has its thread to itself keeps looking at its sockets for up to
//! `--busy-poll-us` before it sleeps, so the reply that is due in a few microseconds is
//! picked up without a wake-up. At one client that wake-up is most of what the extra
//! hop costs (bench/RESULTS.md); the price is a core kept busy while the session is.
//!
//! Each direction keeps its own pending bytes, so a peer that stops reading stalls only
//! the direction towards it: the other keeps flowing (a server's notices during a long
//! COPY FROM, for one, cannot deadlock the copy).

use std::cell::Cell;
use std::io::{self, ErrorKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes read at once from either side (the size of `tokio::io::copy`'s buffer).
const CHUNK: usize = 64 * 1024;

/// Rounds of copying in a row before the session lets its thread's other tasks run.
const ROUNDS_BEFORE_YIELD: u32 = 64;

thread_local! {
    /// Sessions on this thread's runtime (sessions never move between threads).
    static SESSIONS_ON_THIS_THREAD: Cell<usize> = const { Cell::new(0) };
}

/// Sessions busy-polling right now, across threads.
static SPINNING: AtomicUsize = AtomicUsize::new(0);

/// Counts a session on its thread while it lives (also when its task is aborted).
pub struct OnThisThread(());

impl OnThisThread {
    pub fn enter() -> OnThisThread {
        SESSIONS_ON_THIS_THREAD.with(|n| n.set(n.get() + 1));
        OnThisThread(())
    }
}

impl Drop for OnThisThread {
    fn drop(&mut self) {
        SESSIONS_ON_THIS_THREAD.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// When a session may busy-poll instead of sleeping.
#[derive(Debug, Clone, Copy)]
pub struct BusyPoll {
    /// How long after the last byte moved (zero: never).
    pub window: Duration,
    /// How many sessions may poll at once: half the cores, so the client and the server
    /// always keep a core between them (none on a 1-core machine).
    pub max_spinning: usize,
}

impl BusyPoll {
    pub fn new(window: Duration) -> BusyPoll {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        BusyPoll {
            window,
            max_spinning: cores / 2,
        }
    }

    pub fn off() -> BusyPoll {
        BusyPoll {
            window: Duration::ZERO,
            max_spinning: 0,
        }
    }
}

/// A permit to busy-poll, given back when the session goes to sleep or ends.
struct Spinning(bool);

impl Spinning {
    /// Take a permit if the session is alone on its thread and fewer than `max` poll.
    fn try_acquire(&mut self, max: usize) -> bool {
        if self.0 {
            return SESSIONS_ON_THIS_THREAD.with(Cell::get) <= 1 || self.release();
        }
        if SESSIONS_ON_THIS_THREAD.with(Cell::get) > 1 {
            return false;
        }
        self.0 = SPINNING
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .is_ok();
        self.0
    }

    /// Give the permit back; always false (no longer polling).
    fn release(&mut self) -> bool {
        if std::mem::take(&mut self.0) {
            SPINNING.fetch_sub(1, Ordering::AcqRel);
        }
        false
    }
}

impl Drop for Spinning {
    fn drop(&mut self) {
        self.release();
    }
}

/// Which side failed, for the session's error.
#[derive(Debug)]
pub enum Failed {
    Client(io::Error),
    Server(io::Error),
}

/// One direction of the copy: bytes read from `from` and not yet written to `to`.
struct Direction {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// `from` reached its end: `to` was shut down for writing once the rest was written.
    done: bool,
}

impl Direction {
    fn new(first: &[u8]) -> Direction {
        let mut buf = vec![0u8; CHUNK.max(first.len())].into_boxed_slice();
        buf[..first.len()].copy_from_slice(first);
        Direction {
            buf,
            start: 0,
            end: first.len(),
            done: false,
        }
    }

    fn pending(&self) -> bool {
        self.start < self.end
    }

    /// Move what can move without waiting; true if any byte did. Errors name the side:
    /// reading fails on `from`, writing on `to`. `poll`: read with a system call whatever
    /// the runtime last heard of the socket (busy-polling: the runtime only hears when
    /// the session yields to it).
    fn step(&mut self, from: &TcpStream, to: &TcpStream, poll: bool) -> Result<bool, (bool, io::Error)> {
        let mut moved = false;
        loop {
            if self.pending() {
                match to.try_write(&self.buf[self.start..self.end]) {
                    Ok(n) => {
                        self.start += n;
                        moved = true;
                        if self.pending() {
                            continue;
                        }
                    }
                    Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(moved),
                    Err(err) => return Err((false, err)),
                }
            }
            if self.done {
                return Ok(moved);
            }
            match read(from, &mut self.buf[..CHUNK], poll) {
                Ok(0) => {
                    self.done = true;
                    // Half-close: the peer sees the end, the other direction goes on.
                    shutdown_write(to).map_err(|err| (false, err))?;
                    return Ok(true);
                }
                Ok(n) => {
                    self.start = 0;
                    self.end = n;
                    moved = true;
                    if n < CHUNK && !poll {
                        // A short read drained the socket (epoll): forget its readiness now
                        // rather than learn it from one more read that would block, as
                        // tokio's own reads do. Bytes that arrived meanwhile raise a new event.
                        let _ = from.try_io(Interest::READABLE, || Err::<(), _>(ErrorKind::WouldBlock.into()));
                    }
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(moved),
                Err(err) => return Err((true, err)),
            }
        }
    }

    fn finished(&self) -> bool {
        self.done && !self.pending()
    }

    /// Ready when this direction can move again; never for a finished one. Uses the
    /// sockets' single read and write waker slots (as tokio's own copy does), not the
    /// waiter lists of `readable()`/`writable()`: nothing to register and unregister per
    /// wake-up. Each slot has one user: up reads the client and writes the server, down
    /// the other way round.
    fn poll_ready(
        &self,
        from: &TcpStream,
        to: &TcpStream,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), (bool, io::Error)>> {
        if self.finished() {
            Poll::Pending
        } else if self.pending() {
            to.poll_write_ready(cx).map_err(|err| (false, err))
        } else {
            from.poll_read_ready(cx).map_err(|err| (true, err))
        }
    }
}

/// Read what is there, without waiting. The sockets are non-blocking (tokio made them so):
/// a direct read returns WouldBlock when there is nothing, like `try_read` does when the
/// runtime has not seen the socket become readable.
fn read(from: &TcpStream, buf: &mut [u8], poll: bool) -> io::Result<usize> {
    if poll {
        use std::io::Read;
        (&*socket2::SockRef::from(from)).read(buf)
    } else {
        from.try_read(buf)
    }
}

fn shutdown_write(stream: &TcpStream) -> io::Result<()> {
    match socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write) {
        Err(err) if err.kind() == ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

/// Copy both ways until both sides have ended. `client_rest` and `server_rest` are bytes
/// already read from each side (behind the last message the session handled).
pub async fn tcp(
    client: &TcpStream,
    server: &TcpStream,
    client_rest: Bytes,
    server_rest: Bytes,
    busy_poll: BusyPoll,
) -> Result<(), Failed> {
    let mut up = Direction::new(&client_rest);
    let mut down = Direction::new(&server_rest);
    let mut spinning = Spinning(false);
    let mut last_moved = Instant::now();
    let mut rounds = 0u32;
    let mut polling = false;
    let failed = |is_client: bool| {
        move |(reading, err): (bool, io::Error)| {
            if reading == is_client {
                Failed::Client(err)
            } else {
                Failed::Server(err)
            }
        }
    };
    loop {
        let moved_up = up.step(client, server, polling).map_err(failed(true))?;
        let moved_down = down.step(server, client, polling).map_err(failed(false))?;
        if up.finished() && down.finished() {
            return Ok(());
        }
        if moved_up || moved_down {
            last_moved = Instant::now();
        } else if last_moved.elapsed() < busy_poll.window && spinning.try_acquire(busy_poll.max_spinning) {
            polling = true;
            std::hint::spin_loop();
        } else if polling {
            // One more round through the runtime's view of the sockets before sleeping:
            // its WouldBlock means a byte arriving from now on wakes the session.
            polling = false;
            continue;
        } else {
            spinning.release();
            rounds = 0;
            std::future::poll_fn(|cx| {
                if let Poll::Ready(ready) = up.poll_ready(client, server, cx) {
                    return Poll::Ready(ready.map_err(failed(true)));
                }
                down.poll_ready(server, client, cx).map_err(failed(false))
            })
            .await?;
            continue;
        }
        rounds += 1;
        if rounds >= ROUNDS_BEFORE_YIELD {
            // Let the thread's other tasks (a new session, the shutdown) run.
            rounds = 0;
            tokio::task::yield_now().await;
        }
    }
}
