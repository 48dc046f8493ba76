//! Kernel state over rtnetlink: links, addresses, routes, neighbours and the bridge FDB, and
//! the events that say they changed.
//!
//! Owns: the questions the daemon and doctor ask the kernel ([`kernel_view`],
//! [`proxy_entries`]) and the subscription to changes ([`watch`]). Message formats are the
//! `rtnetlink` / `netlink-packet-route` crates' job.
//!
//! Must not: decide anything about packets or keep state between calls; callers turn a
//! [`KernelView`] into a [`crate::targets::Snapshot`].

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::net::{IpAddr, Ipv6Addr};

use futures::channel::mpsc::UnboundedReceiver;
use futures::TryStreamExt;
use ipnet::Ipv6Net;
use netlink_packet_route::address::{AddressAttribute, AddressFlags};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkLayerType};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteType,
};
use netlink_packet_route::AddressFamily;
use rtnetlink::{Handle, MulticastGroup, RouteMessageBuilder};

use crate::wire::MacAddr;

/// The main routing table (RT_TABLE_MAIN).
const MAIN_TABLE: u32 = 254;

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    /// None for links without an Ethernet address (WireGuard, tun, loopback has all-zero).
    pub mac: Option<MacAddr>,
    /// Administratively up and with carrier.
    pub up: bool,
    pub bridge: bool,
    /// An Ethernet-like link, with neighbour discovery (a bridge without ports still is one,
    /// even while its MAC reads all zero); WireGuard and tun links are not.
    pub ethernet: bool,
}

/// One IPv6 route of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv6Net,
    /// The interface it leaves by (the first hop's, for multipath); None for nexthop objects
    /// and unreachable/blackhole routes.
    pub oif: Option<u32>,
    pub gateway: Option<Ipv6Addr>,
    /// How it was learned: "ra", "static", "boot", "dhcp", "kernel", ...
    pub protocol: String,
}

/// One IPv6 neighbour table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub ifindex: u32,
    pub addr: Ipv6Addr,
    pub lladdr: Option<MacAddr>,
    /// REACHABLE, STALE, DELAY, PROBE, PERMANENT or NOARP: the kernel believes it is there.
    pub valid: bool,
    /// The neighbour advertised itself as a router.
    pub router: bool,
    /// PERMANENT or NOARP: pinned by someone, never aged.
    pub pinned: bool,
}

/// Everything the daemon and doctor read from the kernel, at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelView {
    pub links: HashMap<u32, Link>,
    /// IPv6 addresses: (interface, address). Tentative and DAD-failed ones are left out.
    pub addrs: Vec<(u32, Ipv6Addr)>,
    pub routes: Vec<Route>,
    pub neighbours: Vec<Neighbour>,
    /// Bridge forwarding entries learned on ports: (bridge, MAC).
    pub fdb: Vec<(u32, MacAddr)>,
}

impl KernelView {
    /// The index of the interface called `name`, if it exists.
    pub fn index_of(&self, name: &str) -> Option<u32> {
        self.links
            .iter()
            .find(|(_, l)| l.name == name)
            .map(|(i, _)| *i)
    }

    /// Addresses of interface `index`.
    pub fn addrs_of(&self, index: u32) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.addrs
            .iter()
            .filter(move |(i, _)| *i == index)
            .map(|(_, a)| *a)
    }

    /// The first link-local address of interface `index`.
    pub fn link_local_of(&self, index: u32) -> Option<Ipv6Addr> {
        self.addrs_of(index).find(|a| a.is_unicast_link_local())
    }

    /// The main-table route the kernel would use for `addr` (longest prefix match).
    pub fn route_for(&self, addr: &Ipv6Addr) -> Option<&Route> {
        self.routes
            .iter()
            .filter(|r| r.dst.contains(addr))
            .max_by_key(|r| r.dst.prefix_len())
    }

    /// Default routes leaving through interface `index`.
    pub fn default_routes_via(&self, index: u32) -> impl Iterator<Item = &Route> + '_ {
        self.routes
            .iter()
            .filter(move |r| r.dst.prefix_len() == 0 && r.oif == Some(index) && r.gateway.is_some())
    }
}

/// Open a request connection; the returned future must be spawned (it drives the socket).
pub fn connect() -> io::Result<(impl std::future::Future<Output = ()>, Handle)> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    Ok((conn, handle))
}

/// Subscribe to link, IPv6 address, IPv6 route and neighbour (including bridge FDB) changes.
/// The future drives the socket; every message on the receiver means "look again".
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

/// The interface index for `name`, if such an interface exists.
pub fn ifindex(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    // SAFETY: cname is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    (index != 0).then_some(index)
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

/// Read links, addresses, main-table routes, neighbours and the bridge FDB.
pub async fn kernel_view(handle: &Handle) -> Result<KernelView, rtnetlink::Error> {
    let mut view = KernelView::default();

    let mut links = handle.link().get().execute();
    while let Some(link) = links.try_next().await? {
        let mut l = Link {
            name: String::new(),
            mac: None,
            up: link.header.flags.contains(LinkFlags::Up)
                && link.header.flags.contains(LinkFlags::LowerUp),
            bridge: false,
            ethernet: link.header.link_layer_type == LinkLayerType::Ether,
        };
        let ethernet = l.ethernet;
        for attr in &link.attributes {
            match attr {
                LinkAttribute::IfName(n) => l.name = n.clone(),
                LinkAttribute::Address(bytes) if ethernet => {
                    l.mac = <[u8; 6]>::try_from(bytes.as_slice())
                        .ok()
                        .map(MacAddr)
                        .filter(|m| !m.is_zero());
                }
                LinkAttribute::LinkInfo(infos) => {
                    l.bridge = infos
                        .iter()
                        .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge)));
                }
                _ => {}
            }
        }
        view.links.insert(link.header.index, l);
    }

    let mut request = handle.address().get();
    request.message_mut().header.family = AddressFamily::Inet6;
    let mut addrs = request.execute();
    while let Some(msg) = addrs.try_next().await? {
        let mut flags = AddressFlags::from_bits_retain(msg.header.flags.bits() as u32);
        for attr in &msg.attributes {
            if let AddressAttribute::Flags(f) = attr {
                flags = AddressFlags::from_bits_retain(f.bits());
            }
        }
        if flags.intersects(AddressFlags::Tentative | AddressFlags::Dadfailed) {
            continue;
        }
        for attr in &msg.attributes {
            if let AddressAttribute::Address(IpAddr::V6(a)) = attr {
                if !view.addrs.contains(&(msg.header.index, *a)) {
                    view.addrs.push((msg.header.index, *a));
                }
            }
        }
    }

    let request = RouteMessageBuilder::<Ipv6Addr>::new().build();
    let mut routes = handle.route().get(request).execute();
    while let Some(route) = routes.try_next().await? {
        let table = route
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(route.header.table as u32);
        if table != MAIN_TABLE {
            continue;
        }
        if let Some(r) = parse_route(&route) {
            view.routes.push(r);
        }
    }

    let mut neighbours = handle
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Inet6)
        .execute();
    while let Some(n) = neighbours.try_next().await? {
        let mut entry = Neighbour {
            ifindex: n.header.ifindex,
            addr: Ipv6Addr::UNSPECIFIED,
            lladdr: None,
            valid: matches!(
                n.header.state,
                NeighbourState::Reachable
                    | NeighbourState::Stale
                    | NeighbourState::Delay
                    | NeighbourState::Probe
                    | NeighbourState::Permanent
                    | NeighbourState::Noarp
            ),
            router: n.header.flags.contains(NeighbourFlags::Router),
            pinned: matches!(
                n.header.state,
                NeighbourState::Permanent | NeighbourState::Noarp
            ),
        };
        for attr in &n.attributes {
            match attr {
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => entry.addr = *a,
                NeighbourAttribute::LinkLayerAddress(b) => {
                    entry.lladdr = <[u8; 6]>::try_from(b.as_slice()).ok().map(MacAddr)
                }
                _ => {}
            }
        }
        if !entry.addr.is_unspecified() {
            view.neighbours.push(entry);
        }
    }

    let mut fdb = handle
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Bridge)
        .execute();
    while let Some(n) = fdb.try_next().await? {
        // Permanent entries are the bridge's and its ports' own MACs, not stations behind it.
        if n.header.state == NeighbourState::Permanent {
            continue;
        }
        let mut mac = None;
        let mut bridge = None;
        for attr in &n.attributes {
            match attr {
                NeighbourAttribute::LinkLayerAddress(b) => {
                    mac = <[u8; 6]>::try_from(b.as_slice()).ok().map(MacAddr)
                }
                NeighbourAttribute::Controller(m) => bridge = Some(*m),
                _ => {}
            }
        }
        if let (Some(mac), Some(bridge)) = (mac, bridge) {
            view.fdb.push((bridge, mac));
        }
    }
    Ok(view)
}

fn parse_route(route: &RouteMessage) -> Option<Route> {
    if route.header.kind != RouteType::Unicast {
        return None;
    }
    let mut dst = Ipv6Addr::UNSPECIFIED;
    let mut oif = None;
    let mut gateway = None;
    for attr in &route.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet6(d)) => dst = *d,
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Gateway(RouteAddress::Inet6(g)) => gateway = Some(*g),
            RouteAttribute::MultiPath(hops) => {
                if let Some(hop) = hops.first() {
                    oif = oif.or(Some(hop.interface_index));
                    gateway = gateway.or_else(|| {
                        hop.attributes.iter().find_map(|a| match a {
                            RouteAttribute::Gateway(RouteAddress::Inet6(g)) => Some(*g),
                            _ => None,
                        })
                    });
                }
            }
            _ => {}
        }
    }
    let dst = Ipv6Net::new(dst, route.header.destination_prefix_length).ok()?;
    Some(Route {
        dst,
        oif,
        gateway,
        protocol: protocol_name(route.header.protocol),
    })
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

/// Tell the kernel that `addr` on interface `index` is at `mac`, confirmed just now: a
/// REACHABLE entry, which ages like any other (never PERMANENT).
pub async fn confirm_neighbour(
    handle: &Handle,
    index: u32,
    addr: Ipv6Addr,
    mac: MacAddr,
) -> Result<(), rtnetlink::Error> {
    handle
        .neighbours()
        .add(index, IpAddr::V6(addr))
        .link_layer_address(&mac.0)
        .state(NeighbourState::Reachable)
        .replace()
        .execute()
        .await
}
