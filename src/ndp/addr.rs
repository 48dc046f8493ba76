//! Link-layer and group addresses of Neighbor Discovery: Ethernet MACs, the all-nodes group,
//! solicited-node groups and their 33:33 MACs.
//!
//! Owns: [`MacAddr`] (parse, display, group and zero tests), [`solicited_node`] (RFC 4291
//! 2.7.1) and [`multicast_mac`] (RFC 2464 7).
//!
//! Must not: know about frames (that is the rest of [`crate::ndp`]).

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// An Ethernet MAC address. Displays as lowercase `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// The I/G bit (least significant bit of the first octet): a group address.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// `00:00:00:00:00:00`.
    pub const fn is_zero(&self) -> bool {
        matches!(self.0, [0, 0, 0, 0, 0, 0])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// The text was not six colon-separated pairs of hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacAddrParseError;

impl fmt::Display for MacAddrParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid MAC address (expected the form aa:bb:cc:dd:ee:ff)")
    }
}

impl std::error::Error for MacAddrParseError {}

impl FromStr for MacAddr {
    type Err = MacAddrParseError;

    /// Accepts exactly `aa:bb:cc:dd:ee:ff` (two hex digits per octet, either case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        fn hex(digit: u8) -> Option<u8> {
            char::from(digit)
                .to_digit(16)
                .and_then(|d| u8::try_from(d).ok())
        }
        let mut mac = [0u8; 6];
        let mut parts = s.split(':');
        for octet in &mut mac {
            *octet = match parts.next().map(str::as_bytes) {
                Some(&[hi, lo]) => hex(hi).zip(hex(lo)).map(|(hi, lo)| hi << 4 | lo),
                _ => None,
            }
            .ok_or(MacAddrParseError)?;
        }
        match parts.next() {
            None => Ok(MacAddr(mac)),
            Some(_) => Err(MacAddrParseError),
        }
    }
}

/// The all-nodes link-local multicast group ff02::1 (RFC 4291 2.7.1).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The solicited-node group ff02::1:ffXX:XXXX of an address: the prefix ff02::1:ff00:0/104 plus
/// the low-order 24 bits of the address (RFC 4291 section 2.7.1).
pub fn solicited_node(addr: &Ipv6Addr) -> Ipv6Addr {
    let [.., a, b, c] = addr.octets();
    Ipv6Addr::from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, a, b, c])
}

/// The Ethernet address of an IPv6 multicast group: 33:33 followed by the last four octets of
/// the group address (RFC 2464 section 7).
pub fn multicast_mac(group: &Ipv6Addr) -> MacAddr {
    let [.., a, b, c, d] = group.octets();
    MacAddr([0x33, 0x33, a, b, c, d])
}
