//! Least privilege: keep only the capabilities the daemon needs while it runs.
//!
//! Owns: dropping every capability but CAP_NET_RAW (packet sockets) and, only when a feature
//! needs it, CAP_NET_ADMIN (confirming the gateway's neighbour entry: `--gateway-keepalive`)
//! and, while the in-kernel fast path is on (the default), CAP_BPF, CAP_PERFMON and
//! CAP_NET_ADMIN (loading the XDP program: without CAP_PERFMON the verifier refuses the
//! variable packet offsets an option walk needs; and attaching it to the uplink, again
//! whenever the uplink comes back),
//! from the bounding, inheritable, ambient, permitted and effective sets, and setting
//! no_new_privs. (Without CAP_NET_ADMIN the packet sockets' receive queue is capped by
//! net.core.rmem_max; the receive ring carries the load either way.) Under systemd the unit
//! grants at most these two (AmbientCapabilities); started as root by hand, the daemon drops
//! the rest itself once the sockets that may need more (the control socket, a privileged
//! metrics port) are open.
//!
//! Must not: open sockets or change user; it must run while the process has one thread
//! (capabilities are per thread), before the event loop starts.

use caps::{CapSet, Capability, CapsHashSet};

/// What the daemon keeps: CAP_NET_RAW always, CAP_NET_ADMIN when `net_admin` (a feature that
/// writes the kernel's neighbour table is on), CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN when `fast_path`
/// (kept only if the process has them: without, the socket path answers alone).
pub fn keep(net_admin: bool, fast_path: bool) -> Vec<Capability> {
    let mut keep = vec![Capability::CAP_NET_RAW];
    if net_admin || fast_path {
        keep.push(Capability::CAP_NET_ADMIN);
    }
    if fast_path {
        keep.push(Capability::CAP_BPF);
        keep.push(Capability::CAP_PERFMON);
    }
    keep
}

/// How to run without root, for an operator who started the daemon as root by hand.
pub const UNPRIVILEGED_HINT: &str = "to run it without root, use the shipped systemd unit (DynamicUser, AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN CAP_BPF CAP_PERFMON) or grant the binary what it needs: setcap cap_net_raw,cap_net_admin,cap_bpf,cap_perfmon+ep $(command -v ndp-responder)";

/// Does the process still hold CAP_NET_ADMIN (e.g. to turn the keepalive on in a reload)?
pub fn has_net_admin() -> bool {
    caps::has_cap(None, CapSet::Effective, Capability::CAP_NET_ADMIN).unwrap_or(false)
}

/// What [`drop_extra`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The process had more: all but [`keep`] were dropped (this many).
    Dropped(usize),
    /// The process had nothing beyond [`keep`] (e.g. started by systemd with the unit's
    /// capabilities); only no_new_privs was set.
    AlreadyMinimal,
}

/// Capabilities of `keep` that the process does not have (it will fail to open its sockets).
pub fn missing(keep: &[Capability]) -> Vec<Capability> {
    let permitted = caps::read(None, CapSet::Permitted).unwrap_or_default();
    keep.iter()
        .copied()
        .filter(|c| !permitted.contains(c))
        .collect()
}

/// Drop every capability but `keep`. Call while the process has a single thread.
pub fn drop_extra(keep: &[Capability]) -> Result<Outcome, String> {
    let fail =
        |what: &str, e: caps::errors::CapsError| format!("dropping capabilities ({what}): {e}");
    let permitted = caps::read(None, CapSet::Permitted).map_err(|e| fail("reading", e))?;
    let keep: CapsHashSet = keep
        .iter()
        .copied()
        .filter(|c| permitted.contains(c))
        .collect();
    let extra = permitted.difference(&keep).count();
    if extra > 0 {
        // The bounding set can only shrink with CAP_SETPCAP, which a root process has. A
        // capability this kernel does not know fails with EINVAL: nothing to drop there.
        if permitted.contains(&Capability::CAP_SETPCAP) {
            for cap in caps::all() {
                if !keep.contains(&cap) {
                    let _ = caps::drop(None, CapSet::Bounding, cap);
                }
            }
        }
        caps::clear(None, CapSet::Ambient).map_err(|e| fail("ambient", e))?;
        caps::clear(None, CapSet::Inheritable).map_err(|e| fail("inheritable", e))?;
        caps::set(None, CapSet::Effective, &keep).map_err(|e| fail("effective", e))?;
        caps::set(None, CapSet::Permitted, &keep).map_err(|e| fail("permitted", e))?;
    }
    // SAFETY: prctl with integer arguments only; affects this process (inherited by threads).
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "setting no_new_privs: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(if extra > 0 {
        Outcome::Dropped(extra)
    } else {
        Outcome::AlreadyMinimal
    })
}
