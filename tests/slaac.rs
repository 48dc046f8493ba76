//! End-to-end tests of the SLAAC mode (`--slaac IFACE`, issue 17): guests on the host's bridge
//! autoconfigure addresses from the uplink's /64 with the Linux kernel as their stack (nothing
//! configured by hand inside them), and are reachable from the provider's router and the
//! Internet stand-in through the hypervisor's anti-spoof filter. Also the kernel side on its
//! own: the /128 routes of our protocol, and that nothing else is ever touched.
//!
//! State is read through the kernel's tables (`ip`), packet captures and the daemon's control
//! socket, never its log (which is only printed when an assertion fails).

mod common;

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use common::{exe, slaac_topology, start_capture_with};
use ndp_responder::sources::netlink::{self, routes};
use ndp_responder::tools::lab::{
    self, wait_until, Daemon, Topology, GATEWAY, INTERNET_ADDR, NEIGHBOUR_ADDR,
};
use ndp_responder::tools::netns;

/// A bare namespace of one test (no topology), removed when dropped.
struct Bare(String);

impl Bare {
    fn new(name: &str) -> Bare {
        let ns = format!("ndpt{}x{name}", std::process::id());
        let _ = netns::delete(&ns);
        netns::add(&ns).unwrap_or_else(|e| panic!("creating namespace {ns}: {e}"));
        Bare(ns)
    }

    fn ip(&self, args: &str) -> String {
        let args: Vec<&str> = args.split_whitespace().collect();
        let out = netns::exec(&self.0, &[&["ip"], args.as_slice()].concat())
            .unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run `f` with a netlink handle inside this namespace, on a runtime of its own.
    fn netlink<T: Send>(&self, f: impl AsyncFnOnce(&netlink::Handle) -> T + Send) -> T {
        netns::run_in(&self.0, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let h = netlink::connect().await.unwrap();
                f(&h).await
            })
        })
        .unwrap()
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = netns::delete(&self.0);
    }
}

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn host_routes_touch_only_routes_of_our_protocol() {
    let ns = Bare::new("routes");
    // Two veth pairs (the kernel may lack the dummy driver), both ends up: carrier.
    for (dev, peer) in [("d0", "p0"), ("d1", "p1")] {
        ns.ip(&format!("link add {dev} type veth peer name {peer}"));
        ns.ip(&format!("link set {peer} up"));
        ns.ip(&format!("link set {dev} up"));
    }
    let (d0, d1) = ns.netlink(async |_| {
        (
            netlink::ifindex("d0").unwrap(),
            netlink::ifindex("d1").unwrap(),
        )
    });
    // Routes of others: a static and a boot /128, ours in another table, another protocol's
    // /128 to the same address as one we will be asked for.
    ns.ip("-6 route add 2001:db8::1/128 dev d0 proto static");
    ns.ip("-6 route add 2001:db8::2/128 dev d0 proto boot");
    ns.ip("-6 route add 2001:db8::3/128 dev d0 proto 110 table 100");
    ns.ip("-6 route add 2001:db8::/64 dev d1 proto static");
    let others = |ns: &Bare| {
        let mut all = ns.ip("-6 route show table all");
        all.retain(|c| c != '\r');
        all.lines()
            .filter(|l| {
                l.starts_with("2001:db8::") && !l.contains("proto 110 ") || l.contains("table 100")
            })
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let before = others(&ns);
    assert_eq!(before.len(), 4, "{before:?}");

    let outcome = ns.netlink(async |h| {
        let mut out = Vec::new();
        out.push(routes::add_host_route(h, a("2001:db8::10"), d0).await);
        out.push(routes::add_host_route(h, a("2001:db8::11"), d1).await);
        // Again: already there, ours: fine.
        out.push(routes::add_host_route(h, a("2001:db8::10"), d0).await);
        let listed = routes::own_routes(h).await.unwrap();
        // Someone else's route to that address: left alone, and an error.
        let taken = routes::add_host_route(h, a("2001:db8::1"), d0).await;
        // Deleting "ours" where only someone else's is: nothing happens.
        out.push(routes::del_host_route(h, a("2001:db8::2"), d0).await);
        (out, listed, taken)
    });
    let (out, mut listed, taken) = outcome;
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    listed.sort();
    assert_eq!(
        listed,
        vec![(a("2001:db8::10"), d0), (a("2001:db8::11"), d1)]
    );
    let err = taken
        .expect_err("a static route to the address exists")
        .to_string();
    assert!(
        err.contains("2001:db8::1/128") && err.contains("left alone"),
        "{err}"
    );
    let shown = ns.ip("-6 route show proto 110");
    assert!(
        shown.contains("2001:db8::10 dev d0") && shown.contains("2001:db8::11 dev d1"),
        "{shown}"
    );
    assert_eq!(others(&ns), before, "a route of another protocol changed");

    // Flushing one interface, then all: only ours, only in the main table.
    let (one, rest, left) = ns.netlink(async |h| {
        let one = routes::flush_own_routes(h, Some(d0)).await.unwrap();
        let after_one = routes::own_routes(h).await.unwrap();
        let rest = routes::flush_own_routes(h, None).await.unwrap();
        (one, rest, after_one)
    });
    assert_eq!((one, rest), (1, 1));
    assert_eq!(left, vec![(a("2001:db8::11"), d1)]);
    assert_eq!(ns.ip("-6 route show proto 110").trim(), "");
    assert_eq!(others(&ns), before, "a route of another protocol changed");
}

// ---------------------------------------------------------------------------------------
// The SLAAC topology: guests behind br0, the daemon run with `-i eth0 --slaac br0`.

/// How long a guest may take to autoconfigure once the daemon runs: its router solicitation
/// is answered within a second, then one second of duplicate address detection; the rest is
/// room for a loaded machine.
const CONFIGURED_WITHIN: Duration = Duration::from_secs(20);
/// The issue's bound for a gone station: no answer and no route within 30 s.
const GONE_WITHIN: Duration = Duration::from_secs(30);
/// Once its route is gone, an address is no longer the host's to answer for: the router's
/// traffic would leave by the uplink again. Room for the daemon to notice, no more.
const UNANSWERED_AFTER_ROUTE: Duration = Duration::from_secs(3);

fn uplink_prefix() -> ipnet::Ipv6Net {
    lab::UPLINK_PREFIX.parse().unwrap()
}

/// The bridge's link-local address (from its fixed MAC, EUI-64): the guests' router.
fn bridge_link_local() -> String {
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

fn start(topo: &Topology) -> Daemon {
    topo.start_daemon(exe(), &["--slaac", "br0"])
        .unwrap_or_else(|e| panic!("starting the daemon with --slaac br0: {e}"))
}

/// Guest `n`'s stable (or temporary) address from the uplink's /64, once usable; panics
/// with what the guest and the daemon show if it does not come.
fn configured(topo: &Topology, daemon: &Daemon, n: usize, temporary: bool) -> Ipv6Addr {
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
fn replies(topo: &Topology, ns: &str, src: Option<&str>, dst: &str, within: Duration) -> bool {
    wait_until(within, || {
        topo.ping_in(ns, src, dst, 2)
            .map(|(_, received)| received > 0)
            .unwrap_or(false)
    })
}

/// The router and the Internet stand-in reach `addr` (through the anti-spoof filter: the
/// router resolves it with a solicitation the daemon answers).
fn assert_reachable_from_outside(topo: &Topology, daemon: &Daemon, addr: &str) {
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
fn solicit_router(topo: &Topology, n: usize, tries: u32) -> std::process::Output {
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

fn has_route(topo: &Topology, addr: Ipv6Addr) -> bool {
    topo.host_slaac_routes()
        .unwrap()
        .iter()
        .any(|(a, dev)| *a == addr && dev == "br0")
}

#[test]
fn without_the_daemon_guests_get_neither_address_nor_router() {
    let topo = slaac_topology(1);
    let out = solicit_router(&topo, 1, 2);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // It did solicit (twice, a second apart), and no advertisement came.
    assert!(
        stdout.contains("Soliciting") && stderr.trim().is_empty(),
        "{stdout}{stderr}"
    );
    assert!(
        !out.status.success(),
        "an advertisement came with no daemon: the topology is broken:\n{stdout}"
    );
    assert_eq!(topo.guest_addrs(1).unwrap(), vec![]);
    assert_eq!(topo.guest_default_route(1).unwrap(), None);
}

#[test]
fn guests_autoconfigure_and_are_reachable_through_the_antispoof_filter() {
    let topo = slaac_topology(2);
    let daemon = start(&topo);
    let router_ll = bridge_link_local();
    for n in 1..=2 {
        let addr = configured(&topo, &daemon, n, false);
        // EUI-64 from the guest's MAC (addr_gen_mode 0): the kernel's own choice.
        let route = topo.guest_default_route(n).unwrap().unwrap_or_default();
        assert!(
            route.contains(&format!("via {router_ll} dev eth0")) && route.contains("proto ra"),
            "guest {n}'s default route: {route:?}"
        );
        let addr = addr.to_string();
        assert_reachable_from_outside(&topo, &daemon, &addr);
        // And the guest reaches out, to the router and beyond it.
        for dst in [GATEWAY, INTERNET_ADDR] {
            assert!(
                replies(
                    &topo,
                    &topo.guest(n),
                    Some(&addr),
                    dst,
                    Duration::from_secs(10)
                ),
                "guest {n} ({addr}) does not reach {dst}\n{}",
                daemon.log()
            );
        }
        assert!(
            has_route(&topo, addr.parse().unwrap()),
            "no route of ours to {addr}: {:?}",
            topo.host_slaac_routes()
        );
    }
    // Guest to guest, through the host (L=0: nothing is on-link for the guests).
    let other = configured(&topo, &daemon, 2, false).to_string();
    assert!(replies(
        &topo,
        &topo.guest(1),
        None,
        &other,
        Duration::from_secs(10)
    ));

    // Guest 2's temporary (privacy) address works too, both ways.
    let temporary = configured(&topo, &daemon, 2, true).to_string();
    assert_reachable_from_outside(&topo, &daemon, &temporary);
    assert!(
        replies(
            &topo,
            &topo.guest(2),
            Some(&temporary),
            INTERNET_ADDR,
            Duration::from_secs(10)
        ),
        "guest 2 does not reach the Internet from its temporary address {temporary}\n{}",
        daemon.log()
    );
    assert!(has_route(&topo, temporary.parse().unwrap()));

    // The control socket's status: the interface, its prefix, each station by MAC with its
    // addresses, one route per address, RAs sent.
    let addr1 = configured(&topo, &daemon, 1, false);
    let st = common::status(&daemon);
    let sl = &st.uplinks[0].slaac;
    assert_eq!(sl.len(), 1, "{sl:?}");
    assert_eq!(sl[0].interface, "br0");
    assert_eq!(sl[0].prefixes, vec![lab::UPLINK_PREFIX.to_string()]);
    assert!(
        sl[0]
            .stations
            .get(&lab::guest_mac(1))
            .is_some_and(|a| a.contains(&addr1)),
        "{sl:?}"
    );
    let guest2 = sl[0]
        .stations
        .get(&lab::guest_mac(2))
        .cloned()
        .unwrap_or_default();
    assert!(guest2.contains(&temporary.parse().unwrap()), "{sl:?}");
    assert_eq!(
        sl[0].routes,
        topo.host_slaac_routes().unwrap().len(),
        "{sl:?}"
    );
    let c = &st.uplinks[0].counters;
    assert!(c.ras_sent > 0 && c.slaac_routes_added >= 3, "{c:?}");

    // Routed, never bridged: no guest frame reached the provider link, and no answer of the
    // daemon was dropped for a link-local source.
    assert_eq!(topo.mac_filter_drops().unwrap(), 0);
    assert_eq!(topo.antispoof_drops().unwrap(), 0);

    // A clean stop removes every route it installed.
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
    assert_eq!(topo.host_slaac_routes().unwrap(), vec![], "{}", stopped.log);
}

#[test]
fn the_advertisement_answers_a_solicitation_within_a_second_and_carries_the_uplink() {
    let topo = slaac_topology(1);
    let daemon = start(&topo);
    configured(&topo, &daemon, 1, false);
    let capture = start_capture_with(
        &topo.guest(1),
        "eth0",
        100,
        &[],
        "icmp6 and (ip6[40] == 133 or ip6[40] == 134)",
    );
    let out = solicit_router(&topo, 1, 1);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "no advertisement within 1 s of a solicitation:\n{text}\n{}",
        daemon.log()
    );
    // The delay, from the capture's timestamps: the solicitation, then the next advertisement.
    assert!(capture.wait_for(Duration::from_secs(2), |t| t
        .lines()
        .skip_while(|l| !l.contains("router solicitation"))
        .any(|l| l.contains("router advertisement"))));
    let stamp = |l: &str| {
        l.split_whitespace()
            .next()
            .and_then(|t| t.parse::<f64>().ok())
    };
    let lines: Vec<String> = capture.text().lines().map(str::to_string).collect();
    let rs = lines
        .iter()
        .position(|l| l.contains("router solicitation"))
        .unwrap();
    let ra = lines[rs..]
        .iter()
        .find(|l| l.contains("router advertisement"))
        .unwrap();
    let delay = stamp(ra).unwrap() - stamp(&lines[rs]).unwrap();
    eprintln!("RS answered after {:.1} ms", delay * 1000.0);
    assert!(
        delay <= 1.0,
        "RS answered after {delay:.3} s:\n{}",
        capture.text()
    );
    assert!(
        daemon.counters().rs_answered >= 1,
        "{:?}",
        daemon.counters()
    );

    // What it says (RFC 4861 4.2, 6.2): from the bridge's link-local address, a router for
    // some time, the uplink's MTU and source MAC, the uplink's /64 with A=1, L=0.
    let has = |needle: &str| {
        text.lines().any(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .contains(needle)
        })
    };
    assert!(has(&format!("from {}", bridge_link_local())), "{text}");
    assert!(has(&format!("MTU : {} bytes", lab::UPLINK_MTU)), "{text}");
    assert!(
        has(&format!(
            "Source link-layer address: {}",
            lab::GUEST_BRIDGE_MAC.to_uppercase()
        )),
        "{text}"
    );
    assert!(has(&format!("Prefix : {}", lab::UPLINK_PREFIX)), "{text}");
    assert!(
        has("On-link : No") && has("Autonomous address conf.: Yes"),
        "{text}"
    );
    let lifetime = text
        .lines()
        .find(|l| l.starts_with("Router lifetime"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u32>().ok());
    assert!(
        lifetime.is_some_and(|l| l > 0),
        "router lifetime {lifetime:?}:\n{text}"
    );
}

#[test]
fn dns_servers_from_the_file_are_advertised() {
    let topo = slaac_topology(1);
    let scratch = common::Scratch::new("slaac-dns");
    let config = scratch.path("ndp-responder.toml");
    std::fs::write(
        &config,
        "[[uplink]]\ninterface = \"eth0\"\n\n[[uplink.rule]]\nmode = \"slaac\"\ninterface = \"br0\"\ndns = [\"2001:db8:ff::53\"]\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let daemon = topo
        .start_daemon_args(exe(), &["-c", &config])
        .unwrap_or_else(|e| panic!("starting with {config}: {e}"));
    configured(&topo, &daemon, 1, false);
    let out = solicit_router(&topo, 1, 2);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("Recursive DNS server") && l.contains("2001:db8:ff::53")),
        "{text}"
    );
}

#[test]
fn a_removed_guest_stops_being_answered_and_its_route_goes() {
    let mut topo = slaac_topology(2);
    let daemon = start(&topo);
    let gone = configured(&topo, &daemon, 1, false);
    let stays = configured(&topo, &daemon, 2, false);
    assert_reachable_from_outside(&topo, &daemon, &gone.to_string());
    assert!(has_route(&topo, gone));

    topo.remove_guest(1).unwrap();
    let started = Instant::now();
    assert!(
        wait_until(GONE_WITHIN, || !has_route(&topo, gone)),
        "the route to the removed guest {gone} is still there after {GONE_WITHIN:?}: {:?}\n{}",
        topo.host_slaac_routes(),
        daemon.log()
    );
    eprintln!(
        "route to the removed guest gone after {:?}",
        started.elapsed()
    );
    // Nobody answers for it on the provider link any more (the router's NS goes unanswered):
    // at once after the route went (what is answered must be routed downstream), and within
    // the same 30 s of the guest's removal.
    let mut answer = None;
    let within = UNANSWERED_AFTER_ROUTE.min(GONE_WITHIN.saturating_sub(started.elapsed()));
    let unanswered = wait_until(within, || {
        topo.router_forget(&gone.to_string()).unwrap();
        answer = common::solicit(&topo, &gone.to_string());
        answer.is_none()
    });
    assert!(
        unanswered,
        "{gone} is still answered {:?} after its guest went, its route gone: {answer:?}; status {:?}\n{}",
        started.elapsed(),
        daemon.status(),
        daemon.log()
    );
    eprintln!(
        "removed guest no longer answered after {:?}",
        started.elapsed()
    );
    // The other guest is untouched.
    assert!(has_route(&topo, stays));
    assert_reachable_from_outside(&topo, &daemon, &stays.to_string());
}

#[test]
fn an_address_in_use_upstream_fails_duplicate_detection_in_the_guest() {
    let topo = slaac_topology(1);
    let daemon = start(&topo);
    configured(&topo, &daemon, 1, false);
    // The other station's address (only the station itself answers: the daemon relays the
    // guest's check upstream), the gateway's and the host's own uplink address.
    for taken in [NEIGHBOUR_ADDR, GATEWAY, lab::HOST_ADDR] {
        topo.guest_add_addr(1, taken).unwrap();
        let failed = wait_until(Duration::from_secs(5), || {
            topo.guest_addrs(1)
                .unwrap()
                .iter()
                .any(|a| a.addr.to_string() == taken && a.dadfailed)
        });
        assert!(
            failed,
            "the guest's duplicate address detection for {taken} did not fail: {:?}\n{}",
            topo.guest_addrs(1),
            daemon.log()
        );
        assert!(!has_route(&topo, taken.parse().unwrap()));
        // The guest's operator removes it, as one does after a failed check (a failed
        // address the guest keeps would shadow the real holder for the guest itself).
        topo.exec(
            &topo.guest(1),
            &[
                "ip",
                "-6",
                "addr",
                "del",
                &format!("{taken}/128"),
                "dev",
                "eth0",
            ],
        )
        .unwrap();
    }
    // Counted: the other station's address relayed upstream, the gateway's and the host's
    // defended at once; the failed one remembered.
    let st = common::status(&daemon);
    let c = &st.uplinks[0].counters;
    assert!(c.dad_relayed >= 1 && c.dad_defended >= 2, "{c:?}");
    assert!(
        st.uplinks[0].slaac[0]
            .dad_failed
            .contains(&NEIGHBOUR_ADDR.parse().unwrap()),
        "{:?}",
        st.uplinks[0].slaac
    );
    // The host never answers for the other station's address: the station does.
    topo.router_forget(NEIGHBOUR_ADDR).unwrap();
    let answer = common::solicit(&topo, NEIGHBOUR_ADDR).unwrap_or_default();
    assert!(
        !answer.contains(lab::HOST_MAC),
        "the host answered for {NEIGHBOUR_ADDR}: {answer}"
    );
    // A free address passes the same check and is then reachable.
    let free = "2001:db8:1::abcd";
    topo.guest_add_addr(1, free).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || topo
            .guest_addrs(1)
            .unwrap()
            .iter()
            .any(|a| a.addr.to_string() == free && a.usable())),
        "{free} did not become usable: {:?}",
        topo.guest_addrs(1)
    );
    assert_reachable_from_outside(&topo, &daemon, free);
}

#[test]
fn restarting_the_daemon_keeps_the_guests_reachable_and_clears_stale_routes() {
    let topo = slaac_topology(2);
    let daemon = start(&topo);
    let addrs: Vec<String> = (1..=2)
        .map(|n| configured(&topo, &daemon, n, false).to_string())
        .collect();
    for a in &addrs {
        assert_reachable_from_outside(&topo, &daemon, a);
    }

    // A clean restart (SIGTERM, start again).
    daemon.stop().unwrap();
    let daemon = start(&topo);
    for a in &addrs {
        assert_reachable_from_outside(&topo, &daemon, a);
    }

    // A crash: SIGKILL leaves the routes; the next start removes stale ones of its own (a
    // route of ours to an address nobody has), relearns the guests and keeps the routes of
    // others.
    daemon.signal(libc::SIGKILL);
    let host = topo.host();
    topo.exec(
        &host,
        &[
            "ip",
            "-6",
            "route",
            "add",
            "2001:db8:1::dead/128",
            "dev",
            "br0",
            "proto",
            "110",
        ],
    )
    .unwrap();
    topo.exec(
        &host,
        &[
            "ip",
            "-6",
            "route",
            "add",
            "2001:db8:1::beef/128",
            "dev",
            "br0",
            "proto",
            "static",
        ],
    )
    .unwrap();
    drop(daemon);
    let daemon = start(&topo);
    let dead: Ipv6Addr = "2001:db8:1::dead".parse().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || !has_route(&topo, dead)),
        "the stale route to {dead} stayed: {:?}\n{}",
        topo.host_slaac_routes(),
        daemon.log()
    );
    for a in &addrs {
        assert_reachable_from_outside(&topo, &daemon, a);
    }
    let statics = topo
        .exec(&host, &["ip", "-6", "route", "show", "proto", "static"])
        .unwrap();
    assert!(String::from_utf8_lossy(&statics.stdout).contains("2001:db8:1::beef dev br0"));
}

/// `doctor -i eth0 --json ARGS` in the host namespace: (exit code, report).
fn doctor(topo: &Topology, args: &[&str]) -> (i32, serde_json::Value) {
    let mut full = vec![common::EXE, "doctor", "-i", "eth0", "--json"];
    full.extend_from_slice(args);
    let out = topo.try_exec(&topo.host(), &full).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

/// The findings of `check` in a report, as (severity, message).
fn findings(report: &serde_json::Value, check: &str) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn doctor_checks_what_the_slaac_mode_needs() {
    let topo = slaac_topology(1);
    let host = topo.host();
    // A ready host: nothing to fix, and it says what it would share.
    let (code, report) = doctor(&topo, &["--slaac", "br0"]);
    assert_eq!(code, 0, "{report:#}");
    assert!(
        findings(&report, "slaac_prefix")
            .iter()
            .any(|(s, m)| s == "ok" && m.contains("sharing 2001:db8:1::/64 of eth0")),
        "{report:#}"
    );
    // Our routes are listed, one elsewhere is a stray; routes of others are not ours.
    topo.exec(&host, &["ip", "link", "add", "br9", "type", "bridge"])
        .unwrap();
    topo.exec(&host, &["ip", "link", "set", "br9", "up"])
        .unwrap();
    for (addr, dev, proto) in [
        ("2001:db8:1::5", "br0", "110"),
        ("2001:db8:1::6", "br9", "110"),
        ("2001:db8:1::7", "br0", "static"),
    ] {
        topo.exec(
            &host,
            &["ip", "-6", "route", "add", addr, "dev", dev, "proto", proto],
        )
        .unwrap();
    }
    let (code, report) = doctor(&topo, &["--slaac", "br0"]);
    assert_eq!(code, 1, "{report:#}");
    let routes = findings(&report, "slaac_routes");
    assert!(
        routes.contains(&(
            "ok".into(),
            "1 /128 route(s) of ndp-responder (proto 110) on br0: 2001:db8:1::5".into()
        )),
        "{routes:?}"
    );
    assert!(
        routes
            .iter()
            .any(|(s, m)| s == "warning" && m.contains("2001:db8:1::6 leaves by br9")),
        "{routes:?}"
    );
    // The same from a configuration file with a slaac rule: its interface is checked, and
    // its /64, on-link on the uplink by design, is not judged as a container prefix.
    let scratch = common::Scratch::new("slaac-doctor");
    let config = scratch.s("ndp-responder.toml");
    std::fs::write(
        &config,
        "[[uplink]]\ninterface = \"eth0\"\n\n[[uplink.rule]]\nmode = \"slaac\"\ninterface = \"br0\"\n",
    )
    .unwrap();
    let out = topo
        .try_exec(&host, &[common::EXE, "doctor", "-c", &config, "--json"])
        .unwrap();
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let report = &reports[0];
    assert!(findings(report, "route").is_empty(), "{report:#}");
    assert!(
        findings(report, "slaac_prefix")
            .iter()
            .any(|(s, m)| s == "ok" && m.contains("with the hosts on br0")),
        "{report:#}"
    );

    // Forwarding off, an address of the /64 on br0, a guests' interface that does not exist.
    topo.sysctl(&host, "net/ipv6/conf/all/forwarding", "0")
        .unwrap();
    topo.exec(
        &host,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8:1::b/64",
            "dev",
            "br0",
            "nodad",
        ],
    )
    .unwrap();
    let (_, report) = doctor(&topo, &["--slaac", "br0", "--slaac", "nosuch0"]);
    assert_eq!(
        findings(&report, "forwarding")[0].0,
        "problem",
        "{report:#}"
    );
    assert_eq!(
        findings(&report, "slaac_on_link")[0].0,
        "problem",
        "{report:#}"
    );
    assert!(
        findings(&report, "slaac_interface")
            .iter()
            .any(|(s, m)| s == "problem" && m.contains("'nosuch0'")),
        "{report:#}"
    );
}

#[test]
fn another_guests_address_fails_detection_and_is_not_taken_over() {
    let topo = slaac_topology(2);
    let daemon = start(&topo);
    let first = configured(&topo, &daemon, 1, false);
    configured(&topo, &daemon, 2, false);
    // Guest 2 claims guest 1's address: first come, first served while guest 1 is alive.
    topo.guest_add_addr(2, &first.to_string()).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || topo
            .guest_addrs(2)
            .unwrap()
            .iter()
            .any(|a| a.addr == first && a.dadfailed)),
        "guest 2 took {first}: {:?}\n{}",
        topo.guest_addrs(2),
        daemon.log()
    );
    let st = common::status(&daemon);
    let stations = &st.uplinks[0].slaac[0].stations;
    assert!(
        stations
            .get(&lab::guest_mac(1))
            .is_some_and(|a| a.contains(&first)),
        "{stations:?}"
    );
    assert!(
        !stations
            .get(&lab::guest_mac(2))
            .is_some_and(|a| a.contains(&first)),
        "{stations:?}"
    );
    // Guest 1 keeps it, reachable from outside.
    assert_reachable_from_outside(&topo, &daemon, &first.to_string());
}

#[test]
fn another_router_advertising_on_the_guests_bridge_is_seen_and_counted() {
    use ndp_responder::ndp::{self, router::RouterAdvert};
    let topo = slaac_topology(2);
    let daemon = start(&topo);
    configured(&topo, &daemon, 2, false);
    // Guest 2 runs a router advertisement daemon of its own (router lifetime 0: it does not
    // offer itself as a default router, so the other guest's routing is unchanged).
    let mac: ndp::MacAddr = lab::guest_mac(2).parse().unwrap();
    let ra = RouterAdvert {
        eth_src: mac,
        eth_dst: ndp::multicast_mac(&ndp::ALL_NODES),
        ip_src: "fe80::ff:fe00:302".parse().unwrap(),
        ip_dst: ndp::ALL_NODES,
        hop_limit: 255,
        code: 0,
        cur_hop_limit: 64,
        managed: false,
        other: false,
        router_lifetime: 0,
        reachable_time: 0,
        retrans_timer: 0,
        source_lladdr: Some(mac),
        mtu: None,
        prefixes: vec![],
        rdnss: None,
        dnssl: None,
    };
    let frame = ra.to_frame().unwrap();
    assert_eq!(common::send_frames_in(&topo.guest(2), "eth0", &[frame]), 1);
    let seen = common::wait_status(&daemon, Duration::from_secs(5), |st| {
        st.uplinks[0].counters.foreign_ras >= 1
            && st.uplinks[0].slaac[0]
                .other_ra_senders
                .iter()
                .any(|s| s.contains("fe80::ff:fe00:302"))
    });
    assert!(
        seen,
        "the other router was not reported: {:?}\n{}",
        daemon.status(),
        daemon.log()
    );
}

#[test]
fn a_prefix_added_to_the_uplink_is_advertised_and_one_that_goes_is_deprecated() {
    let topo = slaac_topology(1);
    let daemon = start(&topo);
    configured(&topo, &daemon, 1, false);
    // The provider adds a second /64 on the link (the host gets an address in it): followed.
    let second: ipnet::Ipv6Net = "2001:db8:2::/64".parse().unwrap();
    topo.exec(
        &topo.host(),
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8:2::2/64",
            "dev",
            "eth0",
            "nodad",
        ],
    )
    .unwrap();
    let found = topo
        .wait_guest_addr(1, second, false, CONFIGURED_WITHIN)
        .unwrap();
    let Some(addr) = found else {
        panic!(
            "no address from {second} after the uplink got one: {:?}\n{}",
            topo.guest_addrs(1),
            daemon.log()
        );
    };
    // It goes away: advertised with lifetime 0, so the guest stops preferring the address
    // at once (RFC 4862 5.5.3 e keeps it valid two more hours, deprecated).
    topo.exec(
        &topo.host(),
        &["ip", "-6", "addr", "del", "2001:db8:2::2/64", "dev", "eth0"],
    )
    .unwrap();
    assert!(
        wait_until(CONFIGURED_WITHIN, || topo
            .guest_addrs(1)
            .unwrap()
            .iter()
            .any(|a| a.addr == addr && a.deprecated)),
        "{addr} is not deprecated after {second} left the uplink: {:?}\n{}",
        topo.guest_addrs(1),
        daemon.log()
    );
    // The first prefix is untouched.
    assert!(topo
        .guest_addrs(1)
        .unwrap()
        .iter()
        .any(|a| uplink_prefix().contains(&a.addr) && a.usable() && !a.deprecated));
}
