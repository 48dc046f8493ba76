//! The receive ring the uplink's solicitations arrive in (PACKET_RX_RING, TPACKET_V2):
//! its geometry, mapping, and walking its slots.
//!
//! Owns: the ring's layout (slot offsets named once), mapping and unmapping it, and handing
//! out the frames of ready slots in order ([`RxRing`]); what one pass found ([`Batch`]).
//!
//! Must not: open or configure the socket (that is [`super::PacketSocket::open`]) or look
//! inside a frame beyond the slot's header.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::sync::Mutex;

use super::setsockopt;

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
pub(super) mod slot {
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
pub(super) const TPACKET_V2: libc::c_int = 1;

/// Where the ring's slots lie: `blocks` blocks of `block_size` octets (one page each), each
/// holding `per_block` slots of [`RING_FRAME_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Geometry {
    pub(super) block_size: usize,
    pub(super) per_block: usize,
    pub(super) blocks: usize,
}

impl Geometry {
    /// At least [`RING_FRAMES`] slots in blocks of one page of `page` octets.
    pub(super) fn for_page(page: usize) -> Geometry {
        let per_block = page / RING_FRAME_SIZE;
        Geometry {
            block_size: page,
            per_block,
            blocks: RING_FRAMES.div_ceil(per_block),
        }
    }

    pub(super) fn frames(&self) -> usize {
        self.blocks * self.per_block
    }

    pub(super) fn len(&self) -> usize {
        self.blocks * self.block_size
    }

    /// Where slot `i` (< frames()) starts in the mapping.
    pub(super) fn offset(&self, i: usize) -> usize {
        i / self.per_block * self.block_size + i % self.per_block * RING_FRAME_SIZE
    }
}

/// The mapped receive ring.
#[derive(Debug)]
pub(super) struct RxRing {
    pub(super) base: NonNull<u8>,
    pub(super) geometry: Geometry,
    /// The next slot to look at. Held for a whole pass: one reader at a time, since a slot
    /// handed back to the kernel may be rewritten at once.
    pub(super) head: Mutex<usize>,
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
    pub(super) fn map(fd: &OwnedFd) -> io::Result<Self> {
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
    pub(super) fn status(&self, i: usize) -> &AtomicU32 {
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
    pub(super) fn slot(&self, i: usize) -> &[u8] {
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

pub(super) fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

pub(super) fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
