//! The gateway's answers to our keepalive solicitations: which ones may update its entry.
//!
//! Owns: the keepalive solicitations in flight (gateway, our source, when sent) and the rule
//! that decides whether a received Neighbor Advertisement is the gateway's answer to one of
//! them. With `--gateway-keepalive` the daemon writes the gateway's neighbour entry from that
//! answer, and its packet socket sees frames before the kernel checks them: an NA from
//! anywhere (an off-link sender's packet, a neighbour's forgery) must never get there. An
//! answer is accepted only when it is a valid NA (RFC 4861 7.1.2: hop limit 255, code 0, a
//! unicast target link-layer address), solicited, sent from the gateway's own address to the
//! source we solicited from, within [`ANSWER_WINDOW`] of our solicitation (each solicitation is
//! answered once), and, when the kernel already holds a different MAC for the gateway, only
//! with the Override flag (RFC 4861 7.2.5). Time is passed in; every case is unit-tested.
//!
//! Must not: send, receive or touch the kernel; the uplink loop does, when this says so.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use crate::decide::advert::{self, AdvertRefused};
use crate::ndp::{MacAddr, NeighborAdvert};

/// How long after our solicitation its answer is accepted: RFC 4861 10's RETRANS_TIMER (1 s)
/// times MAX_MULTICAST_SOLICIT (3), the time a node waits for resolution itself.
pub const ANSWER_WINDOW: Duration = Duration::from_secs(3);

/// Solicitations remembered at once (a few gateways, a few sources each); the oldest goes.
const MAX_IN_FLIGHT: usize = 16;

/// Keepalive solicitations waiting for the gateway's answer.
#[derive(Debug, Default)]
pub struct Expected {
    /// (gateway, our source, sent at), oldest first.
    in_flight: Vec<(Ipv6Addr, Ipv6Addr, Instant)>,
}

impl Expected {
    /// We solicited `gateway` from `source` at `now`. Returns how many earlier solicitations
    /// were given up unanswered to make room: late ones, the one this replaces (same gateway,
    /// same source: its answer would now count for this one), and the oldest beyond the bound.
    pub fn solicited(&mut self, gateway: Ipv6Addr, source: Ipv6Addr, now: Instant) -> u64 {
        let before = self.in_flight.len();
        self.in_flight
            .retain(|(g, s, at)| !(*g == gateway && *s == source) && fresh(*at, now));
        let mut dropped = before - self.in_flight.len();
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            self.in_flight.remove(0);
            dropped += 1;
        }
        self.in_flight.push((gateway, source, now));
        dropped as u64
    }

    /// When the oldest solicitation still waiting is past its [`ANSWER_WINDOW`] (just after).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.in_flight
            .iter()
            .map(|(_, _, at)| *at + ANSWER_WINDOW + Duration::from_millis(1))
            .min()
    }

    /// Give up the solicitations no answer came for within [`ANSWER_WINDOW`]; how many.
    pub fn expire(&mut self, now: Instant) -> u64 {
        let before = self.in_flight.len();
        self.in_flight.retain(|(_, _, at)| fresh(*at, now));
        (before - self.in_flight.len()) as u64
    }

    /// Forget every solicitation in flight (the keepalive was turned off).
    pub fn clear(&mut self) {
        self.in_flight.clear();
    }

    /// Is `na` the gateway's answer to one of our solicitations, received at `now`?
    /// `current` is the MAC the kernel holds for the gateway, if any; `pinned`: someone pinned
    /// the entry. Returns the MAC to confirm; the solicitation is then answered (consumed).
    pub fn accept(
        &mut self,
        na: &NeighborAdvert,
        current: Option<MacAddr>,
        pinned: bool,
        now: Instant,
    ) -> Result<MacAddr, AdvertRefused> {
        advert::validate_advert(na)?;
        if !na.solicited {
            return Err(AdvertRefused::NotSolicited);
        }
        let mac = na.target_lladdr.ok_or(AdvertRefused::NoTargetLladdr)?;
        // RFC 4861 7.2.4: a node answers for its own address from that address; a gateway
        // answering from another address is not the gateway answering for itself.
        if na.ip_src != na.target {
            return Err(AdvertRefused::NotFromTarget);
        }
        let i = self
            .in_flight
            .iter()
            .position(|(g, s, at)| *g == na.target && *s == na.ip_dst && fresh(*at, now))
            .ok_or(AdvertRefused::Unexpected)?;
        if pinned {
            return Err(AdvertRefused::Pinned);
        }
        if current.is_some_and(|old| old != mac) && !na.override_flag {
            return Err(AdvertRefused::NoOverride);
        }
        self.in_flight.remove(i);
        Ok(mac)
    }
}

fn fresh(sent: Instant, now: Instant) -> bool {
    now.saturating_duration_since(sent) <= ANSWER_WINDOW
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
    const HOST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
    const GW_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const HOST_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    fn answer() -> NeighborAdvert {
        NeighborAdvert {
            eth_src: GW_MAC,
            eth_dst: HOST_MAC,
            ip_src: GW,
            ip_dst: HOST,
            hop_limit: 255,
            code: 0,
            router: true,
            solicited: true,
            override_flag: true,
            target: GW,
            target_lladdr: Some(GW_MAC),
        }
    }

    fn asked(now: Instant) -> Expected {
        let mut e = Expected::default();
        e.solicited(GW, HOST, now);
        e
    }

    #[test]
    fn the_answer_to_our_solicitation_is_accepted_once() {
        let t0 = Instant::now();
        let mut e = asked(t0);
        let later = t0 + Duration::from_millis(5);
        assert_eq!(e.accept(&answer(), None, false, later), Ok(GW_MAC));
        assert_eq!(
            e.accept(&answer(), None, false, later),
            Err(AdvertRefused::Unexpected),
            "a second copy finds no solicitation waiting"
        );
    }

    #[test]
    fn forged_and_malformed_answers_are_refused() {
        let t0 = Instant::now();
        let cases: [(NeighborAdvert, AdvertRefused); 8] = [
            // What an off-link sender's packet looks like on the link.
            (
                NeighborAdvert {
                    hop_limit: 254,
                    ..answer()
                },
                AdvertRefused::HopLimit(254),
            ),
            (
                NeighborAdvert {
                    code: 1,
                    ..answer()
                },
                AdvertRefused::Code(1),
            ),
            (
                NeighborAdvert {
                    target_lladdr: Some(MacAddr::BROADCAST),
                    ..answer()
                },
                AdvertRefused::TargetLladdr,
            ),
            (
                NeighborAdvert {
                    target_lladdr: Some(MacAddr([0; 6])),
                    ..answer()
                },
                AdvertRefused::TargetLladdr,
            ),
            (
                NeighborAdvert {
                    solicited: false,
                    ..answer()
                },
                AdvertRefused::NotSolicited,
            ),
            (
                NeighborAdvert {
                    target_lladdr: None,
                    ..answer()
                },
                AdvertRefused::NoTargetLladdr,
            ),
            (
                NeighborAdvert {
                    ip_src: "fe80::66".parse().unwrap(),
                    ..answer()
                },
                AdvertRefused::NotFromTarget,
            ),
            // To a source we never solicited from.
            (
                NeighborAdvert {
                    ip_dst: "2001:db8:1::66".parse().unwrap(),
                    ..answer()
                },
                AdvertRefused::Unexpected,
            ),
        ];
        for (na, why) in cases {
            let mut e = asked(t0);
            assert_eq!(e.accept(&na, None, false, t0), Err(why), "{na:?}");
            // The real answer still gets through afterwards.
            assert_eq!(e.accept(&answer(), None, false, t0), Ok(GW_MAC));
        }
    }

    #[test]
    fn nothing_is_accepted_unasked_or_late() {
        let t0 = Instant::now();
        let mut e = Expected::default();
        assert_eq!(
            e.accept(&answer(), None, false, t0),
            Err(AdvertRefused::Unexpected)
        );
        let mut e = asked(t0);
        assert_eq!(
            e.accept(
                &answer(),
                None,
                false,
                t0 + ANSWER_WINDOW + Duration::from_millis(1)
            ),
            Err(AdvertRefused::Unexpected)
        );
    }

    #[test]
    fn a_different_mac_needs_the_override_flag_and_a_pinned_entry_is_left_alone() {
        let t0 = Instant::now();
        let other = MacAddr([2, 0, 0, 0, 0, 0x66]);
        let no_o = NeighborAdvert {
            override_flag: false,
            ..answer()
        };
        let mut e = asked(t0);
        assert_eq!(
            e.accept(&no_o, Some(other), false, t0),
            Err(AdvertRefused::NoOverride)
        );
        // The same MAC confirms without O; a new one with O replaces.
        assert_eq!(e.accept(&no_o, Some(GW_MAC), false, t0), Ok(GW_MAC));
        let mut e = asked(t0);
        assert_eq!(e.accept(&answer(), Some(other), false, t0), Ok(GW_MAC));
        let mut e = asked(t0);
        assert_eq!(
            e.accept(&answer(), None, true, t0),
            Err(AdvertRefused::Pinned)
        );
    }

    #[test]
    fn in_flight_solicitations_are_bounded() {
        let t0 = Instant::now();
        let mut e = Expected::default();
        for i in 0..100u16 {
            e.solicited(GW, Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 1, i), t0);
        }
        assert_eq!(e.in_flight.len(), MAX_IN_FLIGHT);
    }

    #[test]
    fn every_solicitation_ends_answered_or_given_up_once() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut e = Expected::default();
        assert_eq!(e.next_expiry(), None);
        assert_eq!(e.solicited(GW, HOST, t0), 0);
        assert_eq!(e.next_expiry(), Some(t0 + ANSWER_WINDOW + ms(1)));
        // Not given up within the window (an answer at its very end is still accepted)...
        assert_eq!(e.expire(t0 + ANSWER_WINDOW), 0);
        // ...and given up once, just after.
        assert_eq!(e.expire(t0 + ANSWER_WINDOW + ms(1)), 1);
        assert_eq!(e.expire(t0 + ANSWER_WINDOW + ms(2)), 0);
        assert_eq!(e.next_expiry(), None);
        // Answered: nothing to give up.
        let t1 = t0 + ms(10_000);
        assert_eq!(e.solicited(GW, HOST, t1), 0);
        assert_eq!(e.accept(&answer(), None, false, t1 + ms(5)), Ok(GW_MAC));
        assert_eq!(e.expire(t1 + ANSWER_WINDOW * 2), 0);
        // Replaced by the next one to the same gateway from the same source before its answer.
        let t2 = t1 + ms(10_000);
        assert_eq!(e.solicited(GW, HOST, t2), 0);
        assert_eq!(e.solicited(GW, HOST, t2 + ms(1000)), 1);
        assert_eq!(e.solicited(GW, HOST, t2 + ms(5000)), 1);
        e.clear();
        assert_eq!(e.next_expiry(), None);
    }
}
