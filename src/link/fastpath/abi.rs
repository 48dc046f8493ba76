//! The layout shared with the XDP program, as bpf/fastpath.h defines it: the config record,
//! the verdict encoding and the counter slots with the socket path's reason for each.
//!
//! Owns: these numbers on the Rust side. Must-not: do I/O. tests/fastpath.rs checks that they
//! agree with the program by running it (every drop reason is compared with the socket
//! path's).

use crate::decide::fastmap::Verdict;
use crate::decide::policy::{Ignored, Invalid};
use crate::decide::ratelimit::Limited;
use crate::ndp::ParseError;

pub const MAX_PREFIXES: usize = 4096;
pub const MAX_TARGETS: usize = 65536;
pub const MAX_GATEWAYS: usize = 64;

const ACTION_PASS: u32 = 0;
const ACTION_ANSWER: u32 = 1;
const ACTION_DROP: u32 = 2;
const LIVE: u32 = 4;
const REASON_SHIFT: u32 = 8;

pub const CONF_ROUTER: u8 = 1;
pub const CONF_OVERRIDE: u8 = 2;
pub const CONF_FIXED_SOURCE: u8 = 4;

/// `struct fp_config`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Config {
    pub mac: [u8; 6],
    pub enabled: u8,
    pub flags: u8,
    pub src: [u8; 16],
    pub per_source: u32,
    pub total: u32,
}

// SAFETY: plain old data, no padding (6 + 1 + 1 + 16 + 4 + 4 = 32 octets, 4-aligned).
unsafe impl aya::Pod for Config {}
const _: () = assert!(std::mem::size_of::<Config>() == 32);

/// What a counter slot counts, in the socket path's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Neighbor Solicitations the program looked at.
    Seen,
    /// Answered in the kernel.
    Answered,
    /// Passed up to the kernel and the socket path.
    Passed,
    Malformed(ParseError),
    Invalid(Invalid),
    Ignored(Ignored),
    Limited(Limited),
}

/// `enum fp_counter`, in order.
pub const SLOTS: [Slot; 28] = [
    Slot::Seen,
    Slot::Answered,
    Slot::Passed,
    Slot::Malformed(ParseError::Truncated),
    Slot::Malformed(ParseError::TooShort),
    Slot::Malformed(ParseError::BadChecksum),
    Slot::Malformed(ParseError::ZeroLengthOption),
    Slot::Malformed(ParseError::BadOptionLength),
    Slot::Invalid(Invalid::HopLimit(0)),
    Slot::Invalid(Invalid::Code(0)),
    Slot::Invalid(Invalid::MulticastTarget),
    Slot::Invalid(Invalid::MulticastSource),
    Slot::Invalid(Invalid::SourceMac),
    Slot::Invalid(Invalid::ImpossibleSource),
    Slot::Invalid(Invalid::SourceLladdr),
    Slot::Invalid(Invalid::DadNotToSolicitedNode),
    Slot::Invalid(Invalid::DadWithSourceLladdr),
    Slot::Ignored(Ignored::FromOurselves),
    Slot::Ignored(Ignored::UnknownDownstream),
    Slot::Ignored(Ignored::NotConnected),
    Slot::Ignored(Ignored::NoRoute),
    Slot::Ignored(Ignored::RoutedToUplink),
    Slot::Ignored(Ignored::NoDownstream),
    Slot::Limited(Limited::PerSource),
    Slot::Limited(Limited::Total),
    Slot::Limited(Limited::GatewayLive),
    Slot::Limited(Limited::GatewayOther),
    Slot::Ignored(Ignored::NotCovered),
];

impl Slot {
    /// The counter's label: the socket path's reason (or seen/answered/passed).
    pub fn label(&self) -> &'static str {
        use crate::status::Reason;
        match self {
            Slot::Seen => "seen",
            Slot::Answered => "answered",
            Slot::Passed => "passed",
            Slot::Malformed(e) => e.reason(),
            Slot::Invalid(e) => Reason::reason(e),
            Slot::Ignored(e) => Reason::reason(e),
            Slot::Limited(e) => e.reason(),
        }
    }
}

/// The map value for `verdict`. A drop reason without a counter slot passes up instead.
pub fn encode(verdict: Verdict) -> u32 {
    match verdict {
        Verdict::Answer { live } => ACTION_ANSWER | if live { LIVE } else { 0 },
        Verdict::Drop(why) => SLOTS
            .iter()
            .position(|s| *s == Slot::Ignored(why))
            .map_or(ACTION_PASS, |i| ACTION_DROP | ((i as u32) << REASON_SHIFT)),
        Verdict::Pass => ACTION_PASS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_drop_verdict_has_a_slot() {
        for why in [
            Ignored::UnknownDownstream,
            Ignored::NotConnected,
            Ignored::NoRoute,
            Ignored::NoDownstream,
            Ignored::NotCovered,
        ] {
            assert_eq!(encode(Verdict::Drop(why)) & 3, ACTION_DROP, "{why:?}");
        }
        assert_eq!(encode(Verdict::Answer { live: true }), 5);
        assert_eq!(encode(Verdict::Pass), 0);
    }
}
