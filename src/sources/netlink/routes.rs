//! Host routes of our own: the /128 routes that send a SLAAC guest's address down the
//! interface it lives behind, marked with a routing protocol number of our own so that
//! nothing else in the kernel's tables is ever touched; and the few sysctls the SLAAC mode
//! depends on (forwarding, accept_ra).
//!
//! Owns: [`RTPROT_NDP_RESPONDER`], [`add_host_route`], [`del_host_route`], [`own_routes`],
//! [`flush_own_routes`], [`ipv6_sysctl`], [`forwarding`], [`accept_ra`].
//!
//! Must not: add, replace or delete a route whose protocol is not [`RTPROT_NDP_RESPONDER`],
//! or a route outside the main table; decide which addresses deserve a route (that is
//! [`crate::decide`]).

use std::fs;
use std::net::Ipv6Addr;
use std::path::Path;

use neli::consts::nl::NlmF;
use neli::consts::rtnl::{RtAddrFamily, RtScope, RtTable, Rta, Rtm, Rtn, Rtprot};
use neli::err::RouterError;
use neli::nl::NlPayload;
use neli::router::asynchronous::NlRouterReceiverHandle;
use neli::rtnl::{RtattrBuilder, Rtmsg, RtmsgBuilder};
use neli::types::{Buffer, RtBuffer};

use super::view::route_dump_request;
use super::*;

/// The routing protocol number (`rtm_protocol`, `ip route ... proto N`) of every route this
/// daemon installs. Numbers from RTPROT_STATIC (4) up are not interpreted by the kernel, only
/// stored, so they can mark who owns a route. 110 (`n`, for NDP) is neither in linux/rtnetlink.h
/// nor in iproute2's rt_protos (which name 0-18, 42, 99, 186-192), nor among those that
/// routing daemons are known to take (FRR 186-198, Calico 80, BIRD 12, keepalived 18).
/// `echo "110 ndp-responder" > /etc/iproute2/rt_protos.d/ndp-responder.conf` lets
/// `ip -6 route show proto ndp-responder` list them by name.
pub const RTPROT_NDP_RESPONDER: u8 = 110;

/// The kernel's answer to a request that only wants an acknowledgement: Ok, or the errno it
/// gave (positive, e.g. libc::EEXIST), or a failure of the exchange itself.
async fn acknowledged(
    handle: &Handle,
    kind: Rtm,
    flags: NlmF,
    msg: Rtmsg,
) -> Result<Result<(), i32>, Error> {
    let _turn = handle.turn.lock().await;
    let mut recv: NlRouterReceiverHandle<Rtm, Rtmsg> = handle
        .router
        .send(kind, NlmF::ACK | flags, NlPayload::Payload(msg))
        .await?;
    while let Some(answer) = recv.next::<Rtm, Rtmsg>().await {
        match answer {
            Ok(_) => {}
            Err(RouterError::Nlmsgerr(e)) => return Ok(Err(-*e.error())),
            Err(e) => return Err(Error::from(e)),
        }
    }
    Ok(Ok(()))
}

/// A route message for `addr`/128 leaving by `ifindex`, in the main table, of our protocol.
fn host_route(addr: Ipv6Addr, ifindex: u32) -> Result<Rtmsg, Error> {
    let mut attrs = RtBuffer::new();
    attrs.push(
        RtattrBuilder::default()
            .rta_type(Rta::Dst)
            .rta_payload(Buffer::from(addr.octets().to_vec()))
            .build()
            .map_err(error)?,
    );
    attrs.push(
        RtattrBuilder::default()
            .rta_type(Rta::Oif)
            .rta_payload(Buffer::from(ifindex.to_ne_bytes().to_vec()))
            .build()
            .map_err(error)?,
    );
    RtmsgBuilder::default()
        .rtm_family(RtAddrFamily::Inet6)
        .rtm_dst_len(128)
        .rtm_src_len(0)
        .rtm_tos(0)
        .rtm_table(RtTable::Main)
        .rtm_protocol(Rtprot::from(RTPROT_NDP_RESPONDER))
        .rtm_scope(RtScope::Universe)
        .rtm_type(Rtn::Unicast)
        .rtattrs(attrs)
        .build()
        .map_err(error)
}

/// Install `ip -6 route add ADDR/128 dev IFINDEX proto 110`. Adding a route that is already
/// there (ours, to the same interface) is a success; a route to `addr`/128 that someone else
/// installed (or ours to another interface) is left alone and is an error.
pub async fn add_host_route(h: &Handle, addr: Ipv6Addr, ifindex: u32) -> Result<(), Error> {
    // NLM_F_EXCL: never replace or join (as another hop of) a route that exists.
    match acknowledged(
        h,
        Rtm::Newroute,
        NlmF::CREATE | NlmF::EXCL,
        host_route(addr, ifindex)?,
    )
    .await?
    {
        Ok(()) => Ok(()),
        Err(libc::EEXIST) => {
            if own_routes(h).await?.contains(&(addr, ifindex)) {
                return Ok(());
            }
            Err(Error::Failed(format!(
                "a route to {addr}/128 exists that ndp-responder did not install for this \
                 interface (see `ip -6 route show {addr}/128`): left alone; remove it or take \
                 {addr} out of the SLAAC prefix"
            )))
        }
        Err(code) => Err(errno(-code)),
    }
}

/// Remove our route to `addr`/128 by `ifindex`. The kernel matches the protocol and the
/// interface, so a route of another protocol (or to another interface) is never removed. A
/// route that is not there is a success: it is gone either way.
pub async fn del_host_route(h: &Handle, addr: Ipv6Addr, ifindex: u32) -> Result<(), Error> {
    match acknowledged(h, Rtm::Delroute, NlmF::empty(), host_route(addr, ifindex)?).await? {
        Ok(()) | Err(libc::ESRCH) | Err(libc::ENOENT) => Ok(()),
        // The interface went away, and its routes with it.
        Err(libc::ENODEV) => Ok(()),
        Err(code) => Err(errno(-code)),
    }
}

/// Every /128 route of our protocol in the main table: (address, interface it leaves by).
pub async fn own_routes(h: &Handle) -> Result<Vec<(Ipv6Addr, u32)>, Error> {
    consistent(|| read_own_routes(h)).await
}

async fn read_own_routes(h: &Handle) -> Result<Vec<(Ipv6Addr, u32)>, Error> {
    let mut found = Vec::new();
    dump(h, Rtm::Getroute, route_dump_request, |route: &Rtmsg| {
        found.extend(own_route(route));
    })
    .await?;
    Ok(found)
}

/// (address, interface) of a route message if it is one of ours: protocol, main table, /128.
fn own_route(route: &Rtmsg) -> Option<(Ipv6Addr, u32)> {
    if u8::from(*route.rtm_protocol()) != RTPROT_NDP_RESPONDER || *route.rtm_dst_len() != 128 {
        return None;
    }
    let mut table = u32::from(u8::from(*route.rtm_table()));
    let (mut dst, mut oif) = (None, None);
    for attr in route.rtattrs().iter() {
        let payload = attr.rta_payload().as_ref();
        match attr.rta_type() {
            Rta::Table => table = attr_u32(payload).unwrap_or(table),
            Rta::Dst => dst = attr_ipv6(payload),
            Rta::Oif => oif = attr_u32(payload),
            _ => {}
        }
    }
    (table == MAIN_TABLE).then_some(())?;
    Some((dst?, oif?))
}

/// Remove every route of ours (on interface `ifindex` only, if given): at a clean stop, and
/// at start for those a crash left. How many were removed.
pub async fn flush_own_routes(h: &Handle, ifindex: Option<u32>) -> Result<usize, Error> {
    let mut removed = 0;
    for (addr, oif) in own_routes(h).await? {
        if ifindex.is_none_or(|i| i == oif) {
            del_host_route(h, addr, oif).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// An IPv6 sysctl of interface `ifname` ("all" and "default" are names too), e.g.
/// `ipv6_sysctl("eth0", "accept_ra")` reads /proc/sys/net/ipv6/conf/eth0/accept_ra. None if
/// there is no such interface or value, or it is not a small number.
pub fn ipv6_sysctl(ifname: &str, key: &str) -> Option<u8> {
    if ifname.contains('/') || ifname == "." || ifname == ".." || key.contains('/') {
        return None;
    }
    fs::read_to_string(Path::new("/proc/sys/net/ipv6/conf").join(ifname).join(key))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// net.ipv6.conf.all.forwarding: does this host route IPv6 between its interfaces? (None if
/// it cannot be read.)
pub fn forwarding() -> Option<bool> {
    ipv6_sysctl("all", "forwarding").map(|v| v != 0)
}

/// net.ipv6.conf.IFNAME.accept_ra: 0 ignores router advertisements, 1 accepts them unless
/// forwarding is on, 2 accepts them even then (what an RA-configured uplink of a router needs).
pub fn accept_ra(ifname: &str) -> Option<u8> {
    ipv6_sysctl(ifname, "accept_ra")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_route_message_carries_our_protocol_and_nothing_else_is_ours() {
        let addr: Ipv6Addr = "2001:db8::42".parse().unwrap();
        let msg = host_route(addr, 7).unwrap();
        assert_eq!(u8::from(*msg.rtm_protocol()), RTPROT_NDP_RESPONDER);
        assert_eq!(*msg.rtm_dst_len(), 128);
        assert_eq!(own_route(&msg), Some((addr, 7)));

        let other = RtmsgBuilder::default()
            .rtm_family(RtAddrFamily::Inet6)
            .rtm_dst_len(128)
            .rtm_src_len(0)
            .rtm_tos(0)
            .rtm_table(RtTable::Main)
            .rtm_protocol(Rtprot::Static)
            .rtm_scope(RtScope::Universe)
            .rtm_type(Rtn::Unicast)
            .rtattrs(msg.rtattrs().clone())
            .build()
            .unwrap();
        assert_eq!(own_route(&other), None, "a static route is not ours");
    }

    #[test]
    fn sysctl_names_cannot_leave_the_ipv6_tree() {
        assert_eq!(ipv6_sysctl("../../../kernel", "hostname"), None);
        assert_eq!(ipv6_sysctl("..", "all"), None);
        assert_eq!(ipv6_sysctl("lo", "../forwarding"), None);
    }
}
