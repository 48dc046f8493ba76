//! The probe cache: which targets of `probe` rules answered on their downstream interface.
//!
//! Owns: the state machine of one target (unknown -> pending -> positive | negative, positive
//! entries in use refreshed before they expire), its timers, and the bounds that keep a scan of
//! a /64 from growing memory or starving real stations: bounded in size (entries, probes in
//! flight) and in time (a probe unanswered after [`PROBE_GRACE`] gives its slot to a new
//! target when all are taken, and making room costs O(1) per new target, never a walk of the
//! whole cache). Time is passed in (`now`), so every transition is unit-tested without
//! sleeping.
//!
//! Must not: send or receive packets. [`Cache::solicit`], [`Cache::advert`] and [`Cache::poll`]
//! return what to send; the daemon sends it.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

/// Tunables of the cache; the defaults follow ndppd's (30 s TTL, 500 ms probe timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a positive answer is trusted.
    pub ttl: Duration,
    /// How long "nobody answered" is remembered (no probe is sent meanwhile).
    pub negative_ttl: Duration,
    /// Wait this long for an answer before retrying.
    pub retry_after: Duration,
    /// Probes sent for one target before it is declared absent.
    pub attempts: u32,
    /// Entries of all states together.
    pub max_entries: usize,
    /// Targets being probed at once.
    pub max_pending: usize,
    /// Solicitations remembered per pending target, answered when it answers.
    pub max_waiters: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            ttl: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(5),
            retry_after: Duration::from_millis(500),
            attempts: 3,
            max_entries: 4096,
            max_pending: 256,
            max_waiters: 4,
        }
    }
}

/// A station on the downstream link answers a probe within milliseconds; one that has not
/// answered after this long is most likely absent, so when every probe slot is taken (a scan
/// of unknown addresses), the oldest such probe is given up for the new target.
pub const PROBE_GRACE: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq)]
enum State<W> {
    /// Probe sent `sent` times, last at `last_sent`; `waiters` get answered on success.
    Pending {
        /// When the first probe went out.
        since: Instant,
        sent: u32,
        last_sent: Instant,
        waiters: Vec<W>,
        /// Was this a refresh of a positive entry (keep answering meanwhile)?
        refresh: bool,
    },
    /// Answered at `confirmed`; `used`: a solicitation was answered from it since.
    Positive { confirmed: Instant, used: bool },
    /// No answer; no probing until `until`.
    Negative { until: Instant },
}

/// What the caller should do for a solicitation of a target in a probe rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Known present: answer now.
    Answer,
    /// Known absent, or already being probed (the solicitation is remembered, or dropped
    /// when enough are remembered): nothing to do now.
    Wait,
    /// Send a probe for the target now (the solicitation is remembered).
    Probe,
    /// The cache is full: not answered, not probed.
    Full,
}

/// The cache for one daemon. `W` is what is remembered to answer later (a solicitation).
#[derive(Debug)]
pub struct Cache<W> {
    limits: Limits,
    entries: HashMap<Ipv6Addr, State<W>>,
    pending: usize,
    /// Probes of new targets (first sent, target) and negatives (until, target), oldest
    /// first: what to give up or forget first when the cache is full. An element whose
    /// entry has changed since is skipped when it comes up (and the queues are rebuilt when
    /// such leftovers pile up), so making room is O(1) amortized.
    probing: VecDeque<(Instant, Ipv6Addr)>,
    negatives: VecDeque<(Instant, Ipv6Addr)>,
    /// The largest number of entries ever held (reported in the exit summary).
    pub high_water: usize,
}

impl<W> Cache<W> {
    pub fn new(limits: Limits) -> Self {
        Cache {
            limits,
            entries: HashMap::new(),
            pending: 0,
            probing: VecDeque::new(),
            negatives: VecDeque::new(),
            high_water: 0,
        }
    }

    /// New limits from a reloaded configuration; entries keep their state and timers.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Targets currently known present.
    pub fn positives(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.entries.iter().filter_map(|(a, s)| match s {
            State::Positive { .. } | State::Pending { refresh: true, .. } => Some(*a),
            _ => None,
        })
    }

    /// A solicitation for `target` arrived at `now`.
    pub fn solicit(&mut self, target: Ipv6Addr, waiter: W, now: Instant) -> Verdict {
        match self.entries.get_mut(&target) {
            Some(State::Positive { used, .. }) => {
                *used = true;
                return Verdict::Answer;
            }
            Some(State::Pending { refresh: true, .. }) => return Verdict::Answer,
            Some(State::Pending { waiters, .. }) => {
                if waiters.len() < self.limits.max_waiters {
                    waiters.push(waiter);
                }
                return Verdict::Wait;
            }
            Some(State::Negative { until }) if now < *until => return Verdict::Wait,
            Some(State::Negative { .. }) | None => {}
        }
        if self.entries.len() >= self.limits.max_entries && !self.entries.contains_key(&target) {
            self.evict(now);
        }
        if self.pending >= self.limits.max_pending {
            self.give_up_oldest_probe(now);
        }
        let full = self.pending >= self.limits.max_pending
            || (self.entries.len() >= self.limits.max_entries
                && !self.entries.contains_key(&target));
        if full {
            return Verdict::Full;
        }
        self.entries.insert(
            target,
            State::Pending {
                since: now,
                sent: 1,
                last_sent: now,
                waiters: vec![waiter],
                refresh: false,
            },
        );
        self.probing.push_back((now, target));
        self.pending += 1;
        self.tidy();
        self.high_water = self.high_water.max(self.entries.len());
        Verdict::Probe
    }

    /// An advertisement for `target` came back from downstream: returns the solicitations to
    /// answer now, or None if the target is neither probed nor known present. Unsolicited
    /// advertisements for targets we did not probe are ignored (they would let anyone
    /// downstream fill the cache).
    pub fn advert(&mut self, target: Ipv6Addr, now: Instant) -> Option<Vec<W>> {
        match self.entries.get_mut(&target) {
            Some(state @ State::Pending { .. }) => {
                let State::Pending { waiters, .. } = std::mem::replace(
                    state,
                    State::Positive {
                        confirmed: now,
                        used: false,
                    },
                ) else {
                    unreachable!("matched Pending above");
                };
                self.pending -= 1;
                Some(waiters)
            }
            Some(State::Positive { confirmed, .. }) => {
                *confirmed = now;
                Some(Vec::new())
            }
            _ => None,
        }
    }

    /// Advance timers: returns the targets to (re)probe now. Positive entries that answered a
    /// solicitation since they were last confirmed are refreshed before they expire; entries
    /// nobody asked for again expire silently; probes that ran out of attempts become negative.
    pub fn poll(&mut self, now: Instant) -> Vec<Ipv6Addr> {
        let limits = self.limits;
        let mut probe = Vec::new();
        let mut finished_pending = 0;
        let mut negatives = VecDeque::new();
        self.entries.retain(|target, state| match state {
            State::Positive { confirmed, used } => {
                let age = now.saturating_duration_since(*confirmed);
                // Refresh once the entry is past the TTL minus the time a full probe takes.
                let refresh_at = limits
                    .ttl
                    .saturating_sub(limits.retry_after * limits.attempts);
                if age < refresh_at {
                    return true;
                }
                if *used {
                    *state = State::Pending {
                        since: now,
                        sent: 1,
                        last_sent: now,
                        waiters: Vec::new(),
                        refresh: true,
                    };
                    probe.push(*target);
                    return true;
                }
                age < limits.ttl
            }
            State::Pending {
                sent, last_sent, ..
            } => {
                if now.saturating_duration_since(*last_sent) < limits.retry_after {
                    return true;
                }
                if *sent < limits.attempts {
                    *sent += 1;
                    *last_sent = now;
                    probe.push(*target);
                    return true;
                }
                finished_pending += 1;
                let until = now + limits.negative_ttl;
                *state = State::Negative { until };
                negatives.push_back((until, *target));
                true
            }
            State::Negative { until } => now < *until,
        });
        self.negatives.append(&mut negatives);
        self.tidy();
        // Pending refreshes counted toward `pending` too.
        self.pending = self
            .entries
            .values()
            .filter(|s| matches!(s, State::Pending { .. }))
            .count();
        let _ = finished_pending;
        probe
    }

    /// The earliest instant at which [`Cache::poll`] has something to do, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        let limits = self.limits;
        self.entries
            .values()
            .map(|s| match s {
                // An entry nobody asked for since its confirmation has nothing to do
                // before it expires (a refresh deadline in the past would spin the loop).
                State::Positive { confirmed, used } if *used => {
                    *confirmed
                        + limits
                            .ttl
                            .saturating_sub(limits.retry_after * limits.attempts)
                }
                State::Positive { confirmed, .. } => *confirmed + limits.ttl,
                State::Pending { last_sent, .. } => *last_sent + limits.retry_after,
                State::Negative { until } => *until,
            })
            .min()
    }

    /// Forget a target (e.g. its downstream interface went away).
    pub fn remove(&mut self, target: &Ipv6Addr) {
        if let Some(State::Pending { .. }) = self.entries.remove(target) {
            self.pending -= 1;
        }
    }

    /// Make room for one entry: forget the oldest negative (expired or not). O(1) amortized:
    /// each negative is queued once and popped once.
    fn evict(&mut self, _now: Instant) {
        while let Some((until, target)) = self.negatives.pop_front() {
            if matches!(self.entries.get(&target), Some(State::Negative { until: u }) if *u == until)
            {
                self.entries.remove(&target);
                return;
            }
        }
    }

    /// Every probe slot is taken: give up the oldest probe of a new target that went
    /// unanswered for [`PROBE_GRACE`] (it becomes negative), so that a scan of absent
    /// addresses cannot keep real stations from being probed. Refreshes of known stations
    /// are never given up here.
    fn give_up_oldest_probe(&mut self, now: Instant) {
        while let Some(&(since, target)) = self.probing.front() {
            let current = matches!(
                self.entries.get(&target),
                Some(State::Pending { since: s, refresh: false, .. }) if *s == since
            );
            if !current {
                self.probing.pop_front();
                continue;
            }
            if now.saturating_duration_since(since) < PROBE_GRACE {
                return;
            }
            self.probing.pop_front();
            let until = now + self.limits.negative_ttl;
            self.entries.insert(target, State::Negative { until });
            self.negatives.push_back((until, target));
            self.pending -= 1;
            return;
        }
    }

    /// Drop the queues' leftovers once they outnumber the entries (amortized O(1)).
    fn tidy(&mut self) {
        let live = self.entries.len();
        if self.probing.len() > 2 * live + 64 {
            let entries = &self.entries;
            self.probing.retain(|(since, t)| {
                matches!(entries.get(t), Some(State::Pending { since: s, .. }) if s == since)
            });
        }
        if self.negatives.len() > 2 * live + 64 {
            let entries = &self.entries;
            self.negatives.retain(|(until, t)| {
                matches!(entries.get(t), Some(State::Negative { until: u }) if u == until)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0xd, n)
    }

    fn limits() -> Limits {
        Limits {
            ttl: Duration::from_secs(10),
            negative_ttl: Duration::from_secs(2),
            retry_after: Duration::from_millis(500),
            attempts: 3,
            max_entries: 8,
            max_pending: 4,
            max_waiters: 2,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn unknown_target_is_probed_and_answered_when_it_answers() {
        let t0 = Instant::now();
        let mut c = Cache::new(limits());
        assert_eq!(c.solicit(ip(2), "ns1", t0), Verdict::Probe);
        assert_eq!(c.solicit(ip(2), "ns2", t0 + ms(100)), Verdict::Wait);
        assert_eq!(
            c.solicit(ip(2), "ns3", t0 + ms(150)),
            Verdict::Wait,
            "beyond max_waiters: dropped"
        );
        assert_eq!(c.advert(ip(2), t0 + ms(200)), Some(vec!["ns1", "ns2"]));
        assert_eq!(c.solicit(ip(2), "ns4", t0 + ms(300)), Verdict::Answer);
        assert_eq!(c.positives().collect::<Vec<_>>(), vec![ip(2)]);
    }

    #[test]
    fn silent_target_is_retried_then_negative_then_probed_again() {
        let t0 = Instant::now();
        let mut c = Cache::new(limits());
        assert_eq!(c.solicit(ip(3), (), t0), Verdict::Probe);
        assert_eq!(c.poll(t0 + ms(400)), Vec::<Ipv6Addr>::new(), "not yet due");
        assert_eq!(c.poll(t0 + ms(500)), vec![ip(3)], "second attempt");
        assert_eq!(c.poll(t0 + ms(1000)), vec![ip(3)], "third attempt");
        assert_eq!(
            c.poll(t0 + ms(1500)),
            Vec::<Ipv6Addr>::new(),
            "out of attempts: negative"
        );
        assert_eq!(
            c.solicit(ip(3), (), t0 + ms(2000)),
            Verdict::Wait,
            "negative: no probe"
        );
        assert_eq!(
            c.poll(t0 + ms(3500)),
            Vec::<Ipv6Addr>::new(),
            "negative expired and dropped"
        );
        assert!(c.is_empty());
        assert_eq!(c.solicit(ip(3), (), t0 + ms(3600)), Verdict::Probe);
    }

    #[test]
    fn unsolicited_advert_does_not_create_an_entry() {
        let t0 = Instant::now();
        let mut c: Cache<()> = Cache::new(limits());
        assert!(c.advert(ip(9), t0).is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn positive_in_use_is_refreshed_before_expiry_and_keeps_answering() {
        let t0 = Instant::now();
        let mut c = Cache::new(limits());
        c.solicit(ip(2), (), t0);
        c.advert(ip(2), t0);
        // TTL 10 s, a full probe takes 1.5 s: refresh at 8.5 s if used meanwhile.
        assert_eq!(c.solicit(ip(2), (), t0 + ms(5000)), Verdict::Answer);
        assert_eq!(c.poll(t0 + ms(8400)), Vec::<Ipv6Addr>::new());
        assert_eq!(c.poll(t0 + ms(8500)), vec![ip(2)]);
        assert_eq!(
            c.solicit(ip(2), (), t0 + ms(8600)),
            Verdict::Answer,
            "answer while refreshing"
        );
        assert_eq!(c.advert(ip(2), t0 + ms(8700)), Some(vec![]));
        assert_eq!(
            c.solicit(ip(2), (), t0 + ms(17000)),
            Verdict::Answer,
            "refreshed at 8.7 s"
        );
    }

    #[test]
    fn refresh_without_answer_ends_in_negative() {
        let t0 = Instant::now();
        let mut c = Cache::new(limits());
        c.solicit(ip(2), (), t0);
        c.advert(ip(2), t0);
        c.solicit(ip(2), (), t0 + ms(1000));
        assert_eq!(c.poll(t0 + ms(8500)), vec![ip(2)]);
        assert_eq!(c.poll(t0 + ms(9000)), vec![ip(2)]);
        assert_eq!(c.poll(t0 + ms(9500)), vec![ip(2)]);
        assert_eq!(c.poll(t0 + ms(10000)), Vec::<Ipv6Addr>::new());
        assert_eq!(
            c.solicit(ip(2), (), t0 + ms(10100)),
            Verdict::Wait,
            "the container is gone"
        );
    }

    #[test]
    fn unused_positive_expires_silently() {
        let t0 = Instant::now();
        let mut c = Cache::new(limits());
        c.solicit(ip(2), (), t0);
        c.advert(ip(2), t0);
        assert_eq!(
            c.poll(t0 + ms(8500)),
            Vec::<Ipv6Addr>::new(),
            "nobody asked since it was confirmed: no refresh"
        );
        assert_eq!(c.poll(t0 + ms(10_000)), Vec::<Ipv6Addr>::new());
        assert!(c.is_empty(), "expired");
    }

    #[test]
    fn a_scan_never_grows_the_cache_beyond_its_bounds() {
        let t0 = Instant::now();
        let mut c = Cache::new(limits());
        let mut now = t0;
        for i in 0..10_000u16 {
            now += ms(1);
            c.solicit(ip(i), (), now);
            if i % 50 == 0 {
                c.poll(now);
            }
            assert!(c.len() <= 8, "entries {} at {i}", c.len());
        }
        assert!(c.high_water <= 8);
    }

    #[test]
    fn full_cache_refuses_new_targets_but_serves_known_ones() {
        let t0 = Instant::now();
        let mut c = Cache::new(limits());
        for i in 0..4 {
            assert_eq!(c.solicit(ip(i), (), t0), Verdict::Probe);
        }
        assert_eq!(
            c.solicit(ip(10), (), t0),
            Verdict::Full,
            "max_pending reached"
        );
        c.advert(ip(0), t0);
        assert_eq!(c.solicit(ip(0), (), t0), Verdict::Answer);
        assert_eq!(
            c.solicit(ip(11), (), t0),
            Verdict::Probe,
            "a pending slot was freed"
        );
    }

    #[test]
    fn a_scan_cannot_keep_a_real_station_from_being_probed() {
        // Every slot taken by absent addresses probed at least PROBE_GRACE ago: the oldest
        // gives up its slot (it becomes negative) and the new target is probed.
        let t0 = Instant::now();
        let mut c = Cache::new(limits());
        for i in 0..4 {
            assert_eq!(
                c.solicit(ip(100 + i), (), t0 + ms(u64::from(i))),
                Verdict::Probe
            );
        }
        assert_eq!(
            c.solicit(ip(2), (), t0 + ms(50)),
            Verdict::Full,
            "within the grace every probe keeps its slot"
        );
        let later = t0 + PROBE_GRACE + ms(10);
        assert_eq!(c.solicit(ip(2), (), later), Verdict::Probe);
        assert_eq!(
            c.solicit(ip(100), (), later),
            Verdict::Wait,
            "the oldest probe was given up: negative"
        );
        assert_eq!(c.advert(ip(2), later + ms(1)), Some(vec![()]));
        assert_eq!(c.solicit(ip(2), (), later + ms(2)), Verdict::Answer);
    }

    #[test]
    fn a_full_cache_makes_room_in_constant_time_per_target() {
        // A scan at 1 target per ms against a cache full of negatives: each new target pops
        // one queued negative, the queues stay bounded, and the cache never overflows.
        let big = Limits {
            max_entries: 64,
            max_pending: 16,
            ..limits()
        };
        let t0 = Instant::now();
        let mut c = Cache::new(big);
        let mut now = t0;
        let mut probed = 0;
        for i in 0..20_000u16 {
            now += ms(1);
            if c.solicit(ip(i), (), now) == Verdict::Probe {
                probed += 1;
            }
            if i % 10 == 0 {
                c.poll(now);
            }
            assert!(c.len() <= 64);
            assert!(c.probing.len() <= 2 * 64 + 64 + 1 && c.negatives.len() <= 2 * 64 + 64 + 1);
        }
        // Each of the 16 slots is given up PROBE_GRACE (100 ms) after its probe: 160 new
        // targets a second keep being probed through the 20 s scan.
        assert!(probed >= 3000, "new targets keep being probed: {probed}");
    }

    #[test]
    fn next_deadline_tracks_the_earliest_timer() {
        let t0 = Instant::now();
        let mut c = Cache::new(limits());
        assert_eq!(c.next_deadline(), None);
        c.solicit(ip(1), (), t0);
        assert_eq!(c.next_deadline(), Some(t0 + ms(500)));
        c.advert(ip(1), t0 + ms(100));
        assert_eq!(
            c.next_deadline(),
            Some(t0 + ms(100) + ms(10_000)),
            "unused: its expiry"
        );
        c.solicit(ip(1), (), t0 + ms(200));
        assert_eq!(
            c.next_deadline(),
            Some(t0 + ms(100) + ms(8500)),
            "used: its refresh"
        );
    }

    #[test]
    fn next_deadline_is_never_in_the_past_after_a_poll() {
        let t0 = Instant::now();
        let mut c = Cache::new(limits());
        c.solicit(ip(1), (), t0);
        c.advert(ip(1), t0);
        // Unused: nothing to do until it expires at 10 s, not at the 8.5 s refresh point.
        for t in [0, 8_500, 9_000, 9_999] {
            let now = t0 + ms(t);
            c.poll(now);
            assert!(
                c.next_deadline().is_none_or(|d| d > now),
                "deadline in the past at {t} ms"
            );
        }
        // Used: the refresh point becomes the deadline, and polling then advances it.
        c.solicit(ip(1), (), t0 + ms(9_000));
        assert_eq!(c.poll(t0 + ms(9_100)), vec![ip(1)]);
        assert!(c.next_deadline().unwrap() > t0 + ms(9_100));
    }

    #[test]
    fn remove_forgets_a_pending_target() {
        let t0 = Instant::now();
        let mut c = Cache::new(limits());
        c.solicit(ip(1), (), t0);
        c.remove(&ip(1));
        assert!(c.is_empty());
        for i in 2..6 {
            assert_eq!(
                c.solicit(ip(i), (), t0),
                Verdict::Probe,
                "pending count was released"
            );
        }
    }
}
