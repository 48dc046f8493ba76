//! The AF_PACKET socket on the uplink: capture Neighbor Solicitations, send frames.
//!
//! Owns: opening the socket (with a clear error when CAP_NET_RAW is missing), the classic BPF
//! program that lets only incoming ICMPv6 Neighbor Solicitations (or, for probes, Neighbor
//! Advertisements; for SLAAC, the guests' RS/RA/NS/NA and the uplink's RA/NA) reach user space, the per-socket all-multicast membership, the receive ring
//! the uplink's solicitations arrive in ([`PacketSocket::recv_batch`]: PACKET_MMAP, no system
//! call per frame), batched sending ([`TxQueue`], one `sendmmsg` per batch), and non-blocking
//! `recv`/`send` of single frames for the low-volume sockets.
//!
//! The uplink's memberships of solicited-node groups, which MLD-snooping switches need to see
//! reported, are [`groups`].
//!
//! The socket helpers ([`setsockopt`], [`attach_filter`], [`set_ignore_outgoing`], [`bind`])
//! are public so that the benchmark (`bench/`) sets up its own packet sockets the same way.
//!
//! Must not: parse beyond what the BPF program needs, or decide anything about a packet.

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;

use ipnet::Ipv6Net;
use socket2::{Domain, Protocol, Socket, Type};

use crate::ndp;

mod bpf;
pub mod fastpath;
pub mod groups;
mod ring;
mod tx;

pub use bpf::{attach_filter, icmp_types_filter, ndp_filter, MAX_FILTER_PREFIXES};
use ring::{read_u16, read_u32, slot, RxRing};
pub use ring::{Batch, RING_FRAMES, RING_FRAME_SIZE};
pub use tx::{Flushed, TxQueue, TX_BATCH};

/// The largest frame received whole: an NDP message can be as large as the link's MTU, and
/// Ethernet jumbo frames stop at 9000 bytes of payload. A longer one is cut and then rejected
/// by the parser as truncated.
pub const RECV_BUF_LEN: usize = 9216;

/// The socket's receive queue (kernel memory, not ours). With the receive ring it only holds
/// the rare frames too long for a ring slot (see [`RING_FRAME_SIZE`]).
const RECV_QUEUE_BYTES: usize = 1 << 20;

/// Kernel packet types (linux/if_packet.h) that the BPF program and `recv` drop.
pub(crate) const PACKET_OTHERHOST: u8 = 3;
pub(crate) const PACKET_OUTGOING: u8 = 4;

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
    /// Router and Neighbor Discovery on a SLAAC interface (the guests' bridge): RS, RA, NS, NA.
    Guests,
    /// Router Advertisements and Neighbor Advertisements on the uplink (for SLAAC: the
    /// router's DNS options, and answers to relayed DAD).
    UplinkRouter,
}

impl Capture {
    fn filter(self) -> Vec<libc::sock_filter> {
        use ndp::router::{ICMPV6_ROUTER_ADVERT, ICMPV6_ROUTER_SOLICIT};
        match self {
            Capture::Solicitations => ndp_filter(ndp::ICMPV6_NEIGHBOR_SOLICIT, &[]),
            Capture::Advertisements => ndp_filter(ndp::ICMPV6_NEIGHBOR_ADVERT, &[]),
            Capture::Guests => icmp_types_filter(&[
                ICMPV6_ROUTER_SOLICIT,
                ICMPV6_ROUTER_ADVERT,
                ndp::ICMPV6_NEIGHBOR_SOLICIT,
                ndp::ICMPV6_NEIGHBOR_ADVERT,
            ]),
            Capture::UplinkRouter => {
                icmp_types_filter(&[ICMPV6_ROUTER_ADVERT, ndp::ICMPV6_NEIGHBOR_ADVERT])
            }
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
        attach_filter(&fd, &capture.filter()).map_err(io_err("attaching the BPF filter"))?;
        set_ignore_outgoing(&fd);
        // The uplink's solicitations are the load: they arrive in a ring. Advertisements
        // (probes, keepalive answers) are few and read one by one.
        let ring = match capture {
            Capture::Solicitations => Some(
                RxRing::map(&fd).map_err(io_err("setting up the receive ring (PACKET_MMAP)"))?,
            ),
            Capture::Advertisements | Capture::Guests | Capture::UplinkRouter => None,
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
/// the solicited-node groups of container addresses, which the host never joined. A switch
/// that snoops MLD needs the groups reported as well, which this does not do ([`groups`]
/// does). The membership ends with the socket; interface flags are left alone.
fn add_allmulti(fd: &OwnedFd, ifindex: u32) -> io::Result<()> {
    // SAFETY: packet_mreq is plain old data.
    let mut mreq: libc::packet_mreq = unsafe { mem::zeroed() };
    mreq.mr_ifindex = ifindex as i32;
    mreq.mr_type = libc::PACKET_MR_ALLMULTI as u16;
    setsockopt(fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
}

#[cfg(test)]
mod tests {
    use super::bpf::TARGET_OFFSET;
    use super::ring::Geometry;
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

    #[test]
    fn guest_filter_accepts_router_and_neighbor_discovery_only() {
        let prog = Capture::Guests.filter();
        for t in [133, 134, 135, 136] {
            let f = frame(0x86dd, 58, t);
            assert_eq!(run(&prog, &f, 0), RECV_BUF_LEN as u32, "type {t}");
            assert_eq!(run(&prog, &f, 2), RECV_BUF_LEN as u32, "type {t} multicast");
            assert_eq!(run(&prog, &f, PACKET_OUTGOING), 0, "our own {t}");
            assert_eq!(run(&prog, &f, PACKET_OTHERHOST), 0, "other's {t}");
        }
        for t in [128, 129, 137, 143] {
            assert_eq!(run(&prog, &frame(0x86dd, 58, t), 0), 0, "type {t}");
        }
        assert_eq!(run(&prog, &frame(0x0800, 58, 134), 0), 0, "IPv4");
        assert_eq!(run(&prog, &frame(0x86dd, 0, 134), 0), 0, "hop-by-hop");
        assert_eq!(run(&prog, &frame(0x86dd, 58, 134)[..40], 0), 0, "truncated");
        let up = Capture::UplinkRouter.filter();
        assert_eq!(run(&up, &frame(0x86dd, 58, 134), 0), RECV_BUF_LEN as u32);
        assert_eq!(run(&up, &frame(0x86dd, 58, 136), 0), RECV_BUF_LEN as u32);
        assert_eq!(
            run(&up, &frame(0x86dd, 58, 135), 0),
            0,
            "NS stays on the ring"
        );
        assert_eq!(run(&up, &frame(0x86dd, 58, 133), 0), 0);
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
