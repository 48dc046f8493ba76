//! What operators look for (issue 15), end to end: the metrics they alert on (build, process,
//! gateway keepalive answered and failed, last reload) scraped from a running daemon in the
//! lab, `status -c FILE` and `doctor -c FILE`, the man page and completions printed by the
//! binary, and check-config's warning about an IPv4 metrics address. State is read through
//! `status --json` and the metrics, never from the daemon's log.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use common::{exe, http_get_in, EXE};
use ndp_responder::status::Status;
use ndp_responder::tools::lab::{wait_until, CONTAINER_PREFIX};

fn run(args: &[&str]) -> Output {
    Command::new(exe()).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `ndp-responder status -c FILE --json`: the status of the daemon whose control socket the
/// file names; None while it does not answer.
fn status_from_file(file: &Path) -> Option<Status> {
    let out = run(&["status", "-c", &file.display().to_string(), "--json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// The value of the sample `series` (name and labels, exactly as exposed) in a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn config(socket: &Path, extra: &str) -> String {
    format!(
        "control_socket = \"{}\"\nmetrics = \"[::1]:9418\"\n\n[[uplink]]\ninterface = \"eth0\"\ngateway_keepalive = \"1s\"\n{extra}\n[[uplink.rule]]\nprefix = \"{CONTAINER_PREFIX}\"\nmode = \"static\"\n",
        socket.display()
    )
}

#[test]
fn operators_metrics_from_a_running_daemon() {
    let topo = common::topology(1);
    let scratch = common::Scratch::new("metrics");
    let file = scratch.path("ndp-responder.toml");
    let socket = scratch.path("control.sock");
    std::fs::write(&file, config(&socket, "")).unwrap();
    let started = unix_now();
    let daemon = topo
        .start_daemon_args(exe(), &["-c", &file.display().to_string()])
        .unwrap();
    let scrape = || {
        let response = http_get_in(&topo.host(), "[::1]:9418", "/metrics");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response
    };
    let eth0 = "{uplink=\"eth0\"}";

    // `status -c FILE` finds the control socket the file names; the gateway answers the
    // keepalive (the lab's router is a Linux kernel).
    let mut last = None;
    let answered = wait_until(Duration::from_secs(10), || {
        last = status_from_file(&file);
        last.as_ref()
            .is_some_and(|s| s.uplinks[0].counters.keepalives_answered >= 2)
    });
    assert!(answered, "no keepalive answered: {last:#?}");
    let status = last.unwrap();
    assert_eq!(status.pid, daemon.pid());
    assert!(status.process.resident_memory_bytes > 0, "{status:#?}");

    let m = scrape();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(
            &m,
            &format!("ndp_responder_build_info{{version=\"{version}\"}}")
        ),
        Some(1.0),
        "{m}"
    );
    assert!(m.contains("# TYPE ndp_responder_build_info gauge"), "{m}");
    let rss = sample(&m, "process_resident_memory_bytes").unwrap_or(0.0);
    assert!(
        rss > 1e5 && rss < 1e9,
        "process_resident_memory_bytes {rss}\n{m}"
    );
    let start = sample(&m, "process_start_time_seconds").unwrap_or(0.0);
    assert!(
        start >= started - 1.0 && start <= unix_now(),
        "process_start_time_seconds {start}, test started at {started}"
    );
    assert!(
        m.contains("# TYPE ndp_responder_keepalives_answered counter"),
        "{m}"
    );
    let ok = sample(
        &m,
        &format!("ndp_responder_keepalives_answered_total{eth0}"),
    );
    assert!(ok.is_some_and(|n| n >= 2.0), "{m}");
    assert_eq!(
        sample(&m, &format!("ndp_responder_keepalives_failed_total{eth0}")),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "ndp_responder_config_last_reload_successful"),
        Some(1.0)
    );
    let applied = sample(
        &m,
        "ndp_responder_config_last_reload_success_timestamp_seconds",
    )
    .unwrap_or(0.0);
    assert!(
        applied >= start && applied <= unix_now(),
        "applied at {applied}, started {start}"
    );

    // The router stops answering solicitations: each keepalive fails once its answer window
    // (3 s) has passed.
    common::nft(
        &topo.router(),
        "table ip6 mute {\n chain input {\n  type filter hook input priority 0;\n  icmpv6 type nd-neighbor-solicit drop\n }\n}\n",
    );
    let failed = wait_until(Duration::from_secs(12), || {
        status_from_file(&file).is_some_and(|s| s.uplinks[0].counters.keepalives_failed >= 2)
    });
    assert!(failed, "{:#?}", status_from_file(&file));
    let m = scrape();
    let failed = sample(&m, &format!("ndp_responder_keepalives_failed_total{eth0}"));
    assert!(failed.is_some_and(|n| n >= 2.0), "{m}");

    // A reload refused for a structural mistake: the gauge says so, the time stays; `status
    // -c` still finds the daemon through the broken file and reports why.
    std::fs::write(&file, config(&socket, "").replace("[[uplink]]", "[uplink]")).unwrap();
    daemon.signal(libc::SIGHUP);
    let mut last = None;
    let refused = wait_until(Duration::from_secs(5), || {
        last = status_from_file(&file);
        last.as_ref().is_some_and(|s| s.last_reload_error.is_some())
    });
    assert!(refused, "{last:#?}");
    let why = last.unwrap().last_reload_error.unwrap();
    assert!(
        why.ends_with(":4: [uplink] is one table, but a file has a list of uplinks: write [[uplink]] (two brackets), one per uplink"),
        "{why}"
    );
    // (A rendering is reused for a second: polled.)
    let mut m = String::new();
    let shown = wait_until(Duration::from_secs(3), || {
        m = scrape();
        sample(&m, "ndp_responder_config_last_reload_successful") == Some(0.0)
    });
    assert!(shown, "{m}");
    assert_eq!(
        sample(
            &m,
            "ndp_responder_config_last_reload_success_timestamp_seconds"
        ),
        Some(applied)
    );

    // Fixed: applied in full again, at a later time.
    std::fs::write(&file, config(&socket, "router = false")).unwrap();
    daemon.signal(libc::SIGHUP);
    let reloaded = wait_until(Duration::from_secs(5), || {
        status_from_file(&file).is_some_and(|s| s.reloads == 1 && s.last_reload_error.is_none())
    });
    assert!(reloaded, "{:#?}", status_from_file(&file));
    let shown = wait_until(Duration::from_secs(3), || {
        m = scrape();
        sample(&m, "ndp_responder_config_last_reload_successful") == Some(1.0)
    });
    assert!(shown, "{m}");
    let again = sample(
        &m,
        "ndp_responder_config_last_reload_success_timestamp_seconds",
    )
    .unwrap_or(0.0);
    assert!(again > applied, "{again} after {applied}");
    assert_eq!(sample(&m, "ndp_responder_reloads_total"), Some(1.0));

    // --socket wins over the file's.
    let out = run(&[
        "status",
        "-c",
        &file.display().to_string(),
        "--socket",
        &scratch.path("nobody.sock").display().to_string(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("nobody.sock"),
        "{}",
        text(&out.stderr)
    );
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success());
}

#[test]
fn status_with_a_file_that_has_no_control_socket() {
    let scratch = common::Scratch::new("nosocket");
    let file = scratch.path("x.toml");
    std::fs::write(&file, "control_socket = \"none\"\n").unwrap();
    let out = run(&["status", "-c", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "ndp-responder status: {}: control_socket = \"none\": a daemon started with it has no control socket to ask\n",
            file.display()
        )
    );
}

#[test]
fn doctor_checks_every_uplink_of_a_file() {
    let topo = common::topology(1);
    let scratch = common::Scratch::new("doctor");
    let file = scratch.path("ndp-responder.toml");
    // eth0: the containers' prefix (healthy), one outside its on-link /64, and a docker rule
    // without a prefix (nothing to check); eth9 does not exist.
    std::fs::write(
        &file,
        format!(
            "[[uplink]]\ninterface = \"eth0\"\n\n[[uplink.rule]]\nprefix = \"{CONTAINER_PREFIX}\"\nmode = \"static\"\n\n[[uplink.rule]]\nprefix = \"2001:db8:5::/64\"\nmode = \"auto\"\n\n[[uplink.rule]]\nmode = \"docker\"\nnetwork = \"ipv6exposed\"\n\n[[uplink]]\ninterface = \"eth9\"\n\n[[uplink.rule]]\nprefix = \"2001:db8:9::/64\"\nmode = \"static\"\n"
        ),
    )
    .unwrap();
    let path = file.display().to_string();
    let out = topo
        .try_exec(&topo.host(), &[EXE, "doctor", "-c", &path, "--json"])
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    let reports = reports.as_array().unwrap();
    assert_eq!(reports.len(), 2, "{reports:#?}");
    assert_eq!(reports[0]["interface"], "eth0");
    assert_eq!(reports[1]["interface"], "eth9");
    let findings = |i: usize, check: &str| -> Vec<String> {
        reports[i]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["check"] == check && f["severity"] != "ok")
            .map(|f| f["message"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        findings(0, "on_link"),
        ["2001:db8:5::/64 is not within an on-link prefix of eth0 (2001:db8:1::/64): the provider's router solicits only for on-link addresses, so it will never ask for these"]
    );
    // Each of eth0's prefixes was looked at, the docker rule's none.
    let routes: Vec<String> = reports[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "route")
        .map(|f| f["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(routes.len(), 2, "{routes:?}");
    assert!(routes[0].starts_with(CONTAINER_PREFIX), "{routes:?}");
    assert!(routes[1].starts_with("2001:db8:5::/64"), "{routes:?}");
    assert_eq!(
        findings(1, "interface"),
        ["there is no interface named 'eth9'"]
    );

    // In text: a heading per uplink.
    let out = topo
        .try_exec(&topo.host(), &[EXE, "doctor", "-c", &path])
        .unwrap();
    let shown = text(&out.stdout);
    assert!(shown.starts_with("uplink eth0:\n"), "{shown}");
    assert!(shown.contains("\n\nuplink eth9:\n"), "{shown}");
    assert!(
        shown.contains("fix: give the containers a range inside 2001:db8:1::/64"),
        "{shown}"
    );

    // Only the containers' prefix: healthy, exit 0.
    std::fs::write(
        &file,
        format!("[[uplink]]\ninterface = \"eth0\"\n[[uplink.rule]]\nprefix = \"{CONTAINER_PREFIX}\"\nmode = \"static\"\n"),
    )
    .unwrap();
    let out = topo
        .try_exec(&topo.host(), &[EXE, "doctor", "-c", &path])
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // A file that does not validate: its error, exit 2.
    std::fs::write(&file, "[uplink]\ninterface = \"eth0\"\n").unwrap();
    let out = run(&["doctor", "-c", &path]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!("ndp-responder doctor: {path}:1: [uplink] is one table, but a file has a list of uplinks: write [[uplink]] (two brackets), one per uplink\n")
    );
}

#[test]
fn man_page_and_completions_are_printed() {
    let out = run(&["man"]);
    assert!(out.status.success());
    let page = text(&out.stdout);
    assert!(page.contains(".TH ndp-responder 8"), "{page}");
    assert!(
        page.contains(".SH \"NDP\\-RESPONDER COMPLETIONS\""),
        "{page}"
    );
    for (shell, marker) in [
        ("bash", "complete -F _ndp__responder"),
        ("zsh", "#compdef ndp-responder"),
        ("fish", "complete -c ndp-responder"),
    ] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("check-config"), "{shell}");
    }
    let out = run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_config_warns_about_an_ipv4_metrics_address() {
    let scratch = common::Scratch::new("check");
    let file = scratch.path("ndp-responder.toml");
    std::fs::write(
        &file,
        format!("metrics = \"127.0.0.1:9417\"\n[[uplink]]\ninterface = \"eth9\"\n[[uplink.rule]]\nprefix = \"{CONTAINER_PREFIX}\"\nmode = \"static\"\n"),
    )
    .unwrap();
    let path = file.display().to_string();
    let out = run(&["check-config", "-c", &path]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with(&format!("{path}: OK, 1 uplink(s), 1 rule(s)")),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        text(&out.stderr),
        format!("ndp-responder: {path}:1: warning: metrics = \"127.0.0.1:9417\" binds an IPv4 address, but the shipped systemd unit allows only RestrictAddressFamilies=AF_PACKET AF_NETLINK AF_UNIX AF_INET6 (no AF_INET): under it the daemon cannot serve metrics and will not start; write metrics = \"[::1]:9417\" (loopback) or \"[::]:9417\" (every address, IPv4 too), or allow AF_INET in a drop-in (systemctl edit ndp-responder: [Service] RestrictAddressFamilies=AF_INET)\n")
    );
    // An IPv6 address: no warning.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("127.0.0.1:9417", "[::1]:9417"),
    )
    .unwrap();
    let out = run(&["check-config", "-c", &path]);
    assert!(out.status.success());
    assert_eq!(text(&out.stderr), "");
}
