//! A hostile network, end to end in namespaces: forged advertisements from off-link and on
//! the link, solicitations that name a group as their source, floods from spoofed sources, a
//! scan of unknown addresses, a burst of new addresses. Every forged frame is sent by the test
//! itself; what the daemon did is read through its control socket (`status --json`) and from
//! the kernel's tables, never from its log.

mod common;

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use common::{
    capability_lines, exe, host_answers, router_ns, send_frames_in, send_paced_in, topology,
};
use ndp_responder::ndp::{self, MacAddr, NeighborAdvert, NeighborSolicit};
use ndp_responder::status::{Counters, Reasons};
use ndp_responder::tools::lab::{
    container_addr, wait_until, CONTAINER_PREFIX, GATEWAY, HOST_ADDR, HOST_MAC, INTERNET_ADDR,
    ROUTER_MAC,
};

const ATTACKER_MAC: &str = "02:00:00:00:66:66";

fn total(map: &Reasons) -> u64 {
    map.values().sum()
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn na_frame(na: &NeighborAdvert) -> Vec<u8> {
    let mut buf = vec![0u8; ndp::MAX_EMIT_LEN];
    let len = na.emit(&mut buf).unwrap();
    buf.truncate(len);
    buf
}

fn ns_frame(ns: &NeighborSolicit) -> Vec<u8> {
    let mut buf = vec![0u8; ndp::MAX_EMIT_LEN];
    let len = ns.emit(&mut buf).unwrap();
    buf.truncate(len);
    buf
}

/// The advertisement an attacker forges for the gateway, as it reaches the host's link.
fn forged_gateway_na(hop_limit: u8, ip_src: &str, tlla: &str) -> Vec<u8> {
    na_frame(&NeighborAdvert {
        // What arrives from off-link was forwarded by the router: its MAC.
        eth_src: mac(ROUTER_MAC),
        eth_dst: mac(HOST_MAC),
        ip_src: ip(ip_src),
        ip_dst: ip(HOST_ADDR),
        hop_limit,
        code: 0,
        router: true,
        solicited: true,
        override_flag: true,
        target: ip(GATEWAY),
        target_lladdr: Some(mac(tlla)),
    })
}

#[test]
fn forged_advertisements_never_rewrite_the_gateway_entry() {
    let topo = topology(1);
    let daemon = topo
        .start_daemon(exe(), &["-n", CONTAINER_PREFIX, "--gateway-keepalive=1s"])
        .unwrap();
    // The keepalive runs and the kernel's entry holds the router's MAC.
    assert!(
        wait_until(Duration::from_secs(5), || {
            daemon.counters().keepalives_sent >= 1
                && common::gateway_entry(&topo).contains(ROUTER_MAC)
        }),
        "no keepalive: {}\n{}",
        common::gateway_entry(&topo),
        daemon.log()
    );
    // From the Internet: the router forwarded it, so its hop limit is below 255. The kernel
    // ignores these (RFC 4861 7.1.2); so must the daemon, whose socket sees them first.
    let off_link = [
        forged_gateway_na(254, INTERNET_ADDR, ATTACKER_MAC),
        forged_gateway_na(254, INTERNET_ADDR, "ff:ff:ff:ff:ff:ff"),
        forged_gateway_na(254, GATEWAY, ATTACKER_MAC),
    ];
    let frames: Vec<Vec<u8>> = off_link.iter().cycle().take(3000).cloned().collect();
    let router = topo.router();
    let sent = std::thread::scope(|scope| {
        // 3000 forgeries over about 3 s, across several keepalive rounds.
        let flood = scope.spawn(|| send_paced_in(&router, "r0", &frames, Duration::from_millis(1)));
        let mut seen = Vec::new();
        while !flood.is_finished() {
            let entry = common::gateway_entry(&topo);
            if entry.contains("66:66") || entry.contains("ff:ff:ff:ff:ff:ff") {
                seen.push(entry);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            seen.is_empty(),
            "the gateway entry took a forged MAC: {seen:?}"
        );
        flood.join().unwrap()
    });
    assert_eq!(sent, frames.len());
    // Every forgery was seen and refused, by reason.
    let refused = |c: &Counters, reason: &str| c.adverts_refused.get(reason).copied().unwrap_or(0);
    assert!(
        wait_until(Duration::from_secs(5), || total(
            &daemon.counters().adverts_refused
        ) >= frames.len() as u64),
        "{:?}",
        daemon.counters()
    );
    assert!(refused(&daemon.counters(), "hop_limit") >= frames.len() as u64);

    // On the link the kernel itself takes what a neighbour claims (NDP trusts the link), but
    // the daemon adds nothing of its own: a group address as the gateway's MAC, or an answer
    // that does not come from the gateway's address, is refused.
    let on_link = [
        forged_gateway_na(255, GATEWAY, "ff:ff:ff:ff:ff:ff"),
        forged_gateway_na(255, "fe80::66", ATTACKER_MAC),
    ];
    let frames: Vec<Vec<u8>> = on_link.iter().cycle().take(200).cloned().collect();
    send_paced_in(&router, "r0", &frames, Duration::from_millis(5));
    assert!(
        wait_until(Duration::from_secs(5), || {
            let c = daemon.counters();
            refused(&c, "target_lladdr") >= 100 && refused(&c, "not_from_target") >= 100
        }),
        "{:?}",
        daemon.counters()
    );
    // The keepalive puts the real gateway back (its answers carry the O flag).
    assert!(
        wait_until(Duration::from_secs(5), || common::gateway_entry(&topo)
            .contains(ROUTER_MAC)),
        "{}",
        common::gateway_entry(&topo)
    );
    assert!(host_answers(&topo, &container_addr(1)));
    daemon.stop().unwrap();
}

#[test]
fn a_probe_is_confirmed_only_by_an_answer() {
    let topo = topology(1);
    let daemon = topo
        .start_daemon(
            exe(),
            &["--probe", CONTAINER_PREFIX, "--probe-negative-ttl", "1s"],
        )
        .unwrap();
    let absent = "2001:db8:1::d:99";
    // A container forges advertisements for an address nobody has, while the router asks for
    // it: unsolicited ones, and ones that crossed a router.
    let forged = |hop_limit: u8| NeighborAdvert {
        eth_src: mac("02:00:00:00:77:77"),
        eth_dst: ndp::multicast_mac(&ndp::ALL_NODES),
        ip_src: ip(absent),
        ip_dst: ndp::ALL_NODES,
        hop_limit,
        code: 0,
        router: false,
        solicited: false,
        override_flag: true,
        target: ip(absent),
        target_lladdr: Some(mac("02:00:00:00:77:77")),
    };
    let frames = [na_frame(&forged(255)), na_frame(&forged(64))];
    let ask = router_ns(absent);
    let container = topo.container(1);
    let router = topo.router();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        send_frames_in(&router, "r0", std::slice::from_ref(&ask));
        for _ in 0..10 {
            send_frames_in(&container, "eth0", &frames);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let c = daemon.counters();
    assert!(c.probes_sent > 0, "nothing was probed: {c:?}");
    assert_eq!(c.answered, 0, "answered for an absent address: {c:?}");
    assert!(
        c.adverts_refused.get("not_solicited").copied().unwrap_or(0) > 0,
        "{c:?}"
    );
    // A real station still confirms its probe.
    assert!(host_answers(&topo, &container_addr(1)), "{}", daemon.log());
    daemon.stop().unwrap();
}

#[test]
fn a_solicitation_naming_a_group_as_its_source_is_not_answered() {
    let topo = topology(1);
    let daemon = topo.start_daemon(exe(), &["-n", CONTAINER_PREFIX]).unwrap();
    let ct = container_addr(1);
    let mut to_everyone =
        NeighborSolicit::resolution(mac(ROUTER_MAC), ip("fe80::ff:fe00:101"), ip(&ct));
    to_everyone.source_lladdr = Some(MacAddr::BROADCAST);
    let router = topo.router();
    send_frames_in(&router, "r0", &[ns_frame(&to_everyone)]);
    send_frames_in(&router, "r0", &[router_ns(&ct)]);
    assert!(
        wait_until(Duration::from_secs(5), || daemon.counters().ns_seen >= 2),
        "{}",
        daemon.log()
    );
    let c = daemon.counters();
    assert_eq!(c.answered, 1, "only the valid solicitation: {c:?}");
    assert_eq!(c.invalid.get("source_lladdr"), Some(&1), "{c:?}");
    daemon.stop().unwrap();
}

#[test]
fn spoofed_sources_cannot_starve_the_gateway() {
    let topo = topology(1);
    let daemon = topo
        .start_daemon(
            exe(),
            &[
                "-n",
                CONTAINER_PREFIX,
                "--rate-limit",
                "100",
                "--rate-limit-per-source",
                "50",
            ],
        )
        .unwrap();
    // The host talks to its gateway, as every host does: the kernel knows its MAC.
    topo.exec(&topo.host(), &["ping", "-6", "-c", "1", "-W", "2", GATEWAY])
        .unwrap();
    assert!(common::gateway_entry(&topo).contains(ROUTER_MAC));
    let ct = container_addr(1);
    // An on-link neighbour floods solicitations for the container from thousands of spoofed
    // sources, the gateway's own addresses among them.
    let frames: Vec<Vec<u8>> = (0..20_000u32)
        .map(|i| {
            let source = match i % 4 {
                0 => ip("fe80::ff:fe00:101"),
                1 => ip(GATEWAY),
                _ => Ipv6Addr::from(0xfe80_0000_0000_0000_0000_0000_0000_0000u128 | u128::from(i)),
            };
            ns_frame(&NeighborSolicit::resolution(
                mac(ATTACKER_MAC),
                source,
                ip(&ct),
            ))
        })
        .collect();
    let router = topo.router();
    std::thread::scope(|scope| {
        let flood =
            scope.spawn(|| send_paced_in(&router, "r0", &frames, Duration::from_micros(200)));
        // Let the flood drain the buckets first.
        assert!(wait_until(Duration::from_secs(5), || daemon
            .counters()
            .rate_limited
            > 100));
        let mut answered = 0;
        for _ in 0..3 {
            if host_answers(&topo, &ct) {
                answered += 1;
            }
        }
        let still_flooding = !flood.is_finished();
        flood.join().unwrap();
        assert!(
            still_flooding,
            "the flood ended before the checks: the test proves nothing"
        );
        assert_eq!(
            answered,
            3,
            "the gateway was starved: {:?}",
            daemon.counters()
        );
    });
    daemon.stop().unwrap();
}

#[test]
fn new_addresses_are_announced_at_a_bounded_pace() {
    let topo = topology(1);
    let daemon = topo
        .start_daemon(exe(), &["--auto", CONTAINER_PREFIX])
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || daemon
        .status()
        .is_some()));
    let before = daemon.counters().announcements_sent;
    // A hundred container addresses appear at once.
    let batch: String = (0x100..0x164)
        .map(|i| format!("route add 2001:db8:1::d:{i:x}/128 dev br0\n"))
        .collect();
    let dir = std::env::temp_dir().join(format!("ndp-hostile-batch-{}", std::process::id()));
    std::fs::write(&dir, batch).unwrap();
    topo.exec(&topo.host(), &["ip", "-6", "-batch", dir.to_str().unwrap()])
        .unwrap();
    let _ = std::fs::remove_file(&dir);
    let added = Instant::now();
    // Paced at 10 new addresses a second (each announced three times, 1 s apart): within
    // the first 2 s at most 20 new ones started, 40 announcements with their repeats.
    let mut most = 0;
    while added.elapsed() < Duration::from_secs(2) {
        most = most.max(daemon.counters().announcements_sent - before);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(most > 0, "nothing was announced: {}", daemon.log());
    assert!(most <= 40, "{most} announcements in the first 2 s");
    assert!(
        daemon
            .counters()
            .withheld
            .get("announcement_paced")
            .copied()
            .unwrap_or(0)
            >= 90,
        "{:?}",
        daemon.counters()
    );
    daemon.stop().unwrap();
}

#[test]
fn a_scan_of_unknown_addresses_cannot_starve_a_live_container() {
    let topo = topology(1);
    let daemon = topo
        .start_daemon(exe(), &["--probe", CONTAINER_PREFIX])
        .unwrap();
    // About 1,000 fresh addresses a second, each held for 1.5 s of probes: far more than
    // the 256 probes in flight the cache allows.
    let frames: Vec<Vec<u8>> = (0..6000u32)
        .map(|i| router_ns(&format!("2001:db8:1::d:{:x}", 0x1000 + i)))
        .collect();
    let router = topo.router();
    let ct = container_addr(1);
    std::thread::scope(|scope| {
        let scan = scope.spawn(|| send_paced_in(&router, "r0", &frames, Duration::from_millis(1)));
        assert!(
            wait_until(Duration::from_secs(5), || daemon.counters().probes_sent
                > 500),
            "{:?}",
            daemon.counters()
        );
        // The container never spoke: only a probe tells the daemon it is there.
        let answered = (0..3).filter(|_| host_answers(&topo, &ct)).count();
        let still_scanning = !scan.is_finished();
        scan.join().unwrap();
        assert!(
            still_scanning,
            "the scan ended before the checks: the test proves nothing"
        );
        assert_eq!(answered, 3, "{:?}\n{}", daemon.counters(), daemon.log());
    });
    daemon.stop().unwrap();
}

/// CapEff of every thread of `pid`.
fn effective_caps(pid: u32) -> Vec<String> {
    capability_lines(pid)
        .into_iter()
        .filter(|(key, _)| key == "CapEff")
        .map(|(_, value)| value)
        .collect()
}

#[test]
fn cap_net_admin_and_cap_bpf_are_kept_only_for_the_keepalive_and_the_fast_path() {
    let topo = topology(1);
    // CAP_NET_RAW is bit 13 (0x2000), CAP_NET_ADMIN bit 12 (0x1000), CAP_BPF bit 39, CAP_PERFMON bit 38.
    for (args, want) in [
        (vec!["-n", CONTAINER_PREFIX], "000000c000003000"),
        (
            vec!["-n", CONTAINER_PREFIX, "--no-fast-path"],
            "0000000000002000",
        ),
        (
            vec![
                "-n",
                CONTAINER_PREFIX,
                "--no-fast-path",
                "--gateway-keepalive=1s",
            ],
            "0000000000003000",
        ),
    ] {
        let daemon = topo.start_daemon(exe(), &args).unwrap();
        assert!(host_answers(&topo, &container_addr(1)), "{}", daemon.log());
        let caps = effective_caps(daemon.pid());
        assert!(!caps.is_empty());
        assert!(caps.iter().all(|c| c == want), "{args:?}: {caps:?}");
        daemon.stop().unwrap();
    }
}

#[test]
fn a_scan_relayed_by_the_gateway_cannot_crowd_out_live_containers() {
    // A remote scan of a static prefix reaches the host as the router's own solicitations, at
    // the scan's rate; the live container under the auto rule must stay answered.
    let topo = topology(1);
    let daemon = topo
        .start_daemon(
            exe(),
            &[
                "-n",
                CONTAINER_PREFIX,
                "--auto",
                "2001:db8:1::d:0/120",
                "--rate-limit-per-source",
                "50",
            ],
        )
        .unwrap();
    topo.exec(&topo.host(), &["ping", "-6", "-c", "1", "-W", "2", GATEWAY])
        .unwrap();
    assert!(common::gateway_entry(&topo).contains(ROUTER_MAC));
    topo.container_speaks(1).unwrap();
    let ct = container_addr(1);
    assert!(wait_until(Duration::from_secs(5), || {
        daemon.status().is_some_and(|s| {
            s.uplinks[0]
                .answering
                .iter()
                .any(|a| a.address.to_string() == ct && a.why == "auto")
        })
    }));
    // The router solicits unknown addresses of the static /112 (outside the auto /120).
    let frames: Vec<Vec<u8>> = (0..10_000u32)
        .map(|i| router_ns(&format!("2001:db8:1::d:{:x}", 0x1000 + (i % 0xe000))))
        .collect();
    let router = topo.router();
    std::thread::scope(|scope| {
        let scan =
            scope.spawn(|| send_paced_in(&router, "r0", &frames, Duration::from_micros(300)));
        assert!(
            wait_until(Duration::from_secs(5), || daemon
                .counters()
                .withheld
                .get("rate_limit_gateway_other")
                .is_some_and(|n| *n > 100)),
            "{:?}",
            daemon.counters()
        );
        let answered = (0..3).filter(|_| host_answers(&topo, &ct)).count();
        let still_scanning = !scan.is_finished();
        scan.join().unwrap();
        assert!(
            still_scanning,
            "the scan ended before the checks: the test proves nothing"
        );
        assert_eq!(answered, 3, "{:?}", daemon.counters());
    });
    let c = daemon.counters();
    assert_eq!(c.withheld.get("rate_limit_gateway_live"), None, "{c:?}");
    daemon.stop().unwrap();
}
