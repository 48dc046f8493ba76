//! `ndp-responder lab`, the README's first command, run as a user would run it: it must pass
//! every scenario, clean up after itself (also on Ctrl-C), refuse a second concurrent run,
//! keep the lab with --keep until `lab down`, and work without root in a user namespace.
//! These tests share the lab's fixed namespace names, so they take turns.

mod common;

use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::EXE;
use ndp_responder::tools::lab::{wait_until, LAB_TAG};

static TURN: Mutex<()> = Mutex::new(());

fn lab(args: &[&str]) -> Output {
    Command::new(EXE)
        .arg("lab")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn lab_namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{LAB_TAG}-")))
        .map(str::to_string)
        .collect()
}

/// Daemons started by a lab (this build's binary, run with -i).
fn lab_daemons() -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.first() == Some(&EXE.as_bytes()) && args.contains(&&b"-i"[..]) {
            pids.push(pid);
        }
    }
    pids
}

fn assert_every_scenario_passed(out: &Output) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "lab failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Six on the default topology, two on the SLAAC one (guests that autoconfigure).
    assert_eq!(text.matches("[PASS]").count(), 8, "{text}");
    assert!(
        text.contains("guests that autoconfigure")
            || text.contains("Guests that autoconfigure (SLAAC)"),
        "{text}"
    );
    assert!(!text.contains("[FAIL]"), "{text}");
    assert!(
        text.contains("All scenarios behaved as expected."),
        "{text}"
    );
    // Plain text when piped: no colour escapes.
    assert!(!text.contains('\x1b'), "{text}");
}

#[test]
fn demo_passes_every_scenario_and_removes_everything() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let out = lab(&[]);
    assert_every_scenario_passed(&out);
    assert_eq!(lab_namespaces(), Vec::<String>::new());
    assert_eq!(lab_daemons(), Vec::<u32>::new());
}

#[test]
fn second_concurrent_run_refuses_clearly() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let first = Command::new(EXE)
        .arg("lab")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || !lab_namespaces().is_empty()),
        "the first lab never started"
    );
    let second = lab(&[]);
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another `ndp-responder lab` is running"),
        "{err}"
    );
    // The refused run did not disturb the first one.
    assert_every_scenario_passed(&first.wait_with_output().unwrap());
    assert_eq!(lab_namespaces(), Vec::<String>::new());
}

#[test]
fn ctrl_c_stops_the_daemon_and_removes_the_lab() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = Command::new(EXE)
        .arg("lab")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt it while a daemon runs.
    assert!(
        wait_until(Duration::from_secs(30), || !lab_daemons().is_empty()),
        "no daemon started"
    );
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let exited = wait_until(Duration::from_secs(10), || {
        child.try_wait().unwrap().is_some()
    });
    assert!(exited, "lab did not exit on SIGINT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    assert_eq!(lab_namespaces(), Vec::<String>::new());
    assert!(
        wait_until(Duration::from_secs(5), || lab_daemons().is_empty()),
        "daemons left running: {:?}",
        lab_daemons()
    );
}

#[test]
fn keep_leaves_the_lab_until_lab_down_which_is_idempotent() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let out = lab(&["--keep"]);
    assert_every_scenario_passed(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("ip netns exec {LAB_TAG}-router bash")),
        "{text}"
    );
    let kept = lab_namespaces();
    assert_eq!(
        kept.len(),
        14,
        "router, hv, inet, host, three containers; and the SLAAC lab's router, hv, inet, \
         host, neighbour station and two guests: {kept:?}"
    );
    assert!(
        text.contains(&format!("ip netns exec {LAB_TAG}-s-g1 bash")),
        "{text}"
    );

    let down = lab(&["down"]);
    assert!(down.status.success());
    assert!(String::from_utf8_lossy(&down.stdout).contains("removed 14 namespace(s)"));
    assert_eq!(lab_namespaces(), Vec::<String>::new());
    let again = lab(&["down"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("removed 0 namespace(s)"));
}

#[test]
fn runs_without_root_in_a_user_namespace() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    // As "nobody", with no capabilities at all.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            EXE,
            "lab",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_every_scenario_passed(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("in a user namespace, no root needed"));
    // Its namespaces were private to it and are gone with it.
    assert_eq!(lab_namespaces(), Vec::<String>::new());
}
