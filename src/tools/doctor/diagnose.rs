//! Judging a host: what `doctor` found and how to fix it. Pure: every finding has a unit test.
//!
//! Owns: what is observed ([`Observed`]), the findings ([`Finding`], [`Severity`]), turning the
//! one into the other ([`diagnose`], [`judge_probe`]).
//!
//! Must not: read the host or send anything.

use std::fmt;
use std::net::Ipv6Addr;

use ipnet::Ipv6Net;
use serde::Serialize;

use crate::ndp::MacAddr;

use super::slaac::{diagnose_slaac, SlaacSide};
use super::*;

/// A default route through the uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute {
    pub gateway: Ipv6Addr,
    /// How it was learned: "ra" (router advertisement), "static", "boot", "dhcp", ...
    pub learned_by: String,
}

/// Everything `doctor` looks at, gathered once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub ifname: String,
    pub exists: bool,
    pub up: bool,
    pub mac: Option<MacAddr>,
    pub global_addrs: Vec<Ipv6Addr>,
    pub link_local: Option<Ipv6Addr>,
    pub default_routes: Vec<DefaultRoute>,
    /// net.ipv6.conf.all.forwarding
    pub forwarding: Option<bool>,
    /// net.ipv6.conf.IFACE.accept_ra
    pub accept_ra: Option<u8>,
    /// net.ipv6.conf.IFACE.proxy_ndp or .all.proxy_ndp
    pub proxy_ndp: Option<bool>,
    /// Kernel proxy neighbour entries on the uplink.
    pub proxy_entries: Vec<Ipv6Addr>,
    /// For each prefix, the interface a packet into it leaves by (None: no route).
    pub prefix_routes: Vec<(Ipv6Net, Option<String>)>,
    /// The uplink's on-link prefixes: its routes without a gateway (the kernel adds one for
    /// each address's prefix), link-local and default left out.
    pub on_link: Vec<Ipv6Net>,
    /// Other responders running in this network namespace: (name, pid).
    pub responders: Vec<(String, u32)>,
    /// The interfaces whose hosts autoconfigure from the uplink's /64 (`--slaac`).
    pub slaac: Vec<SlaacSide>,
    /// Our /128 routes that leave by none of them: (address, device).
    pub stray_routes: Vec<(Ipv6Addr, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Warning,
    Problem,
}

/// One thing `doctor` found, with the fix when there is something to fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// A stable identifier of the check, e.g. "forwarding".
    pub check: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    pub(super) fn ok(check: &'static str, message: String) -> Self {
        Finding {
            severity: Severity::Ok,
            check,
            message,
            fix: None,
        }
    }
    pub(super) fn bad(
        severity: Severity,
        check: &'static str,
        message: String,
        fix: String,
    ) -> Self {
        Finding {
            severity,
            check,
            message,
            fix: Some(fix),
        }
    }
}

/// Judge what was observed. Pure: every finding has a unit test below.
pub fn diagnose(obs: &Observed, prefixes: &[Ipv6Net]) -> Vec<Finding> {
    use Severity::{Problem, Warning};
    let ifname = &obs.ifname;
    let mut out = Vec::new();
    if !obs.exists {
        out.push(Finding::bad(
            Problem,
            "interface",
            format!("there is no interface named '{ifname}'"),
            "list the interfaces with `ip link` and pass the uplink with -i".into(),
        ));
        return out;
    }

    match (obs.up, obs.mac) {
        (_, None) => out.push(Finding::bad(
            Problem,
            "interface",
            format!("{ifname} has no Ethernet MAC address"),
            "ndp-responder needs an Ethernet-like uplink (not a tunnel or loopback)".into(),
        )),
        (false, Some(mac)) => out.push(Finding::bad(
            Problem,
            "link",
            format!("{ifname} (MAC {mac}) is down"),
            format!("ip link set {ifname} up"),
        )),
        (true, Some(mac)) => out.push(Finding::ok("link", format!("{ifname} is up, MAC {mac}"))),
    }

    let globals = join(&obs.global_addrs);
    match obs.link_local {
        Some(ll) => out.push(Finding::ok(
            "addresses",
            format!("link-local {ll}; global {globals}"),
        )),
        None => out.push(Finding::bad(
            Warning,
            "addresses",
            format!("{ifname} has no link-local address (global {globals})"),
            format!(
                "sysctl -w net.ipv6.conf.{ifname}.addr_gen_mode=0 and bring {ifname} down and up"
            ),
        )),
    }

    if obs.default_routes.is_empty() {
        out.push(Finding::bad(
            Problem,
            "gateway",
            format!("no IPv6 default route leaves through {ifname}"),
            format!("ip -6 route add default via GATEWAY dev {ifname} (your provider's gateway)"),
        ));
    }
    for route in &obs.default_routes {
        out.push(Finding::ok(
            "gateway",
            format!(
                "default gateway {} (learned from {})",
                route.gateway,
                learned_by(&route.learned_by)
            ),
        ));
        for prefix in prefixes.iter().filter(|p| p.contains(&route.gateway)) {
            out.push(Finding::bad(
                Warning,
                "prefix_covers_gateway",
                format!("{prefix} covers the gateway {}", route.gateway),
                "ndp-responder never answers for the gateway, but narrow the prefix to your containers' range".into(),
            ));
        }
    }

    match obs.forwarding {
        Some(true) => out.push(Finding::ok("forwarding", "IPv6 forwarding is on".into())),
        Some(false) => out.push(Finding::bad(
            Problem,
            "forwarding",
            "IPv6 forwarding is off: the host will not pass packets to the containers".into(),
            "sysctl -w net.ipv6.conf.all.forwarding=1 (and persist it in /etc/sysctl.d/)".into(),
        )),
        None => {}
    }

    let ra_routes = obs.default_routes.iter().any(|r| r.learned_by == "ra");
    if obs.forwarding == Some(true) && ra_routes && obs.accept_ra != Some(2) {
        out.push(Finding::bad(
            Problem,
            "accept_ra",
            format!(
                "the default route comes from router advertisements, but with forwarding on {ifname} ignores them (accept_ra={}): the route expires",
                obs.accept_ra.map_or("?".into(), |v| v.to_string())
            ),
            format!("sysctl -w net.ipv6.conf.{ifname}.accept_ra=2"),
        ));
    }

    let proxied: Vec<Ipv6Addr> = obs
        .proxy_entries
        .iter()
        .filter(|a| prefixes.iter().any(|p| p.contains(*a)))
        .copied()
        .collect();
    if !proxied.is_empty() {
        let list = join(&proxied);
        let state = if obs.proxy_ndp == Some(true) {
            "on"
        } else {
            "off, but armed"
        };
        out.push(Finding::bad(
            Warning,
            "proxy_ndp",
            format!("the kernel proxies NDP for {list} on {ifname} (proxy_ndp {state}): it answers from link-local, racing ndp-responder"),
            format!("ip -6 neigh del proxy ADDRESS dev {ifname} for each, and sysctl -w net.ipv6.conf.{ifname}.proxy_ndp=0"),
        ));
    }

    for (name, pid) in &obs.responders {
        out.push(Finding::bad(
            Warning,
            "other_responder",
            format!("{name} (pid {pid}) runs in this network namespace and may answer for the same prefixes from link-local"),
            format!("stop it (systemctl disable --now {name}) before running ndp-responder"),
        ));
    }

    for (prefix, oif) in &obs.prefix_routes {
        match oif {
            None => out.push(Finding::bad(
                Problem,
                "route",
                format!("nothing routes {prefix}: packets for the containers would be dropped"),
                format!("route it to the container bridge: ip -6 route add {prefix} dev BRIDGE"),
            )),
            Some(dev) if dev == ifname => out.push(Finding::bad(
                Problem,
                "route",
                format!("{prefix} is routed out of the uplink {ifname}: forwarded packets would loop back"),
                format!("route it to the container bridge (e.g. docker network create --ipv6 --subnet {prefix} ...) or: ip -6 route add {prefix} dev BRIDGE"),
            )),
            Some(dev) => out.push(Finding::ok("route", format!("{prefix} is routed to {dev}"))),
        }
    }

    // The provider's router solicits only for addresses it considers on-link: a prefix
    // outside them is never asked for (with no on-link prefix known, there is nothing to
    // judge by).
    if let Some(first) = obs.on_link.first() {
        for prefix in prefixes {
            if !obs.on_link.iter().any(|on| on.contains(prefix)) {
                out.push(Finding::bad(
                    Warning,
                    "on_link",
                    format!(
                        "{prefix} is not within an on-link prefix of {ifname} ({}): the provider's router solicits only for on-link addresses, so it will never ask for these",
                        obs.on_link.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
                    ),
                    format!("give the containers a range inside {first} (e.g. a /112 of it); if the provider routes {prefix} to this host instead, no NDP proxy is needed for it: remove the rule"),
                ));
            }
        }
    }
    out.extend(diagnose_slaac(obs));
    out
}

pub(super) fn learned_by(protocol: &str) -> &str {
    match protocol {
        "ra" => "router advertisements",
        "static" => "static configuration",
        "boot" => "configuration at boot or by hand",
        "dhcp" => "DHCPv6",
        other => other,
    }
}

/// The address lists of findings read like those of the daemon's log and status.
use crate::status::list as join;

/// An address inside `prefix` that is unlikely to be assigned locally (the second-to-last),
/// so that a route lookup shows where forwarded packets go.
pub(super) fn probe_address(prefix: &Ipv6Net) -> Ipv6Addr {
    if prefix.prefix_len() >= 127 {
        return prefix.addr();
    }
    Ipv6Addr::from(u128::from(prefix.broadcast()) - 1)
}

/// The verdict of probe results, as findings.
pub fn judge_probe(results: &[ProbeResult], gateway: Ipv6Addr) -> Vec<Finding> {
    let answered = |policy| results.iter().any(|r| r.policy == policy && r.answered);
    let mut out = Vec::new();
    for r in results {
        let what = format!(
            "gateway {gateway} {} an NS from {} ({} policy, {} sent)",
            if r.answered {
                "answered"
            } else {
                "did not answer"
            },
            r.source,
            r.policy,
            r.sent
        );
        out.push(Finding::ok("probe", what));
    }
    if !answered("target") {
        out.push(Finding::bad(
            Severity::Problem,
            "probe",
            format!(
                "the gateway ignores NDP from the test address {}",
                results.first().map_or(Ipv6Addr::UNSPECIFIED, |r| r.source)
            ),
            "check that the address is in the range your provider assigned to this host".into(),
        ));
    } else if results.iter().any(|r| r.policy == "link-local") && !answered("link-local") {
        out.push(Finding::ok(
            "probe",
            "your provider filters link-local-sourced NDP from this host: keep --source target (the default); proxy_ndp and ndppd cannot work here".into(),
        ));
    }
    out
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Problem => "problem",
        })
    }
}
