//! Least privilege: keep only the capabilities the daemon needs while it runs.
//!
//! Owns: dropping every capability but CAP_NET_RAW (packet sockets) and CAP_NET_ADMIN (the
//! receive buffer, and confirming the gateway's neighbour entry) from the bounding, inheritable,
//! ambient, permitted and effective sets, and setting no_new_privs. Under systemd the unit
//! already grants only these two (AmbientCapabilities); started as root by hand, the daemon
//! drops the rest itself once the sockets that may need more (the control socket, a privileged
//! metrics port) are open.
//!
//! Must not: open sockets or change user; it must run while the process has one thread
//! (capabilities are per thread), before the event loop starts.

use caps::{CapSet, Capability, CapsHashSet};

/// What the daemon keeps.
pub const KEEP: [Capability; 2] = [Capability::CAP_NET_RAW, Capability::CAP_NET_ADMIN];

/// What [`drop_extra`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The process had more: all but [`KEEP`] were dropped (this many).
    Dropped(usize),
    /// The process had nothing beyond [`KEEP`] (e.g. started by systemd with the unit's
    /// capabilities); only no_new_privs was set.
    AlreadyMinimal,
}

/// Capabilities of [`KEEP`] that the process does not have (it will fail to open its sockets).
pub fn missing() -> Vec<Capability> {
    let permitted = caps::read(None, CapSet::Permitted).unwrap_or_default();
    KEEP.iter()
        .copied()
        .filter(|c| !permitted.contains(c))
        .collect()
}

/// Drop every capability but [`KEEP`]. Call while the process has a single thread.
pub fn drop_extra() -> Result<Outcome, String> {
    let fail =
        |what: &str, e: caps::errors::CapsError| format!("dropping capabilities ({what}): {e}");
    let permitted = caps::read(None, CapSet::Permitted).map_err(|e| fail("reading", e))?;
    let keep: CapsHashSet = KEEP
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
