//! Answering: one pass over the receive ring, and one solicitation's journey through it.
//!
//! Owns: draining the uplink's ring ([`Responder::drain`]), the journey of one frame
//! ([`Responder::handle_frame`]: parse -> decide -> (probe) -> emit -> send), the rate limits'
//! verdict, the batch of answers and its send, the kernel's drop count, the addresses in use,
//! and the log lines about answers (with their budget).
//!
//! Must not: decide (that is [`crate::decide::policy`]), parse or build bytes (that is
//! [`crate::ndp`]), or wait: everything here runs on the loop between two wake-ups.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::Responder;
use crate::decide::policy::{self, Decision};
use crate::decide::probe::Verdict;
use crate::decide::targets::{Mode, Rule, Snapshot};
use crate::link::{self};
use crate::ndp::{NeighborAdvert, NeighborSolicit};

/// Frames handled per wake-up before the loop looks at its other duties.
pub(super) const DRAIN_BATCH: usize = 512;

/// At most `rate` INFO lines per second about answers (bursts up to `burst`); the rest are
/// counted and reported with the next line, so a flood cannot flood the log.
pub(super) struct LogBudget {
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

impl LogBudget {
    const RATE: f64 = 20.0;
    const BURST: f64 = 100.0;

    pub(super) fn new() -> Self {
        LogBudget {
            tokens: Self::BURST,
            last: Instant::now(),
            suppressed: 0,
        }
    }

    /// Some(number of lines suppressed before this one) if this line may be logged.
    pub(super) fn take(&mut self, now: Instant) -> Option<u64> {
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

/// Why an answer is sent, for its log line (formatted only when the line is logged: the packet
/// path does not allocate).
#[derive(Clone, Copy)]
pub(super) enum Why<'a> {
    Rule(policy::Kind, &'a Rule),
    Probed(policy::Kind, &'a Rule),
    ProbeAnswered(policy::Kind),
}

impl Why<'_> {
    /// Is the target known to be live (the kernel, the engine or a probe said so), rather
    /// than merely inside a static prefix?
    pub(super) fn live(&self) -> bool {
        match self {
            Why::Rule(_, rule) => rule.mode != Mode::Static,
            Why::Probed(..) | Why::ProbeAnswered(_) => true,
        }
    }
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

/// Addresses remembered as in use, at most.
pub(super) const MAX_IN_USE: usize = 4096;

/// When that many are remembered, those answered longer ago than this are forgotten.
pub(super) const IN_USE_KEEP: Duration = Duration::from_secs(600);

pub(super) fn flags(na: &NeighborAdvert) -> String {
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

impl Responder {
    /// Handle up to [`DRAIN_BATCH`] frames from the uplink's receive ring, then send the
    /// answers they produced in one batch. Returns true when the ring is empty. (A link going
    /// down is learned from netlink; the ring just stays empty meanwhile.)
    pub(super) fn drain(&mut self) -> bool {
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
    pub(super) fn count_drops(&mut self) {
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
    pub(super) fn flush_answers(&mut self) {
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
                self.send_answer(&snap, &ns, &advert, Why::Rule(kind, rule));
            }
            Decision::Probe { kind, rule, via } => {
                match self.cache.solicit(ns.target, ns, self.now) {
                    Verdict::Answer if policy::awaits_route(&snap, &ns.target) => {
                        self.count_ignored(&ns, kind, policy::Ignored::UnknownDownstream)
                    }
                    Verdict::Answer => match policy::advert(&ns, &snap, &self.settings) {
                        Ok(advert) => {
                            self.send_answer(&snap, &ns, &advert, Why::Probed(kind, rule))
                        }
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

    pub(super) fn count_ignored(
        &mut self,
        ns: &NeighborSolicit,
        kind: policy::Kind,
        why: policy::Ignored,
    ) {
        self.counters.ignored.add(why);
        debug!(
            "ignored NS who-has {} from {} ({}): {why}",
            ns.target,
            ns.ip_src,
            kind.label()
        );
    }

    pub(super) fn send_answer(
        &mut self,
        snap: &Snapshot,
        ns: &NeighborSolicit,
        advert: &NeighborAdvert,
        why: Why<'_>,
    ) {
        if self.uplink.is_none() {
            return;
        }
        let now = self.now;
        // A gateway (known by the MAC the kernel holds for it) has buckets of its own: one for
        // targets known to be live, one for the rest (see `ratelimit`).
        let verdict = if snap.is_gateway_mac(&ns.eth_src) {
            self.limiter.check_gateway(ns.eth_src, why.live(), now)
        } else {
            self.limiter.check(ns.ip_src, now)
        };
        if let Err(limit) = verdict {
            self.counters.rate_limited += 1;
            self.counters.withheld.add(limit);
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
        self.note_in_use(advert.target, self.now);
        // A target's first answer, and an answer to a new solicitor, at INFO (within the log
        // budget); the repeats (every re-probe of every router) only at DEBUG: at scale they
        // are noise, and formatting them costs CPU.
        if !self.new_solicitor(advert.target, ns.ip_src) {
            debug!(
                "answered NS who-has {} from {} ({why}) again: NA src {} dst {} flags {}",
                ns.target,
                ns.ip_src,
                advert.ip_src,
                advert.ip_dst,
                flags(advert)
            );
            return;
        }
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

    /// Is `solicitor` new for `target` (its first answer, or another solicitor than last
    /// time)? Remembers it; at most [`MAX_IN_USE`] targets (then it starts over).
    fn new_solicitor(&mut self, target: Ipv6Addr, solicitor: Ipv6Addr) -> bool {
        if self.solicitors.get(&target) == Some(&solicitor) {
            return false;
        }
        if self.solicitors.len() >= MAX_IN_USE && !self.solicitors.contains_key(&target) {
            self.solicitors.clear();
        }
        self.solicitors.insert(target, solicitor);
        true
    }

    pub(super) fn note_in_use(&mut self, addr: Ipv6Addr, now: Instant) {
        if self.in_use.len() >= MAX_IN_USE && !self.in_use.contains_key(&addr) {
            let window = self.in_use_window.max(IN_USE_KEEP);
            self.in_use
                .retain(|_, t| now.saturating_duration_since(*t) < window);
        }
        if self.in_use.len() < MAX_IN_USE || self.in_use.contains_key(&addr) {
            self.in_use.insert(addr, now);
        }
    }
}
