//! `doctor` for the SLAAC mode (`--slaac IFACE`, issue 17): what the host needs so that the
//! guests on IFACE get addresses from the uplink's /64 and are reached through this host.
//!
//! Owns: what is observed of each SLAAC interface ([`SlaacSide`]: read by [`observe_side`],
//! plus the other router advertisement senders and our own /128 routes), and the findings
//! ([`diagnose_slaac`], pure, a unit test per finding).
//!
//! Must not: change anything on the host or send anything (other RA senders are found by
//! their processes and their configuration, not by soliciting).

use std::fs;
use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use super::diagnose::{Finding, Observed, Severity};
use crate::sources::netlink::{routes, KernelView};

/// Programs that send router advertisements when configured to.
const RA_SENDERS: [&str; 3] = ["radvd", "odhcpd", "dnsmasq"];
/// Where systemd-networkd reads .network files from (the first match of a name wins).
const NETWORKD_DIRS: [&str; 3] = [
    "/etc/systemd/network",
    "/run/systemd/network",
    "/usr/lib/systemd/network",
];

/// One interface whose hosts autoconfigure from the uplink's /64.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlaacSide {
    pub ifname: String,
    pub exists: bool,
    pub up: bool,
    pub link_local: Option<Ipv6Addr>,
    /// Prefixes routed on-link to this interface (its addresses' prefixes), link-local left
    /// out.
    pub on_link: Vec<Ipv6Net>,
    /// Who else may send router advertisements here: "radvd (pid 42)", a networkd file.
    pub ra_senders: Vec<String>,
    /// Our /128 routes (protocol [`routes::RTPROT_NDP_RESPONDER`]) that leave by it.
    pub routes: Vec<Ipv6Addr>,
}

/// Read what the kernel and the host's configuration say about SLAAC interface `ifname`.
pub fn observe_side(view: &KernelView, ifname: &str, own: &[(Ipv6Addr, u32)]) -> SlaacSide {
    let mut side = SlaacSide {
        ifname: ifname.to_string(),
        ..SlaacSide::default()
    };
    if let Some(index) = view.index_of(ifname) {
        side.exists = true;
        side.up = view.links[&index].up;
        side.link_local = view.link_local_of(index);
        for route in &view.routes {
            let on_link = route.oif == Some(index)
                && route.gateway.is_none()
                && route.dst.prefix_len() > 0
                && route.dst.prefix_len() < 128
                && !route.dst.addr().is_unicast_link_local()
                && !route.dst.addr().is_multicast();
            if on_link && !side.on_link.contains(&route.dst) {
                side.on_link.push(route.dst);
            }
        }
        side.routes = own
            .iter()
            .filter(|(_, oif)| *oif == index)
            .map(|(a, _)| *a)
            .collect();
    }
    for (name, pid) in super::observe::processes_here(&RA_SENDERS) {
        side.ra_senders.push(format!("{name} (pid {pid})"));
    }
    side.ra_senders.extend(networkd_ra_files(ifname));
    side
}

/// The systemd-networkd .network files that make `ifname` send router advertisements.
fn networkd_ra_files(ifname: &str) -> Vec<String> {
    let mut found = Vec::new();
    for dir in NETWORKD_DIRS {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "network"))
            .collect();
        paths.sort();
        for path in paths {
            let text = fs::read_to_string(&path).unwrap_or_default();
            if networkd_sends_ra(&text, ifname) {
                found.push(format!("systemd-networkd ({})", path.display()));
            }
        }
    }
    found
}

/// Does this .network file match `ifname` ([Match] Name=, with `*` and `?` globs) and set
/// IPv6SendRA= to a true value in [Network]?
fn networkd_sends_ra(text: &str, ifname: &str) -> bool {
    let (mut section, mut matches, mut sends) = (String::new(), false, false);
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match (section.as_str(), key.trim()) {
            ("Match", "Name") => {
                matches |= value
                    .split_whitespace()
                    .any(|pattern| glob(pattern, ifname))
            }
            ("Network", "IPv6SendRA") => {
                sends = matches!(value.trim(), "yes" | "true" | "1" | "on");
            }
            _ => {}
        }
    }
    matches && sends
}

/// Shell-style match with `*` (any run) and `?` (one character).
fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// The prefixes a SLAAC interface would share: the uplink's on-link /64s (what the daemon
/// takes when a rule names no prefix).
pub fn shared_prefixes(obs: &Observed) -> Vec<Ipv6Net> {
    obs.on_link
        .iter()
        .filter(|p| p.prefix_len() == 64)
        .copied()
        .collect()
}

/// Judge the SLAAC interfaces of `obs`. Pure.
pub fn diagnose_slaac(obs: &Observed) -> Vec<Finding> {
    use Severity::{Problem, Warning};
    let mut out = Vec::new();
    if obs.slaac.is_empty() {
        return out;
    }
    let uplink = &obs.ifname;
    let shared = shared_prefixes(obs);
    let list = |nets: &[Ipv6Net]| {
        nets.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if shared.is_empty() {
        out.push(Finding::bad(
            Problem,
            "slaac_prefix",
            format!("{uplink} has no on-link /64 to share: SLAAC needs a /64 (RFC 4862 5.5.3)"),
            format!("give {uplink} its address from the provider's /64 (by router advertisement or by hand), or set prefix = \"2001:db8:1::/64\" in the slaac rule"),
        ));
    }
    // Forwarding off is a finding of its own; an RA-configured uplink must then also keep
    // accepting advertisements once it is turned on.
    let ra_routes = obs.default_routes.iter().any(|r| r.learned_by == "ra");
    if obs.forwarding != Some(true) && ra_routes && obs.accept_ra != Some(2) {
        out.push(Finding::bad(
            Problem,
            "accept_ra",
            format!(
                "the default route of {uplink} comes from router advertisements: with the forwarding SLAAC needs, {uplink} ignores them unless accept_ra=2 (now {})",
                obs.accept_ra.map_or("?".into(), |v| v.to_string())
            ),
            format!("sysctl -w net.ipv6.conf.{uplink}.accept_ra=2 (before turning forwarding on)"),
        ));
    }
    for side in &obs.slaac {
        let name = &side.ifname;
        if !side.exists {
            out.push(Finding::bad(
                Problem,
                "slaac_interface",
                format!("there is no interface named '{name}' for the guests"),
                "list the interfaces with `ip link`: --slaac takes the guests' bridge (e.g. br0, lxcbr0, virbr1)".into(),
            ));
            continue;
        }
        if name == uplink {
            out.push(Finding::bad(
                Problem,
                "slaac_interface",
                format!("{name} is the uplink itself: the guests must be behind another interface"),
                "give --slaac the guests' bridge, not the uplink".into(),
            ));
            continue;
        }
        match side.link_local {
            None => out.push(Finding::bad(
                Problem,
                "slaac_interface",
                format!("{name} has no link-local address: router advertisements are sent from it"),
                format!("sysctl -w net.ipv6.conf.{name}.disable_ipv6=0 and net.ipv6.conf.{name}.addr_gen_mode=0, then bring {name} down and up"),
            )),
            Some(ll) if side.up => out.push(Finding::ok(
                "slaac_interface",
                format!("{name} is up, link-local {ll}: the guests' router"),
            )),
            Some(_) => out.push(Finding::bad(
                Warning,
                "slaac_interface",
                format!("{name} is down (or has no port up): no guest hears its advertisements yet"),
                format!("ip link set {name} up, and attach the guests' ports"),
            )),
        }
        for on_link in &side.on_link {
            if let Some(p) = shared
                .iter()
                .find(|p| p.contains(on_link) || on_link.contains(*p))
            {
                out.push(Finding::bad(
                    Problem,
                    "slaac_on_link",
                    format!("{name} has an address in {on_link}, on-link there, which overlaps the shared {p}: the kernel would look for the uplink's neighbours on {name}"),
                    format!("remove that address from {name} (ip -6 addr show dev {name}): it needs only its link-local address"),
                ));
            }
        }
        if !shared.is_empty() {
            out.push(Finding::ok(
                "slaac_prefix",
                format!(
                    "sharing {} of {uplink} with the hosts on {name}",
                    list(&shared)
                ),
            ));
        }
        for sender in &side.ra_senders {
            let fix = if sender.starts_with("systemd-networkd") {
                format!("set IPv6SendRA=no for {name} in that file, then networkctl reload")
            } else {
                format!("make sure it does not advertise on {name} (or stop it): the guests would follow two routers")
            };
            out.push(Finding::bad(
                Warning,
                "other_ra_sender",
                format!("{sender} may send router advertisements on {name} too"),
                fix,
            ));
        }
        out.push(Finding::ok(
            "slaac_routes",
            match side.routes.len() {
                0 => format!("no /128 routes of ndp-responder on {name}"),
                n => format!(
                    "{n} /128 route(s) of ndp-responder (proto {}) on {name}: {}",
                    routes::RTPROT_NDP_RESPONDER,
                    crate::status::list(&side.routes)
                ),
            },
        ));
    }
    for (addr, dev) in &obs.stray_routes {
        out.push(Finding::bad(
            Warning,
            "slaac_routes",
            format!("a route of ndp-responder to {addr} leaves by {dev}, which is not a SLAAC interface here: left by an earlier configuration or a crash"),
            format!("if no ndp-responder shares a prefix on {dev}: ip -6 route flush proto {} dev {dev}", routes::RTPROT_NDP_RESPONDER),
        ));
    }
    out
}

/// Our routes that leave by none of the SLAAC interfaces asked about: (address, device).
pub fn stray_routes(
    view: &KernelView,
    own: &[(Ipv6Addr, u32)],
    slaac: &[String],
) -> Vec<(Ipv6Addr, String)> {
    own.iter()
        .filter_map(|(addr, oif)| {
            let name = view
                .links
                .get(oif)
                .map_or(format!("#{oif}"), |l| l.name.clone());
            (!slaac.contains(&name)).then_some((*addr, name))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::diagnose::DefaultRoute;
    use super::*;
    use crate::decide::testing::net;

    fn host() -> Observed {
        Observed {
            ifname: "eth0".into(),
            exists: true,
            up: true,
            default_routes: vec![DefaultRoute {
                gateway: "2001:db8:1::1".parse().unwrap(),
                learned_by: "static".into(),
            }],
            forwarding: Some(true),
            on_link: vec![net("2001:db8:1::/64")],
            slaac: vec![SlaacSide {
                ifname: "br0".into(),
                exists: true,
                up: true,
                link_local: Some("fe80::1".parse().unwrap()),
                ..SlaacSide::default()
            }],
            ..Observed::default()
        }
    }

    fn bad(obs: &Observed) -> Vec<Finding> {
        diagnose_slaac(obs)
            .into_iter()
            .filter(|f| f.severity != Severity::Ok)
            .collect()
    }

    fn only(obs: &Observed, check: &str, severity: Severity) -> Finding {
        let found = bad(obs);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!((found[0].check, found[0].severity), (check, severity));
        assert!(found[0].fix.is_some());
        found[0].clone()
    }

    #[test]
    fn a_ready_host_has_no_slaac_findings_and_says_what_it_shares() {
        assert_eq!(bad(&host()), vec![]);
        let all = diagnose_slaac(&host());
        assert!(all.iter().any(|f| f.check == "slaac_prefix"
            && f.message == "sharing 2001:db8:1::/64 of eth0 with the hosts on br0"));
        assert!(diagnose_slaac(&Observed {
            slaac: vec![],
            ..host()
        })
        .is_empty());
    }

    #[test]
    fn no_64_on_the_uplink() {
        let mut obs = host();
        obs.on_link = vec![net("2001:db8:1::/112")];
        let f = only(&obs, "slaac_prefix", Severity::Problem);
        assert!(f.message.contains("no on-link /64"), "{}", f.message);
    }

    #[test]
    fn ra_configured_uplink_before_forwarding_is_on() {
        let mut obs = host();
        obs.forwarding = Some(false);
        obs.default_routes[0].learned_by = "ra".into();
        obs.accept_ra = Some(1);
        let f = only(&obs, "accept_ra", Severity::Problem);
        assert!(f.fix.unwrap().contains("net.ipv6.conf.eth0.accept_ra=2"));
        obs.accept_ra = Some(2);
        assert_eq!(bad(&obs), vec![]);
    }

    #[test]
    fn the_guests_interface_is_missing_down_the_uplink_or_without_link_local() {
        let mut obs = host();
        obs.slaac[0].exists = false;
        assert!(only(&obs, "slaac_interface", Severity::Problem)
            .message
            .contains("'br0'"));
        let mut obs = host();
        obs.slaac[0].ifname = "eth0".into();
        assert!(only(&obs, "slaac_interface", Severity::Problem)
            .message
            .contains("the uplink itself"));
        let mut obs = host();
        obs.slaac[0].link_local = None;
        assert!(only(&obs, "slaac_interface", Severity::Problem)
            .fix
            .unwrap()
            .contains("disable_ipv6=0"));
        let mut obs = host();
        obs.slaac[0].up = false;
        only(&obs, "slaac_interface", Severity::Warning);
    }

    #[test]
    fn an_address_of_the_shared_prefix_on_the_guests_interface() {
        let mut obs = host();
        obs.slaac[0].on_link = vec![net("2001:db8:1::/64")];
        let f = only(&obs, "slaac_on_link", Severity::Problem);
        assert!(f.message.contains("br0 has an address in 2001:db8:1::/64"));
        // A prefix of its own, elsewhere, is fine.
        obs.slaac[0].on_link = vec![net("2001:db8:7::/64")];
        assert_eq!(bad(&obs), vec![]);
    }

    #[test]
    fn other_router_advertisement_senders() {
        let mut obs = host();
        obs.slaac[0].ra_senders = vec![
            "radvd (pid 42)".into(),
            "systemd-networkd (/etc/systemd/network/br0.network)".into(),
        ];
        let found = bad(&obs);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found.iter().all(|f| f.check == "other_ra_sender"));
        assert!(found[1].fix.as_ref().unwrap().contains("IPv6SendRA=no"));
    }

    #[test]
    fn our_routes_are_listed_and_strays_flagged() {
        let mut obs = host();
        obs.slaac[0].routes = vec!["2001:db8:1::5".parse().unwrap()];
        assert!(diagnose_slaac(&obs)
            .iter()
            .any(|f| f.check == "slaac_routes"
                && f.message.contains(
                    "1 /128 route(s) of ndp-responder (proto 110) on br0: 2001:db8:1::5"
                )));
        obs.stray_routes = vec![("2001:db8:1::6".parse().unwrap(), "br9".into())];
        let f = only(&obs, "slaac_routes", Severity::Warning);
        assert!(f
            .fix
            .unwrap()
            .contains("ip -6 route flush proto 110 dev br9"));
    }

    #[test]
    fn networkd_files_that_advertise() {
        let file = "[Match]\nName=br0 vnet*\n\n[Network]\nIPv6SendRA=yes\n";
        assert!(networkd_sends_ra(file, "br0"));
        assert!(networkd_sends_ra(file, "vnet3"));
        assert!(!networkd_sends_ra(file, "eth0"));
        assert!(!networkd_sends_ra(
            "[Match]\nName=br0\n[Network]\nIPv6SendRA=no\n",
            "br0"
        ));
        assert!(!networkd_sends_ra(
            "[Match]\nName=br0\n[Network]\n# IPv6SendRA=yes\n",
            "br0"
        ));
        assert!(glob("br?", "br0") && !glob("br?", "br10") && glob("*", "x"));
    }
}
