//! Probing: asking a downstream interface whether a target of a probe rule is there, and
//! reading the answers (and the gateway's, for the keepalive) off its socket.
//!
//! Owns: the probe sockets (each a [`super::reader::Reader`]), the bounded queue of
//! advertisements from the readers to the loop, sending probes, and checking a downstream
//! answer before it confirms a probe (RFC 4861 7.1.2, [`crate::decide::advert::probe_answer`]).
//!
//! Must not: keep the probe cache's state itself (that is [`crate::decide::probe`]).

use std::net::Ipv6Addr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tracing::{debug, warn};

use super::answer::Why;
use super::reader::Reader;
use super::Responder;
use crate::decide::targets::Snapshot;
use crate::decide::{
    advert::{self, AdvertRefused},
    policy,
};
use crate::link::Capture;
use crate::ndp::{NeighborAdvert, NeighborSolicit};

/// Advertisements queued from the socket readers to the loop; more are dropped (counted), so
/// a flood of them cannot grow memory.
pub(super) const ADVERT_QUEUE: usize = 256;

impl Responder {
    /// Ask downstream interface `via` whether `target` is there.
    pub(super) fn send_probe(&mut self, snap: &Snapshot, target: Ipv6Addr, via: u32) {
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
        match self.probers[&via].socket().send_with(|buf| ns.emit(buf)) {
            Ok(()) => {
                self.counters.probes_sent += 1;
                debug!("probing {target} on {}", down.name);
            }
            Err(e) => warn!("could not probe {target} on {}: {e}", down.name),
        }
    }

    /// Open a socket that reads advertisements on interface `index` and forwards them to the
    /// loop; it also sends our solicitations there.
    pub(super) fn open_advert_reader(&self, name: &str, index: u32) -> Result<Reader, String> {
        Reader::open(
            name,
            index,
            Capture::Advertisements,
            self.adverts.clone(),
            self.adverts_dropped.clone(),
            move |frame| NeighborAdvert::parse(frame).ok().map(|na| (index, na)),
        )
    }

    /// An advertisement arrived on interface `index`.
    pub(super) fn on_advert(&mut self, index: u32, na: NeighborAdvert) {
        let outcome = if self.uplink.as_ref().map(|(i, _)| *i) == Some(index) {
            self.on_gateway_advert(index, &na)
        } else {
            self.on_downstream_advert(index, &na)
        };
        if let Err(why) = outcome {
            self.refuse_advert(&na, why);
        }
    }

    pub(super) fn refuse_advert(&mut self, na: &NeighborAdvert, why: AdvertRefused) {
        self.counters.adverts_refused.add(why);
        debug!(
            "refused NA for {} from {} ({}): {why}",
            na.target, na.ip_src, na.eth_src
        );
    }

    /// Fold the readers' count of advertisements dropped for a full queue into the counters.
    pub(super) fn count_advert_drops(&mut self) {
        let n = self.adverts_dropped.swap(0, Ordering::Relaxed);
        if n > 0 {
            self.counters
                .adverts_refused
                .add_n(AdvertRefused::QueueFull, n);
        }
    }

    /// A downstream station answered on interface `index`: if it answers our probe there,
    /// answer the solicitations that waited for it.
    pub(super) fn on_downstream_advert(
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
        advert::probe_answer(na, probe_source)?;
        self.now = Instant::now();
        let waiters = self
            .cache
            .advert(target, self.now)
            .ok_or(AdvertRefused::Unexpected)?;
        if waiters.is_empty() || policy::awaits_route(&snap, &target) {
            return Ok(());
        }
        for ns in waiters {
            if let Ok(advert) = policy::advert(&ns, &snap, &self.settings) {
                let kind = policy::kind_of(&ns);
                self.send_answer(&snap, &ns, &advert, Why::ProbeAnswered(kind));
            }
        }
        self.flush_answers();
        Ok(())
    }

    /// Run the probe cache's timers: retries, refreshes, expiries.
    pub(super) fn on_probe_timer(&mut self) {
        let snap = self.table.load();
        for target in self.cache.poll(Instant::now()) {
            match policy::probe_interface(&snap, &target) {
                Some(via) => self.send_probe(&snap, target, via),
                None => self.cache.remove(&target),
            }
        }
    }
}
