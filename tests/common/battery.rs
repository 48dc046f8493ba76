//! The malformed-input battery: one valid solicitation for a target the daemon answers,
//! spoilt in exactly one way per frame (every RFC 4861 7.1.1 violation, DAD mistakes,
//! multicast targets, truncation at every length, VLAN tags, IPv6 extension headers).
//!
//! Owns: the cases and where each must end on the socket path ([`Fate`]). Used by
//! tests/malformed.rs (against the daemon in namespaces) and tests/fastpath.rs (through the
//! XDP program and the socket path's pure functions). Must-not: send anything.

use std::net::Ipv6Addr;

use ndp_responder::ndp::{self, MacAddr};
use ndp_responder::tools::lab::HOST_MAC;

/// Frame offsets (untagged Ethernet + IPv6 + ICMPv6 NS).
pub const ETH_DST: std::ops::Range<usize> = 0..6;
pub const PAYLOAD_LENGTH: std::ops::Range<usize> = 18..20;
pub const NEXT_HEADER: usize = 20;
pub const HOP_LIMIT: usize = 21;
pub const IP_SRC: std::ops::Range<usize> = 22..38;
pub const IP_DST: std::ops::Range<usize> = 38..54;
pub const ICMP: usize = 54;
pub const CODE: usize = 55;
pub const CHECKSUM: std::ops::Range<usize> = 56..58;
pub const TARGET: std::ops::Range<usize> = 62..78;
pub const OPTIONS: usize = 78;

/// Where a malformed frame must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Counted by the daemon under this reason (its summary's "invalid: reason=count").
    Counted(&'static str),
    /// Dropped by the BPF program of src/link.rs in the kernel: never reaches user space, so
    /// the daemon cannot count it; it must be neither seen nor answered. The filter passes only
    /// incoming frames (not PACKET_OTHERHOST) with EtherType IPv6 at offset 12, Next Header 58
    /// at offset 20, ICMPv6 type 135 at offset 54 and a target (offsets 62..78, so frames of 78
    /// octets or more) inside a rule's prefix.
    KernelFilter,
    /// Refused by the sender's kernel: a packet socket cannot send a frame shorter than an
    /// Ethernet header (14 octets), so no such frame can reach a Linux uplink at all.
    Unsendable,
}

pub struct Case {
    pub what: String,
    pub frame: Vec<u8>,
    pub fate: Fate,
}

pub fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// `base` changed by `change`, then with a correct checksum, so that only the change is wrong.
pub fn spoil(base: &[u8], change: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut f = base.to_vec();
    change(&mut f);
    super::fix_checksum(&mut f);
    f
}

pub fn set_payload_length(f: &mut [u8], len: usize) {
    f[PAYLOAD_LENGTH].copy_from_slice(&(len as u16).to_be_bytes());
}

/// Insert an IPv6 extension header (`header`, whose first octet is its Next Header) between
/// the IPv6 header and the ICMPv6 message, keeping the checksum the receiver would verify.
pub fn with_extension_header(valid: &[u8], kind: u8, header: &[u8]) -> Vec<u8> {
    let mut f = valid.to_vec();
    f[NEXT_HEADER] = kind;
    f.splice(ICMP..ICMP, header.iter().copied());
    let len = f.len() - ICMP;
    set_payload_length(&mut f, len);
    f
}

/// An 802.1Q / 802.1ad tag (`tpid`, VLAN `vid`) inserted after the MAC addresses.
pub fn tagged(valid: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
    let mut f = valid.to_vec();
    let mut at = 12;
    for (tpid, vid) in tags {
        f.splice(at..at, [tpid.to_be_bytes(), vid.to_be_bytes()].concat());
        at += 4;
    }
    f
}

/// The battery, built from `valid`: the lab router's multicast NS for `target`, with a source
/// link-layer option (86 octets).
pub fn battery(valid: &[u8], target: Ipv6Addr) -> Vec<Case> {
    use Fate::*;
    let mut cases = Vec::new();
    let mut case = |what: &str, frame: Vec<u8>, fate: Fate| {
        cases.push(Case {
            what: what.to_string(),
            frame,
            fate,
        })
    };
    let group = ndp::solicited_node(&target);
    let dad = |f: &mut Vec<u8>| f[IP_SRC].fill(0);
    let without_slla = |f: &mut Vec<u8>| {
        f.truncate(OPTIONS);
        set_payload_length(f, OPTIONS - ICMP);
    };

    // RFC 4861 7.1.1, one violation per frame.
    for hop_limit in [0, 1, 64, 254] {
        case(
            &format!("hop limit {hop_limit}"),
            spoil(valid, |f| f[HOP_LIMIT] = hop_limit),
            Counted("hop_limit"),
        );
    }
    let mut bad_checksum = valid.to_vec();
    bad_checksum[CHECKSUM.start] ^= 0x55;
    case("bad ICMPv6 checksum", bad_checksum, Counted("bad_checksum"));
    let mut bad_pseudo_header = valid.to_vec();
    bad_pseudo_header[IP_SRC.end - 1] ^= 0x01; // the source, covered through the pseudo-header
    case(
        "checksum not matching the IPv6 source",
        bad_pseudo_header,
        Counted("bad_checksum"),
    );
    for code in [1, 255] {
        case(
            &format!("ICMP code {code}"),
            spoil(valid, |f| f[CODE] = code),
            Counted("icmp_code"),
        );
    }
    // ICMP length < 24 with the frame padded out (as Ethernet pads short frames to 60
    // octets, and a switch may pad further): the target's octets are there for the filter, but
    // not part of the message.
    for length in [8, 16, 23] {
        case(
            &format!("ICMP length {length}, frame padded"),
            spoil(valid, |f| set_payload_length(f, length)),
            Counted("too_short"),
        );
    }
    // The same without padding: the frame ends before the target, which the filter reads.
    case(
        "ICMP length 16, not padded",
        spoil(valid, |f| {
            set_payload_length(f, 16);
            f.truncate(ICMP + 16);
        }),
        KernelFilter,
    );
    case(
        "option with length 0",
        spoil(valid, |f| f[OPTIONS + 1] = 0),
        Counted("zero_length_option"),
    );
    case(
        "nonce option with length 0 after the source link-layer option",
        spoil(valid, |f| {
            f.extend_from_slice(&[14, 0, 1, 2, 3, 4, 5, 6]);
            set_payload_length(f, 40);
        }),
        Counted("zero_length_option"),
    );
    case(
        "option longer than the message",
        spoil(valid, |f| f[OPTIONS + 1] = 4),
        Counted("bad_option_length"),
    );
    for (what, t) in [
        ("multicast target ff02::1", ip("ff02::1")),
        ("multicast target: its own solicited-node group", group),
    ] {
        case(
            &format!("{what} (RFC 7.1.1; outside every rule)"),
            spoil(valid, |f| f[TARGET].copy_from_slice(&t.octets())),
            KernelFilter,
        );
    }
    // Duplicate address detection done wrong.
    case(
        "unspecified source with a source link-layer option (DAD with SLLA)",
        spoil(valid, dad),
        Counted("dad_with_source_lladdr"),
    );
    case(
        "DAD with a nonce and a source link-layer option",
        spoil(valid, |f| {
            dad(f);
            f.extend_from_slice(&[14, 1, 0x71, 0x83, 0x36, 0x33, 0xa3, 0x63]);
            set_payload_length(f, 40);
        }),
        Counted("dad_with_source_lladdr"),
    );
    case(
        "unspecified source to all-nodes (not a solicited-node group)",
        spoil(valid, |f| {
            dad(f);
            without_slla(f);
            f[IP_DST].copy_from_slice(&ndp::ALL_NODES.octets());
            f[ETH_DST].copy_from_slice(&ndp::multicast_mac(&ndp::ALL_NODES).0);
        }),
        Counted("dad_not_to_solicited_node"),
    );
    case(
        "unspecified source to the target itself (unicast)",
        spoil(valid, |f| {
            dad(f);
            without_slla(f);
            f[IP_DST].copy_from_slice(&target.octets());
            f[ETH_DST].copy_from_slice(&HOST_MAC.parse::<MacAddr>().unwrap().0);
        }),
        Counted("dad_not_to_solicited_node"),
    );
    // Sources that cannot be on a link.
    case(
        "multicast IPv6 source",
        spoil(valid, |f| {
            f[IP_SRC].copy_from_slice(&ip("ff02::2").octets())
        }),
        Counted("multicast_source"),
    );
    case(
        "loopback IPv6 source",
        spoil(valid, |f| f[IP_SRC].copy_from_slice(&ip("::1").octets())),
        Counted("impossible_source"),
    );
    // VLAN tags. The receiving kernel takes the tag out of the frame (skb_vlan_untag, also
    // the inner one under a priority tag) and, with no VLAN device for a non-zero VLAN ID,
    // marks the frame PACKET_OTHERHOST, which the filter drops. (A lone priority tag, 802.1Q
    // VLAN 0, is not here: the kernel treats such a frame as untagged, and so does the daemon,
    // which answers it, as the kernel answers for its own addresses.)
    case(
        "802.1Q tag, VLAN 7",
        tagged(valid, &[(0x8100, 7)]),
        KernelFilter,
    );
    case(
        "802.1ad + 802.1Q tags (QinQ), VLANs 7 and 9",
        tagged(valid, &[(0x88a8, 7), (0x8100, 9)]),
        KernelFilter,
    );
    case(
        "802.1ad + 802.1Q tags, outer VLAN 0 (priority), inner VLAN 9",
        tagged(valid, &[(0x88a8, 0), (0x8100, 9)]),
        KernelFilter,
    );
    // IPv6 extension headers before the ICMPv6 message (RFC 6980 forbids fragmented NDP).
    case(
        "hop-by-hop options header",
        with_extension_header(valid, 0, &[58, 0, 1, 4, 0, 0, 0, 0]),
        KernelFilter,
    );
    case(
        "destination options header",
        with_extension_header(valid, 60, &[58, 0, 1, 4, 0, 0, 0, 0]),
        KernelFilter,
    );
    case(
        "fragment header (atomic fragment)",
        with_extension_header(valid, 44, &[58, 0, 0, 0, 0, 0, 0x12, 0x34]),
        KernelFilter,
    );
    case(
        "routing header (type 0, no segments left)",
        with_extension_header(valid, 43, &[58, 0, 0, 0, 0, 0, 0, 0]),
        KernelFilter,
    );
    // Truncated at every length, the IPv6 payload length still the whole message's.
    for len in 0..valid.len() {
        let fate = match len {
            0..=13 => Unsendable,
            14..=77 => KernelFilter,
            _ => Counted("truncated"),
        };
        case(&format!("cut to {len} octets"), valid[..len].to_vec(), fate);
    }
    // Truncated inside the option with a consistent payload length: the option runs past the
    // end of the message.
    for len in OPTIONS + 1..valid.len() {
        case(
            &format!(
                "option cut to {} octets, payload length consistent",
                len - OPTIONS
            ),
            spoil(&valid[..len], |f| set_payload_length(f, len - ICMP)),
            Counted("bad_option_length"),
        );
    }
    cases
}
