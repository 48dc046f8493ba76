//! The optional active probe of the gateway (`doctor --probe ADDR`): does it answer a
//! solicitation from the test address, and from the link-local address?
//!
//! Owns: sending at most [`PROBE_ATTEMPTS`] solicitations per source and waiting for the
//! gateway's advertisement.
//!
//! Must not: send anything unless asked with `--probe`.

use std::net::Ipv6Addr;
use std::time::Duration;

use serde::Serialize;
use tokio::io::unix::AsyncFd;

use crate::link::{Capture, PacketSocket, RECV_BUF_LEN};
use crate::ndp::{self, MacAddr, NeighborAdvert, NeighborSolicit};
use crate::sources::netlink;

/// Solicitations sent per source policy by `--probe`.
pub const PROBE_ATTEMPTS: u32 = 3;
/// How long each probe solicitation waits for the gateway's advertisement.
pub(super) const PROBE_WAIT: Duration = Duration::from_millis(700);

/// Whether the gateway answered an NS sent from one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    /// "target" or "link-local"
    pub policy: &'static str,
    pub source: Ipv6Addr,
    pub answered: bool,
    pub sent: u32,
}

/// Send up to [`PROBE_ATTEMPTS`] NS for `gateway` from each source policy and report whether
/// the gateway answered each.
pub async fn probe(
    ifname: &str,
    mac: MacAddr,
    test_addr: Ipv6Addr,
    link_local: Option<Ipv6Addr>,
    gateway: Ipv6Addr,
) -> Result<Vec<ProbeResult>, String> {
    let index = netlink::ifindex(ifname).ok_or_else(|| format!("no interface named '{ifname}'"))?;
    let socket =
        PacketSocket::open(ifname, index, Capture::Advertisements).map_err(|e| e.to_string())?;
    // SAFETY: the socket owns its descriptor and lives as long as the AsyncFd.
    let socket = unsafe { AsyncFd::register(socket) }.map_err(|e| e.to_string())?;
    let mut sources = vec![("target", test_addr)];
    if let Some(ll) = link_local {
        sources.push(("link-local", ll));
    }
    let mut results = Vec::new();
    for (policy, source) in sources {
        let mut result = ProbeResult {
            policy,
            source,
            answered: false,
            sent: 0,
        };
        let ns = NeighborSolicit::resolution(mac, source, gateway);
        let mut frame = [0u8; ndp::MAX_EMIT_LEN];
        let len = ns
            .emit(&mut frame)
            .map_err(|_| "NS does not fit".to_string())?;
        while result.sent < PROBE_ATTEMPTS && !result.answered {
            socket
                .get_ref()
                .send(&frame[..len])
                .map_err(|e| format!("sending the probe on {ifname}: {e}"))?;
            result.sent += 1;
            let wait = wait_for_advert(&socket, gateway, source);
            result.answered = tokio::time::timeout(PROBE_WAIT, wait)
                .await
                .unwrap_or(false);
        }
        results.push(result);
    }
    Ok(results)
}

/// True once an NA for `target` addressed to `to` arrives.
pub(super) async fn wait_for_advert(
    socket: &AsyncFd<PacketSocket>,
    target: Ipv6Addr,
    to: Ipv6Addr,
) -> bool {
    let mut buf = [0u8; RECV_BUF_LEN];
    loop {
        let Ok(mut guard) = socket.readable().await else {
            return false;
        };
        match guard.try_io(|s| {
            s.get_ref()
                .recv(&mut buf)
                .map(|f| f.map(NeighborAdvert::parse))
        }) {
            Ok(Ok(Some(Ok(na)))) if na.target == target && na.ip_dst == to => return true,
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return false,
            Err(_would_block) => {}
        }
    }
}
