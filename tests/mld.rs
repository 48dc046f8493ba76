//! Through a bridge that snoops MLD (issue 15): the hypervisor's bridge forwards a group's
//! multicast only to the ports that reported it, its querier asks every few seconds, and the
//! host's port gets no multicast that nobody reported (`mcast_flood off`). The router's
//! solicitation for a container's address goes to that address's solicited-node group, so the
//! container is reachable only if the daemon joined the group (the kernel then reports it).
//! State is read through the daemon's control socket and the kernel's tables, never its log.

mod common;

use std::time::Duration;

use common::{exe, status, topology, wait_status};
use ndp_responder::link::groups::{Groups, JoinRefused, MAX_GROUPS};
use ndp_responder::status::UplinkStatus;
use ndp_responder::tools::lab::{container_addr, wait_until, Daemon, Topology, GATEWAY, HOST_ADDR};
use ndp_responder::tools::netns;

/// A static rule at the bound: the group of each of its 256 addresses is joined.
const STATIC_120: &str = "2001:db8:1::e:0/120";
/// The address in it that a container holds.
const STATIC_ADDR: &str = "2001:db8:1::e:5";

/// The groups the hypervisor's bridge has learned on its port to the host (`bridge mdb`).
fn snooped_on_host_port(topo: &Topology) -> String {
    let out = topo
        .exec(
            &topo.hypervisor(),
            &["bridge", "mdb", "show", "dev", "hvbr"],
        )
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("port to-host "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `dst` answers the router's pings (each a fresh address resolution); up to `within`.
fn reachable(topo: &Topology, dst: &str, within: Duration) -> bool {
    wait_until(within, || {
        topo.router_forget(dst).unwrap();
        topo.ping_from_router(GATEWAY, dst, 2).unwrap()
    })
}

fn uplink(daemon: &Daemon) -> UplinkStatus {
    status(daemon).uplinks.into_iter().next().unwrap()
}

/// The solicited-node groups the daemon should hold: the static /120's 256, plus one per
/// address it answers by auto rule (their groups differ from the /120's).
fn expected_groups(u: &UplinkStatus) -> usize {
    256 + u.answering.iter().filter(|a| a.why == "auto").count()
}

#[test]
fn containers_are_reached_through_an_mld_snooping_bridge() {
    let mut topo = topology(3);
    let host = topo.host();
    // Container 3 also holds an address of the static /120, routed to the bridge.
    topo.exec(
        &topo.container(3),
        &[
            "ip",
            "addr",
            "add",
            &format!("{STATIC_ADDR}/128"),
            "dev",
            "eth0",
            "nodad",
        ],
    )
    .unwrap();
    topo.exec(
        &host,
        &["ip", "-6", "route", "add", STATIC_120, "dev", "br0"],
    )
    .unwrap();
    common::snoop(&topo);
    // The host's own address: its kernel reports its group when the querier asks.
    assert!(
        wait_until(Duration::from_secs(10), || snooped_on_host_port(&topo)
            .contains("ff02::1:ff00:2")),
        "the bridge never learned the host's own group:\n{}",
        snooped_on_host_port(&topo)
    );
    assert!(
        reachable(&topo, HOST_ADDR, Duration::from_secs(5)),
        "the host's own address is unreachable through the snooping bridge"
    );
    topo.container_speaks(1).unwrap();
    topo.container_speaks(2).unwrap();
    let daemon = topo
        .start_daemon(exe(), &["--auto", "2001:db8:1::d:0/112", "-n", STATIC_120])
        .unwrap();

    // The daemon announces each new address three times, a second apart, with an NS to the
    // gateway that leaves the router a neighbour entry for it (reached then by unicast, which
    // snooping does not stop). Once they are over, every resolution below starts afresh
    // with a multicast solicitation (`reachable` deletes the router's entry first).
    let auto = |u: &UplinkStatus| u.answering.iter().filter(|a| a.why == "auto").count();
    assert!(
        wait_status(&daemon, Duration::from_secs(10), |s| {
            let u = &s.uplinks[0];
            auto(u) == 3 && u.counters.announcements_sent >= 3 * 3
        }),
        "the announcements of d:1, d:2, d:3 did not end: {:?}",
        daemon.uplink()
    );

    // The containers under the auto rule (they spoke: the kernel knows them) and the one
    // under the static /120 are reached.
    for ct in [
        container_addr(1),
        container_addr(2),
        STATIC_ADDR.to_string(),
    ] {
        assert!(
            reachable(&topo, &ct, Duration::from_secs(5)),
            "{ct} is unreachable through the snooping bridge; the bridge learned on the host's port:\n{}\nstatus: {:?}\n{}",
            snooped_on_host_port(&topo),
            daemon.uplink(),
            daemon.log()
        );
    }
    let u = uplink(&daemon);
    eprintln!(
        "mld: {} groups joined, answering {:?}",
        u.mld_groups,
        u.answering
            .iter()
            .map(|a| (a.address, a.why.as_str()))
            .collect::<Vec<_>>()
    );
    assert_eq!(u.mld_groups, expected_groups(&u), "{u:?}");
    assert!(u.counters.mld_refused.is_empty(), "{u:?}");
    let snooped = snooped_on_host_port(&topo);
    for group in [
        "ff02::1:ff0d:2",
        "ff02::1:ff0d:3",
        "ff02::1:ff0e:5",
        "ff02::1:ff0e:ff",
    ] {
        assert!(snooped.contains(group), "{group} not learned:\n{snooped}");
    }

    // A container removed: its group is left, on the daemon's count and in the kernel's
    // memberships on the uplink. (Container 1 may be forgotten with it: a bridge without a
    // MAC of its own takes its ports' lowest, so removing that port changes br0's MAC, and
    // the kernel then flushes br0's neighbour entries; container 1 is known again once it
    // speaks.)
    let before = u.mld_groups;
    let gone = container_addr(2);
    topo.remove_container(2).unwrap();
    assert!(
        wait_status(&daemon, Duration::from_secs(5), |s| {
            let u = &s.uplinks[0];
            !u.answering.iter().any(|a| a.address.to_string() == gone)
                && u.mld_groups == expected_groups(u)
        }),
        "the removed container's group was not left: {:?}\n{}",
        daemon.uplink(),
        daemon.log()
    );
    let u = uplink(&daemon);
    assert!(u.mld_groups < before, "{before} -> {u:?}");
    eprintln!(
        "mld: {} groups joined after the removal, answering {:?}",
        u.mld_groups,
        u.answering.iter().map(|a| a.address).collect::<Vec<_>>()
    );
    let memberships = topo
        .exec(&host, &["ip", "-6", "maddr", "show", "dev", "eth0"])
        .unwrap();
    let memberships = String::from_utf8_lossy(&memberships.stdout);
    assert!(!memberships.contains("ff02::1:ff0d:3"), "{memberships}");
    assert!(memberships.contains("ff02::1:ff0e:5"), "{memberships}");

    // Stopped: every group is left with the daemon's sockets.
    daemon.stop().unwrap();
    let memberships = topo
        .exec(&host, &["ip", "-6", "maddr", "show", "dev", "eth0"])
        .unwrap();
    let memberships = String::from_utf8_lossy(&memberships.stdout);
    assert!(!memberships.contains("ff02::1:ff0d:2"), "{memberships}");
    assert!(!memberships.contains("ff02::1:ff0e:5"), "{memberships}");
}

/// The bound, against the kernel: groups past [`MAX_GROUPS`] are refused and reported once,
/// more than one socket's worth are joined, and leaving frees room.
#[test]
fn joins_stop_at_the_bound_and_are_reported_once() {
    let topo = topology(0);
    let host = topo.host();
    netns::run_in(&host, || {
        // SAFETY: the name is a valid NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(c"eth0".as_ptr()) };
        assert_ne!(index, 0);
        let group = |n: usize| {
            let n = n as u32;
            std::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | (n >> 16) as u16, n as u16)
        };
        let mut groups = Groups::new(index);
        let wanted: std::collections::BTreeSet<_> = (0..MAX_GROUPS + 6).map(group).collect();
        let synced = groups.sync(&wanted);
        assert_eq!(synced.joined, MAX_GROUPS, "{synced:?}");
        assert_eq!(synced.refused.len(), 6, "{synced:?}");
        assert!(synced
            .refused
            .iter()
            .all(|(_, why)| *why == JoinRefused::Limit));
        assert_eq!(groups.len(), MAX_GROUPS);
        // Still wanted, still refused: not reported again.
        let again = groups.sync(&wanted);
        assert_eq!((again.joined, again.left, again.refused.len()), (0, 0, 0));
        // Ten fewer wanted: ten left, and the six refused find room.
        let fewer: std::collections::BTreeSet<_> = wanted.iter().skip(10).copied().collect();
        let synced = groups.sync(&fewer);
        assert_eq!((synced.joined, synced.left), (6, 10), "{synced:?}");
        assert_eq!(groups.len(), MAX_GROUPS - 4);
        assert!(groups.contains(&group(MAX_GROUPS + 5)));
        drop(groups);
    })
    .unwrap();
}
