//! Following the kernel: auto and probe rules as containers, bridges and the uplink come and
//! go, never answering for what is not behind a downstream interface, and a scan that cannot
//! grow the probe cache. All in namespaces, with the real daemon.

mod common;

use std::time::{Duration, Instant};

use common::{by, exe, never_answered, router_ns, send_frames_in, status, topology, wait_status};
use ndp_responder::decide::policy::Ignored;
use ndp_responder::tools::lab::{
    container_addr, wait_until, Daemon, Topology, CONTAINER_PREFIX, INTERNET_ADDR,
};

fn answers(topo: &Topology, target: &str) -> bool {
    common::host_answers(topo, target)
}

/// Poll (up to `within`) until the daemon lists `target` as answered for `why` (`Some`) or
/// does not list it at all (`None`).
fn listed(daemon: &Daemon, target: &str, why: Option<&str>, within: Duration) -> bool {
    wait_status(daemon, within, |s| {
        let found = s.uplinks[0]
            .answering
            .iter()
            .find(|a| a.address.to_string() == target)
            .map(|a| a.why.clone());
        found.as_deref() == why
    })
}

#[test]
fn auto_follows_containers_as_they_come_and_go() {
    let mut topo = topology(0);
    let daemon = topo
        .start_daemon(exe(), &["--auto", CONTAINER_PREFIX])
        .unwrap();
    let n = topo.add_container().unwrap();
    let configured = Instant::now();
    let ct = container_addr(n);
    topo.container_speaks(n).unwrap();
    assert!(
        listed(&daemon, &ct, Some("auto"), Duration::from_secs(1)),
        "not known within 1 s of its address being configured: {:?}\n{}",
        daemon.status(),
        daemon.log()
    );
    let known_after = configured.elapsed();
    assert!(
        topo.ping_from_router(INTERNET_ADDR, &ct, 2).unwrap(),
        "{}",
        daemon.log()
    );

    topo.remove_container(n).unwrap();
    assert!(
        listed(&daemon, &ct, None, Duration::from_secs(1)),
        "a removed container is still known: {:?}\n{}",
        daemon.status(),
        daemon.log()
    );
    topo.router_forget(&ct).unwrap();
    never_answered(&topo, &daemon, &ct, Ignored::UnknownDownstream);
    eprintln!("auto: known {known_after:?} after the address was configured");
    daemon.stop().unwrap();
}

#[test]
fn auto_never_answers_an_unknown_address_in_a_routed_prefix() {
    let topo = topology(1);
    let daemon = topo
        .start_daemon(exe(), &["--auto", CONTAINER_PREFIX])
        .unwrap();
    // ::d:99 is routed to br0, but nothing there has that address.
    never_answered(
        &topo,
        &daemon,
        "2001:db8:1::d:99",
        Ignored::UnknownDownstream,
    );
    daemon.stop().unwrap();
}

#[test]
fn probe_answers_only_after_the_container_answers_downstream() {
    let mut topo = topology(1);
    let ct = container_addr(1);
    let daemon = topo
        .start_daemon(
            exe(),
            &[
                "--probe",
                CONTAINER_PREFIX,
                "--probe-ttl",
                "2s",
                "--probe-negative-ttl",
                "1s",
            ],
        )
        .unwrap();
    // The container never spoke: only the probe can tell the daemon it is there.
    topo.router_forget(&ct).unwrap();
    assert!(
        topo.ping_from_router(INTERNET_ADDR, &ct, 3).unwrap(),
        "{}",
        daemon.log()
    );
    // Answered because the probe confirmed it.
    assert!(
        listed(&daemon, &ct, Some("probe"), Duration::ZERO),
        "{:?}",
        daemon.status()
    );

    // Nobody has ::d:99: probed, never answered, at any of three attempts over 2 s.
    let absent = "2001:db8:1::d:99";
    let before = daemon.counters();
    let start = Instant::now();
    for attempt in 1..=3 {
        assert!(
            !answers(&topo, absent),
            "{absent} answered at attempt {attempt}"
        );
    }
    assert!(start.elapsed() >= Duration::from_secs(2));
    let after = common::wait_counters(&daemon, Duration::from_secs(3), |c| {
        c.ns_seen >= before.ns_seen + 6
    })
    .unwrap_or_else(|c| panic!("the solicitations for {absent} did not arrive: {c:?}"));
    assert_eq!(after.answered, before.answered, "{after:?}");
    assert!(
        after.probes_sent > before.probes_sent,
        "{absent} was not probed: {after:?}"
    );
    assert!(
        listed(&daemon, absent, None, Duration::ZERO),
        "{:?}",
        daemon.status()
    );

    // Remove the container: once its entry expires (TTL 2 s) it is no longer answered.
    topo.remove_container(1).unwrap();
    let gone = wait_until(Duration::from_secs(8), || {
        topo.router_forget(&ct).unwrap();
        !answers(&topo, &ct)
    });
    assert!(
        gone,
        "a removed container is still answered:\n{}",
        daemon.log()
    );
    daemon.stop().unwrap();
}

#[test]
fn bridge_deleted_and_recreated_is_followed() {
    let topo = topology(1);
    let ct = container_addr(1);
    let daemon = topo
        .start_daemon(
            exe(),
            &[
                "--auto",
                CONTAINER_PREFIX,
                "--probe",
                "2001:db8:1::d:100/120",
            ],
        )
        .unwrap();
    topo.container_speaks(1).unwrap();
    assert!(listed(&daemon, &ct, Some("auto"), Duration::from_secs(2)));

    topo.delete_bridge().unwrap();
    assert!(
        listed(&daemon, &ct, None, Duration::from_secs(2)),
        "{:?}\n{}",
        daemon.status(),
        daemon.log()
    );
    topo.router_forget(&ct).unwrap();
    // The bridge is gone, and with it its route: the target falls under the uplink's /64.
    never_answered(&topo, &daemon, &ct, Ignored::RoutedToUplink);

    topo.create_bridge().unwrap();
    topo.container_speaks(1).unwrap();
    let back = wait_until(Duration::from_secs(3), || {
        topo.router_forget(&ct).unwrap();
        answers(&topo, &ct)
    });
    assert!(
        back,
        "not answered after the bridge came back:\n{}",
        daemon.log()
    );
    assert!(topo.ping_from_router(INTERNET_ADDR, &ct, 2).unwrap());
    daemon.stop().unwrap();
}

#[test]
fn targets_not_behind_a_downstream_interface_are_never_answered() {
    let topo = topology(1);
    // None of these prefixes is routed downstream: they fall under the uplink's on-link /64.
    let daemon = topo
        .start_daemon(
            exe(),
            &[
                "-n",
                "2001:db8:1::c:0/112",
                "--auto",
                "2001:db8:1::e:0/112",
                "--probe",
                "2001:db8:1::f:0/112",
            ],
        )
        .unwrap();
    for target in ["2001:db8:1::c:5", "2001:db8:1::e:5", "2001:db8:1::f:5"] {
        never_answered(&topo, &daemon, target, Ignored::RoutedToUplink);
    }
    let c = daemon.counters();
    assert_eq!(c.probes_sent, 0, "{c:?}");
    daemon.stop().unwrap();
}

#[test]
fn a_scan_of_20000_targets_fills_the_probe_cache_to_its_bound_and_no_further() {
    let topo = topology(1);
    // Negatives are remembered for an hour: nothing leaves the cache by itself, so only its
    // bound keeps it from growing with the scan.
    let daemon = topo
        .start_daemon(
            exe(),
            &[
                "--probe",
                CONTAINER_PREFIX,
                "-n",
                "2001:db8:1::d:2/128",
                "--probe-negative-ttl",
                "1h",
            ],
        )
        .unwrap();
    let max = status(&daemon).uplinks[0].probe_cache_max;
    assert_eq!(max, 4096);
    let mut state: u64 = 0x9e3779b97f4a7c15;
    let frames: Vec<Vec<u8>> = (0..20_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            router_ns(&format!("2001:db8:1::d:{:x}", state & 0xffff))
        })
        .collect();
    // In bursts of 800, fewer than the receive ring holds (even a debug build must not drop
    // any), each sent only once the daemon has counted every frame sent before it (a frame
    // the ring dropped would never be counted, so the wait would run out and say so) and its
    // probes are older than the grace after which a new target may take an unanswered
    // probe's slot. Each burst thus probes 256 new targets (the cap on probes in flight) and
    // finds the cache full for the rest; the targets given up stay as negatives.
    let mut sent: u64 = 0;
    let mut last = status(&daemon).uplinks.remove(0);
    for (n, burst) in frames.chunks(800).enumerate() {
        let at = Instant::now();
        assert_eq!(send_frames_in(&topo.router(), "r0", burst), burst.len());
        sent += burst.len() as u64;
        let through = wait_until(Duration::from_secs(20), || {
            last = status(&daemon).uplinks.remove(0);
            last.counters.ns_seen >= sent
                && at.elapsed() > ndp_responder::decide::probe::PROBE_GRACE
        });
        assert!(
            through,
            "burst {n}: the daemon counted {} of the {sent} solicitations sent:\n{}",
            last.counters.ns_seen,
            daemon.log()
        );
        assert!(
            last.probe_cache_entries <= max,
            "burst {n}: {} entries: {last:?}",
            last.probe_cache_entries
        );
    }
    let c = &last.counters;
    assert_eq!(
        c.dropped, 0,
        "bursts of 800 overflowed the receive ring: {c:?}"
    );
    // The cap on probes in flight bound: the rest of each burst found no free slot.
    assert!(by(&c.ignored, Ignored::ProbeCacheFull) > 0, "{c:?}");
    // The bound on entries was reached, and never passed.
    assert_eq!(last.probe_cache_high_water, max, "{last:?}");
    eprintln!(
        "scan: {} entries (high water {}), {c:?}",
        last.probe_cache_entries, last.probe_cache_high_water
    );
    daemon.stop().unwrap();
}

#[test]
fn uplink_deleted_and_recreated_answering_resumes() {
    let topo = topology(1);
    let ct = container_addr(1);
    let daemon = topo.start_daemon(exe(), &["-n", CONTAINER_PREFIX]).unwrap();
    assert!(topo.ping_from_router(INTERNET_ADDR, &ct, 3).unwrap());

    let index = status(&daemon).uplinks[0].index;
    assert!(index.is_some());
    topo.delete_uplink().unwrap();
    assert!(
        wait_status(&daemon, Duration::from_secs(2), |s| s.uplinks[0]
            .index
            .is_none()),
        "{:?}\n{}",
        daemon.status(),
        daemon.log()
    );
    topo.connect_uplink().unwrap();
    assert!(
        wait_status(&daemon, Duration::from_secs(2), |s| {
            let u = &s.uplinks[0];
            u.index.is_some() && u.index != index && u.up
        }),
        "{:?}\n{}",
        daemon.status(),
        daemon.log()
    );
    topo.router_forget(&ct).unwrap();
    let answered = wait_until(Duration::from_secs(5), || {
        topo.ping_from_router(INTERNET_ADDR, &ct, 1).unwrap()
    });
    assert!(
        answered,
        "not answering after the uplink came back:\n{}",
        daemon.log()
    );
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
}

#[test]
fn uplink_down_and_up_answering_resumes() {
    let topo = topology(1);
    let ct = container_addr(1);
    let daemon = topo.start_daemon(exe(), &["-n", CONTAINER_PREFIX]).unwrap();
    topo.exec(&topo.host(), &["ip", "link", "set", "eth0", "down"])
        .unwrap();
    assert!(
        wait_status(&daemon, Duration::from_secs(2), |s| !s.uplinks[0].up),
        "{:?}\n{}",
        daemon.status(),
        daemon.log()
    );
    topo.exec(&topo.host(), &["ip", "link", "set", "eth0", "up"])
        .unwrap();
    // Linux drops global addresses and their routes when a link goes down: restore them, as
    // the host's network configuration would.
    let host = topo.host();
    let restore: [&[&str]; 2] = [
        &[
            "ip",
            "addr",
            "replace",
            "2001:db8:1::2/64",
            "dev",
            "eth0",
            "nodad",
        ],
        &[
            "ip",
            "-6",
            "route",
            "replace",
            "default",
            "via",
            ndp_responder::tools::lab::GATEWAY,
            "dev",
            "eth0",
        ],
    ];
    for cmd in restore {
        topo.exec(&host, cmd).unwrap();
    }
    topo.router_forget(&ct).unwrap();
    let answered = wait_until(Duration::from_secs(5), || {
        topo.ping_from_router(INTERNET_ADDR, &ct, 1).unwrap()
    });
    assert!(answered, "{}", daemon.log());
    daemon.stop().unwrap();
}

#[test]
fn an_address_added_to_the_uplink_at_runtime_is_left_to_the_kernel() {
    let topo = topology(1);
    let daemon = topo.start_daemon(exe(), &["-n", CONTAINER_PREFIX]).unwrap();
    let addr = "2001:db8:1::d:50";
    topo.exec(
        &topo.host(),
        &[
            "ip",
            "addr",
            "add",
            &format!("{addr}/128"),
            "dev",
            "eth0",
            "nodad",
        ],
    )
    .unwrap();
    let own: std::net::Ipv6Addr = addr.parse().unwrap();
    assert!(
        wait_status(&daemon, Duration::from_secs(2), |s| s.uplinks[0]
            .addresses
            .contains(&own)),
        "{:?}\n{}",
        daemon.status(),
        daemon.log()
    );
    // The kernel answers from the same MAC; the daemon's count shows it stayed out.
    let before = daemon.counters();
    assert!(
        answers(&topo, addr),
        "the kernel answers for its own address"
    );
    let after = common::wait_counters(&daemon, Duration::from_secs(2), |c| {
        by(&c.ignored, Ignored::UplinkAddress) > by(&before.ignored, Ignored::UplinkAddress)
    })
    .unwrap_or_else(|c| {
        panic!(
            "not ignored as the uplink's own address: {c:?}\n{}",
            daemon.log()
        )
    });
    assert_eq!(after.answered, before.answered, "{after:?}");
    daemon.stop().unwrap();
}
