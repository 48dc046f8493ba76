//! End-to-end tests of the SLAAC mode (`--slaac IFACE`, issue 17): guests on the host's bridge
//! autoconfigure addresses from the uplink's /64 with the Linux kernel as their stack (nothing
//! configured by hand inside them), and are reachable from the provider's router and the
//! Internet stand-in through the hypervisor's anti-spoof filter. The host side without guests
//! (the routes API, doctor) is tests/slaac_host.rs; the helpers are tests/common/slaac.rs.
//!
//! State is read through the kernel's tables (`ip`), packet captures and the daemon's control
//! socket, never its log (which is only printed when an assertion fails).

mod common;

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use common::slaac::*;
use common::{exe, slaac_topology, start_capture_with};
use ndp_responder::tools::lab::{self, wait_until, GATEWAY, INTERNET_ADDR, NEIGHBOUR_ADDR};

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
    let topo = slaac_topology(2);
    let daemon = start(&topo);
    configured(&topo, &daemon, 2, false);
    // Guest 2 runs a router advertisement daemon of its own (router lifetime 0: it does not
    // offer itself as a default router, so the other guest's routing is unchanged).
    let frame = quiet_advert(&lab::guest_mac(2), "fe80::ff:fe00:302", None);
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

#[test]
fn dns_servers_are_relayed_from_the_uplinks_router() {
    let topo = slaac_topology(1);
    let daemon = start(&topo);
    configured(&topo, &daemon, 1, false);
    // The provider's router advertises a DNS server on the uplink (RDNSS only: router lifetime
    // 0 and no prefix, so the host's own routing is unchanged).
    let frame = quiet_advert(
        lab::ROUTER_MAC,
        "fe80::ff:fe00:101",
        Some("2001:db8:ff::35"),
    );
    assert_eq!(common::send_frames_in(&topo.router(), "r0", &[frame]), 1);
    // The guests hear it from the host (asked with a solicitation: the answer is due at once).
    let mut text = String::new();
    let relayed = wait_until(Duration::from_secs(10), || {
        text = String::from_utf8_lossy(&solicit_router(&topo, 1, 1).stdout).into_owned();
        text.lines()
            .any(|l| l.contains("Recursive DNS server") && l.contains("2001:db8:ff::35"))
    });
    assert!(relayed, "not relayed:\n{text}\n{}", daemon.log());
}

#[test]
fn a_guest_cannot_make_the_host_answer_for_more_than_16_addresses() {
    use ndp_responder::decide::slaac::Refused;
    let topo = slaac_topology(1);
    let daemon = start(&topo);
    let stable = configured(&topo, &daemon, 1, false);
    // Twenty more, by hand (each with its duplicate address detection): past the cap of 16
    // per MAC, the rest are refused and counted, and never answered upstream.
    let extra: Vec<String> = (1..=20).map(|i| format!("2001:db8:1::c:{i:x}")).collect();
    for addr in &extra {
        topo.guest_add_addr(1, addr).unwrap();
    }
    let mut last = None;
    let capped = wait_until(Duration::from_secs(15), || {
        let Some(st) = daemon.status() else {
            return false;
        };
        let refused = common::by(&st.uplinks[0].counters.slaac_refused, Refused::PerMacCap);
        let learned = st.uplinks[0].slaac[0]
            .stations
            .get(&lab::guest_mac(1))
            .map_or(0, Vec::len);
        last = Some((learned, refused));
        learned == 16 && refused >= 5
    });
    assert!(
        capped,
        "(learned, refused for the cap) = {last:?}; expected 16 learned and the other 5 of 21 refused\n{}",
        daemon.log()
    );
    let st = common::status(&daemon);
    let learned = st.uplinks[0].slaac[0].stations[&lab::guest_mac(1)].clone();
    assert!(learned.contains(&stable), "{learned:?}");
    assert_eq!(st.uplinks[0].slaac[0].routes, 16);
    // A refused one is not answered upstream.
    let refused = extra
        .iter()
        .find(|a| !learned.contains(&a.parse().unwrap()))
        .unwrap();
    topo.router_forget(refused).unwrap();
    let answer = common::solicit(&topo, refused);
    assert!(
        !answer.as_deref().is_some_and(|l| l.contains(lab::HOST_MAC)),
        "{refused}, past the cap, answered: {answer:?}"
    );
}
