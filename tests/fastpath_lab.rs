//! The in-kernel fast path in network namespaces (the lab of src/tools/lab): the daemon
//! attaches it by default and the kernel answers the router (the right frame, through the
//! hypervisor's anti-spoof filter); `status` says which path runs and counts the answers and
//! the invalid solicitations it dropped; a reload swaps the answer set; the uplink going away
//! and coming back re-attaches it; `--no-fast-path` answers from the socket alone. (The
//! program against the socket path, frame by frame, is tests/fastpath.rs.)

mod common;

use std::time::Duration;

use common::{exe, topology};
use ndp_responder::tools::lab::{
    container_addr, Daemon, Topology, CONTAINER_PREFIX, GATEWAY, HOST_ADDR, HOST_MAC,
};

fn fast_path(daemon: &Daemon) -> String {
    common::status(daemon).uplinks.remove(0).fast_path
}

/// The router reaches the container (it solicits it first); the answer came from the
/// kernel: `answered_in_kernel` moves. Returns the counters after.
fn reached_through_the_kernel(topo: &Topology, daemon: &Daemon, ct: &str) {
    let before = daemon.counters().answered_in_kernel;
    topo.router_forget(ct).unwrap();
    assert!(
        topo.ping_from_router(GATEWAY, ct, 3).unwrap(),
        "ping failed; daemon log:\n{}",
        daemon.log()
    );
    let entry = topo.router_neighbour(ct).unwrap().unwrap_or_default();
    assert!(entry.contains(HOST_MAC), "router's entry: {entry}");
    let c = common::wait_counters(daemon, Duration::from_secs(3), |c| {
        c.answered_in_kernel > before
    })
    .unwrap_or_else(|c| panic!("not answered in the kernel: {c:#?}\n{}", daemon.log()));
    assert!(c.answered >= c.answered_in_kernel, "{c:#?}");
}

#[test]
fn the_kernel_answers_by_default_and_status_counts_it() {
    let topo = topology(1);
    let ct = container_addr(1);
    let daemon = topo.start_daemon(exe(), &["-n", CONTAINER_PREFIX]).unwrap();
    // The lab's uplink is a veth: virtual, so TC ingress (see link::fastpath).
    let mode = fast_path(&daemon);
    assert_eq!(mode, "tc-ingress", "{}", daemon.log());
    let capture = common::start_capture(&topo.router(), "r0", 100, "icmp6 and ip6[40] == 136");
    reached_through_the_kernel(&topo, &daemon, &ct);
    // The frame: from the container's address, S and R and O set, with our MAC.
    assert!(
        capture.wait_for(Duration::from_secs(3), |text| {
            common::adverts(text)
                .iter()
                .any(|(s, d, t)| *s == ct && d.starts_with(GATEWAY) && *t == ct)
        }),
        "{}",
        capture.text()
    );
    // The same anti-spoof filter the socket path passes drops nothing of ours.
    assert_eq!(topo.antispoof_drops().unwrap(), 0);
    // Invalid solicitations are dropped in the kernel and counted under their reason.
    let mut bad = common::router_ns(&ct);
    bad[21] = 64; // hop limit
    common::fix_checksum(&mut bad);
    assert_eq!(common::send_frames_in(&topo.router(), "r0", &[bad]), 1);
    let c = common::wait_counters(&daemon, Duration::from_secs(3), |c| {
        c.invalid.get("hop_limit") == Some(&1)
    });
    assert!(c.is_ok(), "{c:#?}");
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
}

#[test]
fn drop_uncovered_keeps_the_kernels_own_and_drops_what_nobody_answers() {
    let topo = topology(1);
    let ct = container_addr(1);
    let daemon = topo
        .start_daemon(exe(), &["-n", CONTAINER_PREFIX, "--drop-uncovered"])
        .unwrap();
    assert_eq!(fast_path(&daemon), "tc-ingress", "{}", daemon.log());
    reached_through_the_kernel(&topo, &daemon, &ct);
    // The host's own address: the kernel still gets the router's solicitation and answers.
    topo.router_forget(HOST_ADDR).unwrap();
    assert!(
        topo.ping_from_router(GATEWAY, HOST_ADDR, 3).unwrap(),
        "the host's own address is unreachable; daemon log:\n{}",
        daemon.log()
    );
    let entry = topo
        .router_neighbour(HOST_ADDR)
        .unwrap()
        .unwrap_or_default();
    assert!(entry.contains(HOST_MAC), "router's entry: {entry}");
    // A target of the /64 that no rule covers: dropped in the kernel, counted.
    let frame = common::router_ns("2001:db8:1::e:5");
    assert_eq!(common::send_frames_in(&topo.router(), "r0", &[frame]), 1);
    let c = common::wait_counters(&daemon, Duration::from_secs(3), |c| {
        c.ignored.get("not_covered") == Some(&1)
    });
    assert!(c.is_ok(), "{c:#?}");
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
}

#[test]
fn no_fast_path_answers_from_the_socket() {
    let topo = topology(1);
    let ct = container_addr(1);
    let daemon = topo
        .start_daemon(exe(), &["-n", CONTAINER_PREFIX, "--no-fast-path"])
        .unwrap();
    let mode = fast_path(&daemon);
    assert!(mode.starts_with("off"), "{mode}");
    topo.router_forget(&ct).unwrap();
    assert!(topo.ping_from_router(GATEWAY, &ct, 3).unwrap());
    let c = common::wait_counters(&daemon, Duration::from_secs(3), |c| c.answered >= 1).unwrap();
    assert_eq!(c.answered_in_kernel, 0, "{c:#?}");
}

#[test]
fn a_reload_swaps_the_answer_set_and_the_uplink_returning_reattaches() {
    let topo = topology(1);
    let ct = container_addr(1);
    let scratch = common::Scratch::new("fastpath");
    let file = scratch.path("ndp-responder.toml");
    let config = |prefix: &str| {
        format!("[[uplink]]\ninterface = \"eth0\"\n\n[[uplink.rule]]\nprefix = \"{prefix}\"\nmode = \"static\"\n")
    };
    std::fs::write(&file, config(CONTAINER_PREFIX)).unwrap();
    let daemon = topo
        .start_daemon_args(exe(), &["-c", &file.display().to_string()])
        .unwrap();
    assert_eq!(fast_path(&daemon), "tc-ingress");
    reached_through_the_kernel(&topo, &daemon, &ct);

    // Another prefix: the container is no longer answered, by either path.
    std::fs::write(&file, config("2001:db8:1::e:0/112")).unwrap();
    daemon.signal(libc::SIGHUP);
    assert!(common::wait_status(&daemon, Duration::from_secs(5), |s| {
        s.reloads == 1 && s.uplinks[0].rules.iter().any(|r| r.contains("::e:0/112"))
    }));
    let before = daemon.counters();
    assert!(
        !common::host_answers(&topo, &ct),
        "answered after the reload removed it"
    );
    let after = daemon.counters();
    assert_eq!(after.answered, before.answered, "{after:#?}");

    // Back: answered in the kernel again.
    std::fs::write(&file, config(CONTAINER_PREFIX)).unwrap();
    daemon.signal(libc::SIGHUP);
    assert!(common::wait_status(&daemon, Duration::from_secs(5), |s| s
        .reloads
        == 2));
    reached_through_the_kernel(&topo, &daemon, &ct);

    // The uplink goes away and comes back (a new interface index): re-attached.
    let old = common::status(&daemon).uplinks[0].index;
    topo.delete_uplink().unwrap();
    assert!(common::wait_status(&daemon, Duration::from_secs(5), |s| {
        s.uplinks[0].index.is_none() && s.uplinks[0].fast_path.starts_with("off")
    }));
    topo.connect_uplink().unwrap();
    assert!(
        common::wait_status(&daemon, Duration::from_secs(5), |s| {
            s.uplinks[0].index.is_some()
                && s.uplinks[0].index != old
                && s.uplinks[0].fast_path == "tc-ingress"
        }),
        "{:#?}",
        daemon.status()
    );
    reached_through_the_kernel(&topo, &daemon, &ct);
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
}
