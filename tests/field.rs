//! The field, end to end in namespaces: an uplink that is not there yet at start (created
//! later, or renamed into place) is waited for and answered on once it appears, and a missing
//! uplink never stops the others. State is read through `status --json`.

mod common;

use std::time::{Duration, Instant};

use common::{exe, host_answers, topology};
use ndp_responder::tools::lab::{container_addr, wait_until, CONTAINER_PREFIX};

/// The uplink `name` in the daemon's status: (index, up), if it is listed.
fn uplink_state(
    daemon: &ndp_responder::tools::lab::Daemon,
    name: &str,
) -> Option<(Option<u32>, bool)> {
    daemon
        .status()?
        .uplinks
        .into_iter()
        .find(|u| u.interface == name)
        .map(|u| (u.index, u.up))
}

#[test]
fn a_missing_uplink_is_waited_for_and_answered_on_once_it_appears() {
    let topo = topology(1);
    topo.delete_uplink().unwrap();
    // Starts (READY=1) although eth0 does not exist, and says it is waiting.
    let daemon = topo.start_daemon(exe(), &["-n", CONTAINER_PREFIX]).unwrap();
    assert_eq!(
        uplink_state(&daemon, "eth0"),
        Some((None, false)),
        "{}",
        daemon.log()
    );
    let ct = container_addr(1);
    assert!(!host_answers(&topo, &ct));

    // The interface is created: answered, without a restart.
    topo.connect_uplink().unwrap();
    let created = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || host_answers(&topo, &ct)),
        "{}",
        daemon.log()
    );
    eprintln!("answered {:?} after the uplink appeared", created.elapsed());
    // (The fast path answers as soon as it is attached, which may be before the daemon has
    // read that the link is up: polled.)
    assert!(wait_until(Duration::from_secs(5), || matches!(
        uplink_state(&daemon, "eth0"),
        Some((Some(_), true))
    )));

    // Renamed away, it is waited for again; renamed back into place, answered again.
    let host = topo.host();
    for args in [
        &["ip", "link", "set", "eth0", "down"][..],
        &["ip", "link", "set", "eth0", "name", "eth0x"],
    ] {
        topo.exec(&host, args).unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(5), || {
            uplink_state(&daemon, "eth0") == Some((None, false))
        }),
        "{:?}",
        daemon.status()
    );
    for args in [
        &["ip", "link", "set", "eth0x", "name", "eth0"][..],
        &["ip", "link", "set", "eth0", "up"],
    ] {
        topo.exec(&host, args).unwrap();
    }
    // Its address and default route went with the link (keep_addr_on_down is 0): put them
    // back, as the network configuration would.
    topo.exec(
        &host,
        &[
            "ip",
            "addr",
            "replace",
            "2001:db8:1::2/64",
            "dev",
            "eth0",
            "nodad",
        ],
    )
    .unwrap();
    let route = [
        "ip",
        "-6",
        "route",
        "replace",
        "default",
        "via",
        "2001:db8:1::1",
        "dev",
        "eth0",
    ];
    assert!(wait_until(Duration::from_secs(5), || {
        topo.try_exec(&host, &route)
            .is_ok_and(|o| o.status.success())
    }));
    topo.router_forget(&ct).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || host_answers(&topo, &ct)),
        "{}",
        daemon.log()
    );
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
}

#[test]
fn a_missing_uplink_never_stops_the_others() {
    let topo = topology(1);
    let dir = std::env::temp_dir().join(format!("ndp-field-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("two-uplinks.toml");
    std::fs::write(
        &file,
        format!(
            "[[uplink]]\ninterface = \"eth0\"\n[[uplink.rule]]\nprefix = \"{CONTAINER_PREFIX}\"\nmode = \"static\"\n\n[[uplink]]\ninterface = \"ndpt-vlan9\"\n[[uplink.rule]]\nprefix = \"2001:db8:9::/112\"\nmode = \"static\"\n"
        ),
    )
    .unwrap();
    let daemon = topo
        .start_daemon_args(exe(), &["-c", file.to_str().unwrap()])
        .unwrap();
    assert!(host_answers(&topo, &container_addr(1)), "{}", daemon.log());
    assert!(matches!(
        uplink_state(&daemon, "eth0"),
        Some((Some(_), true))
    ));
    assert_eq!(
        uplink_state(&daemon, "ndpt-vlan9"),
        Some((None, false)),
        "{:?}",
        daemon.status()
    );
    daemon.stop().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// The daemon's log lines as JSON objects (`--log-format json`).
fn json_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str(l.trim_start_matches(|c| c != '{')).ok())
        .collect()
}

#[test]
fn a_targets_first_answer_is_logged_at_info_and_repeats_at_debug() {
    let topo = topology(1);
    let daemon = topo
        .start_daemon_env(
            exe(),
            &["-n", CONTAINER_PREFIX, "--log-format", "json"],
            &[("NDPRESPONDER_LOG", "info")],
        )
        .unwrap();
    let infos = |log: &str| {
        json_lines(log)
            .iter()
            .filter(|l| l["level"] == "INFO")
            .count()
    };
    let ct = container_addr(1);
    assert!(host_answers(&topo, &ct));
    assert!(wait_until(Duration::from_secs(5), || daemon
        .counters()
        .answered
        >= 1));
    let after_first = infos(&daemon.log());
    for _ in 0..3 {
        assert!(host_answers(&topo, &ct));
    }
    assert!(wait_until(Duration::from_secs(5), || daemon
        .counters()
        .answered
        >= 4));
    assert_eq!(
        infos(&daemon.log()),
        after_first,
        "repeated answers to the same solicitor were logged at INFO:\n{}",
        daemon.log()
    );
    // Every line is one JSON object with a level and a message.
    let log = daemon.log();
    assert!(!log.trim().is_empty());
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
    }
    daemon.stop().unwrap();
}

/// Run the daemon (waiting for an uplink that does not exist, so it sends nothing) with
/// stderr to a file and `env`, until it has written a line; its stderr.
fn first_lines(args: &[&str], env: &[(&str, String)]) -> String {
    use std::os::unix::fs::MetadataExt;
    let dir = std::env::temp_dir().join(format!(
        "ndp-field-log-{}-{}",
        std::process::id(),
        args.len() + env.len()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("stderr");
    let file = std::fs::File::create(&path).unwrap();
    let stream = {
        let m = file.metadata().unwrap();
        format!("{}:{}", m.dev(), m.ino())
    };
    let mut child = std::process::Command::new(exe())
        .args([
            "-i",
            "ndpt-absent9",
            "-n",
            "2001:db8:9::/112",
            "--control-socket",
            "none",
        ])
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v.replace("STREAM", &stream))))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    let wrote = wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&path).is_ok_and(|t| t.lines().count() >= 2)
    });
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(wrote, "no log lines: {text}");
    text
}

#[test]
fn under_systemd_lines_carry_syslog_priorities_and_no_timestamp() {
    // JOURNAL_STREAM names our stderr: priority prefixes, no time of our own.
    let text = first_lines(&[], &[("JOURNAL_STREAM", "STREAM".into())]);
    for line in text.lines() {
        let prefix: String = line.chars().take(3).collect();
        assert!(
            ["<3>", "<4>", "<6>", "<7>"].contains(&prefix.as_str()),
            "{line}"
        );
        assert!(!line.contains("Z "), "a timestamp: {line}");
    }
    // The waiting uplink is a warning: journalctl -p warning shows it.
    assert!(text.lines().any(|l| l.starts_with("<4>")), "{text}");
    // The same in JSON: the prefix, then one object without a time.
    let json = first_lines(
        &["--log-format", "json"],
        &[("JOURNAL_STREAM", "STREAM".into())],
    );
    for line in json.lines() {
        let (prefix, object) = line.split_at(3);
        assert!(prefix.starts_with('<'), "{line}");
        let v: serde_json::Value = serde_json::from_str(object).unwrap();
        assert!(v.get("time").is_none(), "{line}");
    }
    // Elsewhere (a stream that is not ours): plain lines with a timestamp.
    let plain = first_lines(&[], &[("JOURNAL_STREAM", "1:2".into())]);
    assert!(!plain.starts_with('<'), "{plain}");
}

#[test]
fn log_levels_are_taken_as_the_go_tool_takes_them() {
    // FATAL in any case is a level (ERROR): no complaint, and the waiting warning is not shown.
    let fatal = std::process::Command::new(exe())
        .args(["check-config", "-c", "/nonexistent/ndp-responder.toml"])
        .env("NDPRESPONDER_LOG", "fatal")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&fatal.stderr).contains("not a log level"));
    // An unknown value warns and carries on at INFO (the Go tool's behaviour).
    let text = first_lines(
        &["--log-format", "json"],
        &[("NDPRESPONDER_LOG", "LOUD".into())],
    );
    let lines = json_lines(&text);
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "WARN"
                && l["message"].as_str().is_some_and(|m| m.contains("'LOUD'"))),
        "{text}"
    );
}
