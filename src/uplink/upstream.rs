//! Upstream care: the gateway keepalive and the announcements of our addresses.
//!
//! Owns: soliciting each gateway on the keepalive's schedule and confirming its entry in the
//! kernel from its answer (once [`crate::decide::gateway::Expected`] accepts it), counting
//! each solicitation answered or failed (no acceptable answer in time), the periodic
//! announcements, and the paced first announcements of new addresses.
//!
//! Must not: schedule by itself (that is [`crate::decide::schedule`]) or trust an
//! advertisement that [`crate::decide::gateway`] refused.

use std::cmp::Reverse;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::Responder;
use crate::decide::schedule;
use crate::decide::targets::Snapshot;
use crate::decide::{advert::AdvertRefused, policy};
use crate::ndp::{NeighborAdvert, NeighborSolicit};
use crate::sources::netlink::{self};
use crate::status::Reason;

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

/// A new address is announced this many times (RFC 4861 10: MAX_NEIGHBOR_ADVERTISEMENT)...
pub(super) const ANNOUNCE_COUNT: u8 = 3;

/// ...this far apart (RFC 4861 10: RETRANS_TIMER).
pub(super) const ANNOUNCE_SPACING: Duration = Duration::from_secs(1);

/// New addresses start their announcements at most this often: a container that creates
/// addresses quickly must not make the host send bursts upstream (RFC 4861 7.2.6 limits a
/// node's unsolicited advertisements for the same reason).
pub(super) const NEW_PER_SECOND: u32 = 10;

/// New addresses waiting for their announcements, at most; more are not announced (they are
/// still answered, and the periodic announcements, if on, include them).
pub(super) const MAX_BURSTS: usize = 1024;

impl Responder {
    pub(super) fn warn_once(&mut self, key: String, message: &str) {
        if self.warned.insert(key) {
            warn!("{message}");
        }
    }

    /// Keepalive tick: solicit each default gateway from a global source.
    pub(super) fn on_keepalive(&mut self) {
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
            match socket.get_ref().send_with(|buf| ns.emit(buf)) {
                Ok(()) => {
                    self.counters.keepalives_failed += self.expected.solicited(*gw, source, now);
                    self.counters.keepalives_sent += 1;
                    debug!("gateway keepalive: NS for {gw} from {source}");
                }
                Err(e) => warn!("gateway keepalive: could not solicit {gw}: {e}"),
            }
        }
    }

    /// Keepalive solicitations whose answer window passed without an acceptable answer.
    pub(super) fn on_keepalive_expiry(&mut self) {
        let failed = self.expected.expire(Instant::now());
        if failed > 0 {
            self.counters.keepalives_failed += failed;
            debug!(
                "gateway keepalive: {failed} solicitation(s) on {} not answered in time",
                self.ifname
            );
        }
    }

    /// The gateway answered a keepalive: confirm its entry in the kernel (REACHABLE, ages),
    /// once [`gateway::Expected`] accepts the answer as the gateway's.
    pub(super) fn on_gateway_advert(
        &mut self,
        index: u32,
        na: &NeighborAdvert,
    ) -> Result<(), AdvertRefused> {
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
        self.counters.keepalives_answered += 1;
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
    pub(super) fn on_announce(&mut self) {
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
    pub(super) fn announce_one(&mut self, snap: &Snapshot, addr: Ipv6Addr, why: &str) {
        let Some((_, socket)) = &self.uplink else {
            return;
        };
        let Ok(na) = policy::announcement(addr, snap, &self.settings) else {
            return;
        };
        let socket = socket.get_ref();
        let mut sent = socket.send_with(|buf| na.emit(buf)).is_ok();
        for gw in &snap.default_gateways {
            let ns = NeighborSolicit::resolution(snap.mac, addr, *gw);
            sent &= socket.send_with(|buf| ns.emit(buf)).is_ok();
        }
        if sent {
            self.counters.announcements_sent += 1;
            debug!("announced {addr} ({why}): unsolicited NA, NS to the gateway");
        } else {
            self.counters.send_errors += 1;
        }
    }

    /// Queue the first announcements of addresses that just appeared (docker, auto).
    pub(super) fn note_new_addresses(&mut self, snap: &Snapshot) {
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
    pub(super) fn on_burst(&mut self) {
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
}

/// The keepalive schedule of `interval`, starting now (jittered per host and run).
pub(super) fn keepalive_every(interval: Duration) -> schedule::Keepalive {
    schedule::Keepalive::new(interval, Instant::now(), schedule::Jitter::new(seed()))
}

/// The announcement schedule of `interval`, starting now.
pub(super) fn announcer_every(interval: Duration) -> schedule::Announcer {
    schedule::Announcer::new(
        interval,
        Instant::now(),
        schedule::Jitter::new(seed() ^ 0x5eed),
    )
}

/// A seed for timer jitter: differs between hosts and runs.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}
