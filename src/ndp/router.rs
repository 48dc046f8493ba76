//! Byte-exact parsing and emission of Router Solicitations (RFC 4861 4.1) and Router
//! Advertisements (RFC 4861 4.2) with the options a SLAAC router sends: Source Link-Layer
//! Address (4.6.1), Prefix Information (4.6.2), MTU (4.6.4), RDNSS and DNSSL (RFC 8106 5.1,
//! 5.2).
//!
//! Owns: the RS/RA wire layout, [`RouterSolicit`] and [`RouterAdvert`] (parse and emit are
//! symmetric: what one writes the other reads back), the encoding of DNSSL domain names.
//! The Ethernet/IPv6 layer, the structural checks and the one checksum are the parent's
//! (its ICMPv6 frame layer, and [`super::packet`]).
//!
//! Must not: do I/O, decide what to advertise (that is [`crate::decide::slaac`]), or panic on
//! any input: a malformed frame is a [`ParseError`], an option we do not know is skipped.

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use super::{
    lladdr_of, nd_option, BufferTooSmall, IcmpFrame, MacAddr, NdOptions, ParseError,
    OPT_SOURCE_LLADDR,
};

pub const ICMPV6_ROUTER_SOLICIT: u8 = 133;
pub const ICMPV6_ROUTER_ADVERT: u8 = 134;

/// RS: type, code, checksum, 4 reserved octets (RFC 4861 4.1).
const RS_LEN: usize = 8;
/// RA: type, code, checksum, cur hop limit, flags, router lifetime, reachable time, retrans
/// timer (RFC 4861 4.2).
const RA_LEN: usize = 16;

const OPT_PREFIX_INFO: u8 = 3;
const OPT_MTU: u8 = 5;
const OPT_RDNSS: u8 = 25;
const OPT_DNSSL: u8 = 31;

const RA_FLAG_MANAGED: u8 = 0x80;
const RA_FLAG_OTHER: u8 = 0x40;
const PI_FLAG_ON_LINK: u8 = 0x80;
const PI_FLAG_AUTONOMOUS: u8 = 0x40;

/// The largest RA [`RouterAdvert::emit`] writes: the IPv6 minimum MTU (RFC 8200 5), so it is
/// never fragmented; a caller keeps its prefix and server lists short enough.
pub const MAX_RA_FRAME_LEN: usize = 14 + 1280;

/// A Router Solicitation (RFC 4861 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterSolicit {
    pub eth_src: MacAddr,
    pub eth_dst: MacAddr,
    pub ip_src: Ipv6Addr,
    pub ip_dst: Ipv6Addr,
    pub hop_limit: u8,
    pub code: u8,
    /// Source Link-Layer Address option, if present (never from the unspecified source,
    /// RFC 4861 6.1.1: reported, not checked).
    pub source_lladdr: Option<MacAddr>,
}

impl RouterSolicit {
    /// Parse with the structural checks of [`super::NeighborSolicit::parse`] (ICMP type 133,
    /// at least 8 octets). Hop limit and code are reported, not checked.
    pub fn parse(frame: &[u8]) -> Result<Self, ParseError> {
        let icmp = IcmpFrame::parse(frame, ICMPV6_ROUTER_SOLICIT, RS_LEN)?;
        let mut source_lladdr = None;
        for option in NdOptions(icmp.message.get(RS_LEN..).unwrap_or_default()) {
            let option = option?;
            if option.first() == Some(&OPT_SOURCE_LLADDR) && source_lladdr.is_none() {
                source_lladdr = lladdr_of(option);
            }
        }
        Ok(RouterSolicit {
            eth_src: icmp.eth_src,
            eth_dst: icmp.eth_dst,
            ip_src: icmp.ip_src,
            ip_dst: icmp.ip_dst,
            hop_limit: icmp.hop_limit,
            code: icmp.message[1],
            source_lladdr,
        })
    }

    /// Write the frame to `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let mut message = [0u8; RS_LEN + 8];
        message[0] = ICMPV6_ROUTER_SOLICIT;
        message[1] = self.code;
        let len = match self.source_lladdr {
            Some(mac) => {
                message[RS_LEN..].copy_from_slice(&nd_option(OPT_SOURCE_LLADDR, mac.0));
                RS_LEN + 8
            }
            None => RS_LEN,
        };
        IcmpFrame {
            eth_src: self.eth_src,
            eth_dst: self.eth_dst,
            ip_src: self.ip_src,
            ip_dst: self.ip_dst,
            hop_limit: self.hop_limit,
            message: &message[..len],
        }
        .emit(buf)
    }
}

/// A Prefix Information option (RFC 4861 4.6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixInfo {
    /// The prefix (host bits are not sent: the emitter writes the network address).
    pub prefix: Ipv6Net,
    /// L: the prefix is on-link.
    pub on_link: bool,
    /// A: hosts may form addresses in it (RFC 4862 5.5.3).
    pub autonomous: bool,
    /// Seconds; 0xffffffff is infinity.
    pub valid_lifetime: u32,
    pub preferred_lifetime: u32,
}

/// A Router Advertisement (RFC 4861 4.2) and the options we send or relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterAdvert {
    pub eth_src: MacAddr,
    pub eth_dst: MacAddr,
    pub ip_src: Ipv6Addr,
    pub ip_dst: Ipv6Addr,
    pub hop_limit: u8,
    pub code: u8,
    /// The hop limit hosts should use (0: unspecified).
    pub cur_hop_limit: u8,
    /// M flag (addresses by DHCPv6).
    pub managed: bool,
    /// O flag (other configuration by DHCPv6).
    pub other: bool,
    /// Seconds; 0: not a default router (RFC 4861 6.2.5 on a stop).
    pub router_lifetime: u16,
    /// Milliseconds; 0: unspecified.
    pub reachable_time: u32,
    /// Milliseconds; 0: unspecified.
    pub retrans_timer: u32,
    pub source_lladdr: Option<MacAddr>,
    pub mtu: Option<u32>,
    pub prefixes: Vec<PrefixInfo>,
    /// Recursive DNS servers and their lifetime in seconds (RFC 8106 5.1).
    pub rdnss: Option<(u32, Vec<Ipv6Addr>)>,
    /// DNS search list and its lifetime in seconds (RFC 8106 5.2).
    pub dnssl: Option<(u32, Vec<String>)>,
}

impl RouterAdvert {
    /// Parse with the structural checks of [`super::NeighborSolicit::parse`] (ICMP type 134,
    /// at least 16 octets). Options of a known type but the wrong length are skipped, as are
    /// unknown ones (RFC 4861 4.6); the first of each kind counts (all Prefix Information
    /// options do). Hop limit and code are reported, not checked.
    pub fn parse(frame: &[u8]) -> Result<Self, ParseError> {
        let icmp = IcmpFrame::parse(frame, ICMPV6_ROUTER_ADVERT, RA_LEN)?;
        let m = icmp.message;
        let u16_at = |at: usize| u16::from_be_bytes([m[at], m[at + 1]]);
        let u32_at =
            |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let mut ra = RouterAdvert {
            eth_src: icmp.eth_src,
            eth_dst: icmp.eth_dst,
            ip_src: icmp.ip_src,
            ip_dst: icmp.ip_dst,
            hop_limit: icmp.hop_limit,
            code: m[1],
            cur_hop_limit: m[4],
            managed: m[5] & RA_FLAG_MANAGED != 0,
            other: m[5] & RA_FLAG_OTHER != 0,
            router_lifetime: u16_at(6),
            reachable_time: u32_at(m, 8),
            retrans_timer: u32_at(m, 12),
            source_lladdr: None,
            mtu: None,
            prefixes: Vec::new(),
            rdnss: None,
            dnssl: None,
        };
        for option in NdOptions(m.get(RA_LEN..).unwrap_or_default()) {
            let o = option?;
            match (o[0], o.len()) {
                (OPT_SOURCE_LLADDR, _) if ra.source_lladdr.is_none() => {
                    ra.source_lladdr = lladdr_of(o)
                }
                (OPT_MTU, 8) if ra.mtu.is_none() => ra.mtu = Some(u32_at(o, 4)),
                (OPT_PREFIX_INFO, 32) => {
                    let addr: [u8; 16] = o[16..32].try_into().unwrap_or_default();
                    // Host bits after the prefix length are ignored (RFC 4861 4.6.2).
                    if let Ok(prefix) = Ipv6Net::new(Ipv6Addr::from(addr), o[2]) {
                        ra.prefixes.push(PrefixInfo {
                            prefix: prefix.trunc(),
                            on_link: o[3] & PI_FLAG_ON_LINK != 0,
                            autonomous: o[3] & PI_FLAG_AUTONOMOUS != 0,
                            valid_lifetime: u32_at(o, 4),
                            preferred_lifetime: u32_at(o, 8),
                        });
                    }
                }
                // RFC 8106 5.1: length 3 or more, odd.
                (OPT_RDNSS, len) if ra.rdnss.is_none() && len >= 24 && (len - 8) % 16 == 0 => {
                    let servers = o[8..]
                        .chunks_exact(16)
                        .filter_map(|a| <[u8; 16]>::try_from(a).ok())
                        .map(Ipv6Addr::from)
                        .collect();
                    ra.rdnss = Some((u32_at(o, 4), servers));
                }
                (OPT_DNSSL, len) if ra.dnssl.is_none() && len >= 16 => {
                    let names = decode_names(&o[8..]);
                    if !names.is_empty() {
                        ra.dnssl = Some((u32_at(o, 4), names));
                    }
                }
                _ => {}
            }
        }
        Ok(ra)
    }

    /// Write the frame (checksum filled in) to the start of `buf`; returns its length.
    /// Domain names that cannot be encoded (a label over 63 octets, a name over 255) are left
    /// out.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let mut m = Vec::with_capacity(256);
        m.extend_from_slice(&[ICMPV6_ROUTER_ADVERT, self.code, 0, 0, self.cur_hop_limit]);
        let flag = |set: bool, bit: u8| if set { bit } else { 0 };
        m.push(flag(self.managed, RA_FLAG_MANAGED) | flag(self.other, RA_FLAG_OTHER));
        m.extend_from_slice(&self.router_lifetime.to_be_bytes());
        m.extend_from_slice(&self.reachable_time.to_be_bytes());
        m.extend_from_slice(&self.retrans_timer.to_be_bytes());
        if let Some(mac) = self.source_lladdr {
            m.extend_from_slice(&nd_option(OPT_SOURCE_LLADDR, mac.0));
        }
        if let Some(mtu) = self.mtu {
            m.extend_from_slice(&[OPT_MTU, 1, 0, 0]);
            m.extend_from_slice(&mtu.to_be_bytes());
        }
        for p in &self.prefixes {
            let flags = flag(p.on_link, PI_FLAG_ON_LINK) | flag(p.autonomous, PI_FLAG_AUTONOMOUS);
            m.extend_from_slice(&[OPT_PREFIX_INFO, 4, p.prefix.prefix_len(), flags]);
            m.extend_from_slice(&p.valid_lifetime.to_be_bytes());
            m.extend_from_slice(&p.preferred_lifetime.to_be_bytes());
            m.extend_from_slice(&[0; 4]);
            m.extend_from_slice(&p.prefix.network().octets());
        }
        if let Some((lifetime, servers)) = &self.rdnss {
            if !servers.is_empty() {
                let units = u8::try_from(1 + 2 * servers.len()).map_err(|_| BufferTooSmall)?;
                m.extend_from_slice(&[OPT_RDNSS, units, 0, 0]);
                m.extend_from_slice(&lifetime.to_be_bytes());
                for s in servers {
                    m.extend_from_slice(&s.octets());
                }
            }
        }
        if let Some((lifetime, names)) = &self.dnssl {
            let mut encoded: Vec<u8> = names
                .iter()
                .filter_map(|n| encode_name(n))
                .flatten()
                .collect();
            if !encoded.is_empty() {
                // Padded with zeros to a multiple of 8 octets (RFC 8106 5.2).
                encoded.resize((8 + encoded.len()).div_ceil(8) * 8 - 8, 0);
                let units = u8::try_from((8 + encoded.len()) / 8).map_err(|_| BufferTooSmall)?;
                m.extend_from_slice(&[OPT_DNSSL, units, 0, 0]);
                m.extend_from_slice(&lifetime.to_be_bytes());
                m.extend_from_slice(&encoded);
            }
        }
        if 14 + 40 + m.len() > MAX_RA_FRAME_LEN {
            return Err(BufferTooSmall);
        }
        IcmpFrame {
            eth_src: self.eth_src,
            eth_dst: self.eth_dst,
            ip_src: self.ip_src,
            ip_dst: self.ip_dst,
            hop_limit: self.hop_limit,
            message: &m,
        }
        .emit(buf)
    }

    /// The frame, in a buffer of its own.
    pub fn to_frame(&self) -> Result<Vec<u8>, BufferTooSmall> {
        let mut buf = vec![0u8; MAX_RA_FRAME_LEN];
        let len = self.emit(&mut buf)?;
        buf.truncate(len);
        Ok(buf)
    }
}

/// A domain name in DNS wire form (RFC 1035 3.1): length-prefixed labels and a zero. None if
/// a label is empty or over 63 octets, or the name over 255.
fn encode_name(name: &str) -> Option<Vec<u8>> {
    let name = name.trim_end_matches('.');
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.split('.') {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|l| (1..=63).contains(l))?;
        out.push(len);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    (out.len() <= 255).then_some(out)
}

/// The names of a DNSSL option's data (RFC 8106 5.2: the padding after the last is zeros).
/// A malformed name ends the list.
fn decode_names(data: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut at = 0;
    'names: while at < data.len() {
        let mut labels: Vec<String> = Vec::new();
        loop {
            let Some(&len) = data.get(at) else {
                break 'names;
            };
            at += 1;
            if len == 0 {
                break;
            }
            // A label is at most 63 octets; one that holds a dot or is not UTF-8 cannot be
            // written back as a name: the list ends there.
            let Some(label) = data
                .get(at..at + usize::from(len))
                .filter(|l| len <= 63 && !l.contains(&b'.'))
                .and_then(|l| std::str::from_utf8(l).ok())
            else {
                break 'names;
            };
            labels.push(label.to_string());
            at += usize::from(len);
        }
        if labels.is_empty() {
            break; // padding
        }
        let name = labels.join(".");
        if encode_name(&name).is_none() {
            break; // longer than 255 octets
        }
        names.push(name);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ndp::{multicast_mac, ALL_NODES};

    const MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0b]);
    const GUEST: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0c]);
    const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

    fn ra() -> RouterAdvert {
        RouterAdvert {
            eth_src: MAC,
            eth_dst: multicast_mac(&ALL_NODES),
            ip_src: "fe80::b".parse().unwrap(),
            ip_dst: ALL_NODES,
            hop_limit: 255,
            code: 0,
            cur_hop_limit: 64,
            managed: false,
            other: true,
            router_lifetime: 1800,
            reachable_time: 0,
            retrans_timer: 0,
            source_lladdr: Some(MAC),
            mtu: Some(1500),
            prefixes: vec![
                PrefixInfo {
                    prefix: "2001:db8:1::/64".parse().unwrap(),
                    on_link: false,
                    autonomous: true,
                    valid_lifetime: 86400,
                    preferred_lifetime: 14400,
                },
                PrefixInfo {
                    prefix: "2001:db8:2::/64".parse().unwrap(),
                    on_link: true,
                    autonomous: false,
                    valid_lifetime: 0,
                    preferred_lifetime: 0,
                },
            ],
            rdnss: Some((600, vec!["2001:db8::53".parse().unwrap()])),
            dnssl: Some((600, vec!["example.net".into(), "lab.example".into()])),
        }
    }

    #[test]
    fn ra_round_trips_with_every_option() {
        let a = ra();
        let frame = a.to_frame().unwrap();
        // 14 + 40 + 16 + SLLA 8 + MTU 8 + 2 PI 64 + RDNSS 24 + DNSSL 8 + 26 padded to 32.
        assert_eq!(frame.len(), 14 + 40 + 16 + 8 + 8 + 64 + 24 + 40);
        assert_eq!(RouterAdvert::parse(&frame), Ok(a.clone()));
        let bare = RouterAdvert {
            source_lladdr: None,
            mtu: None,
            prefixes: vec![],
            rdnss: None,
            dnssl: None,
            router_lifetime: 0,
            ..a
        };
        assert_eq!(RouterAdvert::parse(&bare.to_frame().unwrap()), Ok(bare));
    }

    #[test]
    fn ra_fields_sit_where_rfc_4861_puts_them() {
        let f = ra().to_frame().unwrap();
        assert_eq!(f[54], 134);
        assert_eq!(f[58], 64, "cur hop limit");
        assert_eq!(f[59], RA_FLAG_OTHER);
        assert_eq!(u16::from_be_bytes([f[60], f[61]]), 1800);
        // SLLA, then MTU, then the first prefix with A=1 L=0.
        assert_eq!(&f[70..78], &[1, 1, 2, 0, 0, 0, 0, 0x0b]);
        assert_eq!(&f[78..86], &[5, 1, 0, 0, 0, 0, 0x05, 0xdc]);
        assert_eq!(&f[86..90], &[3, 4, 64, PI_FLAG_AUTONOMOUS]);
        assert!(crate::ndp::packet::Packet::new_unchecked(&f[..]).verify_checksum());
    }

    #[test]
    fn rs_round_trips_and_rejects_the_wrong_type() {
        for slla in [None, Some(GUEST)] {
            let rs = RouterSolicit {
                eth_src: GUEST,
                eth_dst: multicast_mac(&ALL_ROUTERS),
                ip_src: if slla.is_some() {
                    "fe80::c".parse().unwrap()
                } else {
                    Ipv6Addr::UNSPECIFIED
                },
                ip_dst: ALL_ROUTERS,
                hop_limit: 255,
                code: 0,
                source_lladdr: slla,
            };
            let mut buf = [0u8; 80];
            let n = rs.emit(&mut buf).unwrap();
            assert_eq!(RouterSolicit::parse(&buf[..n]), Ok(rs));
            assert_eq!(
                RouterAdvert::parse(&buf[..n]),
                Err(ParseError::WrongIcmpType)
            );
        }
        let f = ra().to_frame().unwrap();
        assert_eq!(RouterSolicit::parse(&f), Err(ParseError::WrongIcmpType));
    }

    #[test]
    fn malformed_options_and_truncations_are_errors_not_panics() {
        let f = ra().to_frame().unwrap();
        for len in 0..f.len() {
            assert!(RouterAdvert::parse(&f[..len]).is_err(), "len {len}");
        }
        // A DNSSL with a label running past its data ends the list, and an MTU option of the
        // wrong length is skipped.
        assert_eq!(decode_names(&[3, b'a', b'b']), Vec::<String>::new());
        assert_eq!(decode_names(&[1, b'a', 0, 0, 0]), vec!["a".to_string()]);
        assert_eq!(encode_name(&"x".repeat(64)), None);
        assert_eq!(encode_name("a..b"), None);
        assert_eq!(encode_name("example.net."), encode_name("example.net"));
        // Arbitrary mutations never panic.
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..20_000 {
            let mut g = f.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed as usize) % g.len();
                g[at] = (seed >> 32) as u8;
            }
            let _ = RouterAdvert::parse(&g);
            let _ = RouterSolicit::parse(&g);
        }
    }
}
