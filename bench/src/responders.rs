//! The responders under test, and the processes that run them.
//!
//! Owns: each responder's command line and configuration, starting it in the host namespace
//! (pinned to the host's CPU, with a clean signal mask and PDEATHSIG), stopping it, and the
//! versions the report names. Must not: measure, or touch anything outside the host namespace
//! and the run's temporary directory.
//!
//! Not the lab's `tools::lab::Daemon`: that one runs only ndp-responder (at DEBUG, waiting for
//! its "answering on" line) and cannot pin it to a CPU; the benchmark also runs ndppd.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sys::{self, bail, Context, Result};
use crate::topo::{self, DUT_IF, PREFIX};

/// Who answers on the host.
#[allow(clippy::enum_variant_names)] // NdpResponder is the product's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Responder {
    /// Nobody: what delivering the solicitations to the host costs by itself.
    Baseline,
    /// ndp-responder as shipped: its in-kernel fast path on (the default).
    NdpResponder,
    /// ndp-responder with `--no-fast-path`: the packet socket answers everything.
    NdpResponderSocket,
    Ndppd,
    /// The kernel's proxy_ndp with one proxy entry per target.
    Kernel,
}

impl Responder {
    pub fn name(&self) -> &'static str {
        match self {
            Responder::Baseline => "no responder (baseline)",
            Responder::NdpResponder => "ndp-responder",
            Responder::NdpResponderSocket => "ndp-responder --no-fast-path",
            Responder::Ndppd => "ndppd",
            Responder::Kernel => "kernel proxy_ndp",
        }
    }

    pub fn parse(s: &str) -> Option<Responder> {
        match s {
            "baseline" => Some(Responder::Baseline),
            "ndp-responder" => Some(Responder::NdpResponder),
            "ndp-responder-socket" => Some(Responder::NdpResponderSocket),
            "ndppd" => Some(Responder::Ndppd),
            "kernel" => Some(Responder::Kernel),
            _ => None,
        }
    }
}

/// A process started inside the host namespace, its stderr and stdout in a log file. Killed
/// on drop (and by the emergency cleanup, and by the kernel if ndp-bench dies: PDEATHSIG).
pub struct Process {
    child: Option<Child>,
    pub pid: u32,
    log: PathBuf,
    pub what: String,
}

impl Process {
    pub fn spawn(
        ns: &str,
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        log: PathBuf,
        cpu: Option<usize>,
        what: &str,
    ) -> Result<Process> {
        let file = fs::File::create(&log).context(|| format!("creating {}", log.display()))?;
        let err = file
            .try_clone()
            .context(|| format!("duplicating {}", log.display()))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err);
        // SAFETY: the closure only makes async-signal-safe system calls: it clears the signal
        // mask that ndp-bench blocks for its signal thread (the child must take SIGTERM),
        // asks for SIGKILL when ndp-bench dies, and pins the child to the host's CPU.
        unsafe {
            cmd.pre_exec(move || {
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                if let Some(cpu) = cpu {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .context(|| format!("starting {what} ({})", program.display()))?;
        let pid = child.id();
        topo::register_child(pid);
        Ok(Process {
            child: Some(child),
            pid,
            log,
            what: what.to_string(),
        })
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(15);
        lines[from..].join("\n")
    }

    /// An error naming the process and ending with its log, if it has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} is not running", self.what);
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!(
                "{} exited unexpectedly ({status}); the last lines of its log:\n{}",
                self.what,
                self.log_tail()
            ),
            Err(e) => bail!("checking on {}: {e}", self.what),
        }
    }

    /// Wait until the log contains `needle`; an error (with the log) if it exits or
    /// `within` passes first.
    pub fn wait_for_log(&mut self, needle: &str, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if self.log().contains(needle) {
                return Ok(());
            }
            self.check_alive()?;
            if Instant::now() >= deadline {
                bail!(
                    "{} did not log \"{needle}\" within {} s; its log:\n{}",
                    self.what,
                    within.as_secs(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then wait up to 5 s (SIGKILL after that). Returns the whole log.
    pub fn stop(mut self) -> Result<String> {
        let Some(mut child) = self.child.take() else {
            return Ok(self.log());
        };
        topo::forget_child(self.pid);
        // SAFETY: kill has no memory-safety preconditions; the pid is our child.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(self.log()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!(
                        "{} did not stop within 5 s of SIGTERM (killed); its log:\n{}",
                        self.what,
                        self.log_tail()
                    );
                }
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            topo::forget_child(self.pid);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The arguments ndp-responder runs with: a static rule for the prefix, then `extra`.
pub fn ndp_responder_args(extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = ["-i", DUT_IF, "-n", PREFIX].map(String::from).to_vec();
    args.extend(extra.iter().cloned());
    args
}

/// ndp-responder with a static rule for the prefix (and `extra` arguments).
pub fn start_ndp_responder(
    dut: &str,
    daemon: &Path,
    extra: &[String],
    dir: &Path,
    cpu: Option<usize>,
) -> Result<Process> {
    let args = ndp_responder_args(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Process::spawn(
        dut,
        daemon,
        &args,
        &[("NDPRESPONDER_LOG", "INFO")],
        dir.join("ndp-responder.log"),
        cpu,
        "ndp-responder",
    )
}

/// ndp-responder in Docker mode with no engine: DOCKER_HOST names a socket that does not
/// exist, so it idles retrying.
pub fn start_ndp_responder_docker(
    dut: &str,
    daemon: &Path,
    dir: &Path,
    cpu: Option<usize>,
) -> Result<Process> {
    let socket = format!("unix://{}/no-docker-engine.sock", dir.display());
    Process::spawn(
        dut,
        daemon,
        &["-i", DUT_IF, "-N", "ndpb-no-such-network"],
        &[("NDPRESPONDER_LOG", "INFO"), ("DOCKER_HOST", &socket)],
        dir.join("ndp-responder-docker.log"),
        cpu,
        "ndp-responder (Docker mode)",
    )
}

/// The ndppd configuration: one static rule for the prefix on the uplink.
pub fn ndppd_config() -> String {
    format!("proxy {DUT_IF} {{\n    rule {PREFIX} {{\n        static\n    }}\n}}\n")
}

/// ndppd in the foreground with its own configuration file.
pub fn start_ndppd(dut: &str, ndppd: &Path, dir: &Path, cpu: Option<usize>) -> Result<Process> {
    let conf = dir.join("ndppd.conf");
    fs::write(&conf, ndppd_config()).context(|| format!("writing {}", conf.display()))?;
    let conf = conf.display().to_string();
    Process::spawn(
        dut,
        ndppd,
        &["-c", &conf],
        &[],
        dir.join("ndppd.log"),
        cpu,
        "ndppd",
    )
}

/// `ndp-responder --version`.
pub fn ndp_responder_version(daemon: &Path) -> String {
    Command::new(daemon)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown (--version failed)".into())
}

/// The Debian package version and the version ndppd prints at start.
pub fn ndppd_version(ndppd: &Path, dir: &Path) -> String {
    let package = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "ndppd"])
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    // With a configuration file that does not exist, ndppd prints its banner and exits.
    let missing = dir.join("no-such-ndppd.conf");
    let banner = Command::new(ndppd)
        .arg("-c")
        .arg(&missing)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()
        .and_then(|mut child| {
            let deadline = Instant::now() + Duration::from_secs(3);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break child.wait_with_output().ok(),
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break None;
                    }
                }
            }
        })
        .and_then(|out| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            text.lines()
                .find(|l| l.contains("version"))
                .map(|l| l.trim().to_string())
        });
    match (package, banner) {
        (Some(p), Some(b)) => format!("Debian package {p} (its banner: \"{b}\")"),
        (Some(p), None) => format!("Debian package {p}"),
        (None, Some(b)) => format!("not a Debian package; banner \"{b}\""),
        (None, None) => "unknown".into(),
    }
}

/// Find `ndppd`: a path as given, else on PATH (also /usr/sbin, where Debian puts it).
pub fn find_ndppd(given: &str) -> Result<PathBuf> {
    if given.contains('/') {
        let p = PathBuf::from(given);
        if p.is_file() {
            return Ok(p);
        }
        bail!("ndppd not found at {given}: apt-get install ndppd, or pass --ndppd PATH");
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(given))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            sys::Error(format!(
                "'{given}' is not installed, and the benchmark compares against it: \
                 apt-get install ndppd (or run .ci/run, which installs it)"
            ))
        })
}
