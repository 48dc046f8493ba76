//! Helpers shared by the fuzz targets (not a target itself: no `[[bin]]` names it).
#![allow(dead_code)]

use std::net::Ipv6Addr;

use ndp_responder::ndp::{MacAddr, NeighborAdvert, NeighborSolicit, ParseError};

/// Offsets in an untagged Ethernet frame carrying IPv6.
const ETHERTYPE: core::ops::Range<usize> = 12..14;
const PAYLOAD_LENGTH: core::ops::Range<usize> = 18..20;
const SOURCE: core::ops::Range<usize> = 22..38;
const DESTINATION: core::ops::Range<usize> = 38..54;
const MESSAGE: usize = 54;

/// The ICMPv6 message of an untagged IPv6 frame, as its payload length delimits it, if the
/// frame holds all of it.
fn message_range(frame: &[u8]) -> Option<core::ops::Range<usize>> {
    if frame.get(ETHERTYPE)? != [0x86, 0xdd] {
        return None;
    }
    let length = u16::from_be_bytes(frame.get(PAYLOAD_LENGTH)?.try_into().ok()?);
    let end = MESSAGE + usize::from(length);
    (end <= frame.len()).then_some(MESSAGE..end)
}

/// RFC 1071 one's-complement sum of the ICMPv6 pseudo-header (RFC 4443 2.3) and `message`,
/// written independently of the crate under test (which uses etherparse).
fn ones_complement_sum(frame: &[u8], message: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            sum += u64::from(pair[0]) << 8 | u64::from(pair.get(1).copied().unwrap_or(0));
        }
    };
    add(&frame[SOURCE]);
    add(&frame[DESTINATION]);
    add(&(message.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Overwrite the ICMPv6 checksum of an untagged IPv6 frame (whatever its Next Header says)
/// with the correct one, so that mutated frames get past the checksum check and exercise what
/// lies behind it. Frames too short to hold a checksum are left alone.
pub fn fix_checksum(frame: &mut [u8]) {
    let Some(range) = message_range(frame) else {
        return;
    };
    if range.len() < 4 {
        return;
    }
    frame[range.start + 2..range.start + 4].fill(0);
    let sum = ones_complement_sum(frame, &frame[range.clone()]);
    frame[range.start + 2..range.start + 4].copy_from_slice(&(!sum).to_be_bytes());
}

/// True when the ICMPv6 checksum of an untagged IPv6 frame verifies (RFC 1071: the sum over
/// everything, checksum included, is all ones).
pub fn checksum_is_valid(frame: &[u8]) -> bool {
    message_range(frame).is_some_and(|range| ones_complement_sum(frame, &frame[range]) == 0xffff)
}

/// What the frame says, read by a reference parser written from the documentation of
/// `ndp::NeighborSolicit::parse` (RFC 4861 4.3, 4.4, 4.6, 7.1.1) with plain offsets: no
/// etherparse, no shared code. The fuzz target compares it with the real parser, error for
/// error and field for field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    pub eth_dst: MacAddr,
    pub eth_src: MacAddr,
    pub ip_src: Ipv6Addr,
    pub ip_dst: Ipv6Addr,
    pub hop_limit: u8,
    pub code: u8,
    /// The first octet after the checksum (the NA's R, S, O flags).
    pub flags: u8,
    pub target: Ipv6Addr,
    /// The first option of type `lladdr_type` (1: source, 2: target link-layer address).
    pub lladdr: Option<MacAddr>,
    /// The first nonce option (type 14) of length 1.
    pub nonce: Option<[u8; 6]>,
}

/// IANA's IPv6 extension header types (and the "No Next Header"-free list RFC 8200 4 keeps).
const EXTENSION_HEADERS: [u8; 11] = [0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254];

pub fn reference_parse(
    frame: &[u8],
    icmp_type: u8,
    lladdr_type: u8,
) -> Result<Reference, ParseError> {
    use ParseError::*;
    let octets16 = |at: usize| -> [u8; 16] { frame[at..at + 16].try_into().unwrap() };
    let mac = |at: usize| MacAddr(frame[at..at + 6].try_into().unwrap());
    if frame.len() < 14 {
        return Err(Truncated);
    }
    match [frame[12], frame[13]] {
        [0x86, 0xdd] => {}
        [0x81, 0x00] | [0x88, 0xa8] | [0x91, 0x00] => return Err(VlanTagged),
        _ => return Err(NotIpv6),
    }
    if frame.len() < 54 {
        return Err(Truncated);
    }
    if frame[14] >> 4 != 6 {
        return Err(NotIpv6);
    }
    let end = 54 + usize::from(u16::from_be_bytes([frame[18], frame[19]]));
    if end > frame.len() {
        return Err(Truncated);
    }
    match frame[20] {
        58 => {}
        n if EXTENSION_HEADERS.contains(&n) => return Err(ExtensionHeader),
        _ => return Err(NotIcmpv6),
    }
    let message = &frame[54..end];
    match message.first() {
        None => return Err(TooShort),
        Some(&t) if t != icmp_type => return Err(WrongIcmpType),
        Some(_) => {}
    }
    if message.len() < 24 {
        return Err(TooShort);
    }
    if !checksum_is_valid(frame) {
        return Err(BadChecksum);
    }
    let mut options = &message[24..];
    let (mut lladdr, mut nonce) = (None, None);
    while !options.is_empty() {
        if options.len() < 2 {
            return Err(BadOptionLength);
        }
        let len = usize::from(options[1]) * 8;
        if len == 0 {
            return Err(ZeroLengthOption);
        }
        if len > options.len() {
            return Err(BadOptionLength);
        }
        let option = &options[..len];
        if option[0] == lladdr_type && lladdr.is_none() {
            lladdr = Some(MacAddr(option[2..8].try_into().unwrap()));
        }
        if option[0] == 14 && len == 8 && nonce.is_none() {
            nonce = Some(option[2..8].try_into().unwrap());
        }
        options = &options[len..];
    }
    Ok(Reference {
        eth_dst: mac(0),
        eth_src: mac(6),
        ip_src: Ipv6Addr::from(octets16(22)),
        ip_dst: Ipv6Addr::from(octets16(38)),
        hop_limit: frame[21],
        code: message[1],
        flags: message[4],
        target: Ipv6Addr::from(octets16(62)),
        lladdr,
        nonce,
    })
}

/// The NS the reference reads in `frame`.
pub fn reference_ns(frame: &[u8]) -> Result<NeighborSolicit, ParseError> {
    reference_parse(frame, 135, 1).map(|r| NeighborSolicit {
        eth_src: r.eth_src,
        eth_dst: r.eth_dst,
        ip_src: r.ip_src,
        ip_dst: r.ip_dst,
        hop_limit: r.hop_limit,
        code: r.code,
        target: r.target,
        source_lladdr: r.lladdr,
        nonce: r.nonce,
    })
}

/// The NA the reference reads in `frame`.
pub fn reference_na(frame: &[u8]) -> Result<NeighborAdvert, ParseError> {
    reference_parse(frame, 136, 2).map(|r| NeighborAdvert {
        eth_src: r.eth_src,
        eth_dst: r.eth_dst,
        ip_src: r.ip_src,
        ip_dst: r.ip_dst,
        hop_limit: r.hop_limit,
        code: r.code,
        router: r.flags & 0x80 != 0,
        solicited: r.flags & 0x40 != 0,
        override_flag: r.flags & 0x20 != 0,
        target: r.target,
        target_lladdr: r.lladdr,
    })
}
