//! The two namespaces of one measurement and everything that must be undone.
//!
//! ```text
//!  ndpb<PID>-gen (the router: load generator)      ndpb<PID>-dut (the host: responder under test)
//!  ndpb-gen 02:00:00:00:01:01  ----- veth -----    ndpb-up 02:00:00:00:02:01, 2001:db8:1::2/64
//!  IPv6 off: the kernel here neither sends          forwarding on, DAD off; the prefix
//!  nor answers anything; only our packet sockets    2001:db8:1::d:0/112 is routed to ndpb-down
//!                                                   (a NOARP veth whose peer drops everything)
//! ```
//!
//! Receive processing of each side is steered (RPS) to that side's CPU, so the host's kernel
//! work (delivery to the responder's socket, or all of proxy_ndp) runs on the host's CPU and
//! not inside the generator's send calls.
//!
//! Every namespace and child process is registered here; [`emergency_cleanup`] (Ctrl-C, panic)
//! and the [`Topology`] drop remove them. Names start with `ndpb` followed by our PID, so
//! leftovers of a run that died are recognised and removed by the next run.
//!
//! Owns: the two namespaces and their veth pairs, the kernel proxy's configuration, receive
//! steering, the run's lock (/run/ndp-bench.lock) and the registry that Ctrl-C and a panic
//! clean up. Must not: touch a namespace it did not create (other than a dead run's `ndpb*`).
//!
//! Why not the lab's cleanup (`tools::lab`): its Ctrl-C handler, registries (namespaces being
//! created, daemon pids) and lock are private to the lab and tied to its `ndplab-*` topology
//! and its `Daemon`; the benchmark's namespaces, its ndppd and kernel-proxy runs and its
//! PID-tagged names need their own. The race both fix (a namespace created while the handler
//! cleans up) is closed here the same way: creation holds the registry's lock, and the
//! handler takes it for good ([`interrupted_cleanup`]).

use std::fs;
use std::net::Ipv6Addr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use ndp_responder::ndp::MacAddr;

use crate::sys::{self, bail, ip, ip_batch, sysctl, Context, Result};

pub const NS_TAG: &str = "ndpb";
pub const GEN_IF: &str = "ndpb-gen";
pub const DUT_IF: &str = "ndpb-up";
pub const DOWN_IF: &str = "ndpb-down";
pub const DOWN_PEER: &str = "ndpb-downp";
pub const GEN_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0x01, 0x01]);
pub const DUT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0x02, 0x01]);
/// The prefix under test (a static rule for every responder).
pub const PREFIX: &str = "2001:db8:1::d:0/112";
pub const DUT_ADDR: &str = "2001:db8:1::2/64";
pub const GATEWAY: &str = "2001:db8:1::1";

/// Namespaces that exist now, and responder processes that run now: what a Ctrl-C or a panic
/// must remove.
static NAMESPACES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// Set by [`interrupted_cleanup`]: no namespace is created after it.
static STOPPING: AtomicBool = AtomicBool::new(false);

pub fn register_child(pid: u32) {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
}

pub fn forget_child(pid: u32) {
    CHILDREN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| *p != pid);
}

/// [`emergency_cleanup`] for the signal thread, which exits the process next: it waits for a
/// namespace being created (that one is removed too) and no namespace is created after it.
pub fn interrupted_cleanup() {
    STOPPING.store(true, Ordering::SeqCst);
    // A creation in progress holds the lock until its namespace is registered.
    let namespaces = NAMESPACES.lock().unwrap_or_else(|e| e.into_inner());
    kill_children(CHILDREN.lock().ok());
    for ns in namespaces.iter().rev() {
        let _ = ip(&["netns", "del", ns]);
    }
    // Kept: the process exits next, and nothing may be created meanwhile.
    std::mem::forget(namespaces);
}

/// Kill every child we started and delete every namespace we created (panic hook, and the
/// end of a run). Uses try_lock: a panic while a lock is held must not hang the hook.
pub fn emergency_cleanup() {
    kill_children(CHILDREN.try_lock().ok());
    if let Ok(namespaces) = NAMESPACES.try_lock() {
        for ns in namespaces.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// SIGKILL every registered child and wait (briefly) until each has ended.
fn kill_children(children: Option<std::sync::MutexGuard<'_, Vec<u32>>>) {
    if let Some(children) = children {
        for pid in children.iter() {
            // SAFETY: kill has no memory-safety preconditions; the pid is our own child.
            unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
        }
        // SIGKILL takes effect asynchronously: wait (briefly) until each is gone or a zombie,
        // so that nothing of ours still runs when we exit.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        for pid in children.iter() {
            while std::time::Instant::now() < deadline && !ended(*pid) {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}

/// True when process `pid` no longer runs (gone, or a zombie waiting to be reaped).
fn ended(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rfind(')')
            .and_then(|i| stat[i + 2..].split_whitespace().next().map(|s| s == "Z"))
            .unwrap_or(true)
    })
}

/// Take the benchmark's lock so that two runs never share CPUs, names or interfaces.
pub fn lock() -> Result<fs::File> {
    let path = "/run/ndp-bench.lock";
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .context(|| format!("opening the lock file {path}"))?;
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    };
    if rc != 0 {
        bail!("another ndp-bench is running (lock {path} is held): wait for it to finish, or stop it with Ctrl-C");
    }
    Ok(file)
}

/// Remove namespaces named `ndpb<PID>-*` whose process is gone (a run that was killed), and
/// any process still inside them. Returns how many namespaces were removed.
pub fn remove_stale() -> Result<usize> {
    let out = ip(&["netns", "list"])?;
    let me = std::process::id();
    let mut removed = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name
            .strip_prefix(NS_TAG)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = !ended(pid)
            && fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "ndp-bench");
        if pid == me || alive {
            continue;
        }
        if let Ok(pids) = ip(&["netns", "pids", name]) {
            for p in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                if let Ok(p) = p.parse::<i32>() {
                    // SAFETY: kill has no memory-safety preconditions.
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
            }
        }
        ip(&["netns", "del", name])?;
        removed += 1;
    }
    // Temporary directories of dead runs: ndp-bench-<PID> exactly.
    if let Ok(entries) = fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("ndp-bench-"))
                .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if pid != me && ended(pid) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(removed)
}

/// Which CPU each side runs on (None: one CPU only, nothing pinned or steered).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Cpus {
    pub generator: usize,
    pub host: usize,
}

/// The two namespaces of one responder's measurement.
#[derive(Debug)]
pub struct Topology {
    pub gen: String,
    pub dut: String,
    pub gen_ifindex: u32,
    /// Whether receive steering (RPS) could be set; if not, why.
    pub rps: std::result::Result<(), String>,
}

impl Topology {
    /// Build both namespaces. `solicitors` are the generator's source addresses, each given a
    /// permanent neighbour entry on the host so no responder waits for address resolution.
    pub fn build(solicitors: &[Ipv6Addr], cpus: Option<Cpus>) -> Result<Topology> {
        let pid = std::process::id();
        let gen = format!("{NS_TAG}{pid}-gen");
        let dut = format!("{NS_TAG}{pid}-dut");
        let mut topo = Topology {
            gen: gen.clone(),
            dut: dut.clone(),
            gen_ifindex: 0,
            rps: Ok(()),
        };
        // On error `topo` is dropped, which deletes whatever was created.
        topo.add_netns(&gen)?;
        topo.add_netns(&dut)?;
        for key in ["all", "default"] {
            sysctl(&gen, &format!("net/ipv6/conf/{key}/disable_ipv6"), "1")?;
            sysctl(&dut, &format!("net/ipv6/conf/{key}/accept_dad"), "0")?;
        }
        sysctl(&dut, "net/ipv6/conf/all/forwarding", "1")?;
        let (gen_mac, dut_mac) = (GEN_MAC.to_string(), DUT_MAC.to_string());
        ip(&[
            "link", "add", GEN_IF, "netns", &gen, "address", &gen_mac, "type", "veth", "peer",
            "name", DUT_IF, "netns", &dut, "address", &dut_mac,
        ])?;
        sysctl(&gen, &format!("net/ipv6/conf/{GEN_IF}/disable_ipv6"), "1")?;
        ip(&[
            "-n", &dut, "link", "add", DOWN_IF, "type", "veth", "peer", "name", DOWN_PEER,
        ])?;
        sysctl(
            &dut,
            &format!("net/ipv6/conf/{DOWN_PEER}/disable_ipv6"),
            "1",
        )?;
        ip(&["-n", &dut, "link", "set", DOWN_IF, "arp", "off"])?;
        for (ns, ifname) in [
            (&gen, "lo"),
            (&gen, GEN_IF),
            (&dut, "lo"),
            (&dut, DOWN_PEER),
            (&dut, DOWN_IF),
        ] {
            ip(&["-n", ns, "link", "set", ifname, "up"])?;
        }
        ip(&["-n", &dut, "addr", "add", DUT_ADDR, "dev", DUT_IF, "nodad"])?;
        ip(&["-n", &dut, "link", "set", DUT_IF, "up"])?;
        ip(&[
            "-n", &dut, "-6", "route", "add", "default", "via", GATEWAY, "dev", DUT_IF,
        ])?;
        ip(&["-n", &dut, "-6", "route", "add", PREFIX, "dev", DOWN_IF])?;
        let mut neigh = vec![format!(
            "neigh replace {GATEWAY} lladdr {gen_mac} dev {DUT_IF} nud permanent"
        )];
        neigh.extend(solicitors.iter().map(|addr| {
            format!("neigh replace {addr} lladdr {gen_mac} dev {DUT_IF} nud permanent")
        }));
        ip_batch(&dut, &neigh)?;
        topo.gen_ifindex = sys::ifindex_in(&gen, GEN_IF)?;
        if let Some(cpus) = cpus {
            topo.rps = steer(&dut, DUT_IF, cpus.host)
                .and_then(|()| steer(&gen, GEN_IF, cpus.generator))
                .map_err(|e| e.to_string());
        } else {
            topo.rps = Err("one CPU only".into());
        }
        Ok(topo)
    }

    fn add_netns(&mut self, name: &str) -> Result<()> {
        // Created and registered under the lock, so that an interrupt removes it too.
        let mut registry = NAMESPACES.lock().unwrap_or_else(|e| e.into_inner());
        if STOPPING.load(Ordering::SeqCst) {
            // Interrupted: the signal thread is about to exit the process with 130.
            drop(registry);
            loop {
                std::thread::park();
            }
        }
        ip(&["netns", "add", name])?;
        registry.push(name.to_string());
        Ok(())
    }

    /// Delete both namespaces (idempotent).
    pub fn remove(&mut self) {
        let mut registry = NAMESPACES.lock().unwrap_or_else(|e| e.into_inner());
        for ns in [&self.dut, &self.gen] {
            if registry.contains(ns) {
                let _ = ip(&["netns", "del", ns]);
                registry.retain(|n| n != ns);
            }
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Steer the receive processing of `ifname` in `ns` to `cpu` (RPS on every receive queue).
/// Written through `ip netns exec`, which mounts the namespace's own /sys.
fn steer(ns: &str, ifname: &str, cpu: usize) -> Result<()> {
    let mask = format!("{:x}", 1u128 << cpu.min(127));
    let script = format!(
        "set -e; found=0; for q in /sys/class/net/{ifname}/queues/rx-*; do \
         echo {mask} > $q/rps_cpus; found=1; done; test $found = 1"
    );
    sys::run(Command::new("ip").args(["netns", "exec", ns, "sh", "-c", &script]))
        .map(|_| ())
        .context(|| format!("steering receive processing of {ifname} to CPU {cpu} (RPS)"))
}

/// The kernel's own proxy: proxy_ndp on, no random delay on the uplink, one proxy entry per
/// target.
pub fn enable_kernel_proxy(dut: &str, targets: &[Ipv6Addr]) -> Result<()> {
    sysctl(dut, "net/ipv6/conf/all/proxy_ndp", "1")?;
    sysctl(dut, &format!("net/ipv6/conf/{DUT_IF}/proxy_ndp"), "1")?;
    sysctl(dut, &format!("net/ipv6/neigh/{DUT_IF}/proxy_delay"), "0")?;
    let lines: Vec<String> = targets
        .iter()
        .map(|t| format!("neigh add proxy {t} dev {DUT_IF}"))
        .collect();
    ip_batch(dut, &lines)
}

/// True when the kernel has a proxy entry for `target` (a check that the configuration took).
pub fn kernel_proxy_entries(dut: &str) -> Result<usize> {
    let out = ip(&["-n", dut, "-6", "neigh", "show", "proxy"])?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count())
}
