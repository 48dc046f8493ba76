//! From the command line to a running service: which configuration (flags or file), which
//! control socket and mode, which metrics address; the signal mask the daemon needs.
//!
//! Owns: resolving the flags against the file's top-level keys (flags win), and refusing a bad
//! command line or file with exit status 2.
//!
//! Must not: parse values (that is [`crate::config`]) or run anything itself.

use std::process::ExitCode;

use crate::config::{self, args};

use super::{ControlSocket, Setup};

/// Run the daemon as the flags (and the configuration file they name, or the default one)
/// say, until SIGTERM/SIGINT.
pub fn start(args: args::RunArgs) -> ExitCode {
    // A parent may have left the signals blocked; the daemon must see them to stop and reload.
    // SAFETY: sigset_t is plain data; this only changes the calling thread's mask before any
    // other thread exists.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    let (uplinks, config_path, file) = match &args.ifname {
        Some(_) => match config::from_flags(&args) {
            Ok(options) => (vec![options], None, None),
            Err(e) => {
                eprintln!("ndp-responder: {e}");
                return ExitCode::from(2);
            }
        },
        None => {
            let path = args
                .config
                .clone()
                .unwrap_or_else(|| config::DEFAULT_PATH.into());
            match config::load(&path) {
                Ok(config) => {
                    for warning in &config.warnings {
                        tracing::warn!("{warning}");
                    }
                    (config.uplinks.clone(), Some(path), Some(config))
                }
                Err(e) => {
                    eprintln!("ndp-responder: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let mode = args
        .control_mode
        .or(file.as_ref().and_then(|f| f.control_mode))
        .unwrap_or(config::DEFAULT_CONTROL_MODE);
    let socket = |path: std::path::PathBuf, explicit| {
        Some(ControlSocket {
            path,
            mode,
            explicit,
        })
    };
    let control = match (
        args.control_socket.as_deref(),
        file.as_ref().and_then(|f| f.control.clone()),
    ) {
        (Some("none"), _) | (None, Some(None)) => None,
        (Some(path), _) => socket(path.into(), true),
        (None, Some(Some(path))) => socket(path, true),
        (None, None) => socket(config::DEFAULT_CONTROL_SOCKET.into(), false),
    };
    super::run(Setup {
        uplinks,
        config: config_path,
        control,
        metrics: args.metrics.or(file.as_ref().and_then(|f| f.metrics)),
    })
}
