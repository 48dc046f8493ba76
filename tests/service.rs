//! The daemon as an operator and systemd see it, end to end in network namespaces: SIGHUP
//! reload under a steady stream of solicitations, the control socket and `status`, metrics
//! over HTTP, the capability drop, and sd_notify messages.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{capability_lines, exe, http_get_in, status_cmd};
use ndp_responder::status::Status;
use ndp_responder::tools::lab::{container_addr, wait_until};

fn status(socket: &Path) -> Status {
    let (ok, out, err) = status_cmd(socket, true);
    assert!(ok, "status --json failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn status_metrics_and_capabilities_of_a_running_daemon() {
    let topo = common::topology(1);
    let scratch = common::Scratch::new("status");
    let socket = scratch.path("control.sock");
    let daemon = topo
        .start_daemon(
            exe(),
            &[
                "-n",
                "2001:db8:1::d:0/112",
                "--control-socket",
                &scratch.s("control.sock"),
                "--metrics",
                "[::1]:9417",
            ],
        )
        .unwrap();
    let ct = container_addr(1);
    assert!(common::host_answers(&topo, &ct), "{}", daemon.log());

    // The control socket: default mode 0660.
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);

    // Text status names the uplink, its rule, the address answered and the counters.
    let (ok, text, err) = status_cmd(&socket, false);
    assert!(ok, "{err}");
    assert!(text.contains("uplink eth0 (index "), "{text}");
    assert!(text.contains("2001:db8:1::d:0/112 (static)"), "{text}");
    assert!(text.contains("own addresses: 2001:db8:1::2"), "{text}");
    assert!(text.contains("gateways: "), "{text}");
    assert!(text.contains("dropped (ring full) 0,"), "{text}");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&ct))
        .unwrap_or_else(|| panic!("{ct} is not listed as answered:\n{text}"));
    assert!(
        line.contains("static") && line.contains("last answered"),
        "{line}"
    );

    // JSON status: the same, machine-readable.
    let st = status(&socket);
    assert_eq!(st.pid, daemon.pid());
    assert_eq!(st.config, None);
    let eth0 = &st.uplinks[0];
    assert_eq!(eth0.interface, "eth0");
    assert!(eth0.up);
    assert_eq!(eth0.mac, ndp_responder::tools::lab::HOST_MAC);
    let answered = eth0.counters.answered;
    assert!(answered >= 1, "{eth0:?}");
    assert!(eth0.counters.ns_seen >= answered);
    assert_eq!(
        eth0.counters.dropped, 0,
        "the receive ring overflowed: {eth0:?}"
    );
    let entry = eth0
        .answering
        .iter()
        .find(|a| a.address.to_string() == ct)
        .unwrap();
    assert_eq!(entry.why, "static");
    assert!(entry.last_answered_secs.is_some());

    // Metrics: the same counters in the Prometheus text format, on loopback in the host's
    // namespace.
    let response = http_get_in(&topo.host(), "[::1]:9417", "/metrics");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("content-type: application/openmetrics-text"),
        "{response}"
    );
    let want = format!("ndp_responder_answered_total{{uplink=\"eth0\"}} {answered}");
    assert!(response.contains(&want), "no '{want}' in:\n{response}");
    assert!(
        response.contains("ndp_responder_uplink_up{uplink=\"eth0\"} 1"),
        "{response}"
    );
    assert!(
        response.contains("ndp_responder_dropped_total{uplink=\"eth0\"} 0"),
        "{response}"
    );
    assert!(response.trim_end().ends_with("# EOF"), "{response}");
    let missing = http_get_in(&topo.host(), "[::1]:9417", "/");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");

    // Started as root without systemd and without the keepalive: only what the packet socket
    // and the fast path need is left, in every thread, and no_new_privs is set
    // (tests/hostile.rs: with --no-fast-path, CAP_NET_RAW alone).
    let caps = capability_lines(daemon.pid());
    assert!(!caps.is_empty());
    for (key, value) in &caps {
        let want = match key.as_str() {
            // CAP_NET_RAW (13), and for the fast path (on by default) CAP_NET_ADMIN (12) and
            // CAP_BPF (39) and CAP_PERFMON (38).
            "CapPrm" | "CapEff" | "CapBnd" => "000000c000003000",
            "CapInh" | "CapAmb" => "0000000000000000",
            "NoNewPrivs" => "1",
            _ => continue,
        };
        assert_eq!(value, want, "{key} of the daemon: {caps:?}");
    }

    // After the drop it still works: a new container is answered.
    assert!(common::host_answers(&topo, &container_addr(1)));

    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
    assert!(!socket.exists(), "the control socket is removed at exit");
    let (ok, _, err) = status_cmd(&socket, false);
    assert!(!ok);
    assert!(err.contains("is the daemon running"), "{err}");
}

fn config(rules: &[&str], router: bool) -> String {
    let mut text = format!("[[uplink]]\ninterface = \"eth0\"\nrouter = {router}\n");
    for prefix in rules {
        text.push_str(&format!(
            "\n[[uplink.rule]]\nprefix = \"{prefix}\"\nmode = \"static\"\n"
        ));
    }
    text
}

/// Distinct targets in the retained rule's prefix.
fn retained_target(i: usize) -> String {
    format!("2001:db8:1::d:{:x}", 0x100 + i)
}

#[test]
fn reload_under_a_steady_stream_answers_every_retained_target() {
    let topo = common::topology(1);
    let host = topo.host();
    // Two more prefixes routed to the container bridge.
    for prefix in ["2001:db8:1::e:0/112", "2001:db8:1::f:0/112"] {
        topo.exec(&host, &["ip", "-6", "route", "add", prefix, "dev", "br0"])
            .unwrap();
    }
    let scratch = common::Scratch::new("reload");
    let file = scratch.path("ndp-responder.toml");
    let socket = scratch.path("control.sock");
    let first = config(&["2001:db8:1::d:0/112", "2001:db8:1::e:0/112"], true);
    std::fs::write(&file, &first).unwrap();
    let daemon = topo
        .start_daemon_args(
            exe(),
            &[
                "-c",
                &file.display().to_string(),
                "--control-socket",
                &socket.display().to_string(),
            ],
        )
        .unwrap();
    assert!(common::host_answers(&topo, "2001:db8:1::e:5"));
    assert!(!common::host_answers(&topo, "2001:db8:1::f:5"));

    // A steady stream: one solicitation for a new retained target every 4 ms, from the router.
    const STREAM: usize = 750;
    let frames: Vec<Vec<u8>> = (0..STREAM)
        .map(|i| common::router_ns(&retained_target(i)))
        .collect();
    let (capture, sender) = common::steady_stream(&topo, frames, Duration::from_millis(4));

    let reloaded = |n: u64| {
        assert!(
            wait_until(Duration::from_secs(5), || try_status(&socket)
                .is_some_and(|s| s.reloads >= n)),
            "reload {n} not applied: {:?}\n{}",
            try_status(&socket),
            daemon.log()
        );
    };
    let refused = |what: &str| {
        assert!(
            wait_until(Duration::from_secs(5), || try_status(&socket)
                .and_then(|s| s.last_reload_error)
                .is_some_and(|e| e.contains(what))),
            "no reload refused for {what}: {:?}\n{}",
            try_status(&socket),
            daemon.log()
        );
    };
    // The flags of the answer to a solicitation for `target` (tcpdump -v: "Flags [...]").
    let flags = common::start_capture_with(
        &topo.router(),
        "r0",
        100_000,
        &["-v"],
        "icmp6 and ip6[40] == 136",
    );
    let flags_of = |target: &str| -> String {
        assert!(common::host_answers(&topo, target), "{target} not answered");
        let needle = format!("tgt is {target}, Flags [");
        let mut found = String::new();
        assert!(
            flags.wait_for(Duration::from_secs(3), |t| {
                found = t
                    .lines()
                    .find_map(|l| l.split(&needle).nth(1))
                    .and_then(|rest| rest.split(']').next())
                    .unwrap_or_default()
                    .to_string();
                !found.is_empty()
            }),
            "no answer for {target} captured:\n{}",
            flags.text()
        );
        found
    };
    // Before any reload: the router flag is set.
    assert!(flags_of("2001:db8:1::d:a")
        .split(", ")
        .any(|f| f == "router"));
    // 1. Drop the e: rule, add f:, clear the router flag.
    std::fs::write(
        &file,
        config(&["2001:db8:1::d:0/112", "2001:db8:1::f:0/112"], false),
    )
    .unwrap();
    daemon.signal(libc::SIGHUP);
    reloaded(1);
    // The router flag is off in the answers now (the R bit, read on the wire).
    assert!(!status(&socket).uplinks[0].router_flag);
    let f = flags_of("2001:db8:1::d:b");
    assert!(
        !f.split(", ").any(|f| f == "router"),
        "router flag still set: [{f}]"
    );
    // 2. An invalid file is refused; the running configuration stays.
    std::fs::write(&file, "[[uplink]]\ninterface = \"eth0\"\nrouters = true\n").unwrap();
    daemon.signal(libc::SIGHUP);
    refused("ndp-responder.toml:3:");
    // 3. A rule covering the gateway is refused too, naming its line.
    std::fs::write(&file, config(&["2001:db8:1::/64"], true)).unwrap();
    daemon.signal(libc::SIGHUP);
    refused("covers 2001:db8:1::1");
    let st = status(&socket);
    assert_eq!(st.reloads, 1);
    let refused = st.last_reload_error.clone().unwrap_or_default();
    assert!(refused.contains("ndp-responder.toml:5"), "{refused}");
    // 4. Back to a valid file (f: stays, router flag on again).
    std::fs::write(
        &file,
        config(&["2001:db8:1::d:0/112", "2001:db8:1::f:0/112"], true),
    )
    .unwrap();
    daemon.signal(libc::SIGHUP);
    reloaded(2);
    let f = flags_of("2001:db8:1::d:c");
    assert!(
        f.split(", ").any(|f| f == "router"),
        "router flag not back: [{f}]"
    );

    let sent = sender.join().unwrap();
    assert_eq!(sent, STREAM);
    // Every retained target was answered, across all reloads.
    let out = common::capture_output(capture, Duration::from_secs(3));
    let answered: BTreeSet<String> = out
        .lines()
        .filter_map(|l| l.split("tgt is ").nth(1))
        .map(|t| t.split(',').next().unwrap_or_default().to_string())
        .collect();
    let missed: Vec<String> = (0..STREAM)
        .map(retained_target)
        .filter(|t| !answered.contains(t))
        .collect();
    assert!(
        missed.is_empty(),
        "{} of {STREAM} retained targets unanswered across reloads, e.g. {:?}; the daemon answered {}",
        missed.len(),
        &missed[..missed.len().min(5)],
        status(&socket).uplinks[0].counters.answered
    );

    // The new configuration is the one running.
    assert!(!common::host_answers(&topo, "2001:db8:1::e:6"));
    assert!(common::host_answers(&topo, "2001:db8:1::f:6"));
    let st = status(&socket);
    assert_eq!(st.reloads, 2);
    assert_eq!(st.last_reload_error, None);
    assert_eq!(
        st.uplinks[0].rules,
        vec![
            "2001:db8:1::d:0/112 (static)".to_string(),
            "2001:db8:1::f:0/112 (static)".to_string()
        ]
    );
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
}

#[test]
fn systemd_notifications_ready_watchdog_reloading_stopping() {
    let topo = common::topology(1);
    let scratch = common::Scratch::new("notify");
    let file = scratch.path("ndp-responder.toml");
    std::fs::write(&file, config(&["2001:db8:1::d:0/112"], true)).unwrap();
    // The lab gives the daemon its own NOTIFY_SOCKET (and starts it once READY=1 came).
    let daemon = topo
        .start_daemon_args_env(
            exe(),
            &["-c", &file.display().to_string()],
            &[("WATCHDOG_USEC", "400000")],
        )
        .unwrap();
    // Messages from `from` on, until one has `want` (or 5 s pass); returns where it was.
    let expect = |from: usize, want: &str| -> usize {
        let mut at = None;
        let found = wait_until(Duration::from_secs(5), || {
            at = daemon.notifications()[from..]
                .iter()
                .position(|m| m.lines().any(|l| l.starts_with(want)))
                .map(|i| from + i);
            at.is_some()
        });
        assert!(
            found,
            "no {want} after message {from} among {:?}",
            daemon.notifications()
        );
        at.unwrap_or_default() + 1
    };
    let at = expect(0, "READY=1");
    // The watchdog beats at half of WatchdogSec, with a STATUS= line.
    let at = expect(at, "WATCHDOG=1");
    let at = expect(at, "STATUS=eth0: ");
    daemon.signal(libc::SIGHUP);
    let at = expect(at, "RELOADING=1");
    let at = expect(at, "READY=1");
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
    assert!(
        stopped.notifications[at..]
            .iter()
            .any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "no STOPPING=1 among {:?}",
        stopped.notifications
    );
}

#[test]
fn answers_beyond_the_rate_limits_are_withheld_and_counted() {
    let topo = common::topology(1);
    let scratch = common::Scratch::new("ratelimit");
    let socket = scratch.path("control.sock");
    let daemon = topo
        .start_daemon(
            exe(),
            &[
                "-n",
                "2001:db8:1::d:0/112",
                "--rate-limit-per-source",
                "5",
                "--control-socket",
                &scratch.s("control.sock"),
            ],
        )
        .unwrap();
    // 50 solicitations at once from one source: a burst of 5 is answered, the rest withheld.
    let frames: Vec<Vec<u8>> = (0..50)
        .map(|i| common::router_ns(&retained_target(i)))
        .collect();
    let sent_at = std::time::Instant::now();
    assert_eq!(common::send_frames_in(&topo.router(), "r0", &frames), 50);
    // Every one handled (the daemon's own count) before it is stopped.
    let seen = || {
        status(&socket)
            .uplinks
            .iter()
            .map(|u| u.counters.ns_seen)
            .sum::<u64>()
    };
    assert!(
        wait_until(Duration::from_secs(10), || seen() >= 50),
        "the daemon saw {} of 50:\n{}",
        seen(),
        daemon.log()
    );
    let took = sent_at.elapsed();
    let c = status(&socket).uplinks.remove(0).counters;
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
    let (answered, limited) = (c.answered, c.rate_limited);
    assert_eq!(answered + limited, 50, "{c:?}");
    // The burst, plus what refilled (5/s) while the frames were sent and handled.
    let refilled = (took.as_secs_f64() * 5.0).ceil() as u64;
    assert!(
        (5..=5 + refilled).contains(&answered),
        "{answered} answered within {took:?}: {c:?}"
    );
}

/// `status --json`, or None while the control socket does not answer.
fn try_status(socket: &Path) -> Option<Status> {
    let (ok, out, _) = status_cmd(socket, true);
    ok.then(|| serde_json::from_str(&out).ok()).flatten()
}

#[test]
fn reloads_with_extreme_values_are_refused_and_the_daemon_keeps_answering() {
    let topo = common::topology(1);
    let scratch = common::Scratch::new("limits");
    let file = scratch.path("ndp-responder.toml");
    let socket = scratch.path("control.sock");
    // The uplink with `setting` on line 4.
    let with = |setting: &str| {
        format!("[[uplink]]\ninterface = \"eth0\"\nrouter = true\n{setting}\n\n[[uplink.rule]]\nprefix = \"2001:db8:1::d:0/112\"\nmode = \"static\"\n")
    };
    std::fs::write(&file, with("gateway_keepalive = \"30s\"")).unwrap();
    let daemon = topo
        .start_daemon_args(
            exe(),
            &[
                "-c",
                &file.display().to_string(),
                "--control-socket",
                &scratch.s("control.sock"),
            ],
        )
        .unwrap();
    let ct = container_addr(1);
    assert!(common::host_answers(&topo, &ct), "{}", daemon.log());

    let keepalive = "is out of range for the gateway keepalive interval: give 1s to 1h";
    let announce = "is out of range for the announcement interval: give 1s to 1d";
    let rate = "give 0 (no limit) or 1 to 10000000 answers per second";
    let cases = [
        (
            "gateway_keepalive = \"18446744073709551615s\"",
            format!("gateway_keepalive: '18446744073709551615s' {keepalive}"),
        ),
        (
            "announce_interval = \"18446744073709551615s\"",
            format!("announce_interval: '18446744073709551615s' {announce}"),
        ),
        (
            "gateway_keepalive = \"0s\"",
            format!("gateway_keepalive: '0s' {keepalive}"),
        ),
        (
            "announce_interval = \"0s\"",
            format!("announce_interval: '0s' {announce}"),
        ),
        (
            "probe_ttl = \"100y\"",
            "probe_ttl: '100y' is out of range for the probe TTL: give 1s to 1d".into(),
        ),
        (
            "probe_negative_ttl = \"500ms\"",
            "probe_negative_ttl: '500ms' is out of range for the negative probe TTL: give 1s to 1h"
                .into(),
        ),
        (
            "rate_limit = -1",
            format!("rate_limit: -1 is negative: {rate}"),
        ),
        (
            "rate_limit_per_source = 1099511627776",
            format!("rate_limit_per_source: 1099511627776 is too large: {rate}"),
        ),
    ];
    for (setting, want) in &cases {
        std::fs::write(&file, with(setting)).unwrap();
        let want = format!("{}:4: {want}", file.display());
        // check-config refuses the file, naming the line.
        let checked = std::process::Command::new(exe())
            .args(["check-config", "-c"])
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&checked.stderr);
        assert!(!checked.status.success(), "check-config accepted {setting}");
        assert!(stderr.contains(&want), "{setting}: {stderr}");
        // The running daemon refuses it too, says so in its status, and keeps answering.
        daemon.signal(libc::SIGHUP);
        let refused = wait_until(Duration::from_secs(5), || {
            try_status(&socket)
                .and_then(|s| s.last_reload_error)
                .is_some_and(|e| e.starts_with(&want))
        });
        assert!(
            refused,
            "reload with {setting} not reported as refused ({want}); status: {:?}\n{}",
            try_status(&socket),
            daemon.log()
        );
        let st = status(&socket);
        assert_eq!(st.reloads, 0, "{setting} was applied");
        assert!(st.uplinks[0].up, "{st:?}");
        assert!(
            common::host_answers(&topo, &ct),
            "after {setting}:\n{}",
            daemon.log()
        );
    }
    let before = status(&socket).uplinks.remove(0);
    assert_eq!(before.limits.gateway_keepalive_ms, Some(30_000));
    assert!(before.router_flag && before.override_flag);
    // The boundaries are accepted: the reload applies, in place (same process, same uplink),
    // with another source and both flags off.
    std::fs::write(
        &file,
        "[[uplink]]\ninterface = \"eth0\"\nrouter = false\noverride = false\nsource = \"2001:db8:1::2\"\ngateway_keepalive = \"1h\"\nannounce_interval = \"1d\"\nprobe_ttl = \"1s\"\nprobe_negative_ttl = \"1s\"\nrate_limit = 10000000\nrate_limit_per_source = 0\n\n[[uplink.rule]]\nprefix = \"2001:db8:1::d:0/112\"\nmode = \"static\"\n",
    )
    .unwrap();
    let capture = common::start_capture_with(
        &topo.router(),
        "r0",
        1000,
        &["-v"],
        "icmp6 and ip6[40] == 136",
    );
    daemon.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(5), || try_status(&socket)
            .is_some_and(|s| s.reloads == 1)),
        "{}",
        daemon.log()
    );
    let st = status(&socket);
    assert_eq!(st.last_reload_error, None);
    assert_eq!(st.pid, daemon.pid());
    let after = &st.uplinks[0];
    assert_eq!(after.index, before.index, "the uplink was restarted");
    assert_eq!(after.source, "2001:db8:1::2");
    assert!(!after.router_flag && !after.override_flag, "{after:?}");
    assert_eq!(
        after.limits,
        ndp_responder::status::Limits {
            rate_limit: 10_000_000,
            rate_limit_per_source: 0,
            gateway_keepalive_ms: Some(3_600_000),
            announce_interval_ms: Some(86_400_000),
            probe_ttl_ms: 1_000,
            probe_negative_ttl_ms: 1_000,
        }
    );
    // A solicitation from the router (ndisc6 does not report this answer, so it is read on
    // the wire): from the new source, with neither flag.
    let _ = common::solicit(&topo, &ct);
    let line = format!("tgt is {ct}, Flags [solicited]");
    assert!(
        capture.wait_for(Duration::from_secs(3), |t| t
            .lines()
            .any(|l| l.contains(&line) && l.contains("2001:db8:1::2 > "))),
        "{}",
        capture.text()
    );
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
}

#[test]
fn out_of_range_flags_are_refused_at_start() {
    let rate = "give 0 (no limit) or 1 to 10000000 answers per second";
    let cases: [(&[&str], &str); 5] = [
        (
            &["-n", "2001:db8:1::d:0/112", "--gateway-keepalive", "0s"],
            "'0s' is out of range for the gateway keepalive interval: give 1s to 1h",
        ),
        (
            &[
                "-n",
                "2001:db8:1::d:0/112",
                "--gateway-keepalive=18446744073709551615s",
            ],
            "'18446744073709551615s' is out of range for the gateway keepalive interval",
        ),
        (
            &["-n", "2001:db8:1::d:0/112", "--announce-interval", "0s"],
            "'0s' is out of range for the announcement interval: give 1s to 1d",
        ),
        (
            &["--probe", "2001:db8:1::d:0/112", "--probe-ttl", "0s"],
            "'0s' is out of range for the probe TTL: give 1s to 1d",
        ),
        (&["-n", "2001:db8:1::d:0/112", "--rate-limit=-1"], rate),
    ];
    for (args, want) in cases {
        // An interface that exists nowhere: a refused command line never gets that far.
        let child = std::process::Command::new(exe())
            .args(["-i", "ndpt-absent0", "--control-socket", "none"])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (exited, out) = common::exit_within(child, Duration::from_secs(5));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(exited, "{args:?} was accepted: still running; {stderr}");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}
