//! The solicitations of a measurement: which (solicitor, target) slot each valid NS fills, the
//! frames of the valid stream and of the flood, and which NS an advertisement answers.
//!
//! Owns: the address plan ([`Plan`]: targets, solicitors, multicast or unicast), the frames,
//! built once before the first packet with the library's codec (`ndp::NeighborSolicit::emit`)
//! and, for the flood's deliberately broken ones, rewritten in place with `ndp::packet::Packet`
//! (whose checksum is the project's one), and [`Plan::classify`]. Must not: send, receive, or
//! keep any state of a run.

use std::net::Ipv6Addr;

use ndp_responder::ndp::packet::{field, Packet};
use ndp_responder::ndp::{self, NeighborAdvert, NeighborSolicit};

use crate::topo::{DUT_MAC, GEN_MAC};

/// First target: 2001:db8:1::d:1000 (inside 2001:db8:1::d:0/112).
const TARGET_BASE: u16 = 0x1000;
/// Flood frames are sent from fe80::f00:X, so an answer to one is recognised.
const FLOOD_SOURCE: u16 = 0x0f00;
const SOLICITOR_TAG: u16 = 0x0100;

/// Multicast resolution NS or unicast NUD NS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Multicast = 0,
    Unicast = 1,
}

/// What the valid traffic looks like.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Plan {
    pub targets: u32,
    pub solicitors: u32,
    /// Every `unicast_every`-th target is asked by unicast NUD NS (0: never).
    pub unicast_every: u32,
}

/// What an NA turned out to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    Slot(usize, Kind),
    Flood,
    Unknown,
}

impl Plan {
    pub fn slots(&self) -> usize {
        self.targets as usize * self.solicitors as usize
    }

    pub fn target(&self, i: u32) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0xd, TARGET_BASE + i as u16)
    }

    pub fn targets(&self) -> Vec<Ipv6Addr> {
        (0..self.targets).map(|i| self.target(i)).collect()
    }

    pub fn solicitor(&self, kind: Kind, id: u32) -> Ipv6Addr {
        match kind {
            Kind::Multicast => Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, SOLICITOR_TAG, id as u16),
            Kind::Unicast => Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, SOLICITOR_TAG, id as u16),
        }
    }

    /// Every address the generator sends valid NS from.
    pub fn solicitors(&self) -> Vec<Ipv6Addr> {
        (0..self.solicitors)
            .flat_map(|id| {
                [
                    self.solicitor(Kind::Multicast, id),
                    self.solicitor(Kind::Unicast, id),
                ]
            })
            .collect()
    }

    pub fn kind(&self, slot: usize) -> Kind {
        let target = slot as u32 % self.targets;
        if self.unicast_every > 0 && target % self.unicast_every == self.unicast_every - 1 {
            Kind::Unicast
        } else {
            Kind::Multicast
        }
    }

    fn slot_parts(&self, slot: usize) -> (u32, u32) {
        (
            slot as u32 / self.targets, // solicitor
            slot as u32 % self.targets, // target
        )
    }

    /// The frame of the NS of `slot`.
    fn solicitation(&self, slot: usize) -> NeighborSolicit {
        let (id, t) = self.slot_parts(slot);
        let kind = self.kind(slot);
        let target = self.target(t);
        let source = self.solicitor(kind, id);
        match kind {
            Kind::Multicast => NeighborSolicit::resolution(GEN_MAC, source, target),
            Kind::Unicast => NeighborSolicit {
                eth_dst: DUT_MAC,
                ip_dst: target,
                ..NeighborSolicit::resolution(GEN_MAC, source, target)
            },
        }
    }

    /// Which NS an NA answers, from its destination (the solicitor) and its target.
    pub fn classify(&self, na: &NeighborAdvert) -> Answered {
        let dst = na.ip_dst.segments();
        let tgt = na.target.segments();
        let target = tgt[7].wrapping_sub(TARGET_BASE) as u32;
        let in_pool = tgt[..7] == [0x2001, 0xdb8, 1, 0, 0, 0, 0xd] && target < self.targets;
        let (kind, id) = match dst {
            [0xfe80, 0, 0, 0, 0, 0, FLOOD_SOURCE, _] => return Answered::Flood,
            [0xfe80, 0, 0, 0, 0, 0, SOLICITOR_TAG, id] => (Kind::Multicast, id as u32),
            [0x2001, 0xdb8, 1, 0, 0, 0, SOLICITOR_TAG, id] => (Kind::Unicast, id as u32),
            _ => return Answered::Unknown,
        };
        if !in_pool || id >= self.solicitors {
            return Answered::Unknown;
        }
        let slot = (id * self.targets + target) as usize;
        if self.kind(slot) != kind {
            return Answered::Unknown;
        }
        Answered::Slot(slot, kind)
    }
}

/// Frames laid out back to back at a fixed stride.
pub struct FrameSet {
    buf: Vec<u8>,
    lens: Vec<u16>,
}

const STRIDE: usize = 128;

impl FrameSet {
    fn with_capacity(n: usize) -> Self {
        FrameSet {
            buf: Vec::with_capacity(n * STRIDE),
            lens: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, frame: &[u8]) {
        let len = frame.len().min(STRIDE);
        self.buf.extend_from_slice(&frame[..len]);
        self.buf.resize(self.buf.len() + STRIDE - len, 0);
        self.lens.push(len as u16);
    }

    pub fn len(&self) -> usize {
        self.lens.len()
    }

    pub fn get(&self, i: usize) -> &[u8] {
        let start = i * STRIDE;
        &self.buf[start..start + self.lens[i] as usize]
    }
}

fn emit(ns: &NeighborSolicit) -> Vec<u8> {
    let mut buf = vec![0u8; ndp::MAX_EMIT_LEN];
    // MAX_EMIT_LEN always suffices (wire's contract).
    let len = ns.emit(&mut buf).unwrap_or(0);
    buf.truncate(len);
    buf
}

/// One frame per slot, in slot order.
pub fn valid_frames(plan: &Plan) -> FrameSet {
    let mut set = FrameSet::with_capacity(plan.slots());
    for slot in 0..plan.slots() {
        set.push(&emit(&plan.solicitation(slot)));
    }
    set
}

/// The flood: `count` frames no responder may answer, in this mix (by index modulo 20):
/// 40 % NS for targets of the /64 outside the prefix, 20 % for off-link targets
/// (2001:db8:2::/64), and for targets inside the prefix 10 % with a bad checksum, 10 % with hop
/// limit 64, 10 % with ICMP code 1, 5 % with a zero-length option (checksum valid), 5 % with an
/// ICMP message shorter than 24 octets.
pub const FLOOD_MIX: &str = "40 % NS for targets of the /64 outside the prefix (2001:db8:1::e:X), \
20 % for off-link targets (2001:db8:2::X), and for targets inside the prefix: 10 % bad checksum, \
10 % hop limit 64, 10 % ICMP code 1, 5 % zero-length option (checksum valid), 5 % ICMP shorter \
than 24 octets; all multicast to the target's solicited-node group, from fe80::f00:X";

pub fn flood_frames(plan: &Plan, count: usize) -> FrameSet {
    let mut set = FrameSet::with_capacity(count);
    for i in 0..count {
        let source = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, FLOOD_SOURCE, (i % 256) as u16);
        let in_prefix = plan.target(i as u32 % plan.targets);
        let ns = |target| NeighborSolicit::resolution(GEN_MAC, source, target);
        let frame = match i % 20 {
            0..=7 => emit(&ns(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0xe, i as u16))),
            8..=11 => emit(&ns(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, i as u16))),
            12 | 13 => {
                let mut p = Packet::new_unchecked(emit(&ns(in_prefix)));
                let right = p.checksum();
                p.set_checksum(right ^ 0x5a00);
                p.into_inner()
            }
            14 | 15 => emit(&NeighborSolicit {
                hop_limit: 64,
                ..ns(in_prefix)
            }),
            16 | 17 => emit(&NeighborSolicit {
                code: 1,
                ..ns(in_prefix)
            }),
            18 => {
                let mut f = emit(&ns(in_prefix));
                f[field::ND_OPTIONS + 1] = 0; // the SLLA option's length
                let mut p = Packet::new_unchecked(f);
                p.fill_checksum();
                p.into_inner()
            }
            _ => {
                let short = 16u16; // ICMP length below 24
                let mut f = emit(&ns(in_prefix));
                f.truncate(field::ICMP + usize::from(short));
                let mut p = Packet::new_unchecked(f);
                p.set_payload_len(short);
                p.fill_checksum();
                p.into_inner()
            }
        };
        set.push(&frame);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            targets: 256,
            solicitors: 64,
            unicast_every: 4,
        }
    }

    #[test]
    fn every_valid_frame_parses_and_its_answer_names_its_slot() {
        let plan = plan();
        let frames = valid_frames(&plan);
        assert_eq!(frames.len(), plan.slots());
        for slot in [0, 1, 3, 255, 256, 1000, plan.slots() - 1] {
            let ns = NeighborSolicit::parse(frames.get(slot)).unwrap();
            assert_eq!(ns.hop_limit, 255);
            let kind = plan.kind(slot);
            assert_eq!(kind == Kind::Unicast, !ns.ip_dst.is_multicast());
            let na = NeighborAdvert {
                eth_src: DUT_MAC,
                eth_dst: GEN_MAC,
                ip_src: ns.target,
                ip_dst: ns.ip_src,
                hop_limit: 255,
                code: 0,
                router: true,
                solicited: true,
                override_flag: true,
                target: ns.target,
                target_lladdr: Some(DUT_MAC),
            };
            assert_eq!(plan.classify(&na), Answered::Slot(slot, kind));
        }
    }

    #[test]
    fn flood_frames_are_never_valid_in_range_solicitations() {
        let plan = plan();
        let flood = flood_frames(&plan, 200);
        let prefix_hi = [0x2001, 0xdb8, 1, 0, 0, 0, 0xd];
        for i in 0..flood.len() {
            match NeighborSolicit::parse(flood.get(i)) {
                Err(_) => {}
                Ok(ns) => {
                    let in_prefix = ns.target.segments()[..7] == prefix_hi;
                    assert!(
                        !in_prefix || ns.hop_limit != 255 || ns.code != 0 || i % 20 == 18,
                        "flood frame {i} is a valid NS for the prefix"
                    );
                }
            }
        }
        // The zero-length option frame has a valid checksum and fails on the option.
        assert_eq!(
            NeighborSolicit::parse(flood.get(18)),
            Err(ndp::ParseError::ZeroLengthOption)
        );
        assert_eq!(
            NeighborSolicit::parse(flood.get(19)),
            Err(ndp::ParseError::TooShort)
        );
        assert_eq!(
            NeighborSolicit::parse(flood.get(12)),
            Err(ndp::ParseError::BadChecksum)
        );
    }
}
