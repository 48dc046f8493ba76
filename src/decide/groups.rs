//! Which solicited-node multicast groups an uplink joins, so that switches and bridges with MLD
//! snooping forward the router's solicitations for our targets to this host.
//!
//! A snooping switch forwards a group's multicast only to the ports that reported the group
//! (RFC 4541) and to multicast-router ports. All-multicast reception reports nothing, so the
//! router's solicitation for a container's address, sent to that address's solicited-node group
//! (RFC 4861 7.2.2), would never reach us: the daemon asks the kernel to join the groups, and
//! the kernel sends the MLD reports and answers the queries.
//!
//! Owns: the wanted set ([`wanted`]): the solicited-node group of every address the daemon
//! answers for by what it knows (auto, docker, probe answers), and of every address of a
//! static or probe prefix of at least [`JOIN_PREFIX_LEN`] bits; the rules too wide for that.
//!
//! Must not: join anything (that is [`crate::link::groups`]) or log.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use super::targets::{Mode, Snapshot};
use crate::ndp::solicited_node;

/// Static and probe prefixes at least this long (at most 256 addresses) have the group of every
/// address joined; wider ones get no per-address joins (a /112 would be 65,536 addresses,
/// and a /104 or wider covers every solicited-node group there is).
pub const JOIN_PREFIX_LEN: u8 = 120;

/// The groups to be members of, and what could not be covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    /// Solicited-node groups, each once however many addresses share it (the low 24 bits).
    pub groups: BTreeSet<Ipv6Addr>,
    /// Static and probe rules wider than [`JOIN_PREFIX_LEN`]: their addresses' groups are not
    /// joined (those the daemon learns, probe answers, still are).
    pub too_wide: Vec<Ipv6Net>,
}

/// The groups an uplink should be a member of, as `snap` stands, with the probe cache's
/// positive answers `positives`.
pub fn wanted(snap: &Snapshot, positives: impl IntoIterator<Item = Ipv6Addr>) -> Wanted {
    let mut out = Wanted::default();
    let mut add = |a: &Ipv6Addr| {
        out.groups.insert(solicited_node(a));
    };
    snap.known.iter().for_each(&mut add);
    // A container of a followed network is answered when any rule holding its address is a
    // docker rule for that network (the policy's test: any rule that says so).
    for (addr, network) in &snap.docker {
        let followed = snap
            .rules_for(addr)
            .any(|r| matches!(&r.mode, Mode::Docker { network: n } if n == network));
        if followed {
            add(addr);
        }
    }
    positives.into_iter().for_each(|a| add(&a));
    for rule in &snap.rules {
        if !matches!(rule.mode, Mode::Static | Mode::Probe { .. }) {
            continue;
        }
        if rule.prefix.prefix_len() < JOIN_PREFIX_LEN {
            out.too_wide.push(rule.prefix);
            continue;
        }
        let first = u128::from(rule.prefix.network());
        let last = u128::from(rule.prefix.broadcast());
        (first..=last).for_each(|a| add(&Ipv6Addr::from(a)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::targets::Rule;
    use crate::decide::testing::{ip, rule};

    fn docker(network: &str) -> Mode {
        Mode::Docker {
            network: network.into(),
        }
    }

    fn snapshot(rules: Vec<Rule>) -> Snapshot {
        let mut rules = rules;
        rules.sort_by_key(|r| std::cmp::Reverse(r.prefix.prefix_len()));
        Snapshot {
            rules,
            ..Snapshot::default()
        }
    }

    #[test]
    fn known_docker_and_probed_addresses_have_their_group() {
        let mut snap = snapshot(vec![
            rule("2001:db8:1::d:0/112", Mode::Auto),
            rule("2001:db8:2::/112", docker("ipv6exposed")),
            Rule::docker("anywhere"),
            rule("2001:db8:3::/112", Mode::Probe { via: None }),
        ]);
        snap.known.insert(ip("2001:db8:1::d:2"));
        snap.docker = [
            (ip("2001:db8:2::5"), "ipv6exposed".to_string()),
            // Another network's container inside the prefix of a rule for "ipv6exposed":
            // not answered, no group.
            (ip("2001:db8:2::6"), "other".to_string()),
            // A rule without a prefix holds its network's containers wherever they are.
            (ip("2001:db8:7::7"), "anywhere".to_string()),
        ]
        .into();
        let w = wanted(&snap, [ip("2001:db8:3::9")]);
        let groups: Vec<Ipv6Addr> = w.groups.into_iter().collect();
        assert_eq!(
            groups,
            [
                ip("ff02::1:ff00:5"),
                ip("ff02::1:ff00:7"),
                ip("ff02::1:ff00:9"),
                ip("ff02::1:ff0d:2")
            ]
        );
        // The probe rule is wider than /120: its addresses are joined once they answer.
        assert_eq!(w.too_wide, ["2001:db8:3::/112".parse::<Ipv6Net>().unwrap()]);
    }

    #[test]
    fn narrow_static_and_probe_prefixes_are_joined_in_full() {
        let snap = snapshot(vec![
            rule("2001:db8:1::e:0/120", Mode::Static),
            rule("2001:db8:1::f:0/126", Mode::Probe { via: None }),
            rule("2001:db8:1::d:0/112", Mode::Static),
        ]);
        let w = wanted(&snap, []);
        assert_eq!(w.groups.len(), 256 + 4);
        assert!(w.groups.contains(&ip("ff02::1:ff0e:0")));
        assert!(w.groups.contains(&ip("ff02::1:ff0e:ff")));
        assert!(w.groups.contains(&ip("ff02::1:ff0f:3")));
        assert!(!w.groups.contains(&ip("ff02::1:ff0d:2")));
        assert_eq!(
            w.too_wide,
            ["2001:db8:1::d:0/112".parse::<Ipv6Net>().unwrap()]
        );
    }

    #[test]
    fn addresses_sharing_their_low_24_bits_share_one_group() {
        let mut snap = snapshot(vec![
            rule("2001:db8:1::/64", Mode::Auto),
            rule("2001:db8:2::/64", docker("net")),
        ]);
        snap.known = [ip("2001:db8:1::ab:cdef"), ip("2001:db8:1::1:ab:cdef")].into();
        snap.docker = [(ip("2001:db8:2::ab:cdef"), "net".to_string())].into();
        let w = wanted(&snap, [ip("2001:db8:1::ab:cdef")]);
        assert_eq!(w.groups, [ip("ff02::1:ffab:cdef")].into());
        assert!(w.too_wide.is_empty());
    }

    #[test]
    fn nothing_known_nothing_wanted() {
        let snap = snapshot(vec![rule("2001:db8:1::d:0/112", Mode::Auto)]);
        assert_eq!(wanted(&snap, []), Wanted::default());
    }
}
