//! SLAAC: sharing the uplink's /64 with the guests on a bridge (issue 17, `--slaac IFACE`).
//!
//! Owns, for each SLAAC interface of this uplink: its socket (RS, RA, NS, NA of the guests)
//! and reader task, sending Router Advertisements (periodic, in answer to solicitations, the
//! deprecation of a prefix that went away, a final one on a clean stop), learning the guests'
//! addresses from what they send and installing a /128 route of our own protocol for each
//! (the route makes the address a target: the snapshot's `known`, answered and announced by
//! the rest of the uplink), liveness probes and removing the route of a station gone, the DAD
//! of guests relayed upstream (and answered downstream when it fails there: RFC 4389 4.1,
//! RFC 4861 5.4 / RFC 4862 5.4.3-5.4.5), relaying the uplink router's RDNSS/DNSSL, and
//! removing every route of ours on a stop (and the stale ones of a crash at start). Also the
//! uplink socket that reads the router's RAs and the answers to relayed DAD. What the sockets
//! hear is handled in [`heard`].
//!
//! Must not: decide who may claim an address or when to advertise (that is
//! [`crate::decide::slaac`]), or answer solicitations on the uplink (the policy does, once the
//! route is there: [`super::answer`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::Ipv6Net;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::Responder;
use crate::decide::slaac::{self as plan, Content, Prefixes, RaDue, RaSchedule, Stations};
use crate::decide::targets::Snapshot;
use crate::link::Capture;
use crate::ndp::router::RouterSolicit;
use crate::ndp::{self, MacAddr, NeighborSolicit};
use crate::sources::netlink::{self, routes};
use crate::status::SlaacStatus;

/// Frames queued from the readers to the loop; more are dropped (counted).
pub(super) const SLAAC_QUEUE: usize = 256;

/// How often the tables are looked at (DAD windows, probes, prefixes, interfaces).
const TICK: Duration = Duration::from_secs(1);

mod heard;
mod reader;

use super::reader::Reader;
pub(super) use reader::Heard;
use reader::{send_ra, send_small};

/// One SLAAC interface.
struct Iface {
    index: u32,
    mac: MacAddr,
    link_local: Ipv6Addr,
    reader: Reader,
    stations: Stations,
    ra: RaSchedule,
    prefixes: Prefixes,
    /// RA senders other than us seen on the interface (MAC -> source), each warned once.
    foreign: BTreeMap<MacAddr, Ipv6Addr>,
}

/// The SLAAC duty of one uplink.
pub(super) struct Slaac {
    ifaces: HashMap<String, Iface>,
    uplink: Option<(u32, Reader)>,
    tx: mpsc::Sender<Heard>,
    dropped: Arc<AtomicU64>,
    next_tick: Instant,
    /// RDNSS and DNSSL of the uplink router's last RA, and until when they hold.
    relayed: Option<(Vec<Ipv6Addr>, Vec<String>, Instant)>,
    /// Interfaces whose open failed, warned once until it works.
    failed: HashSet<String>,
}

impl Slaac {
    pub(super) fn new(tx: mpsc::Sender<Heard>) -> Self {
        Slaac {
            ifaces: HashMap::new(),
            uplink: None,
            tx,
            dropped: Arc::default(),
            next_tick: Instant::now(),
            relayed: None,
            failed: HashSet::new(),
        }
    }

    /// When the loop must call [`Responder::on_slaac_timer`] next (None: no SLAAC rule).
    pub(super) fn next_due(&self, configured: bool) -> Option<Instant> {
        if !configured && self.ifaces.is_empty() {
            return None;
        }
        Some(
            self.ifaces
                .values()
                .flat_map(|i| [Some(i.ra.next_due()), i.stations.next_deadline()])
                .flatten()
                .fold(self.next_tick, Instant::min),
        )
    }

    pub(super) fn status(&self, snap: &Snapshot, now: Instant) -> Vec<SlaacStatus> {
        let mut out: Vec<SlaacStatus> = self
            .ifaces
            .iter()
            .map(|(name, i)| {
                let mut stations: BTreeMap<String, Vec<Ipv6Addr>> = BTreeMap::new();
                for (addr, s) in i.stations.iter() {
                    stations.entry(s.mac.to_string()).or_default().push(*addr);
                }
                stations.values_mut().for_each(|v| v.sort());
                let mut failed: Vec<Ipv6Addr> = i.stations.failed().copied().collect();
                failed.sort();
                SlaacStatus {
                    interface: name.clone(),
                    index: Some(i.index),
                    prefixes: i.prefixes.live().iter().map(|p| p.to_string()).collect(),
                    deprecating: i.prefixes.going().map(|p| p.to_string()).collect(),
                    routes: i.stations.len(),
                    stations,
                    dad_pending: i.stations.pending(),
                    dad_failed: failed,
                    dns: self.dns_for(snap, name, now).0,
                    other_ra_senders: i
                        .foreign
                        .iter()
                        .map(|(mac, ip)| format!("{ip} ({mac})"))
                        .collect(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.interface.cmp(&b.interface));
        out
    }

    /// The DNS servers and search list to advertise on `name`: the rule's, else the uplink
    /// router's while they hold.
    fn dns_for(&self, snap: &Snapshot, name: &str, now: Instant) -> (Vec<Ipv6Addr>, Vec<String>) {
        let configured: Vec<Ipv6Addr> = snap
            .rules
            .iter()
            .filter_map(|r| match &r.mode {
                crate::decide::targets::Mode::Slaac { interface, dns } if interface == name => {
                    Some(dns.clone())
                }
                _ => None,
            })
            .flatten()
            .collect();
        if !configured.is_empty() {
            return (configured, Vec::new());
        }
        match &self.relayed {
            Some((dns, search, until)) if *until > now => (dns.clone(), search.clone()),
            _ => (Vec::new(), Vec::new()),
        }
    }
}

/// The prefixes `snap` gives SLAAC interface `name`.
fn prefixes_of(snap: &Snapshot, name: &str) -> Vec<Ipv6Net> {
    snap.rules
        .iter()
        .filter(|r| r.slaac_interface() == Some(name))
        .map(|r| r.prefix)
        .collect()
}

/// The uplink's MTU, as the kernel shows it.
fn mtu_of(ifname: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|m| *m >= 1280)
}

impl Responder {
    /// The SLAAC interfaces this uplink's configuration names.
    fn slaac_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .opts
            .rules
            .iter()
            .filter_map(|r| r.slaac_interface().map(str::to_string))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub(super) fn slaac_due(&self) -> Option<Instant> {
        let configured = self
            .opts
            .rules
            .iter()
            .any(|r| r.slaac_interface().is_some());
        self.slaac.next_due(configured)
    }

    /// The timers: interfaces and prefixes followed, DAD windows closed, quiet stations
    /// probed, gone ones removed, advertisements sent.
    pub(super) async fn on_slaac_timer(&mut self) {
        let now = Instant::now();
        if now >= self.slaac.next_tick {
            self.slaac.next_tick = now + TICK;
            self.slaac_reconcile(now).await;
            self.slaac_poll(now).await;
        } else if self
            .slaac
            .ifaces
            .values()
            .any(|i| i.stations.next_deadline().is_some_and(|at| at <= now))
        {
            // A verification window closed: learn without waiting for the tick.
            self.slaac_poll(now).await;
        }
        self.slaac_send_due(now);
    }

    /// Open what is configured and present, close what is not, follow the prefixes.
    async fn slaac_reconcile(&mut self, now: Instant) {
        let snap = self.table.load();
        let names = self.slaac_names();
        let gone: Vec<String> = self
            .slaac
            .ifaces
            .iter()
            .filter(|(name, i)| {
                !names.contains(name)
                    || snap.downstream_named(name) != Some(i.index)
                    || snap.downstream.get(&i.index).and_then(|d| d.link_local)
                        != Some(i.link_local)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            let configured = names.contains(&name);
            if let Some(iface) = self.slaac.ifaces.remove(&name) {
                if !configured {
                    info!("{}: SLAAC on {name} ends (reloaded)", self.ifname);
                }
                self.slaac_close(&name, iface, !configured).await;
            }
        }
        for name in &names {
            if self.slaac.ifaces.contains_key(name) {
                continue;
            }
            let Some(index) = snap.downstream_named(name) else {
                if self.slaac.failed.insert(name.clone()) {
                    warn!(
                        "{}: SLAAC interface {name} does not exist (yet): waiting for it",
                        self.ifname
                    );
                }
                continue;
            };
            let down = &snap.downstream[&index];
            let (Some(mac), Some(link_local)) = (down.mac, down.link_local) else {
                if self.slaac.failed.insert(name.clone()) {
                    warn!("{}: SLAAC interface {name} has no MAC or no link-local address yet (is it up, with a port up?): waiting", self.ifname);
                }
                continue;
            };
            let reader = match reader::open(
                name,
                index,
                Capture::Guests,
                self.slaac.tx.clone(),
                self.slaac.dropped.clone(),
                true,
            ) {
                Ok(r) => r,
                Err(e) => {
                    if self.slaac.failed.insert(name.clone()) {
                        warn!(
                            "{}: cannot listen on SLAAC interface {name}: {e}",
                            self.ifname
                        );
                    }
                    continue;
                }
            };
            self.slaac.failed.remove(name);
            // Stale routes of ours on it: left by a crash (a clean stop removes them).
            match routes::flush_own_routes(&self.handle, Some(index)).await {
                Ok(0) => {}
                Ok(n) => {
                    info!("{name}: removed {n} stale route(s) of ours (left by an earlier run)")
                }
                Err(e) => warn!("{name}: could not remove stale routes of ours: {e}"),
            }
            info!(
                "{}: SLAAC on {name}: advertising {} from {link_local}",
                self.ifname,
                crate::status::list_nets(&prefixes_of(&snap, name))
            );
            // The guests the kernel knows there (it forwarded to them): asked at once, so that
            // a restart relearns them without waiting for the router to ask (their answers
            // are learned like any other).
            // Another router on the interface (radvd, networkd's IPv6SendRA) answers this at
            // once: it is warned about and counted from the start, not at its next RA.
            let all_routers = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
            let rs = RouterSolicit {
                eth_src: mac,
                eth_dst: ndp::multicast_mac(&all_routers),
                ip_src: link_local,
                ip_dst: all_routers,
                hop_limit: 255,
                code: 0,
                source_lladdr: Some(mac),
            };
            if !send_small(&reader, |b| rs.emit(b)) {
                self.counters.send_errors += 1;
            }
            let prefixes = prefixes_of(&snap, name);
            if let Ok(view) = netlink::kernel_view(&self.handle).await {
                self.slaac_checks(&view, name);
                let mut asked = 0;
                for n in view.neighbours.iter().filter(|n| {
                    n.ifindex == index && n.valid && prefixes.iter().any(|p| p.contains(&n.addr))
                }) {
                    let Some(lladdr) = n.lladdr else { continue };
                    let ns = NeighborSolicit {
                        eth_dst: lladdr,
                        ip_dst: n.addr,
                        ..NeighborSolicit::resolution(mac, link_local, n.addr)
                    };
                    if send_small(&reader, |b| ns.emit(b)) {
                        asked += 1;
                    }
                    if asked >= plan::Limits::default().total {
                        break;
                    }
                }
                if asked > 0 {
                    info!("{name}: asking the {asked} guest address(es) the kernel knows there");
                }
            }
            self.slaac.ifaces.insert(
                name.clone(),
                Iface {
                    index,
                    mac,
                    link_local,
                    reader,
                    stations: Stations::new(plan::Limits::default()),
                    ra: RaSchedule::new(now, u64::from(index) ^ seed()),
                    prefixes: Prefixes::default(),
                    foreign: BTreeMap::new(),
                },
            );
        }
        for (name, iface) in &mut self.slaac.ifaces {
            let now_prefixes = prefixes_of(&snap, name);
            if iface.prefixes.update(&now_prefixes) {
                info!(
                    "{name}: SLAAC prefixes now {}",
                    crate::status::list_nets(&now_prefixes)
                );
                iface.ra.soon(now);
            }
        }
        // The uplink socket: the router's RAs (DNS) and answers to relayed DAD.
        let want = (!self.slaac.ifaces.is_empty())
            .then_some(snap.uplink)
            .flatten();
        if self.slaac.uplink.as_ref().map(|(i, _)| *i) != want {
            self.slaac.uplink = want.and_then(|index| {
                reader::open(
                    &self.ifname,
                    index,
                    Capture::UplinkRouter,
                    self.slaac.tx.clone(),
                    self.slaac.dropped.clone(),
                    false,
                )
                .map_err(|e| warn!("{}: cannot read router advertisements: {e}", self.ifname))
                .ok()
                .map(|r| (index, r))
            });
        }
    }

    /// What SLAAC needs of the host, checked as an interface starts (the doctor explains
    /// more): forwarding on; an uplink configured by router advertisements keeps accepting
    /// them with forwarding on only with accept_ra=2.
    fn slaac_checks(&self, view: &netlink::KernelView, name: &str) {
        let ifname = &self.ifname;
        if routes::forwarding() == Some(false) {
            warn!(
                "{name}: IPv6 forwarding is off: the guests get addresses but no packet of theirs is routed; turn it on (sysctl -w net.ipv6.conf.all.forwarding=1, and accept_ra=2 on {ifname} first if it is configured by router advertisements)"
            );
        }
        let by_ra = view
            .index_of(ifname)
            .is_some_and(|i| view.default_routes_via(i).any(|r| r.protocol == "ra"));
        if by_ra && routes::accept_ra(ifname).is_some_and(|v| v != 2) {
            warn!(
                "{ifname} is configured by router advertisements but accept_ra is not 2: with forwarding on, the kernel ignores them and the uplink loses its default route and prefix when they expire; set sysctl -w net.ipv6.conf.{ifname}.accept_ra=2"
            );
        }
    }

    /// The stations' timers.
    async fn slaac_poll(&mut self, now: Instant) {
        let snap = self.table.load();
        let host = host_addresses(&snap);
        let names: Vec<String> = self.slaac.ifaces.keys().cloned().collect();
        for name in names {
            let Some(iface) = self.slaac.ifaces.get_mut(&name) else {
                continue;
            };
            let prefixes = iface.prefixes.live().to_vec();
            let ctx = plan::Context {
                prefixes: &prefixes,
                host: &host,
                gateways: &snap.gateways,
            };
            let poll = iface.stations.poll(now, &ctx);
            for (addr, mac) in &poll.probe {
                let ns = NeighborSolicit {
                    eth_dst: *mac,
                    ip_dst: *addr,
                    ..NeighborSolicit::resolution(iface.mac, iface.link_local, *addr)
                };
                if !send_small(&iface.reader, |b| ns.emit(b)) {
                    self.counters.send_errors += 1;
                }
            }
            let index = iface.index;
            for (addr, outcome) in poll.learned {
                self.slaac_outcome(&name, index, addr, outcome).await;
            }
            for addr in poll.gone {
                info!("{name}: {addr} is gone (probes unanswered): removing its route");
                self.slaac_unroute(&name, index, addr).await;
            }
        }
    }

    /// Send the advertisements that are due.
    fn slaac_send_due(&mut self, now: Instant) {
        if !self.slaac.ifaces.values().any(|i| i.ra.next_due() <= now) {
            return;
        }
        let snap = self.table.load();
        let mtu = mtu_of(&self.ifname);
        let names: Vec<String> = self.slaac.ifaces.keys().cloned().collect();
        for name in names {
            let (dns, search) = self.slaac.dns_for(&snap, &name, now);
            let Some(iface) = self.slaac.ifaces.get_mut(&name) else {
                continue;
            };
            let content = Content {
                mac: iface.mac,
                link_local: iface.link_local,
                mtu,
                dns,
                search,
            };
            while let Some(due) = iface.ra.due(now) {
                let (dst, solicited) = match due {
                    RaDue::Multicast => (None, false),
                    RaDue::Unicast(ip, mac) => (Some((ip, mac)), true),
                };
                let ra = plan::advert(&content, iface.prefixes.options(), dst, false);
                if dst.is_none() {
                    iface.prefixes.sent();
                }
                if send_ra(&iface.reader, &ra) {
                    self.counters.ras_sent += 1;
                    if solicited {
                        self.counters.rs_answered += 1;
                    }
                } else {
                    self.counters.send_errors += 1;
                }
            }
        }
    }

    async fn slaac_unroute(&mut self, name: &str, index: u32, addr: Ipv6Addr) {
        // A probe that confirmed it earlier no longer stands for it: without its route the
        // router's traffic would leave by the uplink again.
        self.cache.remove(&addr);
        match routes::del_host_route(&self.handle, addr, index).await {
            Ok(()) => self.counters.slaac_routes_removed += 1,
            Err(e) => warn!("{name}: could not remove the route of {addr}: {e}"),
        }
    }

    /// Stop advertising on `name`: a final RA (router lifetime 0, prefixes deprecated when
    /// `deprecate`, RFC 4861 6.2.5) and every route of ours there removed.
    async fn slaac_close(&mut self, name: &str, iface: Iface, deprecate: bool) {
        let snap = self.table.load();
        let (dns, search) = self.slaac.dns_for(&snap, name, Instant::now());
        let content = Content {
            mac: iface.mac,
            link_local: iface.link_local,
            mtu: mtu_of(&self.ifname),
            dns,
            search,
        };
        let mut prefixes = iface.prefixes.options();
        if deprecate {
            for p in &mut prefixes {
                p.valid_lifetime = 0;
                p.preferred_lifetime = 0;
            }
        }
        if send_ra(&iface.reader, &plan::advert(&content, prefixes, None, true)) {
            self.counters.ras_sent += 1;
        }
        match routes::flush_own_routes(&self.handle, Some(iface.index)).await {
            Ok(n) => self.counters.slaac_routes_removed += n as u64,
            Err(e) => warn!("{name}: could not remove our routes: {e}"),
        }
    }

    /// A clean stop: every SLAAC interface closed (final RA, routes removed).
    pub(super) async fn slaac_stop(&mut self) {
        let ifaces: Vec<(String, Iface)> = self.slaac.ifaces.drain().collect();
        for (name, iface) in ifaces {
            self.slaac_close(&name, iface, false).await;
        }
        self.slaac.uplink = None;
    }

    /// Fold the readers' count of frames dropped for a full queue into the counters.
    pub(super) fn count_slaac_drops(&mut self) {
        let n = self.slaac.dropped.swap(0, Ordering::Relaxed);
        self.counters.slaac_dropped += n;
    }
}

/// The host's own addresses that no guest may claim: the uplink's (the SLAAC interfaces'
/// own global addresses too, through the downstream links' link-locals being link-local).
fn host_addresses(snap: &Snapshot) -> Vec<Ipv6Addr> {
    snap.uplink_addrs.clone()
}

/// A seed for the RA jitter: differs between hosts and runs.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 16)
}
