//! The client's cancel requests, told to its session too. A CancelRequest is forwarded
//! to the server on a connection of its own (`Upstream::cancel`), which cancels what the
//! server runs; while the proxy itself holds a client's statement (the pause between two
//! attempts of a statement whose lock wait gave up) the server runs nothing of it, so the
//! session must hear of the cancel to stop retrying.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

/// The sessions that listen for cancels, by the server's BackendKeyData body (process id
/// and secret key), which is what a CancelRequest carries after its request code.
#[derive(Clone, Default)]
pub struct Cancels(Arc<Mutex<HashMap<Bytes, Arc<Signal>>>>);

/// One session's cancels: how many arrived, and a wake-up for a pause waiting on one.
#[derive(Default)]
pub struct Signal {
    count: AtomicU64,
    notify: Notify,
}

impl Signal {
    /// Cancels so far: one that arrives later makes it larger.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Wait until the count is above `seen` (returns at once if it already is).
    pub async fn after(&self, seen: u64) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the count is read: a cancel between the two still wakes it.
            notified.as_mut().enable();
            if self.count() > seen {
                return;
            }
            notified.await;
        }
    }
}

/// A session's place in `Cancels`, taken away when it is dropped.
pub struct Registration {
    cancels: Cancels,
    key: Bytes,
    pub signal: Arc<Signal>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut sessions) = self.cancels.0.lock() {
            if sessions
                .get(&self.key)
                .is_some_and(|signal| Arc::ptr_eq(signal, &self.signal))
            {
                sessions.remove(&self.key);
            }
        }
    }
}

impl Cancels {
    /// Listen for cancels of the session whose server key is `key`.
    pub fn register(&self, key: Bytes) -> Registration {
        let signal = Arc::new(Signal::default());
        if let Ok(mut sessions) = self.0.lock() {
            sessions.insert(key.clone(), signal.clone());
        }
        Registration {
            cancels: self.clone(),
            key,
            signal,
        }
    }

    /// A CancelRequest packet arrived (length, request code, process id, secret key of
    /// any length, as protocol 3.2 allows):
    /// tell the session it names, if it is one of the proxy's.
    pub fn cancel(&self, packet: &[u8]) {
        let Some(key) = packet.get(8..).filter(|key| !key.is_empty()) else {
            return;
        };
        let signal = self.0.lock().ok().and_then(|sessions| sessions.get(key).cloned());
        if let Some(signal) = signal {
            signal.count.fetch_add(1, Ordering::SeqCst);
            signal.notify.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(key: &[u8; 8]) -> Vec<u8> {
        let mut packet = vec![0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e];
        packet.extend_from_slice(key);
        packet
    }

    #[tokio::test]
    async fn a_cancel_reaches_the_session_it_names_only() {
        let cancels = Cancels::default();
        let one = cancels.register(Bytes::from_static(b"\0\0\0\x01keyA"));
        let two = cancels.register(Bytes::from_static(b"\0\0\0\x02keyB"));
        let seen = one.signal.count();
        let waiting = {
            let signal = one.signal.clone();
            tokio::spawn(async move { signal.after(seen).await })
        };
        cancels.cancel(&packet(b"\0\0\0\x01keyA"));
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(two.signal.count(), 0);
        // A short or foreign packet is ignored.
        cancels.cancel(b"\0\0\0\x08");
        cancels.cancel(&packet(b"\0\0\0\x03keyC"));
        drop(one);
        cancels.cancel(&packet(b"\0\0\0\x01keyA"));
        assert_eq!(cancels.0.lock().unwrap().len(), 1);
    }
}
