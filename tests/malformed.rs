//! The malformed-input battery against the real daemon: every RFC 4861 7.1.1 violation,
//! truncation at every length, VLAN tags, extension headers, multicast targets and DAD
//! mistakes, sent by the lab's router for a target the daemon IS responsible for, so that only
//! the malformation stops the answer. None is answered, the daemon survives them all, and each
//! that reaches user space is counted by its reason; what the kernel's BPF program drops never
//! reaches the daemon (and so is neither seen nor counted).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{exe, topology};
use ndp_responder::lab::{container_addr, CONTAINER_PREFIX};

/// Recompute the ICMPv6 checksum of an Ethernet/IPv6/ICMPv6 frame (RFC 4443 2.3), over the
/// ICMPv6 length the IPv6 header declares (bounded by the frame).
fn fix_checksum(f: &mut [u8]) {
    let declared = u16::from_be_bytes([f[18], f[19]]) as usize;
    let end = (54 + declared).min(f.len());
    f[56] = 0;
    f[57] = 0;
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            sum += hi | u32::from(*pair.get(1).unwrap_or(&0));
        }
    };
    add(&f[22..54]);
    add(&((end - 54) as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(&f[54..end]);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    f[56..58].copy_from_slice(&c.to_be_bytes());
}

fn with(base: &[u8], change: impl FnOnce(&mut Vec<u8>), checksum: bool) -> Vec<u8> {
    let mut f = base.to_vec();
    change(&mut f);
    if checksum {
        fix_checksum(&mut f);
    }
    f
}

/// The counters "reason=count" after `label` in the daemon's stop summary.
fn counted(summary: &str, label: &str) -> BTreeMap<String, u64> {
    summary
        .split(&format!("{label}: "))
        .nth(1)
        .map(|rest| rest.split(';').next().unwrap_or_default())
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap_or(0)))
        .collect()
}

#[test]
fn malformed_solicitations_are_never_answered_and_each_is_counted_by_reason() {
    let topo = topology(1);
    let target = container_addr(1);
    let daemon = topo.start_daemon(exe(), &["-n", CONTAINER_PREFIX]).unwrap();
    let valid = common::router_ns(&target);
    assert_eq!(
        valid.len(),
        86,
        "a resolution NS with a source link-layer option"
    );

    // (frame, the reason the daemon counts; None: dropped in the kernel by the BPF program)
    let mut cases: Vec<(String, Vec<u8>, Option<&str>)> = vec![
        (
            "hop limit 64".into(),
            with(&valid, |f| f[21] = 64, true),
            Some("hop_limit"),
        ),
        (
            "bad checksum".into(),
            with(&valid, |f| f[56] ^= 0x55, false),
            Some("bad_checksum"),
        ),
        (
            "ICMP code 1".into(),
            with(&valid, |f| f[55] = 1, true),
            Some("icmp_code"),
        ),
        // Shorter than 24 octets, the message cannot hold a whole target: the filter's load of
        // the target fails and the kernel drops it.
        (
            "ICMP length 16 < 24".into(),
            with(
                &valid,
                |f| {
                    f.truncate(70);
                    f[19] = 16;
                },
                true,
            ),
            None,
        ),
        (
            "option with length 0".into(),
            with(&valid, |f| f[79] = 0, true),
            Some("zero_length_option"),
        ),
        (
            "option longer than the message".into(),
            with(&valid, |f| f[79] = 4, true),
            Some("bad_option_length"),
        ),
        (
            "DAD (from ::) with a source link-layer option".into(),
            with(&valid, |f| f[22..38].fill(0), true),
            Some("dad_with_source_lladdr"),
        ),
        (
            "DAD to all-nodes, not to the solicited-node group".into(),
            with(
                &valid,
                |f| {
                    f[22..38].fill(0);
                    f.truncate(78);
                    f[19] = 24;
                    f[38..54].copy_from_slice(
                        &"ff02::1".parse::<std::net::Ipv6Addr>().unwrap().octets(),
                    );
                    f[0..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
                },
                true,
            ),
            Some("dad_not_to_solicited_node"),
        ),
        (
            "multicast target".into(),
            with(
                &valid,
                |f| {
                    f[62..78].copy_from_slice(
                        &"ff02::1:ff00:2"
                            .parse::<std::net::Ipv6Addr>()
                            .unwrap()
                            .octets(),
                    );
                },
                true,
            ),
            None,
        ),
        (
            "VLAN-tagged".into(),
            with(
                &valid,
                |f| {
                    f.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
                },
                false,
            ),
            None,
        ),
        (
            "hop-by-hop extension header".into(),
            with(
                &valid,
                |f| {
                    f[20] = 0;
                    f.splice(54..54, [58, 0, 1, 4, 0, 0, 0, 0]);
                    f[19] += 8;
                },
                false,
            ),
            None,
        ),
        (
            "fragment header".into(),
            with(
                &valid,
                |f| {
                    f[20] = 44;
                    f.splice(54..54, [58, 0, 0, 0, 0, 0, 0, 1]);
                    f[19] += 8;
                },
                false,
            ),
            None,
        ),
    ];
    // Truncated at every length, the IPv6 payload length still that of the whole message: the
    // hypervisor's bridge already drops those (its IPv6 sanity check), as a real switch path
    // would; cut where the target is incomplete (< 78), the filter drops them too.
    for len in 0..valid.len() {
        cases.push((format!("cut to {len} bytes"), valid[..len].to_vec(), None));
    }
    // Truncated with a consistent IPv6 length (the option cut short): these reach the daemon,
    // which counts them (as an option running past the end).
    for len in 79..valid.len() {
        let frame = with(&valid[..len], |f| f[19] = (len - 54) as u8, true);
        cases.push((
            format!("option cut at {len} bytes"),
            frame,
            Some("bad_option_length"),
        ));
    }

    let frames: Vec<Vec<u8>> = cases.iter().map(|(_, f, _)| f.clone()).collect();
    let capture = common::start_capture(&topo.router(), "r0", 10, "icmp6 and ip6[40] == 136");
    // An empty frame cannot be sent; it is counted as sent by nobody.
    let sendable: Vec<Vec<u8>> = frames.iter().filter(|f| f.len() >= 14).cloned().collect();
    assert_eq!(
        common::send_frames_in(&topo.router(), "r0", &sendable),
        sendable.len()
    );
    // Then one valid NS: it is answered, so the battery could have been answered too.
    assert_eq!(
        common::send_frames_in(&topo.router(), "r0", std::slice::from_ref(&valid)),
        1
    );
    assert!(
        daemon.wait_for_log(&["answered NS who-has", &target], Duration::from_secs(5)),
        "{}",
        daemon.log()
    );
    let answers = common::capture_output(capture, Duration::from_secs(1));
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
    let summary = stopped.summary().to_string();

    // Exactly one answer on the wire: the valid one.
    assert_eq!(
        answers
            .lines()
            .filter(|l| l.contains("neighbor advertisement"))
            .count(),
        1,
        "{answers}"
    );
    assert!(summary.contains("answered 1,"), "{summary}");
    // Each malformation that reached user space is counted by its reason, and nothing else.
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for (_, frame, reason) in &cases {
        if let (Some(reason), true) = (reason, frame.len() >= 14) {
            *expected.entry(reason.to_string()).or_default() += 1;
        }
    }
    let invalid = counted(&summary, "invalid");
    assert_eq!(invalid, expected, "{summary}");
    let seen: u64 = expected.values().sum::<u64>() + 1;
    assert!(
        summary.contains(&format!("NS seen {seen},")),
        "the kernel-dropped cases reached user space: {summary}"
    );
}
