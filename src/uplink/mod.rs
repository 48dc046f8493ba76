//! The event loop: wires the packet sockets, the target table, the probe cache and the kernel's
//! change events.
//!
//! Owns: start-up (find the uplink, open its socket, load the first snapshot), the refresh task
//! that rebuilds the snapshot when netlink reports a change, the loop that answers
//! solicitations and runs downstream probes, following the uplink and downstream interfaces as
//! they come and go, applying a reloaded configuration in place, the counters and the status
//! it reports.
//!
//! Must not: parse packets or decide answers itself; that is [`wire`] and [`policy`]. Signals,
//! the control socket and systemd belong to [`crate::service`]. The whole journey of one
//! solicitation is [`Responder::handle_frame`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::io;
use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tracing::{debug, error, info, warn};

use crate::decide::gateway;
use crate::decide::policy::{self, AdvertRefused, Decision, Settings};
use crate::decide::probe::{self, Verdict};
use crate::decide::ratelimit::{self, RateLimiter};
use crate::decide::schedule;
use crate::decide::targets::{Mode, Rule, Snapshot, TargetTable};
use crate::link::{self, Capture, PacketSocket};
use crate::ndp::{self, NeighborAdvert, NeighborSolicit};
use crate::sources::docker::{self, DockerTargets};
use crate::sources::netlink::{self, KernelView};
use crate::status::{list, Answering, Counters, Reason, UplinkStatus};

/// How long to let a burst of netlink events settle before reading the kernel state again.
const REFRESH_COALESCE: Duration = Duration::from_millis(20);
/// Frames handled per wake-up before the loop looks at its other duties.
const DRAIN_BATCH: usize = 512;
/// Advertisements queued from the socket readers to the loop; more are dropped (counted), so
/// a flood of them cannot grow memory.
const ADVERT_QUEUE: usize = 256;

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
    #[error("no interface named '{0}': check the name with `ip link` (-i/--ifname)")]
    NoSuchInterface(String),
    #[error("interface '{0}' has no Ethernet MAC address: ndp-responder needs an Ethernet-like uplink (-i/--ifname)")]
    NoMac(String),
    #[error("{0}: {1}")]
    Socket(String, link::OpenError),
    #[error("{0}")]
    Config(String),
    #[error("reading the kernel's state for {0} over netlink: {1}")]
    Netlink(String, String),
}

/// Our own sends held back by a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    /// A new address waited for its turn to be announced ([`NEW_PER_SECOND`]).
    AnnouncementPaced,
    /// A new address was not announced: [`MAX_BURSTS`] were waiting already.
    AnnouncementQueueFull,
}

impl Reason for Withheld {
    fn reason(&self) -> &'static str {
        match self {
            Withheld::AnnouncementPaced => "announcement_paced",
            Withheld::AnnouncementQueueFull => "announcement_queue_full",
        }
    }
}

/// At most `rate` INFO lines per second about answers (bursts up to `burst`); the rest are
/// counted and reported with the next line, so a flood cannot flood the log.
struct LogBudget {
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

impl LogBudget {
    const RATE: f64 = 20.0;
    const BURST: f64 = 100.0;

    fn new() -> Self {
        LogBudget {
            tokens: Self::BURST,
            last: Instant::now(),
            suppressed: 0,
        }
    }

    /// Some(number of lines suppressed before this one) if this line may be logged.
    fn take(&mut self, now: Instant) -> Option<u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * Self::RATE).min(Self::BURST);
        if self.tokens < 1.0 {
            self.suppressed += 1;
            return None;
        }
        self.tokens -= 1.0;
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// A downstream interface being probed: its socket, and the task that reads its answers.
struct Prober {
    socket: Arc<AsyncFd<PacketSocket>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Why an answer is sent, for its log line (formatted only when the line is logged: the packet
/// path does not allocate).
#[derive(Clone, Copy)]
enum Why<'a> {
    Rule(policy::Kind, &'a Rule),
    Probed(policy::Kind, &'a Rule),
    ProbeAnswered(policy::Kind),
}

impl std::fmt::Display for Why<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Rule(kind, rule) => write!(f, "{}, {rule}", kind.label()),
            Why::Probed(kind, rule) => write!(f, "{}, {rule}, confirmed by probe", kind.label()),
            Why::ProbeAnswered(kind) => write!(f, "{}, confirmed by probe", kind.label()),
        }
    }
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
    probers: HashMap<u32, Prober>,
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
    gateway_reader: Option<(u32, Prober)>,
    /// Keepalive solicitations waiting for the gateway's answer.
    expected: gateway::Expected,
    gateway_macs: HashMap<Ipv6Addr, ndp::MacAddr>,
    announcer: Option<schedule::Announcer>,
    /// Addresses answered recently: reported by `status`, and announced while in use.
    in_use: HashMap<Ipv6Addr, Instant>,
    in_use_window: Duration,
    warned: std::collections::HashSet<String>,
    /// First announcements still to send: (when, address, how many left), earliest first.
    bursts: BinaryHeap<Reverse<(Instant, Ipv6Addr, u8)>>,
    /// When the next new address may start its announcements (paced, see [`NEW_PER_SECOND`]).
    next_new: Instant,
    /// Docker and auto addresses already announced as new.
    announced: std::collections::HashSet<Ipv6Addr>,
}

/// Addresses remembered as in use, at most.
const MAX_IN_USE: usize = 4096;
/// When that many are remembered, those answered longer ago than this are forgotten.
const IN_USE_KEEP: Duration = Duration::from_secs(600);
/// A new address is announced this many times (RFC 4861 10: MAX_NEIGHBOR_ADVERTISEMENT)...
const ANNOUNCE_COUNT: u8 = 3;
/// ...this far apart (RFC 4861 10: RETRANS_TIMER).
const ANNOUNCE_SPACING: Duration = Duration::from_secs(1);
/// New addresses start their announcements at most this often: a container that creates
/// addresses quickly must not make the host send bursts upstream (RFC 4861 7.2.6 limits a
/// node's unsolicited advertisements for the same reason).
const NEW_PER_SECOND: u32 = 10;
/// New addresses waiting for their announcements, at most; more are not announced (they are
/// still answered, and the periodic announcements, if on, include them).
const MAX_BURSTS: usize = 1024;

impl Responder {
    /// Handle up to [`DRAIN_BATCH`] frames from the uplink's receive ring, then send the
    /// answers they produced in one batch. Returns true when the ring is empty. (A link going
    /// down is learned from netlink; the ring just stays empty meanwhile.)
    fn drain(&mut self) -> bool {
        let Some((_, socket)) = self.uplink.clone() else {
            return true;
        };
        let mut spill = [0u8; link::RECV_BUF_LEN];
        self.now = Instant::now();
        let batch = socket
            .get_ref()
            .recv_batch(DRAIN_BATCH, &mut spill, |frame| self.handle_frame(frame));
        self.flush_answers();
        if batch.skipped > 0 {
            // The BPF program should have dropped them in the kernel; counted so a test can
            // tell that it did.
            self.counters
                .ignored
                .add_n(policy::Ignored::OutgoingOrOtherHost, batch.skipped as u64);
        }
        // Reading the kernel's drop count is a system call: at most once a second while the
        // ring overflows (and for every status request, and at exit).
        if batch.losing
            && self
                .drops_read
                .is_none_or(|t| self.now.saturating_duration_since(t) >= Duration::from_secs(1))
        {
            self.drops_read = Some(self.now);
            self.count_drops();
        }
        batch.empty
    }

    /// Add the kernel's count of solicitations dropped for a full ring to the counters.
    fn count_drops(&mut self) {
        let Some((_, socket)) = &self.uplink else {
            return;
        };
        if let Ok(n) = socket.get_ref().take_drops() {
            if n > 0 && self.counters.dropped == 0 {
                warn!(
                    "{}: the receive ring overflowed and the kernel dropped {n} solicitations: the daemon could not keep up (see the dropped counter of ndp-responder status)",
                    self.ifname
                );
            }
            self.counters.dropped += u64::from(n);
        }
    }

    /// Send the queued answers.
    fn flush_answers(&mut self) {
        let Some((_, socket)) = &self.uplink else {
            return;
        };
        if self.tx.is_empty() {
            return;
        }
        let flushed = self.tx.flush(socket.get_ref());
        self.counters.answered += flushed.sent as u64;
        self.counters.send_errors += flushed.failed as u64;
        if let Some(e) = flushed.error {
            warn!(
                "could not send {} of {} answers on {}: {e}",
                flushed.failed,
                flushed.sent + flushed.failed,
                self.ifname
            );
        }
    }

    /// One solicitation's journey: parse -> decide -> (probe) -> emit -> send.
    pub fn handle_frame(&mut self, frame: &[u8]) {
        self.counters.ns_seen += 1;
        let ns = match NeighborSolicit::parse(frame) {
            Ok(ns) => ns,
            Err(e) => {
                self.counters.invalid.add(e);
                debug!("dropped malformed NS: {e}");
                return;
            }
        };
        let snap = self.table.load();
        match policy::decide(&ns, &snap, &self.settings) {
            Decision::Answer { kind, rule, advert } => {
                self.send_answer(&ns, &advert, Why::Rule(kind, &rule));
            }
            Decision::Probe { kind, rule, via } => {
                match self.cache.solicit(ns.target, ns, self.now) {
                    Verdict::Answer => match policy::advert(&ns, &snap, &self.settings) {
                        Ok(advert) => self.send_answer(&ns, &advert, Why::Probed(kind, &rule)),
                        Err(why) => self.count_ignored(&ns, kind, why),
                    },
                    Verdict::Probe => self.send_probe(&snap, ns.target, via),
                    Verdict::Wait => debug!(
                        "NS who-has {} waits for a probe or is known absent",
                        ns.target
                    ),
                    Verdict::Full => {
                        self.counters.ignored.add(policy::Ignored::ProbeCacheFull);
                        debug!("NS who-has {}: probe cache full, not probed", ns.target);
                    }
                }
            }
            Decision::Ignore(kind, why) => self.count_ignored(&ns, kind, why),
            Decision::Invalid(why) => {
                self.counters.invalid.add(why);
                debug!(
                    "dropped invalid NS who-has {} from {}: {why}",
                    ns.target, ns.ip_src
                );
            }
        }
    }

    fn count_ignored(&mut self, ns: &NeighborSolicit, kind: policy::Kind, why: policy::Ignored) {
        self.counters.ignored.add(why);
        debug!(
            "ignored NS who-has {} from {} ({}): {why}",
            ns.target,
            ns.ip_src,
            kind.label()
        );
    }

    fn send_answer(&mut self, ns: &NeighborSolicit, advert: &NeighborAdvert, why: Why<'_>) {
        if self.uplink.is_none() {
            return;
        }
        let now = self.now;
        // A gateway (known by the MAC the kernel holds for it) has a bucket of its own.
        let allowed = if self.table.load().is_gateway_mac(&ns.eth_src) {
            self.limiter.allow_gateway(ns.eth_src, now)
        } else {
            self.limiter.allow(ns.ip_src, now)
        };
        if !allowed {
            self.counters.rate_limited += 1;
            if self
                .limited_warned
                .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(60))
            {
                self.limited_warned = Some(now);
                let l = self.opts.rate_limit;
                warn!(
                    "rate limit reached on {} (at most {} answers/s per source, {} in all; 0 = off): answers to {} and others withheld; see the rate_limited counter (ndp-responder status)",
                    self.ifname, l.per_source, l.total, ns.ip_src
                );
            }
            return;
        }
        if self.tx.is_full() {
            self.flush_answers();
        }
        // Sent with the rest of the batch (`flush_answers`), which counts it as answered.
        if !self.tx.push(|buf| advert.emit(buf)) {
            self.counters.send_errors += 1;
            warn!(
                "could not build the NA for {} on {}",
                ns.target, self.ifname
            );
            return;
        }
        self.note_in_use(advert.target);
        if let Some(suppressed) = self.log_budget.take(now) {
            let more = if suppressed > 0 {
                format!(" ({suppressed} earlier answers not logged)")
            } else {
                String::new()
            };
            info!(
                "answered NS who-has {} from {} ({why}): NA src {} dst {} flags {}{more}",
                ns.target,
                ns.ip_src,
                advert.ip_src,
                advert.ip_dst,
                flags(advert)
            );
        }
    }

    /// Ask downstream interface `via` whether `target` is there.
    fn send_probe(&mut self, snap: &Snapshot, target: Ipv6Addr, via: u32) {
        let Some(down) = snap.downstream.get(&via) else {
            return;
        };
        let (Some(mac), Some(source)) = (down.mac, down.link_local) else {
            debug!(
                "cannot probe {target} on {}: it has no MAC or link-local address",
                down.name
            );
            return;
        };
        if !self.probers.contains_key(&via) {
            match self.open_advert_reader(&down.name, via) {
                Ok(p) => {
                    self.probers.insert(via, p);
                }
                Err(e) => {
                    warn!("cannot probe on {}: {e}", down.name);
                    return;
                }
            }
        }
        let ns = NeighborSolicit::resolution(mac, source, target);
        let mut frame = [0u8; ndp::MAX_EMIT_LEN];
        let Ok(len) = ns.emit(&mut frame) else {
            return;
        };
        match self.probers[&via].socket.get_ref().send(&frame[..len]) {
            Ok(()) => {
                self.counters.probes_sent += 1;
                debug!("probing {target} on {}", down.name);
            }
            Err(e) => warn!("could not probe {target} on {}: {e}", down.name),
        }
    }

    /// Open a socket that reads advertisements on interface `index` and forwards them to the
    /// loop; it also sends our solicitations there.
    fn open_advert_reader(&self, name: &str, index: u32) -> Result<Prober, String> {
        let socket =
            PacketSocket::open(name, index, Capture::Advertisements).map_err(|e| e.to_string())?;
        // SAFETY: the socket owns its descriptor, which lives as long as the AsyncFd.
        let socket = Arc::new(unsafe { AsyncFd::register(socket) }.map_err(|e| e.to_string())?);
        let reader_socket = socket.clone();
        let adverts = self.adverts.clone();
        let dropped = self.adverts_dropped.clone();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; link::RECV_BUF_LEN];
            loop {
                let Ok(mut guard) = reader_socket.readable().await else {
                    return;
                };
                match guard.try_io(|s| {
                    s.get_ref()
                        .recv(&mut buf)
                        .map(|f| f.map(NeighborAdvert::parse))
                }) {
                    Ok(Ok(Some(Ok(na)))) => match adverts.try_send((index, na)) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    },
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) if e.raw_os_error() == Some(libc::ENETDOWN) => {}
                    // The interface went away: the next snapshot drops this prober.
                    Ok(Err(_)) => return,
                    Err(_would_block) => {}
                }
            }
        });
        Ok(Prober { socket, reader })
    }

    /// An advertisement arrived on interface `index`.
    fn on_advert(&mut self, index: u32, na: NeighborAdvert) {
        let outcome = if self.uplink.as_ref().map(|(i, _)| *i) == Some(index) {
            self.on_gateway_advert(index, &na)
        } else {
            self.on_downstream_advert(index, &na)
        };
        if let Err(why) = outcome {
            self.refuse_advert(&na, why);
        }
    }

    fn refuse_advert(&mut self, na: &NeighborAdvert, why: AdvertRefused) {
        self.counters.adverts_refused.add(why);
        debug!(
            "refused NA for {} from {} ({}): {why}",
            na.target, na.ip_src, na.eth_src
        );
    }

    /// Fold the readers' count of advertisements dropped for a full queue into the counters.
    fn count_advert_drops(&mut self) {
        let n = self.adverts_dropped.swap(0, Ordering::Relaxed);
        if n > 0 {
            self.counters.adverts_refused.add_n(AdvertRefused::QueueFull, n);
        }
    }

    fn note_in_use(&mut self, addr: Ipv6Addr) {
        let now = self.now;
        if self.in_use.len() >= MAX_IN_USE && !self.in_use.contains_key(&addr) {
            let window = self.in_use_window.max(IN_USE_KEEP);
            self.in_use
                .retain(|_, t| now.saturating_duration_since(*t) < window);
        }
        if self.in_use.len() < MAX_IN_USE || self.in_use.contains_key(&addr) {
            self.in_use.insert(addr, now);
        }
    }

    fn warn_once(&mut self, key: String, message: &str) {
        if self.warned.insert(key) {
            warn!("{message}");
        }
    }

    /// Keepalive tick: solicit each default gateway from a global source.
    fn on_keepalive(&mut self) {
        let snap = self.table.load();
        let (Some(index), Some((_, socket))) = (snap.uplink, &self.uplink) else {
            return;
        };
        if self.gateway_reader.as_ref().map(|(i, _)| *i) != Some(index) {
            match self.open_advert_reader(&self.ifname, index) {
                Ok(reader) => self.gateway_reader = Some((index, reader)),
                Err(e) => {
                    warn!(
                        "gateway keepalive: cannot read advertisements on {}: {e}",
                        self.ifname
                    );
                    return;
                }
            }
        }
        let ours: Vec<Ipv6Addr> = snap
            .known
            .iter()
            .copied()
            .chain(self.cache.positives())
            .chain(self.in_use.keys().copied())
            .collect();
        let Some(source) = schedule::keepalive_source(&snap.uplink_addrs, &ours) else {
            self.warn_once(
                "keepalive-source".into(),
                &format!("gateway keepalive: {} has no global address and no target is known yet to solicit from", self.ifname),
            );
            return;
        };
        let socket = socket.clone();
        let now = Instant::now();
        for gw in &snap.default_gateways {
            if snap.pinned.contains(gw) {
                let message = format!(
                    "gateway keepalive: the entry for {gw} on {} is pinned (PERMANENT/NOARP) and left alone; remove it (ip -6 neigh del {gw} dev {}) to let ndp-responder follow MAC changes",
                    self.ifname, self.ifname
                );
                self.warn_once(format!("pinned-{gw}"), &message);
                continue;
            }
            let ns = NeighborSolicit::resolution(snap.mac, source, *gw);
            let mut frame = [0u8; ndp::MAX_EMIT_LEN];
            let Ok(len) = ns.emit(&mut frame) else {
                continue;
            };
            match socket.get_ref().send(&frame[..len]) {
                Ok(()) => {
                    self.expected.solicited(*gw, source, now);
                    self.counters.keepalives_sent += 1;
                    debug!("gateway keepalive: NS for {gw} from {source}");
                }
                Err(e) => warn!("gateway keepalive: could not solicit {gw}: {e}"),
            }
        }
    }

    /// The gateway answered a keepalive: confirm its entry in the kernel (REACHABLE, ages),
    /// once [`gateway::Expected`] accepts the answer as the gateway's.
    fn on_gateway_advert(&mut self, index: u32, na: &NeighborAdvert) -> Result<(), AdvertRefused> {
        let snap = self.table.load();
        if !snap.default_gateways.contains(&na.target) {
            return Err(AdvertRefused::Unexpected);
        }
        let current = snap
            .gateway_mac(&na.target)
            .or_else(|| self.gateway_macs.get(&na.target).copied());
        let mac = self.expected.accept(
            na,
            current,
            snap.pinned.contains(&na.target),
            Instant::now(),
        )?;
        match self.gateway_macs.insert(na.target, mac) {
            Some(old) if old != mac => info!("gateway {} moved from {old} to {mac}", na.target),
            None => info!("gateway {} is at {mac}; keeping its entry fresh", na.target),
            _ => debug!("gateway {} confirmed at {mac}", na.target),
        }
        let handle = self.handle.clone();
        let gw = na.target;
        tokio::spawn(async move {
            if let Err(e) = netlink::confirm_neighbour(&handle, index, gw, mac).await {
                warn!("gateway keepalive: could not update the entry for {gw}: {e}");
            }
        });
        Ok(())
    }

    /// Announcement tick: announce the addresses that are due.
    fn on_announce(&mut self) {
        let Some(announcer) = self.announcer.as_mut() else {
            return;
        };
        let snap = self.table.load();
        let now = Instant::now();
        let window = self.in_use_window;
        let in_use = &self.in_use;
        let cache = &self.cache;
        let due = announcer.due(now, || {
            snap.known
                .iter()
                .copied()
                .chain(cache.positives())
                .chain(
                    in_use
                        .iter()
                        .filter(|(_, t)| now.saturating_duration_since(**t) < window)
                        .map(|(a, _)| *a),
                )
                .filter(|a| !snap.is_uplink_addr(a) && !snap.is_gateway(a))
                .collect()
        });
        if due.is_empty() {
            return;
        }
        for addr in due {
            // A new address still in its first announcements needs no periodic one.
            if !self.bursts.iter().any(|Reverse((_, a, _))| *a == addr) {
                self.announce_one(&snap, addr, "periodic");
            }
        }
    }

    /// Announce `addr` upstream: an unsolicited NA (RFC 4861 7.2.6), and an NS from it to each
    /// gateway, for routers that learn an address only once it talks to them.
    fn announce_one(&mut self, snap: &Snapshot, addr: Ipv6Addr, why: &str) {
        let Some((_, socket)) = &self.uplink else {
            return;
        };
        let Ok(na) = policy::announcement(addr, snap, &self.settings) else {
            return;
        };
        let mut frame = [0u8; ndp::MAX_EMIT_LEN];
        let mut sent = na
            .emit(&mut frame)
            .is_ok_and(|len| socket.get_ref().send(&frame[..len]).is_ok());
        for gw in &snap.default_gateways {
            let ns = NeighborSolicit::resolution(snap.mac, addr, *gw);
            sent &= ns
                .emit(&mut frame)
                .is_ok_and(|len| socket.get_ref().send(&frame[..len]).is_ok());
        }
        if sent {
            self.counters.announcements_sent += 1;
            debug!("announced {addr} ({why}): unsolicited NA, NS to the gateway");
        } else {
            self.counters.send_errors += 1;
        }
    }

    /// Queue the first announcements of addresses that just appeared (docker, auto).
    fn note_new_addresses(&mut self, snap: &Snapshot) {
        let now: std::collections::HashSet<Ipv6Addr> = snap
            .docker
            .keys()
            .chain(snap.known.iter())
            .copied()
            .collect();
        let when = Instant::now();
        let spacing = Duration::from_secs(1) / NEW_PER_SECOND;
        for addr in now.difference(&self.announced) {
            if self.bursts.len() >= MAX_BURSTS {
                self.counters.withheld.add(Withheld::AnnouncementQueueFull);
                continue;
            }
            // Paced: one new address per `spacing`, whatever the rate they appear at.
            let start = self.next_new.max(when);
            if start > when {
                self.counters.withheld.add(Withheld::AnnouncementPaced);
            }
            self.next_new = start + spacing;
            debug!("{addr} is new: announcing it {ANNOUNCE_COUNT} times");
            self.bursts.push(Reverse((start, *addr, ANNOUNCE_COUNT)));
        }
        self.announced = now;
    }

    /// Send the announcements of new addresses that are due.
    fn on_burst(&mut self) {
        let now = Instant::now();
        let snap = self.table.load();
        while self
            .bursts
            .peek()
            .is_some_and(|Reverse((at, _, _))| *at <= now)
        {
            let Some(Reverse((_, addr, left))) = self.bursts.pop() else {
                break;
            };
            // Announce only what is still ours.
            if !(snap.docker.contains_key(&addr) || snap.known.contains(&addr)) {
                continue;
            }
            let n = ANNOUNCE_COUNT - left + 1;
            self.announce_one(
                &snap,
                addr,
                &format!("new address, {n} of {ANNOUNCE_COUNT}"),
            );
            if left > 1 {
                self.bursts
                    .push(Reverse((now + ANNOUNCE_SPACING, addr, left - 1)));
            }
        }
    }

    /// A downstream station answered on interface `index`: if it answers our probe there,
    /// answer the solicitations that waited for it.
    fn on_downstream_advert(
        &mut self,
        index: u32,
        na: &NeighborAdvert,
    ) -> Result<(), AdvertRefused> {
        let snap = self.table.load();
        let target = na.target;
        // Only an answer on the interface the target is probed on, to the probe's source.
        if policy::probe_interface(&snap, &target) != Some(index) {
            return Err(AdvertRefused::Unexpected);
        }
        let probe_source = snap.downstream.get(&index).and_then(|d| d.link_local);
        policy::probe_answer(na, probe_source)?;
        self.now = Instant::now();
        let waiters = self
            .cache
            .advert(target, self.now)
            .ok_or(AdvertRefused::Unexpected)?;
        if waiters.is_empty() {
            return Ok(());
        }
        for ns in waiters {
            if let Ok(advert) = policy::advert(&ns, &snap, &self.settings) {
                let kind = policy::kind_of(&ns);
                self.send_answer(&ns, &advert, Why::ProbeAnswered(kind));
            }
        }
        self.flush_answers();
        Ok(())
    }

    /// Run the probe cache's timers: retries, refreshes, expiries.
    fn on_probe_timer(&mut self) {
        let snap = self.table.load();
        for target in self.cache.poll(Instant::now()) {
            match policy::probe_interface(&snap, &target) {
                Some(via) => self.send_probe(&snap, target, via),
                None => self.cache.remove(&target),
            }
        }
    }

    /// What `ndp-responder status` shows for this uplink.
    fn status(&self) -> UplinkStatus {
        let snap = self.table.load();
        let now = Instant::now();
        let rule_of = |a: &Ipv6Addr| {
            snap.rule_for(a)
                .map(|r| r.to_string())
                .unwrap_or_else(|| "no rule (since reloaded)".into())
        };
        let last = |a: &Ipv6Addr| {
            self.in_use
                .get(a)
                .map(|t| now.saturating_duration_since(*t).as_secs())
        };
        let mut answering: BTreeMap<Ipv6Addr, Answering> = BTreeMap::new();
        let mut add = |address: Ipv6Addr, why: &str, rule: String| {
            answering.entry(address).or_insert(Answering {
                address,
                why: why.to_string(),
                rule,
                last_answered_secs: last(&address),
            });
        };
        for (addr, network) in &snap.docker {
            add(*addr, "docker", format!("docker network {network}"));
        }
        for addr in &snap.known {
            add(*addr, "auto", rule_of(addr));
        }
        for addr in self.cache.positives() {
            add(addr, "probe", rule_of(&addr));
        }
        for addr in self.in_use.keys() {
            let why = match snap.rule_for(addr).map(|r| &r.mode) {
                Some(Mode::Static) => "static",
                Some(Mode::Auto) => "auto",
                Some(Mode::Probe { .. }) => "probe",
                Some(Mode::Docker { .. }) => "docker",
                None => "none",
            };
            add(*addr, why, rule_of(addr));
        }
        let settings = &self.settings;
        UplinkStatus {
            interface: self.ifname.clone(),
            index: snap.uplink,
            up: snap.up,
            mac: snap.mac.to_string(),
            addresses: snap.uplink_addrs.clone(),
            gateways: snap.gateways.clone(),
            source: settings.source.to_string(),
            router_flag: settings.router,
            override_flag: settings.override_flag,
            rules: snap.rules.iter().map(|r| r.to_string()).collect(),
            answering: answering.into_values().collect(),
            probe_cache_entries: self.cache.len(),
            probe_cache_max: self.opts.probe.max_entries,
            counters: self.counters.clone(),
        }
    }

    /// A reloaded configuration for this uplink: apply what changed, keep the socket and all
    /// that is known (the refresh task applies the new rules to the snapshot).
    fn apply(&mut self, new: Options) {
        let old = std::mem::replace(&mut self.opts, new);
        let new = &self.opts;
        self.settings = new.settings;
        self.cache.set_limits(new.probe);
        self.limiter.set_limits(new.rate_limit, Instant::now());
        if new.keepalive != old.keepalive {
            self.keepalive = new.keepalive.map(|interval| {
                schedule::Keepalive::new(interval, Instant::now(), schedule::Jitter::new(seed()))
            });
            if self.keepalive.is_none() {
                self.gateway_reader = None;
            }
        }
        if new.announce != old.announce {
            self.announcer = new.announce.map(|interval| {
                schedule::Announcer::new(
                    interval,
                    Instant::now(),
                    schedule::Jitter::new(seed() ^ 0x5eed),
                )
            });
            self.in_use_window = new.announce.unwrap_or_default().saturating_mul(2);
        }
    }

    /// Let the kernel drop solicitations for targets outside every rule (see
    /// [`link::ndp_filter`] and [`Snapshot::filter_prefixes`]); re-applied when the rules or
    /// the containers of a docker rule without a prefix change.
    fn apply_filter(&mut self, snap: &Snapshot) {
        let Some((_, socket)) = &self.uplink else {
            return;
        };
        let want = snap.filter_prefixes();
        if want == self.filtered {
            return;
        }
        match socket.get_ref().set_targets(&want) {
            Ok(()) => {
                debug!("kernel filter on {}: targets in {want:?}", self.ifname);
                self.filtered = want;
            }
            Err(e) => warn!(
                "could not narrow the kernel filter on {} to the rules' prefixes ({e}); every solicitation reaches the daemon",
                self.ifname
            ),
        }
    }

    /// Follow the uplink and downstream interfaces as the snapshot says they are now.
    fn reconcile(&mut self) {
        let snap = self.table.load();
        let current = self.uplink.as_ref().map(|(i, _)| *i);
        if current != snap.uplink {
            if current.is_some() {
                self.uplink = None;
            }
            match snap.uplink {
                None => warn!("{} is gone; answering resumes when it is back", self.ifname),
                Some(index) => match open_uplink(&self.ifname, index) {
                    Ok(fd) => {
                        if current.is_some() || self.counters.ns_seen > 0 {
                            info!("{} is back (index {index}); answering again", self.ifname);
                        }
                        self.uplink = Some((index, Arc::new(fd)));
                        self.filtered.clear();
                    }
                    Err(e) => warn!("cannot listen on {}: {e}", self.ifname),
                },
            }
        }
        self.apply_filter(&snap);
        self.probers
            .retain(|index, _| snap.downstream.contains_key(index));
        if self.gateway_reader.as_ref().map(|(i, _)| *i) != snap.uplink {
            self.gateway_reader = None;
        }
        self.note_new_addresses(&snap);
    }
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

fn flags(na: &NeighborAdvert) -> String {
    let mut f = String::new();
    for (set, c) in [
        (na.router, 'R'),
        (na.solicited, 'S'),
        (na.override_flag, 'O'),
    ] {
        if set {
            f.push(c);
        }
    }
    if f.is_empty() {
        f.push('-');
    }
    f
}

fn describe(snap: &Snapshot) -> String {
    format!(
        "MAC {}, {}, own addresses: {}; gateways: {}",
        snap.mac,
        if snap.up { "up" } else { "down" },
        list(&snap.uplink_addrs),
        list(&snap.gateways)
    )
}

/// Log what changed between two snapshots, as an operator wants to read it.
fn log_changes(ifname: &str, old: &Snapshot, new: &Snapshot) {
    if new.uplink.is_none() {
        return;
    }
    if old.up != new.up
        || old.mac != new.mac
        || old.uplink_addrs != new.uplink_addrs
        || old.gateways != new.gateways
    {
        info!("{ifname} changed: {}", describe(new));
    }
    for added in new.known.difference(&old.known) {
        info!("auto: {added} is now known behind a downstream interface");
    }
    for removed in old.known.difference(&new.known) {
        info!("auto: {removed} is no longer known downstream");
    }
}

/// Warn about rules that can never answer as the routes stand (see `ndp-responder doctor`).
fn warn_unrouted(ifname: &str, snap: &Snapshot) {
    for rule in snap
        .rules
        .iter()
        .filter(|r| !matches!(r.mode, Mode::Docker { .. }))
    {
        let probe = rule.prefix.addr();
        if let Some(Some(oif)) = snap.route_oif(&probe) {
            if Some(oif) == snap.uplink && rule.prefix.prefix_len() < 128 {
                let sample = Ipv6Addr::from(u128::from(rule.prefix.broadcast()).saturating_sub(1));
                if snap.route_oif(&sample) == Some(Some(oif)) {
                    warn!(
                        "rule {rule}: its addresses are routed out of {ifname}, so none is answered until the prefix is routed to a downstream interface (run `ndp-responder doctor -i {ifname} -n {}`)",
                        rule.prefix
                    );
                }
            }
        }
    }
}

/// A seed for timer jitter: differs between hosts and runs.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// The first rule of `opts` that covers one of `gateways`, as an error naming where it was
/// written. The policy never answers for a gateway anyway, but a rule that wide is a mistake
/// (usually the whole on-link /64 instead of the containers' range).
pub fn gateway_conflict(opts: &Options, gateways: &[Ipv6Addr]) -> Option<String> {
    opts.rules.iter().enumerate().find_map(|(i, rule)| {
        if matches!(rule.mode, Mode::Docker { .. }) && rule.prefix.prefix_len() == 0 {
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

/// Where the refresh task takes its targets from; replaced by a reload.
#[derive(Clone)]
struct Sources {
    rules: Vec<Rule>,
    docker: watch::Receiver<Arc<DockerTargets>>,
}

/// Rebuild the snapshot whenever the kernel reports a change or a reload replaces the rules,
/// forever.
async fn refresh_task(
    handle: netlink::Handle,
    ifname: String,
    mut sources_rx: watch::Receiver<Sources>,
    table: Arc<TargetTable>,
    changed: Arc<Notify>,
    mut view: KernelView,
) {
    let mut sources = sources_rx.borrow_and_update().clone();
    let mut docker_open = true;
    let mut sources_open = true;
    loop {
        let events = match netlink::watch() {
            Ok(w) => w,
            Err(e) => {
                error!("cannot subscribe to kernel changes: {e}; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Look once right after (re)subscribing: changes may have happened meanwhile.
        let mut kernel_due = true;
        loop {
            if !kernel_due {
                tokio::select! {
                    event = events.changed() => {
                        if let Err(e) = event {
                            // ENOBUFS (events were lost) or worse: a fresh subscription, then
                            // a fresh read of everything.
                            warn!("kernel change subscription: {e}; subscribing again");
                            break;
                        }
                    }
                    result = sources.docker.changed(), if docker_open => {
                        // The containers changed: rebuild from the kernel state we have.
                        docker_open = result.is_ok();
                        let docker = sources.docker.borrow_and_update().clone();
                        publish(&view, &ifname, &sources.rules, &docker, &table, &changed);
                        continue;
                    }
                    result = sources_rx.changed(), if sources_open => {
                        // A reload: the new rules apply at once, to the state we have.
                        sources_open = result.is_ok();
                        sources = sources_rx.borrow_and_update().clone();
                        docker_open = true;
                        let docker = sources.docker.borrow_and_update().clone();
                        publish(&view, &ifname, &sources.rules, &docker, &table, &changed);
                        continue;
                    }
                }
            }
            kernel_due = false;
            tokio::time::sleep(REFRESH_COALESCE).await;
            // Swallow the events of the burst we are about to read anyway.
            while let Some(Ok(())) = futures::FutureExt::now_or_never(events.changed()) {}
            match netlink::kernel_view(&handle).await {
                Ok(fresh) => {
                    view = fresh;
                    let docker = sources.docker.borrow_and_update().clone();
                    publish(&view, &ifname, &sources.rules, &docker, &table, &changed);
                }
                Err(e) => warn!("could not read the kernel's state: {e}"),
            }
        }
    }
}

fn publish(
    view: &KernelView,
    ifname: &str,
    rules: &[Rule],
    docker: &DockerTargets,
    table: &TargetTable,
    changed: &Notify,
) {
    let next = Snapshot::build(view, ifname, rules, docker);
    let current = table.load();
    if *current != next {
        log_changes(ifname, &current, &next);
        table.store(next);
        changed.notify_one();
    }
}

fn docker_networks(rules: &[Rule]) -> Vec<String> {
    rules
        .iter()
        .filter_map(|r| match &r.mode {
            Mode::Docker { network } => Some(network.clone()),
            _ => None,
        })
        .collect()
}

/// The Docker watcher of one uplink, replaced when a reload changes its networks.
struct DockerFeed {
    networks: Vec<String>,
    rx: watch::Receiver<Arc<DockerTargets>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl DockerFeed {
    /// Follow `networks`, starting from what is already known of them (so that a reload does
    /// not forget the containers of the networks it keeps).
    fn start(networks: Vec<String>, known: &DockerTargets) -> DockerFeed {
        let kept: DockerTargets = known
            .iter()
            .filter(|(_, (net, _))| networks.contains(net))
            .map(|(a, v)| (*a, v.clone()))
            .collect();
        let (tx, rx) = watch::channel(Arc::new(kept));
        let task =
            (!networks.is_empty()).then(|| tokio::spawn(docker::watch(networks.clone(), tx)));
        DockerFeed { networks, rx, task }
    }
}

impl Drop for DockerFeed {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
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
    let Some(index) = snap.uplink else {
        return Err(DaemonError::NoSuchInterface(ifname));
    };
    if view.links[&index].mac.is_none() {
        return Err(DaemonError::NoMac(ifname));
    }
    if let Some(conflict) = gateway_conflict(&opts, &snap.gateways) {
        // A configuration file is held to it; the command line (a quick start) is warned.
        if opts.origins.is_empty() {
            warn!("{conflict}");
        } else {
            return Err(DaemonError::Config(conflict));
        }
    }
    let uplink = open_uplink(&ifname, index)?;

    let table = Arc::new(TargetTable::new(snap));
    let changed = Arc::new(Notify::new());
    let mut docker = DockerFeed::start(docker_networks(&opts.rules), &DockerTargets::new());
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
    let mut responder = Responder {
        ifname: ifname.clone(),
        opts: opts.clone(),
        uplink: Some((index, Arc::new(uplink))),
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
        keepalive: opts.keepalive.map(|interval| {
            schedule::Keepalive::new(interval, Instant::now(), schedule::Jitter::new(seed()))
        }),
        gateway_reader: None,
        expected: gateway::Expected::default(),
        gateway_macs: HashMap::new(),
        announcer: opts.announce.map(|interval| {
            schedule::Announcer::new(
                interval,
                Instant::now(),
                schedule::Jitter::new(seed() ^ 0x5eed),
            )
        }),
        in_use: HashMap::new(),
        in_use_window: opts.announce.unwrap_or_default().saturating_mul(2),
        warned: Default::default(),
        bursts: Default::default(),
        next_new: Instant::now(),
        announced: Default::default(),
    };
    // What is known at start is announced as new: the router may have forgotten it.
    responder.note_new_addresses(&table.load());
    responder.apply_filter(&table.load());
    // Only now, with the kernel filter in place: "answering on" means ready.
    log_start(&ifname, &opts, &table.load());
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
            Some((index, na)) = adverts.recv() => responder.on_advert(index, na),
            () = keepalive_due => {
                if responder.keepalive.as_mut().is_some_and(|k| k.due(Instant::now())) {
                    responder.on_keepalive();
                }
            }
            () = announce_due => responder.on_announce(),
            () = burst_due => responder.on_burst(),
            () = probe_due => responder.on_probe_timer(),
            () = changed.notified() => responder.reconcile(),
            request = control.requests.recv(), if requests_open => match request {
                Some(Request::Status(reply)) => {
                    responder.count_drops();
                    responder.count_advert_drops();
                    let _ = reply.send(responder.status());
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
                    docker = DockerFeed::start(networks, &known);
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
    refresher.abort();
    drop(docker);
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
