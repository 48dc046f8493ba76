//! One uplink: start-up and the event loop that runs the packet's journey on it.
//!
//! Owns: what the service asks of an uplink ([`Options`], [`Control`], [`Request`]), start-up
//! (find the uplink, open its socket, load the first snapshot, start the refresh task), the
//! [`Responder`] state, and the loop ([`run`]) that waits for frames, advertisements, timers,
//! snapshot changes, status requests and reloads, and hands each to the file that owns the
//! duty: [`answer`] (the journey of one solicitation), [`probing`], [`upstream`] (keepalive and
//! announcements), [`refresh`] (snapshot, reload, interfaces), [`report`] (status) and
//! [`slaac`] (sharing the uplink's /64 with the guests on a bridge).
//!
//! Must not: parse packets or decide answers itself; that is [`crate::ndp`] and
//! [`crate::decide`]. Signals, the control socket and systemd belong to [`crate::service`].

mod answer;
mod fast;
mod probing;
mod reader;
mod refresh;
mod report;
mod slaac;
mod upstream;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::Ipv6Addr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tracing::{info, warn};

use crate::decide::gateway;
use crate::decide::policy::Settings;
use crate::decide::probe::{self};
use crate::decide::ratelimit::{self, RateLimiter};
use crate::decide::schedule;
use crate::decide::targets::{Mode, Rule, Snapshot, TargetTable};
use crate::link::{self, Capture, PacketSocket};
use crate::ndp::{self, NeighborAdvert, NeighborSolicit};
use crate::sources::docker::{DockerTargets, EngineState};
use crate::sources::netlink::{self};
use crate::status::{list, Counters, UplinkStatus};
use answer::LogBudget;
use probing::ADVERT_QUEUE;
use reader::Reader;
use refresh::{describe, docker_networks, refresh_task, warn_unrouted, DockerFeed, Sources};
pub use upstream::Withheld;

/// What the daemon is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub ifname: String,
    pub rules: Vec<Rule>,
    /// Where each rule was written ("file:line"); empty for the command line.
    pub origins: Vec<String>,
    pub settings: Settings,
    pub probe: probe::Limits,
    /// Caps on answers per second.
    pub rate_limit: ratelimit::Limits,
    /// Solicit the gateway from a global address this often and confirm its entry.
    pub keepalive: Option<Duration>,
    /// Re-announce every address in use this often.
    pub announce: Option<Duration>,
    /// Answer in the kernel with the XDP program where it loads (see [`fast`]).
    pub fast_path: bool,
    /// The fast path drops solicitations nobody here answers (see [`fastmap::Uncovered`]).
    pub drop_uncovered: bool,
}

/// How the service steers a running uplink.
pub struct Control {
    /// A reloaded configuration for this uplink: applied in place, the socket stays open.
    pub options: watch::Receiver<Options>,
    /// Questions from the control socket and the metrics endpoint.
    pub requests: mpsc::Receiver<Request>,
    /// Becomes true when the uplink should stop.
    pub stop: watch::Receiver<bool>,
    /// Told once the uplink's socket is open and the first snapshot is loaded.
    pub ready: Option<oneshot::Sender<()>>,
}

/// A question to a running uplink.
pub enum Request {
    Status(oneshot::Sender<UplinkStatus>),
}

/// Why the daemon could not start, phrased for the operator.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("interface '{0}' has no Ethernet MAC address: ndp-responder needs an Ethernet-like uplink (-i/--ifname)")]
    NoMac(String),
    #[error("{0}: {1}")]
    Socket(String, link::OpenError),
    #[error("{0}")]
    Config(String),
    #[error("reading the kernel's state for {0} over netlink: {1}")]
    Netlink(String, String),
}

/// The packet path and its state.
pub struct Responder {
    ifname: String,
    /// The configuration being run (replaced by a reload).
    opts: Options,
    uplink: Option<(u32, Arc<AsyncFd<PacketSocket>>)>,
    /// Answers waiting to leave by the uplink, sent after each pass over the receive ring.
    tx: Box<link::TxQueue>,
    /// The time of the current pass (one clock read per batch, not per frame).
    now: Instant,
    /// When the kernel's drop count was last read during an overflow.
    drops_read: Option<Instant>,
    table: Arc<TargetTable>,
    settings: Settings,
    cache: probe::Cache<NeighborSolicit>,
    probers: HashMap<u32, Reader>,
    adverts: mpsc::Sender<(u32, NeighborAdvert)>,
    /// Advertisements the readers dropped because [`ADVERT_QUEUE`] was full.
    adverts_dropped: Arc<AtomicU64>,
    log_budget: LogBudget,
    limiter: RateLimiter,
    /// The prefixes the uplink socket's kernel filter lets through (all when empty).
    filtered: Vec<ipnet::Ipv6Net>,
    /// When the last warning about the rate limits was logged.
    limited_warned: Option<Instant>,
    pub counters: Counters,
    /// For writing confirmed gateway entries.
    handle: netlink::Handle,
    keepalive: Option<schedule::Keepalive>,
    /// Reads the gateway's advertisements on the uplink (only with the keepalive).
    gateway_reader: Option<(u32, Reader)>,
    /// Keepalive solicitations waiting for the gateway's answer.
    expected: gateway::Expected,
    gateway_macs: HashMap<Ipv6Addr, ndp::MacAddr>,
    announcer: Option<schedule::Announcer>,
    /// Addresses answered recently: reported by `status`, and announced while in use.
    in_use: HashMap<Ipv6Addr, Instant>,
    /// The last solicitor of each target answered (its first answer is logged at INFO).
    solicitors: HashMap<Ipv6Addr, Ipv6Addr>,
    in_use_window: Duration,
    warned: std::collections::HashSet<String>,
    /// First announcements still to send: (when, address, how many left), earliest first.
    bursts: BinaryHeap<Reverse<(Instant, Ipv6Addr, u8)>>,
    /// When the next new address may start its announcements (paced, see [`NEW_PER_SECOND`]).
    next_new: Instant,
    /// Docker and auto addresses already announced as new.
    announced: std::collections::HashSet<Ipv6Addr>,
    /// The solicited-node groups joined on the uplink (see [`refresh`]), while it is open.
    groups: Option<link::groups::Groups>,
    /// The probe cache's positive answers when the groups were last synced, sorted.
    group_positives: Vec<Ipv6Addr>,
    /// SLAAC on the guests' interfaces (issue 17), see [`slaac`].
    slaac: slaac::Slaac,
    /// The in-kernel fast path (see [`fast`]).
    fast: fast::Fast,
}

fn open_uplink(ifname: &str, index: u32) -> Result<AsyncFd<PacketSocket>, DaemonError> {
    let socket = PacketSocket::open(ifname, index, Capture::Solicitations)
        .map_err(|e| DaemonError::Socket(format!("listening on {ifname}"), e))?;
    // SAFETY: PacketSocket owns its descriptor; it lives inside the AsyncFd and is closed
    // only when the AsyncFd (and thus the registration) is dropped.
    unsafe { AsyncFd::register(socket) }.map_err(|e| {
        DaemonError::Socket(
            format!("listening on {ifname}"),
            link::OpenError::Io {
                what: "registering the socket",
                ifname: ifname.to_string(),
                source: io::Error::other(e.to_string()),
            },
        )
    })
}

/// The first rule of `opts` that covers one of `gateways`, as an error naming where it was
/// written. The policy never answers for a gateway anyway, but a rule that wide is a mistake
/// (usually the whole on-link /64 instead of the containers' range).
pub fn gateway_conflict(opts: &Options, gateways: &[Ipv6Addr]) -> Option<String> {
    opts.rules.iter().enumerate().find_map(|(i, rule)| {
        if matches!(rule.mode, Mode::Docker { .. }) && rule.prefix.prefix_len() == 0 {
            return None;
        }
        // SLAAC shares the uplink's own /64, gateway included: the gateway is never claimed.
        if matches!(rule.mode, Mode::Slaac { .. }) {
            return None;
        }
        let gw = gateways.iter().find(|gw| rule.prefix.contains(*gw))?;
        let origin = opts
            .origins
            .get(i)
            .map(|o| format!("{o}: "))
            .unwrap_or_default();
        Some(format!(
            "{origin}rule {rule} covers {gw}, a gateway on {}: narrow it to your containers' range (e.g. the /112 routed to the bridge); ndp-responder never answers for the gateway, but a rule this wide is usually the whole on-link /64 by mistake",
            opts.ifname
        ))
    })
}

/// Check every uplink's rules against its gateways as the kernel knows them now (reads only).
/// Uplinks that do not exist here are skipped (their names are returned).
pub async fn check_gateways(uplinks: &[Options]) -> Result<Vec<String>, String> {
    let handle = netlink::connect()
        .await
        .map_err(|e| format!("reading the gateways over netlink: {e}"))?;
    let view = netlink::kernel_view(&handle)
        .await
        .map_err(|e| format!("reading the gateways over netlink: {e}"))?;
    let mut absent = Vec::new();
    for opts in uplinks {
        let snap = Snapshot::build(&view, &opts.ifname, &opts.rules, &DockerTargets::new());
        if snap.uplink.is_none() {
            absent.push(opts.ifname.clone());
            continue;
        }
        if let Some(conflict) = gateway_conflict(opts, &snap.gateways) {
            return Err(conflict);
        }
    }
    Ok(absent)
}

/// Answer on one uplink until told to stop. Must be called inside a tokio runtime with IO and
/// time enabled.
pub async fn run(opts: Options, mut control: Control) -> Result<Counters, DaemonError> {
    let ifname = opts.ifname.clone();
    let netlink_err =
        |e: &dyn std::fmt::Display| DaemonError::Netlink(ifname.clone(), e.to_string());
    let handle = netlink::connect().await.map_err(|e| netlink_err(&e))?;

    let view = netlink::kernel_view(&handle)
        .await
        .map_err(|e| netlink_err(&e))?;
    let snap = Snapshot::build(&view, &ifname, &opts.rules, &DockerTargets::new());
    // An uplink that is not there yet (a VLAN, bond, WireGuard link or renamed NIC that
    // appears after the daemon starts) is waited for: the refresh task follows the kernel's
    // link events, and the loop opens the socket as soon as it is there (`reconcile`).
    if let Some(index) = snap.uplink {
        if view.links[&index].mac.is_none() {
            return Err(DaemonError::NoMac(ifname));
        }
    }
    if let Some(conflict) = gateway_conflict(&opts, &snap.gateways) {
        // A configuration file is held to it; the command line (a quick start) is warned.
        if opts.origins.is_empty() {
            warn!("{conflict}");
        } else {
            return Err(DaemonError::Config(conflict));
        }
    }
    let uplink = match snap.uplink {
        Some(index) => Some((index, Arc::new(open_uplink(&ifname, index)?))),
        None => None,
    };

    let table = Arc::new(TargetTable::new(snap));
    let changed = Arc::new(Notify::new());
    let mut docker = DockerFeed::start(
        docker_networks(&opts.rules),
        &DockerTargets::new(),
        &EngineState::default(),
    );
    let (sources_tx, sources_rx) = watch::channel(Sources {
        rules: opts.rules.clone(),
        docker: docker.rx.clone(),
    });
    let refresher = tokio::spawn(refresh_task(
        handle.clone(),
        ifname.clone(),
        sources_rx,
        table.clone(),
        changed.clone(),
        view,
    ));
    let (adverts_tx, mut adverts) = mpsc::channel(ADVERT_QUEUE);
    let (slaac_tx, mut slaac_heard) = mpsc::channel(slaac::SLAAC_QUEUE);
    let mut responder = Responder {
        ifname: ifname.clone(),
        opts: opts.clone(),
        uplink,
        tx: Box::default(),
        now: Instant::now(),
        drops_read: None,
        table: table.clone(),
        settings: opts.settings,
        cache: probe::Cache::new(opts.probe),
        probers: HashMap::new(),
        adverts: adverts_tx,
        adverts_dropped: Arc::default(),
        log_budget: LogBudget::new(),
        limiter: RateLimiter::new(opts.rate_limit, Instant::now()),
        filtered: Vec::new(),
        limited_warned: None,
        counters: Counters::default(),
        handle: handle.clone(),
        keepalive: opts.keepalive.map(upstream::keepalive_every),
        gateway_reader: None,
        expected: gateway::Expected::default(),
        gateway_macs: HashMap::new(),
        announcer: opts.announce.map(upstream::announcer_every),
        in_use: HashMap::new(),
        solicitors: HashMap::new(),
        in_use_window: opts.announce.unwrap_or_default().saturating_mul(2),
        warned: Default::default(),
        bursts: Default::default(),
        next_new: Instant::now(),
        announced: Default::default(),
        groups: None,
        group_positives: Vec::new(),
        slaac: slaac::Slaac::new(slaac_tx),
        fast: fast::Fast::default(),
    };
    // What is known at start is announced as new: the router may have forgotten it.
    responder.note_new_addresses(&table.load());
    responder.apply_filter(&table.load());
    responder.sync_fast(&table.load());
    // Only now, with the kernel filter in place: "answering on" means ready.
    log_start(&ifname, &opts, &table.load());
    // Before ready, so that a snooping switch has the groups reported (a rule too wide for
    // them is warned about after the start-up lines).
    responder.sync_groups(&table.load());
    if let Some(ready) = control.ready.take() {
        let _ = ready.send(());
    }
    let mut options_open = true;
    let mut requests_open = true;

    loop {
        let uplink = responder.uplink.as_ref().map(|(_, fd)| fd.clone());
        let readable = async {
            match &uplink {
                Some(fd) => fd.readable().await,
                None => std::future::pending().await,
            }
        };
        let at = |i: Option<Instant>| async move {
            match i {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        let keepalive_due = at(responder.keepalive.as_ref().map(|k| k.next_due()));
        let announce_due = at(responder.announcer.as_ref().map(|a| a.next_due()));
        let burst_due = at(responder.bursts.peek().map(|Reverse((when, _, _))| *when));
        let probe_due = at(responder.cache.next_deadline());
        let keepalive_expiry = at(responder.expected.next_expiry());
        let slaac_due = at(responder.slaac_due());
        let fast_due = at(responder.fast.next_poll());
        tokio::select! {
            // A dropped sender (the service is gone) stops the uplink too.
            stop = control.stop.changed() => {
                if stop.is_err() || *control.stop.borrow() {
                    break;
                }
            }
            ready = readable => {
                // Handle a batch; if more is queued the socket stays ready and the loop comes
                // straight back after giving the other branches their turn. Readiness is
                // cleared only once the ring is empty (a frame arriving meanwhile sets it
                // again: tokio keeps the newer event).
                match ready {
                    Ok(mut guard) => {
                        if responder.drain() {
                            guard.clear_ready();
                        }
                    }
                    Err(e) => {
                        warn!("{ifname}: {e}; waiting for the interface");
                        responder.uplink = None;
                        changed.notify_one();
                    }
                }
            }
            Some((index, na)) = adverts.recv() => {
                responder.on_advert(index, na);
                responder.positives_changed();
            }
            () = keepalive_due => {
                if responder.keepalive.as_mut().is_some_and(|k| k.due(Instant::now())) {
                    responder.on_keepalive();
                }
            }
            () = keepalive_expiry => responder.on_keepalive_expiry(),
            () = announce_due => {
                // What the fast path answered counts as in use: read it first.
                responder.poll_fast();
                responder.on_announce();
            }
            () = burst_due => responder.on_burst(),
            () = probe_due => {
                responder.on_probe_timer();
                responder.positives_changed();
            }
            () = changed.notified() => responder.reconcile(),
            Some(heard) = slaac_heard.recv() => responder.on_slaac_heard(heard).await,
            () = slaac_due => responder.on_slaac_timer().await,
            () = fast_due => responder.poll_fast(),
            request = control.requests.recv(), if requests_open => match request {
                Some(Request::Status(reply)) => {
                    responder.poll_fast();
                    responder.count_drops();
                    responder.count_advert_drops();
                    responder.count_slaac_drops();
                    let _ = reply.send(responder.status(&docker));
                }
                None => requests_open = false,
            },
            result = control.options.changed(), if options_open => {
                if result.is_err() {
                    options_open = false;
                    continue;
                }
                let new = control.options.borrow_and_update().clone();
                let networks = docker_networks(&new.rules);
                if networks != docker.networks {
                    let known = docker.rx.borrow().clone();
                    let engine = docker.state.borrow().clone();
                    docker = DockerFeed::start(networks, &known, &engine);
                }
                info!(
                    "{ifname}: configuration reloaded: {}",
                    new.rules.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ")
                );
                // The snapshot follows (the refresh task publishes it with the new rules);
                // until then the old one keeps answering: no gap.
                let _ = sources_tx.send(Sources {
                    rules: new.rules.clone(),
                    docker: docker.rx.clone(),
                });
                responder.apply(new);
            }
        }
    }
    // Final RAs and our routes removed while the snapshot is still followed.
    responder.slaac_stop().await;
    refresher.abort();
    drop(docker);
    responder.stop_fast();
    responder.count_drops();
    responder.count_advert_drops();
    info!(
        "{ifname} stopped: {}; probe cache {} entries (at most {})",
        responder.counters.summary(),
        responder.cache.len(),
        responder.cache.high_water
    );
    Ok(responder.counters)
}

/// The start-up lines: what is answered and what is known.
fn log_start(ifname: &str, opts: &Options, snap: &Snapshot) {
    let rules: Vec<String> = snap.rules.iter().map(|r| r.to_string()).collect();
    if snap.uplink.is_none() {
        warn!(
            "{ifname} does not exist yet: waiting for it (created, or renamed into place; check the name with `ip link`); it will answer for {} as soon as it appears",
            rules.join(", ")
        );
        return;
    }
    info!(
        "answering on {ifname} for {} (source {}, router flag {}); {}",
        rules.join(", "),
        opts.settings.source,
        if opts.settings.router { "on" } else { "off" },
        describe(snap)
    );
    warn_unrouted(ifname, snap);
    for rule in snap.rules.iter().filter(|r| r.mode == Mode::Auto) {
        let known: Vec<Ipv6Addr> = snap
            .known
            .iter()
            .filter(|a| rule.prefix.contains(*a))
            .copied()
            .collect();
        info!(
            "auto {}: {} known downstream: {}",
            rule.prefix,
            known.len(),
            list(&known)
        );
    }
    if !snap.up {
        warn!("{ifname} is down; answering starts when it comes up");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::policy;

    fn opts(rules: &[(&str, Mode)], origins: &[&str]) -> Options {
        Options {
            ifname: "eth0".into(),
            rules: rules
                .iter()
                .map(|(p, mode)| Rule {
                    prefix: p.parse().unwrap(),
                    mode: mode.clone(),
                })
                .collect(),
            origins: origins.iter().map(|o| o.to_string()).collect(),
            settings: Settings {
                source: policy::SourcePolicy::Target,
                router: true,
                override_flag: true,
            },
            probe: probe::Limits::default(),
            rate_limit: ratelimit::Limits::default(),
            keepalive: None,
            announce: None,
            fast_path: true,
            drop_uncovered: false,
        }
    }

    #[test]
    fn a_rule_covering_the_gateway_is_named_with_its_line() {
        let gw: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        let o = opts(
            &[
                ("2001:db8:1::d:0/112", Mode::Static),
                ("2001:db8:1::/64", Mode::Auto),
            ],
            &["/etc/ndp-responder.toml:7", "/etc/ndp-responder.toml:11"],
        );
        let e = gateway_conflict(&o, &[gw]).unwrap();
        assert!(
            e.starts_with("/etc/ndp-responder.toml:11: rule 2001:db8:1::/64 (auto) covers 2001:db8:1::1, a gateway on eth0: narrow it"),
            "{e}"
        );
        let narrow = opts(&[("2001:db8:1::d:0/112", Mode::Static)], &[]);
        assert_eq!(gateway_conflict(&narrow, &[gw]), None);
        // A docker rule without a prefix covers nothing by itself.
        let docker = Options {
            rules: vec![Rule::docker("net")],
            ..narrow
        };
        assert_eq!(gateway_conflict(&docker, &[gw]), None);
    }
}
