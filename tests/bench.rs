//! The benchmark's smoke run (issue 7): `ndp-bench --smoke` must keep working, so that the
//! harness cannot rot. No speed is asserted: only that every part of the harness ran, that the
//! report has every section, that each responder answered valid solicitations at a low rate,
//! and that nothing is left behind (also after Ctrl-C).
//!
//! Needs root and ndppd (CI runs as root; `./test` installs ndppd). Without them it fails and
//! says so; it never skips.
//!
//! ndp-bench is its own workspace member (`bench/`), and cargo only hands a test the binaries
//! of its own package (`CARGO_BIN_EXE_*`): the test builds it with the cargo that runs the
//! test, in the same profile and target directory (`CARGO_TARGET_DIR` is inherited), and takes
//! the binary's path from cargo's own report of what it built.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const DAEMON: &str = env!("CARGO_BIN_EXE_ndp-responder");

/// Two runs cannot overlap (ndp-bench holds a lock): the tests take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const SECTIONS: [&str; 10] = [
    "## Machine and versions",
    "## How it was measured",
    "## Targets",
    "## Answered rate and fraction",
    "## Latency",
    "## CPU time",
    "## Memory",
    "## Flood resistance",
    "## Memory under a long flood",
    "## Notes",
];

/// The ndp-bench binary, built once per test process (`cargo build -p ndp-bench`, release if
/// this test runs in release, as the daemon's directory tells).
fn bench() -> &'static Path {
    static BENCH: OnceLock<PathBuf> = OnceLock::new();
    BENCH.get_or_init(|| {
        let release = Path::new(DAEMON)
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|d| d == "release");
        let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cargo
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "-p", "ndp-bench", "--bin", "ndp-bench"])
            .arg("--message-format=json-render-diagnostics")
            .args(release.then_some("--release"))
            .stdin(Stdio::null())
            .stderr(Stdio::inherit());
        let out = cargo
            .output()
            .unwrap_or_else(|e| panic!("running {cargo:?}: {e}"));
        assert!(out.status.success(), "{cargo:?} failed ({})", out.status);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "ndp-bench")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .unwrap_or_else(|| panic!("{cargo:?} reported no ndp-bench executable"))
    })
}

fn require_root_and_ndppd() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the benchmark test needs root (network namespaces, packet sockets); CI runs it as root"
    );
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .any(|d| d.join("ndppd").is_file());
    assert!(
        found,
        "the benchmark compares against ndppd, which is not installed: apt-get install ndppd (or run ./test)"
    );
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ndp-bench-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Namespaces a run with process id `pid` created and left.
fn namespaces_of(pid: u32) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("ndpb{pid}-")))
        .map(str::to_string)
        .collect()
}

/// Every process id in /proc now.
fn proc_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// ndp-responder processes whose parent is `pid`, with their start times (to tell a reused
/// pid apart).
fn responders_of(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for child in proc_pids() {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let comm = stat
            .split_once('(')
            .and_then(|(_, c)| c.rsplit_once(')'))
            .map(|(c, _)| c);
        if fields.get(1) == Some(&pid.to_string().as_str()) && comm == Some("ndp-responder") {
            out.push((child, fields.get(19).unwrap_or(&"").to_string()));
        }
    }
    out
}

/// True while process `pid` (started at `started`) runs; a zombie has ended.
fn alive(pid: u32, started: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let fields: Vec<&str> = stat
            .rfind(')')
            .map(|i| stat[i + 2..].split_whitespace().collect())
            .unwrap_or_default();
        fields.first() != Some(&"Z") && fields.get(19) == Some(&started)
    })
}

fn responder<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    json["results"]
        .as_array()
        .and_then(|all| all.iter().find(|r| r["responder"] == name))
        .unwrap_or_else(|| panic!("the results have no entry for {name}"))
}

/// Which CPUs each kernel thread may run on (/proc/PID/status), kworkers left out (the
/// kernel re-creates and re-masks those itself). What a run must give back as it found it.
fn kernel_thread_cpus() -> std::collections::BTreeMap<u32, String> {
    let mut out = std::collections::BTreeMap::new();
    for pid in proc_pids() {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        let kernel = field("Kthread:").as_deref() == Some("1")
            || (field("PPid:").as_deref() == Some("2") || pid == 2);
        let name = field("Name:").unwrap_or_default();
        if kernel && !name.starts_with("kworker") {
            if let Some(cpus) = field("Cpus_allowed_list:") {
                out.insert(pid, cpus);
            }
        }
    }
    out
}

/// Kernel threads whose CPU set differs from `before` (threads that ended are ignored).
fn changed_cpus(before: &std::collections::BTreeMap<u32, String>) -> Vec<String> {
    let now = kernel_thread_cpus();
    before
        .iter()
        .filter_map(|(pid, cpus)| {
            let n = now.get(pid)?;
            (n != cpus).then(|| format!("pid {pid}: {cpus} -> {n}"))
        })
        .collect()
}

/// Every kernel thread's CPU set and the unbound workqueues' are as before `when`.
fn assert_cpus_given_back(
    threads_before: &std::collections::BTreeMap<u32, String>,
    workqueues_before: &str,
    when: &str,
) {
    let changed = changed_cpus(threads_before);
    assert!(
        changed.is_empty(),
        "kernel threads not put back after {when}: {changed:?}"
    );
    assert_eq!(
        workqueue_mask(),
        workqueues_before,
        "the unbound workqueues' CPU set after {when}"
    );
}

fn workqueue_mask() -> String {
    std::fs::read_to_string("/sys/devices/virtual/workqueue/cpumask").unwrap_or_default()
}

fn two_cpus() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
}

#[test]
fn smoke_run_measures_every_responder_and_writes_the_report() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    require_root_and_ndppd();
    let dir = scratch("smoke");
    let (md, json) = (dir.join("report.md"), dir.join("report.json"));
    let (threads_before, workqueues_before) = (kernel_thread_cpus(), workqueue_mask());
    let started = Instant::now();
    let child = Command::new(bench())
        .arg("--smoke")
        .args(["--daemon", DAEMON])
        .arg("--out")
        .arg(&md)
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting ndp-bench");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ndp-bench --smoke failed ({}):\n{stderr}",
        out.status
    );
    eprintln!("smoke run took {:.1} s", started.elapsed().as_secs_f64());

    let report = std::fs::read_to_string(&md).expect("the Markdown report");
    for section in SECTIONS {
        assert!(
            report.contains(section),
            "the report lacks {section}:\n{report}"
        );
    }
    for name in ["ndp-responder", "ndppd", "kernel proxy_ndp"] {
        assert!(report.contains(name), "the report never names {name}");
    }
    assert!(report.contains("Smoke run"), "a smoke report must say so");
    // The host CPU was kept to the host's work, and the machine got its threads back.
    assert_cpus_given_back(&threads_before, &workqueues_before, "the run");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON results")).unwrap();
    if two_cpus() {
        let moved = json["quieted"]["threads"].as_array().map_or(0, |a| a.len());
        assert!(moved > 0, "no kernel thread was moved off the host CPU");
        for name in ["baseline", "ndp-responder", "ndppd", "kernel"] {
            let probe = &responder(&json, name)["probe"];
            assert!(
                probe["host"]["seconds"].as_f64().unwrap_or(0.0) > 0.0
                    && probe["generator"]["seconds"].as_f64().unwrap_or(0.0) > 0.0,
                "{name}: no stall probe of both CPUs before its stages: {probe}"
            );
        }
        assert!(
            report.contains("What the machine itself took"),
            "the report does not give the stall probes"
        );
        assert!(
            report.contains("Host CPU kept to the host's work"),
            "the report does not say the host CPU was kept clear"
        );
    }
    assert!(!responder(&json, "baseline")["rates"][0].is_null());
    for name in ["ndp-responder", "ndppd", "kernel"] {
        let r = responder(&json, name);
        let low = &r["rates"][0];
        assert_eq!(
            low["target_rate"], 1000,
            "{name}: the first stage is the low rate"
        );
        let answered = low["answered_multicast"].as_u64().unwrap_or(0);
        assert!(
            answered > 0,
            "{name} answered no valid multicast NS at 1,000 NS/s: {low}"
        );
        assert!(
            low["latency_p50_us"].as_f64().is_some(),
            "{name}: no latency recorded"
        );
        assert!(
            r["flood"]["flood_sent"].as_u64().unwrap_or(0) > 0,
            "{name}: no flood sent"
        );
        let reference = &r["flood_reference"];
        assert!(
            reference["flood_sent"].as_u64().unwrap_or(0) > 0,
            "{name}: no paced flood sent"
        );
        let paced = reference["flood_rate"].as_f64().unwrap_or(0.0);
        // Paced, never faster than asked (a loaded machine may not reach the rate; how fast
        // it went is the report's business, not a pass/fail line).
        assert!(
            paced > 0.0 && paced <= 190_000.0 * 1.02,
            "{name}: the paced flood went at {paced} frames/s, above its 190,000 pace"
        );
        // The report's "answers to flood frames (must be 0)": no responder may answer an
        // invalid or out-of-range NS, in either flood (a missing figure fails too).
        for stage in ["flood", "flood_reference"] {
            assert_eq!(
                r[stage]["flood_answers"].as_u64(),
                Some(0),
                "{name} answered flood frames during the {stage} stage: {}",
                r[stage]
            );
        }
        assert_eq!(
            r["rates"].as_array().map(Vec::len),
            Some(3),
            "{name}: three rate stages in a smoke run"
        );
    }
    let ours = responder(&json, "ndp-responder");
    for (what, field) in [("idle", "idle"), ("idle in Docker mode", "idle_docker")] {
        assert!(
            ours[field]["vm_rss_kib"].as_u64().unwrap_or(0) > 0,
            "ndp-responder: no {what} memory"
        );
    }
    assert!(
        !ours["soak"]["rss_samples_kib"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "ndp-responder: no memory samples during the soak"
    );
    // Answers and refusals per interval of the soak: as many intervals of each, and the
    // answers add up to the soak's own count.
    let per = |key: &str| -> Vec<u64> {
        ours["soak"][key]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
            .unwrap_or_default()
    };
    let (answered, refused) = (per("interval_answered"), per("interval_refused"));
    assert!(
        !answered.is_empty() && answered.len() == refused.len(),
        "ndp-responder: no answers and refusals per interval of the soak: {answered:?} {refused:?}"
    );
    assert_eq!(
        answered.iter().sum::<u64>(),
        ours["soak"]["answered"].as_u64().unwrap_or(0),
        "the soak's answers per interval do not add up to its count"
    );
    assert_eq!(
        refused.iter().sum::<u64>(),
        ours["soak"]["dropped_before_host"]
            .as_u64()
            .unwrap_or(u64::MAX),
        "the soak's refusals per interval do not add up to its count"
    );
    // The host's refusals counted from its devices match the sender's own count: each
    // refused frame once (veth counts it at both ends).
    for stage in ["flood", "soak"] {
        let s = &ours[stage];
        assert_eq!(
            s["dropped_before_host"].as_u64(),
            s["refused"].as_u64(),
            "ndp-responder, {stage}: refusals counted by the devices and by the sender differ"
        );
    }
    assert!(
        report.contains("Answered/refused:"),
        "the report does not give the soak's intervals"
    );
    assert_eq!(
        ours["soak"]["flood_answers"].as_u64(),
        Some(0),
        "ndp-responder answered flood frames during the soak"
    );
    assert!(
        responder(&json, "ndppd")["idle"]["vm_rss_kib"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "ndppd: no idle memory"
    );
    assert_eq!(
        json["targets"].as_array().map(Vec::len),
        Some(11),
        "every target of issue 7 is reported"
    );
    assert!(namespaces_of(pid).is_empty(), "namespaces left behind");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctrl_c_stops_the_responders_and_removes_the_namespaces() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    require_root_and_ndppd();
    let dir = scratch("interrupt");
    let (threads_before, workqueues_before) = (kernel_thread_cpus(), workqueue_mask());
    let mut child = Command::new(bench())
        .args(["--smoke", "--only", "ndp-responder", "--stage", "30"])
        .args(["--daemon", DAEMON])
        .arg("--out")
        .arg(dir.join("report.md"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting ndp-bench");
    let pid = child.id();
    // Wait until the responder runs under load (a child process and both namespaces exist).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut responders = Vec::new();
    while Instant::now() < deadline {
        responders = responders_of(pid);
        if namespaces_of(pid).len() == 2 && !responders.is_empty() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("ndp-bench ended before it could be interrupted: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !responders.is_empty() && namespaces_of(pid).len() == 2,
        "ndp-bench did not start a responder in its namespaces within 20 s"
    );
    if two_cpus() {
        // kthreadd (pid 2) may run anywhere: the run has moved it off the host CPU.
        assert!(
            changed_cpus(&threads_before)
                .iter()
                .any(|c| c.starts_with("pid 2:")),
            "kthreadd still runs on every CPU during the run"
        );
    }
    // SAFETY: kill has no memory-safety preconditions; pid is our child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("ndp-bench did not exit within 10 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130), "exit status after Ctrl-C");
    assert_cpus_given_back(&threads_before, &workqueues_before, "Ctrl-C");
    assert!(
        namespaces_of(pid).is_empty(),
        "namespaces left after Ctrl-C"
    );
    for (p, started) in &responders {
        assert!(
            !alive(*p, started),
            "process {p} survived ndp-bench's Ctrl-C"
        );
    }
    let leftover = Path::new(&std::env::temp_dir()).join(format!("ndp-bench-{pid}"));
    assert!(!leftover.exists(), "{} left behind", leftover.display());
    let _ = std::fs::remove_dir_all(&dir);
}
