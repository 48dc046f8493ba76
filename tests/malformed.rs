//! The malformed-input battery against the real daemon, in network namespaces (see
//! `ndp_responder::tools::lab`): the lab's router sends, towards the host's uplink, solicitations for a
//! target the daemon IS responsible for (2001:db8:1::d:2 under `-n 2001:db8:1::d:0/112`), each
//! spoilt in exactly one way, so that only the malformation can stop the answer: every RFC 4861
//! section 7.1.1 violation, DAD mistakes, multicast targets, truncation at every length, VLAN
//! tags and IPv6 extension headers. Then one valid solicitation, which must be answered.
//!
//! Asserted: every frame reached the host's uplink (a capture there holds each, byte for byte),
//! exactly one NA left it (for the valid solicitation), the daemon survived and exits 0 on
//! SIGTERM, and its stop summary counts each malformation that reached user space under its
//! reason, while those its kernel filter drops (see `expected` below) are not even seen.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{exe, topology};
use ndp_responder::ndp::{self, MacAddr, NeighborAdvert, NeighborSolicit};
use ndp_responder::tools::lab::{
    self, container_addr, Topology, CONTAINER_PREFIX, HOST_MAC, ROUTER_MAC,
};

/// Frame offsets (untagged Ethernet + IPv6 + ICMPv6 NS).
const ETH_DST: std::ops::Range<usize> = 0..6;
const PAYLOAD_LENGTH: std::ops::Range<usize> = 18..20;
const NEXT_HEADER: usize = 20;
const HOP_LIMIT: usize = 21;
const IP_SRC: std::ops::Range<usize> = 22..38;
const IP_DST: std::ops::Range<usize> = 38..54;
const ICMP: usize = 54;
const CODE: usize = 55;
const CHECKSUM: std::ops::Range<usize> = 56..58;
const TARGET: std::ops::Range<usize> = 62..78;
const OPTIONS: usize = 78;

/// Where a malformed frame must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
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

struct Case {
    what: String,
    frame: Vec<u8>,
    fate: Fate,
}

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// `base` changed by `change`, then with a correct checksum, so that only the change is wrong.
fn spoil(base: &[u8], change: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut f = base.to_vec();
    change(&mut f);
    common::fix_checksum(&mut f);
    f
}

fn set_payload_length(f: &mut [u8], len: usize) {
    f[PAYLOAD_LENGTH].copy_from_slice(&(len as u16).to_be_bytes());
}

/// Insert an IPv6 extension header (`header`, whose first octet is its Next Header) between
/// the IPv6 header and the ICMPv6 message, keeping the checksum the receiver would verify.
fn with_extension_header(valid: &[u8], kind: u8, header: &[u8]) -> Vec<u8> {
    let mut f = valid.to_vec();
    f[NEXT_HEADER] = kind;
    f.splice(ICMP..ICMP, header.iter().copied());
    let len = f.len() - ICMP;
    set_payload_length(&mut f, len);
    f
}

/// An 802.1Q / 802.1ad tag (`tpid`, VLAN `vid`) inserted after the MAC addresses.
fn tagged(valid: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
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
fn battery(valid: &[u8], target: Ipv6Addr) -> Vec<Case> {
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

/// tcpdump writing a pcap file of everything on an interface (both directions).
struct Pcap {
    child: Child,
    path: PathBuf,
}

impl Pcap {
    fn start(ns: &str, iface: &str) -> Pcap {
        let path = std::env::temp_dir().join(format!(
            "ndpt-malformed-{}-{iface}.pcap",
            std::process::id()
        ));
        let mut child = Command::new("ip")
            .args([
                "netns", "exec", ns, "tcpdump", "-U", "-n", "-s", "0", "-i", iface, "-w",
            ])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump (apt-get install tcpdump, or run ./test)");
        common::wait_until_listening(&mut child);
        Pcap { child, path }
    }

    /// The frames captured so far.
    fn frames(&self) -> Vec<Vec<u8>> {
        read_pcap(&self.path)
    }

    fn stop(mut self) -> Vec<Vec<u8>> {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        self.frames()
    }
}

impl Drop for Pcap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The frames of a classic pcap file (what `tcpdump -w` writes), tolerating a record still
/// being written at the end.
fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap_or_default();
    let Some(magic) = data.get(..4) else {
        return Vec::new();
    };
    let u32_at = |at: usize| -> Option<usize> {
        let b: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
        Some(match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => u32::from_le_bytes(b),
            _ => u32::from_be_bytes(b),
        } as usize)
    };
    let mut frames = Vec::new();
    let mut at = 24;
    while let Some(len) = u32_at(at + 8) {
        let Some(frame) = data.get(at + 16..at + 16 + len) else {
            break;
        };
        frames.push(frame.to_vec());
        at += 16 + len;
    }
    frames
}

/// The advertisements the host sent for `target`.
fn answers_for(frames: &[Vec<u8>], target: Ipv6Addr) -> Vec<NeighborAdvert> {
    let host_mac: MacAddr = HOST_MAC.parse().unwrap();
    frames
        .iter()
        .filter_map(|f| NeighborAdvert::parse(f).ok())
        .filter(|na| na.eth_src == host_mac && na.target == target)
        .collect()
}

/// Make the hypervisor's bridge a plain layer-2 switch: with br_netfilter in the kernel
/// (built in, or loaded by Docker), bridged IPv6 goes through its sanity checks, which drop
/// truncated packets and parse hop-by-hop options before the daemon could see them, and
/// whether it is there differs between machines (and within a run). The sysctl is per
/// network namespace; it exists only where br_netfilter is present.
fn plain_layer2_hypervisor(topo: &Topology) {
    let hv = topo.hypervisor();
    let key = "net/bridge/bridge-nf-call-ip6tables";
    let probe = topo
        .try_exec(&hv, &["test", "-e", &format!("/proc/sys/{key}")])
        .unwrap();
    if probe.status.success() {
        topo.sysctl(&hv, key, "0").unwrap();
        let now = topo
            .exec(&hv, &["cat", &format!("/proc/sys/{key}")])
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&now.stdout).trim(), "0");
    }
}

#[test]
fn malformed_solicitations_are_never_answered_and_each_is_counted_by_reason() {
    let topo = topology(0);
    plain_layer2_hypervisor(&topo);
    let target = ip(&container_addr(1));
    let valid = common::router_ns(&target.to_string());
    assert_eq!(
        valid.len(),
        86,
        "a resolution NS with a source link-layer option"
    );
    let parsed = NeighborSolicit::parse(&valid).unwrap();
    assert_eq!(parsed.source_lladdr, Some(ROUTER_MAC.parse().unwrap()));
    let cases = battery(&valid, target);
    // Every case is one malformation of a frame the daemon answers: the daemon's own codec
    // (or the filter's view of it) rejects each, and none is the valid frame by accident.
    for c in &cases {
        assert_ne!(c.frame, valid, "{}", c.what);
    }

    let daemon = topo.start_daemon(exe(), &["-n", CONTAINER_PREFIX]).unwrap();
    let capture = Pcap::start(&topo.host(), "eth0");
    let frames: Vec<&[u8]> = cases.iter().map(|c| &c.frame[..]).collect();
    let results = common::send_each_in(&topo.router(), "r0", &frames, Duration::ZERO);
    for (c, result) in cases.iter().zip(&results) {
        match (c.fate, result) {
            (Fate::Unsendable, Err(e)) => {
                assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{}: {e}", c.what)
            }
            (Fate::Unsendable, Ok(())) => panic!("{}: the kernel sent it", c.what),
            (_, Err(e)) => panic!("{}: not sent: {e}", c.what),
            (_, Ok(())) => {}
        }
    }
    // Then the valid solicitation: answered, so the battery would have been answered too had
    // the daemon not rejected it. Everything sent before it is handled once it is answered
    // (one socket, one queue, in order), and it is on the capture once the answer is.
    assert!(common::send_each_in(&topo.router(), "r0", &[&valid], Duration::ZERO)[0].is_ok());
    let answered = lab::wait_until(Duration::from_secs(5), || {
        !answers_for(&capture.frames(), target).is_empty()
    });
    assert!(answered, "the valid NS was not answered:\n{}", daemon.log());
    let captured = capture.stop();
    let c = common::status(&daemon).uplinks.remove(0).counters;
    let stopped = daemon.stop().unwrap();
    assert!(
        stopped.status.success(),
        "daemon exit after SIGTERM: {}\n{}",
        stopped.status,
        stopped.log
    );

    // Each sent frame reached the uplink unchanged (so a frame not seen by the daemon was
    // dropped by its filter, not lost on the way), in order, and the valid one after them.
    let mut rest = captured.iter();
    for c in cases.iter().filter(|c| c.fate != Fate::Unsendable) {
        assert!(
            rest.any(|f| *f == c.frame),
            "{} never reached the uplink (or out of order)",
            c.what
        );
    }
    assert!(
        rest.any(|f| *f == valid),
        "the valid NS never reached the uplink"
    );

    // Exactly one answer, to the valid solicitation, shaped as RFC 4861 7.2.4 says.
    let answers = answers_for(&captured, target);
    assert_eq!(answers.len(), 1, "{answers:?}\n{}", stopped.log);
    let na = answers[0];
    assert_eq!(na.ip_dst, parsed.ip_src);
    assert_eq!(na.eth_dst, parsed.source_lladdr.unwrap());
    assert!(na.solicited && na.override_flag);
    assert_eq!(c.answered, 1, "{c:?}");

    // Each malformation that reached user space is counted by its reason, and nothing else
    // was: the kernel-filtered ones were not even seen.
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for c in &cases {
        if let Fate::Counted(reason) = c.fate {
            *expected.entry(reason.to_string()).or_default() += 1;
        }
    }
    let invalid: BTreeMap<String, u64> =
        c.invalid.iter().map(|(k, v)| (k.to_string(), v)).collect();
    assert_eq!(invalid, expected, "{c:?}\n{}", stopped.log);
    assert!(c.ignored.is_empty(), "{c:?}");
    let seen = expected.values().sum::<u64>() + 1;
    assert_eq!(
        c.ns_seen, seen,
        "kernel-filtered frames reached user space: {c:?}"
    );
}
