//! What the SLAAC sockets hear: the guests' RS (answered), RA (another router: warned,
//! counted), DAD NS (defended at once, or relayed upstream), NS and NA (claims of addresses
//! by use, verified upstream before they are learned), and on the uplink the router's RA (its
//! DNS options, relayed) and the NA that answers a relayed DAD (the guest's DAD then fails).
//!
//! Owns: checking each frame (RFC 4861 6.1.1, 6.1.2, 7.1.1, 7.1.2: hop limit 255, code 0)
//! and acting on it through [`crate::decide::slaac`]'s tables; the NA that defends an address
//! downstream (RFC 4862 5.4.4).
//!
//! Must not: decide who may claim what (that is [`crate::decide::slaac`]) or keep state of
//! its own (it is [`super::Slaac`]'s).

use std::net::Ipv6Addr;
use std::time::Instant;

use tracing::{debug, info, warn};

use super::{host_addresses, send_small, Heard, Iface};
use crate::decide::slaac::{self as plan, Dad, Learned};
use crate::ndp::router::{
    RouterAdvert, RouterSolicit, ICMPV6_ROUTER_ADVERT, ICMPV6_ROUTER_SOLICIT,
};
use crate::ndp::{self, multicast_mac, solicited_node, NeighborAdvert, NeighborSolicit, ALL_NODES};
use crate::sources::netlink::routes;
use crate::uplink::Responder;

impl Responder {
    /// A frame from a SLAAC socket.
    pub(in crate::uplink) async fn on_slaac_heard(&mut self, heard: Heard) {
        match heard {
            Heard::Guests(index, frame) => self.on_guest_frame(index, &frame).await,
            Heard::Uplink(frame) => self.on_uplink_router_frame(&frame),
        }
        let now = Instant::now();
        self.slaac_send_due(now);
    }

    async fn on_guest_frame(&mut self, index: u32, frame: &[u8]) {
        let Some(name) = self
            .slaac
            .ifaces
            .iter()
            .find(|(_, i)| i.index == index)
            .map(|(n, _)| n.clone())
        else {
            return;
        };
        let now = Instant::now();
        let icmp_type = frame.get(ndp::ICMPV6_TYPE_OFFSET).copied().unwrap_or(0);
        let snap = self.table.load();
        let host = host_addresses(&snap);
        let Some(iface) = self.slaac.ifaces.get_mut(&name) else {
            return;
        };
        // RFC 4861 6.1.1, 6.1.2, 7.1.1, 7.1.2: hop limit 255 and code 0, or it came from off-link.
        let prefixes = iface.prefixes.live().to_vec();
        let ctx = plan::Context {
            prefixes: &prefixes,
            host: &host,
            gateways: &snap.gateways,
        };
        match icmp_type {
            ICMPV6_ROUTER_SOLICIT => {
                let Ok(rs) = RouterSolicit::parse(frame) else {
                    return;
                };
                if rs.hop_limit != 255 || rs.code != 0 || rs.eth_src == iface.mac {
                    return;
                }
                let mac = rs.source_lladdr.or(Some(rs.eth_src));
                iface.ra.solicited(rs.ip_src, mac, now);
            }
            ICMPV6_ROUTER_ADVERT => {
                let Ok(ra) = RouterAdvert::parse(frame) else {
                    return;
                };
                if ra.hop_limit != 255 || ra.eth_src == iface.mac || ra.ip_src == iface.link_local {
                    return;
                }
                self.counters.foreign_ras += 1;
                if iface.foreign.insert(ra.eth_src, ra.ip_src).is_none() {
                    warn!(
                        "{name}: another router advertises here ({} at {}): the guests may take its prefixes or routes instead of ours; stop it (radvd, systemd-networkd IPv6SendRA=, a guest forwarding) — see `ndp-responder doctor`",
                        ra.ip_src, ra.eth_src
                    );
                }
            }
            ndp::ICMPV6_NEIGHBOR_SOLICIT => {
                let Ok(ns) = NeighborSolicit::parse(frame) else {
                    return;
                };
                if ns.hop_limit != 255 || ns.code != 0 || ns.eth_src == iface.mac {
                    return;
                }
                if ns.ip_src.is_unspecified() {
                    if ns.target.is_unicast_link_local() {
                        return;
                    }
                    match iface.stations.dad(ns.target, ns.eth_src, now, &ctx) {
                        Dad::Defend(why) => {
                            self.counters.slaac_refused.add(why);
                            let na = defence(iface, ns.target);
                            if send_small(&iface.reader, |b| na.emit(b)) {
                                self.counters.dad_defended += 1;
                                info!("{name}: DAD of {} by {}: in use ({}), answered so the guest gives it up", ns.target, ns.eth_src, crate::status::Reason::reason(&why));
                            } else {
                                self.counters.send_errors += 1;
                            }
                        }
                        Dad::Relay => self.slaac_relay_dad(ns.target, ns.nonce),
                        Dad::Known => {}
                        Dad::Ignore(why) => self.counters.slaac_refused.add(why),
                    }
                    return;
                }
                if !ns.ip_src.is_unicast_link_local() {
                    let mac = ns.source_lladdr.unwrap_or(ns.eth_src);
                    let outcome = iface.stations.seen(ns.ip_src, mac, now, &ctx);
                    let index = iface.index;
                    self.slaac_outcome(&name, index, ns.ip_src, outcome).await;
                }
            }
            ndp::ICMPV6_NEIGHBOR_ADVERT => {
                let Ok(na) = NeighborAdvert::parse(frame) else {
                    return;
                };
                if na.hop_limit != 255 || na.code != 0 || na.eth_src == iface.mac {
                    return;
                }
                if na.target.is_unicast_link_local() || na.target.is_multicast() {
                    return;
                }
                let mac = na.target_lladdr.unwrap_or(na.eth_src);
                let outcome = iface.stations.seen(na.target, mac, now, &ctx);
                let index = iface.index;
                self.slaac_outcome(&name, index, na.target, outcome).await;
            }
            _ => {}
        }
    }

    /// Relay a guest's DAD upstream (RFC 4389 4.1): the same question, from the uplink (also
    /// asked for an address a guest uses without a DAD we saw, before it is learned).
    fn slaac_relay_dad(&mut self, target: Ipv6Addr, nonce: Option<[u8; 6]>) {
        let snap = self.table.load();
        let Some((_, uplink)) = &self.slaac.uplink else {
            return;
        };
        let group = solicited_node(&target);
        let relayed = NeighborSolicit {
            eth_src: snap.mac,
            eth_dst: multicast_mac(&group),
            ip_src: Ipv6Addr::UNSPECIFIED,
            ip_dst: group,
            hop_limit: 255,
            code: 0,
            target,
            source_lladdr: None,
            nonce,
        };
        if send_small(uplink, |b| relayed.emit(b)) {
            self.counters.dad_relayed += 1;
            debug!("relayed the DAD of {target} upstream");
        } else {
            self.counters.send_errors += 1;
        }
    }

    /// A frame from the uplink socket: an RA (its DNS options) or an NA (a relayed DAD
    /// answered there).
    fn on_uplink_router_frame(&mut self, frame: &[u8]) {
        let now = Instant::now();
        let snap = self.table.load();
        match frame.get(ndp::ICMPV6_TYPE_OFFSET).copied() {
            Some(ICMPV6_ROUTER_ADVERT) => {
                let Ok(ra) = RouterAdvert::parse(frame) else {
                    return;
                };
                if ra.eth_src == snap.mac {
                    return;
                }
                if let Some((dns, search, lifetime)) = plan::relayable_dns(&ra) {
                    self.slaac.relayed = Some((dns, search, now + lifetime));
                }
            }
            Some(ndp::ICMPV6_NEIGHBOR_ADVERT) => {
                let Ok(na) = NeighborAdvert::parse(frame) else {
                    return;
                };
                if na.hop_limit != 255 || na.eth_src == snap.mac {
                    return;
                }
                for (name, iface) in &mut self.slaac.ifaces {
                    if let Some(guest) = iface.stations.upstream_answer(&na.target, now) {
                        let defence = defence(iface, na.target);
                        if send_small(&iface.reader, |b| defence.emit(b)) {
                            self.counters.dad_defended += 1;
                        }
                        self.counters.slaac_refused.add(plan::Refused::FailedDad);
                        info!(
                            "{name}: DAD of {} by {guest} failed upstream ({} at {} holds it): answered so the guest gives it up",
                            na.target, na.ip_src, na.eth_src
                        );
                    }
                }
            }
            _ => {}
        }
    }

    /// Act on a claim's outcome: route a new address, count a refusal.
    pub(super) async fn slaac_outcome(
        &mut self,
        name: &str,
        index: u32,
        addr: Ipv6Addr,
        outcome: Result<Learned, plan::Refused>,
    ) {
        match outcome {
            Ok(Learned::Known | Learned::Pending) => {}
            // Asked upstream before it is believed (see `Learned::Verify`).
            Ok(Learned::Verify) => self.slaac_relay_dad(addr, None),
            Ok(Learned::New) => match routes::add_host_route(&self.handle, addr, index).await {
                Ok(()) => {
                    self.counters.slaac_routes_added += 1;
                    info!("{name}: learned {addr}: routed to {name}, answered upstream");
                }
                Err(e) => {
                    warn!("{name}: learned {addr} but could not route it: {e}");
                    if let Some(i) = self.slaac.ifaces.get_mut(name) {
                        i.stations.remove(&addr);
                    }
                }
            },
            Err(plan::Refused::OutsidePrefix) if addr.is_unicast_link_local() => {}
            Err(why) => {
                self.counters.slaac_refused.add(why);
                debug!(
                    "{name}: {addr} not learned: {}",
                    crate::status::Reason::reason(&why)
                );
            }
        }
    }
}

/// The NA that makes a guest's DAD fail (RFC 4862 5.4.4): to all nodes, S clear.
fn defence(iface: &Iface, target: Ipv6Addr) -> NeighborAdvert {
    NeighborAdvert {
        eth_src: iface.mac,
        eth_dst: multicast_mac(&ALL_NODES),
        ip_src: iface.link_local,
        ip_dst: ALL_NODES,
        hop_limit: 255,
        code: 0,
        router: true,
        solicited: false,
        override_flag: false,
        target,
        target_lladdr: Some(iface.mac),
    }
}
