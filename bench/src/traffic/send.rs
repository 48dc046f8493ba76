//! The senders: the paced valid stream, the flood with the valid stream mixed in, and single
//! probe solicitations, each one `sendmmsg` per batch on a packet socket of the generator's.
//!
//! Owns: pacing, stamping each valid NS's slot before the call that sends it, and counting
//! what went out (a frame the host refuses counts as sent and lost). Must not: build frames
//! (they come from [`super::plan`]) or read answers.
//!
//! Why not the library's `link::TxQueue` / `link::PacketSocket`: those are the responder's
//! side. `TxQueue` copies each answer into a fixed buffer and, when the kernel refuses a
//! frame, counts it and sends the rest at once; `PacketSocket` is bound (it receives) and
//! goes through the qdisc. The generator sends pre-built frames by reference (no copy),
//! unbound (its socket receives nothing, so it adds no work to the measured receive path),
//! past the qdisc (PACKET_QDISC_BYPASS), and must know which frame of a batch was refused to
//! stop there and unstamp the valid NS that did not go out. The socket options are set with
//! the library's `link::setsockopt`.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ndp_responder::link::setsockopt;

use super::{packet_socket, FrameSet, Plan, Shared};
use crate::sys::{self, Context, Result};

/// At most this many frames per `sendmmsg` call.
pub const BATCH: usize = 64;
/// The paced sender sleeps at least this long between batches (at 200,000 NS/s: batches of
/// about 10 frames; below 20,000 NS/s: one frame per wake-up).
pub const PACE_MIN: Duration = Duration::from_micros(50);
/// A paced sender sends at most this many frames per call, each call stamped just before it:
/// every frame of a call carries the call's stamp, so the last one's latency includes the
/// sending of those before it (about 1.7 µs each here). When the sender falls behind, what
/// fell due goes out in several calls, back to back.
pub const PACED_BATCH: usize = 16;
/// At most this many valid NS waiting for their place in the flood's stream.
const VALID_PER_BATCH: usize = 4;

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
                let n = due.saturating_sub(sent_total).min(PACED_BATCH as u64) as usize;
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
/// per second, with the valid NS of `mixed` (if any) each placed at a pseudo-random position
/// among the next batch's frames, which it keeps until a call reaches it. One thread
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
    // Frames offered so far (sent or refused): the stream position of `next`.
    let mut offered: u64 = 0;
    // Valid NS placed in the stream and not yet offered, in stream order: (stream position,
    // slot). A placed NS keeps its place until a call reaches it, exactly like the flood
    // frame it replaces, so a full input queue refuses valid and flood frames alike: a
    // frame's fate never depends on what it carries.
    let mut pending: Vec<(u64, usize)> = Vec::with_capacity(VALID_PER_BATCH);
    let mut placed: u64 = 0;
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
        // The first `n_valid` of `pending` are in this batch.
        let mut n_valid = 0;
        if let Some(m) = mixed.as_mut() {
            let now_ns = start.elapsed().as_nanos() as u64;
            let period = 1_000_000_000 / m.rate.max(1);
            while pending.len() < VALID_PER_BATCH {
                // NS n falls due at a pseudo-random moment of its period [n, n+1): a stream
                // in step with the host's timer tick would meet the same moment of the tick
                // every time.
                let jitter = splitmix(placed) % period;
                if now_ns < placed * period + jitter {
                    break;
                }
                // A place among the next batch's frames, after any NS still waiting, so
                // places grow in stream order.
                let mut at = offered + splitmix(!placed) % BATCH as u64;
                if let Some(&(last, _)) = pending.last() {
                    at = at.max(last + 1);
                }
                pending.push((at, (*m.seq % m.plan.slots() as u64) as usize));
                *m.seq += 1;
                placed += 1;
            }
            let t0 = sys::realtime_ns();
            for &(at, slot) in &pending {
                let pos = (at - offered) as usize;
                if pos >= BATCH {
                    break;
                }
                // Stamped just before the call that offers it.
                shared.slots[slot].store(t0 << 1 | m.plan.kind(slot) as u64, Ordering::Release);
                refs[pos] = m.frames.get(slot);
                n_valid += 1;
            }
        }
        let went = consumed(tx.send(&refs, &mut batch), BATCH, &mut out);
        let mut valid_went = 0;
        for &(at, slot) in &pending[..n_valid] {
            if ((at - offered) as usize) < went {
                // Sent, or refused like the flood frame at its place would have been.
                valid_went += 1;
                out.sent[shared_kind(&mixed, slot)] += 1;
            } else {
                // Not offered yet: keeps its place; no stamp until the call that offers it.
                shared.slots[slot].store(0, Ordering::Release);
            }
        }
        pending.drain(..valid_went);
        out.flood_sent += (went - valid_went) as u64;
        offered += went as u64;
        next = (next + went) % total;
    }
    out.elapsed = start.elapsed();
    out.cpu_ns = sys::thread_cpu_ns().saturating_sub(cpu_start);
    out
}

/// A well-mixed pseudo-random number for `x` (splitmix64's finaliser).
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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
