//! The provider topology in network namespaces, for `ndp-responder lab` and the end-to-end tests.
//!
//! Owns: the lab's addresses and names, its error type, the check before anything is built,
//! and [`wait_until`]; one module per duty: [`topology`] (the namespaces and what is done to
//! them, on [`crate::tools::netns`]), [`guests`] (the SLAAC topology: guests that
//! autoconfigure behind the host's bridge), [`daemon`] (the real daemon started there, ready when
//! it says READY=1), [`demo`] (`ndp-responder lab`), [`cleanup`] (the lock, `lab down`,
//! Ctrl-C). The tests use the same [`Topology`] and [`Daemon`], so the demo and the tests
//! cannot drift apart.
//!
//! ```text
//!  router ns                 hypervisor ns (bridge + anti-spoof nftables)       host ns                      container ns
//!  i0 2001:db8:ff::1/64 ---- inet ns 2001:db8:ff::2 (the Internet stand-in)
//!  r0 2001:db8:1::1/64 ---- to-router [hvbr] to-host ---- eth0 2001:db8:1::2/64   br0 2001:db8:1::d:1/112 ---- eth0 2001:db8:1::d:2/112
//!  (the provider's router)   drops NAs from the host with a link-local source     (runs ndp-responder)        (ct1, ct2, ...)
//!                            for a target that is not link-local
//! ```
//!
//! Must not: touch anything outside the namespaces it creates (besides each daemon's
//! directory in the temporary directory, with its log, control and notify sockets, removed
//! with it, and the demo's lock file in /run); every address is in the documentation prefix
//! 2001:db8::/32.

mod cleanup;
mod daemon;
mod demo;
mod guests;
mod topology;

use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

pub use cleanup::{down, LOCK_PATH};
pub use daemon::{Daemon, Stopped};
pub use demo::demo;
pub use guests::{
    guest_mac, GuestAddr, GUEST_BRIDGE_MAC, NEIGHBOUR_ADDR, UPLINK_MTU, UPLINK_PREFIX,
};
pub use topology::Topology;

use crate::tools::netns;

/// The router's (gateway's) address on the provider link.
pub const GATEWAY: &str = "2001:db8:1::1";
/// The host's own address on the uplink.
pub const HOST_ADDR: &str = "2001:db8:1::2";
/// The prefix routed to the container bridge; the daemon answers for it.
pub const CONTAINER_PREFIX: &str = "2001:db8:1::d:0/112";
/// The bridge's own address, inside the container prefix.
pub const BRIDGE_ADDR: &str = "2001:db8:1::d:1";
/// A host behind the router that stands for the Internet: the router forwards its traffic,
/// so the router solicits from its link-local address (and confirms nothing by itself).
pub const INTERNET_ADDR: &str = "2001:db8:ff::2";
/// The host's uplink MAC, fixed so that the evidence is easy to read.
pub const HOST_MAC: &str = "02:00:00:00:02:01";
/// The router's MAC.
pub const ROUTER_MAC: &str = "02:00:00:00:01:01";
/// The name prefix of the demo's namespaces; `lab down` removes exactly these.
pub const LAB_TAG: &str = "ndplab";

/// The address of container `n` (1-based): 2001:db8:1::d:2, ::d:3, ...
pub fn container_addr(n: usize) -> String {
    format!("2001:db8:1::d:{:x}", n + 1)
}

/// Held while a namespace is created or a daemon started; the Ctrl-C handler takes it for
/// good, so that nothing new appears while (or after) it cleans up.
static CREATING: Mutex<()> = Mutex::new(());

/// Something in the lab failed, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("the lab needs root to create network namespaces: run it as root (e.g. with sudo)")]
    NotRoot,
    #[error(
        "another `ndp-responder lab` is running (lock {0} is held): wait for it to finish, \
         or stop it with Ctrl-C"
    )]
    Busy(String),
    #[error("'{0}' is not installed: apt-get install {1}")]
    MissingTool(&'static str, &'static str),
    #[error(transparent)]
    Netns(#[from] netns::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Timeout(String),
}

/// Check what the lab needs before touching anything.
pub fn preflight() -> Result<(), LabError> {
    if !netns::privileged() {
        return Err(LabError::NotRoot);
    }
    for (tool, package) in [
        ("ip", "iproute2"),
        ("nft", "nftables"),
        ("ping", "iputils-ping"),
    ] {
        if !netns::have_tool(tool) {
            return Err(LabError::MissingTool(tool, package));
        }
    }
    Ok(())
}

/// Poll `cond` every 20 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}
