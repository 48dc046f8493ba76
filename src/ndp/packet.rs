//! A zero-copy view of an NDP frame (untagged Ethernet II + IPv6 + ICMPv6 NS/NA), with getters
//! and setters at offsets named once, and the one ICMPv6 checksum of the project.
//!
//! Owns: the frame layout (where each field is), reading and writing fields in place (the
//! benchmark rewrites frames with it, the tests forge them), and [`icmpv6_checksum`] /
//! [`Packet::fill_checksum`] (RFC 4443 2.3: the RFC 1071 sum over the IPv6 pseudo-header and
//! the message; the arithmetic is etherparse's). [`crate::ndp::NeighborSolicit`] and
//! [`crate::ndp::NeighborAdvert`] are the parsed representations built on these bytes.
//!
//! Must not: validate beyond lengths (that is [`crate::ndp`]'s parse, and policy is
//! [`crate::decide`]'s), allocate, or panic: a getter on a frame too short for its field
//! returns zeros, a setter does nothing.

use std::net::Ipv6Addr;

use etherparse::Icmpv6Type;

use super::MacAddr;

/// Byte ranges in the frame: Ethernet header, IPv6 header at 14, ICMPv6 message at 54.
pub mod field {
    use core::ops::Range;
    pub const ETH_DST: Range<usize> = 0..6;
    pub const ETH_SRC: Range<usize> = 6..12;
    pub const ETH_TYPE: Range<usize> = 12..14;
    pub const IP_PAYLOAD_LEN: Range<usize> = 18..20;
    pub const IP_NEXT_HEADER: usize = 20;
    pub const IP_HOP_LIMIT: usize = 21;
    pub const IP_SRC: Range<usize> = 22..38;
    pub const IP_DST: Range<usize> = 38..54;
    /// Where the ICMPv6 message starts: the pseudo-header's upper-layer length counts from here.
    pub const ICMP: usize = 54;
    pub const ICMP_TYPE: usize = 54;
    pub const ICMP_CODE: usize = 55;
    pub const ICMP_CHECKSUM: Range<usize> = 56..58;
    /// NA: the R, S, O flags in the top bits of the first octet; NS: reserved.
    pub const ND_FLAGS: Range<usize> = 58..62;
    pub const ND_TARGET: Range<usize> = 62..78;
    pub const ND_OPTIONS: usize = 78;
}

/// An NDP frame in `buffer` (read-only for `&[u8]`, writable for `&mut [u8]` or `Vec<u8>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// A view of `buffer`, whatever its length (short frames read as zeros).
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// A view of `buffer` if it holds at least the headers and the fixed NS/NA part.
    pub fn new_checked(buffer: T) -> Option<Packet<T>> {
        (buffer.as_ref().len() >= field::ND_OPTIONS).then_some(Packet { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn bytes<const N: usize>(&self, range: core::ops::Range<usize>) -> [u8; N] {
        self.buffer
            .as_ref()
            .get(range)
            .and_then(|b| b.try_into().ok())
            .unwrap_or([0; N])
    }

    fn byte(&self, at: usize) -> u8 {
        self.buffer.as_ref().get(at).copied().unwrap_or(0)
    }

    pub fn eth_dst(&self) -> MacAddr {
        MacAddr(self.bytes(field::ETH_DST))
    }
    pub fn eth_src(&self) -> MacAddr {
        MacAddr(self.bytes(field::ETH_SRC))
    }
    pub fn ethertype(&self) -> u16 {
        u16::from_be_bytes(self.bytes(field::ETH_TYPE))
    }
    pub fn payload_len(&self) -> u16 {
        u16::from_be_bytes(self.bytes(field::IP_PAYLOAD_LEN))
    }
    pub fn next_header(&self) -> u8 {
        self.byte(field::IP_NEXT_HEADER)
    }
    pub fn hop_limit(&self) -> u8 {
        self.byte(field::IP_HOP_LIMIT)
    }
    pub fn ip_src(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.bytes::<16>(field::IP_SRC))
    }
    pub fn ip_dst(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.bytes::<16>(field::IP_DST))
    }
    pub fn icmp_type(&self) -> u8 {
        self.byte(field::ICMP_TYPE)
    }
    pub fn code(&self) -> u8 {
        self.byte(field::ICMP_CODE)
    }
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes(self.bytes(field::ICMP_CHECKSUM))
    }
    /// NA flags octet (R 0x80, S 0x40, O 0x20).
    pub fn na_flags(&self) -> u8 {
        self.byte(field::ND_FLAGS.start)
    }
    pub fn target(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.bytes::<16>(field::ND_TARGET))
    }

    /// The ICMPv6 message as the IPv6 payload length declares it, cut at the frame's end.
    pub fn message(&self) -> &[u8] {
        let frame = self.buffer.as_ref();
        let end = (field::ICMP + usize::from(self.payload_len())).min(frame.len());
        frame.get(field::ICMP..end).unwrap_or_default()
    }

    /// Does the ICMPv6 checksum verify over the message [`Packet::message`] holds?
    pub fn verify_checksum(&self) -> bool {
        checksum_verifies(self.ip_src(), self.ip_dst(), self.message())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn put(&mut self, range: core::ops::Range<usize>, value: &[u8]) {
        if let Some(slot) = self.buffer.as_mut().get_mut(range) {
            slot.copy_from_slice(value);
        }
    }

    pub fn set_eth_dst(&mut self, mac: MacAddr) {
        self.put(field::ETH_DST, &mac.0);
    }
    pub fn set_eth_src(&mut self, mac: MacAddr) {
        self.put(field::ETH_SRC, &mac.0);
    }
    pub fn set_payload_len(&mut self, len: u16) {
        self.put(field::IP_PAYLOAD_LEN, &len.to_be_bytes());
    }
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.put(field::IP_HOP_LIMIT..field::IP_HOP_LIMIT + 1, &[hop_limit]);
    }
    pub fn set_ip_src(&mut self, addr: Ipv6Addr) {
        self.put(field::IP_SRC, &addr.octets());
    }
    pub fn set_ip_dst(&mut self, addr: Ipv6Addr) {
        self.put(field::IP_DST, &addr.octets());
    }
    pub fn set_icmp_type(&mut self, t: u8) {
        self.put(field::ICMP_TYPE..field::ICMP_TYPE + 1, &[t]);
    }
    pub fn set_code(&mut self, code: u8) {
        self.put(field::ICMP_CODE..field::ICMP_CODE + 1, &[code]);
    }
    pub fn set_na_flags(&mut self, flags: u8) {
        self.put(field::ND_FLAGS.start..field::ND_FLAGS.start + 1, &[flags]);
    }
    pub fn set_target(&mut self, addr: Ipv6Addr) {
        self.put(field::ND_TARGET, &addr.octets());
    }
    /// Write the checksum field as given (a test or the benchmark forging a wrong one; a
    /// right one comes from [`Packet::fill_checksum`]).
    pub fn set_checksum(&mut self, sum: u16) {
        self.put(field::ICMP_CHECKSUM, &sum.to_be_bytes());
    }

    /// Compute and write the ICMPv6 checksum over the message the payload length declares
    /// (cut at the frame's end). Does nothing on a frame too short to hold the checksum.
    pub fn fill_checksum(&mut self) {
        let (src, dst) = (self.ip_src(), self.ip_dst());
        let end = (field::ICMP + usize::from(self.payload_len())).min(self.buffer.as_ref().len());
        let Some(message) = self.buffer.as_mut().get_mut(field::ICMP..end) else {
            return;
        };
        if let Some(sum) = icmpv6_checksum(src, dst, message) {
            message[2..4].copy_from_slice(&sum.to_be_bytes());
        }
    }
}

/// Does the checksum written in `message` verify between `src` and `dst`? In one's
/// complement 0x0000 and 0xffff are the same number (RFC 1071): a sender may write either.
pub fn checksum_verifies(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> bool {
    let Some(written) = message.get(2..4).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
        return false;
    };
    match icmpv6_checksum(src, dst, message) {
        Some(sum) => sum == written || (sum | written == 0xffff && (sum == 0 || written == 0)),
        None => false,
    }
}

/// The ICMPv6 checksum (RFC 4443 2.3) of `message` between `src` and `dst` (the message's own
/// checksum octets are left out of the sum). None for a message shorter than 4 octets.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> Option<u16> {
    let (&[icmp_type, code, ..], rest) = (message, message.get(4..)?) else {
        return None;
    };
    let bytes5to8: [u8; 4] = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .unwrap_or([0; 4]);
    // etherparse sums the pseudo-header, the first 8 octets it is given as fields, and the rest.
    let sum = Icmpv6Type::Unknown {
        type_u8: icmp_type,
        code_u8: code,
        bytes5to8,
    }
    .calc_checksum(
        src.octets(),
        dst.octets(),
        rest.get(4..).unwrap_or_default(),
    )
    .ok()?;
    // A message shorter than 8 octets: the missing ones were summed as zeros, which is what
    // RFC 1071 pads with anyway.
    Some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ndp::{NeighborAdvert, NeighborSolicit};

    fn na() -> Vec<u8> {
        let na = NeighborAdvert {
            eth_src: MacAddr([2, 0, 0, 0, 2, 1]),
            eth_dst: MacAddr([2, 0, 0, 0, 1, 1]),
            ip_src: "2001:db8:1::d:2".parse().unwrap(),
            ip_dst: "fe80::1".parse().unwrap(),
            hop_limit: 255,
            code: 0,
            router: true,
            solicited: true,
            override_flag: false,
            target: "2001:db8:1::d:2".parse().unwrap(),
            target_lladdr: Some(MacAddr([2, 0, 0, 0, 2, 1])),
        };
        let mut buf = vec![0u8; crate::ndp::MAX_EMIT_LEN];
        let len = na.emit(&mut buf).unwrap();
        buf.truncate(len);
        buf
    }

    #[test]
    fn getters_read_what_the_codec_wrote() {
        let frame = na();
        let p = Packet::new_checked(&frame[..]).unwrap();
        assert_eq!(p.eth_src(), MacAddr([2, 0, 0, 0, 2, 1]));
        assert_eq!(p.ethertype(), 0x86dd);
        assert_eq!(p.hop_limit(), 255);
        assert_eq!(p.icmp_type(), 136);
        assert_eq!(p.na_flags(), 0xc0);
        assert_eq!(p.target(), "2001:db8:1::d:2".parse::<Ipv6Addr>().unwrap());
        assert!(p.verify_checksum());
    }

    #[test]
    fn setters_then_fill_checksum_give_a_frame_the_codec_accepts() {
        let mut frame = na();
        let mut p = Packet::new_unchecked(&mut frame[..]);
        p.set_target("2001:db8:1::d:7".parse().unwrap());
        p.set_ip_src("2001:db8:1::d:7".parse().unwrap());
        p.set_hop_limit(254);
        assert!(!p.verify_checksum(), "the checksum covers the target");
        p.fill_checksum();
        assert!(p.verify_checksum());
        let right = p.checksum();
        p.set_checksum(right ^ 0x5a5a);
        assert!(!p.verify_checksum());
        p.set_checksum(right);
        let parsed = NeighborAdvert::parse(&frame).unwrap();
        assert_eq!(
            parsed.target,
            "2001:db8:1::d:7".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(parsed.hop_limit, 254);
    }

    #[test]
    fn short_and_lying_frames_neither_panic_nor_write_out_of_bounds() {
        for len in 0..=90 {
            let mut frame = na();
            frame.truncate(len.min(frame.len()));
            let mut p = Packet::new_unchecked(&mut frame[..]);
            p.set_payload_len(u16::MAX);
            p.set_target(Ipv6Addr::LOCALHOST);
            p.fill_checksum();
            let _ = (p.verify_checksum(), p.message().len(), p.target());
        }
        // 0x0000 and 0xffff are the same checksum in one's complement.
        let mut frame = na();
        let mut p = Packet::new_unchecked(&mut frame[..]);
        let sum = p.checksum();
        for (written, other) in [(0x0000u16, 0xffffu16), (0xffff, 0x0000)] {
            if sum == written {
                p.put(field::ICMP_CHECKSUM, &other.to_be_bytes());
                assert!(p.verify_checksum());
            }
        }
        // A solicitation's checksum, filled by the view, verifies in the codec too.
        let ns = NeighborSolicit::resolution(
            MacAddr([2, 0, 0, 0, 1, 1]),
            "fe80::1".parse().unwrap(),
            "2001:db8:1::d:2".parse().unwrap(),
        );
        let mut buf = vec![0u8; crate::ndp::MAX_EMIT_LEN];
        let len = ns.emit(&mut buf).unwrap();
        let mut p = Packet::new_unchecked(&mut buf[..len]);
        p.set_code(1);
        p.fill_checksum();
        assert_eq!(NeighborSolicit::parse(&buf[..len]).unwrap().code, 1);
    }
}
