//! Which received Neighbor Advertisements the daemon may act on at all.
//!
//! Owns: the reasons an advertisement is refused ([`AdvertRefused`]), the checks of RFC 4861
//! 7.1.2 every one must pass before anything is learned from it ([`validate_advert`]), and
//! what makes one a downstream station's answer to our probe ([`probe_answer`]). The daemon
//! acts on two kinds only: the gateway's answer to a keepalive ([`crate::decide::gateway`])
//! and a station's answer to a probe; its packet sockets see frames before the kernel's own
//! checks, so every one is checked here first.
//!
//! Must not: keep state (what was asked, and when, is [`crate::decide::gateway`]'s and the
//! probe cache's), or touch sockets.

use std::fmt;
use std::net::Ipv6Addr;

use crate::decide::policy::NDP_HOP_LIMIT;
use crate::ndp::NeighborAdvert;
use crate::status::Reason;

/// Why a received Neighbor Advertisement is not acted upon. The daemon acts on two kinds: the
/// gateway's answer to a keepalive solicitation (it then writes the gateway's neighbour entry)
/// and a downstream station's answer to a probe (it then answers for that address upstream).
/// Its packet sockets see frames before the kernel's own checks, so every one is checked here
/// first (RFC 4861 7.1.2), then against what was asked ([`crate::decide::gateway`], the probe cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvertRefused {
    /// The hop limit is not 255: the packet crossed a router (sent from off-link).
    HopLimit(u8),
    /// The ICMP code is not 0.
    Code(u8),
    /// The target is a multicast address.
    MulticastTarget,
    /// Sent to a multicast address with the Solicited flag set.
    SolicitedToMulticast,
    /// The Ethernet source is a multicast, broadcast or all-zero address.
    SourceMac,
    /// The target link-layer address option names a multicast, broadcast or all-zero address.
    TargetLladdr,
    /// Not an answer (Solicited flag clear), but we act only on answers.
    NotSolicited,
    /// No target link-layer address: nothing to learn from it.
    NoTargetLladdr,
    /// The gateway's answer does not come from the gateway's own address.
    NotFromTarget,
    /// No solicitation of ours for this target (from this source, on this interface) is
    /// waiting for an answer.
    Unexpected,
    /// A different MAC than the kernel holds, without the Override flag (RFC 4861 7.2.5).
    NoOverride,
    /// The gateway's entry is pinned (PERMANENT/NOARP) by someone: left alone.
    Pinned,
    /// The queue from the socket readers to the loop was full.
    QueueFull,
}

impl AdvertRefused {
    /// A short stable label, for counters and logs.
    pub const fn reason(&self) -> &'static str {
        match self {
            AdvertRefused::HopLimit(_) => "hop_limit",
            AdvertRefused::Code(_) => "icmp_code",
            AdvertRefused::MulticastTarget => "multicast_target",
            AdvertRefused::SolicitedToMulticast => "solicited_to_multicast",
            AdvertRefused::SourceMac => "source_mac",
            AdvertRefused::TargetLladdr => "target_lladdr",
            AdvertRefused::NotSolicited => "not_solicited",
            AdvertRefused::NoTargetLladdr => "no_target_lladdr",
            AdvertRefused::NotFromTarget => "not_from_target",
            AdvertRefused::Unexpected => "unexpected",
            AdvertRefused::NoOverride => "no_override",
            AdvertRefused::Pinned => "pinned",
            AdvertRefused::QueueFull => "queue_full",
        }
    }
}

impl Reason for AdvertRefused {
    fn reason(&self) -> &'static str {
        AdvertRefused::reason(self)
    }
}

impl fmt::Display for AdvertRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdvertRefused::HopLimit(h) => write!(f, "hop limit {h}, not 255 (sent from off-link)"),
            AdvertRefused::Code(c) => write!(f, "ICMP code {c}, not 0"),
            AdvertRefused::MulticastTarget => f.write_str("the target is a multicast address"),
            AdvertRefused::SolicitedToMulticast => {
                f.write_str("Solicited flag set on an advertisement to a multicast address")
            }
            AdvertRefused::SourceMac => {
                f.write_str("the Ethernet source is not a station's address")
            }
            AdvertRefused::TargetLladdr => {
                f.write_str("the target link-layer address is not a station's address")
            }
            AdvertRefused::NotSolicited => f.write_str("not an answer (Solicited flag clear)"),
            AdvertRefused::NoTargetLladdr => f.write_str("no target link-layer address"),
            AdvertRefused::NotFromTarget => f.write_str("not sent from the address it advertises"),
            AdvertRefused::Unexpected => {
                f.write_str("no solicitation of ours is waiting for this answer")
            }
            AdvertRefused::NoOverride => {
                f.write_str("a different MAC than the kernel holds, without the Override flag")
            }
            AdvertRefused::Pinned => f.write_str("the entry is pinned (PERMANENT/NOARP)"),
            AdvertRefused::QueueFull => f.write_str("the queue to the event loop was full"),
        }
    }
}

/// RFC 4861 section 7.1.2: the checks every received advertisement must pass before anything
/// is learned from it (the structural ones, length and checksum, are `wire`'s). Also refuses a
/// target link-layer address that no station can have.
pub fn validate_advert(na: &NeighborAdvert) -> Result<(), AdvertRefused> {
    if na.hop_limit != NDP_HOP_LIMIT {
        return Err(AdvertRefused::HopLimit(na.hop_limit));
    }
    if na.code != 0 {
        return Err(AdvertRefused::Code(na.code));
    }
    if na.target.is_multicast() {
        return Err(AdvertRefused::MulticastTarget);
    }
    if na.ip_dst.is_multicast() && na.solicited {
        return Err(AdvertRefused::SolicitedToMulticast);
    }
    if na.eth_src.is_multicast() || na.eth_src.is_zero() {
        return Err(AdvertRefused::SourceMac);
    }
    if na
        .target_lladdr
        .is_some_and(|mac| mac.is_multicast() || mac.is_zero())
    {
        return Err(AdvertRefused::TargetLladdr);
    }
    Ok(())
}

/// A downstream station's answer to our probe for `na.target`: valid, an answer (S set, RFC
/// 4861 7.2.4), and addressed to the probe's source (the downstream interface's link-local
/// address). Whether a probe for it is pending, and on that interface, the caller checks.
pub fn probe_answer(
    na: &NeighborAdvert,
    probe_source: Option<Ipv6Addr>,
) -> Result<(), AdvertRefused> {
    validate_advert(na)?;
    if !na.solicited {
        return Err(AdvertRefused::NotSolicited);
    }
    if probe_source.is_some_and(|src| na.ip_dst != src) {
        return Err(AdvertRefused::Unexpected);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::testing::ip;
    use crate::ndp::MacAddr;

    #[test]
    fn advertisements_are_validated_before_anything_is_learned() {
        let good = NeighborAdvert {
            eth_src: MacAddr([2, 0, 0, 0, 3, 2]),
            eth_dst: MacAddr([2, 0, 0, 0, 3, 1]),
            ip_src: ip("2001:db8:1::d:2"),
            ip_dst: ip("fe80::3"),
            hop_limit: 255,
            code: 0,
            router: false,
            solicited: true,
            override_flag: true,
            target: ip("2001:db8:1::d:2"),
            target_lladdr: Some(MacAddr([2, 0, 0, 0, 3, 2])),
        };
        assert_eq!(probe_answer(&good, Some(ip("fe80::3"))), Ok(()));
        let refused = |na: NeighborAdvert| probe_answer(&na, Some(ip("fe80::3"))).unwrap_err();
        assert_eq!(
            refused(NeighborAdvert {
                hop_limit: 64,
                ..good
            }),
            AdvertRefused::HopLimit(64)
        );
        assert_eq!(
            refused(NeighborAdvert { code: 3, ..good }),
            AdvertRefused::Code(3)
        );
        assert_eq!(
            refused(NeighborAdvert {
                target: ip("ff02::1"),
                ..good
            }),
            AdvertRefused::MulticastTarget
        );
        assert_eq!(
            refused(NeighborAdvert {
                ip_dst: ip("ff02::1"),
                ..good
            }),
            AdvertRefused::SolicitedToMulticast
        );
        assert_eq!(
            refused(NeighborAdvert {
                eth_src: MacAddr::BROADCAST,
                ..good
            }),
            AdvertRefused::SourceMac
        );
        assert_eq!(
            refused(NeighborAdvert {
                target_lladdr: Some(MacAddr::BROADCAST),
                ..good
            }),
            AdvertRefused::TargetLladdr
        );
        assert_eq!(
            refused(NeighborAdvert {
                solicited: false,
                ..good
            }),
            AdvertRefused::NotSolicited
        );
        assert_eq!(
            refused(NeighborAdvert {
                ip_dst: ip("fe80::99"),
                ..good
            }),
            AdvertRefused::Unexpected,
            "an answer to someone else's solicitation"
        );
    }
}
