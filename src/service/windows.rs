//! What the two windows into a running daemon share: how they ask the service for the
//! status, how many connections each serves at once, and their own counters.
//!
//! Owns: [`Ask`] and [`gather`], [`Slots`] (connections at once: a new one replaces the oldest
//! that has not sent its request, else it is closed; memory stays bounded), and the windows'
//! counters ([`Windows`]).
//!
//! Must not: listen or speak a protocol (that is [`super::control`] and [`super::metrics`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::status::{Status, Windows};

/// How a window asks the service for the current status.
pub type Ask = mpsc::Sender<oneshot::Sender<Status>>;

/// Connections closed at a window's limit are logged (at debug) at most this often.
pub(super) const SHED_NOTE_EVERY: Duration = Duration::from_secs(60);

pub(super) static METRICS_RENDERS: AtomicU64 = AtomicU64::new(0);
pub(super) static METRICS_SHED: AtomicU64 = AtomicU64::new(0);
pub(super) static CONTROL_SHED: AtomicU64 = AtomicU64::new(0);

/// The windows' own counters, as the status reports them.
pub(super) fn windows() -> Windows {
    Windows {
        metrics_renders: METRICS_RENDERS.load(Ordering::Relaxed),
        metrics_connections_shed: METRICS_SHED.load(Ordering::Relaxed),
        control_connections_shed: CONTROL_SHED.load(Ordering::Relaxed),
    }
}

/// The connections one window serves at once. When all are taken, a new connection takes the
/// place of the oldest one that has not sent its request yet (a slow or idle client: held
/// connections cannot lock everyone out), or is closed at once when every one is busy
/// answering. Either way memory stays bounded.
pub(super) struct Slots {
    window: &'static str,
    cap: usize,
    live: VecDeque<Slot>,
    shed: &'static AtomicU64,
    noted: Option<Instant>,
    unnoted: u64,
}

pub(super) struct Slot {
    task: JoinHandle<()>,
    /// Set once the client's request is in.
    asked: Arc<AtomicBool>,
}

impl Slots {
    pub(super) fn new(window: &'static str, cap: usize, shed: &'static AtomicU64) -> Slots {
        Slots {
            window,
            cap,
            live: VecDeque::with_capacity(cap),
            shed,
            noted: None,
            unnoted: 0,
        }
    }

    /// Make room for a new connection; false when there is none (close the new one).
    pub(super) fn admit(&mut self) -> bool {
        self.live.retain(|s| !s.task.is_finished());
        if self.live.len() < self.cap {
            return true;
        }
        let idle = self
            .live
            .iter()
            .position(|s| !s.asked.load(Ordering::Relaxed));
        let room = match idle.and_then(|i| self.live.remove(i)) {
            Some(oldest) => {
                oldest.task.abort();
                true
            }
            None => false,
        };
        self.shed.fetch_add(1, Ordering::Relaxed);
        self.unnoted += 1;
        if self.noted.is_none_or(|t| t.elapsed() >= SHED_NOTE_EVERY) {
            debug!(
                "{}: {} connection(s) closed at the limit of {} at once since the last such note (all are counted in the status and metrics)",
                self.window, self.unnoted, self.cap
            );
            self.noted = Some(Instant::now());
            self.unnoted = 0;
        }
        room
    }

    pub(super) fn add(&mut self, task: JoinHandle<()>, asked: Arc<AtomicBool>) {
        self.live.push_back(Slot { task, asked });
    }
}

pub(super) async fn gather(ask: &Ask) -> Option<Status> {
    let (tx, rx) = oneshot::channel();
    ask.send(tx).await.ok()?;
    let mut status = rx.await.ok()?;
    status.windows = windows();
    Some(status)
}
