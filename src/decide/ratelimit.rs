//! Rate limits for answers: a token bucket per solicitation source and one for all sources.
//!
//! Owns: the buckets, their bounded table of sources, and the decision "may this answer go
//! out now". Time is passed in, so every case is unit-tested without sleeping. The defaults
//! are far above what any router sends for one host's addresses (a router solicits once per
//! new destination and re-probes each every ~30 s); they only cap a flood of valid-looking
//! solicitations, so that the daemon cannot be turned into a traffic generator.
//!
//! The gateways are apart: a solicitation whose Ethernet source is a gateway's MAC (as the
//! kernel knows it) draws on buckets of that gateway's own, which no other source can
//! drain and the total does not cap: one for targets known to be live (the kernel, the
//! engine or a probe said so) and one for the rest (addresses of static prefixes), so that a
//! scan the gateway itself relays cannot crowd out the answers for live containers. The IPv6 source is whatever the sender writes; a flood
//! that spoofs the gateway's address from another MAC draws on an ordinary bucket. (Only
//! solicitations with hop limit 255, i.e. sent on the link, get this far: see
//! [`crate::decide::policy::validate`].)
//!
//! Must not: decide whether an address is ours ([`crate::decide::policy`] does, before this).

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::Instant;

use crate::ndp::MacAddr;

/// Answers per second; 0 turns a limit off. A bucket holds one second's worth (the burst).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub per_source: u32,
    pub total: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_source: 10_000,
            total: 100_000,
        }
    }
}

/// Sources tracked at once; beyond that, sources without a bucket share one.
const MAX_SOURCES: usize = 1024;
/// Gateways' MACs with buckets of their own (the snapshot's gateways are a handful).
const MAX_GATEWAYS: usize = 16;

/// Which limit withheld an answer (counted by reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// The solicitation source's own rate.
    PerSource,
    /// Sources beyond the table share one bucket, and it was empty.
    Overflow,
    /// The total of all sources.
    Total,
    /// A gateway's rate for targets known to be live.
    GatewayLive,
    /// A gateway's rate for the other targets (a scan it relays).
    GatewayOther,
}

impl crate::status::Reason for Limited {
    fn reason(&self) -> &'static str {
        match self {
            Limited::PerSource => "rate_limit_per_source",
            Limited::Overflow => "rate_limit_overflow",
            Limited::Total => "rate_limit_total",
            Limited::GatewayLive => "rate_limit_gateway_live",
            Limited::GatewayOther => "rate_limit_gateway_other",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(rate: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(rate),
            last: now,
        }
    }

    fn refill(&mut self, rate: u32, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * f64::from(rate)).min(f64::from(rate));
    }

    fn take(&mut self, rate: u32, now: Instant) -> bool {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The limiter of one uplink.
#[derive(Debug)]
pub struct RateLimiter {
    limits: Limits,
    total: Bucket,
    sources: HashMap<Ipv6Addr, Bucket>,
    /// Shared by sources that found the table full.
    overflow: Bucket,
    /// The gateways' own buckets, by MAC and by whether the target is known to be live.
    gateways: HashMap<(MacAddr, bool), Bucket>,
    /// When idle sources were last forgotten (at most once a second: a sweep costs the whole
    /// table, and a flood of new sources must not pay it per packet).
    last_sweep: Instant,
}

impl RateLimiter {
    pub fn new(limits: Limits, now: Instant) -> Self {
        RateLimiter {
            limits,
            total: Bucket::full(limits.total, now),
            sources: HashMap::new(),
            overflow: Bucket::full(limits.per_source, now),
            gateways: HashMap::new(),
            last_sweep: now,
        }
    }

    /// New limits (a reload); the buckets start full.
    pub fn set_limits(&mut self, limits: Limits, now: Instant) {
        if limits != self.limits {
            *self = RateLimiter::new(limits, now);
        }
    }

    /// May an answer to a solicitation from `source` be sent at `now`? Takes a token if so.
    pub fn allow(&mut self, source: Ipv6Addr, now: Instant) -> bool {
        self.check(source, now).is_ok()
    }

    /// [`RateLimiter::allow`], saying which limit withheld the answer.
    pub fn check(&mut self, source: Ipv6Addr, now: Instant) -> Result<(), Limited> {
        let Limits { per_source, total } = self.limits;
        if per_source > 0 {
            if !self.sources.contains_key(&source)
                && self.sources.len() >= MAX_SOURCES
                && now.saturating_duration_since(self.last_sweep).as_secs() >= 1
            {
                self.last_sweep = now;
                // Forget the sources whose buckets refilled: they were idle for a second.
                self.sources.retain(|_, b| {
                    b.refill(per_source, now);
                    b.tokens < f64::from(per_source)
                });
            }
            let (bucket, limit) =
                if self.sources.len() < MAX_SOURCES || self.sources.contains_key(&source) {
                    let b = self
                        .sources
                        .entry(source)
                        .or_insert_with(|| Bucket::full(per_source, now));
                    (b, Limited::PerSource)
                } else {
                    (&mut self.overflow, Limited::Overflow)
                };
            // Peek first: a source over its limit must not use up the total.
            bucket.refill(per_source, now);
            if bucket.tokens < 1.0 {
                return Err(limit);
            }
        }
        if total > 0 && !self.total.take(total, now) {
            return Err(Limited::Total);
        }
        if per_source > 0 {
            let bucket = match self.sources.get_mut(&source) {
                Some(b) => b,
                None => &mut self.overflow,
            };
            bucket.tokens -= 1.0;
        }
        Ok(())
    }

    /// May an answer to a solicitation from the gateway at `mac`, for a target known to be
    /// `live` or not, be sent at `now`? The gateway's own buckets (the per-source rate each),
    /// untouched by other sources and by the total.
    pub fn check_gateway(&mut self, mac: MacAddr, live: bool, now: Instant) -> Result<(), Limited> {
        let rate = self.limits.per_source;
        if rate == 0 {
            return Ok(());
        }
        if !self.gateways.contains_key(&(mac, live)) && self.gateways.len() >= 2 * MAX_GATEWAYS {
            // Gateways changed many times: start over (each gets full buckets).
            self.gateways.clear();
        }
        let allowed = self
            .gateways
            .entry((mac, live))
            .or_insert_with(|| Bucket::full(rate, now))
            .take(rate, now);
        match (allowed, live) {
            (true, _) => Ok(()),
            (false, true) => Err(Limited::GatewayLive),
            (false, false) => Err(Limited::GatewayOther),
        }
    }

    /// Sources tracked now (bounded by [`MAX_SOURCES`]).
    pub fn sources(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn addr(i: u32) -> Ipv6Addr {
        Ipv6Addr::from(0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i))
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(
            Limits {
                per_source: 10,
                total: 0,
            },
            t0,
        );
        let allowed = (0..20).filter(|_| rl.allow(addr(1), t0)).count();
        assert_eq!(allowed, 10, "one second's worth at once");
        // Another source is not affected.
        assert!(rl.allow(addr(2), t0));
        // 100 ms later: one more token for the first source.
        let t1 = t0 + Duration::from_millis(100);
        assert!(rl.allow(addr(1), t1));
        assert!(!rl.allow(addr(1), t1));
    }

    #[test]
    fn the_total_caps_all_sources_together() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(
            Limits {
                per_source: 0,
                total: 5,
            },
            t0,
        );
        let allowed = (0..10).filter(|i| rl.allow(addr(*i), t0)).count();
        assert_eq!(allowed, 5);
        assert!(rl.allow(addr(99), t0 + Duration::from_millis(200)));
    }

    #[test]
    fn a_limited_source_does_not_use_up_the_total() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(
            Limits {
                per_source: 2,
                total: 4,
            },
            t0,
        );
        let noisy = (0..100).filter(|_| rl.allow(addr(1), t0)).count();
        assert_eq!(noisy, 2);
        let others = (2..10).filter(|i| rl.allow(addr(*i), t0)).count();
        assert_eq!(others, 2, "the total had 4, the noisy source took 2");
    }

    #[test]
    fn zero_turns_the_limits_off() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(
            Limits {
                per_source: 0,
                total: 0,
            },
            t0,
        );
        assert!((0..100_000).all(|i| rl.allow(addr(i % 3), t0)));
        assert_eq!(rl.sources(), 0);
    }

    #[test]
    fn the_source_table_is_bounded_and_idle_sources_are_forgotten() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(
            Limits {
                per_source: 3,
                total: 0,
            },
            t0,
        );
        for i in 0..(MAX_SOURCES as u32 * 4) {
            rl.allow(addr(i), t0);
        }
        assert_eq!(rl.sources(), MAX_SOURCES);
        // Sources beyond the table share the overflow bucket: 3 answers, then nothing.
        let beyond = (0..10).filter(|i| rl.allow(addr(100_000 + i), t0)).count();
        assert!(beyond <= 3, "{beyond}");
        // A second later every bucket refilled: a new source takes a forgotten one's place.
        let t1 = t0 + Duration::from_secs(2);
        assert!(rl.allow(addr(200_000), t1));
        assert!(rl.sources() <= MAX_SOURCES);
    }

    #[test]
    fn spoofed_sources_cannot_starve_the_gateway() {
        let t0 = Instant::now();
        let gw_mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let gw: Ipv6Addr = "fe80::1".parse().unwrap();
        let mut rl = RateLimiter::new(
            Limits {
                per_source: 5,
                total: 10,
            },
            t0,
        );
        // A flood from thousands of sources, and one spoofing the gateway's address from
        // another MAC, uses up the total and the gateway address's ordinary bucket...
        for i in 0..5000 {
            rl.allow(addr(i), t0);
        }
        for _ in 0..100 {
            rl.allow(gw, t0);
        }
        assert!(!rl.allow(addr(9999), t0), "the total is spent");
        // ...the gateway, known by its MAC, still gets its own rate.
        let answered = (0..10)
            .filter(|_| rl.check_gateway(gw_mac, true, t0).is_ok())
            .count();
        assert_eq!(answered, 5);
    }

    #[test]
    fn a_scan_from_the_gateway_cannot_crowd_out_live_targets() {
        let t0 = Instant::now();
        let gw = MacAddr([2, 0, 0, 0, 0, 1]);
        let mut rl = RateLimiter::new(
            Limits {
                per_source: 5,
                total: 0,
            },
            t0,
        );
        let scan = (0..100)
            .filter(|_| rl.check_gateway(gw, false, t0).is_ok())
            .count();
        assert_eq!(scan, 5);
        assert_eq!(rl.check_gateway(gw, false, t0), Err(Limited::GatewayOther));
        // The live containers' answers have their own bucket.
        assert!(rl.check_gateway(gw, true, t0).is_ok());
    }
}
