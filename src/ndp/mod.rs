//! Byte-exact parsing and emission of Neighbor Discovery frames: Ethernet II carrying IPv6
//! carrying an ICMPv6 Neighbor Solicitation (RFC 4861 section 4.3) or Neighbor Advertisement
//! (section 4.4), plus the address helpers they need (solicited-node groups, 33:33 MACs).
//!
//! What this module owns: the wire layout (offsets are named once below), the *structural*
//! validity checks of RFC 4861 section 7.1.1 that concern the bytes themselves (IPv6 payload
//! length, ICMPv6 checksum, ICMP length >= 24, every option length > 0 and inside the message),
//! and walking the options, skipping unknown ones as section 4.6 requires.
//! Ethernet, IPv6 and ICMPv6 slicing and the checksum arithmetic come from `etherparse`;
//! the NDP layer on top of that is ours.
//!
//! What it must not do:
//! - No I/O, no heap allocation per packet, no panics on any input: every read is bounds-checked
//!   and a malformed frame becomes a [`ParseError`].
//! - No policy. It does NOT check hop limit == 255, ICMP code == 0, that the target is not a
//!   multicast address, or the DAD rules (unspecified source => solicited-node destination and no
//!   source link-layer option). It only reports those fields; the `policy` module decides.

mod addr;
pub mod packet;
pub mod router;

pub use addr::{multicast_mac, solicited_node, MacAddr, MacAddrParseError, ALL_NODES};

use std::fmt;
use std::net::Ipv6Addr;

use etherparse::err::ipv6::HeaderSliceError;
use etherparse::{
    EtherType, Ethernet2Header, Ethernet2Slice, Icmpv6Slice, IpNumber, Ipv6FlowLabel, Ipv6Header,
    Ipv6HeaderSlice,
};

pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const ICMPV6_NEIGHBOR_SOLICIT: u8 = 135;
pub const ICMPV6_NEIGHBOR_ADVERT: u8 = 136;

const ETH_HEADER_LEN: usize = 14;
const IPV6_HEADER_LEN: usize = 40;

/// Byte offsets in an untagged Ethernet frame, used by the link module's BPF program:
/// the EtherType field.
pub const ETH_TYPE_OFFSET: usize = 12;
/// The IPv6 Next Header field (Ethernet header + 6).
pub const IPV6_NEXT_HEADER_OFFSET: usize = ETH_HEADER_LEN + 6;
/// The ICMPv6 Type field (Ethernet header + IPv6 header).
pub const ICMPV6_TYPE_OFFSET: usize = ETH_HEADER_LEN + IPV6_HEADER_LEN;

/// Fixed part of an NS or NA message: type, code, checksum, 4 octets, target (RFC 4861 4.3, 4.4).
const ND_MSG_LEN: usize = 24;
/// An option that is one 8-octet unit long (RFC 4861 4.6), as all options we emit are.
const ND_OPT_LEN: usize = 8;

/// Length of an NA frame with a target link-layer option: 14 + 40 + 24 + 8 = 86; also the NS
/// length with a source link-layer option.
pub const NA_FRAME_LEN: usize = ICMPV6_TYPE_OFFSET + ND_MSG_LEN + ND_OPT_LEN;
/// Buffer size that any `emit()` in this module fits into: an NS with a source link-layer
/// option and a nonce option, 14 + 40 + 24 + 8 + 8 = 94.
pub const MAX_EMIT_LEN: usize = NA_FRAME_LEN + ND_OPT_LEN;

const _: () = assert!(NA_FRAME_LEN == 86 && MAX_EMIT_LEN == 94 && ICMPV6_TYPE_OFFSET == 54);

/// Offsets inside the ICMPv6 NS/NA message (RFC 4861 sections 4.3 and 4.4).
mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    /// NS: reserved. NA: R, S, O flags in the top bits, then reserved.
    pub const FLAGS: Range<usize> = 4..8;
    pub const TARGET: Range<usize> = 8..24;
    pub const OPTIONS: usize = 24;
}

/// Offsets inside one NDP option (RFC 4861 section 4.6).
mod opt_field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    /// In units of 8 octets, including type and length.
    pub const LENGTH: usize = 1;
    /// Link-layer address of an Ethernet SLLA/TLLA option (RFC 4861 4.6.1, RFC 2464 section 6).
    pub const LLADDR: Range<usize> = 2..8;
    /// The 6-octet nonce of a length-1 nonce option (RFC 7527 section 4.3, RFC 3971 5.3.2).
    pub const NONCE: Range<usize> = 2..8;
}

const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_TARGET_LLADDR: u8 = 2;
const OPT_NONCE: u8 = 14;

const NA_FLAG_ROUTER: u8 = 0x80;
const NA_FLAG_SOLICITED: u8 = 0x40;
const NA_FLAG_OVERRIDE: u8 = 0x20;

/// Why a frame is not a well-formed NS/NA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// EtherType is not IPv6, or the IP version field is not 6.
    NotIpv6,
    /// EtherType is an 802.1Q / 802.1ad tag (0x8100, 0x88a8, 0x9100).
    VlanTagged,
    /// IPv6 Next Header is an extension header rather than ICMPv6 directly.
    ExtensionHeader,
    /// IPv6 Next Header is some other upper-layer protocol.
    NotIcmpv6,
    /// ICMPv6 type is not the one asked for (135 for NS, 136 for NA).
    WrongIcmpType,
    /// The frame ends before the Ethernet header, IPv6 header or IPv6 payload does.
    Truncated,
    /// The ICMPv6 checksum over the pseudo-header does not verify.
    BadChecksum,
    /// ICMP length (IPv6 payload length) is less than 24 octets.
    TooShort,
    /// An option has length 0 (RFC 4861 4.6: must be discarded).
    ZeroLengthOption,
    /// An option runs past the end of the message.
    BadOptionLength,
}

impl ParseError {
    /// A short stable snake_case label for counters and logs.
    pub const fn reason(&self) -> &'static str {
        match self {
            ParseError::NotIpv6 => "not_ipv6",
            ParseError::VlanTagged => "vlan_tagged",
            ParseError::ExtensionHeader => "ipv6_extension_header",
            ParseError::NotIcmpv6 => "not_icmpv6",
            ParseError::WrongIcmpType => "wrong_icmp_type",
            ParseError::Truncated => "truncated",
            ParseError::BadChecksum => "bad_checksum",
            ParseError::TooShort => "too_short",
            ParseError::ZeroLengthOption => "zero_length_option",
            ParseError::BadOptionLength => "bad_option_length",
        }
    }
}

impl crate::status::Reason for ParseError {
    fn reason(&self) -> &'static str {
        ParseError::reason(self)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::NotIpv6 => "the frame does not carry an IPv6 packet",
            ParseError::VlanTagged => "the frame carries a VLAN tag",
            ParseError::ExtensionHeader => "the IPv6 packet has an extension header before ICMPv6",
            ParseError::NotIcmpv6 => "the IPv6 packet does not carry ICMPv6",
            ParseError::WrongIcmpType => "the ICMPv6 message has a different type",
            ParseError::Truncated => "the frame is shorter than its headers say",
            ParseError::BadChecksum => "the ICMPv6 checksum is wrong",
            ParseError::TooShort => "the ICMPv6 message is shorter than 24 octets",
            ParseError::ZeroLengthOption => "an NDP option has length zero",
            ParseError::BadOptionLength => "an NDP option runs past the end of the message",
        })
    }
}

impl std::error::Error for ParseError {}

/// The output buffer is shorter than the frame to emit ([`MAX_EMIT_LEN`] always suffices).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferTooSmall;

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("buffer too small for the frame")
    }
}

impl std::error::Error for BufferTooSmall {}

/// A Neighbor Solicitation carried in an Ethernet frame (RFC 4861 4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborSolicit {
    pub eth_src: MacAddr,
    pub eth_dst: MacAddr,
    pub ip_src: Ipv6Addr,
    pub ip_dst: Ipv6Addr,
    pub hop_limit: u8,
    pub code: u8,
    pub target: Ipv6Addr,
    /// Source Link-Layer Address option (type 1), if present.
    pub source_lladdr: Option<MacAddr>,
    /// RFC 7527 nonce option (type 14) contents, if present with the usual 6-byte nonce
    /// (option length 1); emitted when `Some`.
    pub nonce: Option<[u8; 6]>,
}

impl NeighborSolicit {
    /// A multicast solicitation for address resolution (RFC 4861 7.2.2): from `ip_src` at
    /// `mac` to the target's solicited-node group, with a source link-layer address option.
    pub fn resolution(mac: MacAddr, ip_src: Ipv6Addr, target: Ipv6Addr) -> Self {
        let group = solicited_node(&target);
        NeighborSolicit {
            eth_src: mac,
            eth_dst: multicast_mac(&group),
            ip_src,
            ip_dst: group,
            hop_limit: 255,
            code: 0,
            target,
            source_lladdr: Some(mac),
            nonce: None,
        }
    }

    /// Parses and structurally validates an untagged Ethernet frame (without FCS) holding an NS.
    ///
    /// Checks, in order: EtherType IPv6 (a 0x8100/0x88a8/0x9100 tag gives `VlanTagged`), IPv6
    /// version 6, IPv6 payload within the frame (trailing Ethernet padding beyond the payload
    /// length is ignored), Next Header 58 (an extension header gives `ExtensionHeader`), ICMPv6
    /// type 135, ICMP length >= 24, ICMPv6 checksum over the pseudo-header (RFC 4443 2.3), and
    /// the option walk of RFC 4861 7.1.1 / 4.6: no option of length 0, none past the end.
    /// Unknown options are skipped. The first Source Link-Layer Address option gives
    /// `source_lladdr` (its first 6 octets, RFC 4861 4.6.1; longer options are accepted); the
    /// first nonce option of length 1 gives `nonce` (a nonce option of another length is skipped).
    /// Hop limit, code and the DAD rules are reported, not checked.
    pub fn parse(frame: &[u8]) -> Result<Self, ParseError> {
        let nd = NdFrame::parse(frame, ICMPV6_NEIGHBOR_SOLICIT)?;
        let mut source_lladdr = None;
        let mut nonce = None;
        for option in NdOptions(nd.options) {
            let option = option?;
            match option.first() {
                Some(&OPT_SOURCE_LLADDR) if source_lladdr.is_none() => {
                    source_lladdr = lladdr_of(option);
                }
                Some(&OPT_NONCE) if nonce.is_none() && option.len() == ND_OPT_LEN => {
                    nonce = option.get(opt_field::NONCE).and_then(|n| n.try_into().ok());
                }
                _ => {} // RFC 4861 4.6: unrecognised (or repeated) options are skipped.
            }
        }
        Ok(NeighborSolicit {
            eth_src: nd.eth_src,
            eth_dst: nd.eth_dst,
            ip_src: nd.ip_src,
            ip_dst: nd.ip_dst,
            hop_limit: nd.hop_limit,
            code: nd.code,
            target: nd.target,
            source_lladdr,
            nonce,
        })
    }

    /// Writes the frame (Ethernet + IPv6 + ICMPv6 NS, checksum filled in; reserved field zero;
    /// the SLLA option if `Some`, then the nonce option if `Some`) to the start of `buf` and
    /// returns its length, at most [`MAX_EMIT_LEN`]. Never panics.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let mut options = [0u8; 2 * ND_OPT_LEN];
        let options = pack_options(
            [
                self.source_lladdr
                    .map(|mac| nd_option(OPT_SOURCE_LLADDR, mac.0)),
                self.nonce.map(|nonce| nd_option(OPT_NONCE, nonce)),
            ],
            &mut options,
        );
        NdFrame {
            eth_src: self.eth_src,
            eth_dst: self.eth_dst,
            ip_src: self.ip_src,
            ip_dst: self.ip_dst,
            hop_limit: self.hop_limit,
            icmp_type: ICMPV6_NEIGHBOR_SOLICIT,
            code: self.code,
            flags: [0; 4],
            target: self.target,
            options,
        }
        .emit(buf)
    }
}

/// A Neighbor Advertisement carried in an Ethernet frame (RFC 4861 4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborAdvert {
    pub eth_src: MacAddr,
    pub eth_dst: MacAddr,
    pub ip_src: Ipv6Addr,
    pub ip_dst: Ipv6Addr,
    pub hop_limit: u8,
    /// ICMP code (0 in every valid NA, RFC 4861 7.1.2; reported, not checked).
    pub code: u8,
    /// R flag.
    pub router: bool,
    /// S flag.
    pub solicited: bool,
    /// O flag.
    pub override_flag: bool,
    pub target: Ipv6Addr,
    /// Target Link-Layer Address option (type 2), if present.
    pub target_lladdr: Option<MacAddr>,
}

impl NeighborAdvert {
    /// Parses an NA with the same structural checks as [`NeighborSolicit::parse`], for ICMPv6
    /// type 136. The ICMP code is reported, not checked; the reserved bits are not reported; the first Target
    /// Link-Layer Address option gives `target_lladdr`; other options are skipped.
    pub fn parse(frame: &[u8]) -> Result<Self, ParseError> {
        let nd = NdFrame::parse(frame, ICMPV6_NEIGHBOR_ADVERT)?;
        let mut target_lladdr = None;
        for option in NdOptions(nd.options) {
            let option = option?;
            if option.first() == Some(&OPT_TARGET_LLADDR) && target_lladdr.is_none() {
                target_lladdr = lladdr_of(option);
            }
        }
        let [flags, ..] = nd.flags;
        Ok(NeighborAdvert {
            eth_src: nd.eth_src,
            eth_dst: nd.eth_dst,
            ip_src: nd.ip_src,
            ip_dst: nd.ip_dst,
            hop_limit: nd.hop_limit,
            code: nd.code,
            router: flags & NA_FLAG_ROUTER != 0,
            solicited: flags & NA_FLAG_SOLICITED != 0,
            override_flag: flags & NA_FLAG_OVERRIDE != 0,
            target: nd.target,
            target_lladdr,
        })
    }

    /// Writes the frame (Ethernet + IPv6 + ICMPv6 NA with its code, the R/S/O flags, reserved bits
    /// zero, checksum filled in, the TLLA option if `Some`) to the start of `buf` and returns its
    /// length, at most [`NA_FRAME_LEN`]. Never panics.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let mut options = [0u8; ND_OPT_LEN];
        let options = pack_options(
            [self
                .target_lladdr
                .map(|mac| nd_option(OPT_TARGET_LLADDR, mac.0))],
            &mut options,
        );
        let flag = |set: bool, bit: u8| if set { bit } else { 0 };
        let flags = flag(self.router, NA_FLAG_ROUTER)
            | flag(self.solicited, NA_FLAG_SOLICITED)
            | flag(self.override_flag, NA_FLAG_OVERRIDE);
        NdFrame {
            eth_src: self.eth_src,
            eth_dst: self.eth_dst,
            ip_src: self.ip_src,
            ip_dst: self.ip_dst,
            hop_limit: self.hop_limit,
            icmp_type: ICMPV6_NEIGHBOR_ADVERT,
            code: self.code,
            flags: [flags, 0, 0, 0],
            target: self.target,
            options,
        }
        .emit(buf)
    }
}

/// The layer shared by NS and NA: the headers, the fixed ICMPv6 part and the raw options.
struct NdFrame<'a> {
    eth_src: MacAddr,
    eth_dst: MacAddr,
    ip_src: Ipv6Addr,
    ip_dst: Ipv6Addr,
    hop_limit: u8,
    icmp_type: u8,
    code: u8,
    /// ICMPv6 octets 4..8: NA flags / reserved.
    flags: [u8; 4],
    target: Ipv6Addr,
    options: &'a [u8],
}

impl<'a> NdFrame<'a> {
    fn parse(frame: &'a [u8], icmp_type: u8) -> Result<Self, ParseError> {
        let icmp = IcmpFrame::parse(frame, icmp_type, ND_MSG_LEN)?;
        let message = icmp.message;
        let target: [u8; 16] = message
            .get(field::TARGET)
            .and_then(|t| t.try_into().ok())
            .ok_or(ParseError::TooShort)?;
        let flags: [u8; 4] = message
            .get(field::FLAGS)
            .and_then(|t| t.try_into().ok())
            .ok_or(ParseError::TooShort)?;
        Ok(NdFrame {
            eth_src: icmp.eth_src,
            eth_dst: icmp.eth_dst,
            ip_src: icmp.ip_src,
            ip_dst: icmp.ip_dst,
            hop_limit: icmp.hop_limit,
            icmp_type: message[field::TYPE],
            code: message[field::CODE],
            flags,
            target: Ipv6Addr::from(target),
            options: message.get(field::OPTIONS..).unwrap_or_default(),
        })
    }

    fn emit(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let mut message = [0u8; ND_MSG_LEN + 2 * ND_OPT_LEN];
        let len = ND_MSG_LEN + self.options.len();
        let message = message.get_mut(..len).ok_or(BufferTooSmall)?;
        message[field::TYPE] = self.icmp_type;
        message[field::CODE] = self.code;
        message[field::FLAGS].copy_from_slice(&self.flags);
        message[field::TARGET].copy_from_slice(&self.target.octets());
        message[field::OPTIONS..].copy_from_slice(self.options);
        IcmpFrame {
            eth_src: self.eth_src,
            eth_dst: self.eth_dst,
            ip_src: self.ip_src,
            ip_dst: self.ip_dst,
            hop_limit: self.hop_limit,
            message,
        }
        .emit(buf)
    }
}

/// Any ICMPv6 message in an untagged Ethernet frame: the layer NS/NA ([`NdFrame`]) and RS/RA
/// ([`router`]) share. The message includes its type, code and checksum octets.
struct IcmpFrame<'a> {
    eth_src: MacAddr,
    eth_dst: MacAddr,
    ip_src: Ipv6Addr,
    ip_dst: Ipv6Addr,
    hop_limit: u8,
    message: &'a [u8],
}

impl<'a> IcmpFrame<'a> {
    /// The structural checks every NDP message gets (see [`NeighborSolicit::parse`]), for a
    /// message of `icmp_type` at least `min_len` octets long.
    fn parse(frame: &'a [u8], icmp_type: u8, min_len: usize) -> Result<Self, ParseError> {
        use ParseError::*;
        let eth = Ethernet2Slice::from_slice_without_fcs(frame).map_err(|_| Truncated)?;
        match eth.ether_type() {
            EtherType::IPV6 => {}
            EtherType::VLAN_TAGGED_FRAME
            | EtherType::PROVIDER_BRIDGING
            | EtherType::VLAN_DOUBLE_TAGGED_FRAME => return Err(VlanTagged),
            _ => return Err(NotIpv6),
        }
        let packet = eth.payload_slice();
        let ip = Ipv6HeaderSlice::from_slice(packet).map_err(|e| match e {
            HeaderSliceError::Len(_) => Truncated,
            HeaderSliceError::Content(_) => NotIpv6,
        })?;
        // The IPv6 payload length delimits the message; anything after it is link padding.
        let payload_end = IPV6_HEADER_LEN + usize::from(ip.payload_length());
        let message = packet.get(IPV6_HEADER_LEN..payload_end).ok_or(Truncated)?;
        match ip.next_header() {
            IpNumber::IPV6_ICMP => {}
            n if n.is_ipv6_ext_header_value() => return Err(ExtensionHeader),
            _ => return Err(NotIcmpv6),
        }
        match message.get(field::TYPE) {
            None => return Err(TooShort),
            Some(&t) if t != icmp_type => return Err(WrongIcmpType),
            Some(_) => {}
        }
        if message.len() < min_len.max(8) {
            return Err(TooShort);
        }
        Icmpv6Slice::from_slice(message).map_err(|_| TooShort)?;
        if !packet::checksum_verifies(ip.source_addr(), ip.destination_addr(), message) {
            return Err(BadChecksum);
        }
        Ok(IcmpFrame {
            eth_src: MacAddr(eth.source()),
            eth_dst: MacAddr(eth.destination()),
            ip_src: ip.source_addr(),
            ip_dst: ip.destination_addr(),
            hop_limit: ip.hop_limit(),
            message,
        })
    }

    /// Write Ethernet + IPv6 + the message (its checksum octets filled in here) to the start
    /// of `buf`; returns the frame's length.
    fn emit(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let frame_len = ICMPV6_TYPE_OFFSET + self.message.len();
        // A message that long fits no buffer we use.
        let payload_length = u16::try_from(self.message.len()).map_err(|_| BufferTooSmall)?;
        let frame = buf.get_mut(..frame_len).ok_or(BufferTooSmall)?;

        let eth = Ethernet2Header {
            source: self.eth_src.0,
            destination: self.eth_dst.0,
            ether_type: EtherType::IPV6,
        };
        let rest = eth.write_to_slice(frame).map_err(|_| BufferTooSmall)?;
        let ip = Ipv6Header {
            traffic_class: 0,
            flow_label: Ipv6FlowLabel::ZERO,
            payload_length,
            next_header: IpNumber::IPV6_ICMP,
            hop_limit: self.hop_limit,
            source: self.ip_src.octets(),
            destination: self.ip_dst.octets(),
        };
        let (ip_bytes, message) = rest
            .split_at_mut_checked(IPV6_HEADER_LEN)
            .ok_or(BufferTooSmall)?;
        ip_bytes.copy_from_slice(&ip.to_bytes());
        message.copy_from_slice(self.message);
        // The one checksum of the project (RFC 4443 2.3), over the message just written.
        packet::Packet::new_unchecked(&mut *frame).fill_checksum();
        Ok(frame_len)
    }
}

/// Walks NDP options (RFC 4861 4.6), yielding each whole option (type and length octets
/// included) or the first structural error. Written by hand rather than with etherparse's
/// `NdpOptionsIterator` because that one also rejects known option types (prefix, MTU) with
/// unexpected sizes, which an NS/NA receiver must simply ignore.
struct NdOptions<'a>(&'a [u8]);

impl<'a> Iterator for NdOptions<'a> {
    type Item = Result<&'a [u8], ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let item = match self.0.get(opt_field::LENGTH) {
            None => Err(ParseError::BadOptionLength),
            Some(0) => Err(ParseError::ZeroLengthOption),
            Some(&units) => self
                .0
                .split_at_checked(usize::from(units) * 8)
                .ok_or(ParseError::BadOptionLength),
        };
        match item {
            Ok((option, rest)) => {
                self.0 = rest;
                Some(Ok(option))
            }
            Err(e) => {
                self.0 = &[];
                Some(Err(e))
            }
        }
    }
}

/// The MAC in an SLLA/TLLA option (its first 6 octets after type and length).
fn lladdr_of(option: &[u8]) -> Option<MacAddr> {
    option
        .get(opt_field::LLADDR)
        .and_then(|mac| mac.try_into().ok())
        .map(MacAddr)
}

/// An 8-octet option: type, length 1, 6 octets of data.
fn nd_option(kind: u8, data: [u8; 6]) -> [u8; ND_OPT_LEN] {
    let mut option = [0u8; ND_OPT_LEN];
    option[opt_field::TYPE] = kind;
    option[opt_field::LENGTH] = 1;
    option[opt_field::LLADDR].copy_from_slice(&data);
    option
}

/// Concatenates the present options into `out`; returns the filled part.
fn pack_options<const N: usize>(options: [Option<[u8; ND_OPT_LEN]>; N], out: &mut [u8]) -> &[u8] {
    let mut used = 0;
    for (option, slot) in options
        .iter()
        .flatten()
        .zip(out.chunks_exact_mut(ND_OPT_LEN))
    {
        slot.copy_from_slice(option);
        used += ND_OPT_LEN;
    }
    out.get(..used).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC_A: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    const MAC_B: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
    const ADDR_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
    const ADDR_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);

    /// A Linux 6.18 kernel's address-resolution NS, captured on the wire: namespaces wtA/wtB
    /// joined by a veth pair (02:00:00:00:00:01 / 02:00:00:00:00:02), 2001:db8:1::1/64 and
    /// 2001:db8:1::2/64 added with `nodad`, `tcpdump -i wtvB -w ns.pcap -c 1
    /// 'icmp6 and ip6[40]==135'` in wtB while `ping -c1 2001:db8:1::2` ran in wtA.
    #[rustfmt::skip]
    const LINUX_NS: [u8; 86] = [
        0x33, 0x33, 0xff, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd,
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff,
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x00, 0x00, 0x02,
        0x87, 0x00, 0x1c, 0x25, 0x00, 0x00, 0x00, 0x00,
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    ];

    /// The same kernel's DAD probe with an RFC 7527 nonce, captured the same way (filter
    /// `... and src ::`) after `ip addr add 2001:db8:1::3/64 dev wtvA` (without `nodad`).
    #[rustfmt::skip]
    const LINUX_DAD_NS: [u8; 86] = [
        0x33, 0x33, 0xff, 0x00, 0x00, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd,
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x00, 0x00, 0x03,
        0x87, 0x00, 0xf3, 0xc4, 0x00, 0x00, 0x00, 0x00,
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
        0x0e, 0x01, 0x71, 0x83, 0x36, 0x33, 0xa3, 0x63,
    ];

    /// A solicited, override NA from 2001:db8:1::2 (02:00:00:00:00:02) to 2001:db8:1::1, written
    /// out by hand from RFC 4861 4.4 / 4.6.1. The checksum 0x8a6e was computed independently
    /// (RFC 1071 sum in Python) and `tcpdump -vv` reports "icmp6 sum ok" for this frame.
    #[rustfmt::skip]
    const GOLDEN_NA: [u8; 86] = [
        // Ethernet: dst, src, EtherType IPv6
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x86, 0xdd,
        // IPv6: version 6, TC 0, flow 0; payload length 32; next header 58; hop limit 255
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff,
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        // ICMPv6: type 136, code 0, checksum, flags R=0 S=1 O=1, reserved
        0x88, 0x00, 0x8a, 0x6e, 0x60, 0x00, 0x00, 0x00,
        // target 2001:db8:1::2
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        // Target Link-Layer Address option: type 2, length 1, 02:00:00:00:00:02
        0x02, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
    ];

    /// An untagged frame around `message`, with the ICMPv6 checksum set if there is room for it.
    fn build(next_header: u8, src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> Vec<u8> {
        let mut f = [&MAC_B.0[..], &MAC_A.0[..], &[0x86, 0xdd][..]].concat();
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(message.len() as u16).to_be_bytes());
        f.extend_from_slice(&[next_header, 255]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(message);
        packet::Packet::new_unchecked(&mut f[..]).fill_checksum();
        f
    }

    /// An NS message for ADDR_B followed by raw `options`.
    fn ns_message(options: &[u8]) -> Vec<u8> {
        [
            &[135, 0, 0, 0, 0, 0, 0, 0][..],
            &ADDR_B.octets()[..],
            options,
        ]
        .concat()
    }

    fn ns_frame(options: &[u8]) -> Vec<u8> {
        build(58, ADDR_A, solicited_node(&ADDR_B), &ns_message(options))
    }

    fn emit_ns(ns: &NeighborSolicit) -> Vec<u8> {
        let mut buf = [0u8; MAX_EMIT_LEN];
        let n = ns.emit(&mut buf).unwrap();
        buf[..n].to_vec()
    }

    fn emit_na(na: &NeighborAdvert) -> Vec<u8> {
        let mut buf = [0u8; MAX_EMIT_LEN];
        let n = na.emit(&mut buf).unwrap();
        buf[..n].to_vec()
    }

    fn sample_ns() -> NeighborSolicit {
        NeighborSolicit {
            eth_src: MAC_A,
            eth_dst: multicast_mac(&solicited_node(&ADDR_B)),
            ip_src: ADDR_A,
            ip_dst: solicited_node(&ADDR_B),
            hop_limit: 255,
            code: 0,
            target: ADDR_B,
            source_lladdr: Some(MAC_A),
            nonce: None,
        }
    }

    fn sample_na() -> NeighborAdvert {
        NeighborAdvert {
            eth_src: MAC_B,
            eth_dst: MAC_A,
            ip_src: ADDR_B,
            ip_dst: ADDR_A,
            hop_limit: 255,
            code: 0,
            router: false,
            solicited: true,
            override_flag: true,
            target: ADDR_B,
            target_lladdr: Some(MAC_B),
        }
    }

    #[test]
    fn mac_addr_text_and_bits() {
        let mac: MacAddr = "02:AB:cd:00:0f:ff".parse().unwrap();
        assert_eq!(mac, MacAddr([0x02, 0xab, 0xcd, 0x00, 0x0f, 0xff]));
        assert_eq!(mac.to_string(), "02:ab:cd:00:0f:ff");
        for bad in [
            "",
            "02:ab:cd:00:0f",
            "02:ab:cd:00:0f:ff:00",
            "2:ab:cd:00:0f:ff",
            "+2:ab:cd:00:0f:ff",
            "02-ab-cd-00-0f-ff",
            "02:ab:cd:00:0f:fg",
            "02:ab:cd:00:0f:",
        ] {
            assert_eq!(bad.parse::<MacAddr>(), Err(MacAddrParseError), "{bad:?}");
        }
        assert!(MacAddr([0x33, 0x33, 0, 0, 0, 1]).is_multicast());
        assert!(MacAddr([0x01, 0, 0, 0, 0, 0]).is_multicast());
        assert!(!MAC_A.is_multicast());
        assert!(MacAddr::default().is_zero());
        assert!(!MacAddr([0, 0, 0, 0, 0, 1]).is_zero());
    }

    #[test]
    fn solicited_node_and_multicast_mac_known_values() {
        let a: Ipv6Addr = "2001:db8:1::d:2".parse().unwrap();
        assert_eq!(
            solicited_node(&a),
            "ff02::1:ff0d:2".parse::<Ipv6Addr>().unwrap()
        );
        let b: Ipv6Addr = "2001:db8::abcd:1234:5678".parse().unwrap();
        let group = solicited_node(&b);
        assert_eq!(group, "ff02::1:ff34:5678".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            multicast_mac(&group),
            MacAddr([0x33, 0x33, 0xff, 0x34, 0x56, 0x78])
        );
        assert_eq!(multicast_mac(&ALL_NODES), MacAddr([0x33, 0x33, 0, 0, 0, 1]));
        assert_eq!(ALL_NODES, "ff02::1".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn offsets_match_an_emitted_frame() {
        let f = emit_ns(&sample_ns());
        assert_eq!(f.len(), NA_FRAME_LEN);
        assert_eq!(
            f[ETH_TYPE_OFFSET..ETH_TYPE_OFFSET + 2],
            ETHERTYPE_IPV6.to_be_bytes()
        );
        assert_eq!(f[IPV6_NEXT_HEADER_OFFSET], IPPROTO_ICMPV6);
        assert_eq!(f[ICMPV6_TYPE_OFFSET], ICMPV6_NEIGHBOR_SOLICIT);
        assert_eq!(
            emit_na(&sample_na())[ICMPV6_TYPE_OFFSET],
            ICMPV6_NEIGHBOR_ADVERT
        );
    }

    #[test]
    fn ns_round_trips() {
        let base = sample_ns();
        let dad_group = solicited_node(&ADDR_B);
        let cases = [
            (base, 86),
            (
                NeighborSolicit {
                    source_lladdr: None,
                    ..base
                },
                78,
            ),
            (
                NeighborSolicit {
                    nonce: Some([1, 2, 3, 4, 5, 6]),
                    ..base
                },
                94,
            ),
            (
                NeighborSolicit {
                    code: 7,
                    hop_limit: 64,
                    ip_dst: ADDR_B,
                    eth_dst: MAC_B,
                    ..base
                },
                86,
            ),
            // DAD probe: from ::, to the solicited-node group, no SLLA (RFC 4861 7.2.2).
            (
                NeighborSolicit {
                    ip_src: Ipv6Addr::UNSPECIFIED,
                    ip_dst: dad_group,
                    eth_dst: multicast_mac(&dad_group),
                    source_lladdr: None,
                    nonce: Some([0xde, 0xad, 0xbe, 0xef, 0, 1]),
                    ..base
                },
                86,
            ),
        ];
        for (ns, len) in cases {
            let f = emit_ns(&ns);
            assert_eq!(f.len(), len, "{ns:?}");
            assert_eq!(NeighborSolicit::parse(&f), Ok(ns));
        }
    }

    #[test]
    fn na_round_trips_all_flags_with_and_without_tlla() {
        for bits in 0..8u8 {
            for tlla in [None, Some(MAC_B)] {
                let na = NeighborAdvert {
                    router: bits & 1 != 0,
                    solicited: bits & 2 != 0,
                    override_flag: bits & 4 != 0,
                    target_lladdr: tlla,
                    ..sample_na()
                };
                let f = emit_na(&na);
                assert_eq!(f.len(), if tlla.is_some() { NA_FRAME_LEN } else { 78 });
                assert_eq!(NeighborAdvert::parse(&f), Ok(na));
            }
        }
    }

    #[test]
    fn linux_ns_golden() {
        let ns = NeighborSolicit::parse(&LINUX_NS).unwrap();
        assert_eq!(ns.eth_src, MAC_A);
        assert_eq!(ns.eth_dst, MacAddr([0x33, 0x33, 0xff, 0, 0, 0x02]));
        assert_eq!(ns.ip_src, ADDR_A);
        assert_eq!(ns.ip_dst, "ff02::1:ff00:2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(ns.hop_limit, 255);
        assert_eq!(ns.code, 0);
        assert_eq!(ns.target, ADDR_B);
        assert_eq!(ns.source_lladdr, Some(MAC_A));
        assert_eq!(ns.nonce, None);
        // Our emitter reproduces the kernel's frame byte for byte, checksum included.
        assert_eq!(emit_ns(&ns), LINUX_NS);
    }

    #[test]
    fn linux_dad_ns_with_nonce_golden() {
        let ns = NeighborSolicit::parse(&LINUX_DAD_NS).unwrap();
        let group = "ff02::1:ff00:3".parse::<Ipv6Addr>().unwrap();
        assert_eq!(ns.eth_src, MAC_A);
        assert_eq!(ns.eth_dst, MacAddr([0x33, 0x33, 0xff, 0, 0, 0x03]));
        assert_eq!(ns.ip_src, Ipv6Addr::UNSPECIFIED);
        assert_eq!(ns.ip_dst, group);
        assert_eq!(ns.hop_limit, 255);
        assert_eq!(ns.code, 0);
        assert_eq!(ns.target, "2001:db8:1::3".parse::<Ipv6Addr>().unwrap());
        assert_eq!(ns.source_lladdr, None);
        assert_eq!(ns.nonce, Some([0x71, 0x83, 0x36, 0x33, 0xa3, 0x63]));
        assert_eq!(emit_ns(&ns), LINUX_DAD_NS);
    }

    #[test]
    fn na_golden_bytes() {
        assert_eq!(emit_na(&sample_na()), GOLDEN_NA);
        assert_eq!(NeighborAdvert::parse(&GOLDEN_NA), Ok(sample_na()));
        // Cross-checks of the golden frame's checksum (worked out independently): etherparse's
        // verifier and the project's checksum.
        let icmp = Icmpv6Slice::from_slice(&GOLDEN_NA[54..]).unwrap();
        assert!(icmp.is_checksum_valid(ADDR_B.octets(), ADDR_A.octets()));
        let rebuilt = build(58, ADDR_B, ADDR_A, &GOLDEN_NA[54..]);
        assert_eq!(rebuilt[56..58], [0x8a, 0x6e]);
    }

    #[test]
    fn emit_reports_a_short_buffer() {
        let ns = NeighborSolicit {
            nonce: Some([9; 6]),
            ..sample_ns()
        };
        assert_eq!(ns.emit(&mut [0u8; MAX_EMIT_LEN - 1]), Err(BufferTooSmall));
        assert_eq!(ns.emit(&mut [0u8; MAX_EMIT_LEN]), Ok(MAX_EMIT_LEN));
        assert_eq!(
            sample_na().emit(&mut [0u8; NA_FRAME_LEN - 1]),
            Err(BufferTooSmall)
        );
        assert_eq!(sample_na().emit(&mut [0u8; 200]), Ok(NA_FRAME_LEN));
        assert_eq!(sample_na().emit(&mut []), Err(BufferTooSmall));
    }

    #[test]
    fn every_truncation_is_rejected() {
        for valid in [&LINUX_NS[..], &LINUX_DAD_NS[..], &GOLDEN_NA[..]] {
            for len in 0..valid.len() {
                assert_eq!(
                    NeighborSolicit::parse(&valid[..len]),
                    Err(ParseError::Truncated),
                    "len {len}"
                );
                assert_eq!(
                    NeighborAdvert::parse(&valid[..len]),
                    Err(ParseError::Truncated),
                    "len {len}"
                );
            }
        }
    }

    #[test]
    fn bad_checksum_is_rejected() {
        let mut f = LINUX_NS;
        f[57] ^= 0x01; // checksum low byte
        assert_eq!(NeighborSolicit::parse(&f), Err(ParseError::BadChecksum));
        let mut f = LINUX_NS;
        f[85] ^= 0x80; // SLLA MAC, covered by the checksum
        assert_eq!(NeighborSolicit::parse(&f), Err(ParseError::BadChecksum));
        let mut f = LINUX_NS;
        f[22] ^= 0x01; // IPv6 source, covered through the pseudo-header
        assert_eq!(NeighborSolicit::parse(&f), Err(ParseError::BadChecksum));
    }

    #[test]
    fn icmp_shorter_than_24_is_rejected() {
        for len in [1, 4, 8, 23] {
            let f = build(58, ADDR_A, ADDR_B, &ns_message(&[])[..len]);
            assert_eq!(
                NeighborSolicit::parse(&f),
                Err(ParseError::TooShort),
                "len {len}"
            );
        }
        let f = build(58, ADDR_A, ADDR_B, &[]);
        assert_eq!(NeighborSolicit::parse(&f), Err(ParseError::TooShort));
    }

    #[test]
    fn option_structure_is_enforced() {
        let slla = [1, 1, 2, 0, 0, 0, 0, 1];
        let zero = [&slla[..], &[200, 0, 0, 0, 0, 0, 0, 0]].concat();
        assert_eq!(
            NeighborSolicit::parse(&ns_frame(&zero)),
            Err(ParseError::ZeroLengthOption)
        );
        // Length 2 (16 octets) with only 8 octets left.
        let past_end = [1, 2, 2, 0, 0, 0, 0, 1];
        assert_eq!(
            NeighborSolicit::parse(&ns_frame(&past_end)),
            Err(ParseError::BadOptionLength)
        );
        // A stray octet after a good option cannot even hold a type and length.
        let stray = [&slla[..], &[14]].concat();
        assert_eq!(
            NeighborSolicit::parse(&ns_frame(&stray)),
            Err(ParseError::BadOptionLength)
        );
        let na = build(
            58,
            ADDR_B,
            ADDR_A,
            &[&GOLDEN_NA[54..78], &[2, 0, 2, 0, 0, 0, 0, 2]].concat(),
        );
        assert_eq!(
            NeighborAdvert::parse(&na),
            Err(ParseError::ZeroLengthOption)
        );
    }

    #[test]
    fn unknown_options_are_skipped() {
        let nonce = [14, 1, 1, 2, 3, 4, 5, 6];
        let other = [200, 2, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9];
        let slla = [1, 1, 2, 0, 0, 0, 0, 1];
        let ns = NeighborSolicit::parse(&ns_frame(&[&nonce[..], &other, &slla].concat())).unwrap();
        assert_eq!(ns.source_lladdr, Some(MAC_A));
        assert_eq!(ns.nonce, Some([1, 2, 3, 4, 5, 6]));
        assert_eq!(ns.target, ADDR_B);
        // A nonce of unusual length is skipped, not reported; a longer SLLA gives its first 6
        // octets; a repeated SLLA does not replace the first.
        let long_nonce = [14, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];
        let long_slla = [
            1, 2, 2, 0, 0, 0, 0, 2, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee,
        ];
        let ns = NeighborSolicit::parse(&ns_frame(&[&long_nonce[..], &long_slla, &slla].concat()))
            .unwrap();
        assert_eq!(ns.nonce, None);
        assert_eq!(ns.source_lladdr, Some(MAC_B));
        // An NA skips an SLLA and a nonce but still finds its TLLA.
        let na_msg = [
            &GOLDEN_NA[54..78],
            &slla[..],
            &nonce,
            &[2, 1, 2, 0, 0, 0, 0, 2],
        ]
        .concat();
        let na = NeighborAdvert::parse(&build(58, ADDR_B, ADDR_A, &na_msg)).unwrap();
        assert_eq!(na.target_lladdr, Some(MAC_B));
    }

    #[test]
    fn trailing_ethernet_padding_is_ignored() {
        let mut padded = LINUX_NS.to_vec();
        padded.extend_from_slice(&[0xa5; 24]);
        assert_eq!(
            NeighborSolicit::parse(&padded),
            NeighborSolicit::parse(&LINUX_NS)
        );
        assert!(NeighborSolicit::parse(&padded).is_ok());
        // A minimum-size NS (78 octets, no options) padded out is still option-free.
        let mut short = emit_ns(&NeighborSolicit {
            source_lladdr: None,
            ..sample_ns()
        });
        short.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 1]);
        assert_eq!(NeighborSolicit::parse(&short).unwrap().source_lladdr, None);
    }

    #[test]
    fn link_and_network_layer_rejections() {
        let mut vlan = LINUX_NS[..12].to_vec();
        vlan.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        vlan.extend_from_slice(&LINUX_NS[12..]);
        assert_eq!(NeighborSolicit::parse(&vlan), Err(ParseError::VlanTagged));
        let mut qinq = LINUX_NS;
        qinq[12..14].copy_from_slice(&[0x88, 0xa8]);
        assert_eq!(NeighborAdvert::parse(&qinq), Err(ParseError::VlanTagged));

        let mut ipv4 = LINUX_NS;
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(NeighborSolicit::parse(&ipv4), Err(ParseError::NotIpv6));
        let mut version4 = LINUX_NS;
        version4[14] = 0x40;
        assert_eq!(NeighborSolicit::parse(&version4), Err(ParseError::NotIpv6));

        // Hop-by-hop options header (next header 0) in front of the NS.
        let hbh = [&[58, 0, 1, 4, 0, 0, 0, 0][..], &ns_message(&[])].concat();
        let f = build(0, ADDR_A, ADDR_B, &hbh);
        assert_eq!(NeighborSolicit::parse(&f), Err(ParseError::ExtensionHeader));
        let f = build(60, ADDR_A, ADDR_B, &hbh);
        assert_eq!(NeighborSolicit::parse(&f), Err(ParseError::ExtensionHeader));
        let f = build(17, ADDR_A, ADDR_B, &ns_message(&[]));
        assert_eq!(NeighborSolicit::parse(&f), Err(ParseError::NotIcmpv6));
    }

    #[test]
    fn wrong_icmp_type_is_rejected() {
        assert_eq!(
            NeighborSolicit::parse(&GOLDEN_NA),
            Err(ParseError::WrongIcmpType)
        );
        assert_eq!(
            NeighborAdvert::parse(&LINUX_NS),
            Err(ParseError::WrongIcmpType)
        );
        let mut echo = ns_message(&[]);
        echo[0] = 128;
        let f = build(58, ADDR_A, ADDR_B, &echo);
        assert_eq!(NeighborSolicit::parse(&f), Err(ParseError::WrongIcmpType));
    }

    #[test]
    fn reasons_are_stable_and_distinct() {
        use ParseError::*;
        let all = [
            NotIpv6,
            VlanTagged,
            ExtensionHeader,
            NotIcmpv6,
            WrongIcmpType,
            Truncated,
            BadChecksum,
            TooShort,
            ZeroLengthOption,
            BadOptionLength,
        ];
        let reasons = all.map(|e| e.reason());
        assert_eq!(
            reasons,
            [
                "not_ipv6",
                "vlan_tagged",
                "ipv6_extension_header",
                "not_icmpv6",
                "wrong_icmp_type",
                "truncated",
                "bad_checksum",
                "too_short",
                "zero_length_option",
                "bad_option_length"
            ]
        );
        let messages: std::collections::HashSet<String> =
            all.iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), all.len());
    }

    /// xorshift64: deterministic, no dependencies.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut parsed = 0;
        for _ in 0..100_000 {
            let len = rng.below(128);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let _ = NeighborSolicit::parse(&bytes);
            let _ = NeighborAdvert::parse(&bytes);
        }
        // Mutations of a valid NS: odd rounds anywhere in the frame (headers included), even
        // rounds in the ICMPv6 message with the checksum fixed up so the option walk is reached.
        let valid = ns_frame(&[14, 1, 1, 2, 3, 4, 5, 6, 1, 1, 2, 0, 0, 0, 0, 1]);
        for i in 0..100_000 {
            let mut f = valid.clone();
            let start = if i % 2 == 0 { ICMPV6_TYPE_OFFSET } else { 0 };
            for _ in 0..1 + rng.below(4) {
                let at = start + rng.below(f.len() - start);
                f[at] = rng.next() as u8;
            }
            f.truncate(start + rng.below(f.len() - start + 1));
            f.extend((0..rng.below(3) * 4).map(|_| rng.next() as u8));
            if i % 2 == 0 {
                f = build(58, ADDR_A, solicited_node(&ADDR_B), &f[54..]);
            }
            if let Ok(ns) = NeighborSolicit::parse(&f) {
                parsed += 1;
                let mut buf = [0u8; MAX_EMIT_LEN];
                let n = ns.emit(&mut buf).unwrap();
                assert_eq!(NeighborSolicit::parse(&buf[..n]), Ok(ns));
            }
            let _ = NeighborAdvert::parse(&f);
        }
        assert!(
            parsed > 1000,
            "mutations should often stay valid, got {parsed}"
        );
    }
}
