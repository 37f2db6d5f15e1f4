//! [`LinkMonitor`]: a backend's connection lost and back again, as one `warn` event and
//! one count each per outage, however many commands fail while it lasts.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{names, DEGRADED_TARGET};

/// What a backend knows about its connection, reported once per change: call
/// [`lost`](Self::lost) whenever the connection is seen broken (a command failing as
/// unavailable, the client's error event) and [`up`](Self::up) whenever it is seen
/// working (a command answered, the client's reconnect event). Only the first `lost`
/// after an `up`, and the first `up` after a `lost`, emit; the hot path of `up` is one
/// relaxed load.
#[derive(Debug)]
pub struct LinkMonitor {
    server: String,
    lost: AtomicBool,
    /// Set by [`close`](Self::close): a closed connection's errors are not an outage.
    closed: AtomicBool,
}

impl LinkMonitor {
    /// Monitors the connection to `server` (the redacted address the backend's errors
    /// name; never a password).
    pub fn new(server: impl Into<String>) -> Self {
        LinkMonitor {
            server: server.into(),
            lost: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        }
    }

    /// The connection was seen broken, because of `error` (a message that names the
    /// server, never a key). The first call of an outage warns on
    /// [`DEGRADED_TARGET`](super::DEGRADED_TARGET) (`state = lost`) and counts
    /// [`names::CONNECTION_LOST`].
    pub fn lost(&self, error: &dyn Display) {
        if self.closed.load(Ordering::Relaxed) || self.lost.swap(true, Ordering::Relaxed) {
            return;
        }
        let server = self.server.as_str();
        tracing::warn!(
            target: DEGRADED_TARGET,
            state = "lost",
            server,
            error = %error,
            "rustauth-kv lost its connection to {server}: {error}"
        );
        metrics::counter!(names::CONNECTION_LOST).increment(1);
    }

    /// The connection was seen working. After a loss, warns (`state = reconnected`, the
    /// end of the outage on the same target) and counts [`names::RECONNECTS`].
    pub fn up(&self) {
        if !self.lost.load(Ordering::Relaxed) || !self.lost.swap(false, Ordering::Relaxed) {
            return;
        }
        let server = self.server.as_str();
        tracing::warn!(
            target: DEGRADED_TARGET,
            state = "reconnected",
            server,
            "rustauth-kv is connected to {server} again"
        );
        metrics::counter!(names::RECONNECTS).increment(1);
    }

    /// Reports what a command's `result` shows about the connection: an answer (a reply
    /// or the server's error reply) is [`up`](Self::up), an
    /// [`Unavailable`](crate::ErrorKind::Unavailable) error is [`lost`](Self::lost); a
    /// timeout shows neither (a hung server is not a broken connection).
    pub fn observe<T>(&self, result: &crate::KvResult<T>) {
        use crate::ErrorKind;
        match result {
            Ok(_) => self.up(),
            Err(e) => match e.kind() {
                ErrorKind::Unavailable => self.lost(e),
                ErrorKind::Server | ErrorKind::Script => self.up(),
                _ => {}
            },
        }
    }

    /// The connection was closed on purpose: nothing is reported from now on.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Whether the connection is seen lost now.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }
}
