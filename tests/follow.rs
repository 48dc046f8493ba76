//! Following the kernel: auto and probe rules as containers, bridges and the uplink come and
//! go, never answering for what is not behind a downstream interface, and a scan that cannot
//! grow the probe cache. All in namespaces, with the real daemon.

mod common;

use std::time::{Duration, Instant};

use common::{exe, router_ns, send_frames_in, topology};
use ndp_responder::tools::lab::{
    container_addr, wait_until, Topology, CONTAINER_PREFIX, INTERNET_ADDR,
};

fn answers(topo: &Topology, target: &str) -> bool {
    common::host_answers(topo, target)
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
        daemon.wait_for_log(&["auto:", &ct, "is now known"], Duration::from_secs(1)),
        "not known within 1 s of its address being configured:\n{}",
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
        daemon.wait_for_log(&["auto:", &ct, "no longer known"], Duration::from_secs(1)),
        "a removed container is still known:\n{}",
        daemon.log()
    );
    topo.router_forget(&ct).unwrap();
    assert!(!answers(&topo, &ct), "{}", daemon.log());
    assert!(
        daemon.wait_for_log(
            &["ignored NS who-has", &ct, "no such address known"],
            Duration::from_secs(2)
        ),
        "{}",
        daemon.log()
    );
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
    assert!(!answers(&topo, "2001:db8:1::d:99"));
    assert!(daemon.wait_for_log(
        &[
            "ignored NS who-has 2001:db8:1::d:99",
            "no such address known"
        ],
        Duration::from_secs(2)
    ));
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
    assert!(!daemon
        .log_lines(&["answered NS who-has", &ct, "confirmed by probe"])
        .is_empty());

    // Nobody has ::d:99: probed, never answered.
    assert!(!answers(&topo, "2001:db8:1::d:99"));
    assert!(daemon
        .log_lines(&["answered NS who-has 2001:db8:1::d:99"])
        .is_empty());
    assert!(
        !daemon
            .log_lines(&["probing 2001:db8:1::d:99 on br0"])
            .is_empty(),
        "{}",
        daemon.log()
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
    assert!(daemon.wait_for_log(&["auto:", &ct, "is now known"], Duration::from_secs(2)));

    topo.delete_bridge().unwrap();
    assert!(
        daemon.wait_for_log(&["auto:", &ct, "no longer known"], Duration::from_secs(2)),
        "{}",
        daemon.log()
    );
    topo.router_forget(&ct).unwrap();
    assert!(!answers(&topo, &ct));

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
    assert!(
        daemon.wait_for_log(
            &["rule 2001:db8:1::c:0/112 (static)", "routed out of eth0"],
            Duration::from_secs(2)
        ),
        "{}",
        daemon.log()
    );
    for target in ["2001:db8:1::c:5", "2001:db8:1::e:5", "2001:db8:1::f:5"] {
        assert!(!answers(&topo, target), "{target} answered");
        assert!(
            daemon.wait_for_log(
                &["ignored NS who-has", target, "routed out of the uplink"],
                Duration::from_secs(2)
            ),
            "{target}:\n{}",
            daemon.log()
        );
    }
    let stopped = daemon.stop().unwrap();
    assert!(
        stopped.summary().contains("probes sent 0"),
        "{}",
        stopped.log
    );
}

#[test]
fn a_scan_of_10000_targets_leaves_the_probe_cache_within_its_bound() {
    let topo = topology(1);
    let socket = std::env::temp_dir().join(format!("ndp-follow-scan-{}.sock", std::process::id()));
    let socket_arg = socket.display().to_string();
    let daemon = topo
        .start_daemon(
            exe(),
            &[
                "--probe",
                CONTAINER_PREFIX,
                "-n",
                "2001:db8:1::d:2/128",
                "--control-socket",
                &socket_arg,
            ],
        )
        .unwrap();
    let mut state: u64 = 0x9e3779b97f4a7c15;
    let frames: Vec<Vec<u8>> = (0..10_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            router_ns(&format!("2001:db8:1::d:{:x}", state & 0xffff))
        })
        .collect();
    // In bursts of 800, fewer than the receive ring holds (even a debug build must not drop
    // any), each sent only once the daemon has counted every frame sent before it. A frame
    // the ring dropped would never be counted, so the wait would run out and say so.
    let mut sent: u64 = 0;
    for (n, burst) in frames.chunks(800).enumerate() {
        assert_eq!(send_frames_in(&topo.router(), "r0", burst), burst.len());
        sent += burst.len() as u64;
        let mut seen = 0;
        let through = wait_until(Duration::from_secs(20), || {
            seen = common::ns_seen(&socket);
            seen >= sent
        });
        assert!(
            through,
            "burst {n}: the daemon counted {seen} of the {sent} solicitations sent:\n{}",
            daemon.log()
        );
    }
    let stopped = daemon.stop().unwrap();
    let summary = stopped.summary().to_string();
    // "NS seen N, ...; probe cache E entries (at most M)"
    let number_after = |word: &str| -> usize {
        summary
            .split(word)
            .nth(1)
            .and_then(|rest| {
                rest.trim_start()
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no '{word}' in: {summary}"))
    };
    let seen = number_after("NS seen");
    let high_water = number_after("(at most");
    assert!(seen > 4096, "the scan did not reach the daemon: {summary}");
    assert!(
        summary.contains("dropped (ring full) 0,"),
        "bursts of 800 overflowed the receive ring: {summary}"
    );
    assert!(high_water <= 4096, "the cache outgrew its bound: {summary}");
    assert!(summary.contains("probe_cache_full="), "{summary}");
    eprintln!("scan: {summary}");
}

#[test]
fn uplink_deleted_and_recreated_answering_resumes() {
    let topo = topology(1);
    let ct = container_addr(1);
    let daemon = topo.start_daemon(exe(), &["-n", CONTAINER_PREFIX]).unwrap();
    assert!(topo.ping_from_router(INTERNET_ADDR, &ct, 3).unwrap());

    topo.delete_uplink().unwrap();
    assert!(
        daemon.wait_for_log(&["eth0 is gone"], Duration::from_secs(2)),
        "{}",
        daemon.log()
    );
    topo.connect_uplink().unwrap();
    assert!(
        daemon.wait_for_log(&["eth0 is back"], Duration::from_secs(2)),
        "{}",
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
        daemon.wait_for_log(&["eth0 changed", "down"], Duration::from_secs(2)),
        "{}",
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
    assert!(
        daemon.wait_for_log(&["eth0 changed", addr], Duration::from_secs(2)),
        "{}",
        daemon.log()
    );
    assert!(
        answers(&topo, addr),
        "the kernel answers for its own address"
    );
    assert!(
        daemon.wait_for_log(
            &["ignored NS who-has", addr, "own address"],
            Duration::from_secs(2)
        ),
        "{}",
        daemon.log()
    );
    assert!(daemon.log_lines(&["answered NS who-has", addr]).is_empty());
    daemon.stop().unwrap();
}
