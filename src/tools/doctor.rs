//! `ndp-responder doctor`: find out why container IPv6 does not work on a real host.
//!
//! Owns: gathering what the kernel says about the uplink ([`observe`]), judging it
//! ([`diagnose`], a pure function with a unit test per finding), the optional active probe of
//! the gateway ([`probe`]), and rendering the findings as text or JSON.
//!
//! Must not: change anything on the host. The probe sends at most [`PROBE_ATTEMPTS`] Neighbor
//! Solicitations per source policy, and only when asked with `--probe`.

use std::fmt;
use std::fs;
use std::net::Ipv6Addr;
use std::path::Path;
use std::time::Duration;

use ipnet::Ipv6Net;
use serde::Serialize;
use tokio::io::unix::AsyncFd;

use crate::link::{Capture, PacketSocket, RECV_BUF_LEN};
use crate::ndp::{self, MacAddr, NeighborAdvert, NeighborSolicit};
use crate::sources::netlink;

/// Solicitations sent per source policy by `--probe`.
pub const PROBE_ATTEMPTS: u32 = 3;
/// How long each probe solicitation waits for the gateway's advertisement.
const PROBE_WAIT: Duration = Duration::from_millis(700);

/// Other NDP responders that answer on the same interface.
const OTHER_RESPONDERS: [&str; 2] = ["ndppd", "ndpresponder"];

/// A default route through the uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute {
    pub gateway: Ipv6Addr,
    /// How it was learned: "ra" (router advertisement), "static", "boot", "dhcp", ...
    pub learned_by: String,
}

/// Everything `doctor` looks at, gathered once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub ifname: String,
    pub exists: bool,
    pub up: bool,
    pub mac: Option<MacAddr>,
    pub global_addrs: Vec<Ipv6Addr>,
    pub link_local: Option<Ipv6Addr>,
    pub default_routes: Vec<DefaultRoute>,
    /// net.ipv6.conf.all.forwarding
    pub forwarding: Option<bool>,
    /// net.ipv6.conf.IFACE.accept_ra
    pub accept_ra: Option<u8>,
    /// net.ipv6.conf.IFACE.proxy_ndp or .all.proxy_ndp
    pub proxy_ndp: Option<bool>,
    /// Kernel proxy neighbour entries on the uplink.
    pub proxy_entries: Vec<Ipv6Addr>,
    /// For each prefix, the interface a packet into it leaves by (None: no route).
    pub prefix_routes: Vec<(Ipv6Net, Option<String>)>,
    /// Other responders running in this network namespace: (name, pid).
    pub responders: Vec<(String, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Warning,
    Problem,
}

/// One thing `doctor` found, with the fix when there is something to fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// A stable identifier of the check, e.g. "forwarding".
    pub check: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: &'static str, message: String) -> Self {
        Finding {
            severity: Severity::Ok,
            check,
            message,
            fix: None,
        }
    }
    fn bad(severity: Severity, check: &'static str, message: String, fix: String) -> Self {
        Finding {
            severity,
            check,
            message,
            fix: Some(fix),
        }
    }
}

/// Judge what was observed. Pure: every finding has a unit test below.
pub fn diagnose(obs: &Observed, prefixes: &[Ipv6Net]) -> Vec<Finding> {
    use Severity::{Problem, Warning};
    let ifname = &obs.ifname;
    let mut out = Vec::new();
    if !obs.exists {
        out.push(Finding::bad(
            Problem,
            "interface",
            format!("there is no interface named '{ifname}'"),
            "list the interfaces with `ip link` and pass the uplink with -i".into(),
        ));
        return out;
    }

    match (obs.up, obs.mac) {
        (_, None) => out.push(Finding::bad(
            Problem,
            "interface",
            format!("{ifname} has no Ethernet MAC address"),
            "ndp-responder needs an Ethernet-like uplink (not a tunnel or loopback)".into(),
        )),
        (false, Some(mac)) => out.push(Finding::bad(
            Problem,
            "link",
            format!("{ifname} (MAC {mac}) is down"),
            format!("ip link set {ifname} up"),
        )),
        (true, Some(mac)) => out.push(Finding::ok("link", format!("{ifname} is up, MAC {mac}"))),
    }

    let globals = join(&obs.global_addrs);
    match obs.link_local {
        Some(ll) => out.push(Finding::ok(
            "addresses",
            format!("link-local {ll}; global {globals}"),
        )),
        None => out.push(Finding::bad(
            Warning,
            "addresses",
            format!("{ifname} has no link-local address (global {globals})"),
            format!(
                "sysctl -w net.ipv6.conf.{ifname}.addr_gen_mode=0 and bring {ifname} down and up"
            ),
        )),
    }

    if obs.default_routes.is_empty() {
        out.push(Finding::bad(
            Problem,
            "gateway",
            format!("no IPv6 default route leaves through {ifname}"),
            format!("ip -6 route add default via GATEWAY dev {ifname} (your provider's gateway)"),
        ));
    }
    for route in &obs.default_routes {
        out.push(Finding::ok(
            "gateway",
            format!(
                "default gateway {} (learned from {})",
                route.gateway,
                learned_by(&route.learned_by)
            ),
        ));
        for prefix in prefixes.iter().filter(|p| p.contains(&route.gateway)) {
            out.push(Finding::bad(
                Warning,
                "prefix_covers_gateway",
                format!("{prefix} covers the gateway {}", route.gateway),
                "ndp-responder never answers for the gateway, but narrow the prefix to your containers' range".into(),
            ));
        }
    }

    match obs.forwarding {
        Some(true) => out.push(Finding::ok("forwarding", "IPv6 forwarding is on".into())),
        Some(false) => out.push(Finding::bad(
            Problem,
            "forwarding",
            "IPv6 forwarding is off: the host will not pass packets to the containers".into(),
            "sysctl -w net.ipv6.conf.all.forwarding=1 (and persist it in /etc/sysctl.d/)".into(),
        )),
        None => {}
    }

    let ra_routes = obs.default_routes.iter().any(|r| r.learned_by == "ra");
    if obs.forwarding == Some(true) && ra_routes && obs.accept_ra != Some(2) {
        out.push(Finding::bad(
            Problem,
            "accept_ra",
            format!(
                "the default route comes from router advertisements, but with forwarding on {ifname} ignores them (accept_ra={}): the route expires",
                obs.accept_ra.map_or("?".into(), |v| v.to_string())
            ),
            format!("sysctl -w net.ipv6.conf.{ifname}.accept_ra=2"),
        ));
    }

    let proxied: Vec<Ipv6Addr> = obs
        .proxy_entries
        .iter()
        .filter(|a| prefixes.iter().any(|p| p.contains(*a)))
        .copied()
        .collect();
    if !proxied.is_empty() {
        let list = join(&proxied);
        let state = if obs.proxy_ndp == Some(true) {
            "on"
        } else {
            "off, but armed"
        };
        out.push(Finding::bad(
            Warning,
            "proxy_ndp",
            format!("the kernel proxies NDP for {list} on {ifname} (proxy_ndp {state}): it answers from link-local, racing ndp-responder"),
            format!("ip -6 neigh del proxy ADDRESS dev {ifname} for each, and sysctl -w net.ipv6.conf.{ifname}.proxy_ndp=0"),
        ));
    }

    for (name, pid) in &obs.responders {
        out.push(Finding::bad(
            Warning,
            "other_responder",
            format!("{name} (pid {pid}) runs in this network namespace and may answer for the same prefixes from link-local"),
            format!("stop it (systemctl disable --now {name}) before running ndp-responder"),
        ));
    }

    for (prefix, oif) in &obs.prefix_routes {
        match oif {
            None => out.push(Finding::bad(
                Problem,
                "route",
                format!("nothing routes {prefix}: packets for the containers would be dropped"),
                format!("route it to the container bridge: ip -6 route add {prefix} dev BRIDGE"),
            )),
            Some(dev) if dev == ifname => out.push(Finding::bad(
                Problem,
                "route",
                format!("{prefix} is routed out of the uplink {ifname}: forwarded packets would loop back"),
                format!("route it to the container bridge (e.g. docker network create --ipv6 --subnet {prefix} ...) or: ip -6 route add {prefix} dev BRIDGE"),
            )),
            Some(dev) => out.push(Finding::ok("route", format!("{prefix} is routed to {dev}"))),
        }
    }
    out
}

fn learned_by(protocol: &str) -> &str {
    match protocol {
        "ra" => "router advertisements",
        "static" => "static configuration",
        "boot" => "configuration at boot or by hand",
        "dhcp" => "DHCPv6",
        other => other,
    }
}

/// The address lists of findings read like those of the daemon's log and status.
use crate::status::list as join;

/// An address inside `prefix` that is unlikely to be assigned locally (the second-to-last),
/// so that a route lookup shows where forwarded packets go.
fn probe_address(prefix: &Ipv6Net) -> Ipv6Addr {
    if prefix.prefix_len() >= 127 {
        return prefix.addr();
    }
    Ipv6Addr::from(u128::from(prefix.broadcast()) - 1)
}

fn read_sysctl(path: &str) -> Option<u8> {
    fs::read_to_string(Path::new("/proc/sys").join(path))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Processes named like another responder that share our network namespace.
fn other_responders() -> Vec<(String, u32)> {
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
        if !OTHER_RESPONDERS.contains(&comm) {
            continue;
        }
        // A process we may not inspect, or in another namespace, answers elsewhere.
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
    obs.forwarding = read_sysctl("net/ipv6/conf/all/forwarding").map(|v| v != 0);
    obs.accept_ra = read_sysctl(&format!("net/ipv6/conf/{ifname}/accept_ra"));
    let proxy_if = read_sysctl(&format!("net/ipv6/conf/{ifname}/proxy_ndp"));
    let proxy_all = read_sysctl("net/ipv6/conf/all/proxy_ndp");
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
    obs.responders = other_responders();
    Ok(obs)
}

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
async fn wait_for_advert(socket: &AsyncFd<PacketSocket>, target: Ipv6Addr, to: Ipv6Addr) -> bool {
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

/// The verdict of probe results, as findings.
pub fn judge_probe(results: &[ProbeResult], gateway: Ipv6Addr) -> Vec<Finding> {
    let answered = |policy| results.iter().any(|r| r.policy == policy && r.answered);
    let mut out = Vec::new();
    for r in results {
        let what = format!(
            "gateway {gateway} {} an NS from {} ({} policy, {} sent)",
            if r.answered {
                "answered"
            } else {
                "did not answer"
            },
            r.source,
            r.policy,
            r.sent
        );
        out.push(Finding::ok("probe", what));
    }
    if !answered("target") {
        out.push(Finding::bad(
            Severity::Problem,
            "probe",
            format!(
                "the gateway ignores NDP from the test address {}",
                results.first().map_or(Ipv6Addr::UNSPECIFIED, |r| r.source)
            ),
            "check that the address is in the range your provider assigned to this host".into(),
        ));
    } else if results.iter().any(|r| r.policy == "link-local") && !answered("link-local") {
        out.push(Finding::ok(
            "probe",
            "your provider filters link-local-sourced NDP from this host: keep --source target (the default); proxy_ndp and ndppd cannot work here".into(),
        ));
    }
    out
}

/// The report: findings plus a one-word verdict.
#[derive(Debug, Serialize)]
pub struct Report {
    pub interface: String,
    pub healthy: bool,
    pub findings: Vec<Finding>,
    /// What `--probe` observed, per source policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<Vec<ProbeResult>>,
}

impl Report {
    pub fn new(interface: &str, findings: Vec<Finding>) -> Self {
        Report {
            interface: interface.to_string(),
            healthy: findings.iter().all(|f| f.severity == Severity::Ok),
            findings,
            probe: None,
        }
    }

    /// Human-readable text, coloured when `colour`.
    pub fn render(&self, colour: bool) -> String {
        let paint = |code: &str, text: &str| {
            if colour {
                format!("\x1b[{code}m{text}\x1b[0m")
            } else {
                text.to_string()
            }
        };
        let mut s = String::new();
        for f in &self.findings {
            let tag = match f.severity {
                Severity::Ok => paint("32", "ok     "),
                Severity::Warning => paint("33", "warning"),
                Severity::Problem => paint("31", "problem"),
            };
            s.push_str(&format!("[{tag}] {}\n", f.message));
            if let Some(fix) = &f.fix {
                s.push_str(&format!("          fix: {fix}\n"));
            }
        }
        let problems = self
            .findings
            .iter()
            .filter(|f| f.severity != Severity::Ok)
            .count();
        if problems == 0 {
            s.push_str("Nothing wrong found.\n");
        } else {
            s.push_str(&format!("{problems} thing(s) to fix.\n"));
        }
        s
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Problem => "problem",
        })
    }
}

/// What `doctor` was asked.
#[derive(Debug, Clone)]
pub struct Request {
    pub ifname: String,
    pub prefixes: Vec<Ipv6Net>,
    pub probe: Option<Ipv6Addr>,
    pub json: bool,
}

/// Run the checks (and the probe, if asked), print the report; exit 0 when nothing is wrong,
/// 1 when something is, 2 when doctor itself could not run.
pub fn run(req: Request) -> std::process::ExitCode {
    use std::io::IsTerminal;
    use std::process::ExitCode;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ndp-responder doctor: cannot start the event loop: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async {
        let handle = netlink::connect()
            .await
            .map_err(|e| format!("opening netlink: {e}"))?;
        let obs = observe(&handle, &req.ifname, &req.prefixes).await?;
        let mut findings = diagnose(&obs, &req.prefixes);
        let mut probed = None;
        if let Some(test_addr) = req.probe {
            let (results, verdict) = run_probe(&req, &obs, test_addr).await;
            findings.extend(verdict);
            probed = results;
        }
        Ok::<_, String>((findings, probed))
    });
    let (findings, probed) = match outcome {
        Ok(f) => f,
        Err(e) => {
            eprintln!("ndp-responder doctor: {e}");
            return ExitCode::from(2);
        }
    };
    let mut report = Report::new(&req.ifname, findings);
    report.probe = probed;
    if req.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("ndp-responder doctor: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", report.render(std::io::stdout().is_terminal()));
    }
    if report.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run_probe(
    req: &Request,
    obs: &Observed,
    test_addr: Ipv6Addr,
) -> (Option<Vec<ProbeResult>>, Vec<Finding>) {
    let (Some(mac), Some(route)) = (obs.mac, obs.default_routes.first()) else {
        let finding = Finding::bad(
            Severity::Problem,
            "probe",
            "cannot probe: the uplink needs a MAC address and a default gateway".into(),
            "fix the findings above first".into(),
        );
        return (None, vec![finding]);
    };
    let sources = if obs.link_local.is_some() {
        "and from its link-local address "
    } else {
        ""
    };
    let notice = format!(
        "probe: sending up to {PROBE_ATTEMPTS} Neighbor Solicitations for the gateway {} from {test_addr} {sources}on {}",
        route.gateway, req.ifname
    );
    if req.json {
        eprintln!("{notice}");
    } else {
        println!("{notice}");
    }
    match probe(&req.ifname, mac, test_addr, obs.link_local, route.gateway).await {
        Ok(results) => {
            let verdict = judge_probe(&results, route.gateway);
            (Some(results), verdict)
        }
        Err(e) => (
            None,
            vec![Finding::bad(
                Severity::Problem,
                "probe",
                format!("the probe could not run: {e}"),
                "run doctor as root, or grant CAP_NET_RAW".into(),
            )],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }
    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    fn healthy() -> Observed {
        Observed {
            ifname: "eth0".into(),
            exists: true,
            up: true,
            mac: Some(MacAddr([2, 0, 0, 0, 2, 1])),
            global_addrs: vec![ip("2001:db8:1::2")],
            link_local: Some(ip("fe80::2")),
            default_routes: vec![DefaultRoute {
                gateway: ip("2001:db8:1::1"),
                learned_by: "boot".into(),
            }],
            forwarding: Some(true),
            accept_ra: Some(1),
            proxy_ndp: Some(false),
            proxy_entries: vec![],
            prefix_routes: vec![(net("2001:db8:1::d:0/112"), Some("br0".into()))],
            responders: vec![],
        }
    }

    fn prefixes() -> Vec<Ipv6Net> {
        vec![net("2001:db8:1::d:0/112")]
    }

    fn bad(obs: &Observed) -> Vec<Finding> {
        diagnose(obs, &prefixes())
            .into_iter()
            .filter(|f| f.severity != Severity::Ok)
            .collect()
    }

    fn only(obs: &Observed, check: &str, severity: Severity) -> Finding {
        let found = bad(obs);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].check, check);
        assert_eq!(found[0].severity, severity);
        assert!(found[0].fix.is_some());
        found[0].clone()
    }

    #[test]
    fn healthy_host_has_no_findings() {
        assert_eq!(bad(&healthy()), vec![]);
        assert!(Report::new("eth0", diagnose(&healthy(), &prefixes())).healthy);
    }

    #[test]
    fn missing_interface_is_the_only_finding() {
        let obs = Observed {
            ifname: "eth9".into(),
            ..Observed::default()
        };
        let f = only(&obs, "interface", Severity::Problem);
        assert!(f.message.contains("'eth9'"));
    }

    #[test]
    fn down_link() {
        let f = only(
            &Observed {
                up: false,
                ..healthy()
            },
            "link",
            Severity::Problem,
        );
        assert_eq!(f.fix.as_deref(), Some("ip link set eth0 up"));
    }

    #[test]
    fn no_mac() {
        only(
            &Observed {
                mac: None,
                ..healthy()
            },
            "interface",
            Severity::Problem,
        );
    }

    #[test]
    fn no_link_local() {
        only(
            &Observed {
                link_local: None,
                ..healthy()
            },
            "addresses",
            Severity::Warning,
        );
    }

    #[test]
    fn no_gateway() {
        only(
            &Observed {
                default_routes: vec![],
                ..healthy()
            },
            "gateway",
            Severity::Problem,
        );
    }

    #[test]
    fn forwarding_off() {
        let f = only(
            &Observed {
                forwarding: Some(false),
                ..healthy()
            },
            "forwarding",
            Severity::Problem,
        );
        assert!(f.fix.unwrap().contains("net.ipv6.conf.all.forwarding=1"));
    }

    #[test]
    fn ra_route_with_forwarding_needs_accept_ra_2() {
        let mut obs = healthy();
        obs.default_routes[0].learned_by = "ra".into();
        let f = only(&obs, "accept_ra", Severity::Problem);
        assert!(f.fix.unwrap().contains("net.ipv6.conf.eth0.accept_ra=2"));
        obs.accept_ra = Some(2);
        assert_eq!(bad(&obs), vec![]);
    }

    #[test]
    fn kernel_proxy_entries_for_our_prefix() {
        let obs = Observed {
            proxy_ndp: Some(true),
            proxy_entries: vec![ip("2001:db8:1::d:2"), ip("2001:db8:9::1")],
            ..healthy()
        };
        let f = only(&obs, "proxy_ndp", Severity::Warning);
        assert!(f.message.contains("2001:db8:1::d:2"));
        assert!(
            !f.message.contains("2001:db8:9::1"),
            "outside our prefixes: not ours to judge"
        );
    }

    #[test]
    fn another_responder_in_this_namespace() {
        let f = only(
            &Observed {
                responders: vec![("ndppd".into(), 42)],
                ..healthy()
            },
            "other_responder",
            Severity::Warning,
        );
        assert!(f.message.contains("ndppd (pid 42)"));
    }

    #[test]
    fn prefix_routed_back_out_of_the_uplink() {
        let obs = Observed {
            prefix_routes: vec![(net("2001:db8:1::d:0/112"), Some("eth0".into()))],
            ..healthy()
        };
        let f = only(&obs, "route", Severity::Problem);
        assert!(f.message.contains("loop back"));
    }

    #[test]
    fn prefix_not_routed_at_all() {
        let obs = Observed {
            prefix_routes: vec![(net("2001:db8:1::d:0/112"), None)],
            ..healthy()
        };
        only(&obs, "route", Severity::Problem);
    }

    #[test]
    fn prefix_covering_the_gateway() {
        let f = diagnose(&healthy(), &[net("2001:db8:1::/64")]);
        assert!(f
            .iter()
            .any(|f| f.check == "prefix_covers_gateway" && f.severity == Severity::Warning));
    }

    #[test]
    fn probe_verdicts() {
        let gw = ip("2001:db8:1::1");
        let r = |policy, answered| ProbeResult {
            policy,
            source: ip("2001:db8:1::d:99"),
            answered,
            sent: 1,
        };
        let all_ok = judge_probe(&[r("target", true), r("link-local", true)], gw);
        assert!(all_ok.iter().all(|f| f.severity == Severity::Ok));
        let ll_filtered = judge_probe(&[r("target", true), r("link-local", false)], gw);
        assert!(ll_filtered.iter().all(|f| f.severity == Severity::Ok));
        assert!(ll_filtered
            .iter()
            .any(|f| f.message.contains("keep --source target")));
        let none = judge_probe(&[r("target", false), r("link-local", false)], gw);
        assert!(none.iter().any(|f| f.severity == Severity::Problem));
    }

    #[test]
    fn probe_address_avoids_the_bridge_address() {
        assert_eq!(
            probe_address(&net("2001:db8:1::d:0/112")),
            ip("2001:db8:1::d:fffe")
        );
        assert_eq!(
            probe_address(&net("2001:db8:1::5/128")),
            ip("2001:db8:1::5")
        );
    }

    #[test]
    fn report_renders_fixes_and_json() {
        let report = Report::new(
            "eth0",
            diagnose(
                &Observed {
                    forwarding: Some(false),
                    ..healthy()
                },
                &prefixes(),
            ),
        );
        assert!(!report.healthy);
        let text = report.render(false);
        assert!(text.contains("[problem] IPv6 forwarding is off"), "{text}");
        assert!(
            text.contains("fix: sysctl -w net.ipv6.conf.all.forwarding=1"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(json["healthy"], false);
        assert!(json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "forwarding" && f["severity"] == "problem"));
    }
}
