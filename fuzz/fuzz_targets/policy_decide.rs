//! Arbitrary frames through the whole decision: `NeighborSolicit::parse`, then `policy::decide`
//! against a fixed, realistic snapshot of a host, with the settings (and one of two routing
//! layouts) chosen by the first input byte. Nothing may panic, and:
//!
//! - nothing is ever answered (or probed) for an address of the uplink, a gateway or a
//!   multicast target, nor for a solicitation that fails RFC 4861 7.1.1, nor for a target that
//!   no rule covers or that is routed back out of the uplink;
//! - the rule an answer names covers the target (rules overlap: any of them may be the one
//!   that knows it), and a probe is asked for by a probe rule that covers it;
//! - an answer emits, and re-parses as an NA for the same target with a valid checksum, hop
//!   limit 255, our MAC as source and target link-layer address, and the RFC 4861 7.2.4 shape
//!   (DAD: to all nodes, S clear; otherwise to the solicitor, S set; NUD: O clear).
//!
//! Input: byte 0 selects the variant (bits 0-1: settings, bit 2: routing layout, bit 7: correct
//! the ICMPv6 checksum before parsing, so that mutated frames reach the policy); the rest is the
//! Ethernet frame. The seeds in fuzz/seeds/policy_decide are captured frames behind a 0x80 byte.
//!
//! Run (from the repository root, stable toolchain):
//! `cargo fuzz run -s none policy_decide fuzz/corpus/policy_decide fuzz/seeds/policy_decide`

#![no_main]

mod common;

use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;
use std::sync::OnceLock;

use ipnet::Ipv6Net;
use libfuzzer_sys::fuzz_target;
use ndp_responder::decide::policy::{self, Decision, Kind, Settings, SourcePolicy};
use ndp_responder::decide::targets::{Downstream, Mode, Rule, Snapshot};
use ndp_responder::ndp::{self, MacAddr, NeighborAdvert, NeighborSolicit};

/// The uplink eth0, as in the lab (`ndp_responder::tools::lab`): MAC, link-local and global address.
const UPLINK: u32 = 2;
const BR0: u32 = 3;
const WG0: u32 = 4;
const HOST_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0x02, 0x01]);
const HOST_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0x201);
const HOST_ADDR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
/// The router: its global address and its link-local one (the default route's gateway).
const GATEWAY: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
const GATEWAY_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0x101);
/// A second router the kernel knows on the uplink (a neighbour with the router flag), inside
/// the /64 that layout B routes downstream: only the gateway check keeps it from being answered.
const OTHER_ROUTER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0xfe);
/// A fixed source for `--source ADDR`.
const FIXED_SOURCE: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0xd, 1);

fn net(s: &str) -> Ipv6Net {
    s.parse().expect("a valid prefix")
}

fn ip(s: &str) -> Ipv6Addr {
    s.parse().expect("a valid address")
}

/// Layout A is the lab's host: the /64 is on-link on eth0, containers on br0 in
/// 2001:db8:1::d:0/112, a WireGuard peer range on wg0, and a rule covering the whole /64 (so
/// the uplink's address and the gateway are covered and only the policy keeps them out).
/// Layout B routes the whole /64 to br0 and keeps only a /128 on eth0, a setup users make to
/// have every address of the /64 answered: only the explicit uplink-address and gateway checks
/// then stand between a solicitation for them and an answer.
fn snapshot(routed_64: bool) -> Snapshot {
    let rules = vec![
        Rule {
            prefix: net("2001:db8:1::d:0/112"),
            mode: Mode::Static,
        },
        Rule {
            prefix: net("2001:db8:1::e:0/112"),
            mode: Mode::Probe { via: None },
        },
        Rule {
            prefix: net("2001:db8:1::f:0/112"),
            mode: Mode::Auto,
        },
        Rule {
            prefix: net("2001:db8:1::c:0/112"),
            mode: Mode::Auto,
        },
        Rule {
            prefix: net("2001:db8:1::/64"),
            mode: Mode::Static,
        },
        Rule::docker("ipv6exposed"),
    ];
    let mut routes = vec![
        (net("2001:db8:1::d:0/112"), Some(BR0)),
        (net("2001:db8:1::e:0/112"), Some(BR0)),
        (net("2001:db8:1::f:0/112"), Some(BR0)),
        (net("2001:db8:1::c:0/112"), Some(WG0)),
        (net("2001:db8:2::/64"), Some(BR0)),
        (
            net("2001:db8:1::/64"),
            Some(if routed_64 { BR0 } else { UPLINK }),
        ),
        (net("::/0"), Some(UPLINK)),
    ];
    if routed_64 {
        routes.insert(0, (net("2001:db8:1::2/128"), Some(UPLINK)));
    }
    let downstream = HashMap::from([
        (
            BR0,
            Downstream {
                name: "br0".into(),
                neighbours: true,
                mac: Some(MacAddr([0x02, 0, 0, 0, 0x03, 0x01])),
                link_local: Some(ip("fe80::ff:fe00:301")),
            },
        ),
        (
            WG0,
            Downstream {
                name: "wg0".into(),
                neighbours: false,
                mac: None,
                link_local: None,
            },
        ),
    ]);
    Snapshot {
        uplink: Some(UPLINK),
        mac: HOST_MAC,
        up: true,
        link_local: Some(HOST_LINK_LOCAL),
        rules,
        uplink_addrs: vec![HOST_ADDR, HOST_LINK_LOCAL],
        gateways: vec![GATEWAY_LINK_LOCAL, GATEWAY, OTHER_ROUTER],
        default_gateways: vec![GATEWAY_LINK_LOCAL],
        pinned: vec![],
        gateway_macs: vec![],
        routes,
        downstream,
        known: HashSet::from([ip("2001:db8:1::f:2"), ip("2001:db8:1::f:3")]),
        docker: HashMap::from([
            (ip("2001:db8:2::5"), "ipv6exposed".to_string()),
            (ip("2001:db8:2::6"), "other".to_string()),
        ]),
    }
}

const SETTINGS: [Settings; 4] = [
    Settings {
        source: SourcePolicy::Target,
        router: true,
        override_flag: true,
    },
    Settings {
        source: SourcePolicy::LinkLocal,
        router: true,
        override_flag: true,
    },
    Settings {
        source: SourcePolicy::Fixed(FIXED_SOURCE),
        router: false,
        override_flag: false,
    },
    Settings {
        source: SourcePolicy::Target,
        router: false,
        override_flag: false,
    },
];

fn snapshots() -> &'static [Snapshot; 2] {
    static SNAPSHOTS: OnceLock<[Snapshot; 2]> = OnceLock::new();
    SNAPSHOTS.get_or_init(|| [snapshot(false), snapshot(true)])
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let settings = &SETTINGS[usize::from(selector & 0x03)];
    let snap = &snapshots()[usize::from(selector >> 2 & 0x01)];
    let mut frame = frame.to_vec();
    if selector & 0x80 != 0 {
        common::fix_checksum(&mut frame);
    }
    let Ok(ns) = NeighborSolicit::parse(&frame) else {
        return;
    };
    let decision = policy::decide(&ns, snap, settings);
    match &decision {
        Decision::Answer { kind, rule, advert } => {
            never_for_what_is_not_ours(&ns, snap, &decision);
            // Any covering rule may be the one that knows the target (rules overlap).
            assert!(
                rule.prefix.contains(&ns.target) && snap.rules.contains(*rule),
                "{decision:?}"
            );
            check_answer(&ns, *kind, advert, snap, settings);
        }
        Decision::Probe { via, rule, .. } => {
            never_for_what_is_not_ours(&ns, snap, &decision);
            assert!(
                matches!(rule.mode, Mode::Probe { .. }) && rule.prefix.contains(&ns.target),
                "{decision:?}"
            );
            assert!(snap.downstream.contains_key(via) && Some(*via) != snap.uplink);
        }
        Decision::Invalid(_) => {
            assert!(policy::validate(&ns).is_err(), "{ns:?} -> {decision:?}");
        }
        Decision::Ignore(kind, _) => assert_eq!(*kind, policy::kind_of(&ns)),
    }
});

/// What no answer and no probe may ever be for.
fn never_for_what_is_not_ours(ns: &NeighborSolicit, snap: &Snapshot, decision: &Decision) {
    let target = ns.target;
    assert!(
        !target.is_multicast(),
        "multicast target: {ns:?} -> {decision:?}"
    );
    assert!(
        !snap.is_uplink_addr(&target),
        "uplink address: {ns:?} -> {decision:?}"
    );
    assert!(!snap.is_gateway(&target), "gateway: {ns:?} -> {decision:?}");
    assert_eq!(
        policy::validate(&ns.clone()),
        Ok(()),
        "{ns:?} -> {decision:?}"
    );
    assert_eq!(ns.hop_limit, 255);
    assert_eq!(ns.code, 0);
    assert_ne!(ns.eth_src, snap.mac, "our own frame: {decision:?}");
    assert!(
        ns.eth_dst.is_multicast() || ns.eth_dst == snap.mac,
        "another station's frame: {ns:?} -> {decision:?}"
    );
    assert!(
        snap.rule_for(&target).is_some(),
        "not covered: {ns:?} -> {decision:?}"
    );
    let oif = snap.route_oif(&target);
    assert!(
        oif.is_some() && oif != Some(snap.uplink),
        "routed to the uplink or not at all ({oif:?}): {ns:?} -> {decision:?}"
    );
}

fn check_answer(
    ns: &NeighborSolicit,
    kind: Kind,
    advert: &NeighborAdvert,
    snap: &Snapshot,
    settings: &Settings,
) {
    assert_eq!(kind, policy::kind_of(ns));
    let mut buf = [0u8; ndp::MAX_EMIT_LEN];
    let len = advert.emit(&mut buf).expect("an NA fits MAX_EMIT_LEN");
    let frame = &buf[..len];
    assert_eq!(len, ndp::NA_FRAME_LEN, "an answer carries a TLLA option");
    let parsed = NeighborAdvert::parse(frame).expect("our answer parses as an NA");
    assert_eq!(&parsed, advert);
    assert!(
        common::checksum_is_valid(frame),
        "bad checksum: {frame:02x?}"
    );
    assert_eq!(parsed.target, ns.target);
    assert_eq!(parsed.hop_limit, 255);
    assert_eq!(frame[21], 255, "IPv6 hop limit on the wire");
    assert_eq!(parsed.eth_src, snap.mac);
    assert_eq!(parsed.target_lladdr, Some(snap.mac));
    assert_eq!(parsed.router, settings.router);
    let expected_source = match settings.source {
        SourcePolicy::Target => ns.target,
        SourcePolicy::LinkLocal => snap.link_local.expect("the snapshot has a link-local"),
        SourcePolicy::Fixed(addr) => addr,
    };
    assert_eq!(parsed.ip_src, expected_source);
    match kind {
        Kind::Dad => {
            assert!(ns.ip_src.is_unspecified() && ns.source_lladdr.is_none());
            assert_eq!(parsed.ip_dst, ndp::ALL_NODES);
            assert_eq!(parsed.eth_dst, ndp::multicast_mac(&ndp::ALL_NODES));
            assert!(!parsed.solicited);
        }
        Kind::Resolution | Kind::Nud => {
            assert!(!ns.ip_src.is_unspecified());
            assert_eq!(parsed.ip_dst, ns.ip_src);
            assert_eq!(parsed.eth_dst, ns.source_lladdr.unwrap_or(ns.eth_src));
            assert!(parsed.solicited);
        }
    }
    if kind == Kind::Nud {
        assert_eq!(
            ns.ip_dst, ns.target,
            "a unicast NS answered for another target"
        );
        assert!(!parsed.override_flag, "a NUD answer must not override");
    } else {
        assert_eq!(parsed.override_flag, settings.override_flag);
    }
}
