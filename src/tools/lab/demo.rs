//! The built-in demo, `ndp-responder lab`: every scenario on the default topology, with a
//! PASS/FAIL line and the evidence (the daemon's own log lines, the router's neighbour table,
//! the anti-spoof filter's counter) for a person to read.
//!
//! Owns: the scenarios and their output.
//!
//! Must not: be what the tests check (they drive [`super::Topology`] and [`super::Daemon`]
//! themselves and read state through the daemon's interfaces); the log lines shown here are
//! evidence for people only.

use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::thread;

use super::cleanup::{clean_up_on_interrupt, lock, remove_lab_namespaces, INTERRUPTED};
use super::{
    container_addr, preflight, Daemon, LabError, Topology, BRIDGE_ADDR, CONTAINER_PREFIX, GATEWAY,
    HOST_ADDR, INTERNET_ADDR, LAB_TAG,
};
use crate::tools::netns;

/// Styling of the demo's output: colour on a terminal, plain text when piped.
struct Style {
    colour: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn verdict(&self, ok: bool, expected: bool, text: &str) {
        let mark = if ok == expected {
            self.paint("32", "PASS")
        } else {
            self.paint("31", "FAIL")
        };
        let state = if ok {
            self.paint("1", "reachable")
        } else {
            self.paint("1", "unreachable")
        };
        println!("[{mark}] {text}: container {state}");
    }
    fn evidence(&self, text: &str) {
        println!("       {}", self.paint("2", text));
    }
}

/// The built-in demo: every scenario on the embedded default topology.
pub fn demo(keep: bool) -> Result<ExitCode, LabError> {
    let result = run_demo(keep);
    // Interrupted: the commands of a scenario fail as its namespaces go; the handler's
    // thread is cleaning up and exits with 130, which must not be pre-empted.
    while INTERRUPTED.load(Ordering::SeqCst) {
        thread::park();
    }
    result
}

fn run_demo(keep: bool) -> Result<ExitCode, LabError> {
    // SAFETY: geteuid has no preconditions.
    let unprivileged = unsafe { libc::geteuid() } != 0;
    if unprivileged {
        if keep {
            return Err(LabError::NotRoot);
        }
        netns::enter_user_namespace()?;
    }
    preflight()?;
    let exe = std::env::current_exe()?;
    let _lock = if unprivileged { None } else { Some(lock()?) };
    clean_up_on_interrupt(!unprivileged);
    let style = Style {
        colour: io::stdout().is_terminal(),
    };
    if !unprivileged {
        // A lab left behind by --keep or a crash would make namespace creation fail.
        let left = remove_lab_namespaces()?;
        if left > 0 {
            println!("Removed {left} namespace(s) left by an earlier lab.");
        }
    }
    let mode = if unprivileged {
        "in a user namespace, no root needed"
    } else {
        "as root"
    };
    println!("Building the provider topology in network namespaces {LAB_TAG}-* ({mode}):");
    println!("  Internet {INTERNET_ADDR} -- router {GATEWAY} (Linux) -- hypervisor bridge with anti-spoof filter");
    println!(
        "  -- host {HOST_ADDR} -- br0 {BRIDGE_ADDR} -- containers {} and {}",
        container_addr(1),
        container_addr(2)
    );
    let mut topo = Topology::build(LAB_TAG, 2)?;
    let ct = container_addr(1);
    let mut failures = 0;
    let mut check = |ok: bool, expected: bool, text: &str| {
        style.verdict(ok, expected, text);
        if ok != expected {
            failures += 1;
        }
    };
    let answered = |daemon: &Daemon, addr: &str| {
        daemon
            .log_lines(&["answered", addr])
            .last()
            .map(|line| line.split("answered ").nth(1).unwrap_or(line).to_string())
            .unwrap_or_else(|| "no NS answered".into())
    };
    let neighbour = |topo: &Topology, addr: &str| -> Result<String, LabError> {
        Ok(format!(
            "router's neighbour table: {}",
            topo.router_neighbour(addr)?
                .unwrap_or_else(|| "no entry".into())
        ))
    };

    let ok = topo.ping_from_router(INTERNET_ADDR, &ct, 3)?;
    check(ok, false, "no responder");
    style.evidence(&neighbour(&topo, &ct)?);

    let daemon = topo.start_daemon(&exe, &["-n", CONTAINER_PREFIX, "--source", "link-local"])?;
    topo.router_forget(&ct)?;
    let drops_before = topo.antispoof_drops()?;
    let ok = topo.ping_from_router(INTERNET_ADDR, &ct, 3)?;
    check(
        ok,
        false,
        "link-local-sourced NAs (what proxy_ndp and ndppd send)",
    );
    style.evidence(&answered(&daemon, &ct));
    style.evidence(&format!(
        "anti-spoof filter dropped {} NA(s); {}",
        topo.antispoof_drops()? - drops_before,
        neighbour(&topo, &ct)?
    ));
    daemon.stop()?;

    let daemon = topo.start_daemon(&exe, &["-n", CONTAINER_PREFIX])?;
    for (src, who) in [
        (
            INTERNET_ADDR,
            "ndp-responder, router solicits from link-local (forwarded traffic)",
        ),
        (
            GATEWAY,
            "ndp-responder, router solicits from its global address",
        ),
    ] {
        topo.router_forget(&ct)?;
        let ok = topo.ping_from_router(src, &ct, 3)?;
        check(ok, true, who);
        style.evidence(&answered(&daemon, &ct));
        style.evidence(&neighbour(&topo, &ct)?);
    }
    let ct2 = container_addr(2);
    let ok = topo.ping_from_router(INTERNET_ADDR, &ct2, 3)?;
    check(ok, true, &format!("second container {ct2}"));

    let n = topo.add_container()?;
    let ct3 = container_addr(n);
    let ok = topo.ping_from_router(INTERNET_ADDR, &ct3, 3)?;
    check(
        ok,
        true,
        &format!("container {ct3} added while the daemon runs"),
    );
    style.evidence(&answered(&daemon, &ct3));

    let stopped = daemon.stop()?;
    style.evidence(&format!("daemon stopped on SIGTERM: {}", stopped.status));

    if keep {
        let names = topo.namespaces().to_vec();
        std::mem::forget(topo);
        println!("\nThe lab stays up. Enter a namespace with:");
        for ns in names {
            println!("  ip netns exec {ns} bash");
        }
        println!(
            "Start the daemon: ip netns exec {LAB_TAG}-host {} -i eth0 -n {CONTAINER_PREFIX}",
            exe.display()
        );
        println!("Remove the lab:   ndp-responder lab down");
    } else {
        topo.remove();
    }
    if failures == 0 {
        println!("\nAll scenarios behaved as expected.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("\n{failures} scenario(s) did not behave as expected.");
        Ok(ExitCode::FAILURE)
    }
}
