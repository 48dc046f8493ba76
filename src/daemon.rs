//! The event loop: wires the packet socket, the target table and the kernel's change events.
//!
//! Owns: start-up (resolve the uplink, open the socket, load the first snapshot), the loop
//! that answers solicitations, the refresh of uplink facts when netlink reports a change, the
//! counters, and a clean stop on SIGINT/SIGTERM.
//!
//! Must not: parse packets or decide answers itself; that is [`wire`] and [`policy`]. The
//! whole journey of one packet is [`Responder::handle_frame`].

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ipnet::Ipv6Net;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{debug, info, warn};

use crate::link::{self, Capture, PacketSocket};
use crate::netlink::{self, LinkInfo, UplinkFacts};
use crate::policy::{self, Decision, Settings};
use crate::targets::{Snapshot, TargetTable};
use crate::wire::{self, NeighborSolicit};

/// How long to let a burst of netlink events settle before reading the uplink facts again.
const REFRESH_COALESCE: Duration = Duration::from_millis(20);

/// What the daemon is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub ifname: String,
    pub prefixes: Vec<Ipv6Net>,
    pub settings: Settings,
}

/// Why the daemon could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Link(#[from] netlink::LinkError),
    #[error(transparent)]
    Socket(#[from] link::OpenError),
    #[error("netlink: {0}")]
    Netlink(String),
    #[error("the uplink {0} disappeared: {1}")]
    UplinkGone(String, io::Error),
}

/// Per-reason counters, logged at exit.
#[derive(Debug, Default)]
pub struct Counters {
    pub seen: u64,
    pub answered: u64,
    pub send_errors: u64,
    pub ignored: BTreeMap<&'static str, u64>,
    pub invalid: BTreeMap<&'static str, u64>,
}

impl Counters {
    fn summary(&self) -> String {
        let mut s = format!(
            "NS seen {}, answered {}, send errors {}",
            self.seen, self.answered, self.send_errors
        );
        for (label, map) in [("ignored", &self.ignored), ("invalid", &self.invalid)] {
            if !map.is_empty() {
                let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
                s.push_str(&format!("; {label}: {}", parts.join(" ")));
            }
        }
        s
    }
}

/// The packet path and its state.
pub struct Responder {
    socket: AsyncFd<PacketSocket>,
    table: Arc<TargetTable>,
    settings: Settings,
    pub counters: Counters,
}

impl Responder {
    /// Drain every queued frame; returns when the socket would block.
    fn drain(&mut self) -> Result<(), io::Error> {
        let mut buf = [0u8; link::RECV_BUF_LEN];
        loop {
            match self.socket.get_ref().recv(&mut buf) {
                Ok(Some(frame)) => self.handle_frame(frame),
                Ok(None) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) => {
                    warn!("uplink is down; answering resumes when it comes back up");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One frame's journey: parse -> decide -> emit -> send.
    pub fn handle_frame(&mut self, frame: &[u8]) {
        self.counters.seen += 1;
        let ns = match NeighborSolicit::parse(frame) {
            Ok(ns) => ns,
            Err(e) => {
                *self.counters.invalid.entry(e.reason()).or_default() += 1;
                debug!("dropped malformed NS: {e}");
                return;
            }
        };
        let snap = self.table.load();
        match policy::decide(&ns, &snap, &self.settings) {
            Decision::Answer {
                kind,
                prefix,
                advert,
            } => {
                let mut out = [0u8; wire::MAX_EMIT_LEN];
                let sent = advert
                    .emit(&mut out)
                    .map_err(|_| io::Error::other("advert does not fit the buffer"))
                    .and_then(|len| self.socket.get_ref().send(&out[..len]));
                match sent {
                    Ok(()) => {
                        self.counters.answered += 1;
                        info!(
                            "answered NS who-has {} from {} ({}, prefix {}): NA src {} dst {} flags {}",
                            ns.target,
                            ns.ip_src,
                            kind.label(),
                            prefix,
                            advert.ip_src,
                            advert.ip_dst,
                            flags(&advert)
                        );
                    }
                    Err(e) => {
                        self.counters.send_errors += 1;
                        warn!("could not send NA for {}: {e}", ns.target);
                    }
                }
            }
            Decision::Ignore(kind, why) => {
                *self.counters.ignored.entry(why.reason()).or_default() += 1;
                debug!(
                    "ignored NS who-has {} from {} ({}): {why}",
                    ns.target,
                    ns.ip_src,
                    kind.label()
                );
            }
            Decision::Invalid(why) => {
                *self.counters.invalid.entry(why.reason()).or_default() += 1;
                debug!(
                    "dropped invalid NS who-has {} from {}: {why}",
                    ns.target, ns.ip_src
                );
            }
        }
    }
}

fn flags(na: &wire::NeighborAdvert) -> String {
    let mut f = String::new();
    for (set, c) in [
        (na.router, 'R'),
        (na.solicited, 'S'),
        (na.override_flag, 'O'),
    ] {
        if set {
            f.push(c);
        }
    }
    if f.is_empty() {
        f.push('-');
    }
    f
}

fn snapshot(info: &LinkInfo, facts: &UplinkFacts, prefixes: &[Ipv6Net]) -> Snapshot {
    Snapshot {
        mac: if facts.mac.is_zero() {
            info.mac
        } else {
            facts.mac
        },
        link_local: facts.link_local,
        prefixes: prefixes.to_vec(),
        uplink_addrs: facts.addrs.clone(),
        gateways: facts.gateways.clone(),
    }
}

fn describe(snap: &Snapshot) -> String {
    let list = |v: &[std::net::Ipv6Addr]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    format!(
        "MAC {}, own addresses: {}; gateways: {}",
        snap.mac,
        list(&snap.uplink_addrs),
        list(&snap.gateways)
    )
}

/// Run until SIGINT or SIGTERM. Must be called inside a tokio runtime with IO and time enabled.
pub async fn run(opts: Options) -> Result<Counters, DaemonError> {
    let (conn, handle) = netlink::connect().map_err(|e| DaemonError::Netlink(e.to_string()))?;
    tokio::spawn(conn);
    let info = netlink::resolve_link(&handle, &opts.ifname).await?;
    let socket = PacketSocket::open(&info.name, info.index, Capture::Solicitations)?;
    let (watch_conn, mut events) =
        netlink::watch().map_err(|e| DaemonError::Netlink(e.to_string()))?;
    tokio::spawn(watch_conn);

    let facts = netlink::uplink_facts(&handle, info.index)
        .await
        .map_err(|e| DaemonError::Netlink(e.to_string()))?;
    let table = Arc::new(TargetTable::new(snapshot(&info, &facts, &opts.prefixes)));
    let prefixes: Vec<String> = opts.prefixes.iter().map(|p| p.to_string()).collect();
    info!(
        "answering on {} for {} (source {}, router flag {}); {}",
        info.name,
        prefixes.join(", "),
        opts.settings.source,
        if opts.settings.router { "on" } else { "off" },
        describe(&table.load())
    );
    if !facts.up {
        warn!("{} is down; answering starts when it comes up", info.name);
    }

    let mut responder = Responder {
        // SAFETY: PacketSocket owns its descriptor; it lives inside the AsyncFd and is closed
        // only when the AsyncFd (and thus the registration) is dropped.
        socket: unsafe { AsyncFd::register(socket) }.map_err(|e| {
            DaemonError::UplinkGone(info.name.clone(), io::Error::other(e.to_string()))
        })?,
        table: table.clone(),
        settings: opts.settings,
        counters: Counters::default(),
    };
    let mut sigterm = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut sigint = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    let mut refresh_at: Option<tokio::time::Instant> = None;

    loop {
        let refresh = async {
            match refresh_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sigterm.recv() => { info!("SIGTERM received, stopping"); break; }
            _ = sigint.recv() => { info!("SIGINT received, stopping"); break; }
            ready = responder.socket.readable() => {
                let mut guard = ready.map_err(|e| DaemonError::UplinkGone(info.name.clone(), e))?;
                guard.clear_ready();
                drop(guard);
                responder.drain().map_err(|e| DaemonError::UplinkGone(info.name.clone(), e))?;
            }
            Some(_) = events.next() => {
                refresh_at.get_or_insert_with(|| tokio::time::Instant::now() + REFRESH_COALESCE);
            }
            () = refresh => {
                refresh_at = None;
                match netlink::uplink_facts(&handle, info.index).await {
                    Ok(facts) => {
                        let next = snapshot(&info, &facts, &opts.prefixes);
                        let current = table.load();
                        if *current != next {
                            if current.gateways != next.gateways
                                || current.uplink_addrs != next.uplink_addrs
                                || current.mac != next.mac
                            {
                                info!("uplink {} changed: {}", info.name, describe(&next));
                            }
                            table.store(next);
                        }
                    }
                    Err(e) => warn!("could not refresh the facts of {}: {e}", info.name),
                }
            }
        }
    }
    info!("stopped: {}", responder.counters.summary());
    Ok(responder.counters)
}
