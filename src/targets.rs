//! The table of addresses we answer for, and the facts that veto an answer.
//!
//! Owns: [`Snapshot`], an immutable picture of "which targets are ours" (configured prefixes)
//! plus the uplink facts that override them (the uplink's own addresses, the gateways), and
//! [`TargetTable`], which publishes a new snapshot atomically so that the packet path reads
//! the current one without taking a lock.
//!
//! Must not: do I/O or decide how to answer. Sources (the CLI's static prefixes, the netlink
//! watcher) build snapshots; [`crate::policy`] reads them.

use std::net::Ipv6Addr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::Ipv6Net;

use crate::wire::MacAddr;

/// Everything the policy needs to know about the uplink and our targets, at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The uplink's MAC: the Ethernet source of our answers and their target link-layer option.
    pub mac: MacAddr,
    /// The uplink's link-local address, if it has one (used by `--source link-local`).
    pub link_local: Option<Ipv6Addr>,
    /// Prefixes whose addresses we answer for (the static rules).
    pub prefixes: Vec<Ipv6Net>,
    /// Addresses assigned to the uplink itself: the kernel answers for those, never we.
    pub uplink_addrs: Vec<Ipv6Addr>,
    /// The default gateway(s) reached through the uplink, and neighbours the kernel knows
    /// to be routers there: never hijacked, even when a prefix covers them.
    pub gateways: Vec<Ipv6Addr>,
}

impl Snapshot {
    /// The configured prefix that contains `addr`, if any (most specific first).
    pub fn prefix_for(&self, addr: &Ipv6Addr) -> Option<&Ipv6Net> {
        self.prefixes
            .iter()
            .filter(|p| p.contains(addr))
            .max_by_key(|p| p.prefix_len())
    }

    /// True when `addr` is assigned to the uplink interface.
    pub fn is_uplink_addr(&self, addr: &Ipv6Addr) -> bool {
        self.uplink_addrs.contains(addr)
    }

    /// True when `addr` is a gateway or a known router on the uplink.
    pub fn is_gateway(&self, addr: &Ipv6Addr) -> bool {
        self.gateways.contains(addr)
    }
}

/// The published snapshot. Readers call [`TargetTable::load`] (wait-free); writers build a
/// complete new [`Snapshot`] and [`TargetTable::store`] it.
#[derive(Debug)]
pub struct TargetTable {
    current: ArcSwap<Snapshot>,
}

impl TargetTable {
    pub fn new(initial: Snapshot) -> Self {
        TargetTable {
            current: ArcSwap::from_pointee(initial),
        }
    }

    /// The snapshot in force now.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replace the snapshot; readers see either the old or the new one, never a mix.
    pub fn store(&self, next: Snapshot) {
        self.current.store(Arc::new(next));
    }

    /// Build a new snapshot from the current one and publish it.
    pub fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        let mut next = Snapshot::clone(&self.current.load());
        f(&mut next);
        self.store(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn prefix_for_picks_the_most_specific_prefix() {
        let snap = Snapshot {
            prefixes: vec![net("2001:db8:1::/64"), net("2001:db8:1::d:0/112")],
            ..Snapshot::default()
        };
        assert_eq!(
            snap.prefix_for(&ip("2001:db8:1::d:5")),
            Some(&net("2001:db8:1::d:0/112"))
        );
        assert_eq!(
            snap.prefix_for(&ip("2001:db8:1::5")),
            Some(&net("2001:db8:1::/64"))
        );
        assert_eq!(snap.prefix_for(&ip("2001:db8:2::5")), None);
    }

    #[test]
    fn update_publishes_a_new_snapshot_and_keeps_old_readers_valid() {
        let table = TargetTable::new(Snapshot::default());
        let before = table.load();
        table.update(|s| s.gateways.push(ip("2001:db8:1::1")));
        assert!(
            before.gateways.is_empty(),
            "a reader's snapshot never changes"
        );
        assert!(table.load().is_gateway(&ip("2001:db8:1::1")));
        assert!(!table.load().is_uplink_addr(&ip("2001:db8:1::1")));
    }
}
