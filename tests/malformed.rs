//! The malformed-input battery against the real daemon, in network namespaces (see
//! `ndp_responder::tools::lab`): the lab's router sends, towards the host's uplink, solicitations for a
//! target the daemon IS responsible for (2001:db8:1::d:2 under `-n 2001:db8:1::d:0/112`), each
//! spoilt in exactly one way, so that only the malformation can stop the answer: every RFC 4861
//! section 7.1.1 violation, DAD mistakes, multicast targets, truncation at every length, VLAN
//! tags and IPv6 extension headers. Then one valid solicitation, which must be answered.
//!
//! Asserted: every frame reached the host's uplink (a capture on the other end of its veth, the
//! hypervisor's port, holds each, byte for byte: on the uplink itself the fast path's XDP
//! program runs before the capture taps, and what it drops or answers never reaches them),
//! exactly one NA left it (for the valid solicitation), the daemon survived and exits 0 on
//! SIGTERM, and its stop summary counts each malformation that reached user space under its
//! reason, while those its kernel filter drops (see `expected` below) are not even seen.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::battery::{battery, ip, Fate};
use common::{exe, topology};
use ndp_responder::ndp::{MacAddr, NeighborAdvert, NeighborSolicit};
use ndp_responder::tools::lab::{
    self, container_addr, Topology, CONTAINER_PREFIX, HOST_MAC, ROUTER_MAC,
};

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
    let capture = Pcap::start(&topo.hypervisor(), "to-host");
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
