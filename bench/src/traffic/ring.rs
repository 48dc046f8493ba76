//! The receiver: a TPACKET_V3 ring on the generator's interface that keeps only incoming
//! Neighbor Advertisements, and the thread that matches each to the NS it answers.
//!
//! Owns: the ring (its mapping, blocks and drop counter), the receive loop, and matching an NA
//! to its slot and latency ([`match_advert`]). Must not: send, or judge a responder.
//!
//! From the library: the BPF program (`link::ndp_filter` for ICMPv6 type 136: incoming NAs
//! only; it also drops frames addressed to another station, which no responder sends here),
//! the socket helpers (`link::setsockopt`, `attach_filter`, `set_ignore_outgoing`, `bind`),
//! and the parser (`ndp::NeighborAdvert::parse`). Why the ring stays here rather than the
//! library's `link::PacketSocket` ring: that one is TPACKET_V2, for solicitations only, and
//! hands out frames without their kernel timestamps; latency needs the kernel's receive
//! timestamp of every NA (TPACKET_V3 gives it per frame, and wakes the reader once per block,
//! which suits a measuring thread rather than a responder).

use std::io;
use std::mem::{self, offset_of};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use ndp_responder::link::{self, setsockopt};
use ndp_responder::ndp::{self, NeighborAdvert};

use super::{packet_socket, Answered, Plan, RxStats, Shared};
use crate::sys::{self, bail, Result};

/// PACKET_VERSION value for TPACKET_V3 (enum tpacket_versions).
const TPACKET_V3: libc::c_int = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
/// Offsets in struct tpacket_block_desc (its header is the union's tpacket_hdr_v1).
const BLOCK_STATUS: usize =
    offset_of!(libc::tpacket_block_desc, hdr) + offset_of!(libc::tpacket_hdr_v1, block_status);
const BLOCK_NUM_PKTS: usize =
    offset_of!(libc::tpacket_block_desc, hdr) + offset_of!(libc::tpacket_hdr_v1, num_pkts);
const BLOCK_FIRST: usize = offset_of!(libc::tpacket_block_desc, hdr)
    + offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt);
/// Offsets in struct tpacket3_hdr.
const PKT_NEXT: usize = offset_of!(libc::tpacket3_hdr, tp_next_offset);
const PKT_SEC: usize = offset_of!(libc::tpacket3_hdr, tp_sec);
const PKT_NSEC: usize = offset_of!(libc::tpacket3_hdr, tp_nsec);
const PKT_SNAPLEN: usize = offset_of!(libc::tpacket3_hdr, tp_snaplen);
const PKT_MAC: usize = offset_of!(libc::tpacket3_hdr, tp_mac);
// The layout linux/if_packet.h documents.
const _: () = assert!(BLOCK_STATUS == 8 && BLOCK_NUM_PKTS == 12 && BLOCK_FIRST == 16);
const _: () = assert!(PKT_NEXT == 0 && PKT_SEC == 4 && PKT_NSEC == 8);
const _: () = assert!(PKT_SNAPLEN == 12 && PKT_MAC == 24);

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
            setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &TPACKET_V3)
                .map_err(io("selecting TPACKET_V3"))?;
            let filter = link::ndp_filter(ndp::ICMPV6_NEIGHBOR_ADVERT, &[]);
            link::attach_filter(&fd, &filter).map_err(io("attaching the receiver's BPF filter"))?;
            link::set_ignore_outgoing(&fd);
            let req = libc::tpacket_req3 {
                tp_block_size: RING_BLOCK_SIZE as u32,
                tp_block_nr: RING_BLOCKS as u32,
                tp_frame_size: 2048,
                tp_frame_nr: (RING_BLOCK_SIZE * RING_BLOCKS / 2048) as u32,
                tp_retire_blk_tov: RING_RETIRE_MS as u32,
                tp_sizeof_priv: 0,
                tp_feature_req_word: 0,
            };
            setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
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
            link::bind(&ring.fd, ifindex).map_err(io("binding the receive ring"))?;
            Ok(ring)
        })
    }

    /// Packets dropped because the ring was full, since the last call.
    fn drops(&self) -> u64 {
        // SAFETY: tpacket_stats_v3 is plain data; zero is a valid value.
        let mut stats: libc::tpacket_stats_v3 = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: stats is valid for writes of len bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut stats as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            0
        } else {
            u64::from(stats.tp_drops)
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
        if status.load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
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
        // SAFETY: the kernel handed this block to us (libc::TP_STATUS_USER); offsets come from it
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
        status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
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
