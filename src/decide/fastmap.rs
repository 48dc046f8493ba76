//! What the in-kernel fast path may answer: the daemon's answer set as map contents.
//!
//! Owns: [`compute`], the one pure function that turns a [`Snapshot`] (plus the probe
//! cache's positives and the answer [`Settings`]) into the contents of the fast path's maps:
//! a verdict per prefix (longest match wins, as in the program's LPM trie) and per exact
//! target (which override the prefixes), the shape of the answers, and the gateways' MACs.
//! Every verdict comes from [`policy::judge`], the same function the socket path's
//! [`policy::decide`] uses, so both paths agree by construction; the unit tests below check
//! that any address's longest match gives `judge`'s verdict.
//!
//! With [`Uncovered::Drop`] (the `drop_uncovered` option) a catch-all `::/0` drops what no
//! other entry holds, and the kernel's own targets get exact entries that pass.
//!
//! Must not: touch maps or the kernel (that is `crate::link::fastpath`), or decide on its
//! own: where it is not sure it says [`Verdict::Pass`] and the socket path decides.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use crate::decide::policy::{self, Ignored, Judgement, Settings, SourcePolicy};
use crate::decide::targets::{Mode, Snapshot};
use crate::ndp::MacAddr;

/// What the program does with a valid solicitation for a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer in the kernel; `live` when the target is known to be there (not merely inside a
    /// static prefix): the gateways' rate limits tell the two apart.
    Answer { live: bool },
    /// Drop and count under this reason: the socket path would ignore it for the same one.
    Drop(Ignored),
    /// Pass it up (the kernel and the socket path): the uplink's own and the gateways'
    /// addresses, other stations on the link, probe-mode targets.
    Pass,
}

/// How answers are built, from the snapshot and the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub mac: MacAddr,
    /// The IPv6 source of every answer; None: the target itself.
    pub source: Option<Ipv6Addr>,
    pub router: bool,
    pub override_flag: bool,
}

/// The contents of the fast path's maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FastSet {
    /// None: the fast path answers nothing now (no uplink yet, or `--source link-local`
    /// while the uplink has no link-local address): everything goes up.
    pub shape: Option<Shape>,
    /// Longest match wins; addresses that match none are passed up.
    pub prefixes: Vec<(Ipv6Net, Verdict)>,
    /// Exact targets, looked up before the prefixes.
    pub targets: Vec<(Ipv6Addr, Verdict)>,
    /// Solicitations from these MACs draw on the gateways' own buckets.
    pub gateway_macs: Vec<MacAddr>,
}

/// The verdict for a target that `judge` judged so.
fn verdict(j: &Judgement<'_>) -> Option<Verdict> {
    Some(match j {
        Judgement::Ours(rule) => Verdict::Answer {
            live: rule.mode != Mode::Static,
        },
        Judgement::Probe(..) => Verdict::Pass,
        // Not ours and no prefix of ours: nothing to store (absent = pass).
        Judgement::Not(Ignored::NotCovered) => return None,
        // Reasons that only concern addresses the kernel never answers on the uplink.
        Judgement::Not(
            why @ (Ignored::UnknownDownstream
            | Ignored::NotConnected
            | Ignored::NoRoute
            | Ignored::NoDownstream),
        ) => Verdict::Drop(*why),
        // The uplink's own addresses, the gateways and other stations of the link (routed to
        // the uplink: the kernel may hold tentative or anycast addresses among them) go up.
        Judgement::Not(_) => Verdict::Pass,
    })
}

/// What the program does with a solicitation whose target no map entry holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Uncovered {
    /// Pass it up: the kernel and every packet socket on the uplink see it (the default).
    #[default]
    Pass,
    /// Drop it, counted as not covered (`drop_uncovered`): under a flood of solicitations
    /// for addresses nobody here answers, the kernel's receive path never spends time on
    /// them. The kernel's own targets still pass, by exact entries: the uplink's addresses
    /// (tentative ones too: RFC 4862 5.4.3) and the subnet-router anycast address of each
    /// of their /64s (RFC 4291 2.6.1; the kernel answers it when forwarding). Solicitations
    /// that software other than the kernel and us answers (ndppd, `ip -6 neigh add proxy`
    /// entries) are dropped too: the option is for hosts where nothing else answers.
    Drop,
}

/// The map contents for `snap` and the probe cache's `positives`.
pub fn compute(
    snap: &Snapshot,
    positives: impl IntoIterator<Item = Ipv6Addr>,
    settings: &Settings,
    uncovered: Uncovered,
) -> FastSet {
    let source = match settings.source {
        SourcePolicy::Target => Some(None),
        SourcePolicy::Fixed(addr) => Some(Some(addr)),
        SourcePolicy::LinkLocal => snap.link_local.map(Some),
    };
    let shape = match (snap.uplink, source) {
        (Some(_), Some(source)) => Some(Shape {
            mac: snap.mac,
            source,
            router: settings.router,
            override_flag: settings.override_flag,
        }),
        _ => None,
    };
    let mut set = FastSet {
        shape,
        gateway_macs: snap.gateway_macs.iter().map(|(_, m)| *m).collect(),
        ..FastSet::default()
    };
    set.gateway_macs.sort_by_key(|m| m.0);
    set.gateway_macs.dedup();
    if set.shape.is_none() {
        return set;
    }

    // Only what the socket's kernel filter lets through is looked at (as the socket path
    // sees nothing else): the rest is absent, and passed up untouched.
    let filter = snap.filter_prefixes();
    let in_filter = |a: &Ipv6Addr| filter.iter().any(|f| f.contains(a));

    // The kernel's own targets, which pass whatever the filter when the rest is dropped.
    let kernel: BTreeSet<Ipv6Addr> = match uncovered {
        Uncovered::Pass => BTreeSet::new(),
        Uncovered::Drop => snap
            .uplink_addrs
            .iter()
            .flat_map(|a| [*a, subnet_router(a)])
            .collect(),
    };

    // Exact targets: every address the snapshot names one by one.
    let positives: Vec<Ipv6Addr> = positives.into_iter().collect();
    let points: BTreeSet<Ipv6Addr> = snap
        .uplink_addrs
        .iter()
        .chain(&snap.gateways)
        .chain(&snap.known)
        .chain(snap.docker.keys())
        .chain(&positives)
        .chain(&kernel)
        .copied()
        .collect();
    for addr in &points {
        if kernel.contains(addr) {
            // The kernel answers for them itself, whatever covers them.
            set.targets.push((*addr, Verdict::Pass));
            continue;
        }
        if !in_filter(addr) {
            continue;
        }
        let j = policy::judge(addr, snap);
        let v = match (&j, positives.contains(addr)) {
            // The probe cache says it answered: the socket path answers it (live), unless it
            // is a SLAAC guest's address still being verified.
            (Judgement::Probe(..), true) if !policy::awaits_route(snap, addr) => {
                Some(Verdict::Answer { live: true })
            }
            _ => verdict(&j),
        };
        if let Some(v) = v {
            set.targets.push((*addr, v));
        }
    }

    // Prefixes: each rule or route prefix stands for the addresses it holds that no longer
    // prefix and no exact target does; judge one of them (the verdict is the same for all:
    // `judge` reads only which prefixes hold an address and the exact sets).
    let prefixes: BTreeSet<Ipv6Net> = snap
        .rules
        .iter()
        .map(|r| r.prefix.trunc())
        .chain(snap.routes.iter().map(|(net, _)| net.trunc()))
        .chain(filter.iter().map(|net| net.trunc()))
        .collect();
    let bounds: Vec<Ipv6Net> = prefixes
        .iter()
        .copied()
        .chain(points.iter().map(|a| Ipv6Net::from(*a)))
        .collect();
    for net in &prefixes {
        let inner: Vec<Ipv6Net> = bounds
            .iter()
            .filter(|m| m.prefix_len() > net.prefix_len() && net.contains(*m))
            .copied()
            .collect();
        let Some(rep) = free_addr(*net, &inner) else {
            continue; // wholly covered by longer prefixes and exact targets
        };
        if !in_filter(&rep) {
            continue;
        }
        if let Some(v) = verdict(&policy::judge(&rep, snap)) {
            set.prefixes.push((*net, v));
        }
    }
    if uncovered == Uncovered::Drop {
        set.prefixes
            .push((Ipv6Net::default(), Verdict::Drop(Ignored::NotCovered)));
    }
    set
}

/// The subnet-router anycast address of `addr`'s /64.
fn subnet_router(addr: &Ipv6Addr) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(*addr) & (u128::MAX << 64))
}

/// An address of `net` inside none of `inner` (prefixes strictly inside `net`), if any.
fn free_addr(net: Ipv6Net, inner: &[Ipv6Net]) -> Option<Ipv6Addr> {
    if inner.is_empty() {
        return Some(net.network());
    }
    let len = net.prefix_len();
    if len >= 128 {
        return None;
    }
    let base = u128::from(net.network());
    for half in [base, base | (1u128 << (127 - len))] {
        let half = Ipv6Net::new(Ipv6Addr::from(half), len + 1).ok()?;
        if inner.contains(&half) {
            continue;
        }
        let sub: Vec<Ipv6Net> = inner
            .iter()
            .filter(|m| half.contains(*m))
            .copied()
            .collect();
        if let Some(addr) = free_addr(half, &sub) {
            return Some(addr);
        }
    }
    None
}

/// The verdict the maps give `addr`: its exact entry, else its longest prefix (the
/// program's lookup, for tests and the differential test's reference).
pub fn lookup(set: &FastSet, addr: &Ipv6Addr) -> Verdict {
    if let Some((_, v)) = set.targets.iter().find(|(a, _)| a == addr) {
        return *v;
    }
    set.prefixes
        .iter()
        .filter(|(net, _)| net.contains(addr))
        .max_by_key(|(net, _)| net.prefix_len())
        .map_or(Verdict::Pass, |(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::decide::targets::{Downstream, Rule};
    use crate::decide::testing::{ip, net, rule};

    /// Uplink 2 on 2001:db8:1::/64; br0 (3) holds ::d:0/112 with one known container; wg0
    /// (4) holds ::e:0/112; a probe rule on ::f:0/112 via br0; a docker network.
    fn snapshot() -> Snapshot {
        let down = |name: &str, neighbours: bool| Downstream {
            name: name.into(),
            neighbours,
            mac: neighbours.then_some(MacAddr([2, 0, 0, 0, 3, 3])),
            link_local: Some(ip("fe80::3")),
        };
        Snapshot {
            uplink: Some(2),
            mac: MacAddr([2, 0, 0, 0, 0, 2]),
            up: true,
            link_local: Some(ip("fe80::2")),
            rules: vec![
                rule("2001:db8:1::d:0/112", Mode::Auto),
                rule("2001:db8:1::e:0/112", Mode::Auto),
                rule("2001:db8:1::f:0/112", Mode::Probe { via: None }),
                rule("2001:db8:1::/64", Mode::Static),
                Rule::docker("web"),
            ],
            uplink_addrs: vec![ip("2001:db8:1::2"), ip("fe80::2")],
            gateways: vec![ip("2001:db8:1::1"), ip("fe80::1")],
            default_gateways: vec![ip("fe80::1")],
            pinned: vec![],
            gateway_macs: vec![(ip("fe80::1"), MacAddr([2, 0, 0, 0, 0, 1]))],
            routes: vec![
                (net("2001:db8:1::d:0/112"), Some(3)),
                (net("2001:db8:1::e:0/112"), Some(4)),
                (net("2001:db8:1::f:0/112"), Some(3)),
                (net("2001:db8:1::c:0/112"), None),
                (net("2001:db8:1::/64"), Some(2)),
                (net("2001:db8:2::/64"), Some(3)),
            ],
            downstream: HashMap::from([(3, down("br0", true)), (4, down("wg0", false))]),
            known: HashSet::from([ip("2001:db8:1::d:2")]),
            docker: HashMap::from([(ip("2001:db8:2::5"), "web".to_string())]),
        }
    }

    /// The verdict the socket path's `judge` implies for `addr`.
    fn expected(snap: &Snapshot, addr: &Ipv6Addr, positives: &[Ipv6Addr]) -> Verdict {
        if !snap.filter_prefixes().iter().any(|f| f.contains(addr)) {
            return Verdict::Pass;
        }
        let j = policy::judge(addr, snap);
        if matches!(j, Judgement::Probe(..))
            && positives.contains(addr)
            && !policy::awaits_route(snap, addr)
        {
            return Verdict::Answer { live: true };
        }
        verdict(&j).unwrap_or(Verdict::Pass)
    }

    #[test]
    fn every_address_gets_the_verdict_of_judge() {
        let snap = snapshot();
        let positives = [ip("2001:db8:1::f:7")];
        let set = compute(&snap, positives, &Settings::default(), Uncovered::Pass);
        let probes = [
            "2001:db8:1::d:2",
            "2001:db8:1::d:3",
            "2001:db8:1::d:0",
            "2001:db8:1::e:9",
            "2001:db8:1::f:7",
            "2001:db8:1::f:8",
            "2001:db8:1::c:1",
            "2001:db8:1::2",
            "2001:db8:1::1",
            "2001:db8:1::99",
            "2001:db8:1::",
            "2001:db8:2::5",
            "2001:db8:2::6",
            "2001:db8:3::1",
            "fe80::1",
            "fe80::2",
            "fe80::77",
            "::",
            "ffff::1",
        ];
        for a in probes {
            let a = ip(a);
            assert_eq!(lookup(&set, &a), expected(&snap, &a, &positives), "{a}");
        }
        // A walk through the /64's edges and a pseudo-random sample.
        for a in sample(0x2001_0db8_0001_0000_0000_0000_000d_0000) {
            assert_eq!(lookup(&set, &a), expected(&snap, &a, &positives), "{a}");
        }
    }

    /// 20,000 pseudo-random addresses of 2001:db8:1::/64's low 20 bits, from `seed`.
    fn sample(seed: u128) -> impl Iterator<Item = Ipv6Addr> {
        let mut x = seed;
        (0..20_000u128).map(move |i| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407 + i);
            Ipv6Addr::from(0x2001_0db8_0001_0000_0000_0000_0000_0000u128 | (x & 0xf_ffff))
        })
    }

    #[test]
    fn drop_uncovered_drops_only_what_nobody_here_answers() {
        let mut snap = snapshot();
        // Without the static /64, so that some of it is covered by no rule.
        snap.rules.retain(|r| r.mode != Mode::Static);
        let pass = compute(&snap, [], &Settings::default(), Uncovered::Pass);
        let drop = compute(&snap, [], &Settings::default(), Uncovered::Drop);
        // The kernel's own: the uplink's addresses and their /64s' subnet-router anycast.
        let kernel = ["2001:db8:1::2", "fe80::2", "2001:db8:1::", "fe80::"].map(ip);
        for a in kernel {
            assert_eq!(lookup(&drop, &a), Verdict::Pass, "{a}");
        }
        for a in [
            "2001:db8:1::99",
            "2001:db8:3::1",
            "fe80::77",
            "2001:db8:2::6",
        ] {
            assert_eq!(
                lookup(&drop, &ip(a)),
                Verdict::Drop(Ignored::NotCovered),
                "{a}"
            );
        }
        // Probe-mode targets still go up to the socket path; answers stay answers.
        assert_eq!(lookup(&drop, &ip("2001:db8:1::f:3")), Verdict::Pass);
        assert_eq!(
            lookup(&drop, &ip("2001:db8:1::d:2")),
            Verdict::Answer { live: true }
        );
        // Nothing else changes: only what passed by having no entry is now dropped.
        for a in sample(7) {
            let (p, d) = (lookup(&pass, &a), lookup(&drop, &a));
            if p != d {
                assert!(
                    p == Verdict::Pass && d == Verdict::Drop(Ignored::NotCovered),
                    "{a}: {p:?} became {d:?}"
                );
                assert!(!kernel.contains(&a) && !snap.gateways.contains(&a), "{a}");
            }
        }
    }

    #[test]
    fn verdicts_by_case() {
        let mut snap = snapshot();
        // Without the static /64 (which answers all it holds that is routed elsewhere).
        snap.rules.retain(|r| r.mode != Mode::Static);
        let set = compute(&snap, [], &Settings::default(), Uncovered::Pass);
        let v = |s: &str| lookup(&set, &ip(s));
        assert_eq!(v("2001:db8:1::d:2"), Verdict::Answer { live: true });
        assert_eq!(
            v("2001:db8:1::d:3"),
            Verdict::Drop(Ignored::UnknownDownstream)
        );
        assert_eq!(v("2001:db8:1::e:3"), Verdict::Answer { live: true });
        assert_eq!(v("2001:db8:1::f:3"), Verdict::Pass); // probed by the socket path
        assert_eq!(v("2001:db8:1::2"), Verdict::Pass); // the uplink's own
        assert_eq!(v("2001:db8:1::1"), Verdict::Pass); // the gateway
        assert_eq!(v("2001:db8:1::99"), Verdict::Pass); // not covered
        assert_eq!(v("2001:db8:2::5"), Verdict::Answer { live: true }); // docker
                                                                        // Outside what the socket's kernel filter lets through (a docker rule without a
                                                                        // prefix opens it to its containers only): not looked at.
        assert_eq!(v("2001:db8:2::6"), Verdict::Pass);
        assert_eq!(v("2001:db8:3::1"), Verdict::Pass);
        // A docker rule with a prefix: the others in it are not connected.
        snap.rules.push(Rule {
            prefix: net("2001:db8:2::/64"),
            mode: Mode::Docker {
                network: "web".into(),
            },
        });
        let set = compute(&snap, [], &Settings::default(), Uncovered::Pass);
        assert_eq!(
            lookup(&set, &ip("2001:db8:2::6")),
            Verdict::Drop(Ignored::NotConnected)
        );
        assert_eq!(set.gateway_macs, vec![MacAddr([2, 0, 0, 0, 0, 1])]);
        let shape = set.shape.unwrap();
        assert_eq!(shape.source, None);
        assert!(shape.router && shape.override_flag);
    }

    #[test]
    fn a_slaac_guest_that_answered_a_probe_is_not_answered_before_it_is_learned() {
        // A guest's address on a SLAAC interface: probed there to make the guest speak, and
        // answered only once the SLAAC duty has verified and routed it (policy::awaits_route),
        // even when the probe cache already holds its answer.
        let mut snap = snapshot();
        snap.rules = vec![Rule {
            prefix: net("2001:db8:1::/64"),
            mode: Mode::Slaac {
                interface: "br0".into(),
                dns: Vec::new(),
            },
        }];
        let guest = ip("2001:db8:1::99");
        let set = compute(&snap, [guest], &Settings::default(), Uncovered::Pass);
        assert_eq!(lookup(&set, &guest), Verdict::Pass);
        assert_eq!(lookup(&set, &guest), expected(&snap, &guest, &[guest]));
        // Learned (its /128 routed to br0): answered.
        snap.known.insert(guest);
        snap.routes.push((net("2001:db8:1::99/128"), Some(3)));
        let set = compute(&snap, [guest], &Settings::default(), Uncovered::Pass);
        assert_eq!(lookup(&set, &guest), Verdict::Answer { live: true });
    }

    #[test]
    fn static_prefix_answers_not_live() {
        let mut snap = snapshot();
        snap.rules = vec![rule("2001:db8:1::d:0/112", Mode::Static)];
        let set = compute(&snap, [], &Settings::default(), Uncovered::Pass);
        assert_eq!(
            lookup(&set, &ip("2001:db8:1::d:9")),
            Verdict::Answer { live: false }
        );
        assert_eq!(lookup(&set, &ip("2001:db8:1::e:9")), Verdict::Pass);
    }

    #[test]
    fn no_shape_without_uplink_or_link_local() {
        let mut snap = snapshot();
        let ll = Settings {
            source: SourcePolicy::LinkLocal,
            ..Settings::default()
        };
        assert_eq!(
            compute(&snap, [], &ll, Uncovered::Pass)
                .shape
                .unwrap()
                .source,
            Some(ip("fe80::2"))
        );
        snap.link_local = None;
        let set = compute(&snap, [], &ll, Uncovered::Pass);
        assert!(set.shape.is_none() && set.prefixes.is_empty() && set.targets.is_empty());
        let mut snap = snapshot();
        snap.uplink = None;
        assert!(compute(&snap, [], &Settings::default(), Uncovered::Pass)
            .shape
            .is_none());
    }

    #[test]
    fn free_addr_avoids_inner_prefixes() {
        let outer = net("2001:db8::/126");
        let inner = [
            net("2001:db8::/128"),
            net("2001:db8::1/128"),
            net("2001:db8::2/127"),
        ];
        assert_eq!(free_addr(outer, &inner), None);
        assert_eq!(free_addr(outer, &inner[..2]), Some(ip("2001:db8::2")));
    }
}
