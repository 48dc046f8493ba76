//! What the README promises and no other test covered (issue 14), end to end with the real
//! daemon in the lab's namespaces: the receive ring overflowing and its counter, two uplinks
//! and reloads that remove and add one, the watchdog beat stopping while the daemon is stuck,
//! `--probe PREFIX@IFACE`, the overall rate limit across many sources, periodic announcements
//! of addresses answered recently, a control socket held by another daemon, and several
//! default gateways. The daemon's state is read through its status, metrics and sd_notify
//! messages, captures and the kernel's tables, never from its log.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant, SystemTime};

use common::{exe, host_answers, never_answered, router_ns, status, wait_counters, wait_status};
use ndp_responder::decide::policy::Ignored;
use ndp_responder::ndp::{self, NeighborSolicit};
use ndp_responder::tools::lab::{
    container_addr, wait_until, Daemon, Topology, CONTAINER_PREFIX, GATEWAY,
};
use ndp_responder::tools::netns;

/// A namespace of the test's own (beside the lab's), removed when dropped. Named after the
/// lab's tag, so that a killed run's leftovers are removed like the lab's.
struct OwnNs(String);

impl OwnNs {
    fn new(topo: &Topology, suffix: &str) -> OwnNs {
        let name = format!("{}-{suffix}", topo.router());
        netns::add(&name).unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        let ns = OwnNs(name);
        for key in ["all", "default"] {
            netns::sysctl(&ns.0, &format!("net/ipv6/conf/{key}/accept_dad"), "0").unwrap();
        }
        ns
    }
}

impl Drop for OwnNs {
    fn drop(&mut self) {
        let _ = netns::delete(&self.0);
    }
}

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn run(ns: &str, args: &[&str]) {
    netns::exec(ns, args).unwrap_or_else(|e| panic!("{args:?} in {ns}: {e}"));
}

/// Ask for `target` with ndisc6 on `iface` in namespace `ns`: the MAC that answered, if any.
fn solicit_in(ns: &str, iface: &str, target: &str) -> Option<String> {
    let out = netns::try_exec(
        ns,
        &["ndisc6", "-1", "-n", "-r", "2", "-w", "400", target, iface],
    )
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    text.lines()
        .find(|l| l.contains("link-layer address"))
        .and_then(|l| l.split_whitespace().last().map(str::to_string))
}

/// The state letter of process `pid` (R, S, T, ...).
fn process_state(pid: u32) -> char {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.chars().next()))
        .flatten()
        .unwrap_or('?')
}

/// Stop the daemon (SIGSTOP) and return once the kernel says it is stopped.
fn freeze(daemon: &Daemon) {
    daemon.signal(libc::SIGSTOP);
    assert!(
        wait_until(Duration::from_secs(5), || process_state(daemon.pid())
            == 'T'),
        "the daemon did not stop: state {}",
        process_state(daemon.pid())
    );
}

/// An HTTP GET over TCP from inside namespace `ns`; the whole response.
fn http_get_in(ns: &str, addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    netns::run_in(ns, || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    })
    .unwrap()
}

/// The value of one sample line (`name{labels} value`) of a Prometheus exposition.
fn metric(text: &str, sample: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.strip_prefix(sample)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Capture times (tcpdump -tt, seconds since the epoch) of the lines holding every needle.
fn times(text: &str, needles: &[&str]) -> Vec<f64> {
    text.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn ns_frame(ns: &NeighborSolicit) -> Vec<u8> {
    let mut buf = vec![0u8; ndp::MAX_EMIT_LEN];
    let len = ns.emit(&mut buf).unwrap();
    buf.truncate(len);
    buf
}

/// The receive ring's slots: at least `RING_FRAMES`, in whole blocks of one page (README: "a
/// PACKET_MMAP ring of 1,008 slots", on 4 KiB pages).
fn ring_slots() -> u64 {
    use ndp_responder::link::{RING_FRAMES, RING_FRAME_SIZE};
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
    let per_block = page / RING_FRAME_SIZE;
    (RING_FRAMES.div_ceil(per_block) * per_block) as u64
}

#[test]
fn a_burst_beyond_the_receive_ring_is_dropped_counted_and_survived() {
    let topo = common::topology(1);
    let daemon = topo
        // The socket path's receive ring is what this observes: the fast path would answer
        // the burst in the kernel, with the daemon stopped.
        .start_daemon(
            exe(),
            &[
                "-n",
                CONTAINER_PREFIX,
                "--metrics",
                "[::1]:9471",
                "--no-fast-path",
            ],
        )
        .unwrap();
    let ct = container_addr(1);
    assert!(host_answers(&topo, &ct), "{}", daemon.log());
    let before = daemon.counters();
    assert_eq!(before.dropped, 0, "{before:?}");

    // Stopped, the daemon reads nothing: the ring fills and the kernel drops the rest.
    freeze(&daemon);
    const BURST: u64 = 3000;
    let frames: Vec<Vec<u8>> = (0..BURST)
        .map(|i| router_ns(&format!("2001:db8:1::d:{:x}", 0x1000 + i)))
        .collect();
    // Paced a little, so that no queue on the way (the veths' backlog) drops any: the ring
    // is the only place one may be lost.
    let sent = common::send_paced_in(&topo.router(), "r0", &frames, Duration::from_micros(50));
    assert_eq!(sent as u64, BURST);
    daemon.signal(libc::SIGCONT);

    // Every frame of the burst is accounted for: read from the ring, or dropped and counted.
    let after = wait_counters(&daemon, Duration::from_secs(10), |c| {
        (c.ns_seen - before.ns_seen) + (c.dropped - before.dropped) >= BURST
    })
    .unwrap_or_else(|c| {
        panic!("the burst of {BURST} is not accounted for: before {before:?}, after {c:?}")
    });
    let (seen, dropped) = (
        after.ns_seen - before.ns_seen,
        after.dropped - before.dropped,
    );
    eprintln!("stopped daemon: {seen} read from the ring, {dropped} dropped");
    assert_eq!(seen + dropped, BURST, "{after:?}");
    assert!(dropped > 0, "nothing dropped: {after:?}");
    assert_eq!(
        seen,
        ring_slots(),
        "read after a stop: the ring's slots, no more and no fewer: {after:?}"
    );
    // What was read was answered (the default rate limits are far above this).
    let after = wait_counters(&daemon, Duration::from_secs(5), |c| {
        c.answered - before.answered >= seen
    })
    .unwrap_or_else(|c| panic!("{seen} read, not all answered: {c:?}"));
    assert_eq!(after.answered - before.answered, seen, "{after:?}");

    // The metrics say the same (a rendering is reused for a second: poll).
    let sample = "ndp_responder_dropped_total{uplink=\"eth0\"}";
    let mut last = String::new();
    assert!(
        wait_until(Duration::from_secs(5), || {
            last = http_get_in(&topo.host(), "[::1]:9471", "/metrics");
            metric(&last, sample) == Some(after.dropped)
        }),
        "want {sample} {}:\n{last}",
        after.dropped
    );

    // And it keeps answering.
    assert!(host_answers(&topo, &ct), "{}", daemon.log());
    assert!(host_answers(&topo, &container_addr(7)));
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
}

/// A configuration file for uplink eth0 (`2001:db8:1::d:0/112`) and, if `with_eth1`, eth1
/// (`2001:db8:1::e:0/112`), both static.
fn two_uplinks(with_eth1: bool) -> String {
    let mut text = String::from(
        "[[uplink]]\ninterface = \"eth0\"\n\n[[uplink.rule]]\nprefix = \"2001:db8:1::d:0/112\"\nmode = \"static\"\n",
    );
    if with_eth1 {
        text.push_str(
            "\n[[uplink]]\ninterface = \"eth1\"\n\n[[uplink.rule]]\nprefix = \"2001:db8:1::e:0/112\"\nmode = \"static\"\n",
        );
    }
    text
}

fn uplink_names(daemon: &Daemon) -> Vec<String> {
    status(daemon)
        .uplinks
        .into_iter()
        .map(|u| u.interface)
        .collect()
}

#[test]
fn a_reload_removes_and_adds_an_uplink_while_the_kept_one_answers_throughout() {
    const ETH1_MAC: &str = "02:00:00:00:02:02";
    let topo = common::topology(1);
    let host = topo.host();
    // A second provider link: eth1 on the host, r1 in a namespace of our own (a second router).
    let link2 = OwnNs::new(&topo, "link2");
    run(
        &host,
        &[
            "ip", "link", "add", "eth1", "address", ETH1_MAC, "type", "veth", "peer", "name", "r1",
            "netns", &link2.0,
        ],
    );
    run(
        &host,
        &[
            "ip",
            "addr",
            "add",
            "2001:db8:2::2/64",
            "dev",
            "eth1",
            "nodad",
        ],
    );
    run(&host, &["ip", "link", "set", "eth1", "up"]);
    run(
        &link2.0,
        &[
            "ip",
            "addr",
            "add",
            "2001:db8:2::1/64",
            "dev",
            "r1",
            "nodad",
        ],
    );
    run(&link2.0, &["ip", "link", "set", "r1", "up"]);
    // eth1's rule: a second prefix routed to the container bridge.
    run(
        &host,
        &[
            "ip",
            "-6",
            "route",
            "add",
            "2001:db8:1::e:0/112",
            "dev",
            "br0",
        ],
    );
    let scratch = common::Scratch::new("uplinks");
    let file = scratch.path("ndp-responder.toml");
    std::fs::write(&file, two_uplinks(true)).unwrap();
    let daemon = topo
        .start_daemon_args(exe(), &["-c", &file.display().to_string()])
        .unwrap();
    let pid = daemon.pid();
    let on_eth1 = || solicit_in(&link2.0, "r1", "2001:db8:1::e:5");
    assert_eq!(uplink_names(&daemon), ["eth0", "eth1"]);
    assert_eq!(on_eth1().as_deref(), Some(ETH1_MAC), "{}", daemon.log());
    assert!(host_answers(&topo, "2001:db8:1::d:5"));
    let eth1_seen = status(&daemon).uplinks[1].counters.ns_seen;
    assert!(eth1_seen >= 1);

    // A steady stream on eth0, one new target every 4 ms, across both reloads.
    const STREAM: usize = 1500;
    let target = |i: usize| format!("2001:db8:1::d:{:x}", 0x100 + i);
    let frames: Vec<Vec<u8>> = (0..STREAM).map(|i| router_ns(&target(i))).collect();
    let (capture, sender) = common::steady_stream(&topo, frames, Duration::from_millis(4));
    // It is reaching the daemon before the first reload.
    let eth0_before = daemon.counters();
    assert!(wait_counters(&daemon, Duration::from_secs(5), |c| c.ns_seen
        > eth0_before.ns_seen + 10)
    .is_ok());

    // 1. eth1 removed: status lists eth0 alone, eth1 is no longer answered.
    std::fs::write(&file, two_uplinks(false)).unwrap();
    daemon.signal(libc::SIGHUP);
    assert!(
        wait_status(&daemon, Duration::from_secs(5), |s| s.reloads == 1),
        "{:?}\n{}",
        daemon.status(),
        daemon.log()
    );
    let st = status(&daemon);
    assert_eq!(st.pid, pid);
    assert_eq!(st.last_reload_error, None);
    let names: Vec<&str> = st.uplinks.iter().map(|u| u.interface.as_str()).collect();
    assert_eq!(names, ["eth0"]);
    // Kept in place: eth0's counters go on (a restarted uplink would start from zero).
    assert!(st.uplinks[0].counters.ns_seen > eth0_before.ns_seen);
    assert_eq!(on_eth1(), None, "eth1 still answered after its removal");

    // 2. eth1 added back: both listed, eth1 answers again, as a new uplink.
    std::fs::write(&file, two_uplinks(true)).unwrap();
    daemon.signal(libc::SIGHUP);
    assert!(
        wait_status(&daemon, Duration::from_secs(5), |s| s.reloads == 2),
        "{:?}\n{}",
        daemon.status(),
        daemon.log()
    );
    assert!(
        !sender.is_finished(),
        "the stream ended before the second reload: it proves nothing"
    );
    let st = status(&daemon);
    assert_eq!(st.pid, pid);
    assert_eq!(st.last_reload_error, None);
    let names: Vec<&str> = st.uplinks.iter().map(|u| u.interface.as_str()).collect();
    assert_eq!(names, ["eth0", "eth1"]);
    assert_eq!(
        st.uplinks[1].counters.ns_seen, 0,
        "eth1 was not started anew: {:?}",
        st.uplinks[1]
    );
    assert_eq!(on_eth1().as_deref(), Some(ETH1_MAC), "{}", daemon.log());

    // Every target of the stream on the kept uplink was answered, across both reloads.
    assert_eq!(sender.join().unwrap(), STREAM);
    let text = common::capture_output(capture, Duration::from_secs(3));
    let answered: BTreeSet<String> = common::adverts(&text)
        .into_iter()
        .map(|(_, _, tgt)| tgt)
        .collect();
    let missed: Vec<String> = (0..STREAM)
        .map(target)
        .filter(|t| !answered.contains(t))
        .collect();
    assert!(
        missed.is_empty(),
        "{} of {STREAM} unanswered across the reloads, e.g. {:?}",
        missed.len(),
        &missed[..missed.len().min(5)]
    );
    assert_eq!(status(&daemon).pid, pid);
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
}

/// What this proves, and what not: the uplinks' loops and the service loop are tasks of one
/// single-threaded runtime, so a test cannot stall one uplink's loop while the rest runs. The
/// whole process is stopped instead (SIGSTOP): the beat comes at half the interval, none comes
/// while the daemon is stopped, and it resumes after SIGCONT. This cannot tell a beat gated on
/// every uplink answering a status request (src/service/mod.rs) from one sent regardless by the
/// running process.
#[test]
fn the_watchdog_beat_stops_while_the_daemon_is_stuck_and_resumes() {
    let topo = common::topology(1);
    // WatchdogSec=1s: a beat every 500 ms. The lab gives the daemon its own NOTIFY_SOCKET.
    let daemon = topo
        .start_daemon_env(
            exe(),
            &["-n", CONTAINER_PREFIX],
            &[("WATCHDOG_USEC", "1000000")],
        )
        .unwrap();
    let beats = || {
        daemon
            .notifications()
            .iter()
            .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(5), || beats() >= 2),
        "no beats: {:?}",
        daemon.notifications()
    );
    // At half the interval: 4 more beats take about 2 s (4 s if it beat at the interval).
    let from = beats();
    let start = Instant::now();
    assert!(wait_until(Duration::from_secs(6), || beats() >= from + 4));
    let took = start.elapsed();
    assert!(
        (Duration::from_millis(1200)..=Duration::from_millis(3500)).contains(&took),
        "4 beats took {took:?}, want about 2 s"
    );

    // Stuck: every loop of the daemon stopped (SIGSTOP). What it sent before is read by the
    // lab's reader at once; from then on, for 4 intervals, no beat.
    freeze(&daemon);
    let settled = Instant::now();
    let mut stuck_at = beats();
    while settled.elapsed() < Duration::from_millis(200) {
        stuck_at = beats();
        std::thread::sleep(Duration::from_millis(20));
    }
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(2) {
        assert_eq!(
            beats(),
            stuck_at,
            "a beat while the daemon was stopped: {:?}",
            daemon.notifications()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Continued: the beat resumes, and the daemon answers.
    daemon.signal(libc::SIGCONT);
    assert!(
        wait_until(Duration::from_secs(5), || beats() >= stuck_at + 2),
        "no beats after SIGCONT: {:?}",
        daemon.notifications()
    );
    assert!(host_answers(&topo, &container_addr(1)));
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
}

#[test]
fn a_probe_rule_naming_its_interface_probes_there_and_nowhere_else() {
    let topo = common::topology(1);
    let host = topo.host();
    // A second bridge br1 with a station of our own holding ::e:2 and ::f:2; ::e:0/112 and
    // ::f:0/112 are routed to br1.
    let station = OwnNs::new(&topo, "st");
    run(
        &host,
        &[
            "ip",
            "link",
            "add",
            "br1",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ],
    );
    run(
        &host,
        &[
            "ip", "link", "add", "veth-st", "type", "veth", "peer", "name", "eth0", "netns",
            &station.0,
        ],
    );
    run(
        &host,
        &["ip", "link", "set", "veth-st", "master", "br1", "up"],
    );
    run(
        &host,
        &[
            "ip",
            "addr",
            "add",
            "2001:db8:1::e:1/112",
            "dev",
            "br1",
            "nodad",
        ],
    );
    run(&host, &["ip", "link", "set", "br1", "up"]);
    run(
        &host,
        &[
            "ip",
            "-6",
            "route",
            "add",
            "2001:db8:1::f:0/112",
            "dev",
            "br1",
        ],
    );
    for addr in ["2001:db8:1::e:2/112", "2001:db8:1::f:2/112"] {
        run(
            &station.0,
            &["ip", "addr", "add", addr, "dev", "eth0", "nodad"],
        );
    }
    run(&station.0, &["ip", "link", "set", "eth0", "up"]);
    // The daemon probes from the bridge's link-local address: wait until br1 has one.
    assert!(wait_until(Duration::from_secs(5), || {
        let out = netns::exec(
            &host,
            &["ip", "-6", "addr", "show", "dev", "br1", "scope", "link"],
        )
        .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("fe80::")
    }));

    // Captures: the probes on each bridge, the answers at the router.
    let on_br0 = common::start_capture(
        &host,
        "br0",
        1000,
        "icmp6 and (ip6[40] == 135 or ip6[40] == 136)",
    );
    let on_br1 = common::start_capture(
        &host,
        "br1",
        1000,
        "icmp6 and (ip6[40] == 135 or ip6[40] == 136)",
    );
    let at_router = common::start_capture(&topo.router(), "r0", 1000, "icmp6 and ip6[40] == 136");
    let daemon = topo
        .start_daemon(
            exe(),
            &[
                // The interface named is the one the route points to.
                "--probe",
                "2001:db8:1::d:0/112@br0",
                // The interface named is not where the prefix is routed (br1).
                "--probe",
                "2001:db8:1::e:0/112@br0",
                // No interface named: the route's, br1.
                "--probe",
                "2001:db8:1::f:0/112",
            ],
        )
        .unwrap();
    let st = status(&daemon).uplinks.remove(0);
    assert_eq!(st.probe_cache_entries, 0, "{st:?}");
    assert_eq!(st.probe_cache_max, 4096, "the README's bound: {st:?}");

    // Behind br0: answered once it answers the probe on br0, and only after.
    let ct = container_addr(1);
    assert!(
        wait_until(Duration::from_secs(5), || host_answers(&topo, &ct)),
        "{}",
        daemon.log()
    );
    let probed = format!("who has {ct}");
    let its_answer = format!("{ct} > fe80::");
    let answered_up = format!("tgt is {ct}");
    assert!(on_br0.wait_for(Duration::from_secs(3), |t| t.contains(&its_answer)));
    assert!(at_router.wait_for(Duration::from_secs(3), |t| t.contains(&answered_up)));
    let probe_at = times(&on_br0.text(), &[&probed])[0];
    let confirmed_at = times(&on_br0.text(), &[&its_answer, "neighbor advertisement"])[0];
    let first_answer = times(&at_router.text(), &[&answered_up])[0];
    assert!(
        probe_at <= confirmed_at && confirmed_at <= first_answer,
        "probe {probe_at}, its answer {confirmed_at}, the answer upstream {first_answer}:\nbr0:\n{}\nrouter:\n{}",
        on_br0.text(),
        at_router.text()
    );
    assert!(
        wait_status(&daemon, Duration::from_secs(3), |s| s.uplinks[0]
            .answering
            .iter()
            .any(|a| a.address == ip(&ct) && a.why == "probe")),
        "{:?}",
        daemon.status()
    );

    // ::e:2 lives on br1, but its rule names br0: probed on br0 only, so never answered.
    let misplaced = "2001:db8:1::e:2";
    let before = daemon.counters();
    for attempt in 1..=3 {
        assert!(
            !host_answers(&topo, misplaced),
            "{misplaced} answered at attempt {attempt}:\n{}",
            daemon.log()
        );
    }
    let after = daemon.counters();
    assert!(after.probes_sent > before.probes_sent, "{after:?}");
    assert_eq!(after.answered, before.answered, "{after:?}");
    let who_has = format!("who has {misplaced}");
    assert!(
        on_br0.wait_for(Duration::from_secs(3), |t| t.contains(&who_has)),
        "{misplaced} was not probed on br0:\n{}",
        on_br0.text()
    );

    // ::f:2, also on br1, under a rule without an interface: probed on br1 and answered,
    // so the station there does answer probes.
    let routed = "2001:db8:1::f:2";
    assert!(
        wait_until(Duration::from_secs(5), || host_answers(&topo, routed)),
        "{}",
        daemon.log()
    );
    // (The probes for ::e:2 went out before this one: had any gone to br1, the capture
    // would show it before.)
    let probed_f = format!("who has {routed}");
    assert!(
        on_br1.wait_for(Duration::from_secs(3), |t| t.contains(&probed_f)),
        "{routed} was not probed on br1:\n{}",
        on_br1.text()
    );
    let br1 = on_br1.text();
    assert!(
        !br1.contains(&who_has),
        "{misplaced} was probed on br1, which its rule does not name:\n{br1}"
    );

    // The probe cache, as status shows it: one entry per target probed (two confirmed, one
    // remembered as silent), within its bound.
    let st = status(&daemon).uplinks.remove(0);
    assert_eq!(st.probe_cache_entries, 3, "{st:?}");
    assert!(st.probe_cache_high_water <= st.probe_cache_max, "{st:?}");
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
}

#[test]
fn the_overall_rate_limit_caps_answers_across_many_sources() {
    const LIMIT: u64 = 40;
    const SOURCES: u64 = 200;
    let topo = common::topology(1);
    let daemon = topo
        .start_daemon(
            exe(),
            &[
                "-n",
                CONTAINER_PREFIX,
                "--rate-limit",
                &LIMIT.to_string(),
                // Each source sends one solicitation: far below its own (default) limit.
                "--rate-limit-per-source",
                "10000",
            ],
        )
        .unwrap();
    // One solicitation from each of 200 stations on the link (own MAC, own address), none of
    // them the gateway.
    let burst = |round: u64| -> Vec<Vec<u8>> {
        (0..SOURCES)
            .map(|i| {
                let n = round * SOURCES + i;
                let mac = format!("02:00:00:77:{:02x}:{:02x}", n >> 8, n & 0xff);
                ns_frame(&NeighborSolicit::resolution(
                    mac.parse().unwrap(),
                    ip(&format!("2001:db8:1::77:{n:x}")),
                    ip(&format!("2001:db8:1::d:{:x}", 0x300 + n)),
                ))
            })
            .collect()
    };
    let mut before = daemon.counters();
    let mut last_handled = None::<Instant>;
    for round in 0..2 {
        if let Some(at) = last_handled {
            // The bucket holds one second's worth: after a second it is full again.
            while at.elapsed() < Duration::from_millis(1200) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let start = Instant::now();
        assert_eq!(
            common::send_frames_in(&topo.router(), "r0", &burst(round)),
            SOURCES as usize
        );
        let after = wait_counters(&daemon, Duration::from_secs(10), |c| {
            c.ns_seen - before.ns_seen >= SOURCES
        })
        .unwrap_or_else(|c| panic!("round {round}: not all seen: {c:?}"));
        let took = start.elapsed();
        last_handled = Some(Instant::now());
        let answered = after.answered - before.answered;
        let limited = after.rate_limited - before.rate_limited;
        assert_eq!(answered + limited, SOURCES, "round {round}: {after:?}");
        // A full bucket (one second's worth), plus what refilled while the burst was handled.
        let refilled = (took.as_secs_f64() * LIMIT as f64).ceil() as u64;
        assert!(
            (LIMIT..=LIMIT + refilled).contains(&answered),
            "round {round}: {answered} answered in {took:?}, want {LIMIT} to {}: {after:?}",
            LIMIT + refilled
        );
        // Withheld by the total, not by any source's own limit.
        let by_total = |c: &ndp_responder::status::Counters| {
            c.withheld.get("rate_limit_total").copied().unwrap_or(0)
        };
        assert_eq!(by_total(&after) - by_total(&before), limited, "{after:?}");
        assert_eq!(
            after.withheld.get("rate_limit_per_source"),
            None,
            "{after:?}"
        );
        before = after;
    }
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
}

#[test]
fn addresses_answered_recently_are_announced_each_interval_and_then_no_more() {
    let topo = common::topology(1);
    let capture = common::start_capture(&topo.router(), "r0", 10_000, "icmp6 and ip6[40] == 136");
    let daemon = topo
        .start_daemon(
            exe(),
            &["-n", CONTAINER_PREFIX, "--announce-interval", "1s"],
        )
        .unwrap();
    // A static address in use: the router solicits it every 500 ms for 3 s. Another one of
    // the rule is never solicited.
    let used = "2001:db8:1::d:50";
    let unused = "2001:db8:1::d:51";
    let frames: Vec<Vec<u8>> = (0..7).map(|_| router_ns(used)).collect();
    let sent = common::send_paced_in(&topo.router(), "r0", &frames, Duration::from_millis(500));
    assert_eq!(sent, 7);
    let answers_needle =
        format!("> fe80::ff:fe00:101: ICMP6, neighbor advertisement, tgt is {used},");
    assert!(
        capture.wait_for(Duration::from_secs(3), |t| t
            .lines()
            .filter(|l| l.contains(&answers_needle))
            .count()
            >= 7),
        "not every solicitation answered:\n{}",
        capture.text()
    );
    let last_answer = *times(&capture.text(), &[&answers_needle]).last().unwrap();
    // In use for two intervals after its last answer; then no more announcements. Watch
    // until 3 intervals after the window closed.
    while epoch_now() < last_answer + 5.0 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = capture.text();
    let announced = times(
        &text,
        &[&format!(
            "> ff02::1: ICMP6, neighbor advertisement, tgt is {used},"
        )],
    );
    let first_answer = times(&text, &[&answers_needle])[0];
    eprintln!(
        "answered from {first_answer:.3} to {last_answer:.3}; announced at {:?}",
        announced
            .iter()
            .map(|t| format!("{:+.3}", t - last_answer))
            .collect::<Vec<_>>()
    );
    assert!(
        announced.len() >= 3,
        "{used} in use for 3 s announced {} times:\n{text}",
        announced.len()
    );
    for pair in announced.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (0.6..=1.4).contains(&gap),
            "announcements {gap:.3} s apart, want about 1 s:\n{text}"
        );
    }
    let last = *announced.last().unwrap();
    assert!(
        last <= last_answer + 2.0 + 0.3,
        "{used} announced {:.3} s after its last answer, beyond two intervals:\n{text}",
        last - last_answer
    );
    assert!(
        !text.contains(&format!("tgt is {unused},")),
        "{unused} was never in use, yet announced:\n{text}"
    );
    // The daemon counts exactly those.
    assert_eq!(
        daemon.counters().announcements_sent,
        announced.len() as u64,
        "{text}"
    );
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
}

#[test]
fn a_control_socket_held_by_another_daemon_is_left_to_it() {
    let topo = common::topology(1);
    let scratch = common::Scratch::new("control");
    let socket = scratch.path("control.sock");
    let shown = socket.display().to_string();
    let first = topo
        .start_daemon(exe(), &["-n", CONTAINER_PREFIX, "--control-socket", &shown])
        .unwrap();
    assert_eq!(status(&first).pid, first.pid());

    // A second daemon, same explicit path: refused at start, naming the path, exit status 2.
    let second = netns::command(&topo.host(), exe())
        .args([
            "-i",
            "eth0",
            "-n",
            CONTAINER_PREFIX,
            "--control-socket",
            &shown,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (exited, out) = common::exit_within(second, Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(exited, "the second daemon kept running: {stderr}");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot open the control socket {shown}"))
            && stderr.contains("another ndp-responder answers on it"),
        "{stderr}"
    );

    // The first keeps its socket and serves status on it, and keeps answering.
    assert!(
        socket.exists(),
        "the second daemon removed the first's socket"
    );
    let (ok, out, err) = common::status_cmd(&socket, true);
    assert!(ok, "{err}");
    let st: ndp_responder::status::Status = serde_json::from_str(&out).unwrap();
    assert_eq!(st.pid, first.pid());
    assert!(host_answers(&topo, &container_addr(1)));
    let stopped = first.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
}

#[test]
fn several_default_gateways_are_listed_and_none_is_answered() {
    const SECOND: &str = "2001:db8:1::fe";
    let topo = common::topology(1);
    let host = topo.host();
    // The router holds a second address, and the host a second default route through it.
    run(
        &topo.router(),
        &[
            "ip",
            "addr",
            "add",
            "2001:db8:1::fe/64",
            "dev",
            "r0",
            "nodad",
        ],
    );
    run(
        &host,
        &[
            "ip", "-6", "route", "add", "default", "via", SECOND, "dev", "eth0", "metric", "2048",
        ],
    );
    // A rule covering the whole link, both gateways included (warned about, not refused).
    let daemon = topo
        .start_daemon(exe(), &["-n", "2001:db8:1::/64"])
        .unwrap();
    let both = [ip(GATEWAY), ip(SECOND)];
    let listed = |daemon: &Daemon| {
        wait_status(daemon, Duration::from_secs(3), |s| {
            both.iter().all(|g| s.uplinks[0].gateways.contains(g))
        })
    };
    assert!(listed(&daemon), "{:?}", daemon.status());
    never_answered(&topo, &daemon, GATEWAY, Ignored::Gateway);
    never_answered(&topo, &daemon, SECOND, Ignored::Gateway);

    // The second route removed: followed (the status no longer lists its gateway).
    run(
        &host,
        &[
            "ip", "-6", "route", "del", "default", "via", SECOND, "dev", "eth0", "metric", "2048",
        ],
    );
    assert!(
        wait_status(&daemon, Duration::from_secs(3), |s| {
            let gateways = &s.uplinks[0].gateways;
            gateways.contains(&ip(GATEWAY)) && !gateways.contains(&ip(SECOND))
        }),
        "{:?}",
        daemon.status()
    );
    // Equal-cost: one multipath default route through both.
    run(
        &host,
        &[
            "ip", "-6", "route", "replace", "default", "nexthop", "via", GATEWAY, "dev", "eth0",
            "nexthop", "via", SECOND, "dev", "eth0",
        ],
    );
    assert!(listed(&daemon), "multipath: {:?}", daemon.status());
    never_answered(&topo, &daemon, GATEWAY, Ignored::Gateway);
    never_answered(&topo, &daemon, SECOND, Ignored::Gateway);

    // The rule is live: a container is answered.
    assert!(host_answers(&topo, &container_addr(1)));
    assert!(!host_answers(&topo, GATEWAY));
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
}
