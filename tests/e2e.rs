//! End-to-end tests: the real daemon, the real Linux kernel as the provider's router, and a
//! bridge with nftables rules as the hypervisor's anti-spoof filter, all in network namespaces
//! this test creates (see `ndp_responder::tools::lab`). They need root; without it they fail and say so.

mod common;

use std::time::Duration;

use common::{
    adverts, by, exe, never_answered, start_capture, status, topology, wait_counters, EXE,
};
use ndp_responder::decide::policy::Ignored;
use ndp_responder::tools::lab::{
    self, container_addr, Topology, CONTAINER_PREFIX, GATEWAY, HOST_ADDR, HOST_MAC, INTERNET_ADDR,
};

#[test]
fn container_is_reachable_through_the_antispoof_filter_for_both_solicitor_sources() {
    let topo = topology(1);
    let ct = container_addr(1);
    let daemon = topo.start_daemon(exe(), &["-n", CONTAINER_PREFIX]).unwrap();
    let capture = start_capture(&topo.router(), "r0", 1000, "icmp6 and ip6[40] == 136");
    // An answer for the container from the container's address, to `dst` (a prefix of it).
    let answered_to = |dst: &str| {
        capture.wait_for(Duration::from_secs(3), |text| {
            adverts(text)
                .iter()
                .any(|(s, d, t)| *s == ct && d.starts_with(dst) && *t == ct)
        })
    };

    // Traffic from the "Internet" is forwarded by the router: it solicits from link-local.
    topo.router_forget(&ct).unwrap();
    assert!(
        topo.ping_from_router(INTERNET_ADDR, &ct, 3).unwrap(),
        "ping via link-local solicitation failed; daemon log:\n{}",
        daemon.log()
    );
    assert!(
        answered_to("fe80::"),
        "no answer from {ct} to the router's link-local address:\n{}",
        capture.text()
    );

    // The router's own global address as the source: it solicits from 2001:db8:1::1.
    topo.router_forget(&ct).unwrap();
    assert!(
        topo.ping_from_router(GATEWAY, &ct, 3).unwrap(),
        "ping via global solicitation failed; daemon log:\n{}",
        daemon.log()
    );
    assert!(
        answered_to(GATEWAY),
        "no answer from {ct} to the router's global address:\n{}",
        capture.text()
    );
    let entry = topo.router_neighbour(&ct).unwrap().unwrap_or_default();
    assert!(entry.contains(HOST_MAC), "router's entry: {entry}");

    let stopped = daemon.stop().unwrap();
    assert!(
        stopped.status.success(),
        "daemon exit after SIGTERM: {}",
        stopped.status
    );
    // One answer per resolution, no more.
    let last = stopped.last_status.expect("the status before the stop");
    assert_eq!(last.uplinks[0].counters.answered, 2, "{}", stopped.log);
}

#[test]
fn without_the_daemon_or_with_link_local_source_the_container_is_unreachable() {
    let topo = topology(1);
    let ct = container_addr(1);

    assert!(
        !topo.ping_from_router(GATEWAY, &ct, 2).unwrap(),
        "the container answered with nobody responding: the topology is broken"
    );

    let daemon = topo
        .start_daemon(exe(), &["-n", CONTAINER_PREFIX, "--source", "link-local"])
        .unwrap();
    topo.router_forget(&ct).unwrap();
    let drops_before = topo.antispoof_drops().unwrap();
    // What the host sends into the hypervisor's bridge, before its filter.
    let capture = start_capture(
        &topo.hypervisor(),
        "to-host",
        1000,
        "icmp6 and ip6[40] == 136",
    );
    assert!(
        !topo.ping_from_router(INTERNET_ADDR, &ct, 2).unwrap(),
        "link-local-sourced NAs got through: the anti-spoof filter is not real"
    );
    // The daemon did answer, from link-local, and the filter dropped it.
    assert!(
        capture.wait_for(Duration::from_secs(3), |text| adverts(text)
            .iter()
            .any(|(s, _, t)| s.starts_with("fe80::") && *t == ct)),
        "no answer from link-local left the host:\n{}\n{}",
        capture.text(),
        daemon.log()
    );
    assert!(daemon.counters().answered > 0, "{}", daemon.log());
    assert!(topo.antispoof_drops().unwrap() > drops_before);
    daemon.stop().unwrap();
}

#[test]
fn reachability_survives_the_routers_unicast_nud_reprobes() {
    let topo = topology(1);
    let ct = container_addr(1);
    let router = topo.router();
    let daemon = topo.start_daemon(exe(), &["-n", CONTAINER_PREFIX]).unwrap();
    topo.router_forget(&ct).unwrap();
    assert!(topo.ping_from_router(INTERNET_ADDR, &ct, 3).unwrap());
    let before = daemon.counters();
    // Every solicitation and advertisement on the router's link from now on.
    let capture = start_capture(
        &router,
        "r0",
        10_000,
        "icmp6 and (ip6[40] == 135 or ip6[40] == 136)",
    );

    // Keep traffic flowing from the Internet stand-in while the router re-probes.
    let pinger = std::thread::scope(|scope| {
        let pings = scope.spawn(|| topo.ping_stats(INTERNET_ADDR, &ct, 20).unwrap());
        for round in 1..=3 {
            // Put the router's entry into PROBE: the kernel's NUD then sends unicast NS to
            // the cached MAC every retrans_time (1 s) and declares the neighbour FAILED after
            // three unanswered probes. (Forcing it keeps the test fast; letting reachable_time
            // run out leads to the same state machine.)
            topo.exec(
                &router,
                &[
                    "ip", "-6", "neigh", "change", &ct, "dev", "r0", "lladdr", HOST_MAC, "nud",
                    "probe",
                ],
            )
            .unwrap();
            let confirmed = lab::wait_until(Duration::from_secs(5), || {
                let entry = topo.router_neighbour(&ct).unwrap().unwrap_or_default();
                assert!(
                    !entry.contains("FAILED"),
                    "NUD failed in round {round}: {entry}"
                );
                entry.contains("REACHABLE")
            });
            assert!(
                confirmed,
                "round {round}: entry not confirmed:\n{}",
                daemon.log()
            );
        }
        pings.join().unwrap()
    });
    let (sent, received) = pinger;
    assert_eq!(sent, 20);
    assert_eq!(
        received,
        sent,
        "pings lost across re-probes:\n{}",
        daemon.log()
    );

    // The router's unicast NUD probes for the container, each answered by the host.
    let who_has = format!("neighbor solicitation, who has {ct},");
    let text = capture.text();
    let unicast = text
        .lines()
        .filter(|l| l.contains(&who_has) && l.contains(&format!(" > {ct}: ")))
        .count();
    let multicast = text
        .lines()
        .filter(|l| l.contains(&who_has) && l.contains(" > ff02::1:ff"))
        .count();
    let answers = adverts(&text).iter().filter(|(_, _, t)| *t == ct).count();
    assert!(unicast >= 3, "fewer than three NUD probes:\n{text}");
    assert!(
        answers >= unicast,
        "not every re-probe was answered:\n{text}"
    );
    let answered = daemon.counters().answered - before.answered;
    assert!(
        answered >= unicast as u64,
        "the daemon answered {answered} of {unicast} probes"
    );
    // Answered NUD probes keep the entry: the router never fell back to multicast resolution.
    assert_eq!(multicast, 0, "router had to resolve again:\n{text}");
    daemon.stop().unwrap();
}

#[test]
fn never_answers_for_the_uplinks_own_address_or_the_gateway() {
    let topo = topology(1);
    // A rule that covers the whole link, gateway and host included.
    let daemon = topo
        .start_daemon(exe(), &["-n", "2001:db8:1::/64"])
        .unwrap();

    // The host's own address: the kernel answers, the daemon must stay out. (The kernel
    // answers from the same MAC, so only the daemon's own count can tell them apart.)
    let before = daemon.counters();
    topo.router_forget(HOST_ADDR).unwrap();
    assert!(topo.ping_from_router(GATEWAY, HOST_ADDR, 2).unwrap());
    let after = wait_counters(&daemon, Duration::from_secs(3), |c| {
        by(&c.ignored, Ignored::UplinkAddress) > by(&before.ignored, Ignored::UplinkAddress)
    })
    .unwrap_or_else(|c| panic!("the NS for the host's address was not ignored as its own: {c:?}"));
    assert_eq!(after.answered, before.answered, "{after:?}");

    // Someone on the link resolves the gateway: nobody but the router may answer.
    never_answered(&topo, &daemon, GATEWAY, Ignored::Gateway);

    // With the usual router-advertisement setup the default route points at the router's
    // link-local address, so its global address is no gateway: still never answered.
    topo.exec(
        &topo.host(),
        &[
            "ip",
            "-6",
            "route",
            "replace",
            "default",
            "via",
            "fe80::ff:fe00:101",
            "dev",
            "eth0",
        ],
    )
    .unwrap();
    let router_ll: std::net::Ipv6Addr = "fe80::ff:fe00:101".parse().unwrap();
    assert!(common::wait_status(&daemon, Duration::from_secs(3), |s| s
        .uplinks[0]
        .gateways
        .contains(&router_ll)));
    never_answered(&topo, &daemon, GATEWAY, Ignored::RoutedToUplink);

    // Other addresses in the rule are answered, proving the rule was live.
    let ct = container_addr(1);
    assert!(topo.ping_from_router(GATEWAY, &ct, 2).unwrap());
    daemon.stop().unwrap();
}

#[test]
fn duplicate_address_detection_for_a_container_address_is_defended() {
    let topo = topology(1);
    let router = topo.router();
    let ct = container_addr(1);
    let daemon = topo.start_daemon(exe(), &["-n", CONTAINER_PREFIX]).unwrap();

    let capture = start_capture(&router, "r0", 1000, "icmp6 and ip6[40] == 136");
    // The router tries to take the container's address: its DAD probe comes from ::.
    topo.sysctl(&router, "net/ipv6/conf/r0/accept_dad", "1")
        .unwrap();
    topo.exec(
        &router,
        &["ip", "addr", "add", &format!("{ct}/64"), "dev", "r0"],
    )
    .unwrap();
    let failed = lab::wait_until(Duration::from_secs(5), || {
        let out = topo
            .exec(&router, &["ip", "-6", "addr", "show", "dev", "r0"])
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("dadfailed")
    });
    assert!(failed, "DAD was not defended:\n{}", daemon.log());
    // Answered to all nodes (RFC 4861 7.2.4: the prober has no address yet).
    assert!(
        capture.wait_for(Duration::from_secs(3), |text| adverts(text)
            .iter()
            .any(|(_, d, t)| d == "ff02::1" && *t == ct)),
        "{}",
        capture.text()
    );
    daemon.stop().unwrap();
}

#[test]
fn bad_values_are_named_and_exit_non_zero() {
    let topo = topology(0);
    let host = topo.host();
    let run = |args: &[&str]| {
        let mut full = vec![EXE];
        full.extend_from_slice(args);
        let out = topo.try_exec(&host, &full).unwrap();
        (out.status, String::from_utf8_lossy(&out.stderr).to_string())
    };

    // An uplink that does not exist is waited for, not an error (tests/field.rs).
    let (status, err) = run(&["-i", "lo", "-n", CONTAINER_PREFIX]);
    assert!(!status.success());
    assert!(err.contains("'lo' has no Ethernet MAC"), "{err}");

    let (status, err) = run(&["-i", "eth0", "-n", "2001:db8:1::d:5/112"]);
    assert!(!status.success());
    assert!(err.contains("did you mean 2001:db8:1::d:0/112"), "{err}");

    // Without CAP_NET_RAW (as nobody, no capabilities).
    let (status, err) = run_as_nobody(&topo, &host, &["-i", "eth0", "-n", CONTAINER_PREFIX]);
    assert!(!status.success());
    assert!(err.contains("run as root or grant CAP_NET_RAW"), "{err}");
}

fn run_as_nobody(topo: &Topology, ns: &str, args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut full = vec![
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        EXE,
    ];
    full.extend_from_slice(args);
    let out = topo.try_exec(ns, &full).unwrap();
    (out.status, String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn frames_for_other_stations_never_reach_the_daemon() {
    use ndp_responder::ndp::{self, MacAddr, NeighborSolicit};

    let topo = topology(1);
    let ct = container_addr(1);
    // Even a promiscuous uplink must not hand other stations' unicast to user space: the BPF
    // program drops PACKET_OTHERHOST frames in the kernel.
    topo.exec(
        &topo.host(),
        &["ip", "link", "set", "eth0", "promisc", "on"],
    )
    .unwrap();
    let daemon = topo.start_daemon(exe(), &["-n", CONTAINER_PREFIX]).unwrap();
    // Unicast NUD probes for our target, but to another station's MAC (flooded by the bridge).
    let target: std::net::Ipv6Addr = ct.parse().unwrap();
    let mut nud = NeighborSolicit::parse(&common::router_ns(&ct)).unwrap();
    nud.eth_dst = MacAddr([2, 0, 0, 0, 9, 9]);
    nud.ip_dst = target;
    let mut buf = vec![0u8; ndp::MAX_EMIT_LEN];
    let len = nud.emit(&mut buf).unwrap();
    buf.truncate(len);
    let other = vec![buf; 50];
    assert_eq!(common::send_frames_in(&topo.router(), "r0", &other), 50);
    // Then a normal solicitation; once it is answered, everything before it was handled.
    let marker = common::router_ns(&ct);
    assert!(lab::wait_until(Duration::from_secs(5), || {
        common::send_frames_in(&topo.router(), "r0", std::slice::from_ref(&marker));
        lab::wait_until(Duration::from_millis(300), || {
            daemon.counters().answered > 0
        })
    }));
    let c = daemon.counters();
    assert_eq!(by(&c.ignored, Ignored::NotAddressedToUs), 0, "{c:?}");
    assert_eq!(
        by(&c.ignored, Ignored::OutgoingOrOtherHost),
        0,
        "the kernel filter let them through: {c:?}"
    );
    // Every solicitation the daemon saw was a marker, and each was answered.
    assert_eq!(c.ns_seen, c.answered, "{c:?}");
    assert!(c.ignored.is_empty() && c.invalid.is_empty(), "{c:?}");
    daemon.stop().unwrap();
}

#[test]
fn a_configuration_file_runs_the_same_daemon() {
    let topo = topology(1);
    let ct = container_addr(1);
    let path = std::env::temp_dir().join(format!("ndpt-config-{}.toml", std::process::id()));
    let text = format!(
        "[[uplink]]\ninterface = \"eth0\"\ngateway_keepalive = \"1s\"\n\n[[uplink.rule]]\nprefix = \"{CONTAINER_PREFIX}\"\nmode = \"static\"\n"
    );
    std::fs::write(&path, text).unwrap();
    let file = path.to_str().unwrap();
    let check = topo
        .try_exec(&topo.host(), &[EXE, "check-config", "-c", file])
        .unwrap();
    assert!(check.status.success());
    assert!(String::from_utf8_lossy(&check.stdout).contains("OK, 1 uplink(s), 1 rule(s)"));

    let daemon = topo.start_daemon_args(exe(), &["-c", file]).unwrap();
    topo.router_forget(&ct).unwrap();
    assert!(
        topo.ping_from_router(INTERNET_ADDR, &ct, 2).unwrap(),
        "{}",
        daemon.log()
    );
    // The keepalive runs: the gateway answered it and its answer was accepted.
    let gateway: std::net::Ipv6Addr = GATEWAY.parse().unwrap();
    assert!(
        common::wait_status(&daemon, Duration::from_secs(3), |s| {
            let u = &s.uplinks[0];
            u.counters.keepalives_sent > 0
                && u.gateway_macs.get(&gateway).map(String::as_str) == Some(lab::ROUTER_MAC)
        }),
        "{:?}\n{}",
        daemon.status(),
        daemon.log()
    );
    assert!(daemon.status().unwrap().config.is_some_and(|c| c == file));
    daemon.stop().unwrap();

    // A broken file is refused with its line, by check-config and by the daemon alike.
    std::fs::write(&path, "[[uplink]]\ninterface = \"eth0\"\nroutr = true\n").unwrap();
    for args in [vec![EXE, "check-config", "-c", file], vec![EXE, "-c", file]] {
        let out = topo.try_exec(&topo.host(), &args).unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{file}:3: ")) && err.contains("routr"),
            "{err}"
        );
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn solicitations_for_targets_outside_every_rule_are_dropped_in_the_kernel() {
    let topo = topology(1);
    let daemon = topo.start_daemon(exe(), &["-n", CONTAINER_PREFIX]).unwrap();
    // 500 solicitations for addresses of the /64 outside the rule, then one inside it.
    let mut frames: Vec<Vec<u8>> = (0..500)
        .map(|i| common::router_ns(&format!("2001:db8:1::e:{i:x}")))
        .collect();
    frames.push(common::router_ns(&container_addr(1)));
    assert_eq!(common::send_frames_in(&topo.router(), "r0", &frames), 501);
    let c = wait_counters(&daemon, Duration::from_secs(5), |c| c.answered >= 1)
        .unwrap_or_else(|c| panic!("the one inside was not answered: {c:?}"));
    // Only the one inside reached user space: the BPF program compared the target with the
    // rule's prefix in the kernel.
    assert_eq!((c.ns_seen, c.answered), (1, 1), "{c:?}");
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
}

#[test]
fn a_solicitation_longer_than_a_receive_ring_slot_is_answered() {
    use ndp_responder::link::RING_FRAME_SIZE;
    let topo = topology(1);
    let ct = container_addr(1);
    let daemon = topo.start_daemon(exe(), &["-n", CONTAINER_PREFIX]).unwrap();
    // Padded to about 1,000 octets: far more than a ring slot holds.
    let frame = long_ns(&ct);
    assert!(frame.len() > RING_FRAME_SIZE);
    assert!(
        lab::wait_until(Duration::from_secs(5), || {
            common::send_frames_in(&topo.router(), "r0", std::slice::from_ref(&frame));
            lab::wait_until(Duration::from_millis(300), || {
                daemon.counters().answered > 0
            })
        }),
        "the long solicitation was not answered:\n{}",
        daemon.log()
    );
    let eth0 = status(&daemon).uplinks.remove(0);
    assert!(eth0.counters.invalid.is_empty(), "{:?}", eth0.counters);
    let entry = eth0.answering.iter().find(|a| a.address.to_string() == ct);
    assert!(
        entry.is_some_and(|a| a.last_answered_secs.is_some()),
        "{eth0:?}"
    );
    daemon.stop().unwrap();
}

/// The router's solicitation for `target`, padded with unknown options (type 250, skipped per
/// RFC 4861 4.6) to about 1,000 octets: longer than a receive ring slot, so the kernel hands
/// it over whole through the socket's queue.
fn long_ns(target: &str) -> Vec<u8> {
    let mut frame = common::router_ns(target);
    while frame.len() < 1000 {
        frame.extend_from_slice(&[250, 8]);
        frame.extend_from_slice(&[0xab; 62]);
    }
    let payload = (frame.len() - 54) as u16;
    frame[18..20].copy_from_slice(&payload.to_be_bytes());
    common::fix_checksum(&mut frame);
    frame
}

#[test]
fn long_solicitations_stay_paired_with_their_copies_after_the_uplink_flaps() {
    let topo = topology(1);
    let daemon = topo.start_daemon(exe(), &["-n", CONTAINER_PREFIX]).unwrap();
    let (a, b) = ("2001:db8:1::d:7", "2001:db8:1::d:8");
    // The answers reaching the router, by target.
    let capture = start_capture(&topo.router(), "r0", 100_000, "icmp6 and ip6[40] == 136");
    let answers = |t: &str| {
        adverts(&capture.text())
            .iter()
            .filter(|(_, _, target)| target == t)
            .count()
    };
    assert!(lab::wait_until(Duration::from_secs(5), || {
        common::send_frames_in(&topo.router(), "r0", &[long_ns(a)]);
        lab::wait_until(Duration::from_millis(300), || answers(a) > 0)
    }));
    // Down and up: the kernel leaves an error (ENETDOWN) pending on the packet socket, which
    // the next receive of a queued copy reports first.
    for state in ["down", "up"] {
        topo.exec(&topo.host(), &["ip", "link", "set", "eth0", state])
            .unwrap();
    }
    let before = answers(a);
    assert!(
        lab::wait_until(Duration::from_secs(10), || {
            common::send_frames_in(&topo.router(), "r0", &[long_ns(a)]);
            lab::wait_until(Duration::from_millis(300), || answers(a) > before)
        }),
        "no long solicitation answered after the flap:\n{}",
        daemon.log()
    );
    // Resent solicitations for a may still be on their way: frames are handled in order, so
    // once a short one (no copy) for a third target is answered, they all have been.
    let c = "2001:db8:1::d:9";
    assert!(
        lab::wait_until(Duration::from_secs(5), || {
            common::send_frames_in(&topo.router(), "r0", &[common::router_ns(c)]);
            lab::wait_until(Duration::from_millis(300), || answers(c) > 0)
        }),
        "the short solicitation for {c} was not answered:\n{}",
        daemon.log()
    );
    // One solicitation for another target: answered for that target, not with a stale copy.
    let a_answers = answers(a);
    assert_eq!(
        common::send_frames_in(&topo.router(), "r0", &[long_ns(b)]),
        1
    );
    assert!(
        lab::wait_until(Duration::from_secs(3), || answers(b) == 1),
        "the solicitation for {b} was not answered:\n{}",
        daemon.log()
    );
    assert_eq!(
        answers(a),
        a_answers,
        "{a} answered again: a stale copy\n{}\n{}",
        capture.text(),
        daemon.log()
    );
}
