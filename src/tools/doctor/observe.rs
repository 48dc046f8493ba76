//! Reading a host for `doctor`: the kernel's view of the uplink, the sysctls, other
//! responders in the same network namespace. Read-only.
//!
//! Owns: [`observe`].
//!
//! Must not: change anything on the host, or judge what it read.

use std::fs;

use ipnet::Ipv6Net;

use crate::sources::netlink::{self, routes};

use super::diagnose::probe_address;
use super::*;

/// Other NDP responders that answer on the same interface.
const OTHER_RESPONDERS: [&str; 2] = ["ndppd", "ndpresponder"];

/// Processes named like another responder that share our network namespace.
pub(super) fn other_responders() -> Vec<(String, u32)> {
    processes_here(&OTHER_RESPONDERS)
}

/// Processes whose name is one of `names` and that share our network namespace (a process
/// we may not inspect, or in another namespace, works elsewhere): (name, pid).
pub(super) fn processes_here(names: &[&str]) -> Vec<(String, u32)> {
    let ours = fs::read_link("/proc/self/ns/net").ok();
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let comm = comm.trim();
        if !names.contains(&comm) {
            continue;
        }
        if fs::read_link(entry.path().join("ns/net")).ok() == ours && ours.is_some() {
            found.push((comm.to_string(), pid));
        }
    }
    found
}

/// Gather everything [`diagnose`] needs. Read-only.
pub async fn observe(
    handle: &netlink::Handle,
    ifname: &str,
    prefixes: &[Ipv6Net],
    slaac: &[String],
) -> Result<Observed, String> {
    let mut obs = Observed {
        ifname: ifname.to_string(),
        ..Observed::default()
    };
    let view = netlink::kernel_view(handle)
        .await
        .map_err(|e| format!("asking the kernel about {ifname}: {e}"))?;
    let Some(index) = view.index_of(ifname) else {
        return Ok(obs);
    };
    let link = &view.links[&index];
    obs.exists = true;
    obs.up = link.up;
    obs.mac = link.mac;
    obs.link_local = view.link_local_of(index);
    obs.global_addrs = view
        .addrs_of(index)
        .filter(|a| !a.is_unicast_link_local())
        .collect();
    obs.default_routes = view
        .default_routes_via(index)
        .filter_map(|r| {
            Some(DefaultRoute {
                gateway: r.gateway?,
                learned_by: r.protocol.clone(),
            })
        })
        .collect();
    obs.forwarding = routes::forwarding();
    obs.accept_ra = routes::accept_ra(ifname);
    let proxy_if = routes::ipv6_sysctl(ifname, "proxy_ndp");
    let proxy_all = routes::ipv6_sysctl("all", "proxy_ndp");
    obs.proxy_ndp = match (proxy_if, proxy_all) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) != 0 || b.unwrap_or(0) != 0),
    };
    obs.proxy_entries = netlink::proxy_entries(handle, index)
        .await
        .map_err(|e| format!("reading proxy entries of {ifname}: {e}"))?;
    for prefix in prefixes {
        let oif = view.route_for(&probe_address(prefix)).and_then(|r| r.oif);
        let name = oif.map(|i| {
            view.links
                .get(&i)
                .map_or(format!("#{i}"), |l| l.name.clone())
        });
        obs.prefix_routes.push((*prefix, name));
    }
    for route in &view.routes {
        let on_link = route.oif == Some(index)
            && route.gateway.is_none()
            && route.dst.prefix_len() > 0
            && !route.dst.addr().is_unicast_link_local();
        if on_link && !obs.on_link.contains(&route.dst) {
            obs.on_link.push(route.dst);
        }
    }
    obs.responders = other_responders();
    let own = routes::own_routes(handle)
        .await
        .map_err(|e| format!("reading the routes of ndp-responder: {e}"))?;
    obs.slaac = slaac
        .iter()
        .map(|name| super::slaac::observe_side(&view, name, &own))
        .collect();
    obs.stray_routes = super::slaac::stray_routes(&view, &own, slaac);
    Ok(obs)
}
