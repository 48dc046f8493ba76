//! Helpers of the SLAAC tests (tests/slaac.rs): starting the daemon on the SLAAC topology,
//! waiting for a guest to autoconfigure, reachability by ping, the guests' router
//! solicitations, our routes, and router advertisements forged by a test.
//!
//! Owns: nothing the daemon decides; every helper reads the kernel's tables, runs a tool in a
//! namespace, or sends a frame a test built.

use std::net::Ipv6Addr;
use std::time::Duration;

use ndp_responder::ndp::{
    self,
    router::{PrefixInfo, RouterAdvert},
};
use ndp_responder::tools::lab::{self, wait_until, Daemon, Topology, GATEWAY, INTERNET_ADDR};

use super::exe;

/// How long a guest may take to autoconfigure once the daemon runs: its router solicitation
/// is answered within a second, then one second of duplicate address detection; the rest is
/// room for a loaded machine.
pub const CONFIGURED_WITHIN: Duration = Duration::from_secs(20);
/// The issue's bound for a gone station: no answer and no route within 30 s.
pub const GONE_WITHIN: Duration = Duration::from_secs(30);
/// Once its route is gone, an address is no longer the host's to answer for: the router's
/// traffic would leave by the uplink again. Room for the daemon to notice, no more.
pub const UNANSWERED_AFTER_ROUTE: Duration = Duration::from_secs(3);

pub fn uplink_prefix() -> ipnet::Ipv6Net {
    lab::UPLINK_PREFIX.parse().unwrap()
}

/// The bridge's link-local address (from its fixed MAC, EUI-64): the guests' router.
pub fn bridge_link_local() -> String {
    let mac: ndp_responder::ndp::MacAddr = lab::GUEST_BRIDGE_MAC.parse().unwrap();
    let m = mac.0;
    let word = |a: u8, b: u8| u16::from_be_bytes([a, b]);
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        word(m[0] ^ 2, m[1]),
        word(m[2], 0xff),
        word(0xfe, m[3]),
        word(m[4], m[5]),
    )
    .to_string()
}

pub fn start(topo: &Topology) -> Daemon {
    topo.start_daemon(exe(), &["--slaac", "br0"])
        .unwrap_or_else(|e| panic!("starting the daemon with --slaac br0: {e}"))
}

/// Guest `n`'s stable (or temporary) address from the uplink's /64, once usable; panics
/// with what the guest and the daemon show if it does not come.
pub fn configured(topo: &Topology, daemon: &Daemon, n: usize, temporary: bool) -> Ipv6Addr {
    let found = topo
        .wait_guest_addr(n, uplink_prefix(), temporary, CONFIGURED_WITHIN)
        .unwrap();
    found.unwrap_or_else(|| {
        panic!(
            "guest {n} has no usable {} address in {} after {CONFIGURED_WITHIN:?}: {:?}, default route {:?}\n{}",
            if temporary { "temporary" } else { "stable" },
            lab::UPLINK_PREFIX,
            topo.guest_addrs(n),
            topo.guest_default_route(n),
            daemon.log()
        )
    })
}

/// Ping `dst` from namespace `ns` (from `src` if given) until one reply comes, up to
/// `within`; whether one did.
pub fn replies(topo: &Topology, ns: &str, src: Option<&str>, dst: &str, within: Duration) -> bool {
    wait_until(within, || {
        topo.ping_in(ns, src, dst, 2)
            .map(|(_, received)| received > 0)
            .unwrap_or(false)
    })
}

/// The router and the Internet stand-in reach `addr` (through the anti-spoof filter: the
/// router resolves it with a solicitation the daemon answers).
pub fn assert_reachable_from_outside(topo: &Topology, daemon: &Daemon, addr: &str) {
    for src in [GATEWAY, INTERNET_ADDR] {
        let ns = if src == GATEWAY {
            topo.router()
        } else {
            topo.internet()
        };
        assert!(
            replies(topo, &ns, Some(src), addr, Duration::from_secs(10)),
            "{addr} does not answer pings from {src}; router's entry {:?}; host routes {:?}; host's neighbours on br0: {:?}\n{}",
            topo.router_neighbour(addr),
            topo.host_slaac_routes(),
            topo.exec(&topo.host(), &["ip", "-6", "neigh", "show", "dev", "br0"])
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned()),
            daemon.log()
        );
    }
}

/// rdisc6 in guest `n` (once its link-local address is usable): `tries` solicitations a
/// second apart, until the first advertisement (printed); it fails if none comes.
pub fn solicit_router(topo: &Topology, n: usize, tries: u32) -> std::process::Output {
    assert!(
        topo.wait_guest_link_local(n, Duration::from_secs(10))
            .unwrap(),
        "guest {n}'s link-local address stays tentative"
    );
    let tries = tries.to_string();
    topo.try_exec(
        &topo.guest(n),
        &["rdisc6", "-1", "-r", &tries, "-w", "1000", "eth0"],
    )
    .unwrap()
}

pub fn has_route(topo: &Topology, addr: Ipv6Addr) -> bool {
    topo.host_slaac_routes()
        .unwrap()
        .iter()
        .any(|(a, dev)| *a == addr && dev == "br0")
}

/// A router advertisement frame from `mac`/`ip_src` to all nodes that offers no default
/// route and no prefix (router lifetime 0), with `rdnss` if given: what another router on a
/// link could send without changing anyone's routing.
pub fn quiet_advert(mac: &str, ip_src: &str, rdnss: Option<&str>) -> Vec<u8> {
    router_advert(mac, ip_src, 0, None, rdnss)
}

/// A router advertisement frame from `mac`/`ip_src` to all nodes: a default router for
/// `router_lifetime` seconds, `prefix` on-link and autonomous (valid an hour, preferred half)
/// if given, `rdnss` if given.
pub fn router_advert(
    mac: &str,
    ip_src: &str,
    router_lifetime: u16,
    prefix: Option<&str>,
    rdnss: Option<&str>,
) -> Vec<u8> {
    let mac: ndp::MacAddr = mac.parse().unwrap();
    RouterAdvert {
        eth_src: mac,
        eth_dst: ndp::multicast_mac(&ndp::ALL_NODES),
        ip_src: ip_src.parse().unwrap(),
        ip_dst: ndp::ALL_NODES,
        hop_limit: 255,
        code: 0,
        cur_hop_limit: 64,
        managed: false,
        other: false,
        router_lifetime,
        reachable_time: 0,
        retrans_timer: 0,
        source_lladdr: Some(mac),
        mtu: None,
        prefixes: prefix
            .map(|p| PrefixInfo {
                prefix: p.parse().unwrap(),
                on_link: true,
                autonomous: true,
                valid_lifetime: 3600,
                preferred_lifetime: 1800,
            })
            .into_iter()
            .collect(),
        rdnss: rdnss.map(|a| (1800, vec![a.parse().unwrap()])),
        dnssl: None,
    }
    .to_frame()
    .unwrap()
}
