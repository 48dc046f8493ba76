//! The one place that decides whether and how a Neighbor Solicitation is answered.
//!
//! Owns: the semantic validation of a received NS (RFC 4861 section 7.1.1), the responsibility
//! rules (is the target ours, and not the uplink's own address nor the gateway), and the shape
//! of the answer (RFC 4861 section 7.2.4). [`decide`] is a pure function of the solicitation,
//! a [`Snapshot`] of the target table and the [`Settings`]; every branch has a unit test below.
//!
//! Must not: touch sockets, the kernel, clocks or logs. The structural checks (lengths,
//! checksum, option walk) happen earlier, in [`crate::wire`].

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use ipnet::Ipv6Net;

use crate::targets::Snapshot;
use crate::wire::{self, NeighborAdvert, NeighborSolicit};

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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            source: SourcePolicy::Target,
            router: true,
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
        }
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
        }
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
        })
    }
}

/// The outcome for one solicitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send `advert`; `prefix` is the rule that made the target ours.
    Answer {
        kind: Kind,
        prefix: Ipv6Net,
        advert: NeighborAdvert,
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
pub fn decide(ns: &NeighborSolicit, snap: &Snapshot, settings: &Settings) -> Decision {
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
    let Some(prefix) = snap.prefix_for(&ns.target).copied() else {
        return ignore(Ignored::NotCovered);
    };
    if snap.is_uplink_addr(&ns.target) {
        return ignore(Ignored::UplinkAddress);
    }
    if snap.is_gateway(&ns.target) {
        return ignore(Ignored::Gateway);
    }
    let ip_src = match settings.source {
        SourcePolicy::Target => ns.target,
        SourcePolicy::Fixed(addr) => addr,
        SourcePolicy::LinkLocal => match snap.link_local {
            Some(ll) => ll,
            None => return ignore(Ignored::NoLinkLocal),
        },
    };

    // RFC 4861 7.2.4: a solicitation from the unspecified address (DAD) is answered to the
    // all-nodes group with S=0; any other is answered to its source with S=1. The target
    // link-layer option MUST be present for multicast solicitations and SHOULD be for unicast
    // ones: we always include it. The Override flag is set for multicast solicitations
    // (resolution, DAD) as the Linux kernel does for its own addresses, and left clear for
    // unicast NUD probes so a reachability confirmation never rewrites a cached MAC.
    let dad = kind == Kind::Dad;
    let advert = NeighborAdvert {
        eth_src: snap.mac,
        eth_dst: if dad {
            wire::multicast_mac(&wire::ALL_NODES)
        } else {
            ns.eth_src
        },
        ip_src,
        ip_dst: if dad { wire::ALL_NODES } else { ns.ip_src },
        hop_limit: NDP_HOP_LIMIT,
        router: settings.router,
        solicited: !dad,
        override_flag: kind != Kind::Nud,
        target: ns.target,
        target_lladdr: Some(snap.mac),
    };
    Decision::Answer {
        kind,
        prefix,
        advert,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MacAddr;

    const HOST_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
    const ROUTER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            mac: HOST_MAC,
            link_local: Some(ip("fe80::2")),
            prefixes: vec!["2001:db8:1::d:0/112".parse().unwrap()],
            uplink_addrs: vec![ip("2001:db8:1::2"), ip("fe80::2")],
            gateways: vec![ip("2001:db8:1::1")],
        }
    }

    /// A multicast NS from the router's link-local address, as Linux sends it.
    fn resolution(target: &str) -> NeighborSolicit {
        let target = ip(target);
        let group = wire::solicited_node(&target);
        NeighborSolicit {
            eth_src: ROUTER_MAC,
            eth_dst: wire::multicast_mac(&group),
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

    fn outcome(ns: &NeighborSolicit) -> Decision {
        decide(ns, &snapshot(), &Settings::default())
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
        assert_eq!(na.ip_dst, wire::ALL_NODES);
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
            router: true,
        };
        assert_eq!(answer(&ns, &ll).1.ip_src, ip("fe80::2"));
        let fixed = Settings {
            source: SourcePolicy::Fixed(ip("2001:db8:1::2")),
            router: true,
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
            router: true,
        };
        assert_eq!(
            decide(&resolution("2001:db8:1::d:2"), &snap, &ll),
            Decision::Ignore(Kind::Resolution, Ignored::NoLinkLocal)
        );
    }

    #[test]
    fn router_flag_follows_the_setting() {
        let no_r = Settings {
            source: SourcePolicy::Target,
            router: false,
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
        let snap = Snapshot {
            prefixes: vec!["2001:db8:1::/64".parse().unwrap()],
            ..snapshot()
        };
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
        let snap = Snapshot {
            prefixes: vec!["2001:db8:1::/64".parse().unwrap()],
            ..snapshot()
        };
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
            ip_dst: wire::ALL_NODES,
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
}
