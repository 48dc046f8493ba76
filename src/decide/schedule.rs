//! Upstream care: when to keep the gateway's neighbour entry fresh, and when to re-announce
//! each address we answer for.
//!
//! Owns: the two schedulers, [`Keepalive`] (one jittered tick per interval) and [`Announcer`]
//! (every address in use once per interval, spread evenly over it so that a thousand
//! addresses never go out in one burst), and the choice of the source address for keepalive
//! solicitations. Time and randomness are passed in, so every schedule is unit-tested without
//! sleeping. Their time arithmetic cannot overflow or spin, whatever interval they are given
//! (the configuration refuses intervals outside 1s..1h/1d; these bounds are a second line).
//!
//! Must not: send packets or touch the kernel; the daemon does, when these say so. Must not
//! panic on any interval.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

/// Up to this fraction of an interval is added or removed at random from each tick, so that
/// hosts started together do not solicit in step.
const JITTER: f64 = 0.1;

/// Intervals are used within these bounds: shorter would fire on every pass of the daemon's
/// loop, longer could overflow the clock (a year is "never" for a daemon).
const SHORTEST: Duration = Duration::from_millis(1);
const LONGEST: Duration = Duration::from_secs(366 * 24 * 3600);

fn bounded(interval: Duration) -> Duration {
    interval.clamp(SHORTEST, LONGEST)
}

/// `at + d`, or as far as the clock goes: never a panic.
fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .or_else(|| at.checked_add(LONGEST))
        .unwrap_or(at)
}

/// A small deterministic PRNG (xorshift64*), seeded by the caller: enough for jitter.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Jitter(seed | 1)
    }

    /// A factor in [1 - JITTER, 1 + JITTER].
    fn factor(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let unit = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
        1.0 - JITTER + 2.0 * JITTER * unit
    }

    /// `interval` times the factor (bounded, so that the product cannot overflow).
    pub(crate) fn spread(&mut self, interval: Duration) -> Duration {
        bounded(bounded(interval).mul_f64(self.factor()))
    }

    /// A duration drawn uniformly from [0, `max`] (a random delay, e.g. RFC 4861 6.2.6's).
    pub(crate) fn below(&mut self, max: Duration) -> Duration {
        let unit = (self.factor() - (1.0 - JITTER)) / (2.0 * JITTER);
        bounded(max).mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// One tick per interval, jittered.
#[derive(Debug, Clone)]
pub struct Keepalive {
    interval: Duration,
    next: Instant,
    jitter: Jitter,
}

impl Keepalive {
    /// The first tick comes at once: a fresh daemon refreshes the gateway right away.
    pub fn new(interval: Duration, now: Instant, jitter: Jitter) -> Self {
        Keepalive {
            interval: bounded(interval),
            next: now,
            jitter,
        }
    }

    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// True if a tick is due at `now`; schedules the next one.
    pub fn due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next = later(now, self.jitter.spread(self.interval));
        true
    }
}

/// Every address in use announced once per interval, evenly spread.
#[derive(Debug, Clone)]
pub struct Announcer {
    /// The configured interval, and this cycle's jittered length.
    interval: Duration,
    cycle_len: Duration,
    jitter: Jitter,
    cycle_start: Instant,
    /// The addresses of this cycle, in order, and how many of them went out.
    cycle: Vec<Ipv6Addr>,
    sent: usize,
}

impl Announcer {
    pub fn new(interval: Duration, now: Instant, jitter: Jitter) -> Self {
        let interval = bounded(interval);
        Announcer {
            interval,
            cycle_len: interval,
            jitter,
            cycle_start: now,
            cycle: Vec::new(),
            sent: 0,
        }
    }

    /// When the next address is due (or the next cycle starts).
    pub fn next_due(&self) -> Instant {
        if self.sent < self.cycle.len() {
            self.slot(self.sent)
        } else {
            later(self.cycle_start, self.cycle_len)
        }
    }

    fn slot(&self, i: usize) -> Instant {
        let n = u32::try_from(self.cycle.len().max(1)).unwrap_or(u32::MAX);
        let i = u32::try_from(i).unwrap_or(n).min(n);
        later(self.cycle_start, self.cycle_len / n * i)
    }

    /// The addresses due at `now`. `in_use` is asked at the start of each cycle; an address
    /// that stopped being in use within a cycle is still announced once more, which is
    /// harmless.
    pub fn due(
        &mut self,
        now: Instant,
        in_use: impl FnOnce() -> BTreeSet<Ipv6Addr>,
    ) -> Vec<Ipv6Addr> {
        if self.sent >= self.cycle.len() && now >= later(self.cycle_start, self.cycle_len) {
            // A new cycle: start it now (late wake-ups do not make a burst), jittered.
            self.cycle_start = now;
            self.cycle_len = self.jitter.spread(self.interval);
            self.cycle = in_use().into_iter().collect();
            self.sent = 0;
        }
        let mut out = Vec::new();
        while self.sent < self.cycle.len() && self.slot(self.sent) <= now {
            out.push(self.cycle[self.sent]);
            self.sent += 1;
        }
        out
    }
}

/// The source of a keepalive solicitation: a global address of the uplink, else an address we
/// answer for (the gateway then talks to it, which is what some providers need anyway).
pub fn keepalive_source(uplink_addrs: &[Ipv6Addr], ours: &[Ipv6Addr]) -> Option<Ipv6Addr> {
    uplink_addrs
        .iter()
        .chain(ours)
        .find(|a| !a.is_unicast_link_local() && !a.is_loopback() && !a.is_multicast())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }
    fn ip(n: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0xd, n)
    }

    #[test]
    fn keepalive_ticks_at_once_then_once_per_jittered_interval() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(ms(1000), t0, Jitter::new(7));
        assert!(k.due(t0), "first tick at start");
        assert!(!k.due(t0 + ms(10)));
        let mut last = t0;
        for _ in 0..100 {
            let next = k.next_due();
            let gap = next - last;
            assert!(
                gap >= ms(900) && gap <= ms(1100),
                "gap {gap:?} outside the jitter"
            );
            assert!(!k.due(next - ms(1)));
            assert!(k.due(next));
            last = next;
        }
    }

    #[test]
    fn jitter_differs_between_seeds() {
        let t0 = Instant::now();
        let mut a = Keepalive::new(ms(1000), t0, Jitter::new(1));
        let mut b = Keepalive::new(ms(1000), t0, Jitter::new(2));
        a.due(t0);
        b.due(t0);
        assert_ne!(a.next_due(), b.next_due());
    }

    #[test]
    fn announcer_spreads_a_thousand_addresses_over_the_interval() {
        let t0 = Instant::now();
        let mut a = Announcer::new(ms(10_000), t0, Jitter::new(3));
        let addrs: BTreeSet<Ipv6Addr> = (0..1000).map(ip).collect();
        // The first cycle starts one interval after start.
        assert!(a.due(t0, || addrs.clone()).is_empty());
        let start = t0 + ms(10_000);
        let mut sent = Vec::new();
        let mut largest_batch = 0;
        let mut now = start;
        while sent.len() < 1000 && now < start + ms(12_000) {
            let batch = a.due(now, || addrs.clone());
            largest_batch = largest_batch.max(batch.len());
            sent.extend(batch);
            now += ms(50);
        }
        assert_eq!(sent.len(), 1000, "every address once per interval");
        assert!(
            now - start <= ms(11_050),
            "a cycle lasts the interval, jittered: {:?}",
            now - start
        );
        assert_eq!(sent.iter().collect::<BTreeSet<_>>().len(), 1000);
        assert!(largest_batch <= 6, "a burst of {largest_batch} in 50 ms");
    }

    #[test]
    fn each_address_is_announced_once_per_interval() {
        let t0 = Instant::now();
        let mut a = Announcer::new(ms(1000), t0, Jitter::new(3));
        let addrs: BTreeSet<Ipv6Addr> = [ip(2), ip(3)].into();
        let mut times: Vec<(Instant, Ipv6Addr)> = Vec::new();
        let mut now = t0;
        while now < t0 + ms(4000) {
            for addr in a.due(now, || addrs.clone()) {
                times.push((now, addr));
            }
            now = now.max(a.next_due().min(now + ms(100)));
            now += ms(1);
        }
        let of = |addr| {
            times
                .iter()
                .filter(|(_, a)| *a == addr)
                .map(|(t, _)| *t)
                .collect::<Vec<_>>()
        };
        for addr in [ip(2), ip(3)] {
            let t = of(addr);
            assert!(t.len() >= 2, "{t:?}");
            for pair in t.windows(2) {
                let gap = pair[1] - pair[0];
                assert!(gap >= ms(900) && gap <= ms(1200), "gap {gap:?}");
            }
        }
    }

    #[test]
    fn nothing_to_announce_is_cheap() {
        let t0 = Instant::now();
        let mut a = Announcer::new(ms(1000), t0, Jitter::new(3));
        assert!(a.due(t0 + ms(1000), BTreeSet::new).is_empty());
        let next = a.next_due();
        assert!(next >= t0 + ms(1900) && next <= t0 + ms(2100), "{next:?}");
    }

    #[test]
    fn extreme_intervals_neither_panic_nor_spin() {
        let t0 = Instant::now();
        let addrs: BTreeSet<Ipv6Addr> = [ip(2)].into();
        for interval in [Duration::MAX, Duration::from_secs(u64::MAX), Duration::ZERO] {
            let mut k = Keepalive::new(interval, t0, Jitter::new(5));
            assert!(k.due(t0));
            assert!(k.next_due() > t0, "{interval:?} would spin");
            assert!(!k.due(t0));
            let mut a = Announcer::new(interval, t0, Jitter::new(5));
            assert!(a.next_due() > t0, "{interval:?} would spin");
            let _ = a.due(a.next_due(), || addrs.clone());
            assert!(a.next_due() >= t0);
        }
        assert_eq!(later(t0, Duration::MAX), t0 + LONGEST);
    }

    #[test]
    fn keepalive_source_prefers_a_global_uplink_address() {
        let ll: Ipv6Addr = "fe80::2".parse().unwrap();
        let global: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
        assert_eq!(keepalive_source(&[ll, global], &[ip(2)]), Some(global));
        assert_eq!(keepalive_source(&[ll], &[ip(2)]), Some(ip(2)));
        assert_eq!(keepalive_source(&[ll], &[]), None);
    }
}
