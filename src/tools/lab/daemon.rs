//! The daemon runner: the real `ndp-responder` started in a namespace, ready when it says so.
//!
//! Owns: starting the binary (clean signal mask, log to a file), giving each daemon its own
//! sd_notify socket and control socket in a temporary directory, waiting for its READY=1 (or,
//! when the caller took NOTIFY_SOCKET for itself, for its control socket to answer), reporting
//! a daemon that exits at start-up with its log, reading its status over the control socket,
//! and stopping it.
//!
//! Must not: interpret the daemon's log. The log is kept for people (assert messages, the
//! demo's evidence); state is read through the daemon's interfaces: [`Daemon::status`],
//! [`Daemon::notifications`].

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{wait_until, LabError, CREATING};
use crate::status::{Counters, Status, UplinkStatus};
use crate::tools::netns;

/// Daemons started by this process, killed by the Ctrl-C handler before it cleans up.
pub(super) static DAEMON_PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// How long a daemon may take to become ready.
const START_WITHIN: Duration = Duration::from_secs(10);

/// How a daemon ended.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    /// Everything it logged (for people: assert messages, the demo).
    pub log: String,
    /// Its last status, read over the control socket just before SIGTERM (None when it had
    /// no control socket, or it did not answer).
    pub last_status: Option<Status>,
    /// Every sd_notify message it sent, STOPPING=1 included (empty when the caller took
    /// NOTIFY_SOCKET for itself).
    pub notifications: Vec<String>,
}

/// The sd_notify messages a daemon sent, drained by a thread of ours (a datagram socket's
/// queue holds only a few, and the daemon's send blocks once it is full).
#[derive(Debug)]
struct Notifications {
    received: Arc<Mutex<Vec<String>>>,
    done: Arc<AtomicBool>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Notifications {
    fn listen(path: &Path) -> std::io::Result<Notifications> {
        let socket = UnixDatagram::bind(path)?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let (r, d) = (received.clone(), done.clone());
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Once told to finish, what is still queued is read, up to the first wait.
            loop {
                match socket.recv(&mut buf) {
                    Ok(n) => {
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        r.lock().unwrap_or_else(|e| e.into_inner()).push(text);
                    }
                    Err(_) if d.load(Ordering::Relaxed) => break,
                    Err(_) => {}
                }
            }
        });
        Ok(Notifications {
            received,
            done,
            reader: Some(reader),
        })
    }

    /// Stop reading (after what is queued) and return everything received.
    fn finish(mut self) -> Vec<String> {
        self.done.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.all()
    }

    fn all(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Notifications {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// The real daemon running in a namespace, its log captured to a file.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
    log_path: PathBuf,
    /// The control socket, unless the daemon was started with none.
    socket: Option<PathBuf>,
    notifications: Option<Notifications>,
}

/// `--control-socket PATH` (or `=PATH`) in `args`, if given: Some(None) for `none`.
fn control_socket_arg(args: &[&str]) -> Option<Option<PathBuf>> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = if *a == "--control-socket" {
            it.next().copied()
        } else {
            a.strip_prefix("--control-socket=")
        };
        if let Some(v) = value {
            return Some((v != "none").then(|| PathBuf::from(v)));
        }
    }
    None
}

/// `control_socket = "..."` in a configuration file given with `-c FILE` in `args`, if any.
fn control_socket_in_file(args: &[&str]) -> Option<Option<PathBuf>> {
    let at = args.iter().position(|a| *a == "-c" || *a == "--config")?;
    let text = fs::read_to_string(args.get(at + 1)?).ok()?;
    let value: toml::Table = text.parse().ok()?;
    let path = value.get("control_socket")?.as_str()?;
    Some((path != "none").then(|| PathBuf::from(path)))
}

impl Daemon {
    /// Start `exe args` in namespace `ns` with extra environment `env`; returns once it is
    /// ready, or an error with its log if it exited or did not become ready in time.
    pub(super) fn start(
        ns: &str,
        exe: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Daemon, LabError> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ndp-responder-{ns}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let log_path = dir.join("daemon.log");
        let log = fs::File::create(&log_path)?;
        // Our own control socket unless the caller chose one (or none), on the command line
        // or in its configuration file.
        let chosen = control_socket_arg(args).or_else(|| control_socket_in_file(args));
        let mut full: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let socket = match chosen {
            Some(chosen) => chosen,
            None => {
                let path = dir.join("control.sock");
                full.push("--control-socket".into());
                full.push(path.display().to_string());
                Some(path)
            }
        };
        // Our own sd_notify socket unless the caller set NOTIFY_SOCKET itself.
        let caller_notify = env.iter().any(|(k, _)| *k == "NOTIFY_SOCKET");
        let notify_path = dir.join("notify.sock");
        let notifications = if caller_notify {
            None
        } else {
            Some(Notifications::listen(&notify_path)?)
        };
        let mut cmd = netns::command(ns, exe);
        // SAFETY: the closure only calls sigprocmask, which is async-signal-safe: the lab
        // blocks SIGINT/SIGTERM for its own cleanup thread, the daemon must not inherit that.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                Ok(())
            });
        }
        cmd.args(&full).env("NDPRESPONDER_LOG", "DEBUG");
        if notifications.is_some() {
            cmd.env("NOTIFY_SOCKET", &notify_path);
        }
        let creating = CREATING.lock().unwrap_or_else(|e| e.into_inner());
        let child = cmd
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        DAEMON_PIDS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child.id());
        drop(creating);
        let mut daemon = Daemon {
            child: Some(child),
            dir,
            log_path,
            socket,
            notifications,
        };
        let how = if daemon.notifications.is_some() {
            "sent no READY=1"
        } else if daemon.socket.is_some() {
            "did not answer on its control socket"
        } else {
            return Err(LabError::Timeout(
                "the lab cannot tell when this daemon is ready: NOTIFY_SOCKET is the caller's and there is no control socket; leave one of them to the lab".into(),
            ));
        };
        let ready = wait_until(START_WITHIN, || daemon.exited() || daemon.is_ready());
        if daemon.exited() {
            return Err(LabError::Timeout(format!(
                "the daemon exited at start-up ({}); its log:\n{}",
                daemon.exit_status(),
                daemon.log()
            )));
        }
        if !ready {
            return Err(LabError::Timeout(format!(
                "the daemon {how} within {START_WITHIN:?}; its log:\n{}",
                daemon.log()
            )));
        }
        Ok(daemon)
    }

    fn is_ready(&self) -> bool {
        match &self.notifications {
            Some(n) => n.all().iter().any(|m| m.lines().any(|l| l == "READY=1")),
            None => self.status().is_some(),
        }
    }

    fn exit_status(&mut self) -> String {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(status))) => status.to_string(),
            _ => "still running".into(),
        }
    }

    /// The daemon's process id (`ip netns exec` execs it, so it is the child's).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Send `signal` (e.g. libc::SIGHUP) to the daemon.
    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(child.id() as i32, signal) };
        }
    }

    /// Everything the daemon has logged so far (for people, not for checks).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Log lines containing every one of `needles`: the demo's evidence for its reader.
    pub fn log_lines(&self, needles: &[&str]) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_string)
            .collect()
    }

    /// The daemon's control socket (None when it was started with `--control-socket none`).
    pub fn socket(&self) -> Option<&Path> {
        self.socket.as_deref()
    }

    /// `ndp-responder status --json`, as the control socket sends it; None while it does
    /// not answer (or there is no control socket).
    pub fn status(&self) -> Option<Status> {
        crate::service::control::query(self.socket.as_deref()?).ok()
    }

    /// The first uplink's status (None while the control socket does not answer).
    pub fn uplink(&self) -> Option<UplinkStatus> {
        self.status().and_then(|s| s.uplinks.into_iter().next())
    }

    /// The first uplink's counters (all zero while the control socket does not answer).
    pub fn counters(&self) -> Counters {
        self.uplink().map(|u| u.counters).unwrap_or_default()
    }

    /// The sd_notify messages received so far, in order (empty when the caller took
    /// NOTIFY_SOCKET for itself). A message may hold several `KEY=value` lines.
    pub fn notifications(&self) -> Vec<String> {
        self.notifications
            .as_ref()
            .map(Notifications::all)
            .unwrap_or_default()
    }

    fn exited(&mut self) -> bool {
        !matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Send SIGTERM and wait (up to 5 s) for a clean exit; returns the exit status, the
    /// whole log and the last status read before the signal.
    pub fn stop(mut self) -> Result<Stopped, LabError> {
        let last_status = self.status();
        let mut child = self.child.take().expect("a running daemon has a child");
        forget_pid(child.id());
        // `ip netns exec` execs the daemon, so the child's pid is the daemon's.
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Stopped {
                    status,
                    log: self.log(),
                    last_status,
                    notifications: self
                        .notifications
                        .take()
                        .map(Notifications::finish)
                        .unwrap_or_default(),
                });
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError::Timeout(
                    "the daemon did not stop within 5 s of SIGTERM".into(),
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn forget_pid(pid: u32) {
    DAEMON_PIDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| *p != pid);
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            forget_pid(child.id());
            let _ = child.kill();
            let _ = child.wait();
        }
        self.notifications = None;
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_control_socket_is_found_in_either_spelling() {
        assert_eq!(control_socket_arg(&["-i", "eth0"]), None);
        assert_eq!(
            control_socket_arg(&["--control-socket", "/x.sock"]),
            Some(Some("/x.sock".into()))
        );
        assert_eq!(
            control_socket_arg(&["--control-socket=/y.sock"]),
            Some(Some("/y.sock".into()))
        );
        assert_eq!(
            control_socket_arg(&["--control-socket", "none"]),
            Some(None)
        );
    }
}
