//! The SLAAC topology (issue 17): the same provider (router, Internet stand-in, hypervisor
//! bridge with its anti-spoof filter) and host, but behind the host's bridge br0 guests that
//! autoconfigure their addresses from the uplink's /64 with the Linux kernel as their stack
//! (accept_ra=1, autoconf=1, duplicate address detection on; nothing configured by hand), and
//! another station on the provider link that holds an address of the /64.
//!
//! ```text
//!  router ns                 hypervisor ns                                   host ns                    guest ns
//!  r0 2001:db8:1::1/64 ---- to-router [hvbr] to-host ---- eth0 2001:db8:1::2/64  br0 (no address) ---- eth0 (SLAAC)
//!                             |  drops link-local-sourced NAs from the host,    forwarding=1            (g1, g2, ...)
//!                             |  and any frame from the host's port whose
//!                             |  source MAC is not the host's
//!                           to-nb ---- neighbour ns eth0 2001:db8:1::77/64 (another customer's VM)
//! ```
//!
//! Owns: [`Topology::build_slaac`] and what is done to the guests (added, removed, their
//! addresses and default route read from their kernel), the MAC filter's counter.
//!
//! Must not: configure an address or route inside a guest, except where a test asks for one
//! on purpose ([`Topology::guest_add_addr`], the duplicate address case); touch a namespace
//! it did not create; use addresses outside 2001:db8::/32.

use std::net::Ipv6Addr;
use std::time::Duration;

use super::topology::counted_packets;
use super::{preflight, wait_until, LabError, Topology, HOST_MAC};
use crate::tools::netns::{self, ip};

/// The uplink's /64: the prefix the guests autoconfigure from.
pub const UPLINK_PREFIX: &str = "2001:db8:1::/64";
/// Another station on the provider link (another customer's VM), with an address of the /64.
pub const NEIGHBOUR_ADDR: &str = "2001:db8:1::77";
/// The host uplink's MTU in this topology: below the guests' 1500, so that an RA that
/// carries it shows it came from the uplink.
pub const UPLINK_MTU: u32 = 1480;
/// The host bridge's MAC, fixed so that its link-local address (the guests' router) is too.
pub const GUEST_BRIDGE_MAC: &str = "02:00:00:00:02:0b";

/// The MAC of guest `n` (1-based).
pub fn guest_mac(n: usize) -> String {
    format!("02:00:00:00:03:{:02x}", n & 0xff)
}

/// One global address of a guest, as its kernel shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestAddr {
    pub addr: Ipv6Addr,
    pub prefix_len: u8,
    /// A temporary (privacy) address, RFC 8981.
    pub temporary: bool,
    /// Duplicate address detection still running.
    pub tentative: bool,
    /// Duplicate address detection found it in use elsewhere.
    pub dadfailed: bool,
    /// Its preferred lifetime is over.
    pub deprecated: bool,
}

impl GuestAddr {
    /// Usable: neither tentative nor failed.
    pub fn usable(&self) -> bool {
        !self.tentative && !self.dadfailed
    }
}

/// Parse `ip -6 -o addr show` lines: the global addresses and their flags.
fn parse_addrs(text: &str) -> Vec<GuestAddr> {
    let mut found = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| *w == "inet6") else {
            continue;
        };
        let Some((addr, len)) = words.get(at + 1).and_then(|w| w.split_once('/')) else {
            continue;
        };
        let (Ok(addr), Ok(prefix_len)) = (addr.parse::<Ipv6Addr>(), len.parse::<u8>()) else {
            continue;
        };
        let flags: Vec<&str> = words[at + 2..]
            .iter()
            .take_while(|w| !w.starts_with("valid_lft") && **w != "\\")
            .copied()
            .collect();
        if !flags.contains(&"global") {
            continue;
        }
        found.push(GuestAddr {
            addr,
            prefix_len,
            temporary: flags.contains(&"temporary"),
            tentative: flags.contains(&"tentative"),
            dadfailed: flags.contains(&"dadfailed"),
            deprecated: flags.contains(&"deprecated"),
        });
    }
    found
}

impl Topology {
    /// The provider and host with `guests` guests that autoconfigure behind br0 (guest 2 and
    /// every even one also with temporary addresses, `use_tempaddr=2`), and another station
    /// on the provider link ([`NEIGHBOUR_ADDR`]). Namespace names start with `tag`.
    pub fn build_slaac(tag: &str, guests: usize) -> Result<Topology, LabError> {
        preflight()?;
        let mut topo = Topology {
            tag: tag.to_string(),
            containers: 0,
            namespaces: Vec::new(),
            slaac: true,
            guests: 0,
        };
        topo.build_provider()?;
        topo.build_neighbour()?;
        // The hypervisor lets only the host's MAC out of the host's port: the guests are
        // routed by the host, never bridged onto the provider link.
        let rules = format!(
            "table bridge macfilter {{\n\
             \tchain forward {{\n\
             \t\ttype filter hook forward priority 0; policy accept;\n\
             \t\tiifname \"to-host\" ether saddr != {HOST_MAC} counter drop\n\
             \t}}\n}}\n"
        );
        netns::nft(&topo.hypervisor(), &rules)?;
        topo.build_host()?;
        let mtu = UPLINK_MTU.to_string();
        ip(&["-n", &topo.host(), "link", "set", "eth0", "mtu", &mtu])?;
        for n in 1..=guests {
            topo.add_guest(n % 2 == 0)?;
        }
        Ok(topo)
    }

    /// The namespace of guest `n` (1-based).
    pub fn guest(&self, n: usize) -> String {
        format!("{}-g{n}", self.tag)
    }

    /// The namespace of the other station on the provider link.
    pub fn neighbour(&self) -> String {
        format!("{}-nb", self.tag)
    }

    /// How many guests were added (removed ones included: numbers are never reused).
    pub fn guests(&self) -> usize {
        self.guests
    }

    fn build_neighbour(&mut self) -> Result<(), LabError> {
        let (nb, hv) = (self.neighbour(), self.hypervisor());
        self.add_netns(nb.clone())?;
        ip(&[
            "link",
            "add",
            "eth0",
            "netns",
            &nb,
            "address",
            "02:00:00:00:04:01",
            "type",
            "veth",
            "peer",
            "name",
            "to-nb",
            "netns",
            &hv,
        ])?;
        ip(&["-n", &hv, "link", "set", "to-nb", "master", "hvbr", "up"])?;
        let addr = format!("{NEIGHBOUR_ADDR}/64");
        ip(&["-n", &nb, "addr", "add", &addr, "dev", "eth0", "nodad"])?;
        ip(&["-n", &nb, "link", "set", "eth0", "up"])?;
        Ok(())
    }

    /// br0 of a SLAAC topology: no address of its own but its link-local one (the guests'
    /// router), a fixed MAC; every guest's port attached.
    pub(super) fn create_guest_bridge(&self) -> Result<(), LabError> {
        self.bridge_with_ports(Some(GUEST_BRIDGE_MAC), None, "veth-g", self.guests)
    }

    /// Add a guest behind br0, with temporary addresses too if `temporary`; its number. Its
    /// kernel does the rest: router solicitation, SLAAC, duplicate address detection.
    pub fn add_guest(&mut self, temporary: bool) -> Result<usize, LabError> {
        let n = self.guests + 1;
        let (g, host) = (self.guest(n), self.host());
        self.add_netns(g.clone())?;
        // Guests detect duplicates, as every real one does (add_netns turned it off).
        for conf in ["all", "default"] {
            netns::sysctl(&g, &format!("net/ipv6/conf/{conf}/accept_dad"), "1")?;
        }
        let port = format!("veth-g{n}");
        let mac = guest_mac(n);
        ip(&[
            "link", "add", "eth0", "netns", &g, "address", &mac, "type", "veth", "peer", "name",
            &port, "netns", &host,
        ])?;
        for (key, value) in [
            ("accept_dad", "1"),
            ("accept_ra", "1"),
            ("autoconf", "1"),
            ("use_tempaddr", if temporary { "2" } else { "0" }),
        ] {
            netns::sysctl(&g, &format!("net/ipv6/conf/eth0/{key}"), value)?;
        }
        ip(&["-n", &host, "link", "set", &port, "master", "br0", "up"])?;
        ip(&["-n", &g, "link", "set", "eth0", "up"])?;
        self.guests = n;
        Ok(n)
    }

    /// Remove guest `n` as `machinectl terminate` or `lxc stop` would: its port on br0 (and
    /// with it its bridge forwarding entry), then its namespace.
    pub fn remove_guest(&mut self, n: usize) -> Result<(), LabError> {
        let g = self.guest(n);
        ip(&["-n", &self.host(), "link", "del", &format!("veth-g{n}")])?;
        netns::delete(&g)?;
        self.namespaces.retain(|x| *x != g);
        Ok(())
    }

    /// The global addresses of guest `n`, as its kernel shows them.
    pub fn guest_addrs(&self, n: usize) -> Result<Vec<GuestAddr>, LabError> {
        let out = self.exec(
            &self.guest(n),
            &[
                "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global",
            ],
        )?;
        Ok(parse_addrs(&String::from_utf8_lossy(&out.stdout)))
    }

    /// Poll (up to `within`) until guest `n` has a usable address inside `prefix` (a
    /// temporary one if `temporary`, else a stable one); that address.
    pub fn wait_guest_addr(
        &self,
        n: usize,
        prefix: ipnet::Ipv6Net,
        temporary: bool,
        within: Duration,
    ) -> Result<Option<Ipv6Addr>, LabError> {
        let mut found = None;
        let mut failure = None;
        wait_until(within, || match self.guest_addrs(n) {
            Ok(addrs) => {
                found = addrs
                    .iter()
                    .find(|a| a.usable() && a.temporary == temporary && prefix.contains(&a.addr))
                    .map(|a| a.addr);
                found.is_some()
            }
            Err(e) => {
                failure = Some(e);
                true
            }
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(found),
        }
    }

    /// Poll (up to `within`) until guest `n`'s link-local address passed duplicate address
    /// detection (before that, it can send no router solicitation); whether it did.
    pub fn wait_guest_link_local(&self, n: usize, within: Duration) -> Result<bool, LabError> {
        let g = self.guest(n);
        let args = [
            "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link",
        ];
        let mut failure = None;
        let ready = wait_until(within, || match self.exec(&g, &args) {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout);
                text.contains("inet6 fe80:") && !text.contains("tentative")
            }
            Err(e) => {
                failure = Some(e);
                true
            }
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(ready),
        }
    }

    /// The default route of guest `n` (`ip -6 route show default`), if it has one.
    pub fn guest_default_route(&self, n: usize) -> Result<Option<String>, LabError> {
        let out = self.exec(&self.guest(n), &["ip", "-6", "route", "show", "default"])?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok((!text.is_empty()).then_some(text))
    }

    /// Configure `addr` on guest `n` by hand (with duplicate address detection), as an
    /// operator or a guest with a static configuration would. As a /128: a /64 would make
    /// the whole uplink prefix on-link in the guest, which the host's advertisements (L=0)
    /// never do, and the guest would then look for the router and other upstream stations
    /// on its own link.
    pub fn guest_add_addr(&self, n: usize, addr: &str) -> Result<(), LabError> {
        let cidr = format!("{addr}/128");
        self.exec(
            &self.guest(n),
            &["ip", "-6", "addr", "add", &cidr, "dev", "eth0"],
        )?;
        Ok(())
    }

    /// Ping `dst` from guest `n` (from `src`, if given): (transmitted, received).
    pub fn ping_from_guest(
        &self,
        n: usize,
        src: Option<&str>,
        dst: &str,
        count: u32,
    ) -> Result<(u32, u32), LabError> {
        self.ping_in(&self.guest(n), src, dst, count)
    }

    /// The host's routes of our protocol (`ip -6 route show proto 110`): (address, device).
    pub fn host_slaac_routes(&self) -> Result<Vec<(Ipv6Addr, String)>, LabError> {
        let proto = crate::sources::netlink::routes::RTPROT_NDP_RESPONDER.to_string();
        let out = self.exec(
            &self.host(),
            &["ip", "-6", "route", "show", "proto", &proto],
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .lines()
            .filter_map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                let addr = words.first()?.trim_end_matches("/128").parse().ok()?;
                let dev = words.iter().skip_while(|w| **w != "dev").nth(1)?;
                Some((addr, dev.to_string()))
            })
            .collect())
    }

    /// How many frames the hypervisor's MAC filter dropped from the host's port (a MAC that
    /// is not the host's: a guest bridged instead of routed). 0 for a topology without it.
    pub fn mac_filter_drops(&self) -> Result<u64, LabError> {
        let out = self.try_exec(
            &self.hypervisor(),
            &["nft", "list", "table", "bridge", "macfilter"],
        )?;
        Ok(counted_packets(&out.stdout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_addresses_and_their_flags_are_read() {
        let text = "2: eth0    inet6 2001:db8:1:0:8c1f:27ff:fe3a:1/64 scope global temporary dynamic \\       valid_lft 86390sec preferred_lft 14390sec\n\
                    2: eth0    inet6 2001:db8:1::ff:fe00:302/64 scope global dynamic mngtmpaddr \\       valid_lft 86390sec preferred_lft 14390sec\n\
                    2: eth0    inet6 2001:db8:1::77/64 scope global tentative dadfailed \\       valid_lft forever preferred_lft forever\n\
                    2: eth0    inet6 fe80::ff:fe00:302/64 scope link \\       valid_lft forever preferred_lft forever\n";
        let addrs = parse_addrs(text);
        assert_eq!(addrs.len(), 3, "{addrs:?}");
        assert!(addrs[0].temporary && addrs[0].usable());
        assert_eq!(
            addrs[1].addr,
            "2001:db8:1::ff:fe00:302".parse::<Ipv6Addr>().unwrap()
        );
        assert!(!addrs[1].temporary && addrs[1].usable() && addrs[1].prefix_len == 64);
        assert!(addrs[2].dadfailed && addrs[2].tentative && !addrs[2].usable());
    }
}
