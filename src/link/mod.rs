//! The AF_PACKET socket on the uplink: capture Neighbor Solicitations, send frames.
//!
//! Owns: opening the socket (with a clear error when CAP_NET_RAW is missing), the classic BPF
//! program that lets only incoming ICMPv6 Neighbor Solicitations (or, for probes, Neighbor
//! Advertisements) reach user space, the per-socket all-multicast membership, the receive ring
//! the uplink's solicitations arrive in ([`PacketSocket::recv_batch`]: PACKET_MMAP, no system
//! call per frame), batched sending ([`TxQueue`], one `sendmmsg` per batch), and non-blocking
//! `recv`/`send` of single frames for the low-volume sockets.
//!
//! The socket helpers ([`setsockopt`], [`attach_filter`], [`set_ignore_outgoing`], [`bind`])
//! are public so that the benchmark (`bench/`) sets up its own packet sockets the same way.
//!
//! Must not: parse beyond what the BPF program needs, or decide anything about a packet.

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use ipnet::Ipv6Net;
use socket2::{Domain, Protocol, Socket, Type};

use crate::ndp;

/// The largest frame received whole: an NDP message can be as large as the link's MTU, and
/// Ethernet jumbo frames stop at 9000 bytes of payload. A longer one is cut and then rejected
/// by the parser as truncated.
pub const RECV_BUF_LEN: usize = 9216;

/// The socket's receive queue (kernel memory, not ours). With the receive ring it only holds
/// the rare frames too long for a ring slot (see [`RING_FRAME_SIZE`]).
const RECV_QUEUE_BYTES: usize = 1 << 20;

/// The receive ring of the uplink's socket (PACKET_RX_RING, TPACKET_V2; the kernel's
/// Documentation/networking/packet_mmap.rst). TPACKET_V2 rather than V3: V3 wakes the reader
/// only when a block fills or its timer (at least 1 ms) expires, which would delay answers at
/// low rates; V2 wakes it for every frame, and under load the reader walks many frames per
/// wake-up without a system call for any of them.
///
/// One slot per frame. Its header and address take 66 octets, leaving 126 for the frame: a
/// Neighbor Solicitation with a source link-layer address and a nonce option is 94. A longer
/// frame is not cut: the kernel queues a whole copy on the socket (PACKET_COPY_THRESH), which
/// [`PacketSocket::recv_batch`] reads in its place.
pub const RING_FRAME_SIZE: usize = 192;
/// Slots in the ring, at least: a burst of this many solicitations (5 ms at 200,000 NS/s)
/// waits for the daemon without loss. Blocks are single pages (every allocation the kernel
/// makes for the ring is order 0) and a slot never spans two, so with 4 KiB pages 21 slots
/// fill a block and 48 blocks (192 KiB, mapped into the process: it counts in its RSS) hold
/// 1,008 slots.
pub const RING_FRAMES: usize = 1000;
/// Offsets in a ring slot: struct tpacket2_hdr (linux/if_packet.h), then struct sockaddr_ll
/// at TPACKET_ALIGN(sizeof(struct tpacket2_hdr)).
mod slot {
    use std::mem::{offset_of, size_of};
    pub const LEN: usize = offset_of!(libc::tpacket2_hdr, tp_len);
    pub const SNAPLEN: usize = offset_of!(libc::tpacket2_hdr, tp_snaplen);
    pub const MAC: usize = offset_of!(libc::tpacket2_hdr, tp_mac);
    pub const VLAN_TCI: usize = offset_of!(libc::tpacket2_hdr, tp_vlan_tci);
    /// The sockaddr_ll's sll_pkttype.
    pub const PKTTYPE: usize = size_of::<libc::tpacket2_hdr>().div_ceil(libc::TPACKET_ALIGNMENT)
        * libc::TPACKET_ALIGNMENT
        + offset_of!(libc::sockaddr_ll, sll_pkttype);
}
// The layout linux/if_packet.h documents: a 32-octet header, then the address at 32.
const _: () = assert!(slot::PKTTYPE == 42 && slot::MAC == 12 && slot::SNAPLEN == 8);
const _: () = assert!(RING_FRAME_SIZE % libc::TPACKET_ALIGNMENT == 0);
/// PACKET_VERSION value for TPACKET_V2 (enum tpacket_versions).
const TPACKET_V2: libc::c_int = 1;

/// Answers sent by one `sendmmsg` call, at most.
pub const TX_BATCH: usize = 64;

/// Kernel packet types (linux/if_packet.h) that the BPF program and `recv` drop.
const PACKET_OTHERHOST: u8 = 3;
const PACKET_OUTGOING: u8 = 4;

/// What went wrong opening the socket, phrased for the operator.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "opening a packet socket needs CAP_NET_RAW: run as root or grant CAP_NET_RAW \
         (e.g. `setcap cap_net_raw,cap_net_admin+ep` on the binary, or AmbientCapabilities in the unit)"
    )]
    PermissionDenied,
    #[error("{what} on interface {ifname}: {source}")]
    Io {
        what: &'static str,
        ifname: String,
        source: io::Error,
    },
}

/// Which NDP messages a socket lets through to user space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    /// Neighbor Solicitations (the responder).
    Solicitations,
    /// Neighbor Advertisements (probes that wait for a router's answer).
    Advertisements,
}

impl Capture {
    fn icmp_type(self) -> u8 {
        match self {
            Capture::Solicitations => ndp::ICMPV6_NEIGHBOR_SOLICIT,
            Capture::Advertisements => ndp::ICMPV6_NEIGHBOR_ADVERT,
        }
    }
}

/// An AF_PACKET socket bound to one interface that receives only incoming NDP frames of
/// one kind; for solicitations, through a receive ring.
#[derive(Debug)]
pub struct PacketSocket {
    /// Unmapped before the descriptor is closed (fields drop in order).
    ring: Option<RxRing>,
    fd: OwnedFd,
}

/// Where the ring's slots lie: `blocks` blocks of `block_size` octets (one page each), each
/// holding `per_block` slots of [`RING_FRAME_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    block_size: usize,
    per_block: usize,
    blocks: usize,
}

impl Geometry {
    /// At least [`RING_FRAMES`] slots in blocks of one page of `page` octets.
    fn for_page(page: usize) -> Geometry {
        let per_block = page / RING_FRAME_SIZE;
        Geometry {
            block_size: page,
            per_block,
            blocks: RING_FRAMES.div_ceil(per_block),
        }
    }

    fn frames(&self) -> usize {
        self.blocks * self.per_block
    }

    fn len(&self) -> usize {
        self.blocks * self.block_size
    }

    /// Where slot `i` (< frames()) starts in the mapping.
    fn offset(&self, i: usize) -> usize {
        i / self.per_block * self.block_size + i % self.per_block * RING_FRAME_SIZE
    }
}

/// The mapped receive ring.
#[derive(Debug)]
struct RxRing {
    base: NonNull<u8>,
    geometry: Geometry,
    /// The next slot to look at. Held for a whole pass: one reader at a time, since a slot
    /// handed back to the kernel may be rewritten at once.
    head: Mutex<usize>,
}

// SAFETY: the mapping is owned by this value and unmapped once, in Drop; the kernel's side of
// each slot is synchronised through its status word (atomic, acquire/release), and readers
// take turns through the `head` lock.
unsafe impl Send for RxRing {}
// SAFETY: as above.
unsafe impl Sync for RxRing {}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: base and the geometry's length describe the mapping made in `RxRing::map`,
        // unmapped only here.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.geometry.len()) };
    }
}

impl RxRing {
    /// Ask for a TPACKET_V2 ring on `fd` and map it.
    fn map(fd: &OwnedFd) -> io::Result<Self> {
        setsockopt(fd, libc::SOL_PACKET, libc::PACKET_VERSION, &TPACKET_V2)?;
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let geometry = Geometry::for_page(usize::try_from(page).unwrap_or(4096).max(4096));
        let req = libc::tpacket_req {
            tp_block_size: geometry.block_size as u32,
            tp_block_nr: geometry.blocks as u32,
            tp_frame_size: RING_FRAME_SIZE as u32,
            tp_frame_nr: geometry.frames() as u32,
        };
        setsockopt(fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)?;
        // A frame longer than a slot goes whole to the socket's queue as well.
        setsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_COPY_THRESH,
            &1 as &libc::c_int,
        )?;
        let len = geometry.len();
        // SAFETY: a fresh shared mapping of the ring the kernel just allocated for fd.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base =
            NonNull::new(base.cast()).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(RxRing {
            base,
            geometry,
            head: Mutex::new(0),
        })
    }

    /// Slot `i`'s status word, shared with the kernel.
    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: slot i lies inside the mapping; its first word is the 16-aligned tp_status,
        // which the kernel and we access only atomically.
        unsafe {
            &*self
                .base
                .as_ptr()
                .add(self.geometry.offset(i))
                .cast::<AtomicU32>()
        }
    }

    /// Slot `i`'s bytes; only valid to read while the slot is ours (TP_STATUS_USER).
    fn slot(&self, i: usize) -> &[u8] {
        // SAFETY: the slot lies inside the mapping, and the kernel does not write it until
        // its status is handed back (TP_STATUS_KERNEL) after the caller is done with it.
        unsafe {
            std::slice::from_raw_parts(
                self.base.as_ptr().add(self.geometry.offset(i)),
                RING_FRAME_SIZE,
            )
        }
    }
}

/// What one [`PacketSocket::recv_batch`] call found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Frames handed to the callback.
    pub frames: usize,
    /// Frames the host sent itself, addressed to another station, or tagged with a VLAN the
    /// uplink is not (the BPF program drops those first; counted so a test can tell).
    pub skipped: usize,
    /// The ring was full at some point since the last batch, so the kernel dropped frames
    /// (their number: [`PacketSocket::take_drops`]).
    pub losing: bool,
    /// The ring has no frame left: the caller may wait for the next wake-up.
    pub empty: bool,
}

fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl PacketSocket {
    /// Open a packet socket on `ifindex`, attach the filter for `capture`, request
    /// all-multicast reception for this socket only, and set it non-blocking.
    pub fn open(ifname: &str, ifindex: u32, capture: Capture) -> Result<Self, OpenError> {
        let io_err = |what| {
            let ifname = ifname.to_string();
            move |source| OpenError::Io {
                what,
                ifname,
                source,
            }
        };
        // Protocol 0: the socket receives nothing until it is bound, so no unfiltered frame
        // can be queued before the filter is attached.
        let socket = match Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0))) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(OpenError::PermissionDenied)
            }
            Err(e) => return Err(io_err("creating the packet socket")(e)),
        };
        let fd: OwnedFd = socket.into();
        attach_filter(&fd, &ndp_filter(capture.icmp_type(), &[]))
            .map_err(io_err("attaching the BPF filter"))?;
        set_ignore_outgoing(&fd);
        // The uplink's solicitations are the load: they arrive in a ring. Advertisements
        // (probes, keepalive answers) are few and read one by one.
        let ring = match capture {
            Capture::Solicitations => Some(
                RxRing::map(&fd).map_err(io_err("setting up the receive ring (PACKET_MMAP)"))?,
            ),
            Capture::Advertisements => None,
        };
        bind(&fd, ifindex).map_err(io_err("binding the packet socket"))?;
        add_allmulti(&fd, ifindex).map_err(io_err("requesting all-multicast reception"))?;
        let socket = Socket::from(fd);
        // Room for bursts: a router scanning the prefix, or a flood, should not cost valid
        // solicitations. SO_RCVBUFFORCE (CAP_NET_ADMIN) may exceed net.core.rmem_max.
        let force = setsockopt(
            &socket,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &(RECV_QUEUE_BYTES as libc::c_int),
        );
        if force.is_err() {
            let _ = socket.set_recv_buffer_size(RECV_QUEUE_BYTES);
        }
        socket
            .set_nonblocking(true)
            .map_err(io_err("making the socket non-blocking"))?;
        Ok(PacketSocket {
            ring,
            fd: socket.into(),
        })
    }

    /// Hand the frames waiting in the receive ring to `on_frame`, oldest first, at most `max`
    /// of them, each slot going back to the kernel once `on_frame` returns. A frame too long
    /// for its slot is read whole from the socket's queue into `spill` instead (it should be
    /// [`RECV_BUF_LEN`] long). A socket without a ring (advertisements) has nothing here:
    /// it is read with [`PacketSocket::recv`].
    pub fn recv_batch(
        &self,
        max: usize,
        spill: &mut [u8],
        mut on_frame: impl FnMut(&[u8]),
    ) -> Batch {
        let mut batch = Batch::default();
        let Some(ring) = &self.ring else {
            batch.empty = true;
            return batch;
        };
        let mut head = ring.head.lock().unwrap_or_else(|e| e.into_inner());
        let frames = ring.geometry.frames();
        while batch.frames + batch.skipped < max {
            let status = ring.status(*head).load(Ordering::Acquire);
            if status & libc::TP_STATUS_USER == 0 {
                batch.empty = true;
                break;
            }
            batch.losing |= status & libc::TP_STATUS_LOSING != 0;
            let slot = ring.slot(*head);
            let pkttype = slot[slot::PKTTYPE];
            // A tag the NIC stripped: the frame belongs to a VLAN, not to the uplink itself.
            let vlan = status & libc::TP_STATUS_VLAN_VALID != 0
                && read_u16(slot, slot::VLAN_TCI) & 0x0fff != 0;
            let mac = usize::from(read_u16(slot, slot::MAC));
            let snaplen = read_u32(slot, slot::SNAPLEN) as usize;
            let cut = slot
                .get(mac..mac.saturating_add(snaplen).min(RING_FRAME_SIZE))
                .unwrap_or_default();
            // A frame too long for its slot: its whole copy waits in the socket's queue.
            let whole = if status & libc::TP_STATUS_COPY != 0 {
                self.take_copy(spill, read_u32(slot, slot::LEN) as usize, cut)
            } else {
                None
            };
            if pkttype == PACKET_OUTGOING || pkttype == PACKET_OTHERHOST || vlan {
                batch.skipped += 1;
            } else {
                batch.frames += 1;
                match whole {
                    Some(len) => on_frame(&spill[..len]),
                    // Cut to the slot (the parser calls it truncated): only when the kernel
                    // could not queue the copy.
                    None => on_frame(cut),
                }
            }
            ring.status(*head)
                .store(libc::TP_STATUS_KERNEL, Ordering::Release);
            *head = (*head + 1) % frames;
        }
        batch
    }

    /// Read the queued whole copy of a frame whose slot holds `cut`, `len` octets in all, into
    /// `spill`. The ring and the queue keep the same order, so the copy is the queue's first
    /// datagram; should it not be (a copy lost to an error), the queue is emptied, so that the
    /// next copy read belongs to the next slot, and this frame stays cut.
    fn take_copy(&self, spill: &mut [u8], len: usize, cut: &[u8]) -> Option<usize> {
        // A pending socket error (ENETDOWN after the link went down) is reported, and cleared,
        // by the first receive in its stead: try again.
        for _ in 0..3 {
            match self.recv_raw(spill) {
                // (A frame longer than `spill` is cut to it, and then rejected as truncated.)
                Ok(n) if n == len.min(spill.len()) && spill.get(..cut.len()) == Some(cut) => {
                    return Some(n)
                }
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(_) => continue,
            }
        }
        while self.recv_raw(spill).is_ok() {}
        None
    }

    /// One datagram of the socket's (non-blocking) queue into `buf`: its length.
    fn recv_raw(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Frames the kernel dropped for want of room (ring or queue full) since the last call
    /// (PACKET_STATISTICS, which the kernel resets when read).
    pub fn take_drops(&self) -> io::Result<u32> {
        // SAFETY: tpacket_stats is plain old data.
        let mut stats: libc::tpacket_stats = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: stats is valid for writes of len bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut stats as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stats.tp_drops)
    }

    /// Receive one frame into `buf`. Returns `Ok(None)` for a frame the host itself sent or
    /// one addressed to another station (should the filter let one through), and
    /// `Err(WouldBlock)` when the queue is empty. A socket with a receive ring is read with
    /// [`PacketSocket::recv_batch`] only (its queue holds the copies the ring refers to).
    pub fn recv<'b>(&self, buf: &'b mut [u8]) -> io::Result<Option<&'b [u8]>> {
        if self.ring.is_some() {
            return Err(io::Error::other(
                "a socket with a receive ring is read with recv_batch",
            ));
        }
        // SAFETY: sockaddr_ll is plain old data; zeroed is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        let mut addr_len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: buf and addr are valid for writes of the lengths passed.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut addr as *mut libc::sockaddr_ll).cast(),
                &mut addr_len,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if addr.sll_pkttype == PACKET_OUTGOING || addr.sll_pkttype == PACKET_OTHERHOST {
            return Ok(None);
        }
        Ok(buf.get(..n as usize))
    }

    /// Let only solicitations for targets in `prefixes` through (all when empty), replacing the
    /// filter atomically: no frame is let through unfiltered meanwhile.
    pub fn set_targets(&self, prefixes: &[Ipv6Net]) -> io::Result<()> {
        attach_filter(
            &self.fd,
            &ndp_filter(ndp::ICMPV6_NEIGHBOR_SOLICIT, prefixes),
        )
    }

    /// Write a frame with `emit` (e.g. `|buf| ns.emit(buf)`) and send it: the one way our own
    /// solicitations and announcements leave (answers leave in batches, [`TxQueue`]).
    pub fn send_with(
        &self,
        emit: impl FnOnce(&mut [u8]) -> Result<usize, ndp::BufferTooSmall>,
    ) -> io::Result<()> {
        let mut frame = [0u8; ndp::MAX_EMIT_LEN];
        let len = emit(&mut frame).map_err(io::Error::other)?;
        self.send(&frame[..len])
    }

    /// Send one complete Ethernet frame out of the bound interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: frame is valid for reads of its length; the socket is bound.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Frames waiting to leave by one `sendmmsg` call: the answers found in one pass over the
/// receive ring go out together, after the pass (a pass takes microseconds, so no answer is
/// held back for long).
pub struct TxQueue {
    frames: [[u8; ndp::MAX_EMIT_LEN]; TX_BATCH],
    lens: [usize; TX_BATCH],
    queued: usize,
}

/// The outcome of [`TxQueue::flush`].
#[derive(Debug, Default)]
pub struct Flushed {
    pub sent: usize,
    pub failed: usize,
    /// The first error, if any frame could not be sent.
    pub error: Option<io::Error>,
}

impl Default for TxQueue {
    fn default() -> Self {
        TxQueue {
            frames: [[0; ndp::MAX_EMIT_LEN]; TX_BATCH],
            lens: [0; TX_BATCH],
            queued: 0,
        }
    }
}

impl TxQueue {
    pub fn is_full(&self) -> bool {
        self.queued == TX_BATCH
    }

    /// Drop the queued frames without sending them.
    pub fn clear(&mut self) {
        self.queued = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Queue the frame that `emit` writes into the buffer it is given (returning its length).
    /// False, and nothing queued, if the queue is full or `emit` fails.
    pub fn push<E>(&mut self, emit: impl FnOnce(&mut [u8]) -> Result<usize, E>) -> bool {
        if self.is_full() {
            return false;
        }
        match emit(&mut self.frames[self.queued]) {
            Ok(len) if len <= ndp::MAX_EMIT_LEN => {
                self.lens[self.queued] = len;
                self.queued += 1;
                true
            }
            _ => false,
        }
    }

    /// Send every queued frame out of `socket`'s interface, in order, and empty the queue. A
    /// frame the kernel refuses is counted as failed and the rest are still sent.
    pub fn flush(&mut self, socket: &PacketSocket) -> Flushed {
        let mut out = Flushed::default();
        let n = std::mem::take(&mut self.queued);
        if n == 0 {
            return out;
        }
        // SAFETY: iovec and mmsghdr are plain old data; zeroed is a valid value.
        let mut iovs: [libc::iovec; TX_BATCH] = unsafe { mem::zeroed() };
        let mut msgs: [libc::mmsghdr; TX_BATCH] = unsafe { mem::zeroed() };
        for ((iov, frame), len) in iovs
            .iter_mut()
            .zip(&mut self.frames)
            .zip(&self.lens)
            .take(n)
        {
            *iov = libc::iovec {
                iov_base: frame.as_mut_ptr().cast(),
                iov_len: *len,
            };
        }
        for (msg, iov) in msgs.iter_mut().zip(iovs.iter_mut()).take(n) {
            // The socket is bound: no destination address.
            msg.msg_hdr.msg_iov = iov;
            msg.msg_hdr.msg_iovlen = 1;
        }
        let mut next = 0;
        while next < n {
            // SAFETY: msgs[next..n] point to iovecs over live frame buffers.
            let rc = unsafe {
                libc::sendmmsg(
                    socket.fd.as_raw_fd(),
                    msgs[next..].as_mut_ptr(),
                    (n - next) as libc::c_uint,
                    0,
                )
            };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first frame left is refused: count it and go on with the rest.
                out.failed += 1;
                out.error.get_or_insert(e);
                next += 1;
            } else {
                out.sent += rc as usize;
                next += (rc as usize).max(1).min(n - next);
                if rc == 0 {
                    out.failed += 1;
                }
            }
        }
        out
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

/// Offset of an NS's (or NA's) target address in the frame.
const TARGET_OFFSET: usize = ndp::ICMPV6_TYPE_OFFSET + 8;
/// Most prefixes the kernel matches targets against; beyond that (or with a rule that covers
/// every address), every solicitation reaches user space.
pub const MAX_FILTER_PREFIXES: usize = 32;

/// The classic BPF program: accept only frames that are not sent by this host nor addressed
/// to another station, carry IPv6 directly in Ethernet II, whose next header is ICMPv6, whose
/// ICMPv6 type is `icmp_type` (135 for NS) and, when `targets` is not empty, whose target
/// address lies in one of `targets`. Everything else is dropped in the kernel: a flood of
/// solicitations for addresses that are not ours costs no wake-up, copy or parse.
/// (NDP with extension headers or VLAN tags never reaches us: Linux sends neither.)
pub fn ndp_filter(icmp_type: u8, targets: &[Ipv6Net]) -> Vec<libc::sock_filter> {
    const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
    const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // SKF_AD_OFF + SKF_AD_PKTTYPE: the skb's packet type, an ancillary "load".
    const PKTTYPE: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32;
    const ACCEPT: u32 = RECV_BUF_LEN as u32;
    /// Where a jump goes, resolved once the program's length is known.
    #[derive(Clone, Copy)]
    enum To {
        Next,
        Drop,
        Accept,
        /// The first instruction of prefix block `n` (or Drop after the last).
        Block(usize),
    }
    let filter_targets = !targets.is_empty()
        && targets.len() <= MAX_FILTER_PREFIXES
        && targets.iter().all(|t| t.prefix_len() > 0);
    let targets = if filter_targets { targets } else { &[] };
    let mut prog: Vec<(u16, To, To, u32)> = vec![
        (LD_W_ABS, To::Next, To::Next, PKTTYPE),
        (JEQ_K, To::Drop, To::Next, PACKET_OUTGOING as u32),
        (JEQ_K, To::Drop, To::Next, PACKET_OTHERHOST as u32),
        (LD_H_ABS, To::Next, To::Next, ndp::ETH_TYPE_OFFSET as u32),
        (JEQ_K, To::Next, To::Drop, ndp::ETHERTYPE_IPV6 as u32),
        (
            LD_B_ABS,
            To::Next,
            To::Next,
            ndp::IPV6_NEXT_HEADER_OFFSET as u32,
        ),
        (JEQ_K, To::Next, To::Drop, ndp::IPPROTO_ICMPV6 as u32),
        (LD_B_ABS, To::Next, To::Next, ndp::ICMPV6_TYPE_OFFSET as u32),
    ];
    // Every jump must stay within 255 instructions: the header's failures go to the drop right
    // after it, each prefix block ends with its own accept, and a block's mismatch jumps to the
    // next block (or to the final drop).
    let first = if targets.is_empty() {
        To::Accept
    } else {
        To::Block(0)
    };
    prog.push((JEQ_K, first, To::Drop, icmp_type as u32));
    let drop_at = prog.len();
    prog.push((RET_K, To::Next, To::Next, 0));
    let mut accept_at = prog.len();
    if targets.is_empty() {
        prog.push((RET_K, To::Next, To::Next, ACCEPT));
    }
    let mut block_starts = Vec::new();
    for (n, net) in targets.iter().enumerate() {
        block_starts.push(prog.len());
        let addr = u128::from(net.network());
        let len = u32::from(net.prefix_len());
        let words = len.div_ceil(32);
        for w in 0..words {
            let bits = (len - 32 * w).min(32);
            let mask = if bits == 32 {
                u32::MAX
            } else {
                !(u32::MAX >> bits)
            };
            let value = (addr >> (96 - 32 * w)) as u32 & mask;
            prog.push((
                LD_W_ABS,
                To::Next,
                To::Next,
                (TARGET_OFFSET + 4 * w as usize) as u32,
            ));
            if mask != u32::MAX {
                prog.push((AND_K, To::Next, To::Next, mask));
            }
            prog.push((JEQ_K, To::Next, To::Block(n + 1), value));
        }
        accept_at = prog.len();
        prog.push((RET_K, To::Next, To::Next, ACCEPT));
    }
    let final_drop = prog.len();
    if !targets.is_empty() {
        prog.push((RET_K, To::Next, To::Next, 0));
    }
    let resolve = |from: usize, to: To| -> u8 {
        let target = match to {
            To::Next => from + 1,
            To::Drop => drop_at,
            To::Accept => accept_at,
            To::Block(n) => block_starts.get(n).copied().unwrap_or(final_drop),
        };
        // The farthest jump spans one block: at most 4 words of 3 instructions.
        u8::try_from(target - from - 1).expect("BPF jump within 255 instructions")
    };
    prog.iter()
        .enumerate()
        .map(|(i, &(code, jt, jf, k))| libc::sock_filter {
            code,
            jt: if code == JEQ_K { resolve(i, jt) } else { 0 },
            jf: if code == JEQ_K { resolve(i, jf) } else { 0 },
            k,
        })
        .collect()
}

/// `setsockopt(2)` with `value` as the option's bytes.
pub fn setsockopt<T>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
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

/// Attach (or atomically replace) the classic BPF program of a socket (SO_ATTACH_FILTER).
pub fn attach_filter(fd: &OwnedFd, program: &[libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // The kernel copies the program during the call; `program` outlives it.
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

/// Linux >= 4.20 can skip our own transmitted frames before they are even queued; the BPF
/// program drops them on older kernels, so a failure here is harmless.
pub fn set_ignore_outgoing(fd: &OwnedFd) {
    let _ = setsockopt(fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32);
}

/// Bind a packet socket to interface `ifindex`, for IPv6 frames (ETH_P_IPV6).
pub fn bind(fd: &OwnedFd, ifindex: u32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data.
    let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_IPV6 as u16).to_be();
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: addr is a valid sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Ask for all multicast frames on this socket only (PACKET_MR_ALLMULTI): a NIC then passes
/// the solicited-node groups of container addresses, which the host never joined. The
/// membership ends with the socket; interface flags are left alone.
fn add_allmulti(fd: &OwnedFd, ifindex: u32) -> io::Result<()> {
    // SAFETY: packet_mreq is plain old data.
    let mut mreq: libc::packet_mreq = unsafe { mem::zeroed() };
    mreq.mr_ifindex = ifindex as i32;
    mreq.mr_type = libc::PACKET_MR_ALLMULTI as u16;
    setsockopt(fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run the classic BPF program over a frame the way the kernel does (for the subset of
    /// instructions we use), with `pkttype` as the ancillary packet type.
    fn run(prog: &[libc::sock_filter], frame: &[u8], pkttype: u8) -> u32 {
        let mut acc: u32 = 0;
        let mut pc = 0usize;
        loop {
            let ins = prog[pc];
            let class = (ins.code & 0x07) as u32;
            match class {
                c if c == libc::BPF_LD => {
                    let size = (ins.code & 0x18) as u32;
                    if ins.k == (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32 {
                        acc = pkttype as u32;
                    } else {
                        let k = ins.k as usize;
                        let width = match size {
                            s if s == libc::BPF_B => 1,
                            s if s == libc::BPF_H => 2,
                            _ => 4,
                        };
                        let Some(bytes) = frame.get(k..k + width) else {
                            return 0; // out of bounds load: the kernel drops the packet
                        };
                        acc = bytes.iter().fold(0, |a, b| (a << 8) | *b as u32);
                    }
                    pc += 1;
                }
                c if c == libc::BPF_ALU => {
                    assert_eq!(ins.code as u32 & 0xf0, libc::BPF_AND);
                    acc &= ins.k;
                    pc += 1;
                }
                c if c == libc::BPF_JMP => {
                    pc += 1 + if acc == ins.k { ins.jt } else { ins.jf } as usize;
                }
                c if c == libc::BPF_RET => return ins.k,
                _ => panic!("unexpected instruction {:?}", ins.code),
            }
        }
    }

    fn frame(ethertype: u16, next_header: u8, icmp_type: u8) -> Vec<u8> {
        let mut f = vec![0u8; 86];
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        f[20] = next_header;
        f[54] = icmp_type;
        f
    }

    #[test]
    fn filter_accepts_only_incoming_neighbor_solicitations() {
        let prog = ndp_filter(ndp::ICMPV6_NEIGHBOR_SOLICIT, &[]);
        let ns = frame(0x86dd, 58, 135);
        assert_eq!(run(&prog, &ns, 0), RECV_BUF_LEN as u32, "to us");
        assert_eq!(run(&prog, &ns, 1), RECV_BUF_LEN as u32, "broadcast");
        assert_eq!(run(&prog, &ns, 2), RECV_BUF_LEN as u32, "multicast");
        assert_eq!(run(&prog, &ns, PACKET_OUTGOING), 0, "our own frames");
        assert_eq!(run(&prog, &ns, PACKET_OTHERHOST), 0, "other stations'");
        assert_eq!(run(&prog, &frame(0x86dd, 58, 136), 0), 0, "NA");
        assert_eq!(run(&prog, &frame(0x86dd, 58, 128), 0), 0, "echo request");
        assert_eq!(
            run(&prog, &frame(0x86dd, 0, 135), 0),
            0,
            "hop-by-hop header"
        );
        assert_eq!(run(&prog, &frame(0x0800, 58, 135), 0), 0, "IPv4");
        assert_eq!(run(&prog, &frame(0x8100, 58, 135), 0), 0, "VLAN tag");
        assert_eq!(run(&prog, &ns[..40], 0), 0, "truncated");
    }

    #[test]
    fn ring_slots_never_span_a_block_and_fill_the_mapping() {
        let small = Geometry::for_page(4096);
        assert_eq!(
            (small.per_block, small.blocks, small.frames()),
            (21, 48, 1008)
        );
        assert_eq!(small.len(), 192 << 10);
        assert_eq!(small.offset(20), 20 * 192);
        assert_eq!(small.offset(21), 4096);
        // 64 KiB pages (arm64, ppc64le kernels): blocks must be whole pages.
        let large = Geometry::for_page(65536);
        assert_eq!((large.per_block, large.blocks), (341, 3));
        for g in [small, large, Geometry::for_page(16384)] {
            assert!(g.frames() >= RING_FRAMES);
            for i in 0..g.frames() {
                let (start, end) = (g.offset(i), g.offset(i) + RING_FRAME_SIZE);
                assert_eq!(start / g.block_size, (end - 1) / g.block_size, "slot {i}");
                assert!(end <= g.len());
            }
        }
    }

    #[test]
    fn advert_filter_accepts_only_advertisements() {
        let prog = ndp_filter(ndp::ICMPV6_NEIGHBOR_ADVERT, &[]);
        assert_eq!(run(&prog, &frame(0x86dd, 58, 136), 0), RECV_BUF_LEN as u32);
        assert_eq!(run(&prog, &frame(0x86dd, 58, 135), 0), 0);
        assert_eq!(run(&prog, &frame(0x86dd, 58, 136), PACKET_OUTGOING), 0);
    }

    fn ns_for(target: &str) -> Vec<u8> {
        let mut f = frame(0x86dd, 58, 135);
        let addr: std::net::Ipv6Addr = target.parse().unwrap();
        f[TARGET_OFFSET..TARGET_OFFSET + 16].copy_from_slice(&addr.octets());
        f
    }

    #[test]
    fn filter_drops_targets_outside_every_prefix_in_the_kernel() {
        let nets: Vec<Ipv6Net> = [
            "2001:db8:1::d:0/112",
            "2001:db8:2::/48",
            "2001:db8:3::1/128",
            "2001:db8:4::/61",
        ]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
        let prog = ndp_filter(ndp::ICMPV6_NEIGHBOR_SOLICIT, &nets);
        let pass = |t: &str| run(&prog, &ns_for(t), 0) == RECV_BUF_LEN as u32;
        for t in [
            "2001:db8:1::d:0",
            "2001:db8:1::d:ffff",
            "2001:db8:2:ffff::1",
            "2001:db8:3::1",
            "2001:db8:4::",
            "2001:db8:4:7:ffff::1",
        ] {
            assert!(pass(t), "{t} is in a prefix");
        }
        for t in [
            "2001:db8:1::e:0",
            "2001:db8:1::c:ffff",
            "2001:db8:3::2",
            "2001:db8:4:8::",
            "2001:db9:2::1",
            "::",
            "ff02::1:ff00:2",
        ] {
            assert!(!pass(t), "{t} is outside every prefix");
        }
        // The rest of the checks stay in front.
        assert_eq!(run(&prog, &ns_for("2001:db8:1::d:2"), PACKET_OUTGOING), 0);
        let mut na = ns_for("2001:db8:1::d:2");
        na[54] = 136;
        assert_eq!(run(&prog, &na, 0), 0);
        // Too short to hold a target: dropped (the kernel fails the load).
        assert_eq!(run(&prog, &ns_for("2001:db8:1::d:2")[..70], 0), 0);
    }

    #[test]
    fn filter_without_usable_prefixes_passes_every_target() {
        let all: Vec<Ipv6Net> = vec!["::/0".parse().unwrap()];
        let many: Vec<Ipv6Net> = (0..=MAX_FILTER_PREFIXES as u16)
            .map(|i| {
                Ipv6Net::new(std::net::Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 0), 48).unwrap()
            })
            .collect();
        for nets in [&all[..], &many[..], &[]] {
            let prog = ndp_filter(ndp::ICMPV6_NEIGHBOR_SOLICIT, nets);
            assert_eq!(
                run(&prog, &ns_for("2001:db8:77::1"), 0),
                RECV_BUF_LEN as u32
            );
        }
        // The largest program still has jumps in range (the kernel rejects longer ones).
        let widest: Vec<Ipv6Net> = (0..MAX_FILTER_PREFIXES as u16)
            .map(|i| {
                Ipv6Net::new(
                    std::net::Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 1),
                    127,
                )
                .unwrap()
            })
            .collect();
        let prog = ndp_filter(ndp::ICMPV6_NEIGHBOR_SOLICIT, &widest);
        assert!(prog.len() < 4096);
        assert_eq!(
            run(&prog, &ns_for("2001:db8:1f::1"), 0),
            RECV_BUF_LEN as u32
        );
        assert_eq!(run(&prog, &ns_for("2001:db8:1f::2"), 0), 0);
    }
}
