//! Cleaning up after the demo: its lock (one demo at a time), `ndp-responder lab down`, and
//! Ctrl-C (stop the daemons, remove the lab, exit 130).
//!
//! Owns: the lock file in /run, removing the `ndplab-*` namespaces, the signal-waiting thread.
//!
//! Must not: remove any namespace not named `ndplab-*`, or run cleanup inside a signal handler.

use std::fs;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use super::daemon::DAEMON_PIDS;
use super::{preflight, LabError, CREATING, LAB_TAG};
use crate::tools::netns;

/// Set by the Ctrl-C handler: what the demo's own thread returns then no longer matters.
pub(super) static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Where the root-mode demo holds its lock, so that a second run refuses clearly.
pub const LOCK_PATH: &str = "/run/ndp-responder-lab.lock";

/// Take the demo's lock; held until the returned file is dropped (or the process dies).
pub(super) fn lock() -> Result<fs::File, LabError> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_PATH)?;
    // SAFETY: flock on a descriptor we own.
    if unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    } != 0
    {
        return Err(LabError::Busy(LOCK_PATH.into()));
    }
    Ok(file)
}

/// Remove the demo's namespaces, whoever left them (idempotent).
pub fn down() -> Result<ExitCode, LabError> {
    if !netns::privileged() {
        println!("lab down: nothing to remove (an unprivileged lab ends with its process)");
        return Ok(ExitCode::SUCCESS);
    }
    preflight()?;
    let _lock = lock()?;
    let removed = remove_lab_namespaces()?;
    println!("lab down: removed {removed} namespace(s)");
    Ok(ExitCode::SUCCESS)
}

/// Delete every namespace named `ndplab-*`; returns how many there were.
pub(super) fn remove_lab_namespaces() -> Result<usize, LabError> {
    let mut removed = 0;
    let mut failed = None;
    for name in netns::list()? {
        if name.starts_with(&format!("{LAB_TAG}-")) {
            // One that cannot be removed does not keep the others.
            match netns::delete(&name) {
                Ok(_) => removed += 1,
                Err(e) => failed = failed.or(Some(e)),
            }
        }
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(removed),
    }
}

/// On SIGINT, SIGTERM or SIGHUP: stop the daemons, remove the lab, exit 130. The signals are
/// blocked in every thread and taken by one waiting thread, so cleanup never runs inside a
/// signal handler. The daemon is started with a clean signal mask ([`Daemon`]).
pub(super) fn clean_up_on_interrupt(remove_namespaces: bool) {
    // SAFETY: sigset_t is plain data; the calls only change this process's signal mask.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: set is a valid signal set; sig is a valid out-pointer.
        unsafe { libc::sigwait(&set, &mut sig) };
        INTERRUPTED.store(true, Ordering::SeqCst);
        eprintln!("\ninterrupted: stopping the daemon and removing the lab");
        // Never released: the process exits below.
        std::mem::forget(CREATING.lock().unwrap_or_else(|e| e.into_inner()));
        for pid in DAEMON_PIDS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
        if remove_namespaces {
            let _ = remove_lab_namespaces();
        }
        std::process::exit(130);
    });
}
