//! End-to-end tests of the SLAAC mode's guards (`--slaac IFACE`, issue 17), with the Linux
//! kernel as the guests' stack: what a guest cannot make the host do (answer for an address
//! in use upstream or by another guest, for more than 16 addresses), what ends (a removed
//! guest's answers and route), what survives (a restart, a crash), and another router on the
//! guests' bridge. The guests' addresses and reachability are tests/slaac.rs; the helpers are
//! tests/common/slaac.rs.
//!
//! State is read through the kernel's tables (`ip`), packet captures and the daemon's control
//! socket, never its log (which is only printed when an assertion fails).

mod common;

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use common::slaac::*;
use common::slaac_topology;
use ndp_responder::tools::lab::{self, wait_until, GATEWAY, NEIGHBOUR_ADDR};

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
