//! Coverage-guided fuzzing (cargo-fuzz, libFuzzer) as part of `cargo test`.
//!
//! Builds the targets in fuzz/ with the stable toolchain (`cargo fuzz build -s none`: no
//! sanitizer, which needs nightly) into their own target directory fuzz/target, so the outer
//! cargo's lock on target/ is never waited for, then runs `wire_parse` and `policy_decide`
//! side by side for NDP_FUZZ_SECONDS each (default 30), starting from the captured seeds in
//! fuzz/seeds/<target> and the working corpus fuzz/corpus/<target> (kept between local runs,
//! ignored by git); NDP_FUZZ_SECONDS=0 only replays them. A crash fails the test with the
//! artifact and the command that reproduces it. A missing cargo-fuzz fails the test; it is
//! never skipped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

const TARGETS: [&str; 2] = ["wire_parse", "policy_decide"];
const DEFAULT_SECONDS: u64 = 30;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The cargo running this test (so `cargo +stable test` fuzzes with stable), else the one on
/// PATH.
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        // The outer build's target directory must not leak in: fuzz/ has its own.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR");
    cmd
}

fn seconds() -> u64 {
    match std::env::var("NDP_FUZZ_SECONDS") {
        Err(_) => DEFAULT_SECONDS,
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            panic!("NDP_FUZZ_SECONDS={text:?} is not a number of seconds (e.g. 60)")
        }),
    }
}

fn require_cargo_fuzz() {
    let out = cargo().args(["fuzz", "--version"]).output();
    let ok = out.as_ref().is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "cargo-fuzz is not installed (`cargo fuzz --version` failed: {}): \
         cargo install cargo-fuzz --locked (or run ./test)",
        match &out {
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        }
    );
}

/// What one libFuzzer run left behind.
struct Run {
    target: &'static str,
    status: ExitStatus,
    log: String,
    log_path: PathBuf,
}

impl Run {
    /// "Done 1234567 runs in 60 second(s)".
    fn executions(&self) -> Option<u64> {
        self.log
            .lines()
            .find_map(|l| l.strip_prefix("Done "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    }

    /// The input libFuzzer saved for a crash, leak, timeout or out-of-memory.
    fn artifact(&self) -> Option<String> {
        self.log
            .lines()
            .find_map(|l| l.split("Test unit written to ").nth(1))
            .map(|p| p.trim().to_string())
    }
}

fn run_target(target: &'static str, seconds: u64) -> Run {
    let dir = fuzz_dir();
    let corpus = dir.join("corpus").join(target);
    let seeds = dir.join("seeds").join(target);
    fs::create_dir_all(&corpus).unwrap();
    let log_path = dir.join("target").join(format!("{target}.log"));
    let log = fs::File::create(&log_path).unwrap();
    let status = cargo()
        .args(["fuzz", "run", "-s", "none", "--target-dir"])
        .arg(dir.join("target"))
        .arg(target)
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        // libFuzzer reads 0 as "no limit": NDP_FUZZ_SECONDS=0 replays the seeds and the
        // corpus once instead (a quick regression check), without mutating.
        .arg(if seconds == 0 {
            "-runs=0".to_string()
        } else {
            format!("-max_total_time={seconds}")
        })
        // An input that takes 10 s is a hang: fail on it rather than wait 20 minutes.
        .arg("-timeout=10")
        .arg("-print_final_stats=1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .status()
        .unwrap_or_else(|e| panic!("running cargo fuzz run {target}: {e}"));
    Run {
        target,
        status,
        log: fs::read_to_string(&log_path).unwrap_or_default(),
        log_path,
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The panic (or libFuzzer's diagnosis) in a log: from the first line that says what went
/// wrong, up to the backtrace.
fn what_failed(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.contains("panicked at") || l.contains("==ERROR: libFuzzer"))
        .unwrap_or(lines.len());
    lines[start..]
        .iter()
        .take_while(|l| !l.starts_with("stack backtrace"))
        .take(20)
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn fuzz_targets_find_no_crash() {
    let seconds = seconds();
    require_cargo_fuzz();
    let dir = fuzz_dir();
    let build = cargo()
        .args(["fuzz", "build", "-s", "none", "--target-dir"])
        .arg(dir.join("target"))
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "cargo fuzz build -s none failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    // One libFuzzer process per target, side by side (each uses one core).
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = TARGETS
            .iter()
            .map(|t| scope.spawn(move || run_target(t, seconds)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut failures = Vec::new();
    for run in &runs {
        let executions = run.executions();
        eprintln!(
            "{}: {} inputs in {seconds} s (log {})",
            run.target,
            executions.map_or("?".into(), |n| n.to_string()),
            run.log_path.display()
        );
        if !run.status.success() {
            let artifact = run
                .artifact()
                .unwrap_or_else(|| "(no artifact named)".into());
            failures.push(format!(
                "fuzz target {} failed ({}).\nartifact: {artifact}\nreproduce: cargo fuzz run -s none {} {artifact}\n\
                 {}\nlast lines of {}:\n{}",
                run.target,
                run.status,
                run.target,
                what_failed(&run.log),
                run.log_path.display(),
                tail(&run.log, 15)
            ));
        } else if seconds > 0 && executions.is_none_or(|n| n < 1000) {
            // A run that did not really fuzz must not pass for one that found nothing.
            failures.push(format!(
                "fuzz target {} ran only {executions:?} inputs:\n{}",
                run.target,
                tail(&run.log, 40)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The seeds are what the fuzzers start from: each must be a frame the codec accepts, so that
/// the fuzzers begin deep inside the parser and the policy rather than at the Ethernet header.
#[test]
fn seeds_are_real_neighbor_discovery_frames() {
    use ndp_responder::ndp::{NeighborAdvert, NeighborSolicit};
    let dir = fuzz_dir().join("seeds");
    let files = |target: &str| -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = fs::read_dir(dir.join(target))
            .unwrap_or_else(|e| {
                panic!("fuzz/seeds/{target}: {e} (regenerate with fuzz/make-seeds)")
            })
            .map(|e| e.unwrap().path())
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    fs::read(&p).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let wire = files("wire_parse");
    let (mut ns, mut na, mut dad_nonce, mut nud) = (0, 0, 0, 0);
    for (name, frame) in &wire {
        if let Ok(s) = NeighborSolicit::parse(frame) {
            ns += 1;
            dad_nonce += usize::from(s.ip_src.is_unspecified() && s.nonce.is_some());
            nud += usize::from(!s.ip_dst.is_multicast());
            assert!(name.starts_with("ns-"), "{name} is an NS");
        } else {
            NeighborAdvert::parse(frame).unwrap_or_else(|e| panic!("seed {name}: {e}"));
            na += 1;
            assert!(name.starts_with("na-"), "{name} is an NA");
        }
    }
    assert!(
        ns >= 5 && na >= 3 && dad_nonce >= 1 && nud >= 1,
        "seeds lack variety (NS {ns}, NA {na}, DAD with nonce {dad_nonce}, unicast NUD {nud})"
    );
    let policy = files("policy_decide");
    assert_eq!(policy.len(), ns, "one policy_decide seed per NS seed");
    for (name, input) in &policy {
        assert_eq!(input.first(), Some(&0x80), "{name}: selector byte");
        NeighborSolicit::parse(&input[1..]).unwrap_or_else(|e| panic!("seed {name}: {e}"));
        assert!(wire.iter().any(|(_, f)| f[..] == input[1..]), "{name}");
    }
}
