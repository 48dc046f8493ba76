//! The built-in demo, `ndp-responder lab`: every scenario on the default topology (and the
//! SLAAC one on the SLAAC topology: guests that autoconfigure), with a
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
use std::time::Duration;

use super::cleanup::{clean_up_on_interrupt, lock, remove_lab_namespaces, INTERRUPTED};
use super::{
    container_addr, preflight, Daemon, LabError, Topology, BRIDGE_ADDR, CONTAINER_PREFIX, GATEWAY,
    HOST_ADDR, INTERNET_ADDR, LAB_TAG, UPLINK_PREFIX,
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
        self.verdict_of("container", ok, expected, text);
    }
    fn verdict_of(&self, who: &str, ok: bool, expected: bool, text: &str) {
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
        println!("[{mark}] {text}: {who} {state}");
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

    let (slaac_failures, slaac_topo) = slaac_scenario(&exe, &style)?;
    failures += slaac_failures;

    if keep {
        let slaac_names = slaac_topo.namespaces().to_vec();
        std::mem::forget(slaac_topo);
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
        println!("The SLAAC lab (guests that autoconfigure behind br0):");
        for ns in slaac_names {
            println!("  ip netns exec {ns} bash");
        }
        println!(
            "Start the daemon: ip netns exec {SLAAC_TAG}-host {} -i eth0 --slaac br0",
            exe.display()
        );
        println!("Remove the lab:   ndp-responder lab down");
    } else {
        topo.remove();
        drop(slaac_topo);
    }
    if failures == 0 {
        println!("\nAll scenarios behaved as expected.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("\n{failures} scenario(s) did not behave as expected.");
        Ok(ExitCode::FAILURE)
    }
}

/// The SLAAC lab's namespace names start with this (and so with [`LAB_TAG`]: `lab down`
/// removes them too).
const SLAAC_TAG: &str = "ndplab-s";

/// "Guests that autoconfigure (SLAAC)": two guests behind br0 with nothing configured by
/// hand get addresses from the uplink's /64 (one also a temporary one) once the daemon runs
/// with `--slaac br0`, and the Internet reaches them through the anti-spoof filter. How many
/// scenarios failed, and the topology (kept with --keep).
fn slaac_scenario(exe: &std::path::Path, style: &Style) -> Result<(u32, Topology), LabError> {
    println!();
    println!("Guests that autoconfigure (SLAAC): the same provider, and behind the host's br0 (no address of its own) two");
    println!("guests whose kernel does everything (router solicitation, SLAAC, DAD, temporary addresses); run with --slaac br0:");
    let topo = Topology::build_slaac(SLAAC_TAG, 2)?;
    let prefix: ipnet::Ipv6Net = UPLINK_PREFIX.parse().expect("a valid prefix");
    let daemon = topo.start_daemon(exe, &["--slaac", "br0"])?;
    let mut failures = 0;
    for (n, temporary, what) in [
        (1, false, "SLAAC guest 1, its stable address"),
        (2, true, "SLAAC guest 2, its temporary (privacy) address"),
    ] {
        let addr = topo.wait_guest_addr(n, prefix, temporary, Duration::from_secs(20))?;
        let ok = match &addr {
            Some(a) => topo.ping_from_router(INTERNET_ADDR, &a.to_string(), 3)?,
            None => false,
        };
        let text = match &addr {
            Some(a) => format!("{what} {a}, from {INTERNET_ADDR}"),
            None => format!("{what}: none autoconfigured within 20 s"),
        };
        style.verdict_of("guest", ok, true, &text);
        if !ok {
            failures += 1;
        }
        style.evidence(&format!(
            "guest's default route: {}",
            topo.guest_default_route(n)?
                .unwrap_or_else(|| "none".into())
        ));
        if let Some(a) = addr {
            style.evidence(&format!(
                "router's neighbour table: {}",
                topo.router_neighbour(&a.to_string())?
                    .unwrap_or_else(|| "no entry".into())
            ));
        }
    }
    let routes = topo.host_slaac_routes()?;
    style.evidence(&format!(
        "host's routes of ndp-responder: {}",
        if routes.is_empty() {
            "none".to_string()
        } else {
            routes
                .iter()
                .map(|(a, dev)| format!("{a} dev {dev}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    style.evidence(&format!(
        "hypervisor dropped {} frame(s) with a guest's MAC, {} link-local-sourced NA(s)",
        topo.mac_filter_drops()?,
        topo.antispoof_drops()?
    ));
    let stopped = daemon.stop()?;
    style.evidence(&format!(
        "daemon stopped on SIGTERM: {}; routes left: {}",
        stopped.status,
        topo.host_slaac_routes()?.len()
    ));
    Ok((failures, topo))
}
