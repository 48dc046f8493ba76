//! The one place that decides whether and how a Neighbor Solicitation is answered.
//!
//! Owns: the semantic validation of a received NS (RFC 4861 section 7.1.1), the responsibility
//! rules (is the target ours: any rule that covers it says so, a probe rule only when no other
//! does; and not the uplink's own address nor the gateway), and the shape
//! of the answer (RFC 4861 section 7.2.4). [`decide`] is a pure function of the solicitation,
//! a [`Snapshot`] of the target table and the [`Settings`]; every branch has a unit test below.
//!
//! Must not: touch sockets, the kernel, clocks or logs. The structural checks (lengths,
//! checksum, option walk) happen earlier, in [`crate::ndp`].

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use crate::decide::targets::{Mode, Rule, Snapshot};
use crate::ndp::{self, NeighborAdvert, NeighborSolicit};
use crate::status::Reason;

/// Hop limit every NDP message must carry, proving it was not forwarded (RFC 4861 7.1.1).
pub const NDP_HOP_LIMIT: u8 = 255;

/// Which IPv6 source address our Neighbor Advertisements carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourcePolicy {
    /// The target address itself. Anti-spoofing filters of KVM hypervisors (Virtualizor-style
    /// ebtables rules) let this through, because the address belongs to the host's range.
    #[default]
    Target,
    /// The uplink's link-local address, as the kernel's proxy_ndp and ndppd do.
    LinkLocal,
    /// A fixed address.
    Fixed(Ipv6Addr),
}

impl FromStr for SourcePolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "target" => Ok(SourcePolicy::Target),
            "link-local" => Ok(SourcePolicy::LinkLocal),
            other => match other.parse::<Ipv6Addr>() {
                Ok(addr) if addr.is_multicast() || addr.is_unspecified() => Err(format!(
                    "'{other}' cannot be the source of an advertisement: use a unicast address"
                )),
                Ok(addr) => Ok(SourcePolicy::Fixed(addr)),
                Err(_) => Err(format!(
                    "'{other}' is not a source policy: use 'target', 'link-local' or an IPv6 address"
                )),
            },
        }
    }
}

impl fmt::Display for SourcePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourcePolicy::Target => f.write_str("target"),
            SourcePolicy::LinkLocal => f.write_str("link-local"),
            SourcePolicy::Fixed(addr) => write!(f, "{addr}"),
        }
    }
}

/// How answers are shaped; fixed for the daemon's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub source: SourcePolicy,
    /// Set the Router flag (R) in our advertisements: the host forwards for the targets.
    pub router: bool,
    /// Set the Override flag (O) when answering multicast solicitations (see [`advert`]).
    pub override_flag: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            source: SourcePolicy::Target,
            router: true,
            override_flag: true,
        }
    }
}

/// The three reasons a node sends a Neighbor Solicitation (RFC 4861 7.2.2, 7.3.3; RFC 4862 5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Multicast to the target's solicited-node group: address resolution.
    Resolution,
    /// Unicast to the target: neighbour unreachability detection (a re-probe).
    Nud,
    /// From the unspecified address: duplicate address detection by another node.
    Dad,
}

impl Kind {
    pub const fn label(&self) -> &'static str {
        match self {
            Kind::Resolution => "resolution",
            Kind::Nud => "unicast NUD probe",
            Kind::Dad => "DAD probe",
        }
    }
}

/// A solicitation that violates RFC 4861 7.1.1 (or is otherwise malformed at the NDP level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// The hop limit is not 255: the packet crossed a router.
    HopLimit(u8),
    /// The ICMP code is not 0.
    Code(u8),
    /// The target is a multicast address.
    MulticastTarget,
    /// The IPv6 source is a multicast address.
    MulticastSource,
    /// Unspecified source, but the destination is not a solicited-node multicast address.
    DadNotToSolicitedNode,
    /// Unspecified source with a source link-layer address option.
    DadWithSourceLladdr,
    /// The Ethernet source is a multicast, broadcast or all-zero address.
    SourceMac,
    /// The IPv6 source is loopback or IPv4-mapped: it cannot have come from the link.
    ImpossibleSource,
    /// The source link-layer address option names a multicast, broadcast or all-zero
    /// address: answering it would send our advertisement to every station.
    SourceLladdr,
}

impl Invalid {
    /// A short stable label, for counters and logs.
    pub const fn reason(&self) -> &'static str {
        match self {
            Invalid::HopLimit(_) => "hop_limit",
            Invalid::Code(_) => "icmp_code",
            Invalid::MulticastTarget => "multicast_target",
            Invalid::MulticastSource => "multicast_source",
            Invalid::DadNotToSolicitedNode => "dad_not_to_solicited_node",
            Invalid::DadWithSourceLladdr => "dad_with_source_lladdr",
            Invalid::SourceMac => "source_mac",
            Invalid::ImpossibleSource => "impossible_source",
            Invalid::SourceLladdr => "source_lladdr",
        }
    }
}

impl Reason for Invalid {
    fn reason(&self) -> &'static str {
        Invalid::reason(self)
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::HopLimit(h) => write!(f, "hop limit {h}, not 255"),
            Invalid::Code(c) => write!(f, "ICMP code {c}, not 0"),
            Invalid::MulticastTarget => f.write_str("the target is a multicast address"),
            Invalid::MulticastSource => f.write_str("the source is a multicast address"),
            Invalid::DadNotToSolicitedNode => {
                f.write_str("unspecified source but not sent to a solicited-node group")
            }
            Invalid::DadWithSourceLladdr => {
                f.write_str("unspecified source with a source link-layer address option")
            }
            Invalid::SourceMac => f.write_str("the Ethernet source is not a station's address"),
            Invalid::ImpossibleSource => {
                f.write_str("the source is a loopback or IPv4-mapped address")
            }
            Invalid::SourceLladdr => {
                f.write_str("the source link-layer address option is not a station's address")
            }
        }
    }
}

/// A valid solicitation that is not ours to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// Unicast to another station's MAC (seen only when the uplink is promiscuous).
    NotAddressedToUs,
    /// Sent with our own MAC: our own traffic looped back by a bridge.
    FromOurselves,
    /// The target is outside every configured prefix.
    NotCovered,
    /// The target is assigned to the uplink: the kernel answers for it.
    UplinkAddress,
    /// The target is the gateway (or a router on the uplink): never hijack it.
    Gateway,
    /// `--source link-local` but the uplink has no link-local address (yet).
    NoLinkLocal,
    /// A unicast solicitation sent to an address other than its target.
    NotForTarget,
    /// The kernel routes the target back out of the uplink: answering would loop.
    RoutedToUplink,
    /// No route for the target: the host could not forward to it.
    NoRoute,
    /// Auto rule: the kernel knows no such address behind the downstream interface.
    UnknownDownstream,
    /// Probe rule: the downstream interface does not exist (or cannot be probed).
    NoDownstream,
    /// Docker rule: no container with this address is connected to the network.
    NotConnected,
    /// Probe rule: every probe slot is taken (see [`crate::decide::probe`]).
    ProbeCacheFull,
    /// Sent by this host, or to another station: the kernel filter should have dropped it.
    OutgoingOrOtherHost,
}

impl Ignored {
    /// A short stable label, for counters and logs.
    pub const fn reason(&self) -> &'static str {
        match self {
            Ignored::NotAddressedToUs => "not_addressed_to_us",
            Ignored::FromOurselves => "from_ourselves",
            Ignored::NotCovered => "not_covered",
            Ignored::UplinkAddress => "uplink_address",
            Ignored::Gateway => "gateway",
            Ignored::NoLinkLocal => "no_link_local",
            Ignored::NotForTarget => "not_for_target",
            Ignored::RoutedToUplink => "routed_to_uplink",
            Ignored::NoRoute => "no_route",
            Ignored::UnknownDownstream => "unknown_downstream",
            Ignored::NoDownstream => "no_downstream",
            Ignored::NotConnected => "not_connected",
            Ignored::ProbeCacheFull => "probe_cache_full",
            Ignored::OutgoingOrOtherHost => "outgoing_or_other_host",
        }
    }
}

impl Reason for Ignored {
    fn reason(&self) -> &'static str {
        Ignored::reason(self)
    }
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ignored::NotAddressedToUs => "sent to another station's MAC",
            Ignored::FromOurselves => "sent from our own MAC",
            Ignored::NotCovered => "target is in no configured prefix",
            Ignored::UplinkAddress => "target is the uplink's own address (the kernel answers)",
            Ignored::Gateway => "target is the gateway, never answered",
            Ignored::NoLinkLocal => "source policy is link-local but the uplink has none",
            Ignored::NotForTarget => "unicast solicitation not sent to its target",
            Ignored::RoutedToUplink => "target is routed out of the uplink (answering would loop)",
            Ignored::NoRoute => "no route for the target",
            Ignored::UnknownDownstream => "no such address known behind the downstream interface",
            Ignored::NoDownstream => "the downstream interface to probe does not exist",
            Ignored::NotConnected => "no container with this address is connected to the network",
            Ignored::ProbeCacheFull => "the probe cache is full: not probed",
            Ignored::OutgoingOrOtherHost => "sent by this host or to another station",
        })
    }
}

/// The outcome for one solicitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Send `advert`; `rule` is the rule that made the target ours.
    Answer {
        kind: Kind,
        rule: &'a Rule,
        advert: NeighborAdvert,
    },
    /// A probe rule covers the target: answer once it answers a solicitation on downstream
    /// interface `via` (the caller's probe cache decides).
    Probe {
        kind: Kind,
        rule: &'a Rule,
        via: u32,
    },
    Ignore(Kind, Ignored),
    Invalid(Invalid),
}

/// Classify the solicitation (RFC 4861 7.2.2/7.3.3, RFC 4862 5.4.2).
pub fn kind_of(ns: &NeighborSolicit) -> Kind {
    if ns.ip_src.is_unspecified() {
        Kind::Dad
    } else if ns.ip_dst.is_multicast() {
        Kind::Resolution
    } else {
        Kind::Nud
    }
}

/// RFC 4861 section 7.1.1: the checks a receiver applies beyond the structural ones.
/// (ICMP length >= 24, checksum and zero-length options are checked by `wire`.)
pub fn validate(ns: &NeighborSolicit) -> Result<(), Invalid> {
    if ns.hop_limit != NDP_HOP_LIMIT {
        return Err(Invalid::HopLimit(ns.hop_limit));
    }
    if ns.code != 0 {
        return Err(Invalid::Code(ns.code));
    }
    if ns.target.is_multicast() {
        return Err(Invalid::MulticastTarget);
    }
    if ns.ip_src.is_multicast() {
        return Err(Invalid::MulticastSource);
    }
    if ns.eth_src.is_multicast() || ns.eth_src.is_zero() {
        return Err(Invalid::SourceMac);
    }
    if ns.ip_src.is_loopback() || ns.ip_src.to_ipv4_mapped().is_some() {
        return Err(Invalid::ImpossibleSource);
    }
    // The answer goes to this address (RFC 4861 7.2.4): a group address would make every
    // station on the link receive it.
    if ns
        .source_lladdr
        .is_some_and(|mac| mac.is_multicast() || mac.is_zero())
    {
        return Err(Invalid::SourceLladdr);
    }
    if ns.ip_src.is_unspecified() {
        if !is_solicited_node(&ns.ip_dst) {
            return Err(Invalid::DadNotToSolicitedNode);
        }
        if ns.source_lladdr.is_some() {
            return Err(Invalid::DadWithSourceLladdr);
        }
    }
    Ok(())
}

/// ff02::1:ffXX:XXXX (RFC 4291 2.7.1).
fn is_solicited_node(addr: &Ipv6Addr) -> bool {
    let o = addr.octets();
    o[..11] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0] && o[11] == 0x01 && o[12] == 0xff
}

/// Decide whether and how to answer `ns`, received on the uplink described by `snap`.
pub fn decide<'a>(ns: &NeighborSolicit, snap: &'a Snapshot, settings: &Settings) -> Decision<'a> {
    if let Err(invalid) = validate(ns) {
        return Decision::Invalid(invalid);
    }
    let kind = kind_of(ns);
    let ignore = |why| Decision::Ignore(kind, why);

    if ns.eth_src == snap.mac {
        return ignore(Ignored::FromOurselves);
    }
    if !ns.eth_dst.is_multicast() && ns.eth_dst != snap.mac {
        return ignore(Ignored::NotAddressedToUs);
    }
    // A unicast solicitation (NUD, RFC 4861 7.3.3) is addressed to its target.
    if !ns.ip_dst.is_multicast() && ns.ip_dst != ns.target {
        return ignore(Ignored::NotForTarget);
    }
    match judge(&ns.target, snap) {
        Judgement::Ours(rule) => answer(ns, kind, rule, snap, settings),
        Judgement::Probe(rule, via) => Decision::Probe { kind, rule, via },
        Judgement::Not(why) => ignore(why),
    }
}

/// Whose `target` is, whatever solicits it: the part of [`decide`] that depends on the
/// target and the snapshot only (so the fast path's maps can be computed from it, see
/// [`crate::decide::fastmap`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement<'a> {
    /// Ours: answered, `rule` says so.
    Ours(&'a Rule),
    /// A probe rule covers it: answered once it answers a probe on interface `via`.
    Probe(&'a Rule, u32),
    /// Not ours, for this reason.
    Not(Ignored),
}

/// The responsibility rules of [`decide`] for `target`.
pub fn judge<'a>(target: &Ipv6Addr, snap: &'a Snapshot) -> Judgement<'a> {
    use Judgement::Not;
    if snap.rules_for(target).next().is_none() {
        return Not(Ignored::NotCovered);
    }
    if snap.is_uplink_addr(target) {
        return Not(Ignored::UplinkAddress);
    }
    if snap.is_gateway(target) {
        return Not(Ignored::Gateway);
    }
    // We answer only for what the host forwards elsewhere: a target routed back out of the
    // uplink is another station's (or nobody's), and answering for it would loop.
    // A SLAAC prefix is the uplink's own on-link /64: its addresses route out of the uplink
    // until the SLAAC duty routes a learned guest to its interface. Until then (a guest not
    // learned yet, or not since a restart) it is probed there, never answered unseen.
    let route = snap.route_oif(target);
    let out_of_uplink = route.is_none() || route == Some(snap.uplink);
    if let (true, Some((rule, via))) = (out_of_uplink, slaac_route(snap, target)) {
        return Judgement::Probe(rule, via);
    }
    let oif = match route {
        None => return Not(Ignored::NoRoute),
        Some(Some(oif)) if Some(oif) == snap.uplink => return Not(Ignored::RoutedToUplink),
        Some(oif) => oif,
    };
    let downstream = oif.and_then(|i| snap.downstream.get(&i));
    // The target is ours when any rule that covers it says so, whatever their order: the
    // first (most specific) rule that knows it answers. Probe rules only probe, and only
    // when no other rule knows the target. Otherwise the most specific rule's reason stands.
    let mut refusal = None;
    let mut probed = false;
    for rule in snap.rules_for(target) {
        let knows = match &rule.mode {
            Mode::Static => Ok(()),
            Mode::Auto => match downstream {
                // Point-to-point links (WireGuard, tun) have no neighbours: the route is enough.
                Some(d) if !d.neighbours => Ok(()),
                Some(_) if snap.known.contains(target) => Ok(()),
                _ => Err(Ignored::UnknownDownstream),
            },
            Mode::Docker { network } => match snap.docker.get(target) {
                Some(connected) if connected == network => Ok(()),
                _ => Err(Ignored::NotConnected),
            },
            Mode::Probe { .. } => {
                probed = true;
                Err(Ignored::NoDownstream)
            }
            // Routed to its interface (see above): our /128 says the guest was learned.
            Mode::Slaac { .. } if snap.known.contains(target) => Ok(()),
            // Routed elsewhere (a narrower range on another interface): not a guest's.
            Mode::Slaac { .. } => Err(Ignored::UnknownDownstream),
        };
        match knows {
            Ok(()) => return Judgement::Ours(rule),
            Err(why) => {
                refusal.get_or_insert(why);
            }
        }
    }
    if probed {
        match probe_route(snap, target) {
            // Point-to-point links have no neighbour discovery to probe with.
            Some((rule, i)) if !snap.downstream[&i].neighbours => return Judgement::Ours(rule),
            Some((rule, via)) => return Judgement::Probe(rule, via),
            None => {}
        }
    }
    Not(refusal.unwrap_or(Ignored::NotCovered))
}

/// The answer to `ns`, which `rule` says is ours.
fn answer<'a>(
    ns: &NeighborSolicit,
    kind: Kind,
    rule: &'a Rule,
    snap: &Snapshot,
    settings: &Settings,
) -> Decision<'a> {
    match advert(ns, snap, settings) {
        Ok(advert) => Decision::Answer { kind, rule, advert },
        Err(why) => Decision::Ignore(kind, why),
    }
}

/// The IPv6 source of an advertisement for `target`, as `--source` says.
fn source_for(target: Ipv6Addr, snap: &Snapshot, settings: &Settings) -> Result<Ipv6Addr, Ignored> {
    match settings.source {
        SourcePolicy::Target => Ok(target),
        SourcePolicy::Fixed(addr) => Ok(addr),
        SourcePolicy::LinkLocal => snap.link_local.ok_or(Ignored::NoLinkLocal),
    }
}

/// An unsolicited advertisement announcing `target` (RFC 4861 7.2.6): to all nodes, S clear,
/// O set so that caches holding an old MAC take ours, from the source the policy chooses.
pub fn announcement(
    target: Ipv6Addr,
    snap: &Snapshot,
    settings: &Settings,
) -> Result<NeighborAdvert, Ignored> {
    let ip_src = source_for(target, snap, settings)?;
    Ok(NeighborAdvert {
        eth_src: snap.mac,
        eth_dst: ndp::multicast_mac(&ndp::ALL_NODES),
        ip_src,
        ip_dst: ndp::ALL_NODES,
        hop_limit: NDP_HOP_LIMIT,
        code: 0,
        router: settings.router,
        solicited: false,
        override_flag: true,
        target,
        target_lladdr: Some(snap.mac),
    })
}

/// The downstream interface on which a probe for `target` is sent now: the one its probe
/// rule names, or the one its route leaves by. None if the target is no longer probed.
pub fn probe_interface(snap: &Snapshot, target: &Ipv6Addr) -> Option<u32> {
    probe_route(snap, target).map(|(_, via)| via)
}

/// The first (most specific) probe rule covering `target` that has an interface to probe
/// on, and that interface.
fn probe_route<'a>(snap: &'a Snapshot, target: &Ipv6Addr) -> Option<(&'a Rule, u32)> {
    snap.rules_for(target).find_map(|rule| {
        let index = match &rule.mode {
            Mode::Probe { via: Some(name) } => snap.downstream_named(name)?,
            Mode::Probe { via: None } => snap.route_oif(target)??,
            // While the address routes out of the uplink (see `decide`), or to the interface.
            Mode::Slaac { interface, .. } => {
                let index = snap.downstream_named(interface)?;
                let route = snap.route_oif(target);
                let ours = matches!(route, None | Some(None))
                    || route == Some(snap.uplink)
                    || route == Some(Some(index));
                ours.then_some(index)?
            }
            _ => return None,
        };
        (Some(index) != snap.uplink && snap.downstream.contains_key(&index))
            .then_some((rule, index))
    })
}

/// Is `target` a SLAAC guest's address not learned yet? Its probe only makes the guest speak
/// on its interface, where the SLAAC duty verifies and learns it: it is answered once its
/// route is there (a guest answering a probe for an address in use upstream must not get it).
pub fn awaits_route(snap: &Snapshot, target: &Ipv6Addr) -> bool {
    !snap.known.contains(target)
        && snap
            .rules_for(target)
            .next()
            .is_some_and(|r| r.slaac_interface().is_some())
}

/// The first SLAAC rule covering `target` whose interface exists, and that interface.
fn slaac_route<'a>(snap: &'a Snapshot, target: &Ipv6Addr) -> Option<(&'a Rule, u32)> {
    snap.rules_for(target).find_map(|rule| {
        let index = snap.downstream_named(rule.slaac_interface()?)?;
        (Some(index) != snap.uplink).then_some((rule, index))
    })
}

/// The advertisement that answers `ns` (RFC 4861 7.2.4), once the target is known to be ours.
///
/// A solicitation from the unspecified address (DAD) is answered to the all-nodes group with
/// S=0; any other to its source with S=1, at the link-layer address of its source link-layer
/// option (or the frame's source). The target link-layer option MUST be present for multicast
/// solicitations and SHOULD be for unicast ones: it always is. The Override flag: RFC 4861
/// 7.2.8 suggests O=0 for proxies so that a node that owns the address wins. Here nobody else
/// owns it (the target is routed behind this host), and O=0 would leave a router that caches a
/// stale MAC (after a migration or a NIC change) on the old one, so multicast solicitations
/// are answered with O=1 unless `--no-override-flag`; unicast NUD probes always get O=0, so
/// a reachability confirmation never rewrites a cached MAC.
pub fn advert(
    ns: &NeighborSolicit,
    snap: &Snapshot,
    settings: &Settings,
) -> Result<NeighborAdvert, Ignored> {
    let kind = kind_of(ns);
    let ip_src = source_for(ns.target, snap, settings)?;
    let dad = kind == Kind::Dad;
    Ok(NeighborAdvert {
        eth_src: snap.mac,
        eth_dst: if dad {
            ndp::multicast_mac(&ndp::ALL_NODES)
        } else {
            ns.source_lladdr.unwrap_or(ns.eth_src)
        },
        ip_src,
        ip_dst: if dad { ndp::ALL_NODES } else { ns.ip_src },
        hop_limit: NDP_HOP_LIMIT,
        code: 0,
        router: settings.router,
        solicited: !dad,
        override_flag: settings.override_flag && kind != Kind::Nud,
        target: ns.target,
        target_lladdr: Some(snap.mac),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::decide::targets::Downstream;
    use crate::decide::testing::{ip, net, rule};
    use crate::ndp::MacAddr;

    const HOST_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
    const ROUTER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);

    /// Uplink eth0 (index 2) on 2001:db8:1::/64; br0 (3) holds 2001:db8:1::d:0/112 with one
    /// known container (::d:2); wg0 (4, no MAC) holds 2001:db8:1::e:0/112.
    fn snapshot() -> Snapshot {
        let downstream = |name: &str, mac: Option<MacAddr>| Downstream {
            name: name.into(),
            neighbours: mac.is_some(),
            mac,
            link_local: Some(ip("fe80::3")),
        };
        Snapshot {
            uplink: Some(2),
            mac: HOST_MAC,
            up: true,
            link_local: Some(ip("fe80::2")),
            rules: vec![rule("2001:db8:1::d:0/112", Mode::Static)],
            uplink_addrs: vec![ip("2001:db8:1::2"), ip("fe80::2")],
            gateways: vec![ip("2001:db8:1::1")],
            routes: vec![
                (net("2001:db8:1::d:0/112"), Some(3)),
                (net("2001:db8:1::e:0/112"), Some(4)),
                (net("2001:db8:1::/64"), Some(2)),
                (net("::/0"), Some(2)),
            ],
            downstream: HashMap::from([
                (3, downstream("br0", Some(MacAddr([2, 0, 0, 0, 3, 1])))),
                (4, downstream("wg0", None)),
            ]),
            known: HashSet::from([ip("2001:db8:1::d:2")]),
            default_gateways: vec![ip("2001:db8:1::1")],
            pinned: vec![],
            gateway_macs: vec![],
            docker: HashMap::from([(ip("2001:db8:1::d:5"), "ipv6exposed".to_string())]),
        }
    }

    fn with_rules(rules: Vec<Rule>) -> Snapshot {
        Snapshot {
            rules,
            ..snapshot()
        }
    }

    /// A multicast NS from the router's link-local address, as Linux sends it.
    fn resolution(target: &str) -> NeighborSolicit {
        let target = ip(target);
        let group = ndp::solicited_node(&target);
        NeighborSolicit {
            eth_src: ROUTER_MAC,
            eth_dst: ndp::multicast_mac(&group),
            ip_src: ip("fe80::1"),
            ip_dst: group,
            hop_limit: 255,
            code: 0,
            target,
            source_lladdr: Some(ROUTER_MAC),
            nonce: None,
        }
    }

    fn nud(target: &str) -> NeighborSolicit {
        NeighborSolicit {
            eth_dst: HOST_MAC,
            ip_dst: ip(target),
            ..resolution(target)
        }
    }

    fn dad(target: &str) -> NeighborSolicit {
        NeighborSolicit {
            ip_src: Ipv6Addr::UNSPECIFIED,
            source_lladdr: None,
            nonce: Some([1, 2, 3, 4, 5, 6]),
            ..resolution(target)
        }
    }

    fn answer(ns: &NeighborSolicit, settings: &Settings) -> (Kind, NeighborAdvert) {
        match decide(ns, &snapshot(), settings) {
            Decision::Answer { kind, advert, .. } => (kind, advert),
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    fn outcome(ns: &NeighborSolicit) -> Decision<'static> {
        static SNAPSHOT: std::sync::LazyLock<Snapshot> = std::sync::LazyLock::new(snapshot);
        decide(ns, &SNAPSHOT, &Settings::default())
    }

    #[test]
    fn resolution_is_answered_from_the_target_to_the_solicitor() {
        let ns = resolution("2001:db8:1::d:2");
        let (kind, na) = answer(&ns, &Settings::default());
        assert_eq!(kind, Kind::Resolution);
        assert_eq!(na.eth_src, HOST_MAC);
        assert_eq!(na.eth_dst, ROUTER_MAC);
        assert_eq!(na.ip_src, ip("2001:db8:1::d:2"));
        assert_eq!(na.ip_dst, ip("fe80::1"));
        assert_eq!(na.hop_limit, 255);
        assert!(na.router && na.solicited && na.override_flag);
        assert_eq!(na.target, ns.target);
        assert_eq!(na.target_lladdr, Some(HOST_MAC));
    }

    #[test]
    fn resolution_from_a_global_source_is_answered_to_that_source() {
        let ns = NeighborSolicit {
            ip_src: ip("2001:db8:1::1"),
            ..resolution("2001:db8:1::d:2")
        };
        let (_, na) = answer(&ns, &Settings::default());
        assert_eq!(na.ip_dst, ip("2001:db8:1::1"));
    }

    #[test]
    fn unicast_nud_probe_is_answered_solicited_without_override() {
        let (kind, na) = answer(&nud("2001:db8:1::d:2"), &Settings::default());
        assert_eq!(kind, Kind::Nud);
        assert_eq!(na.eth_dst, ROUTER_MAC);
        assert_eq!(na.ip_dst, ip("fe80::1"));
        assert!(na.solicited);
        assert!(!na.override_flag);
        assert_eq!(na.target_lladdr, Some(HOST_MAC));
    }

    #[test]
    fn dad_probe_is_defended_to_all_nodes_with_s_clear() {
        let (kind, na) = answer(&dad("2001:db8:1::d:2"), &Settings::default());
        assert_eq!(kind, Kind::Dad);
        assert_eq!(na.ip_dst, ndp::ALL_NODES);
        assert_eq!(na.eth_dst, MacAddr([0x33, 0x33, 0, 0, 0, 1]));
        assert!(!na.solicited);
        assert!(na.override_flag);
        assert_eq!(na.ip_src, ip("2001:db8:1::d:2"));
    }

    #[test]
    fn source_policies_choose_the_advertisement_source() {
        let ns = resolution("2001:db8:1::d:2");
        let ll = Settings {
            source: SourcePolicy::LinkLocal,
            ..Settings::default()
        };
        assert_eq!(answer(&ns, &ll).1.ip_src, ip("fe80::2"));
        let fixed = Settings {
            source: SourcePolicy::Fixed(ip("2001:db8:1::2")),
            ..Settings::default()
        };
        assert_eq!(answer(&ns, &fixed).1.ip_src, ip("2001:db8:1::2"));
    }

    #[test]
    fn link_local_policy_without_a_link_local_address_is_ignored() {
        let snap = Snapshot {
            link_local: None,
            ..snapshot()
        };
        let ll = Settings {
            source: SourcePolicy::LinkLocal,
            ..Settings::default()
        };
        assert_eq!(
            decide(&resolution("2001:db8:1::d:2"), &snap, &ll),
            Decision::Ignore(Kind::Resolution, Ignored::NoLinkLocal)
        );
    }

    #[test]
    fn router_flag_follows_the_setting() {
        let no_r = Settings {
            router: false,
            ..Settings::default()
        };
        assert!(!answer(&resolution("2001:db8:1::d:2"), &no_r).1.router);
    }

    #[test]
    fn target_outside_every_prefix_is_ignored() {
        assert_eq!(
            outcome(&resolution("2001:db8:1::e:2")),
            Decision::Ignore(Kind::Resolution, Ignored::NotCovered)
        );
    }

    #[test]
    fn uplink_own_address_is_left_to_the_kernel_even_when_covered() {
        let snap = with_rules(vec![rule("2001:db8:1::/64", Mode::Static)]);
        assert_eq!(
            decide(&nud("2001:db8:1::2"), &snap, &Settings::default()),
            Decision::Ignore(Kind::Nud, Ignored::UplinkAddress)
        );
    }

    #[test]
    fn an_address_the_host_holds_on_another_interface_is_answered() {
        // The bridge's own address (2001:db8:1::d:1) is not in uplink_addrs: ours to answer.
        let (kind, _) = answer(&resolution("2001:db8:1::d:1"), &Settings::default());
        assert_eq!(kind, Kind::Resolution);
    }

    #[test]
    fn gateway_is_never_answered_even_when_covered() {
        let snap = with_rules(vec![rule("2001:db8:1::/64", Mode::Static)]);
        for ns in [
            resolution("2001:db8:1::1"),
            nud("2001:db8:1::1"),
            dad("2001:db8:1::1"),
        ] {
            assert!(matches!(
                decide(&ns, &snap, &Settings::default()),
                Decision::Ignore(_, Ignored::Gateway)
            ));
        }
    }

    #[test]
    fn unicast_frame_for_another_station_is_ignored() {
        let ns = NeighborSolicit {
            eth_dst: MacAddr([0x02, 0, 0, 0, 0, 0x99]),
            ..nud("2001:db8:1::d:2")
        };
        assert_eq!(
            outcome(&ns),
            Decision::Ignore(Kind::Nud, Ignored::NotAddressedToUs)
        );
    }

    #[test]
    fn frame_from_our_own_mac_is_ignored() {
        let ns = NeighborSolicit {
            eth_src: HOST_MAC,
            ..resolution("2001:db8:1::d:2")
        };
        assert_eq!(
            outcome(&ns),
            Decision::Ignore(Kind::Resolution, Ignored::FromOurselves)
        );
    }

    // RFC 4861 7.1.1, one test per rule.

    #[test]
    fn rfc4861_7_1_1_hop_limit_must_be_255() {
        let ns = NeighborSolicit {
            hop_limit: 64,
            ..resolution("2001:db8:1::d:2")
        };
        assert_eq!(outcome(&ns), Decision::Invalid(Invalid::HopLimit(64)));
    }

    #[test]
    fn rfc4861_7_1_1_code_must_be_0() {
        let ns = NeighborSolicit {
            code: 1,
            ..resolution("2001:db8:1::d:2")
        };
        assert_eq!(outcome(&ns), Decision::Invalid(Invalid::Code(1)));
    }

    #[test]
    fn rfc4861_7_1_1_target_must_not_be_multicast() {
        let mut ns = resolution("2001:db8:1::d:2");
        ns.target = ip("ff02::1");
        assert_eq!(outcome(&ns), Decision::Invalid(Invalid::MulticastTarget));
    }

    #[test]
    fn source_must_not_be_multicast() {
        let ns = NeighborSolicit {
            ip_src: ip("ff02::2"),
            ..resolution("2001:db8:1::d:2")
        };
        assert_eq!(outcome(&ns), Decision::Invalid(Invalid::MulticastSource));
    }

    #[test]
    fn rfc4861_7_1_1_unspecified_source_needs_a_solicited_node_destination() {
        let ns = NeighborSolicit {
            ip_dst: ndp::ALL_NODES,
            ..dad("2001:db8:1::d:2")
        };
        assert_eq!(
            outcome(&ns),
            Decision::Invalid(Invalid::DadNotToSolicitedNode)
        );
        let unicast = NeighborSolicit {
            ip_dst: ip("2001:db8:1::d:2"),
            ..dad("2001:db8:1::d:2")
        };
        assert_eq!(
            outcome(&unicast),
            Decision::Invalid(Invalid::DadNotToSolicitedNode)
        );
    }

    #[test]
    fn rfc4861_7_1_1_unspecified_source_must_not_carry_a_source_lladdr() {
        let ns = NeighborSolicit {
            source_lladdr: Some(ROUTER_MAC),
            ..dad("2001:db8:1::d:2")
        };
        assert_eq!(
            outcome(&ns),
            Decision::Invalid(Invalid::DadWithSourceLladdr)
        );
    }

    #[test]
    fn validation_comes_before_responsibility() {
        // An invalid NS for a target that is not ours still counts as invalid.
        let ns = NeighborSolicit {
            hop_limit: 1,
            ..resolution("2001:db8:9::1")
        };
        assert_eq!(outcome(&ns), Decision::Invalid(Invalid::HopLimit(1)));
    }

    #[test]
    fn override_flag_can_be_switched_off() {
        let strict = Settings {
            override_flag: false,
            ..Settings::default()
        };
        assert!(
            !answer(&resolution("2001:db8:1::d:2"), &strict)
                .1
                .override_flag
        );
        assert!(!answer(&dad("2001:db8:1::d:2"), &strict).1.override_flag);
    }

    #[test]
    fn answer_goes_to_the_source_link_layer_option_when_present() {
        let ns = NeighborSolicit {
            source_lladdr: Some(MacAddr([2, 0, 0, 0, 0, 0x77])),
            ..resolution("2001:db8:1::d:2")
        };
        assert_eq!(
            answer(&ns, &Settings::default()).1.eth_dst,
            MacAddr([2, 0, 0, 0, 0, 0x77])
        );
    }

    #[test]
    fn impossible_sources_are_invalid() {
        for eth_src in [
            MacAddr([0xff; 6]),
            MacAddr([0x33, 0x33, 0, 0, 0, 1]),
            MacAddr([0; 6]),
        ] {
            let ns = NeighborSolicit {
                eth_src,
                ..resolution("2001:db8:1::d:2")
            };
            assert_eq!(
                outcome(&ns),
                Decision::Invalid(Invalid::SourceMac),
                "{eth_src}"
            );
        }
        for ip_src in ["::1", "::ffff:192.0.2.1"] {
            let ns = NeighborSolicit {
                ip_src: ip(ip_src),
                ..resolution("2001:db8:1::d:2")
            };
            assert_eq!(
                outcome(&ns),
                Decision::Invalid(Invalid::ImpossibleSource),
                "{ip_src}"
            );
        }
    }

    #[test]
    fn unicast_solicitation_for_another_target_is_ignored() {
        let ns = NeighborSolicit {
            ip_dst: ip("2001:db8:1::2"),
            ..nud("2001:db8:1::d:2")
        };
        assert_eq!(
            outcome(&ns),
            Decision::Ignore(Kind::Nud, Ignored::NotForTarget)
        );
    }

    #[test]
    fn target_routed_out_of_the_uplink_is_never_answered() {
        // Another station on the provider link: covered by a broad rule, but routed to eth0.
        let snap = with_rules(vec![rule("2001:db8:1::/64", Mode::Static)]);
        for ns in [resolution("2001:db8:1::77"), dad("2001:db8:1::77")] {
            assert!(matches!(
                decide(&ns, &snap, &Settings::default()),
                Decision::Ignore(_, Ignored::RoutedToUplink)
            ));
        }
    }

    #[test]
    fn target_without_any_route_is_ignored() {
        let mut snap = with_rules(vec![rule("2001:db8:5::/64", Mode::Static)]);
        snap.routes.retain(|(n, _)| n.prefix_len() > 0);
        assert_eq!(
            decide(&resolution("2001:db8:5::1"), &snap, &Settings::default()),
            Decision::Ignore(Kind::Resolution, Ignored::NoRoute)
        );
    }

    #[test]
    fn auto_answers_only_targets_known_behind_the_downstream_interface() {
        let snap = with_rules(vec![
            rule("2001:db8:1::d:0/112", Mode::Auto),
            rule("2001:db8:1::e:0/112", Mode::Auto),
        ]);
        let s = Settings::default();
        assert!(matches!(
            decide(&resolution("2001:db8:1::d:2"), &snap, &s),
            Decision::Answer { .. }
        ));
        assert_eq!(
            decide(&resolution("2001:db8:1::d:9"), &snap, &s),
            Decision::Ignore(Kind::Resolution, Ignored::UnknownDownstream)
        );
        // Anything routed to a point-to-point link is answered: it has no neighbours to know.
        assert!(matches!(
            decide(&resolution("2001:db8:1::e:9"), &snap, &s),
            Decision::Answer { .. }
        ));
    }

    #[test]
    fn slaac_answers_learned_guests_and_probes_the_rest_on_its_interface() {
        let s = Settings::default();
        let slaac = Mode::Slaac {
            interface: "br0".into(),
            dns: vec![],
        };
        let mut snap = with_rules(vec![rule("2001:db8:1::/64", slaac)]);
        snap.known = HashSet::new();
        // The /64 is the uplink's on-link prefix: an unknown guest is probed on br0 (3).
        match decide(&resolution("2001:db8:1::77"), &snap, &s) {
            Decision::Probe { via, rule, .. } => {
                assert_eq!(via, 3);
                assert!(matches!(rule.mode, Mode::Slaac { .. }));
            }
            other => panic!("{other:?}"),
        }
        // Learned: routed to br0 by our /128, known: answered.
        snap.routes.insert(0, (net("2001:db8:1::77/128"), Some(3)));
        snap.known.insert(ip("2001:db8:1::77"));
        assert!(matches!(
            decide(&resolution("2001:db8:1::77"), &snap, &s),
            Decision::Answer { .. }
        ));
        // Never the host's own nor the gateway's, whatever a guest claims.
        assert_eq!(
            decide(&resolution("2001:db8:1::2"), &snap, &s),
            Decision::Ignore(Kind::Resolution, Ignored::UplinkAddress)
        );
        assert_eq!(
            decide(&resolution("2001:db8:1::1"), &snap, &s),
            Decision::Ignore(Kind::Resolution, Ignored::Gateway)
        );
        // A range inside the /64 routed elsewhere (containers on wg0) keeps its own rule.
        assert!(matches!(
            decide(&resolution("2001:db8:1::e:9"), &snap, &s),
            Decision::Ignore(..)
        ));
        assert_eq!(probe_interface(&snap, &ip("2001:db8:1::78")), Some(3));
    }

    #[test]
    fn probe_rule_asks_for_a_probe_on_the_routed_or_named_interface() {
        let s = Settings::default();
        let snap = with_rules(vec![rule("2001:db8:1::d:0/112", Mode::Probe { via: None })]);
        match decide(&resolution("2001:db8:1::d:9"), &snap, &s) {
            Decision::Probe { via, .. } => assert_eq!(via, 3),
            other => panic!("{other:?}"),
        }
        let named = with_rules(vec![rule(
            "2001:db8:1::d:0/112",
            Mode::Probe {
                via: Some("br0".into()),
            },
        )]);
        assert!(matches!(
            decide(&resolution("2001:db8:1::d:9"), &named, &s),
            Decision::Probe { via: 3, .. }
        ));
        let missing = with_rules(vec![rule(
            "2001:db8:1::d:0/112",
            Mode::Probe {
                via: Some("br9".into()),
            },
        )]);
        assert_eq!(
            decide(&resolution("2001:db8:1::d:9"), &missing, &s),
            Decision::Ignore(Kind::Resolution, Ignored::NoDownstream)
        );
        // A probe rule never probes what is routed out of the uplink.
        let broad = with_rules(vec![rule("2001:db8:1::/64", Mode::Probe { via: None })]);
        assert_eq!(
            decide(&resolution("2001:db8:1::99"), &broad, &s),
            Decision::Ignore(Kind::Resolution, Ignored::RoutedToUplink)
        );
    }

    #[test]
    fn announcement_is_unsolicited_to_all_nodes_with_override() {
        let na = announcement(ip("2001:db8:1::d:2"), &snapshot(), &Settings::default()).unwrap();
        assert_eq!(na.ip_dst, ndp::ALL_NODES);
        assert_eq!(na.eth_dst, MacAddr([0x33, 0x33, 0, 0, 0, 1]));
        assert_eq!(na.ip_src, ip("2001:db8:1::d:2"));
        assert!(!na.solicited && na.override_flag && na.router);
        assert_eq!(na.target_lladdr, Some(HOST_MAC));
    }

    #[test]
    fn docker_rule_answers_only_connected_containers_of_its_network() {
        let s = Settings::default();
        let snap = with_rules(vec![Rule::docker("ipv6exposed")]);
        assert!(matches!(
            decide(&resolution("2001:db8:1::d:5"), &snap, &s),
            Decision::Answer { .. }
        ));
        assert_eq!(
            decide(&resolution("2001:db8:1::d:6"), &snap, &s),
            Decision::Ignore(Kind::Resolution, Ignored::NotConnected)
        );
        let other = with_rules(vec![Rule::docker("other")]);
        assert_eq!(
            decide(&resolution("2001:db8:1::d:5"), &other, &s),
            Decision::Ignore(Kind::Resolution, Ignored::NotConnected)
        );
        // A static rule still answers its prefix alongside a docker rule, in any order.
        for rules in [
            vec![
                Rule::docker("ipv6exposed"),
                rule("2001:db8:1::d:0/112", Mode::Static),
            ],
            vec![
                rule("2001:db8:1::d:0/112", Mode::Static),
                Rule::docker("ipv6exposed"),
            ],
        ] {
            assert!(matches!(
                decide(&resolution("2001:db8:1::d:6"), &with_rules(rules), &s),
                Decision::Answer { .. }
            ));
        }
    }

    /// The issue-16 case: `-N ipv6exposed --auto 2001:db8:1::d:0/112`. The auto rule is the
    /// more specific one and does not know the container; the docker rule does: answered.
    #[test]
    fn a_docker_container_is_answered_under_a_more_specific_auto_rule() {
        let s = Settings::default();
        let snap = with_rules(vec![
            rule("2001:db8:1::d:0/112", Mode::Auto),
            Rule::docker("ipv6exposed"),
        ]);
        match decide(&resolution("2001:db8:1::d:5"), &snap, &s) {
            Decision::Answer { rule, .. } => assert_eq!(*rule, Rule::docker("ipv6exposed")),
            other => panic!("{other:?}"),
        }
        // The auto rule's own address is answered by it.
        match decide(&resolution("2001:db8:1::d:2"), &snap, &s) {
            Decision::Answer { rule, .. } => assert_eq!(rule.mode, Mode::Auto),
            other => panic!("{other:?}"),
        }
        // Neither knows ::d:9: the most specific rule's reason.
        assert_eq!(
            decide(&resolution("2001:db8:1::d:9"), &snap, &s),
            Decision::Ignore(Kind::Resolution, Ignored::UnknownDownstream)
        );
    }

    /// Every pair of modes, with either one the more specific or both on the same prefix, for
    /// an address only auto knows (::d:2), one only docker knows (::d:5) and one nobody knows
    /// (::d:9): answered when any non-probe rule knows it (by the most specific that does),
    /// else probed when a probe rule covers it, else ignored for the most specific rule's
    /// reason.
    #[test]
    fn an_address_is_ours_when_any_rule_says_so_for_every_pair_of_modes() {
        let s = Settings::default();
        let modes = [
            Mode::Static,
            Mode::Auto,
            Mode::Probe { via: None },
            Mode::Docker {
                network: "ipv6exposed".into(),
            },
        ];
        // Whether a rule of `mode` knows `target` in the fixture; None: it probes.
        let knows = |mode: &Mode, target: &str| match mode {
            Mode::Static => Some(true),
            Mode::Auto => Some(target == "2001:db8:1::d:2"),
            Mode::Docker { .. } => Some(target == "2001:db8:1::d:5"),
            // SLAAC has its own test (the pairs here route ::d:0/112 to br0, not the uplink).
            Mode::Probe { .. } | Mode::Slaac { .. } => None,
        };
        let refusal = |mode: &Mode| match mode {
            Mode::Auto => Ignored::UnknownDownstream,
            Mode::Docker { .. } => Ignored::NotConnected,
            _ => unreachable!("static knows everything; probe probes"),
        };
        let layouts = [
            ("2001:db8:1::d:0/112", "2001:db8:1::/64"),
            ("2001:db8:1::/64", "2001:db8:1::d:0/112"),
            ("2001:db8:1::d:0/112", "2001:db8:1::d:0/112"),
        ];
        for (i, a) in modes.iter().enumerate() {
            for b in &modes[i + 1..] {
                for (pa, pb) in layouts {
                    let rules = vec![rule(pa, a.clone()), rule(pb, b.clone())];
                    let mut snap = with_rules(rules.clone());
                    snap.rules
                        .sort_by_key(|r| std::cmp::Reverse(r.prefix.prefix_len()));
                    for target in ["2001:db8:1::d:2", "2001:db8:1::d:5", "2001:db8:1::d:9"] {
                        let what = format!("{rules:?} for {target}");
                        let decision = decide(&resolution(target), &snap, &s);
                        let knowing = snap
                            .rules
                            .iter()
                            .find(|r| knows(&r.mode, target) == Some(true));
                        match (knowing, decision) {
                            (Some(want), Decision::Answer { rule, .. }) => {
                                assert_eq!(rule, want, "{what}")
                            }
                            (None, Decision::Probe { rule, via, .. }) => {
                                assert!(matches!(rule.mode, Mode::Probe { .. }), "{what}");
                                assert_eq!(via, 3, "{what}");
                            }
                            (None, Decision::Ignore(_, why)) => {
                                assert!(
                                    !snap.rules.iter().any(|r| knows(&r.mode, target).is_none()),
                                    "{what}: a probe rule covers it"
                                );
                                assert_eq!(why, refusal(&snap.rules[0].mode), "{what}");
                            }
                            (_, other) => panic!("{what}: {other:?}"),
                        }
                    }
                }
            }
        }
    }

    /// A probe rule that cannot probe (its interface is missing) does not hide a wider probe
    /// rule that can, nor does any probe rule hide another rule that knows the address.
    #[test]
    fn probe_rules_probe_only_what_no_other_rule_knows() {
        let s = Settings::default();
        let snap = with_rules(vec![
            rule(
                "2001:db8:1::d:0/112",
                Mode::Probe {
                    via: Some("br9".into()),
                },
            ),
            rule("2001:db8:1::/64", Mode::Probe { via: None }),
            Rule::docker("ipv6exposed"),
        ]);
        assert!(matches!(
            decide(&resolution("2001:db8:1::d:9"), &snap, &s),
            Decision::Probe { via: 3, rule, .. } if rule.prefix.prefix_len() == 64
        ));
        assert_eq!(probe_interface(&snap, &ip("2001:db8:1::d:9")), Some(3));
        assert!(matches!(
            decide(&resolution("2001:db8:1::d:5"), &snap, &s),
            Decision::Answer { rule, .. } if matches!(rule.mode, Mode::Docker { .. })
        ));
    }

    #[test]
    fn kind_is_classified_from_source_and_destination() {
        assert_eq!(kind_of(&resolution("2001:db8:1::d:2")), Kind::Resolution);
        assert_eq!(kind_of(&nud("2001:db8:1::d:2")), Kind::Nud);
        assert_eq!(kind_of(&dad("2001:db8:1::d:2")), Kind::Dad);
    }

    #[test]
    fn source_policy_parses_and_names_bad_values() {
        assert_eq!("target".parse(), Ok(SourcePolicy::Target));
        assert_eq!("link-local".parse(), Ok(SourcePolicy::LinkLocal));
        assert_eq!(
            "2001:db8:1::2".parse(),
            Ok(SourcePolicy::Fixed(ip("2001:db8:1::2")))
        );
        let err = "linklocal".parse::<SourcePolicy>().unwrap_err();
        assert!(
            err.contains("'linklocal'") && err.contains("link-local"),
            "{err}"
        );
        let err = "ff02::1".parse::<SourcePolicy>().unwrap_err();
        assert!(err.contains("unicast"), "{err}");
        for p in [
            SourcePolicy::Target,
            SourcePolicy::LinkLocal,
            SourcePolicy::Fixed(ip("2001:db8::5")),
        ] {
            assert_eq!(p.to_string().parse(), Ok(p));
        }
    }

    #[test]
    fn a_group_source_lladdr_is_never_answered() {
        for mac in [
            MacAddr::BROADCAST,
            MacAddr([0x33, 0x33, 0, 0, 0, 1]),
            MacAddr([0; 6]),
        ] {
            let ns = NeighborSolicit {
                source_lladdr: Some(mac),
                ..resolution("2001:db8:1::d:2")
            };
            assert_eq!(
                decide(&ns, &snapshot(), &Settings::default()),
                Decision::Invalid(Invalid::SourceLladdr),
                "{mac}"
            );
        }
    }
}
