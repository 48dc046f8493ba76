//! The rules that say which addresses we answer for, and the snapshot the packet path reads.
//!
//! Owns: [`Rule`] (a prefix and how its targets are known: static, auto from the kernel,
//! probed downstream, a Docker network, SLAAC guests routed by the SLAAC duty; a SLAAC rule
//! without a prefix resolved to the uplink's global /64s, [`Rule::resolve`]), [`Snapshot`] (the rules plus the kernel facts the policy needs: the
//! uplink's identity and own addresses, the gateways, the routes, the targets known behind
//! downstream interfaces), its construction from a [`KernelView`] ([`Snapshot::build`], pure),
//! and [`TargetTable`], which publishes snapshots so the packet path reads the current one
//! without a lock while a separate task rebuilds it.
//!
//! Must not: do I/O or decide how to answer; [`crate::decide::policy`] reads snapshots.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::Ipv6Addr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::Ipv6Net;

use crate::ndp::MacAddr;
use crate::sources::docker::DockerTargets;
use crate::sources::netlink::KernelView;

/// How the targets of a rule are known.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Every address in the prefix that is routed to a downstream interface.
    Static,
    /// Addresses the kernel knows behind a downstream interface (neighbour entry, address or
    /// /128 route there; or any address routed to a point-to-point link such as WireGuard).
    Auto,
    /// Addresses that answer a Neighbor Solicitation we send on the downstream interface
    /// (`via`, or the one the route points to).
    Probe { via: Option<String> },
    /// Addresses of the containers connected to this Docker (or Podman) network.
    Docker { network: String },
    /// The prefix is shared with the hosts on `interface` by SLAAC (issue 17): we advertise
    /// it there, learn the guests' addresses and route each to `interface` with a /128 of
    /// our own; those routes make them targets. `dns`: RDNSS servers to advertise (else the
    /// uplink's are relayed). Without a prefix of its own (`::/0` in the rule as written),
    /// [`Snapshot::build`] gives the rule the uplink's global /64s, followed when they change.
    Slaac {
        interface: String,
        dns: Vec<Ipv6Addr>,
    },
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Static => f.write_str("static"),
            Mode::Auto => f.write_str("auto"),
            Mode::Probe { via: None } => f.write_str("probe"),
            Mode::Probe { via: Some(i) } => write!(f, "probe@{i}"),
            Mode::Docker { network } => write!(f, "docker network {network}"),
            Mode::Slaac { interface, .. } => write!(f, "slaac on {interface}"),
        }
    }
}

/// One prefix and how its targets are known.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    pub prefix: Ipv6Net,
    pub mode: Mode,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.mode, self.prefix.prefix_len()) {
            (Mode::Docker { .. }, 0) => write!(f, "{}", self.mode),
            (Mode::Slaac { .. }, 0) => write!(f, "uplink /64 ({})", self.mode),
            _ => write!(f, "{} ({})", self.prefix, self.mode),
        }
    }
}

impl Rule {
    /// A SLAAC rule for `interface` with the uplink's /64s (`--slaac IFACE`).
    pub fn slaac(interface: &str) -> Rule {
        Rule {
            prefix: Ipv6Net::default(),
            mode: Mode::Slaac {
                interface: interface.to_string(),
                dns: Vec::new(),
            },
        }
    }

    /// The rules as the snapshot holds them: a SLAAC rule without a prefix becomes one rule
    /// per global /64 of the uplink (`uplink_addrs`); none while the uplink has none.
    pub fn resolve(rules: &[Rule], uplink_addrs: &[Ipv6Addr]) -> Vec<Rule> {
        let mut sixty_fours: Vec<Ipv6Net> = uplink_addrs
            .iter()
            .filter(|a| is_global_unicast(a))
            .filter_map(|a| Ipv6Net::new(*a, 64).ok())
            .map(|n| n.trunc())
            .collect();
        sixty_fours.sort();
        sixty_fours.dedup();
        let mut out = Vec::with_capacity(rules.len());
        for rule in rules {
            match &rule.mode {
                Mode::Slaac { .. } if rule.prefix.prefix_len() == 0 => {
                    out.extend(sixty_fours.iter().map(|p| Rule {
                        prefix: *p,
                        mode: rule.mode.clone(),
                    }))
                }
                _ => out.push(rule.clone()),
            }
        }
        out.dedup();
        out
    }

    /// The SLAAC interface of this rule, if it is one.
    pub fn slaac_interface(&self) -> Option<&str> {
        match &self.mode {
            Mode::Slaac { interface, .. } => Some(interface),
            _ => None,
        }
    }

    /// A rule for the containers of a Docker network, wherever their addresses are.
    pub fn docker(network: &str) -> Rule {
        Rule {
            prefix: Ipv6Net::default(),
            mode: Mode::Docker {
                network: network.to_string(),
            },
        }
    }
}

/// Global unicast as far as a SLAAC prefix goes: not link-local, loopback, multicast or
/// unspecified.
fn is_global_unicast(a: &Ipv6Addr) -> bool {
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || (a.segments()[0] & 0xffc0) == 0xfe80)
}

/// A downstream interface, as the policy and the prober need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downstream {
    pub name: String,
    /// Ethernet-like, with neighbour discovery; false for point-to-point links such as
    /// WireGuard or tun, where a route is all there is to know.
    pub neighbours: bool,
    /// The MAC our probes are sent from (None while it reads all zero).
    pub mac: Option<MacAddr>,
    pub link_local: Option<Ipv6Addr>,
}

/// Everything the policy needs to know, at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The uplink's interface index; None while the uplink does not exist.
    pub uplink: Option<u32>,
    /// The uplink's MAC: the Ethernet source of our answers and their target link-layer option.
    pub mac: MacAddr,
    pub up: bool,
    /// The uplink's link-local address, if it has one (used by `--source link-local`).
    pub link_local: Option<Ipv6Addr>,
    /// The rules, most specific prefix first (they may overlap: see [`Snapshot::rules_for`]).
    pub rules: Vec<Rule>,
    /// Addresses assigned to the uplink itself: the kernel answers for those, never we.
    pub uplink_addrs: Vec<Ipv6Addr>,
    /// Default gateways through the uplink and neighbours the kernel knows as routers there:
    /// never hijacked, even when a rule covers them.
    pub gateways: Vec<Ipv6Addr>,
    /// The gateways of the default routes through the uplink (kept fresh by the keepalive).
    pub default_gateways: Vec<Ipv6Addr>,
    /// Uplink neighbours whose entries someone pinned (PERMANENT or NOARP).
    pub pinned: Vec<Ipv6Addr>,
    /// The MAC the kernel holds for each gateway it has a usable entry for: who the gateway
    /// is at the link layer (its own solicitations are trusted by this, see
    /// [`crate::decide::ratelimit`]), and what a keepalive answer may only replace with the O flag.
    pub gateway_macs: Vec<(Ipv6Addr, MacAddr)>,
    /// Main-table routes that overlap a rule: (destination, outgoing interface), most specific
    /// first.
    pub routes: Vec<(Ipv6Net, Option<u32>)>,
    /// Interfaces other than the uplink, by index.
    pub downstream: HashMap<u32, Downstream>,
    /// Targets of auto rules the kernel knows behind a downstream interface.
    pub known: HashSet<Ipv6Addr>,
    /// Addresses of containers on the Docker networks of docker rules, and their network.
    pub docker: HashMap<Ipv6Addr, String>,
}

impl Snapshot {
    /// Build the snapshot for uplink `ifname` and `rules` from what the kernel says and the
    /// containers the Docker engine reports.
    pub fn build(
        view: &KernelView,
        ifname: &str,
        rules: &[Rule],
        docker: &DockerTargets,
    ) -> Snapshot {
        let docker: HashMap<Ipv6Addr, String> = docker
            .iter()
            .map(|(addr, (network, _))| (*addr, network.clone()))
            .collect();
        let uplink = view.index_of(ifname);
        let own: Vec<Ipv6Addr> = uplink
            .map(|i| view.addrs_of(i).collect())
            .unwrap_or_default();
        let mut rules = Rule::resolve(rules, &own);
        rules.sort_by_key(|r| std::cmp::Reverse(r.prefix.prefix_len()));
        let overlaps_rule = |net: &Ipv6Net| {
            rules
                .iter()
                .any(|r| r.prefix.contains(net) || net.contains(&r.prefix))
        };
        let mut routes: Vec<(Ipv6Net, Option<u32>)> = view
            .routes
            .iter()
            .filter(|r| overlaps_rule(&r.dst))
            .map(|r| (r.dst, r.oif))
            .collect();
        routes.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));

        let downstream: HashMap<u32, Downstream> = view
            .links
            .iter()
            .filter(|(i, l)| Some(**i) != uplink && l.name != "lo")
            .map(|(i, l)| {
                (
                    *i,
                    Downstream {
                        name: l.name.clone(),
                        neighbours: l.ethernet,
                        mac: l.mac,
                        link_local: view.link_local_of(*i),
                    },
                )
            })
            .collect();

        let auto_covers = |a: &Ipv6Addr| {
            rules
                .iter()
                .any(|r| r.mode == Mode::Auto && r.prefix.contains(a))
        };
        let mut known = HashSet::new();
        for (i, a) in &view.addrs {
            if downstream.contains_key(i) && auto_covers(a) {
                known.insert(*a);
            }
        }
        // A SLAAC guest is known by the /128 route to its interface (ours: the SLAAC duty
        // installs it once the guest's address is learned, and removes it when it goes).
        let slaac_covers = |a: &Ipv6Addr, oif: u32| {
            rules.iter().any(|r| {
                r.prefix.contains(a)
                    && r.slaac_interface()
                        .is_some_and(|i| downstream.get(&oif).is_some_and(|d| d.name == i))
            })
        };
        for r in &view.routes {
            let host_route = r.dst.prefix_len() == 128;
            if host_route
                && r.oif.is_some_and(|o| downstream.contains_key(&o))
                && (auto_covers(&r.dst.addr())
                    || r.oif.is_some_and(|o| slaac_covers(&r.dst.addr(), o)))
            {
                known.insert(r.dst.addr());
            }
        }
        let fdb: HashSet<(u32, MacAddr)> = view.fdb.iter().copied().collect();
        for n in &view.neighbours {
            if !n.valid || !downstream.contains_key(&n.ifindex) || !auto_covers(&n.addr) {
                continue;
            }
            // Behind a bridge, the station must still be on a port: a removed container's
            // neighbour entry lingers, its forwarding entry does not.
            let on_bridge = view.links.get(&n.ifindex).is_some_and(|l| l.bridge);
            if on_bridge && !n.lladdr.is_some_and(|m| fdb.contains(&(n.ifindex, m))) {
                continue;
            }
            known.insert(n.addr);
        }

        let Some(index) = uplink else {
            return Snapshot {
                rules,
                routes,
                downstream,
                known,
                docker,
                ..Snapshot::default()
            };
        };
        let link = &view.links[&index];
        let mut default_gateways: Vec<Ipv6Addr> = Vec::new();
        for gw in view.default_routes_via(index).filter_map(|r| r.gateway) {
            if !default_gateways.contains(&gw) {
                default_gateways.push(gw);
            }
        }
        let mut gateways = default_gateways.clone();
        for n in &view.neighbours {
            if n.ifindex == index && n.router && !gateways.contains(&n.addr) {
                gateways.push(n.addr);
            }
        }
        Snapshot {
            uplink: Some(index),
            mac: link.mac.unwrap_or_default(),
            up: link.up,
            link_local: view.link_local_of(index),
            rules,
            uplink_addrs: view.addrs_of(index).collect(),
            default_gateways,
            pinned: view
                .neighbours
                .iter()
                .filter(|n| n.ifindex == index && n.pinned)
                .map(|n| n.addr)
                .collect(),
            gateway_macs: view
                .neighbours
                .iter()
                .filter(|n| n.ifindex == index && n.valid && gateways.contains(&n.addr))
                .filter_map(|n| Some((n.addr, n.lladdr?)))
                .collect(),
            gateways,
            routes,
            downstream,
            known,
            docker,
        }
    }

    /// The prefixes the uplink socket's kernel filter lets through: every rule's prefix, and
    /// for a docker rule without one, the smallest prefix that holds the addresses of its
    /// network's containers (each address on its own when they lie far apart), so that no rule
    /// opens the filter to every target. Never empty (to the filter, empty means everything):
    /// with nothing to let through it is `::/128`, which no valid solicitation targets.
    pub fn filter_prefixes(&self) -> Vec<Ipv6Net> {
        /// Shorter common prefixes than this are not taken for one network's range.
        const WIDEST: u8 = 48;
        let mut out: Vec<Ipv6Net> = Vec::new();
        for rule in &self.rules {
            let Mode::Docker { network } = &rule.mode else {
                out.push(rule.prefix);
                continue;
            };
            if rule.prefix.prefix_len() > 0 {
                out.push(rule.prefix);
                continue;
            }
            let addrs: Vec<u128> = self
                .docker
                .iter()
                .filter(|(_, n)| *n == network)
                .map(|(a, _)| u128::from(*a))
                .collect();
            let (Some(lo), Some(hi)) = (addrs.iter().min(), addrs.iter().max()) else {
                continue;
            };
            let common = (lo ^ hi).leading_zeros() as u8;
            if common >= WIDEST {
                out.extend(Ipv6Net::new(Ipv6Addr::from(*lo), common).map(|n| n.trunc()));
            } else {
                out.extend(addrs.iter().map(|a| Ipv6Net::from(Ipv6Addr::from(*a))));
            }
        }
        out.sort();
        out.dedup();
        if out.is_empty() {
            out.push(Ipv6Net::from(Ipv6Addr::UNSPECIFIED));
        }
        out
    }

    /// The kernel's MAC for gateway `gw`, if it has a usable entry.
    pub fn gateway_mac(&self, gw: &Ipv6Addr) -> Option<MacAddr> {
        self.gateway_macs
            .iter()
            .find(|(a, _)| a == gw)
            .map(|(_, mac)| *mac)
    }

    /// Is `mac` the link-layer address of a gateway, as the kernel knows it?
    pub fn is_gateway_mac(&self, mac: &MacAddr) -> bool {
        self.gateway_macs.iter().any(|(_, m)| m == mac)
    }

    /// The most specific rule that contains `addr`, if any.
    pub fn rule_for(&self, addr: &Ipv6Addr) -> Option<&Rule> {
        self.rules_for(addr).next()
    }

    /// Every rule that contains `addr`, most specific first. Rules may overlap freely: the
    /// policy answers an address when any of them says it is ours.
    pub fn rules_for(&self, addr: &Ipv6Addr) -> impl Iterator<Item = &Rule> + '_ {
        let addr = *addr;
        self.rules.iter().filter(move |r| r.prefix.contains(&addr))
    }

    /// Where the kernel routes `addr` (longest prefix match over the routes that overlap a
    /// rule): `None` when no route matches, `Some(None)` for a route without an interface.
    pub fn route_oif(&self, addr: &Ipv6Addr) -> Option<Option<u32>> {
        self.routes
            .iter()
            .find(|(net, _)| net.contains(addr))
            .map(|(_, oif)| *oif)
    }

    /// True when `addr` is assigned to the uplink interface.
    pub fn is_uplink_addr(&self, addr: &Ipv6Addr) -> bool {
        self.uplink_addrs.contains(addr)
    }

    /// True when `addr` is a gateway or a known router on the uplink.
    pub fn is_gateway(&self, addr: &Ipv6Addr) -> bool {
        self.gateways.contains(addr)
    }

    /// The downstream interface called `name`.
    pub fn downstream_named(&self, name: &str) -> Option<u32> {
        self.downstream
            .iter()
            .find(|(_, d)| d.name == name)
            .map(|(i, _)| *i)
    }
}

/// The published snapshot. Readers call [`TargetTable::load`] (wait-free); the refresh task
/// builds a complete new [`Snapshot`] and [`TargetTable::store`]s it.
#[derive(Debug)]
pub struct TargetTable {
    current: ArcSwap<Snapshot>,
}

impl TargetTable {
    pub fn new(initial: Snapshot) -> Self {
        TargetTable {
            current: ArcSwap::from_pointee(initial),
        }
    }

    /// The snapshot in force now.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replace the snapshot; readers see either the old or the new one, never a mix.
    pub fn store(&self, next: Snapshot) {
        self.current.store(Arc::new(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::testing::{ip, net};
    use crate::sources::netlink::{Link, Neighbour, Route};

    const UPLINK_MAC: MacAddr = MacAddr([2, 0, 0, 0, 2, 1]);
    const CT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 3, 2]);

    fn link(name: &str, mac: Option<MacAddr>, bridge: bool) -> Link {
        Link {
            name: name.into(),
            mac,
            up: true,
            bridge,
            ethernet: mac.is_some(),
        }
    }
    fn route(dst: &str, oif: u32, gateway: Option<&str>) -> Route {
        Route {
            dst: net(dst),
            oif: Some(oif),
            gateway: gateway.map(ip),
            protocol: "boot".into(),
        }
    }
    fn neighbour(ifindex: u32, addr: &str, mac: MacAddr, valid: bool, router: bool) -> Neighbour {
        Neighbour {
            ifindex,
            addr: ip(addr),
            lladdr: Some(mac),
            valid,
            router,
            pinned: false,
        }
    }

    /// eth0 (2) uplink, br0 (3) bridge with a container behind it, wg0 (4) point-to-point.
    fn view() -> KernelView {
        KernelView {
            links: HashMap::from([
                (1, link("lo", None, false)),
                (2, link("eth0", Some(UPLINK_MAC), false)),
                (3, link("br0", Some(MacAddr([2, 0, 0, 0, 3, 1])), true)),
                (4, link("wg0", None, false)),
            ]),
            addrs: vec![
                (2, ip("2001:db8:1::2")),
                (2, ip("fe80::2")),
                (3, ip("2001:db8:1::d:1")),
                (3, ip("fe80::3")),
            ],
            routes: vec![
                route("::/0", 2, Some("fe80::1")),
                route("2001:db8:1::/64", 2, None),
                route("2001:db8:1::d:0/112", 3, None),
                route("2001:db8:1::e:0/112", 4, None),
                route("2001:db8:9::/64", 2, None),
            ],
            neighbours: vec![
                neighbour(3, "2001:db8:1::d:2", CT_MAC, true, false),
                neighbour(
                    3,
                    "2001:db8:1::d:3",
                    MacAddr([2, 0, 0, 0, 3, 3]),
                    true,
                    false,
                ),
                neighbour(3, "2001:db8:1::d:4", CT_MAC, false, false),
                neighbour(2, "2001:db8:1::1", MacAddr([2, 0, 0, 0, 1, 1]), true, true),
            ],
            fdb: vec![(3, CT_MAC)],
        }
    }

    fn rules() -> Vec<Rule> {
        vec![
            Rule {
                prefix: net("2001:db8:1::/64"),
                mode: Mode::Static,
            },
            Rule {
                prefix: net("2001:db8:1::d:0/112"),
                mode: Mode::Auto,
            },
            Rule {
                prefix: net("2001:db8:1::e:0/112"),
                mode: Mode::Auto,
            },
        ]
    }

    #[test]
    fn uplink_identity_addresses_and_gateways() {
        let snap = Snapshot::build(&view(), "eth0", &rules(), &DockerTargets::new());
        assert_eq!(snap.uplink, Some(2));
        assert_eq!(snap.mac, UPLINK_MAC);
        assert_eq!(snap.link_local, Some(ip("fe80::2")));
        assert!(snap.is_uplink_addr(&ip("2001:db8:1::2")));
        assert!(
            !snap.is_uplink_addr(&ip("2001:db8:1::d:1")),
            "the bridge's address is not the uplink's"
        );
        // The link-local default gateway, and the router's global address learned as a router neighbour.
        assert_eq!(snap.gateways, vec![ip("fe80::1"), ip("2001:db8:1::1")]);
        assert!(
            !snap.downstream.contains_key(&1),
            "loopback is never downstream"
        );
        assert_eq!(snap.downstream[&3].link_local, Some(ip("fe80::3")));
    }

    #[test]
    fn rules_are_searched_most_specific_first() {
        let snap = Snapshot::build(&view(), "eth0", &rules(), &DockerTargets::new());
        assert_eq!(
            snap.rule_for(&ip("2001:db8:1::d:9")).unwrap().mode,
            Mode::Auto
        );
        assert_eq!(
            snap.rule_for(&ip("2001:db8:1::99")).unwrap().mode,
            Mode::Static
        );
        assert!(snap.rule_for(&ip("2001:db8:2::1")).is_none());
    }

    #[test]
    fn routes_are_matched_longest_prefix_first() {
        let snap = Snapshot::build(&view(), "eth0", &rules(), &DockerTargets::new());
        assert_eq!(snap.route_oif(&ip("2001:db8:1::d:9")), Some(Some(3)));
        assert_eq!(snap.route_oif(&ip("2001:db8:1::99")), Some(Some(2)));
        assert_eq!(
            snap.route_oif(&ip("2001:db8:7::1")),
            Some(Some(2)),
            "the default route"
        );
        assert!(
            !snap
                .routes
                .iter()
                .any(|(n, _)| *n == net("2001:db8:9::/64")),
            "routes that overlap no rule are not kept"
        );
    }

    #[test]
    fn auto_knows_addresses_and_live_neighbours_behind_downstream_interfaces() {
        let snap = Snapshot::build(&view(), "eth0", &rules(), &DockerTargets::new());
        assert!(
            snap.known.contains(&ip("2001:db8:1::d:1")),
            "the bridge's own address"
        );
        assert!(
            snap.known.contains(&ip("2001:db8:1::d:2")),
            "neighbour still on a bridge port"
        );
        assert!(
            !snap.known.contains(&ip("2001:db8:1::d:3")),
            "neighbour entry left by a removed container (its MAC is in no FDB entry)"
        );
        assert!(
            !snap.known.contains(&ip("2001:db8:1::d:4")),
            "failed neighbour"
        );
        assert!(
            !snap.known.contains(&ip("2001:db8:1::2")),
            "uplink addresses are not downstream"
        );
    }

    #[test]
    fn an_auto_rule_knows_its_addresses_under_a_more_specific_rule_of_another_mode() {
        let rules = vec![
            Rule {
                prefix: net("2001:db8:1::d:0/112"),
                mode: Mode::Static,
            },
            Rule {
                prefix: net("2001:db8:1::/64"),
                mode: Mode::Auto,
            },
        ];
        let snap = Snapshot::build(&view(), "eth0", &rules, &DockerTargets::new());
        assert!(snap.known.contains(&ip("2001:db8:1::d:2")));
        let modes: Vec<&Mode> = snap
            .rules_for(&ip("2001:db8:1::d:2"))
            .map(|r| &r.mode)
            .collect();
        assert_eq!(modes, [&Mode::Static, &Mode::Auto], "most specific first");
    }

    #[test]
    fn host_routes_downstream_are_known() {
        let mut v = view();
        v.routes.push(route("2001:db8:1::d:77/128", 3, None));
        let snap = Snapshot::build(&v, "eth0", &rules(), &DockerTargets::new());
        assert!(snap.known.contains(&ip("2001:db8:1::d:77")));
    }

    #[test]
    fn missing_uplink_gives_an_empty_identity() {
        let snap = Snapshot::build(&view(), "eth9", &rules(), &DockerTargets::new());
        assert_eq!(snap.uplink, None);
        assert!(snap.gateways.is_empty());
        assert_eq!(snap.rules.len(), 3);
    }

    #[test]
    fn store_publishes_a_new_snapshot_and_keeps_old_readers_valid() {
        let table = TargetTable::new(Snapshot::default());
        let before = table.load();
        table.store(Snapshot::build(
            &view(),
            "eth0",
            &rules(),
            &DockerTargets::new(),
        ));
        assert_eq!(before.uplink, None, "a reader's snapshot never changes");
        assert_eq!(table.load().uplink, Some(2));
    }

    #[test]
    fn a_docker_rule_without_a_prefix_never_opens_the_kernel_filter() {
        let net = |s: &str| s.parse::<Ipv6Net>().unwrap();
        let snap = |docker: &[(&str, &str)]| Snapshot {
            rules: vec![
                Rule::docker("ipv6exposed"),
                Rule {
                    prefix: net("2001:db8:1::e:0/112"),
                    mode: Mode::Static,
                },
            ],
            docker: docker
                .iter()
                .map(|(a, n)| (a.parse().unwrap(), n.to_string()))
                .collect(),
            ..Snapshot::default()
        };
        // No container yet: only the static rule's prefix.
        assert_eq!(
            snap(&[]).filter_prefixes(),
            vec![net("2001:db8:1::e:0/112")]
        );
        // The containers' common prefix; another network's containers do not count.
        assert_eq!(
            snap(&[
                ("2001:db8:1::d:2", "ipv6exposed"),
                ("2001:db8:1::d:3", "ipv6exposed"),
                ("2001:db8:7::9", "other"),
            ])
            .filter_prefixes(),
            vec![net("2001:db8:1::d:2/127"), net("2001:db8:1::e:0/112")]
        );
        // Far apart: each address.
        assert_eq!(
            snap(&[
                ("2001:db8:1::d:2", "ipv6exposed"),
                ("2001:db9::2", "ipv6exposed")
            ])
            .filter_prefixes(),
            vec![
                net("2001:db8:1::d:2/128"),
                net("2001:db8:1::e:0/112"),
                net("2001:db9::2/128")
            ]
        );
        // Nothing at all: a filter that lets no target through, never an empty (open) one.
        let only_docker = Snapshot {
            rules: vec![Rule::docker("ipv6exposed")],
            ..Snapshot::default()
        };
        assert_eq!(only_docker.filter_prefixes(), vec![net("::/128")]);
    }
}
