//! Upstream care in namespaces: the gateway keepalive follows a router that changes its MAC
//! and keeps the gateway's entry REACHABLE when the provider ignores link-local solicitations,
//! without leaving a pinned entry behind; announcements reach the router at their spacing.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{exe, nft, topology, wait_status};
use ndp_responder::tools::lab::{
    container_addr, wait_until, Topology, CONTAINER_PREFIX, GATEWAY, INTERNET_ADDR,
};

/// Ping the Internet stand-in from container 1 (forwarded by the host): true if it answered.
fn container_reaches_internet(topo: &Topology) -> bool {
    topo.try_exec(
        &topo.container(1),
        &[
            "ping",
            "-6",
            "-n",
            "-q",
            "-c",
            "1",
            "-W",
            "1",
            INTERNET_ADDR,
        ],
    )
    .unwrap()
    .status
    .success()
}

#[test]
fn router_mac_change_is_followed_within_one_keepalive_interval() {
    let topo = topology(1);
    // The router reaches the container through the daemon; no keepalive yet.
    let plain = topo.start_daemon(exe(), &["-n", CONTAINER_PREFIX]).unwrap();
    assert!(container_reaches_internet(&topo), "the topology is broken");
    let router = topo.router();
    topo.exec(
        &router,
        &["ip", "link", "set", "r0", "address", "02:00:00:00:01:99"],
    )
    .unwrap();

    // Without the keepalive the host keeps sending to the old MAC for a while (the kernel
    // re-checks only after its reachable time, ~30 s).
    let start = Instant::now();
    let mut recovered_alone = false;
    while start.elapsed() < Duration::from_secs(3) {
        recovered_alone |= container_reaches_internet(&topo);
    }
    assert!(
        !recovered_alone,
        "the host recovered by itself: the test proves nothing"
    );
    plain.stop().unwrap();

    let daemon = topo
        .start_daemon(exe(), &["-n", CONTAINER_PREFIX, "--gateway-keepalive=1s"])
        .unwrap();
    let started = Instant::now();
    let recovered = wait_until(Duration::from_secs(3), || container_reaches_internet(&topo));
    assert!(
        recovered,
        "not recovered within a keepalive interval:\n{}\n{}",
        common::gateway_entry(&topo),
        daemon.log()
    );
    eprintln!("recovered {:?} after the daemon started", started.elapsed());
    assert!(
        common::gateway_entry(&topo).contains("02:00:00:00:01:99"),
        "{}",
        common::gateway_entry(&topo)
    );
    // The daemon followed it too: the keepalive's answer came from the new MAC.
    let gateway: std::net::Ipv6Addr = GATEWAY.parse().unwrap();
    assert!(
        wait_status(&daemon, Duration::from_secs(3), |s| s.uplinks[0]
            .gateway_macs
            .get(&gateway)
            .is_some_and(|m| m == "02:00:00:00:01:99")),
        "{:?}",
        daemon.status()
    );
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success());
    let entry = common::gateway_entry(&topo);
    assert!(
        !entry.contains("PERMANENT") && !entry.contains("NOARP"),
        "left pinned: {entry}"
    );
}

#[test]
fn gateway_entry_stays_reachable_when_the_provider_ignores_link_local_solicitations() {
    let topo = topology(1);
    // The hypervisor drops every NS the host sends from its link-local address.
    nft(
        &topo.hypervisor(),
        "table bridge nollns {\n chain forward {\n  type filter hook forward priority 0; policy accept;\n  iifname \"to-host\" icmpv6 type nd-neighbor-solicit ip6 saddr fe80::/10 drop\n }\n}\n",
    );
    // Short reachable time on the host, so that the entry's fate shows within seconds. The
    // kernel draws it from 0.5-1.5 times the base: at least 2 s, against a keepalive of 1 s
    // (the shortest allowed; jittered, at most 1.1 s).
    let host = topo.host();
    topo.sysctl(&host, "net/ipv6/neigh/eth0/base_reachable_time_ms", "4000")
        .unwrap();
    topo.sysctl(&host, "net/ipv6/neigh/eth0/delay_first_probe_time", "1")
        .unwrap();
    // Container traffic is forwarded: the kernel solicits the gateway from link-local.
    let keep_talking = |seconds: u64| {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &topo.container(1),
                "ping",
                "-6",
                "-n",
                "-q",
                "-i",
                "0.2",
                "-w",
            ])
            .arg(seconds.to_string())
            .arg(INTERNET_ADDR)
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    // Sample the entry every 100 ms for `seconds`; returns the states seen.
    let states = |seconds: u64| {
        let mut seen = std::collections::BTreeSet::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(seconds) {
            let entry = common::gateway_entry(&topo);
            seen.insert(
                entry
                    .split_whitespace()
                    .last()
                    .unwrap_or("NONE")
                    .to_string(),
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        seen
    };

    // Without the keepalive the entry goes stale (within 6 s) and its probes are dropped.
    let mut ping = keep_talking(8);
    let without = states(8);
    let _ = ping.wait();
    assert!(
        without.iter().any(|s| s != "REACHABLE"),
        "the entry never aged: {without:?}"
    );

    let daemon = topo
        .start_daemon(exe(), &["-n", CONTAINER_PREFIX, "--gateway-keepalive=1s"])
        .unwrap();
    assert!(wait_until(Duration::from_secs(3), || {
        common::gateway_entry(&topo).ends_with("REACHABLE")
    }));
    let mut ping = keep_talking(4);
    let with = states(4);
    let _ = ping.wait();
    assert_eq!(with, ["REACHABLE".to_string()].into(), "{}", daemon.log());
    // It was the keepalive that kept it so: it sent solicitations, and the gateway's answer
    // was accepted.
    let eth0 = common::status(&daemon).uplinks.remove(0);
    assert!(eth0.counters.keepalives_sent > 0, "{:?}", eth0.counters);
    assert!(
        eth0.gateway_macs.contains_key(&GATEWAY.parse().unwrap()),
        "{eth0:?}"
    );
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
    let entry = common::gateway_entry(&topo);
    assert!(
        !entry.contains("PERMANENT") && !entry.contains("NOARP"),
        "left pinned: {entry}"
    );
}

#[test]
fn pinned_gateway_entries_are_left_alone() {
    let topo = topology(0);
    let host = topo.host();
    topo.exec(
        &host,
        &[
            "ip",
            "-6",
            "neigh",
            "replace",
            GATEWAY,
            "lladdr",
            "02:00:00:00:01:01",
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    )
    .unwrap();
    let daemon = topo
        .start_daemon(exe(), &["-n", CONTAINER_PREFIX, "--gateway-keepalive=1s"])
        .unwrap();
    let gateway: std::net::Ipv6Addr = GATEWAY.parse().unwrap();
    assert!(
        wait_status(&daemon, Duration::from_secs(3), |s| s.uplinks[0]
            .pinned_gateways
            .contains(&gateway)),
        "{:?}\n{}",
        daemon.status(),
        daemon.log()
    );
    // Over more than two keepalive intervals (1 s, jittered up to 1.1 s), not one
    // solicitation for it is sent.
    let solicited = wait_until(Duration::from_millis(2500), || {
        daemon.counters().keepalives_sent > 0
    });
    assert!(
        !solicited,
        "the pinned gateway was solicited: {:?}",
        daemon.counters()
    );
    daemon.stop().unwrap();
    assert!(
        common::gateway_entry(&topo).contains("PERMANENT"),
        "someone else's pinned entry was changed"
    );
}

#[test]
fn announcements_reach_the_router_at_the_configured_spacing() {
    let topo = topology(1);
    let ct = container_addr(1);
    let daemon = topo
        .start_daemon(
            exe(),
            &["--auto", CONTAINER_PREFIX, "--announce-interval", "1s"],
        )
        .unwrap();
    // Capture unsolicited NAs for the container's address arriving at the router, and its
    // NS to the gateway, from before it is known.
    let capture = common::start_capture(
        &topo.router(),
        "r0",
        1000,
        &format!(
            "icmp6 and ((ip6[40] == 136 and ip6 dst ff02::1) or (ip6[40] == 135 and ip6 src {ct}))"
        ),
    );
    topo.container_speaks(1).unwrap();
    // A new address is first announced three times; then three periodic ones, measured.
    let advert = format!("neighbor advertisement, tgt is {ct}");
    assert!(
        capture.wait_for(Duration::from_secs(10), |t| t
            .lines()
            .filter(|l| l.contains(&advert))
            .count()
            >= 6),
        "{}\n{}",
        capture.text(),
        daemon.log()
    );
    let text = capture.text();
    let times = |what: &str| -> Vec<f64> {
        text.lines()
            .filter(|l| l.contains(what))
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect()
    };
    let adverts = times(&advert)[3..].to_vec();
    let solicits = times(&format!(
        "{ct} > ff02::1:ff00:1: ICMP6, neighbor solicitation, who has {GATEWAY}"
    ));
    assert!(
        adverts.len() >= 3,
        "announcements seen:\n{text}\n{}",
        daemon.log()
    );
    assert!(
        !solicits.is_empty(),
        "no NS from the address to the gateway:\n{text}"
    );
    for pair in adverts.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            // 0.9-1.1 s by the daemon's jitter, plus room for a loaded machine's timers.
            (0.6..=1.4).contains(&gap),
            "spacing {gap:.3} s, want about 1 s:\n{text}"
        );
    }
    daemon.stop().unwrap();
}
