//! SLAAC on a downstream interface: who the stations are, which of their addresses we may
//! stand for upstream, duplicate detection across the proxy; when and what to advertise is
//! [`advertise`].
//!
//! Owns, for one SLAAC interface, all pure with time passed in:
//! - [`Stations`]: the addresses learned on the interface (by MAC), bounded per MAC and in
//!   all, first come first served; the guests' DAD relayed upstream (pending) and the
//!   addresses that failed it (remembered); which stations are due a liveness probe and which
//!   are gone. RFC 4861 5.4 / RFC 4862 5.4 (DAD), RFC 4389 4.1 (DAD across a proxy).
//! - the claims of addresses by use (NA, NS source, an answer to a probe): verified upstream
//!   like a DAD before they are believed.
//!
//! Must not: do I/O, read clocks, or log. The uplink's SLAAC duty ([`crate::uplink`]) does.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use ipnet::Ipv6Net;

use crate::ndp::MacAddr;

pub mod advertise;
pub use advertise::*;

/// Bounds and times of the station table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Addresses per MAC (privacy addresses rotate: RFC 8981 keeps a few at once).
    pub per_mac: usize,
    /// Addresses in all, on this interface.
    pub total: usize,
    /// How long a relayed DAD waits for an answer upstream (RFC 4861 RetransTimer, 1 s,
    /// times DupAddrDetectTransmits, 1) before the address is taken as free.
    pub dad_wait: Duration,
    /// How long an address that failed DAD is neither learned nor answered.
    pub failed_memory: Duration,
    /// A station not heard from for this long is probed.
    pub stale_after: Duration,
    /// Probes are this far apart.
    pub probe_every: Duration,
    /// Unanswered probes after which the station is gone.
    pub probe_misses: u8,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_mac: 16,
            total: 1024,
            dad_wait: Duration::from_millis(1000),
            failed_memory: Duration::from_secs(600),
            stale_after: Duration::from_secs(5),
            probe_every: Duration::from_secs(3),
            probe_misses: 3,
        }
    }
}

/// Why an address seen on the SLAAC interface is not stood for upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refused {
    OutsidePrefix,
    HostAddress,
    Gateway,
    TakenByOtherMac,
    PerMacCap,
    TotalCap,
    FailedDad,
}

impl crate::status::Reason for Refused {
    fn reason(&self) -> &'static str {
        match self {
            Refused::OutsidePrefix => "outside_prefix",
            Refused::HostAddress => "host_address",
            Refused::Gateway => "gateway",
            Refused::TakenByOtherMac => "taken_by_other_mac",
            Refused::PerMacCap => "per_mac_cap",
            Refused::TotalCap => "total_cap",
            Refused::FailedDad => "failed_dad",
        }
    }
}

/// What the host knows that no guest may claim.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The prefixes shared on the interface.
    pub prefixes: &'a [Ipv6Net],
    /// The host's own addresses (uplink and the interface itself).
    pub host: &'a [Ipv6Addr],
    pub gateways: &'a [Ipv6Addr],
}

/// One learned address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Station {
    pub mac: MacAddr,
    pub since: Instant,
    /// Last heard from (a packet from it, or an answer to a probe).
    pub seen: Instant,
    probed: Option<Instant>,
    misses: u8,
}

/// The outcome of a guest's DAD solicitation for an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dad {
    /// The address is in use where the guest cannot see it: answer its DAD downstream at once
    /// so that it marks the address failed.
    Defend(Refused),
    /// Ask upstream: relay the DAD solicitation on the uplink, and wait.
    Relay,
    /// Already this MAC's address: nothing to do.
    Known,
    /// Not ours to care about (outside the prefix, or a bound): not learned, not defended.
    Ignore(Refused),
}

/// Whether an address just seen is newly learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// New: install its route, announce it.
    New,
    /// Already known from this MAC (refreshed).
    Known,
    /// New and not verified yet: ask upstream whether it is in use there (a DAD
    /// solicitation relayed, RFC 4389 4.1) before it is learned; a guest claiming an
    /// address by simply using it is not believed before that.
    Verify,
    /// Being verified already (its DAD, or an earlier claim, is relayed).
    Pending,
}

/// What the timers say, once polled.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Poll {
    /// Relayed DADs nobody answered upstream: learned now (or refused by a bound meanwhile).
    pub learned: Vec<(Ipv6Addr, Result<Learned, Refused>)>,
    /// Stations to probe now (unicast NS to their MAC).
    pub probe: Vec<(Ipv6Addr, MacAddr)>,
    /// Stations gone (probes unanswered): remove their route.
    pub gone: Vec<Ipv6Addr>,
}

/// The stations of one SLAAC interface.
#[derive(Debug, Clone)]
pub struct Stations {
    limits: Limits,
    by_addr: HashMap<Ipv6Addr, Station>,
    per_mac: HashMap<MacAddr, usize>,
    /// Relayed DADs: address -> (guest MAC, when the window closes).
    pending: HashMap<Ipv6Addr, (MacAddr, Instant)>,
    /// Addresses that failed DAD, until when they are remembered.
    failed: HashMap<Ipv6Addr, Instant>,
}

impl Stations {
    pub fn new(limits: Limits) -> Self {
        Stations {
            limits,
            by_addr: HashMap::new(),
            per_mac: HashMap::new(),
            pending: HashMap::new(),
            failed: HashMap::new(),
        }
    }

    pub fn get(&self, addr: &Ipv6Addr) -> Option<&Station> {
        self.by_addr.get(addr)
    }

    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    /// Every learned address and its station, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (&Ipv6Addr, &Station)> {
        self.by_addr.iter()
    }

    /// Addresses whose DAD is relayed and not yet decided.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Addresses remembered as failed DAD.
    pub fn failed(&self) -> impl Iterator<Item = &Ipv6Addr> {
        self.failed.keys()
    }

    /// The checks every claim goes through, bounds last.
    fn check(
        &self,
        addr: &Ipv6Addr,
        mac: MacAddr,
        now: Instant,
        ctx: &Context,
    ) -> Result<Option<Learned>, Refused> {
        if !ctx.prefixes.iter().any(|p| p.contains(addr)) {
            return Err(Refused::OutsidePrefix);
        }
        if ctx.host.contains(addr) {
            return Err(Refused::HostAddress);
        }
        if ctx.gateways.contains(addr) {
            return Err(Refused::Gateway);
        }
        if self.failed.get(addr).is_some_and(|until| *until > now) {
            return Err(Refused::FailedDad);
        }
        match self.by_addr.get(addr) {
            Some(s) if s.mac == mac => return Ok(Some(Learned::Known)),
            // First come, first served while the first is alive.
            Some(_) => return Err(Refused::TakenByOtherMac),
            None => {}
        }
        if self
            .pending
            .get(addr)
            .is_some_and(|(other, _)| *other != mac)
        {
            return Err(Refused::TakenByOtherMac);
        }
        let pending_of_mac = self
            .pending
            .iter()
            .filter(|(a, (m, _))| *m == mac && *a != addr)
            .count();
        if self.per_mac.get(&mac).copied().unwrap_or(0) + pending_of_mac >= self.limits.per_mac {
            return Err(Refused::PerMacCap);
        }
        if self.by_addr.len() >= self.limits.total {
            return Err(Refused::TotalCap);
        }
        Ok(None)
    }

    /// `addr` was used by `mac` on the interface (the source of its NS or NA, the target of
    /// its NA): refresh it, or start verifying it upstream ([`Learned::Verify`]).
    pub fn seen(
        &mut self,
        addr: Ipv6Addr,
        mac: MacAddr,
        now: Instant,
        ctx: &Context,
    ) -> Result<Learned, Refused> {
        match self.check(&addr, mac, now, ctx)? {
            Some(known) => {
                if let Some(s) = self.by_addr.get_mut(&addr) {
                    s.seen = now;
                    s.probed = None;
                    s.misses = 0;
                }
                Ok(known)
            }
            None if self.pending.contains_key(&addr) => Ok(Learned::Pending),
            None => {
                self.start_pending(addr, mac, now)?;
                Ok(Learned::Verify)
            }
        }
    }

    /// Verification of `addr` starts (bounded: as many as the table may still take).
    fn start_pending(&mut self, addr: Ipv6Addr, mac: MacAddr, now: Instant) -> Result<(), Refused> {
        if self.pending.len() + self.by_addr.len() >= self.limits.total {
            return Err(Refused::TotalCap);
        }
        self.pending.insert(addr, (mac, now + self.limits.dad_wait));
        Ok(())
    }

    /// The verification of `addr` for `mac` ended without an answer upstream: learn it.
    fn learn(
        &mut self,
        addr: Ipv6Addr,
        mac: MacAddr,
        now: Instant,
        ctx: &Context,
    ) -> Result<Learned, Refused> {
        self.pending.remove(&addr);
        match self.check(&addr, mac, now, ctx)? {
            Some(known) => Ok(known),
            None => {
                self.insert(addr, mac, now);
                Ok(Learned::New)
            }
        }
    }

    /// When the earliest verification window closes.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|(_, at)| *at).min()
    }

    fn insert(&mut self, addr: Ipv6Addr, mac: MacAddr, now: Instant) {
        self.by_addr.insert(
            addr,
            Station {
                mac,
                since: now,
                seen: now,
                probed: None,
                misses: 0,
            },
        );
        *self.per_mac.entry(mac).or_default() += 1;
    }

    /// A guest's DAD solicitation (source ::) for `addr` from `mac`.
    pub fn dad(&mut self, addr: Ipv6Addr, mac: MacAddr, now: Instant, ctx: &Context) -> Dad {
        match self.check(&addr, mac, now, ctx) {
            Ok(Some(_)) => Dad::Known,
            Ok(None) => {
                if !self.pending.contains_key(&addr) {
                    if let Err(why) = self.start_pending(addr, mac, now) {
                        return Dad::Ignore(why);
                    }
                }
                Dad::Relay
            }
            Err(why @ (Refused::HostAddress | Refused::Gateway | Refused::FailedDad)) => {
                Dad::Defend(why)
            }
            // Another guest's while it is alive: the guests share the link, but its answer
            // may be to the host's MAC only (a bridge port isolated, a filter): defend too.
            Err(Refused::TakenByOtherMac) if self.by_addr.contains_key(&addr) => {
                Dad::Defend(Refused::TakenByOtherMac)
            }
            Err(why) => Dad::Ignore(why),
        }
    }

    /// An advertisement for `addr` arrived upstream: if a guest's DAD for it is pending, it
    /// failed; returns that guest's MAC (to answer its DAD downstream).
    pub fn upstream_answer(&mut self, addr: &Ipv6Addr, now: Instant) -> Option<MacAddr> {
        let (mac, _) = self.pending.remove(addr)?;
        self.failed.insert(*addr, now + self.limits.failed_memory);
        Some(mac)
    }

    /// Forget `addr` (its station is gone, or the prefix went away).
    pub fn remove(&mut self, addr: &Ipv6Addr) -> Option<Station> {
        let s = self.by_addr.remove(addr)?;
        if let Some(n) = self.per_mac.get_mut(&s.mac) {
            *n -= 1;
            if *n == 0 {
                self.per_mac.remove(&s.mac);
            }
        }
        Some(s)
    }

    /// Run the timers: close DAD windows, probe quiet stations, give up on silent ones.
    pub fn poll(&mut self, now: Instant, ctx: &Context) -> Poll {
        let mut out = Poll::default();
        self.failed.retain(|_, until| *until > now);
        let closed: Vec<(Ipv6Addr, MacAddr)> = self
            .pending
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(a, (mac, _))| (*a, *mac))
            .collect();
        for (addr, mac) in closed {
            out.learned.push((addr, self.learn(addr, mac, now, ctx)));
        }
        let limits = self.limits;
        for (addr, s) in self.by_addr.iter_mut() {
            if now.saturating_duration_since(s.seen) < limits.stale_after {
                continue;
            }
            if s.probed
                .is_some_and(|at| now.saturating_duration_since(at) < limits.probe_every)
            {
                continue;
            }
            if s.misses >= limits.probe_misses {
                out.gone.push(*addr);
                continue;
            }
            s.misses += 1;
            s.probed = Some(now);
            out.probe.push((*addr, s.mac));
        }
        // Stations outside the prefixes now (the prefix went away) are gone too.
        for (addr, _) in self.by_addr.iter() {
            if !ctx.prefixes.iter().any(|p| p.contains(addr)) {
                out.gone.push(*addr);
            }
        }
        out.gone.sort();
        out.gone.dedup();
        for addr in &out.gone {
            self.remove(addr);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::testing::ip;

    const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
    const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);

    struct World {
        prefixes: Vec<Ipv6Net>,
        host: Vec<Ipv6Addr>,
        gateways: Vec<Ipv6Addr>,
    }

    impl World {
        fn new() -> Self {
            World {
                prefixes: vec!["2001:db8:1::/64".parse().unwrap()],
                host: vec![ip("2001:db8:1::2")],
                gateways: vec![ip("2001:db8:1::1")],
            }
        }
        fn ctx(&self) -> Context<'_> {
            Context {
                prefixes: &self.prefixes,
                host: &self.host,
                gateways: &self.gateways,
            }
        }
    }

    /// A claim by use, verified: seen, then the verification window closes unanswered.
    fn claim(
        s: &mut Stations,
        addr: Ipv6Addr,
        mac: MacAddr,
        t: Instant,
        ctx: &Context,
    ) -> Result<Learned, Refused> {
        match s.seen(addr, mac, t, ctx)? {
            Learned::Verify => {
                let p = s.poll(t + Limits::default().dad_wait, ctx);
                p.learned
                    .into_iter()
                    .find(|(a, _)| *a == addr)
                    .map(|(_, r)| r)
                    .expect("decided when the window closes")
            }
            other => Ok(other),
        }
    }

    #[test]
    fn a_claim_by_use_is_verified_upstream_before_it_is_learned() {
        let w = World::new();
        let t0 = Instant::now();
        let mut s = Stations::new(Limits::default());
        let ctx = w.ctx();
        let a = ip("2001:db8:1::a");
        assert_eq!(s.seen(a, A, t0, &ctx), Ok(Learned::Verify));
        assert_eq!(s.seen(a, A, t0, &ctx), Ok(Learned::Pending));
        assert_eq!(s.next_deadline(), Some(t0 + Limits::default().dad_wait));
        assert!(s.is_empty(), "not learned while verified");
        // Another customer's address upstream, claimed by a guest that just answers for it:
        // the relayed question is answered upstream, the claim fails.
        let theirs = ip("2001:db8:1::77");
        assert_eq!(s.seen(theirs, B, t0, &ctx), Ok(Learned::Verify));
        assert_eq!(s.upstream_answer(&theirs, t0), Some(B));
        assert_eq!(s.seen(theirs, B, t0, &ctx), Err(Refused::FailedDad));
        let p = s.poll(t0 + Limits::default().dad_wait, &ctx);
        assert_eq!(p.learned, vec![(a, Ok(Learned::New))]);
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn a_guest_cannot_claim_what_is_not_its_to_claim() {
        let w = World::new();
        let t0 = Instant::now();
        let mut s = Stations::new(Limits::default());
        let ctx = w.ctx();
        assert_eq!(
            s.seen(ip("2001:db8:9::5"), A, t0, &ctx),
            Err(Refused::OutsidePrefix)
        );
        assert_eq!(
            s.seen(ip("2001:db8:1::2"), A, t0, &ctx),
            Err(Refused::HostAddress)
        );
        assert_eq!(
            s.seen(ip("2001:db8:1::1"), A, t0, &ctx),
            Err(Refused::Gateway)
        );
        assert_eq!(
            claim(&mut s, ip("2001:db8:1::a"), A, t0, &ctx),
            Ok(Learned::New)
        );
        assert_eq!(s.seen(ip("2001:db8:1::a"), A, t0, &ctx), Ok(Learned::Known));
        // First come, first served.
        assert_eq!(
            s.seen(ip("2001:db8:1::a"), B, t0, &ctx),
            Err(Refused::TakenByOtherMac)
        );
        assert_eq!(
            s.dad(ip("2001:db8:1::a"), B, t0, &ctx),
            Dad::Defend(Refused::TakenByOtherMac)
        );
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn bounds_per_mac_and_in_all() {
        let w = World::new();
        let t0 = Instant::now();
        let mut s = Stations::new(Limits {
            per_mac: 2,
            total: 3,
            ..Limits::default()
        });
        let ctx = w.ctx();
        for i in 1..=2u16 {
            let a = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0xa, i);
            assert_eq!(claim(&mut s, a, A, t0, &ctx), Ok(Learned::New));
        }
        assert_eq!(
            s.seen(ip("2001:db8:1::a:3"), A, t0, &ctx),
            Err(Refused::PerMacCap)
        );
        // Claims being verified count towards the bounds too.
        assert_eq!(
            s.seen(ip("2001:db8:1::b:1"), B, t0, &ctx),
            Ok(Learned::Verify)
        );
        assert_eq!(
            s.seen(ip("2001:db8:1::b:2"), B, t0, &ctx),
            Err(Refused::TotalCap)
        );
        assert_eq!(
            claim(&mut s, ip("2001:db8:1::b:1"), B, t0, &ctx),
            Ok(Learned::Pending)
        );
        s.poll(t0 + Limits::default().dad_wait, &ctx);
        assert_eq!(s.len(), 3);
        assert_eq!(
            s.seen(ip("2001:db8:1::b:2"), B, t0, &ctx),
            Err(Refused::TotalCap)
        );
        // Removing one frees its MAC's slot.
        s.remove(&ip("2001:db8:1::a:1"));
        assert_eq!(
            claim(&mut s, ip("2001:db8:1::a:3"), A, t0, &ctx),
            Ok(Learned::New)
        );
    }

    #[test]
    fn dad_is_defended_relayed_and_remembered() {
        let w = World::new();
        let t0 = Instant::now();
        let mut s = Stations::new(Limits::default());
        let ctx = w.ctx();
        assert_eq!(
            s.dad(ip("2001:db8:1::1"), A, t0, &ctx),
            Dad::Defend(Refused::Gateway)
        );
        assert_eq!(
            s.dad(ip("2001:db8:1::2"), A, t0, &ctx),
            Dad::Defend(Refused::HostAddress)
        );
        assert_eq!(
            s.dad(ip("fe80::5"), A, t0, &ctx),
            Dad::Ignore(Refused::OutsidePrefix)
        );
        // Relayed, answered upstream: failed, defended from then on, never learned.
        let used = ip("2001:db8:1::77");
        assert_eq!(s.dad(used, A, t0, &ctx), Dad::Relay);
        assert_eq!(s.upstream_answer(&used, t0), Some(A));
        assert_eq!(s.upstream_answer(&used, t0), None);
        assert_eq!(s.dad(used, A, t0, &ctx), Dad::Defend(Refused::FailedDad));
        assert_eq!(s.seen(used, A, t0, &ctx), Err(Refused::FailedDad));
        // ...for a while.
        let later = t0 + Limits::default().failed_memory + Duration::from_secs(1);
        s.poll(later, &ctx);
        assert_eq!(claim(&mut s, used, A, later, &ctx), Ok(Learned::New));

        // Relayed, not answered within the window: learned when it closes.
        let free = ip("2001:db8:1::88");
        assert_eq!(s.dad(free, B, t0, &ctx), Dad::Relay);
        assert_eq!(
            s.dad(free, A, t0, &ctx),
            Dad::Ignore(Refused::TakenByOtherMac)
        );
        assert!(s
            .poll(t0 + Duration::from_millis(500), &ctx)
            .learned
            .is_empty());
        let p = s.poll(t0 + Duration::from_millis(1000), &ctx);
        assert_eq!(p.learned, vec![(free, Ok(Learned::New))]);
        assert_eq!(s.get(&free).unwrap().mac, B);
        assert_eq!(s.dad(free, B, t0, &ctx), Dad::Known);
    }

    #[test]
    fn quiet_stations_are_probed_then_dropped_within_30_seconds() {
        let w = World::new();
        let t0 = Instant::now();
        let l = Limits::default();
        let mut s = Stations::new(l);
        let ctx = w.ctx();
        let a = ip("2001:db8:1::a");
        claim(&mut s, a, A, t0, &ctx).unwrap();
        let mut probes = 0;
        let mut gone_at = None;
        for tick in 0..60 {
            let now = t0 + Duration::from_secs(tick);
            let p = s.poll(now, &ctx);
            probes += p.probe.len();
            if p.gone == vec![a] {
                gone_at = Some(tick);
                break;
            }
        }
        assert_eq!(probes, usize::from(l.probe_misses));
        let gone_at = gone_at.expect("dropped");
        assert!(gone_at < 30, "gone after {gone_at} s");
        assert!(s.is_empty());

        // A station that answers its probe stays.
        claim(&mut s, a, A, t0, &ctx).unwrap();
        for tick in 0..60 {
            let now = t0 + Duration::from_secs(tick);
            let p = s.poll(now, &ctx);
            if !p.probe.is_empty() {
                s.seen(a, A, now, &ctx).unwrap();
            }
            assert!(p.gone.is_empty());
        }
        // A prefix that goes away takes its stations with it.
        let none = World {
            prefixes: vec![],
            ..World::new()
        };
        assert_eq!(s.poll(t0, &none.ctx()).gone, vec![a]);
    }
}
