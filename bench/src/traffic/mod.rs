//! The load generator: the solicitations it sends ([`plan`]), the paced and flood senders
//! ([`send`]), the receiver that matches each advertisement to its solicitation and records the
//! latency ([`ring`], [`histogram`]), and the state they share ([`Shared`]).
//!
//! Owns: the traffic of a measurement, from the frames to the counts; the state the senders
//! and the receiver share. Must not: start or stop responders, build namespaces, or judge the
//! figures (that is `measure` and `report`).
//!
//! Matching: every valid NS occupies a *slot* = (solicitor, target). The solicitor is one of
//! `solicitors` source addresses (link-local `fe80::100:ID` for multicast resolution NS, global
//! `2001:db8:1::100:ID` for unicast NUD NS), the target one of `targets` addresses of the
//! prefix. Every responder sends its NA to the solicitor's address, so the NA's destination and
//! target name the slot. Slots are used round-robin, so a slot is reused only after
//! `solicitors * targets` further NS (32,768 by default: 164 ms at 200,000 NS/s); an NA that
//! comes later than that is matched to the newer NS or counted as late.
//!
//! Timestamps: the send time of an NS is CLOCK_REALTIME read just before the `sendmmsg` call
//! that carries it (stamped into its slot before the call, so an NA can never beat its stamp);
//! the receive time of an NA is the kernel's software timestamp of the frame on the
//! generator's interface (TPACKET_V3 ring, CLOCK_REALTIME), taken as the frame enters that
//! interface's input queue ([`crate::sys::stamp_arrivals`]). Latency therefore includes at most
//! one call's worth of send time ([`send::PACED_BATCH`] frames when paced).
//!
//! Memory is fixed once built: the frames, the slots and the latency histogram are allocated
//! before the first packet and never grow.

mod histogram;
mod plan;
mod ring;
mod send;

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::sys::{bail, Result};

pub use histogram::Histogram;
pub use plan::{flood_frames, valid_frames, Answered, FrameSet, Plan, FLOOD_MIX};
pub use ring::{receive, Ring, RING_RETIRE_MS};
pub use send::{
    send_flood, send_one, send_valid, Mixed, ThreadSetup, TxSocket, BATCH, PACED_BATCH, PACE_MIN,
};

/// What the receiver has seen since the last reset.
#[derive(Clone, Default)]
pub struct RxStats {
    pub answered: [u64; 2],
    pub latency: Histogram,
    /// NAs for a slot that was not waiting (a second answer, or one older than the slot's NS).
    pub late_or_duplicate: u64,
    /// NAs sent to a flood source: a responder answered an invalid or out-of-range NS.
    pub flood_answers: u64,
    /// NAs that match nothing we sent.
    pub unknown: u64,
    /// Frames that passed the ring's filter but are not well-formed NAs.
    pub malformed: u64,
    pub total: u64,
}

impl RxStats {
    fn reset(&mut self) {
        self.answered = [0; 2];
        self.latency.reset();
        self.late_or_duplicate = 0;
        self.flood_answers = 0;
        self.unknown = 0;
        self.malformed = 0;
        self.total = 0;
    }
}

/// State shared by the senders, the receiver and the orchestration.
pub struct Shared {
    /// Per slot: 0 when no NS waits, else (send time in ns << 1) | kind.
    pub(super) slots: Vec<AtomicU64>,
    pub stats: Mutex<RxStats>,
    /// Bumped by the receiver for every NA (lets the orchestration see answers stop coming).
    pub seen: AtomicU64,
    pub stop: AtomicBool,
    /// Packets the ring dropped because it was full (receiver too slow).
    pub ring_drops: AtomicU64,
    pub receiver_cpu_ns: AtomicU64,
    pub receiver_error: Mutex<Option<String>>,
    /// Set when the receiver has entered its loop.
    pub receiver_running: AtomicU32,
}

impl Shared {
    pub fn new(plan: &Plan) -> Arc<Shared> {
        Arc::new(Shared {
            slots: (0..plan.slots()).map(|_| AtomicU64::new(0)).collect(),
            stats: Mutex::new(RxStats::default()),
            seen: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            ring_drops: AtomicU64::new(0),
            receiver_cpu_ns: AtomicU64::new(0),
            receiver_error: Mutex::new(None),
            receiver_running: AtomicU32::new(0),
        })
    }

    /// Forget every waiting NS and every count (between stages).
    pub fn reset(&self) {
        for slot in &self.slots {
            slot.store(0, Ordering::Release);
        }
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).reset();
    }

    pub fn take_stats(&self) -> RxStats {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let out = stats.clone();
        stats.reset();
        out
    }

    pub fn answered(&self) -> u64 {
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.answered[0] + stats.answered[1]
    }
}

/// An AF_PACKET socket that receives nothing until it is bound (protocol 0): the receiver binds
/// its ring after attaching the filter; the senders never bind theirs.
pub(crate) fn packet_socket() -> Result<OwnedFd> {
    // Protocol 0: receives nothing until bound.
    // SAFETY: plain socket call.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        bail!(
            "opening a packet socket: {} (ndp-bench must run as root)",
            io::Error::last_os_error()
        );
    }
    // SAFETY: fd is a new descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
