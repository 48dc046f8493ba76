//! The load generator: the solicitations it sends, the sockets it sends and receives with, the
//! paced and flood senders, and the receiver that matches each advertisement to its
//! solicitation and records the latency.
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
//! generator's interface (TPACKET_V3 ring, CLOCK_REALTIME). Latency therefore includes at most
//! one batch of send time (batches are small below saturation).
//!
//! Memory is fixed once built: the frames, the slots and the latency histogram are allocated
//! before the first packet and never grow.

use std::io;
use std::mem;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ndp_responder::ndp::{self, NeighborAdvert, NeighborSolicit};

use crate::sys::{self, bail, Context, Result};
use crate::topo::{DUT_MAC, GEN_MAC};

/// At most this many frames per `sendmmsg` call.
pub const BATCH: usize = 64;
/// The paced sender sleeps at least this long between batches (at 200,000 NS/s: batches of
/// about 10 frames; below 20,000 NS/s: one frame per wake-up).
pub const PACE_MIN: Duration = Duration::from_micros(50);
/// First target: 2001:db8:1::d:1000 (inside 2001:db8:1::d:0/112).
const TARGET_BASE: u16 = 0x1000;
/// Flood frames are sent from fe80::f00:X, so an answer to one is recognised.
const FLOOD_SOURCE: u16 = 0x0f00;
const SOLICITOR_TAG: u16 = 0x0100;

/// Multicast resolution NS or unicast NUD NS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Multicast = 0,
    Unicast = 1,
}

/// What the valid traffic looks like.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Plan {
    pub targets: u32,
    pub solicitors: u32,
    /// Every `unicast_every`-th target is asked by unicast NUD NS (0: never).
    pub unicast_every: u32,
}

/// What an NA turned out to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    Slot(usize, Kind),
    Flood,
    Unknown,
}

impl Plan {
    pub fn slots(&self) -> usize {
        self.targets as usize * self.solicitors as usize
    }

    pub fn target(&self, i: u32) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0xd, TARGET_BASE + i as u16)
    }

    pub fn targets(&self) -> Vec<Ipv6Addr> {
        (0..self.targets).map(|i| self.target(i)).collect()
    }

    pub fn solicitor(&self, kind: Kind, id: u32) -> Ipv6Addr {
        match kind {
            Kind::Multicast => Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, SOLICITOR_TAG, id as u16),
            Kind::Unicast => Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, SOLICITOR_TAG, id as u16),
        }
    }

    /// Every address the generator sends valid NS from.
    pub fn solicitors(&self) -> Vec<Ipv6Addr> {
        (0..self.solicitors)
            .flat_map(|id| {
                [
                    self.solicitor(Kind::Multicast, id),
                    self.solicitor(Kind::Unicast, id),
                ]
            })
            .collect()
    }

    pub fn kind(&self, slot: usize) -> Kind {
        let target = slot as u32 % self.targets;
        if self.unicast_every > 0 && target % self.unicast_every == self.unicast_every - 1 {
            Kind::Unicast
        } else {
            Kind::Multicast
        }
    }

    fn slot_parts(&self, slot: usize) -> (u32, u32) {
        (
            slot as u32 / self.targets, // solicitor
            slot as u32 % self.targets, // target
        )
    }

    /// The frame of the NS of `slot`.
    fn solicitation(&self, slot: usize) -> NeighborSolicit {
        let (id, t) = self.slot_parts(slot);
        let kind = self.kind(slot);
        let target = self.target(t);
        let source = self.solicitor(kind, id);
        match kind {
            Kind::Multicast => NeighborSolicit::resolution(GEN_MAC, source, target),
            Kind::Unicast => NeighborSolicit {
                eth_dst: DUT_MAC,
                ip_dst: target,
                ..NeighborSolicit::resolution(GEN_MAC, source, target)
            },
        }
    }

    /// Which NS an NA answers, from its destination (the solicitor) and its target.
    pub fn classify(&self, na: &NeighborAdvert) -> Answered {
        let dst = na.ip_dst.segments();
        let tgt = na.target.segments();
        let target = tgt[7].wrapping_sub(TARGET_BASE) as u32;
        let in_pool = tgt[..7] == [0x2001, 0xdb8, 1, 0, 0, 0, 0xd] && target < self.targets;
        let (kind, id) = match dst {
            [0xfe80, 0, 0, 0, 0, 0, FLOOD_SOURCE, _] => return Answered::Flood,
            [0xfe80, 0, 0, 0, 0, 0, SOLICITOR_TAG, id] => (Kind::Multicast, id as u32),
            [0x2001, 0xdb8, 1, 0, 0, 0, SOLICITOR_TAG, id] => (Kind::Unicast, id as u32),
            _ => return Answered::Unknown,
        };
        if !in_pool || id >= self.solicitors {
            return Answered::Unknown;
        }
        let slot = (id * self.targets + target) as usize;
        if self.kind(slot) != kind {
            return Answered::Unknown;
        }
        Answered::Slot(slot, kind)
    }
}

/// Frames laid out back to back at a fixed stride.
pub struct FrameSet {
    buf: Vec<u8>,
    lens: Vec<u16>,
}

const STRIDE: usize = 128;

impl FrameSet {
    fn with_capacity(n: usize) -> Self {
        FrameSet {
            buf: Vec::with_capacity(n * STRIDE),
            lens: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, frame: &[u8]) {
        let len = frame.len().min(STRIDE);
        self.buf.extend_from_slice(&frame[..len]);
        self.buf.resize(self.buf.len() + STRIDE - len, 0);
        self.lens.push(len as u16);
    }

    pub fn len(&self) -> usize {
        self.lens.len()
    }

    pub fn get(&self, i: usize) -> &[u8] {
        let start = i * STRIDE;
        &self.buf[start..start + self.lens[i] as usize]
    }
}

fn emit(ns: &NeighborSolicit) -> Vec<u8> {
    let mut buf = vec![0u8; ndp::MAX_EMIT_LEN];
    // MAX_EMIT_LEN always suffices (wire's contract).
    let len = ns.emit(&mut buf).unwrap_or(0);
    buf.truncate(len);
    buf
}

/// One frame per slot, in slot order.
pub fn valid_frames(plan: &Plan) -> FrameSet {
    let mut set = FrameSet::with_capacity(plan.slots());
    for slot in 0..plan.slots() {
        set.push(&emit(&plan.solicitation(slot)));
    }
    set
}

/// The flood: `count` frames no responder may answer, in this mix (by index modulo 20):
/// 40 % NS for targets of the /64 outside the prefix, 20 % for off-link targets
/// (2001:db8:2::/64), and for targets inside the prefix 10 % with a bad checksum, 10 % with hop
/// limit 64, 10 % with ICMP code 1, 5 % with a zero-length option (checksum valid), 5 % with an
/// ICMP message shorter than 24 octets.
pub const FLOOD_MIX: &str = "40 % NS for targets of the /64 outside the prefix (2001:db8:1::e:X), \
20 % for off-link targets (2001:db8:2::X), and for targets inside the prefix: 10 % bad checksum, \
10 % hop limit 64, 10 % ICMP code 1, 5 % zero-length option (checksum valid), 5 % ICMP shorter \
than 24 octets; all multicast to the target's solicited-node group, from fe80::f00:X";

pub fn flood_frames(plan: &Plan, count: usize) -> FrameSet {
    let mut set = FrameSet::with_capacity(count);
    for i in 0..count {
        let source = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, FLOOD_SOURCE, (i % 256) as u16);
        let in_prefix = plan.target(i as u32 % plan.targets);
        let ns = |target| NeighborSolicit::resolution(GEN_MAC, source, target);
        let frame = match i % 20 {
            0..=7 => emit(&ns(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0xe, i as u16))),
            8..=11 => emit(&ns(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, i as u16))),
            12 | 13 => {
                let mut f = emit(&ns(in_prefix));
                f[ndp::ICMPV6_TYPE_OFFSET + 2] ^= 0x5a; // checksum
                f
            }
            14 | 15 => emit(&NeighborSolicit {
                hop_limit: 64,
                ..ns(in_prefix)
            }),
            16 | 17 => emit(&NeighborSolicit {
                code: 1,
                ..ns(in_prefix)
            }),
            18 => {
                let mut f = emit(&ns(in_prefix));
                f[ndp::ICMPV6_TYPE_OFFSET + 24 + 1] = 0; // the SLLA option's length
                fix_checksum(&mut f);
                f
            }
            _ => {
                let mut f = emit(&ns(in_prefix));
                let short = 16u16; // ICMP length below 24
                f[18..20].copy_from_slice(&short.to_be_bytes()); // IPv6 payload length
                f.truncate(ndp::ICMPV6_TYPE_OFFSET + short as usize);
                fix_checksum(&mut f);
                f
            }
        };
        set.push(&frame);
    }
    set
}

/// Recompute the ICMPv6 checksum of an Ethernet + IPv6 + ICMPv6 frame (RFC 4443 2.3).
fn fix_checksum(frame: &mut [u8]) {
    let icmp = ndp::ICMPV6_TYPE_OFFSET;
    if frame.len() < icmp + 4 {
        return;
    }
    frame[icmp + 2] = 0;
    frame[icmp + 3] = 0;
    let len = frame.len() - icmp;
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = pair[0] as u32;
            let lo = pair.get(1).copied().unwrap_or(0) as u32;
            sum += hi << 8 | lo;
        }
    };
    add(&frame[22..54]); // source and destination
    add(&(len as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(&frame[icmp..]);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let checksum = !(sum as u16);
    frame[icmp + 2..icmp + 4].copy_from_slice(&checksum.to_be_bytes());
}

/// A latency histogram with fixed buckets: 1 µs wide up to 1 ms, 10 µs up to 10 ms, 100 µs up
/// to 100 ms, 10 ms up to 10 s, then one overflow bucket.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    pub total: u64,
    pub max_ns: u64,
}

const BUCKETS: usize = 1000 + 900 + 900 + 990 + 1;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max_ns: 0,
        }
    }
}

impl Histogram {
    fn bucket(ns: u64) -> usize {
        let us = ns / 1000;
        let b = match us {
            0..1_000 => us,
            1_000..10_000 => 1_000 + (us - 1_000) / 10,
            10_000..100_000 => 1_900 + (us - 10_000) / 100,
            100_000..10_000_000 => 2_800 + (us - 100_000) / 10_000,
            _ => BUCKETS as u64 - 1,
        };
        (b as usize).min(BUCKETS - 1)
    }

    /// The upper edge of bucket `b`, in microseconds.
    fn upper_us(b: usize) -> f64 {
        let b = b as f64;
        match b {
            x if x < 1_000.0 => x + 1.0,
            x if x < 1_900.0 => 1_000.0 + (x - 1_000.0 + 1.0) * 10.0,
            x if x < 2_800.0 => 10_000.0 + (x - 1_900.0 + 1.0) * 100.0,
            x => 100_000.0 + (x - 2_800.0 + 1.0) * 10_000.0,
        }
    }

    pub fn record(&mut self, ns: u64) {
        self.counts[Self::bucket(ns)] += 1;
        self.total += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    /// The `p`-quantile (0..=1) in microseconds: the upper edge of its bucket, at most the
    /// maximum seen. None when empty.
    pub fn quantile_us(&self, p: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((p * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (b, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Self::upper_us(b).min(self.max_ns as f64 / 1000.0));
            }
        }
        Some(self.max_ns as f64 / 1000.0)
    }

    pub fn reset(&mut self) {
        self.counts.fill(0);
        self.total = 0;
        self.max_ns = 0;
    }
}

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
    slots: Vec<AtomicU64>,
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

fn setsockopt<T>(fd: &OwnedFd, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: value points to a live T of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn packet_socket() -> Result<OwnedFd> {
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

/// A packet socket that sends whole frames out of the generator's interface, bypassing the
/// qdisc.
pub struct TxSocket {
    fd: OwnedFd,
    addr: libc::sockaddr_ll,
}

// SAFETY: sockaddr_ll is plain data; the descriptor may be used from any thread.
unsafe impl Send for TxSocket {}
unsafe impl Sync for TxSocket {}

/// Scratch space for one `sendmmsg` call, allocated once per sender.
pub struct Batch {
    iov: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl Default for Batch {
    fn default() -> Self {
        // SAFETY: iovec and mmsghdr are plain data; zero is a valid value.
        Batch {
            iov: (0..BATCH).map(|_| unsafe { mem::zeroed() }).collect(),
            msgs: (0..BATCH).map(|_| unsafe { mem::zeroed() }).collect(),
        }
    }
}

impl TxSocket {
    /// Open in namespace `ns` on interface index `ifindex`.
    pub fn open(ns: &str, ifindex: u32) -> Result<TxSocket> {
        sys::in_netns(ns, || {
            let fd = packet_socket()?;
            let _ = setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &1i32);
            let _ = setsockopt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &(4i32 << 20));
            // SAFETY: sockaddr_ll is plain data.
            let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = (libc::ETH_P_IPV6 as u16).to_be();
            addr.sll_ifindex = ifindex as i32;
            addr.sll_halen = 6;
            Ok(TxSocket { fd, addr })
        })
    }

    /// Send `frames` (at most [`BATCH`]) with one `sendmmsg`; how many went out.
    pub fn send(&self, frames: &[&[u8]], batch: &mut Batch) -> io::Result<usize> {
        let n = frames.len().min(BATCH);
        for (i, frame) in frames[..n].iter().enumerate() {
            batch.iov[i] = libc::iovec {
                iov_base: frame.as_ptr() as *mut libc::c_void,
                iov_len: frame.len(),
            };
            let hdr = &mut batch.msgs[i].msg_hdr;
            hdr.msg_name = (&self.addr as *const libc::sockaddr_ll) as *mut libc::c_void;
            hdr.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            hdr.msg_iov = &mut batch.iov[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
            hdr.msg_flags = 0;
        }
        // SAFETY: the first n mmsghdrs point at live iovecs, frames and the address; the
        // kernel only reads them.
        let rc =
            unsafe { libc::sendmmsg(self.fd.as_raw_fd(), batch.msgs.as_mut_ptr(), n as u32, 0) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(rc as usize)
    }
}

/// What one sender did.
#[derive(Debug, Clone, Default)]
pub struct SendResult {
    pub sent: [u64; 2],
    pub flood_sent: u64,
    /// Frames the host's input queue refused: counted as sent and lost, as on a real link.
    pub refused: u64,
    /// Other send errors (the frames are sent again).
    pub send_errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub cpu_ns: u64,
}

/// How many of the `n` frames of a `sendmmsg` were consumed: sent, or refused by the host.
///
/// veth reports a full input queue on the host synchronously: `sendmmsg` stops at the refused
/// frame (or fails with ENOBUFS on the first). That frame is lost, as it would be on a real
/// link whose receiver cannot keep up, so it counts as sent and the generator goes on (no
/// back-pressure: the offered rate does not depend on the responder). Any other error is
/// counted, and the frames are sent again after a pause.
fn consumed(result: io::Result<usize>, n: usize, out: &mut SendResult) -> usize {
    match result {
        Ok(k) if k >= n => n,
        Ok(k) => {
            out.refused += 1;
            k + 1
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
            out.refused += 1;
            1
        }
        Err(e) => {
            out.send_errors += 1;
            if out.first_error.is_none() {
                out.first_error = Some(e.to_string());
            }
            std::thread::sleep(Duration::from_millis(1));
            0
        }
    }
}

/// Where and how a sender thread runs.
#[derive(Clone, Copy)]
pub struct ThreadSetup {
    pub cpu: Option<usize>,
    pub nice: i32,
}

impl ThreadSetup {
    fn apply(&self) {
        if let Some(cpu) = self.cpu {
            let _ = sys::pin_current_thread(cpu);
        }
        if self.nice != 0 {
            sys::nice_current_thread(self.nice);
        }
        sys::precise_timers();
    }
}

fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        std::thread::sleep(at - now);
    }
}

/// Send valid NS at `rate` per second (None: as fast as possible) for `duration`, continuing
/// the slot sequence at `*seq`.
#[allow(clippy::too_many_arguments)]
pub fn send_valid(
    tx: &TxSocket,
    frames: &FrameSet,
    plan: &Plan,
    shared: &Shared,
    rate: Option<u64>,
    duration: Duration,
    seq: &mut u64,
    setup: ThreadSetup,
) -> SendResult {
    setup.apply();
    let cpu_start = sys::thread_cpu_ns();
    let mut out = SendResult::default();
    let mut batch = Batch::default();
    let mut picked: [usize; BATCH] = [0; BATCH];
    let mut stamps: [u64; BATCH] = [0; BATCH];
    let slots = plan.slots() as u64;
    let start = Instant::now();
    let end = start + duration;
    let mut sent_total: u64 = 0;
    loop {
        let now = Instant::now();
        if now >= end || shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let n = match rate {
            Some(r) => {
                let due = ((now - start).as_nanos() * r as u128 / 1_000_000_000) as u64;
                let n = due.saturating_sub(sent_total).min(BATCH as u64) as usize;
                if n == 0 {
                    let next = start
                        + Duration::from_nanos(
                            ((sent_total + 1) as u128 * 1_000_000_000 / r as u128) as u64,
                        );
                    // Wake at most every PACE_MIN: each wake-up costs the generator's CPU far
                    // more than a frame does; what fell due meanwhile goes in one batch.
                    sleep_until(next.max(now + PACE_MIN).min(end));
                    continue;
                }
                n
            }
            None => BATCH,
        };
        let t0 = sys::realtime_ns();
        let mut refs: [&[u8]; BATCH] = [&[]; BATCH];
        for j in 0..n {
            let slot = ((*seq + j as u64) % slots) as usize;
            let stamp = t0 << 1 | plan.kind(slot) as u64;
            shared.slots[slot].store(stamp, Ordering::Release);
            picked[j] = slot;
            stamps[j] = stamp;
            refs[j] = frames.get(slot);
        }
        let went = consumed(tx.send(&refs[..n], &mut batch), n, &mut out);
        for j in went..n {
            // Not sent: nothing will answer it.
            let _ = shared.slots[picked[j]].compare_exchange(
                stamps[j],
                0,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        for &slot in &picked[..went] {
            out.sent[plan.kind(slot) as usize] += 1;
        }
        *seq += went as u64;
        sent_total += went as u64;
    }
    out.elapsed = start.elapsed();
    out.cpu_ns = sys::thread_cpu_ns().saturating_sub(cpu_start);
    out
}

/// The valid stream mixed into a flood.
pub struct Mixed<'a> {
    pub frames: &'a FrameSet,
    pub plan: &'a Plan,
    /// Valid NS per second.
    pub rate: u64,
    pub seq: &'a mut u64,
}

/// Send the flood frames round-robin for `duration`, as fast as possible or at `rate` frames
/// per second, with the valid NS of `mixed` (if any) placed at pseudo-random positions inside
/// the flood's batches. One thread
/// sends both, so a valid NS meets the host in exactly the state a flood frame does (a second
/// sender thread would interrupt the flood just before each valid NS, which lets the host
/// catch up and favours the valid stream).
pub fn send_flood(
    tx: &TxSocket,
    frames: &FrameSet,
    shared: &Shared,
    duration: Duration,
    rate: Option<u64>,
    mut mixed: Option<Mixed<'_>>,
    setup: ThreadSetup,
) -> SendResult {
    setup.apply();
    let cpu_start = sys::thread_cpu_ns();
    let mut out = SendResult::default();
    let mut batch = Batch::default();
    let start = Instant::now();
    let end = start + duration;
    let mut next = 0usize;
    let total = frames.len();
    let mut valid_sent: u64 = 0;
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    // Positions in the batch that carry a valid NS this time: (position, slot, stamp).
    let mut valid_at: [(usize, usize, u64); 4] = [(usize::MAX, 0, 0); 4];
    while Instant::now() < end && !shared.stop.load(Ordering::Relaxed) {
        if let Some(r) = rate {
            // Paced like the valid stages: whole batches, each once it is due.
            let due = (start.elapsed().as_nanos() * r as u128 / 1_000_000_000) as u64;
            if due < out.flood_sent + BATCH as u64 {
                let next = start
                    + Duration::from_nanos(
                        ((out.flood_sent + BATCH as u64) as u128 * 1_000_000_000 / r as u128)
                            as u64,
                    );
                sleep_until(next.max(Instant::now() + PACE_MIN).min(end));
                continue;
            }
        }
        let mut refs: [&[u8]; BATCH] = [&[]; BATCH];
        for (j, r) in refs.iter_mut().enumerate() {
            *r = frames.get((next + j) % total);
        }
        let mut n_valid = 0;
        if let Some(m) = mixed.as_mut() {
            let due = (start.elapsed().as_nanos() * m.rate as u128 / 1_000_000_000) as u64;
            n_valid = due.saturating_sub(valid_sent).min(valid_at.len() as u64) as usize;
            let t0 = sys::realtime_ns();
            let quarter = BATCH / valid_at.len();
            for (i, at) in valid_at.iter_mut().enumerate().take(n_valid) {
                // xorshift64: a position in this batch's quarter i, so positions differ.
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let pos = i * quarter + (rng % quarter as u64) as usize;
                let slot = ((*m.seq + i as u64) % m.plan.slots() as u64) as usize;
                let stamp = t0 << 1 | m.plan.kind(slot) as u64;
                shared.slots[slot].store(stamp, Ordering::Release);
                refs[pos] = m.frames.get(slot);
                *at = (pos, slot, stamp);
            }
        }
        let went = consumed(tx.send(&refs, &mut batch), BATCH, &mut out);
        // Positions grow with i, so the valid NS that went out are a prefix of valid_at.
        let mut valid_went = 0;
        for &(pos, slot, stamp) in &valid_at[..n_valid] {
            if pos < went {
                valid_went += 1;
                out.sent[shared_kind(&mixed, slot)] += 1;
            } else {
                // Not sent: nothing will answer it; the slot goes out again in a later batch.
                let _ = shared.slots[slot].compare_exchange(
                    stamp,
                    0,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
        }
        if let Some(m) = mixed.as_mut() {
            *m.seq += valid_went as u64;
        }
        valid_sent += valid_went as u64;
        out.flood_sent += (went - valid_went) as u64;
        next = (next + went) % total;
    }
    out.elapsed = start.elapsed();
    out.cpu_ns = sys::thread_cpu_ns().saturating_sub(cpu_start);
    out
}

fn shared_kind(mixed: &Option<Mixed<'_>>, slot: usize) -> usize {
    mixed.as_ref().map_or(0, |m| m.plan.kind(slot) as usize)
}

/// Send the NS of one slot (readiness probes).
pub fn send_one(
    tx: &TxSocket,
    frames: &FrameSet,
    plan: &Plan,
    shared: &Shared,
    slot: usize,
) -> Result<()> {
    let stamp = sys::realtime_ns() << 1 | plan.kind(slot) as u64;
    shared.slots[slot].store(stamp, Ordering::Release);
    let mut batch = Batch::default();
    tx.send(&[frames.get(slot)], &mut batch)
        .context(|| "sending a probe NS".to_string())?;
    Ok(())
}

// TPACKET_V3 receive ring (linux/if_packet.h), declared here to stay independent of which
// libc version spells which struct.
const PACKET_RX_RING: i32 = 5;
const PACKET_STATISTICS: i32 = 6;
const PACKET_VERSION: i32 = 10;
const TPACKET_V3: i32 = 2;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;

#[repr(C)]
struct TpacketReq3 {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
    retire_blk_tov: u32,
    sizeof_priv: u32,
    feature_req_word: u32,
}

#[repr(C)]
#[derive(Default)]
struct TpacketStatsV3 {
    packets: u32,
    drops: u32,
    freeze_q_cnt: u32,
}

// Offsets in struct tpacket_block_desc: version u32, offset_to_priv u32, then
// tpacket_hdr_v1 { block_status u32, num_pkts u32, offset_to_first_pkt u32, ... }.
const BLOCK_STATUS: usize = 8;
const BLOCK_NUM_PKTS: usize = 12;
const BLOCK_FIRST: usize = 16;
// Offsets in struct tpacket3_hdr.
const PKT_NEXT: usize = 0;
const PKT_SEC: usize = 4;
const PKT_NSEC: usize = 8;
const PKT_SNAPLEN: usize = 12;
const PKT_MAC: usize = 24;

const RING_BLOCK_SIZE: usize = 1 << 20;
const RING_BLOCKS: usize = 8;
/// How long the kernel holds a partly filled block before handing it over, in ms.
pub const RING_RETIRE_MS: u64 = 2;

/// A TPACKET_V3 receive ring on the generator's interface that keeps only incoming NAs.
pub struct Ring {
    fd: OwnedFd,
    map: *mut u8,
}

// SAFETY: the mapping is used by one thread at a time (the receiver owns the Ring).
unsafe impl Send for Ring {}

impl Ring {
    pub fn open(ns: &str, ifindex: u32) -> Result<Ring> {
        sys::in_netns(ns, || {
            let fd = packet_socket()?;
            let io =
                |what: &'static str| move |e: io::Error| crate::sys::Error(format!("{what}: {e}"));
            setsockopt(&fd, libc::SOL_PACKET, PACKET_VERSION, &TPACKET_V3)
                .map_err(io("selecting TPACKET_V3"))?;
            let filter = na_filter();
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
                .map_err(io("attaching the receiver's BPF filter"))?;
            let _ = setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32);
            let req = TpacketReq3 {
                block_size: RING_BLOCK_SIZE as u32,
                block_nr: RING_BLOCKS as u32,
                frame_size: 2048,
                frame_nr: (RING_BLOCK_SIZE * RING_BLOCKS / 2048) as u32,
                retire_blk_tov: RING_RETIRE_MS as u32,
                sizeof_priv: 0,
                feature_req_word: 0,
            };
            setsockopt(&fd, libc::SOL_PACKET, PACKET_RX_RING, &req)
                .map_err(io("setting up the receive ring (PACKET_RX_RING)"))?;
            // SAFETY: mapping the ring the kernel just allocated for this socket.
            let map = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    RING_BLOCK_SIZE * RING_BLOCKS,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_LOCKED,
                    fd.as_raw_fd(),
                    0,
                )
            };
            let map = if map == libc::MAP_FAILED {
                // MAP_LOCKED may exceed RLIMIT_MEMLOCK; the ring works without it.
                // SAFETY: as above.
                let map = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        RING_BLOCK_SIZE * RING_BLOCKS,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_SHARED,
                        fd.as_raw_fd(),
                        0,
                    )
                };
                if map == libc::MAP_FAILED {
                    bail!("mapping the receive ring: {}", io::Error::last_os_error());
                }
                map
            } else {
                map
            };
            let ring = Ring {
                fd,
                map: map.cast(),
            };
            // SAFETY: sockaddr_ll is plain data.
            let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = (libc::ETH_P_IPV6 as u16).to_be();
            addr.sll_ifindex = ifindex as i32;
            // SAFETY: addr is a valid sockaddr_ll of the size passed.
            let rc = unsafe {
                libc::bind(
                    ring.fd.as_raw_fd(),
                    (&addr as *const libc::sockaddr_ll).cast(),
                    mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if rc < 0 {
                bail!("binding the receive ring: {}", io::Error::last_os_error());
            }
            Ok(ring)
        })
    }

    /// Packets dropped because the ring was full, since the last call.
    fn drops(&self) -> u64 {
        let mut stats = TpacketStatsV3::default();
        let mut len = mem::size_of::<TpacketStatsV3>() as libc::socklen_t;
        // SAFETY: stats is valid for writes of len bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_STATISTICS,
                (&mut stats as *mut TpacketStatsV3).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            0
        } else {
            stats.drops as u64
        }
    }

    fn block(&self, i: usize) -> *mut u8 {
        // SAFETY: i < RING_BLOCKS, inside the mapping.
        unsafe { self.map.add(i * RING_BLOCK_SIZE) }
    }

    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: the block status is an aligned u32 inside the mapping, shared with the
        // kernel, which is what the atomic type is for.
        unsafe { &*(self.block(i).add(BLOCK_STATUS) as *const AtomicU32) }
    }

    fn read_u32(&self, p: *const u8) -> u32 {
        // SAFETY: callers pass pointers inside the mapping.
        unsafe { std::ptr::read_unaligned(p as *const u32) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping once.
        unsafe { libc::munmap(self.map.cast(), RING_BLOCK_SIZE * RING_BLOCKS) };
    }
}

/// Incoming IPv6 + ICMPv6 type 136 (NA) only, the first 256 octets of each.
fn na_filter() -> Vec<libc::sock_filter> {
    const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
    const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    vec![
        op(LD_H_ABS, 0, 0, ndp::ETH_TYPE_OFFSET as u32),
        op(JEQ_K, 0, 5, ndp::ETHERTYPE_IPV6 as u32),
        op(LD_B_ABS, 0, 0, ndp::IPV6_NEXT_HEADER_OFFSET as u32),
        op(JEQ_K, 0, 3, ndp::IPPROTO_ICMPV6 as u32),
        op(LD_B_ABS, 0, 0, ndp::ICMPV6_TYPE_OFFSET as u32),
        op(JEQ_K, 0, 1, ndp::ICMPV6_NEIGHBOR_ADVERT as u32),
        op(RET_K, 0, 0, 256),
        op(RET_K, 0, 0, 0),
    ]
}

/// The receiver thread: hand every NA in the ring to [`match_advert`] until `shared.stop`.
pub fn receive(ring: Ring, shared: Arc<Shared>, plan: Plan, cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        let _ = sys::pin_current_thread(cpu);
    }
    let cpu_start = sys::thread_cpu_ns();
    shared.receiver_running.store(1, Ordering::Release);
    let mut block = 0usize;
    while !shared.stop.load(Ordering::Relaxed) {
        let status = ring.status(block);
        if status.load(Ordering::Acquire) & TP_STATUS_USER == 0 {
            let mut pfd = libc::pollfd {
                fd: ring.fd.as_raw_fd(),
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, 50) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    *shared
                        .receiver_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) =
                        Some(format!("polling the receive ring: {e}"));
                    break;
                }
            }
            shared.receiver_cpu_ns.store(
                sys::thread_cpu_ns().saturating_sub(cpu_start),
                Ordering::Relaxed,
            );
            continue;
        }
        let base = ring.block(block);
        // SAFETY: the kernel handed this block to us (TP_STATUS_USER); offsets come from it
        // and stay inside the block.
        let (count, first) = unsafe {
            (
                ring.read_u32(base.add(BLOCK_NUM_PKTS)),
                ring.read_u32(base.add(BLOCK_FIRST)) as usize,
            )
        };
        let mut offset = first;
        {
            let mut stats = shared.stats.lock().unwrap_or_else(|e| e.into_inner());
            for _ in 0..count {
                if offset + 32 > RING_BLOCK_SIZE {
                    break;
                }
                // SAFETY: inside the block, as above.
                let (next, sec, nsec, snaplen, mac) = unsafe {
                    let p = base.add(offset);
                    (
                        ring.read_u32(p.add(PKT_NEXT)) as usize,
                        ring.read_u32(p.add(PKT_SEC)) as u64,
                        ring.read_u32(p.add(PKT_NSEC)) as u64,
                        ring.read_u32(p.add(PKT_SNAPLEN)) as usize,
                        std::ptr::read_unaligned(p.add(PKT_MAC) as *const u16) as usize,
                    )
                };
                let start = offset + mac;
                if start + snaplen <= RING_BLOCK_SIZE {
                    // SAFETY: the frame lies inside the block.
                    let frame = unsafe { std::slice::from_raw_parts(base.add(start), snaplen) };
                    match_advert(
                        &plan,
                        &shared,
                        &mut stats,
                        frame,
                        sec * 1_000_000_000 + nsec,
                    );
                }
                if next == 0 {
                    break;
                }
                offset += next;
            }
        }
        shared.seen.fetch_add(count as u64, Ordering::Release);
        status.store(TP_STATUS_KERNEL, Ordering::Release);
        block = (block + 1) % RING_BLOCKS;
        let drops = ring.drops();
        if drops > 0 {
            shared.ring_drops.fetch_add(drops, Ordering::Relaxed);
        }
    }
    shared.receiver_cpu_ns.store(
        sys::thread_cpu_ns().saturating_sub(cpu_start),
        Ordering::Relaxed,
    );
}

/// Count one received frame and, if it answers a waiting NS, record its latency.
fn match_advert(plan: &Plan, shared: &Shared, stats: &mut RxStats, frame: &[u8], rx_ns: u64) {
    stats.total += 1;
    let Ok(na) = NeighborAdvert::parse(frame) else {
        stats.malformed += 1;
        return;
    };
    match plan.classify(&na) {
        Answered::Flood => stats.flood_answers += 1,
        Answered::Unknown => stats.unknown += 1,
        Answered::Slot(slot, kind) => {
            let cell = &shared.slots[slot];
            let waiting = cell.load(Ordering::Acquire);
            let sent_ns = waiting >> 1;
            // Nothing waits, or the NA arrived before the waiting NS was sent: it answers an
            // earlier use of the slot.
            if waiting == 0 || rx_ns < sent_ns {
                stats.late_or_duplicate += 1;
                return;
            }
            if cell
                .compare_exchange(waiting, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                stats.late_or_duplicate += 1;
                return;
            }
            stats.answered[kind as usize] += 1;
            stats.latency.record(rx_ns - sent_ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            targets: 256,
            solicitors: 64,
            unicast_every: 4,
        }
    }

    #[test]
    fn every_valid_frame_parses_and_its_answer_names_its_slot() {
        let plan = plan();
        let frames = valid_frames(&plan);
        assert_eq!(frames.len(), plan.slots());
        for slot in [0, 1, 3, 255, 256, 1000, plan.slots() - 1] {
            let ns = NeighborSolicit::parse(frames.get(slot)).unwrap();
            assert_eq!(ns.hop_limit, 255);
            let kind = plan.kind(slot);
            assert_eq!(kind == Kind::Unicast, !ns.ip_dst.is_multicast());
            let na = NeighborAdvert {
                eth_src: DUT_MAC,
                eth_dst: GEN_MAC,
                ip_src: ns.target,
                ip_dst: ns.ip_src,
                hop_limit: 255,
                code: 0,
                router: true,
                solicited: true,
                override_flag: true,
                target: ns.target,
                target_lladdr: Some(DUT_MAC),
            };
            assert_eq!(plan.classify(&na), Answered::Slot(slot, kind));
        }
    }

    #[test]
    fn flood_frames_are_never_valid_in_range_solicitations() {
        let plan = plan();
        let flood = flood_frames(&plan, 200);
        let prefix_hi = [0x2001, 0xdb8, 1, 0, 0, 0, 0xd];
        for i in 0..flood.len() {
            match NeighborSolicit::parse(flood.get(i)) {
                Err(_) => {}
                Ok(ns) => {
                    let in_prefix = ns.target.segments()[..7] == prefix_hi;
                    assert!(
                        !in_prefix || ns.hop_limit != 255 || ns.code != 0 || i % 20 == 18,
                        "flood frame {i} is a valid NS for the prefix"
                    );
                }
            }
        }
        // The zero-length option frame has a valid checksum and fails on the option.
        assert_eq!(
            NeighborSolicit::parse(flood.get(18)),
            Err(ndp::ParseError::ZeroLengthOption)
        );
        assert_eq!(
            NeighborSolicit::parse(flood.get(19)),
            Err(ndp::ParseError::TooShort)
        );
        assert_eq!(
            NeighborSolicit::parse(flood.get(12)),
            Err(ndp::ParseError::BadChecksum)
        );
    }

    #[test]
    fn histogram_quantiles() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile_us(0.5), None);
        for us in 1..=100u64 {
            h.record(us * 1000 + 500);
        }
        assert_eq!(h.quantile_us(0.5), Some(51.0));
        assert_eq!(h.quantile_us(0.99), Some(100.0));
        assert_eq!(h.max_ns, 100_500);
        h.record(5_000_000_000);
        assert_eq!(h.quantile_us(1.0), Some(5_000_000.0));
        assert_eq!(Histogram::bucket(u64::MAX), BUCKETS - 1);
    }
}
