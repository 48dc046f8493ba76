//! Kernel state over rtnetlink: links, addresses, routes, neighbours and the bridge FDB, and
//! the events that say they changed.
//!
//! Owns: the questions the daemon and doctor ask the kernel ([`kernel_view`],
//! [`proxy_entries`], [`confirm_neighbour`]) and the subscription to changes ([`watch`]).
//! Message formats and the socket are the `neli` crate's job: it keeps attributes as typed
//! headers over raw payloads, so only the attributes read here are ever decoded.
//!
//! Must not: decide anything about packets or keep state between calls; callers turn a
//! [`KernelView`] into a [`crate::decide::targets::Snapshot`].

use std::collections::HashMap;
use std::ffi::CString;
use std::net::Ipv6Addr;
use std::sync::Arc;

use ipnet::Ipv6Net;
use neli::consts::nl::NlmF;
use neli::consts::rtnl::{Nda, Ntf, Nud, RtAddrFamily, Rtm, Rtn};
use neli::consts::socket::NlFamily;
use neli::err::RouterError;
use neli::nl::NlPayload;
use neli::router::asynchronous::{NlRouter, NlRouterReceiverHandle};
use neli::rtnl::{Ndmsg, NdmsgBuilder, RtattrBuilder};
use neli::socket::asynchronous::NlSocketHandle;
use neli::types::{Buffer, RtBuffer};
use neli::utils::Groups;
use neli::{FromBytesWithInput, Size, ToBytes};

use crate::ndp::MacAddr;

pub mod routes;
mod view;
use view::{neighbours, read_view};

/// The main routing table (RT_TABLE_MAIN).
const MAIN_TABLE: u32 = 254;
/// AF_BRIDGE: the bridge forwarding database's address family.
const AF_BRIDGE: u8 = 7;
/// rtnetlink multicast groups (enum rtnetlink_groups in linux/rtnetlink.h).
const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_NEIGH: u32 = 3;
const RTNLGRP_IPV6_IFADDR: u32 = 9;
const RTNLGRP_IPV6_ROUTE: u32 = 11;

/// A failed netlink exchange.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// As the kernel or the codec phrased it.
    #[error("{0}")]
    Failed(String),
    /// A dump the kernel marked as interrupted (NLM_F_DUMP_INTR), each time it was read.
    #[error("the kernel's table changed while it was read")]
    Interrupted,
}

impl<T: std::fmt::Debug, P: std::fmt::Debug> From<RouterError<T, P>> for Error {
    fn from(e: RouterError<T, P>) -> Self {
        match e {
            RouterError::Nlmsgerr(e) => errno(*e.error()),
            e => error(e),
        }
    }
}

fn error(e: impl std::fmt::Display) -> Error {
    Error::Failed(e.to_string())
}

/// A netlink error code (a negative errno), as the operator knows it ("Operation not
/// permitted").
fn errno(code: libc::c_int) -> Error {
    error(std::io::Error::from_raw_os_error(-code))
}

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
    /// The interface it leaves by (a multipath route is one [`Route`] per hop); None for
    /// nexthop objects and unreachable/blackhole routes.
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
        // The first of equally long ones: a multipath route's first hop.
        self.routes
            .iter()
            .rev()
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

/// A connection for questions to the kernel (route netlink); cheap to clone. Its reader runs
/// as a task of the current tokio runtime and ends when the last clone is dropped.
#[derive(Clone)]
pub struct Handle {
    router: Arc<NlRouter>,
    /// One request at a time: the router's reader holds its table of requests across awaits,
    /// and a request's entry is removed only if that table is free when the request ends.
    turn: Arc<tokio::sync::Mutex<()>>,
}

/// Open a request connection.
pub async fn connect() -> Result<Handle, Error> {
    let (router, _multicast) = NlRouter::connect(NlFamily::Route, None, Groups::empty()).await?;
    Ok(Handle {
        router: Arc::new(router),
        turn: Arc::new(tokio::sync::Mutex::new(())),
    })
}

/// A subscription to link, IPv6 address, IPv6 route and neighbour (including bridge FDB)
/// changes.
pub struct Watch {
    socket: NlSocketHandle,
}

/// Subscribe to changes.
pub fn watch() -> Result<Watch, Error> {
    let groups = Groups::new_groups(&[
        RTNLGRP_LINK,
        RTNLGRP_IPV6_IFADDR,
        RTNLGRP_IPV6_ROUTE,
        RTNLGRP_NEIGH,
    ]);
    let socket = NlSocketHandle::connect(NlFamily::Route, None, groups).map_err(error)?;
    Ok(Watch { socket })
}

impl Watch {
    /// Wait for the next batch of change messages: each means "look again". An error means
    /// that too (ENOBUFS: the kernel dropped events while we were slow, so something changed
    /// unseen); the caller reads the whole state either way.
    pub async fn changed(&self) -> Result<(), Error> {
        self.socket
            .recv::<u16, Buffer>()
            .await
            .map(|_| ())
            .map_err(error)
    }
}

/// Reads of the kernel's tables that the kernel marks as interrupted are tried again, from
/// the start, up to this many times in all.
const DUMP_TRIES: usize = 4;

/// Run `read` again while a dump it makes is interrupted (the table changed while it was
/// read: NLM_F_DUMP_INTR), so that what it returns is one consistent reading.
async fn consistent<T, F: std::future::Future<Output = Result<T, Error>>>(
    read: impl Fn() -> F,
) -> Result<T, Error> {
    for _ in 0..DUMP_TRIES - 1 {
        match read().await {
            Err(Error::Interrupted) => continue,
            other => return other,
        }
    }
    read().await
}

/// Send a dump request (message `kind`, payload built by `request`) and hand each answer to
/// `each`. An error the kernel reports in NLMSG_DONE, or an interrupted dump, is an error.
async fn dump<P, R>(
    handle: &Handle,
    kind: Rtm,
    request: impl Fn() -> Result<P, Error>,
    mut each: impl FnMut(&R),
) -> Result<(), Error>
where
    P: Size + ToBytes + std::fmt::Debug,
    R: Size + FromBytesWithInput<Input = usize> + std::fmt::Debug,
{
    let _turn = handle.turn.lock().await;
    let mut recv: NlRouterReceiverHandle<Rtm, R> = handle
        .router
        .send(kind, NlmF::DUMP, NlPayload::Payload(request()?))
        .await?;
    let mut interrupted = false;
    while let Some(msg) = recv.next::<Rtm, R>().await {
        let msg = msg?;
        interrupted |= msg.nl_flags().contains(NlmF::DUMP_INTR);
        match msg.nl_payload() {
            NlPayload::Payload(p) => each(p),
            // NLMSG_DONE carries the dump's own error code.
            NlPayload::DumpExtAck(ack) if *ack.error() != 0 => return Err(errno(*ack.error())),
            _ => {}
        }
    }
    if interrupted {
        return Err(Error::Interrupted);
    }
    Ok(())
}

/// An attribute's payload as a native-endian u32.
fn attr_u32(payload: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(payload.get(..4)?.try_into().ok()?))
}

fn attr_ipv6(payload: &[u8]) -> Option<Ipv6Addr> {
    <[u8; 16]>::try_from(payload).ok().map(Ipv6Addr::from)
}

fn attr_mac(payload: &[u8]) -> Option<MacAddr> {
    <[u8; 6]>::try_from(payload).ok().map(MacAddr)
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
pub async fn kernel_view(handle: &Handle) -> Result<KernelView, Error> {
    consistent(|| read_view(handle)).await
}

/// Addresses the kernel proxies NDP for on interface `index` (`ip -6 neigh show proxy`).
pub async fn proxy_entries(handle: &Handle, index: u32) -> Result<Vec<Ipv6Addr>, Error> {
    consistent(|| read_proxy_entries(handle, index)).await
}

async fn read_proxy_entries(handle: &Handle, index: u32) -> Result<Vec<Ipv6Addr>, Error> {
    let mut found = Vec::new();
    neighbours(handle, RtAddrFamily::Inet6, Ntf::PROXY, |n| {
        if u32::try_from(*n.ndm_index()).ok() != Some(index) {
            return;
        }
        for attr in n.rtattrs().iter() {
            if *attr.rta_type() == Nda::Dst {
                found.extend(attr_ipv6(attr.rta_payload().as_ref()));
            }
        }
    })
    .await?;
    Ok(found)
}

/// Tell the kernel that `addr` on interface `index` is at `mac`, confirmed just now: a
/// REACHABLE entry, which ages like any other (never PERMANENT).
pub async fn confirm_neighbour(
    handle: &Handle,
    index: u32,
    addr: Ipv6Addr,
    mac: MacAddr,
) -> Result<(), Error> {
    let mut attrs = RtBuffer::new();
    attrs.push(
        RtattrBuilder::default()
            .rta_type(Nda::Dst)
            .rta_payload(Buffer::from(addr.octets().to_vec()))
            .build()
            .map_err(error)?,
    );
    attrs.push(
        RtattrBuilder::default()
            .rta_type(Nda::Lladdr)
            .rta_payload(Buffer::from(mac.0.to_vec()))
            .build()
            .map_err(error)?,
    );
    let msg = NdmsgBuilder::default()
        .ndm_family(RtAddrFamily::Inet6)
        .ndm_index(i32::try_from(index).map_err(error)?)
        .ndm_state(Nud::REACHABLE)
        .ndm_type(Rtn::Unspec)
        .rtattrs(attrs)
        .build()
        .map_err(error)?;
    let _turn = handle.turn.lock().await;
    let mut recv: NlRouterReceiverHandle<Rtm, Ndmsg> = handle
        .router
        .send(
            Rtm::Newneigh,
            NlmF::ACK | NlmF::CREATE | NlmF::REPLACE,
            NlPayload::Payload(msg),
        )
        .await?;
    while let Some(answer) = recv.next::<Rtm, Ndmsg>().await {
        answer?;
    }
    Ok(())
}
