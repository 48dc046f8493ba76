//! Reading the kernel's whole view in one go: links, addresses, routes (one per hop of
//! multipath ones), neighbours and bridge forwarding entries, decoded from the dumps.
//!
//! Owns: [`read_view`], the decoding of the attributes it reads, and the route dump request
//! ([`route_dump_request`], which [`super::routes`] sends too).
//!
//! Must not: subscribe to changes or write anything (that is [`super`]).

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;
use neli::consts::rtnl::{
    Arphrd, Ifa, IfaF, Iff, Ifla, IflaInfo, Nda, Ntf, Nud, RtAddrFamily, RtScope, RtTable, Rta,
    Rtm, Rtn, Rtprot,
};
use neli::rtnl::{
    Ifaddrmsg, IfaddrmsgBuilder, Ifinfomsg, IfinfomsgBuilder, Ndmsg, NdmsgBuilder, Rtmsg,
    RtmsgBuilder,
};
use neli::types::{Buffer, RtBuffer};
use neli::FromBytesWithInput;

use super::*;

pub(super) async fn read_view(handle: &Handle) -> Result<KernelView, Error> {
    let mut view = KernelView::default();

    let request = || {
        IfinfomsgBuilder::default()
            .ifi_family(RtAddrFamily::Unspecified)
            .build()
            .map_err(error)
    };
    dump(handle, Rtm::Getlink, request, |link: &Ifinfomsg| {
        let flags = link.ifi_flags();
        let ethernet = *link.ifi_type() == Arphrd::Ether;
        let mut l = Link {
            name: String::new(),
            mac: None,
            up: flags.contains(Iff::UP) && flags.contains(Iff::LOWERUP),
            bridge: false,
            ethernet,
        };
        for attr in link.rtattrs().iter() {
            let payload = attr.rta_payload().as_ref();
            match attr.rta_type() {
                Ifla::Ifname => {
                    let name = payload.split(|b| *b == 0).next().unwrap_or_default();
                    l.name = String::from_utf8_lossy(name).into_owned();
                }
                Ifla::Address if ethernet => l.mac = attr_mac(payload).filter(|m| !m.is_zero()),
                Ifla::Linkinfo => {
                    // IFLA_INFO_KIND "bridge" (NUL-terminated).
                    if let Ok(infos) = attr.get_attr_handle::<IflaInfo>() {
                        l.bridge = infos.get_attrs().iter().any(|i| {
                            *i.rta_type() == IflaInfo::Kind
                                && i.rta_payload().as_ref().split(|b| *b == 0).next()
                                    == Some(b"bridge")
                        });
                    }
                }
                _ => {}
            }
        }
        if let Ok(index) = u32::try_from(*link.ifi_index()) {
            view.links.insert(index, l);
        }
    })
    .await?;

    let request = || {
        IfaddrmsgBuilder::default()
            .ifa_family(RtAddrFamily::Inet6)
            .ifa_prefixlen(0)
            .ifa_scope(RtScope::Universe)
            .ifa_index(0)
            .build()
            .map_err(error)
    };
    let unusable = u32::from((IfaF::TENTATIVE | IfaF::DADFAILED).bits());
    dump(handle, Rtm::Getaddr, request, |msg: &Ifaddrmsg| {
        // IFA_FLAGS (32 bits) supersedes the header's 8 when present.
        let mut flags = u32::from(msg.ifa_flags().bits());
        let mut addr = None;
        for attr in msg.rtattrs().iter() {
            let payload = attr.rta_payload().as_ref();
            match attr.rta_type() {
                Ifa::Flags => flags = attr_u32(payload).unwrap_or(flags),
                Ifa::Address => addr = attr_ipv6(payload),
                _ => {}
            }
        }
        let Some(addr) = addr else {
            return;
        };
        let index = *msg.ifa_index();
        if flags & unusable == 0 && !view.addrs.contains(&(index, addr)) {
            view.addrs.push((index, addr));
        }
    })
    .await?;

    dump(
        handle,
        Rtm::Getroute,
        route_dump_request,
        |route: &Rtmsg| {
            view.routes.extend(parse_route(route));
        },
    )
    .await?;

    neighbours(handle, RtAddrFamily::Inet6, Ntf::empty(), |n| {
        let state = *n.ndm_state();
        let mut entry = Neighbour {
            ifindex: u32::try_from(*n.ndm_index()).unwrap_or(0),
            addr: Ipv6Addr::UNSPECIFIED,
            lladdr: None,
            valid: state.intersects(
                Nud::REACHABLE | Nud::STALE | Nud::DELAY | Nud::PROBE | Nud::PERMANENT | Nud::NOARP,
            ),
            router: n.ndm_flags().contains(Ntf::ROUTER),
            pinned: state.intersects(Nud::PERMANENT | Nud::NOARP),
        };
        for attr in n.rtattrs().iter() {
            let payload = attr.rta_payload().as_ref();
            match attr.rta_type() {
                Nda::Dst => entry.addr = attr_ipv6(payload).unwrap_or(entry.addr),
                Nda::Lladdr => entry.lladdr = attr_mac(payload),
                _ => {}
            }
        }
        if !entry.addr.is_unspecified() {
            view.neighbours.push(entry);
        }
    })
    .await?;

    let bridge = RtAddrFamily::UnrecognizedConst(AF_BRIDGE);
    neighbours(handle, bridge, Ntf::empty(), |n| {
        // Permanent entries are the bridge's and its ports' own MACs, not stations behind it.
        if n.ndm_state().contains(Nud::PERMANENT) {
            return;
        }
        let mut mac = None;
        let mut bridge = None;
        for attr in n.rtattrs().iter() {
            let payload = attr.rta_payload().as_ref();
            match attr.rta_type() {
                Nda::Lladdr => mac = attr_mac(payload),
                Nda::Master => bridge = attr_u32(payload),
                _ => {}
            }
        }
        if let (Some(mac), Some(bridge)) = (mac, bridge) {
            view.fdb.push((bridge, mac));
        }
    })
    .await?;
    Ok(view)
}

/// Dump the neighbour table of `family` (with NTF_PROXY in `flags`: the proxy entries).
pub(super) async fn neighbours(
    handle: &Handle,
    family: RtAddrFamily,
    flags: Ntf,
    each: impl FnMut(&Ndmsg),
) -> Result<(), Error> {
    let request = || {
        NdmsgBuilder::default()
            .ndm_family(family)
            .ndm_index(0)
            .ndm_state(Nud::empty())
            .ndm_flags(flags)
            .ndm_type(Rtn::Unspec)
            .build()
            .map_err(error)
    };
    dump(handle, Rtm::Getneigh, request, each).await
}

/// The hops of an RTA_MULTIPATH payload, in order: each a struct rtnexthop (linux/rtnetlink.h:
/// length u16, flags u8, hops u8, ifindex i32) followed by the hop's own attributes, the next
/// one at the length rounded up to 4 (RTNH_ALIGN). A truncated hop ends the list.
fn hops(mut payload: &[u8]) -> Vec<(u32, Option<Ipv6Addr>)> {
    let mut found = Vec::new();
    // Each hop is at least a struct rtnexthop long, so this ends.
    while let Some((hop, len)) = first_hop(payload) {
        found.push(hop);
        payload = payload.get(len.div_ceil(4) * 4..).unwrap_or_default();
    }
    found
}

/// The first hop of `payload` (interface, gateway) and its length.
fn first_hop(payload: &[u8]) -> Option<((u32, Option<Ipv6Addr>), usize)> {
    const RTNEXTHOP_LEN: usize = 8;
    let len = usize::from(u16::from_ne_bytes(payload.get(..2)?.try_into().ok()?));
    let ifindex = u32::try_from(i32::from_ne_bytes(payload.get(4..8)?.try_into().ok()?)).ok()?;
    let attrs = payload.get(RTNEXTHOP_LEN..len)?;
    let gateway = RtBuffer::<Rta, Buffer>::from_bytes_with_input(
        &mut std::io::Cursor::new(attrs),
        attrs.len(),
    )
    .ok()
    .and_then(|attrs| {
        attrs
            .iter()
            .find(|a| *a.rta_type() == Rta::Gateway)
            .and_then(|a| attr_ipv6(a.rta_payload().as_ref()))
    });
    Some(((ifindex, gateway), len))
}

/// The request for a dump of every IPv6 route in every table (the tables are told apart
/// by each answer's own attributes). Also what [`super::routes`] reads its own routes from.
pub(super) fn route_dump_request() -> Result<Rtmsg, Error> {
    RtmsgBuilder::default()
        .rtm_family(RtAddrFamily::Inet6)
        .rtm_dst_len(0)
        .rtm_src_len(0)
        .rtm_tos(0)
        .rtm_table(RtTable::Unspec)
        .rtm_protocol(Rtprot::Unspec)
        .rtm_scope(RtScope::Universe)
        .rtm_type(Rtn::Unspec)
        .build()
        .map_err(error)
}

/// A route of the main table; a multipath route as one [`Route`] per hop, in order (so every
/// gateway of an equal-cost default route is one).
fn parse_route(route: &Rtmsg) -> Vec<Route> {
    if *route.rtm_type() != Rtn::Unicast {
        return Vec::new();
    }
    let mut table = u32::from(u8::from(*route.rtm_table()));
    let mut dst = Ipv6Addr::UNSPECIFIED;
    let mut oif = None;
    let mut gateway = None;
    let mut multipath: Vec<(u32, Option<Ipv6Addr>)> = Vec::new();
    for attr in route.rtattrs().iter() {
        let payload = attr.rta_payload().as_ref();
        match attr.rta_type() {
            Rta::Table => table = attr_u32(payload).unwrap_or(table),
            Rta::Dst => match attr_ipv6(payload) {
                Some(a) => dst = a,
                None => return Vec::new(),
            },
            Rta::Oif => oif = attr_u32(payload),
            Rta::Gateway => gateway = attr_ipv6(payload),
            Rta::Multipath => multipath = hops(payload),
            _ => {}
        }
    }
    if table != MAIN_TABLE {
        return Vec::new();
    }
    let Ok(dst) = Ipv6Net::new(dst, *route.rtm_dst_len()) else {
        return Vec::new();
    };
    let protocol = protocol_name(*route.rtm_protocol());
    if multipath.is_empty() {
        return vec![Route {
            dst,
            oif,
            gateway,
            protocol,
        }];
    }
    multipath
        .into_iter()
        .map(|(hop_oif, hop_gateway)| Route {
            dst,
            oif: Some(hop_oif),
            gateway: hop_gateway,
            protocol: protocol.clone(),
        })
        .collect()
}

/// How a route was learned, by the names of iproute2's rt_protos.
fn protocol_name(protocol: Rtprot) -> String {
    match u8::from(protocol) {
        1 => "redirect".into(),
        2 => "kernel".into(),
        3 => "boot".into(),
        4 => "static".into(),
        9 => "ra".into(),
        11 => "zebra".into(),
        12 => "bird".into(),
        16 => "dhcp".into(),
        42 => "babel".into(),
        routes::RTPROT_NDP_RESPONDER => "ndp-responder".into(),
        186 => "bgp".into(),
        188 => "ospf".into(),
        n => format!("proto {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hop_of_a_multipath_route_is_read() {
        // rtnexthop: length 28, flags 0, hops 0, ifindex; then RTA_GATEWAY (20 octets).
        let hop = |ifindex: i32, gw: Ipv6Addr| {
            let mut hop = Vec::new();
            hop.extend_from_slice(&28u16.to_ne_bytes());
            hop.extend_from_slice(&[0, 0]);
            hop.extend_from_slice(&ifindex.to_ne_bytes());
            hop.extend_from_slice(&20u16.to_ne_bytes());
            hop.extend_from_slice(&(libc::RTA_GATEWAY).to_ne_bytes());
            hop.extend_from_slice(&gw.octets());
            hop
        };
        let (gw1, gw2): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::fe".parse().unwrap(),
        );
        let one = hop(7, gw1);
        assert_eq!(first_hop(&one), Some(((7, Some(gw1)), 28)));
        assert_eq!(
            first_hop(&one[..6]),
            None,
            "shorter than a struct rtnexthop"
        );
        assert_eq!(first_hop(&one[..20]), None, "length beyond the payload");
        let mut two = one.clone();
        two.extend_from_slice(&hop(7, gw2));
        assert_eq!(hops(&two), vec![(7, Some(gw1)), (7, Some(gw2))]);
        // A truncated second hop ends the list after the first.
        assert_eq!(hops(&two[..40]), vec![(7, Some(gw1))]);
        // A hop whose length is below a struct rtnexthop's is not read (and never loops).
        let mut short = one.clone();
        short.extend_from_slice(&[4, 0, 0, 0, 7, 0, 0, 0]);
        assert_eq!(hops(&short), vec![(7, Some(gw1))]);
    }
}
