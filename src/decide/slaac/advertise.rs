//! When and what a SLAAC interface advertises (RFC 4861 6.2), pure with time passed in.
//!
//! Owns: [`RaSchedule`] (periodic Router Advertisements, the first ones faster, RFC 4861
//! 6.2.4; the answers to Router Solicitations, 6.2.6: delayed by at most MAX_RA_DELAY_TIME,
//! unicast when the solicitation has a source, else multicast no sooner than
//! MIN_DELAY_BETWEEN_RAS after the last one), [`Prefixes`] (the prefixes advertised, and those
//! that went away, advertised with lifetime 0 a few times rather than left to expire) and
//! [`advert`] (the advertisement itself: A=1, L=0, guests send everything through the host).
//!
//! Must not: do I/O, read clocks, or log.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use ipnet::Ipv6Net;

use crate::decide::schedule::Jitter;
use crate::ndp::router::{PrefixInfo, RouterAdvert};
use crate::ndp::{multicast_mac, MacAddr, ALL_NODES};

/// RFC 4861 10: router constants.
pub const MAX_INITIAL_RTR_ADVERT_INTERVAL: Duration = Duration::from_secs(16);
pub const MAX_INITIAL_RTR_ADVERTISEMENTS: u8 = 3;
pub const MIN_DELAY_BETWEEN_RAS: Duration = Duration::from_secs(3);
pub const MAX_RA_DELAY_TIME: Duration = Duration::from_millis(500);
/// Our MaxRtrAdvInterval (RFC 4861 6.2.1 allows 4 s to 1800 s; its default is 600 s): a guest
/// that missed an RA learns the prefix within minutes.
pub const RTR_ADV_INTERVAL: Duration = Duration::from_secs(180);
/// AdvDefaultLifetime: 3 x MaxRtrAdvInterval (RFC 4861 6.2.1's default ratio).
pub const ROUTER_LIFETIME_SECS: u16 = 3 * 180 + 60;
/// Prefix lifetimes: a day valid, four hours preferred; refreshed by every RA, and a prefix
/// that goes away is advertised with 0 (RFC 4862 5.5.3 e keeps the addresses 2 h more).
pub const VALID_LIFETIME_SECS: u32 = 86_400;
pub const PREFERRED_LIFETIME_SECS: u32 = 14_400;
/// RDNSS/DNSSL lifetime: at least MaxRtrAdvInterval (RFC 8106 5.1), here three times it.
pub const DNS_LIFETIME_SECS: u32 = 3 * 180;
/// A prefix that went away is advertised with lifetime 0 this many times.
pub const DEPRECATIONS: u8 = 3;
/// Unicast answers to solicitations waiting at most (more are answered by the next multicast).
pub const MAX_PENDING_ANSWERS: usize = 64;

/// When to send the next Router Advertisement on one interface.
#[derive(Debug, Clone)]
pub struct RaSchedule {
    next: Instant,
    initial_left: u8,
    last_multicast: Option<Instant>,
    /// Unicast answers to solicitations: (when, IPv6 destination, MAC).
    answers: Vec<(Instant, Ipv6Addr, MacAddr)>,
    jitter: Jitter,
}

/// What is due now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RaDue {
    Multicast,
    Unicast(Ipv6Addr, MacAddr),
}

impl RaSchedule {
    /// The first advertisement goes out at once (RFC 4861 6.2.4: an interface becoming an
    /// advertising interface).
    pub fn new(now: Instant, seed: u64) -> Self {
        RaSchedule {
            next: now,
            initial_left: MAX_INITIAL_RTR_ADVERTISEMENTS,
            last_multicast: None,
            answers: Vec::new(),
            jitter: Jitter::new(seed),
        }
    }

    pub fn next_due(&self) -> Instant {
        self.answers
            .iter()
            .map(|(at, _, _)| *at)
            .fold(self.next, Instant::min)
    }

    /// A Router Solicitation from `src` (unspecified or not) at `mac` (RFC 4861 6.2.6).
    pub fn solicited(&mut self, src: Ipv6Addr, mac: Option<MacAddr>, now: Instant) {
        let delay = self.jitter.below(MAX_RA_DELAY_TIME);
        match mac {
            Some(mac) if !src.is_unspecified() => {
                if self.answers.iter().any(|(_, d, _)| *d == src)
                    || self.answers.len() >= MAX_PENDING_ANSWERS
                {
                    return;
                }
                self.answers.push((now + delay, src, mac));
            }
            _ => {
                let mut at = now + delay;
                if let Some(last) = self.last_multicast {
                    at = at.max(last + MIN_DELAY_BETWEEN_RAS + delay);
                }
                self.next = self.next.min(at);
            }
        }
    }

    /// What is due at `now`, removed from the schedule (call until None). A multicast
    /// advertisement reschedules the next one.
    pub fn due(&mut self, now: Instant) -> Option<RaDue> {
        if let Some(i) = self.answers.iter().position(|(at, _, _)| *at <= now) {
            let (_, dst, mac) = self.answers.swap_remove(i);
            return Some(RaDue::Unicast(dst, mac));
        }
        if self.next > now {
            return None;
        }
        let mut interval = self.jitter.spread(RTR_ADV_INTERVAL);
        if self.initial_left > 0 {
            self.initial_left -= 1;
            interval = interval.min(MAX_INITIAL_RTR_ADVERT_INTERVAL);
        }
        self.last_multicast = Some(now);
        self.next = now + interval;
        Some(RaDue::Multicast)
    }

    /// Advertise again soon (the prefixes changed): as a solicitation from :: would.
    pub fn soon(&mut self, now: Instant) {
        self.initial_left = self.initial_left.max(1);
        self.solicited(Ipv6Addr::UNSPECIFIED, None, now);
    }
}

/// The prefixes advertised on one interface, and those going away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prefixes {
    live: Vec<Ipv6Net>,
    /// Gone from the uplink: advertised with lifetime 0 this many more times.
    going: Vec<(Ipv6Net, u8)>,
}

impl Prefixes {
    /// The prefixes now; returns whether anything changed (then advertise soon).
    pub fn update(&mut self, now: &[Ipv6Net]) -> bool {
        let mut now: Vec<Ipv6Net> = now.to_vec();
        now.sort();
        now.dedup();
        if now == self.live {
            return false;
        }
        for gone in self.live.iter().filter(|p| !now.contains(p)) {
            self.going.retain(|(p, _)| p != gone);
            self.going.push((*gone, DEPRECATIONS));
        }
        self.going.retain(|(p, _)| !now.contains(p));
        self.live = now;
        true
    }

    pub fn live(&self) -> &[Ipv6Net] {
        &self.live
    }

    /// The Prefix Information options of the next multicast advertisement; `sent` says it
    /// was sent (one deprecation less).
    pub fn options(&self) -> Vec<PrefixInfo> {
        let pi = |prefix: Ipv6Net, valid, preferred| PrefixInfo {
            prefix,
            // L=0: guests send everything, on-link destinations too, through the host, so
            // nothing downstream needs neighbour resolution across the proxy.
            on_link: false,
            autonomous: true,
            valid_lifetime: valid,
            preferred_lifetime: preferred,
        };
        self.live
            .iter()
            .map(|p| pi(*p, VALID_LIFETIME_SECS, PREFERRED_LIFETIME_SECS))
            .chain(self.going.iter().map(|(p, _)| pi(*p, 0, 0)))
            .collect()
    }

    /// A multicast advertisement carried the deprecations.
    pub fn sent(&mut self) {
        for (_, left) in &mut self.going {
            *left = left.saturating_sub(1);
        }
        self.going.retain(|(_, left)| *left > 0);
    }

    /// Every prefix still in an advertisement, live or going.
    pub fn going(&self) -> impl Iterator<Item = &Ipv6Net> {
        self.going.iter().map(|(p, _)| p)
    }
}

/// What an advertisement says besides the prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// The interface's MAC and link-local address (the RA's source, RFC 4861 6.1.2).
    pub mac: MacAddr,
    pub link_local: Ipv6Addr,
    /// The uplink's MTU.
    pub mtu: Option<u32>,
    pub dns: Vec<Ipv6Addr>,
    pub search: Vec<String>,
}

/// A Router Advertisement (RFC 4861 6.2.3) to `dst` (ff02::1, or a soliciting guest at
/// `dst_mac`); `stopping` makes it the final one (router lifetime 0, RFC 4861 6.2.5).
pub fn advert(
    content: &Content,
    prefixes: Vec<PrefixInfo>,
    dst: Option<(Ipv6Addr, MacAddr)>,
    stopping: bool,
) -> RouterAdvert {
    let (ip_dst, eth_dst) = dst.unwrap_or((ALL_NODES, multicast_mac(&ALL_NODES)));
    RouterAdvert {
        eth_src: content.mac,
        eth_dst,
        ip_src: content.link_local,
        ip_dst,
        hop_limit: 255,
        code: 0,
        cur_hop_limit: 64,
        managed: false,
        other: false,
        router_lifetime: if stopping { 0 } else { ROUTER_LIFETIME_SECS },
        reachable_time: 0,
        retrans_timer: 0,
        source_lladdr: Some(content.mac),
        mtu: content.mtu,
        prefixes,
        rdnss: (!content.dns.is_empty()).then(|| (DNS_LIFETIME_SECS, content.dns.clone())),
        dnssl: (!content.search.is_empty()).then(|| (DNS_LIFETIME_SECS, content.search.clone())),
    }
}

/// Servers and names relayed from one RA at most (an RA has room for a few; guests use 3).
pub const MAX_RELAYED: usize = 8;

/// What of the uplink router's advertisement may be relayed to the guests (RFC 8106): its
/// RDNSS servers that the guests can reach (not link-local: that is the uplink's link, not
/// theirs) and its DNSSL names, and for how long (the shorter of the options' lifetimes, a
/// week at most). None if the RA is not valid from a router (RFC 4861 6.1.2: hop limit 255,
/// code 0, a link-local source) or carries nothing to relay.
pub fn relayable_dns(ra: &RouterAdvert) -> Option<(Vec<Ipv6Addr>, Vec<String>, Duration)> {
    if ra.hop_limit != 255 || ra.code != 0 || !ra.ip_src.is_unicast_link_local() {
        return None;
    }
    let servers: Vec<Ipv6Addr> = ra
        .rdnss
        .iter()
        .flat_map(|(_, s)| s.iter())
        .filter(|a| {
            !(a.is_unicast_link_local()
                || a.is_multicast()
                || a.is_unspecified()
                || a.is_loopback())
        })
        .take(MAX_RELAYED)
        .copied()
        .collect();
    let names: Vec<String> = ra
        .dnssl
        .iter()
        .flat_map(|(_, n)| n.iter())
        .take(MAX_RELAYED)
        .cloned()
        .collect();
    if servers.is_empty() && names.is_empty() {
        return None;
    }
    let lifetime = [
        ra.rdnss
            .as_ref()
            .filter(|_| !servers.is_empty())
            .map(|(l, _)| *l),
        ra.dnssl
            .as_ref()
            .filter(|_| !names.is_empty())
            .map(|(l, _)| *l),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(0)
    .min(7 * 86_400);
    Some((servers, names, Duration::from_secs(u64::from(lifetime))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::testing::ip;

    const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
    const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);

    #[test]
    fn advertisements_start_fast_then_slow_and_solicitations_are_answered_within_a_second() {
        let t0 = Instant::now();
        let mut r = RaSchedule::new(t0, 7);
        assert_eq!(r.due(t0), Some(RaDue::Multicast));
        assert_eq!(r.due(t0), None);
        assert!(r.next_due() <= t0 + MAX_INITIAL_RTR_ADVERT_INTERVAL);
        // An RS with a source: a unicast answer within MAX_RA_DELAY_TIME.
        let guest = ip("fe80::c");
        r.solicited(guest, Some(A), t0);
        r.solicited(guest, Some(A), t0); // one answer per guest
        assert!(r.next_due() <= t0 + MAX_RA_DELAY_TIME);
        let at = r.next_due();
        assert_eq!(r.due(at), Some(RaDue::Unicast(guest, A)));
        assert_eq!(r.due(at), None);
        // An RS from ::, just after a multicast: no sooner than MIN_DELAY_BETWEEN_RAS.
        r.solicited(Ipv6Addr::UNSPECIFIED, None, t0);
        assert!(r.next_due() >= t0 + MIN_DELAY_BETWEEN_RAS);
        assert!(r.next_due() <= t0 + MIN_DELAY_BETWEEN_RAS + MAX_RA_DELAY_TIME);
        // Steady state: around RTR_ADV_INTERVAL.
        let mut now = r.next_due();
        for _ in 0..5 {
            assert_eq!(r.due(now), Some(RaDue::Multicast));
            now = r.next_due();
        }
        let gap = r.next_due() - now;
        assert!(gap == Duration::ZERO || gap >= RTR_ADV_INTERVAL.mul_f64(0.89));
    }

    #[test]
    fn a_prefix_that_goes_away_is_deprecated_a_few_times() {
        let p1: Ipv6Net = "2001:db8:1::/64".parse().unwrap();
        let p2: Ipv6Net = "2001:db8:2::/64".parse().unwrap();
        let mut p = Prefixes::default();
        assert!(p.update(&[p1]));
        assert!(!p.update(&[p1]));
        assert!(p.update(&[p2]));
        let opts = p.options();
        assert_eq!(opts.len(), 2);
        assert_eq!(
            (opts[0].prefix, opts[0].valid_lifetime),
            (p2, VALID_LIFETIME_SECS)
        );
        assert_eq!((opts[1].prefix, opts[1].valid_lifetime), (p1, 0));
        assert!(opts.iter().all(|o| o.autonomous && !o.on_link));
        for _ in 0..DEPRECATIONS {
            assert!(p.options().iter().any(|o| o.prefix == p1));
            p.sent();
        }
        assert_eq!(p.options().len(), 1);
        // Coming back ends its deprecation.
        p.update(&[p1, p2]);
        p.update(&[p2]);
        p.update(&[p1, p2]);
        assert_eq!(p.going().count(), 0);
    }

    #[test]
    fn the_advert_is_a_router_with_the_interface_as_source() {
        let c = Content {
            mac: A,
            link_local: ip("fe80::a"),
            mtu: Some(1500),
            dns: vec![ip("2001:db8::53")],
            search: vec![],
        };
        let ra = advert(&c, vec![], None, false);
        assert_eq!(
            (ra.ip_src, ra.ip_dst, ra.hop_limit),
            (c.link_local, ALL_NODES, 255)
        );
        assert!(ra.router_lifetime > 0);
        assert_eq!(ra.rdnss, Some((DNS_LIFETIME_SECS, c.dns.clone())));
        assert_eq!(ra.dnssl, None);
        assert_eq!(advert(&c, vec![], None, true).router_lifetime, 0);
        let to = advert(&c, vec![], Some((ip("fe80::b"), B)), false);
        assert_eq!((to.ip_dst, to.eth_dst), (ip("fe80::b"), B));
    }

    #[test]
    fn only_what_guests_can_use_is_relayed_from_the_uplink_router() {
        let c = Content {
            mac: A,
            link_local: ip("fe80::1"),
            mtu: None,
            dns: vec![ip("fe80::53"), ip("2001:db8::53")],
            search: vec!["example.net".into()],
        };
        let mut ra = advert(&c, vec![], None, false);
        ra.dnssl = Some((300, c.search.clone()));
        assert_eq!(
            relayable_dns(&ra),
            Some((
                vec![ip("2001:db8::53")],
                vec!["example.net".to_string()],
                Duration::from_secs(300)
            ))
        );
        // Not from a router's link-local address, or forwarded: nothing.
        let global = RouterAdvert {
            ip_src: ip("2001:db8::1"),
            ..ra.clone()
        };
        assert_eq!(relayable_dns(&global), None);
        let forwarded = RouterAdvert {
            hop_limit: 254,
            ..ra.clone()
        };
        assert_eq!(relayable_dns(&forwarded), None);
        // Only a link-local server: nothing the guests could reach.
        let local_only = RouterAdvert {
            rdnss: Some((600, vec![ip("fe80::53")])),
            dnssl: None,
            ..ra
        };
        assert_eq!(relayable_dns(&local_only), None);
    }
}
