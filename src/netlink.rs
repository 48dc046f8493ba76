//! Kernel state over rtnetlink: the uplink's MAC and addresses, the gateways, change events.
//!
//! Owns: the questions the daemon asks the kernel ([`resolve_link`], [`uplink_facts`]) and the
//! subscription to link, address, route and neighbour changes ([`watch`]). Message formats are
//! the `rtnetlink` / `netlink-packet-route` crates' job.
//!
//! Must not: decide anything about packets or keep state of its own; callers turn the facts
//! into a [`crate::targets::Snapshot`].

use std::ffi::CString;
use std::io;
use std::net::{IpAddr, Ipv6Addr};

use futures::channel::mpsc::UnboundedReceiver;
use futures::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{LinkAttribute, LinkFlags};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol};
use netlink_packet_route::AddressFamily;
use rtnetlink::{Handle, MulticastGroup, RouteMessageBuilder};

use crate::wire::MacAddr;

/// Why the uplink cannot be used, phrased for the operator.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("no interface named '{0}': check the name with `ip link` (-i/--ifname)")]
    NoSuchInterface(String),
    #[error("interface '{0}' has no Ethernet MAC address (it is {1}): ndp-responder needs an Ethernet-like uplink")]
    NoMac(String, &'static str),
    #[error("asking the kernel about interface '{0}': {1}")]
    Netlink(String, String),
}

/// Identity of the uplink interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub name: String,
    pub index: u32,
    pub mac: MacAddr,
}

/// What the kernel says about the uplink right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UplinkFacts {
    pub mac: MacAddr,
    pub up: bool,
    /// Every IPv6 address assigned to the uplink, link-local ones included.
    pub addrs: Vec<Ipv6Addr>,
    pub link_local: Option<Ipv6Addr>,
    /// Gateways of default routes through the uplink, and neighbours flagged as routers there.
    pub gateways: Vec<Ipv6Addr>,
    /// The default routes through the uplink, with who installed them.
    pub default_routes: Vec<DefaultRoute>,
}

/// A default route through the uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute {
    pub gateway: Ipv6Addr,
    /// How it was learned: "ra" (router advertisement), "static", "boot", "dhcp", ...
    pub learned_by: String,
}

/// Open a request connection; the returned future must be spawned (it drives the socket).
pub fn connect() -> io::Result<(impl std::future::Future<Output = ()>, Handle)> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    Ok((conn, handle))
}

/// Subscribe to link, IPv6 address, IPv6 route and neighbour changes. The future drives the
/// socket; every message on the receiver means "something changed, look again".
#[allow(clippy::type_complexity)]
pub fn watch() -> io::Result<(
    impl std::future::Future<Output = ()>,
    UnboundedReceiver<impl Sized>,
)> {
    let (conn, _handle, messages) = rtnetlink::new_multicast_connection(&[
        MulticastGroup::Link,
        MulticastGroup::Ipv6Ifaddr,
        MulticastGroup::Ipv6Route,
        MulticastGroup::Neigh,
    ])?;
    Ok((conn, messages))
}

/// Find the interface called `name` and its MAC address.
pub async fn resolve_link(handle: &Handle, name: &str) -> Result<LinkInfo, LinkError> {
    let index = ifindex(name).ok_or_else(|| LinkError::NoSuchInterface(name.to_string()))?;
    let (mac, _) = link_state(handle, index)
        .await
        .map_err(|e| LinkError::Netlink(name.to_string(), e.to_string()))?;
    let mac = mac.ok_or(LinkError::NoMac(name.to_string(), "not Ethernet-like"))?;
    if mac.is_zero() {
        return Err(LinkError::NoMac(name.to_string(), "all zero"));
    }
    Ok(LinkInfo {
        name: name.to_string(),
        index,
        mac,
    })
}

/// The interface index for `name`, if such an interface exists.
pub fn ifindex(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    // SAFETY: cname is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    (index != 0).then_some(index)
}

async fn link_state(
    handle: &Handle,
    index: u32,
) -> Result<(Option<MacAddr>, bool), rtnetlink::Error> {
    let mut links = handle.link().get().match_index(index).execute();
    let Some(link) = links.try_next().await? else {
        return Ok((None, false));
    };
    let up =
        link.header.flags.contains(LinkFlags::Up) && link.header.flags.contains(LinkFlags::LowerUp);
    let mac = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok().map(MacAddr),
        _ => None,
    });
    Ok((mac, up))
}

/// Read the uplink's MAC, state, addresses and gateways.
pub async fn uplink_facts(handle: &Handle, index: u32) -> Result<UplinkFacts, rtnetlink::Error> {
    let (mac, up) = link_state(handle, index).await?;
    let mut facts = UplinkFacts {
        mac: mac.unwrap_or_default(),
        up,
        ..UplinkFacts::default()
    };

    let mut addrs = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute();
    while let Some(msg) = addrs.try_next().await? {
        if msg.header.index != index {
            continue;
        }
        for attr in &msg.attributes {
            if let AddressAttribute::Address(IpAddr::V6(a)) = attr {
                if !facts.addrs.contains(a) {
                    facts.addrs.push(*a);
                }
                if a.is_unicast_link_local() && facts.link_local.is_none() {
                    facts.link_local = Some(*a);
                }
            }
        }
    }

    let request = RouteMessageBuilder::<Ipv6Addr>::new().build();
    let mut routes = handle.route().get(request).execute();
    while let Some(route) = routes.try_next().await? {
        if route.header.destination_prefix_length == 0 {
            for gw in default_gateways(&route, index) {
                if !facts.gateways.contains(&gw) {
                    facts.gateways.push(gw);
                }
                facts.default_routes.push(DefaultRoute {
                    gateway: gw,
                    learned_by: protocol_name(route.header.protocol),
                });
            }
        }
    }

    let mut neighbours = handle
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Inet6)
        .execute();
    while let Some(n) = neighbours.try_next().await? {
        if n.header.ifindex != index || !n.header.flags.contains(NeighbourFlags::Router) {
            continue;
        }
        for attr in &n.attributes {
            if let NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) = attr {
                if !facts.gateways.contains(a) {
                    facts.gateways.push(*a);
                }
            }
        }
    }
    Ok(facts)
}

/// Gateways of a default route that leave through interface `index` (plain or multipath).
fn default_gateways(route: &RouteMessage, index: u32) -> Vec<Ipv6Addr> {
    let mut oif = None;
    let mut gateway = None;
    let mut found = Vec::new();
    for attr in &route.attributes {
        match attr {
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Gateway(RouteAddress::Inet6(g)) => gateway = Some(*g),
            RouteAttribute::MultiPath(hops) => {
                for hop in hops.iter().filter(|h| h.interface_index == index) {
                    found.extend(hop.attributes.iter().filter_map(|a| match a {
                        RouteAttribute::Gateway(RouteAddress::Inet6(g)) => Some(*g),
                        _ => None,
                    }));
                }
            }
            _ => {}
        }
    }
    if let (Some(g), Some(i)) = (gateway, oif) {
        if i == index {
            found.push(g);
        }
    }
    found
}

fn protocol_name(protocol: RouteProtocol) -> String {
    match protocol {
        RouteProtocol::Ra => "ra".into(),
        RouteProtocol::Static => "static".into(),
        RouteProtocol::Boot => "boot".into(),
        RouteProtocol::Dhcp => "dhcp".into(),
        RouteProtocol::Kernel => "kernel".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The interface the kernel would send a packet for `addr` out of (an `ip route get`), if
/// any route matches.
pub async fn route_oif(handle: &Handle, addr: Ipv6Addr) -> Result<Option<u32>, rtnetlink::Error> {
    let request = RouteMessageBuilder::<Ipv6Addr>::new()
        .destination_prefix(addr, 128)
        .build();
    let mut routes = handle.route().get(request).execute();
    match routes.try_next().await {
        Ok(Some(route)) => Ok(route.attributes.iter().find_map(|a| match a {
            RouteAttribute::Oif(i) => Some(*i),
            _ => None,
        })),
        Ok(None) => Ok(None),
        // ENETUNREACH / EHOSTUNREACH: no route at all.
        Err(rtnetlink::Error::NetlinkError(e))
            if matches!(-e.raw_code(), libc::ENETUNREACH | libc::EHOSTUNREACH) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Addresses the kernel proxies NDP for on interface `index` (`ip -6 neigh show proxy`).
pub async fn proxy_entries(handle: &Handle, index: u32) -> Result<Vec<Ipv6Addr>, rtnetlink::Error> {
    let mut found = Vec::new();
    let mut entries = handle
        .neighbours()
        .get()
        .proxies()
        .set_address_family(AddressFamily::Inet6)
        .execute();
    while let Some(n) = entries.try_next().await? {
        if n.header.ifindex != index {
            continue;
        }
        for attr in &n.attributes {
            if let NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) = attr {
                found.push(*a);
            }
        }
    }
    Ok(found)
}

/// The name of interface `index`, if it exists.
pub fn ifname(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success buf holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}
