//! The service: the uplinks as one daemon, as an operator and systemd see it.
//!
//! Owns: starting one [`daemon`] task per uplink, the signals (SIGTERM/SIGINT stop, SIGHUP
//! reloads the configuration file), applying a reload (kept uplinks in place with no gap in
//! answering, new ones started, removed ones stopped; an invalid file is refused and the
//! running configuration stays), the status it reports, the control socket and metrics
//! endpoint tasks, dropping capabilities, and systemd notifications (READY=1, RELOADING=1,
//! STOPPING=1, STATUS=, WATCHDOG=1).
//!
//! Must not: touch packets or the kernel's state; that is the uplinks' [`daemon`].

pub mod commands;
pub mod control;
pub mod logging;
pub mod metrics;
pub mod privileges;
pub mod setup;
pub mod windows;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use sd_notify::NotifyState;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::config::{self, Config};
use crate::status::Counters;
use crate::status::{Status, UplinkStatus};
use crate::uplink::{self, Control, DaemonError, Options, Request};
use control::SocketFile;

/// Where the control socket goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlSocket {
    pub path: PathBuf,
    pub mode: u32,
    /// Configured explicitly: failing to bind it is an error. The default path is best effort
    /// (another daemon may hold it), with a warning.
    pub explicit: bool,
}

/// What the service runs.
#[derive(Debug)]
pub struct Setup {
    pub uplinks: Vec<Options>,
    /// The configuration file (reloaded on SIGHUP); None when started with `-i`.
    pub config: Option<PathBuf>,
    pub control: Option<ControlSocket>,
    pub metrics: Option<SocketAddr>,
}

/// Build the event loop and run the service until SIGTERM/SIGINT.
pub fn run(setup: Setup) -> ExitCode {
    crate::memory::fixed_thresholds();
    // Sockets that may need more than the kept capabilities are opened first, then the rest are
    // dropped while the process still has one thread.
    let mut socket_file = None;
    let control = match &setup.control {
        None => None,
        Some(c) => match control::bind(&c.path, c.mode) {
            Ok(listener) => {
                socket_file = Some(SocketFile::new(&c.path));
                Some(listener)
            }
            Err(e) if c.explicit => {
                eprintln!(
                    "ndp-responder: cannot open the control socket {}: {e}",
                    c.path.display()
                );
                return ExitCode::from(2);
            }
            Err(e) => {
                warn!(
                    "no control socket ({}: {e}); `ndp-responder status` will not reach this daemon",
                    c.path.display()
                );
                None
            }
        },
    };
    let metrics = match setup.metrics {
        None => None,
        Some(addr) => match std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
        {
            Ok(l) => Some((addr, l)),
            Err(e) => {
                // What the shipped unit's RestrictAddressFamilies= does to an IPv4 address.
                let hint = if addr.is_ipv4() && e.raw_os_error() == Some(libc::EAFNOSUPPORT) {
                    format!("; IPv4 sockets are forbidden here (the shipped unit allows only {}): listen on [::1]:{} or [::]:{} instead, or allow AF_INET in a drop-in", config::UNIT_ADDRESS_FAMILIES, addr.port(), addr.port())
                } else {
                    String::new()
                };
                eprintln!(
                    "ndp-responder: cannot serve metrics on {addr}: {e} (--metrics, metrics){hint}"
                );
                return ExitCode::from(2);
            }
        },
    };
    // CAP_NET_ADMIN only where a feature writes the kernel's tables: the keepalive (the
    // neighbour table), a slaac rule (its guests' /128 routes); or where the fast path runs
    // (with CAP_BPF: loading and attaching it, also after the uplink returns).
    let net_admin = setup.uplinks.iter().any(needs_net_admin);
    let fast_path = setup.uplinks.iter().any(|u| u.fast_path);
    let keep = privileges::keep(net_admin, fast_path);
    let kept: Vec<String> = keep.iter().map(|c| c.to_string()).collect();
    match privileges::drop_extra(&keep) {
        Ok(privileges::Outcome::Dropped(n)) => {
            info!(
                "dropped {n} capabilities; keeping {}; {}",
                kept.join(" and "),
                privileges::UNPRIVILEGED_HINT
            )
        }
        Ok(privileges::Outcome::AlreadyMinimal) => {}
        Err(e) => warn!("{e}; running with the capabilities it was given"),
    }
    // The fast path's capabilities are optional: without them it says why and the packet
    // socket answers alone.
    let missing = privileges::missing(&privileges::keep(net_admin, false));
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|c| c.to_string()).collect();
        warn!(
            "running without {}: opening packet sockets or updating neighbour entries will fail; run as root or grant them (the shipped systemd unit does)",
            names.join(" and ")
        );
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ndp-responder: cannot start the event loop: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(supervise(setup, control, metrics));
    drop(socket_file);
    code
}

/// A running uplink and its handles.
struct Running {
    options: watch::Sender<Options>,
    requests: mpsc::Sender<Request>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<Counters, DaemonError>>,
}

impl Running {
    /// Start an uplink and wait until it listens (or failed to start).
    async fn start(opts: Options) -> Result<Running, DaemonError> {
        let (options, options_rx) = watch::channel(opts.clone());
        let (requests, requests_rx) = mpsc::channel(8);
        let (stop, stop_rx) = watch::channel(false);
        let (ready_tx, ready) = oneshot::channel();
        let mut task = tokio::spawn(uplink::run(
            opts,
            Control {
                options: options_rx,
                requests: requests_rx,
                stop: stop_rx,
                ready: Some(ready_tx),
            },
        ));
        if ready.await.is_err() {
            // It ended before listening: its result says why.
            return match (&mut task).await {
                Ok(Err(e)) => Err(e),
                Ok(Ok(_)) => Err(DaemonError::Netlink(
                    "the uplink".into(),
                    "stopped before it started".into(),
                )),
                Err(e) => Err(DaemonError::Netlink("the uplink".into(), e.to_string())),
            };
        }
        Ok(Running {
            options,
            requests,
            stop,
            task,
        })
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

struct Service {
    uplinks: BTreeMap<String, Running>,
    /// Configuration order of the uplinks (for status).
    order: Vec<String>,
    config: Option<PathBuf>,
    started: Instant,
    /// The same instant on the wall clock.
    started_at: SystemTime,
    reloads: u64,
    last_reload_error: Option<String>,
    /// When the configuration was last applied in full: at start, then by a reload.
    last_reload_success: SystemTime,
}

impl Service {
    fn base_status(&self) -> Status {
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
            config: self.config.as_ref().map(|p| p.display().to_string()),
            reloads: self.reloads,
            last_reload_error: self.last_reload_error.clone(),
            uplinks: Vec::new(),
            windows: Default::default(),
            last_reload_success_unix_secs: unix_secs(self.last_reload_success),
            process: crate::status::Process {
                start_time_unix_secs: unix_secs(self.started_at),
                resident_memory_bytes: resident_memory_bytes().unwrap_or(0),
            },
        }
    }

    fn senders(&self) -> Vec<mpsc::Sender<Request>> {
        self.order
            .iter()
            .filter_map(|name| self.uplinks.get(name))
            .map(|r| r.requests.clone())
            .collect()
    }

    /// Reply to a status request from a task of its own (the uplinks answer between frames).
    fn answer_status(&self, reply: oneshot::Sender<Status>) {
        let base = self.base_status();
        let senders = self.senders();
        tokio::spawn(async move {
            let _ = reply.send(collect(base, senders, Duration::from_secs(2)).await);
        });
    }

    /// SIGHUP: read the file again and apply it, or refuse it and keep running.
    async fn reload(&mut self) {
        let Some(path) = self.config.clone() else {
            warn!("SIGHUP: started with -i, so there is no configuration file to reload; restart with other flags, or use -c");
            return;
        };
        notify(&[NotifyState::Reloading]);
        info!("SIGHUP: reloading {}", path.display());
        let loaded = config::load(&path).map_err(|e| e.to_string());
        let loaded = match loaded {
            Ok(c) => uplink::check_gateways(&c.uplinks).await.map(|_| c),
            Err(e) => Err(e),
        };
        // The keepalive writes neighbour entries: CAP_NET_ADMIN, dropped at start when no
        // uplink used it, cannot come back without a restart.
        let loaded = loaded.and_then(|c| {
            match c.uplinks.iter().find(|u| needs_net_admin(u)) {
                Some(u) if !privileges::has_net_admin() => Err(format!(
                    "uplink {}: gateway_keepalive and slaac rules need CAP_NET_ADMIN, which the daemon gave up at start because no uplink used them then: restart it (systemctl restart ndp-responder) to turn them on",
                    u.ifname
                )),
                _ => Ok(c),
            }
        });
        let config = match loaded {
            Ok(c) => c,
            Err(e) => {
                error!("reload refused, the running configuration stays: {e}");
                self.last_reload_error = Some(e.to_string());
                notify(&[
                    NotifyState::Ready,
                    NotifyState::Status(&format!("reload refused: {e}")),
                ]);
                return;
            }
        };
        let Config {
            uplinks,
            control: _,
            control_mode: _,
            metrics: _,
            warnings: _,
        } = config;
        let names: Vec<String> = uplinks.iter().map(|u| u.ifname.clone()).collect();
        let (mut kept, mut added, mut removed, mut failed) = (vec![], vec![], vec![], vec![]);
        for name in self.order.clone() {
            if !names.contains(&name) {
                if let Some(running) = self.uplinks.remove(&name) {
                    running.stop().await;
                }
                removed.push(name);
            }
        }
        for opts in uplinks {
            let name = opts.ifname.clone();
            match self.uplinks.get(&name) {
                Some(running) => {
                    running.options.send_if_modified(|current| {
                        let differs = current.rules != opts.rules
                            || current.settings != opts.settings
                            || current.probe != opts.probe
                            || current.rate_limit != opts.rate_limit
                            || current.keepalive != opts.keepalive
                            || current.announce != opts.announce;
                        if differs {
                            *current = opts;
                        }
                        differs
                    });
                    kept.push(name);
                }
                None => match Running::start(opts).await {
                    Ok(running) => {
                        self.uplinks.insert(name.clone(), running);
                        added.push(name);
                    }
                    Err(e) => {
                        error!("reload: uplink {name} could not start: {e}");
                        failed.push(format!("{name}: {e}"));
                    }
                },
            }
        }
        self.order = names
            .into_iter()
            .filter(|n| self.uplinks.contains_key(n))
            .collect();
        self.reloads += 1;
        self.last_reload_error = (!failed.is_empty()).then(|| failed.join("; "));
        if failed.is_empty() {
            self.last_reload_success = SystemTime::now();
        }
        let summary = format!(
            "reloaded {}: kept {}, added {}, removed {}",
            path.display(),
            names_or_none(&kept),
            names_or_none(&added),
            names_or_none(&removed)
        );
        info!("{summary}");
        notify(&[NotifyState::Ready, NotifyState::Status(&summary)]);
        crate::memory::release_startup_pages();
    }
}

/// Does this uplink write the kernel's tables (CAP_NET_ADMIN)? The gateway keepalive
/// confirms neighbour entries; a slaac rule installs its guests' /128 routes.
fn needs_net_admin(u: &uplink::Options) -> bool {
    u.keepalive.is_some() || u.rules.iter().any(|r| r.slaac_interface().is_some())
}

/// Seconds since the Unix epoch.
fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The process's resident memory, from /proc/self/statm (its second field, in pages).
fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    Some(pages * page)
}

fn names_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" ")
    }
}

/// Ask every uplink for its status, each within `within`.
async fn collect(
    mut base: Status,
    senders: Vec<mpsc::Sender<Request>>,
    within: Duration,
) -> Status {
    for sender in senders {
        let (tx, rx) = oneshot::channel();
        if sender.send(Request::Status(tx)).await.is_err() {
            continue;
        }
        if let Ok(Ok(uplink)) = tokio::time::timeout(within, rx).await {
            base.uplinks.push(uplink);
        }
    }
    base
}

/// A systemd notification; a no-op without NOTIFY_SOCKET.
fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        warn!("could not notify systemd: {e}");
    }
}

fn one_line(uplinks: &[UplinkStatus]) -> String {
    uplinks
        .iter()
        .map(|u| {
            format!(
                "{}: {} answered of {} NS, {} addresses known",
                u.interface,
                u.counters.answered,
                u.counters.ns_seen,
                u.answering.len()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

async fn supervise(
    setup: Setup,
    control: Option<std::os::unix::net::UnixListener>,
    metrics: Option<(SocketAddr, std::net::TcpListener)>,
) -> ExitCode {
    let signals = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    );
    let (mut sigterm, mut sigint, mut sighup) = match signals {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            error!("cannot install the signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut service = Service {
        uplinks: BTreeMap::new(),
        order: Vec::new(),
        config: setup.config,
        started: Instant::now(),
        started_at: SystemTime::now(),
        reloads: 0,
        last_reload_error: None,
        last_reload_success: SystemTime::now(),
    };
    for opts in setup.uplinks {
        let name = opts.ifname.clone();
        match Running::start(opts).await {
            Ok(running) => {
                service.uplinks.insert(name.clone(), running);
                service.order.push(name);
            }
            Err(e) => {
                // One that cannot start stops them all: a half-working daemon is worse.
                error!("{e}");
                for (_, running) in std::mem::take(&mut service.uplinks) {
                    running.stop().await;
                }
                return ExitCode::FAILURE;
            }
        }
    }
    let (ask, mut asked) = mpsc::channel::<oneshot::Sender<Status>>(16);
    let mut windows: Vec<JoinHandle<()>> = Vec::new();
    if let Some(listener) = control {
        windows.push(tokio::spawn(control::serve(listener, ask.clone())));
    }
    if let Some((addr, listener)) = metrics {
        info!("serving metrics on http://{addr}/metrics");
        windows.push(tokio::spawn(metrics::serve(listener, ask.clone())));
    }
    drop(ask);
    let names = service.order.join(", ");
    notify(&[
        NotifyState::Ready,
        NotifyState::Status(&format!("answering on {names}")),
    ]);
    // Start-up's code and heap are not needed any more (see memory.rs).
    let dropped = crate::memory::release_startup_pages();
    tracing::debug!("start-up pages given back: {} KiB", dropped / 1024);
    // With WatchdogSec=, prove the uplinks' loops are alive at half the interval; STATUS= is
    // refreshed on the same beat (or every 30 s).
    let watchdog = sd_notify::watchdog_enabled();
    let beat = watchdog.map_or(Duration::from_secs(30), |w| w / 2);
    let notify_socket = std::env::var_os("NOTIFY_SOCKET").is_some();
    let mut ticker = tokio::time::interval(beat);
    ticker.tick().await;
    let mut asked_open = true;
    loop {
        tokio::select! {
            _ = sigterm.recv() => { info!("SIGTERM received, stopping"); break; }
            _ = sigint.recv() => { info!("SIGINT received, stopping"); break; }
            _ = sighup.recv() => service.reload().await,
            request = asked.recv(), if asked_open => match request {
                Some(reply) => service.answer_status(reply),
                None => asked_open = false,
            },
            _ = ticker.tick(), if notify_socket => {
                let senders = service.senders();
                let expected = senders.len();
                let status = collect(service.base_status(), senders, beat / 2).await;
                if status.uplinks.len() == expected {
                    if watchdog.is_some() {
                        notify(&[NotifyState::Watchdog]);
                    }
                    notify(&[NotifyState::Status(&one_line(&status.uplinks))]);
                } else {
                    warn!("watchdog: {} of {expected} uplinks did not answer in time", expected - status.uplinks.len());
                }
            }
        }
    }
    notify(&[NotifyState::Stopping]);
    for window in windows {
        window.abort();
    }
    for (_, running) in std::mem::take(&mut service.uplinks) {
        running.stop().await;
    }
    ExitCode::SUCCESS
}
