//! A bounded coverage-guided fuzz run of each target in `fuzz/` (cargo-fuzz, libFuzzer), from
//! the seed corpus of real kernel captures (`fuzz/seeds`, made by `fuzz/make-seeds`): 30 s each
//! by default, `NDP_FUZZ_SECONDS` to change it. A crash fails the test with the input's path
//! and the command that reproduces it; the fix gets a unit regression test next to the code.

use std::path::PathBuf;
use std::process::Command;

const TARGETS: [&str; 2] = ["wire_parse", "policy_decide"];

#[test]
fn fuzz_targets_survive_a_bounded_run() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let version = Command::new("cargo").args(["fuzz", "--version"]).output();
    assert!(
        version.is_ok_and(|o| o.status.success()),
        "the fuzz test needs cargo-fuzz: cargo install cargo-fuzz --locked (or run .ci/run)"
    );
    let seconds: u64 = std::env::var("NDP_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let work = std::env::temp_dir().join(format!("ndp-fuzz-{}", std::process::id()));
    for target in TARGETS {
        let corpus = work.join("corpus").join(target);
        let artifacts = work.join("artifacts").join(target);
        std::fs::create_dir_all(&corpus).unwrap();
        std::fs::create_dir_all(&artifacts).unwrap();
        let seeds = root.join("fuzz/seeds").join(target);
        assert!(
            std::fs::read_dir(&seeds).is_ok_and(|mut d| d.next().is_some()),
            "no seeds in {} (run fuzz/make-seeds)",
            seeds.display()
        );
        // `-s none`: no sanitizer, so the stable toolchain builds it; libFuzzer's coverage
        // instrumentation stays. The fuzz crate has its own target directory (fuzz/target).
        let out = Command::new("cargo")
            .current_dir(&root)
            .env_remove("CARGO_TARGET_DIR")
            .args(["fuzz", "run", "-s", "none", "--fuzz-dir", "fuzz", target])
            .arg(&corpus)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        let found: Vec<PathBuf> = std::fs::read_dir(&artifacts)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(
            out.status.success() && found.is_empty(),
            "fuzz target {target} failed; inputs: {found:?}\nreproduce: cargo fuzz run -s none --fuzz-dir fuzz {target} INPUT\n{}",
            log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
        );
        let runs = log
            .lines()
            .find(|l| l.starts_with("Done "))
            .unwrap_or("no 'Done' line");
        eprintln!("{target}: {runs}");
        assert!(
            log.contains("Done "),
            "{target} did not finish a run:\n{log}"
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}
