//! `ndp-responder doctor`: find out why container IPv6 does not work on a real host.
//!
//! Owns: gathering what the kernel says about the uplink ([`observe`]), judging it
//! ([`diagnose`], a pure function with a unit test per finding), the optional active probe of
//! the gateway ([`probe`]), checking every uplink of a configuration file (`-c`), and
//! rendering the findings as text or JSON.
//!
//! Must not: change anything on the host. The probe sends at most [`PROBE_ATTEMPTS`] Neighbor
//! Solicitations per source policy, and only when asked with `--probe`.

mod diagnose;
mod observe;
mod probe;
mod slaac;

pub use diagnose::{diagnose, judge_probe, DefaultRoute, Finding, Observed, Severity};
pub use observe::observe;
pub use probe::{probe, ProbeResult, PROBE_ATTEMPTS};
pub use slaac::SlaacSide;

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;
use serde::Serialize;

use crate::sources::netlink;

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

/// What `doctor` was asked.
#[derive(Debug, Clone)]
pub struct Request {
    pub ifname: String,
    pub prefixes: Vec<Ipv6Net>,
    /// Interfaces whose hosts autoconfigure from the uplink's /64 (`--slaac`).
    pub slaac: Vec<String>,
    pub probe: Option<Ipv6Addr>,
    pub json: bool,
}

/// Run the checks (and the probe, if asked), print the report; exit 0 when nothing is wrong,
/// 1 when something is, 2 when doctor itself could not run.
pub fn run(req: Request) -> std::process::ExitCode {
    let outcome = block_on(async {
        let handle = netlink::connect()
            .await
            .map_err(|e| format!("opening netlink: {e}"))?;
        examine(&handle, &req).await
    });
    match outcome {
        Ok(report) => print(std::slice::from_ref(&report), req.json, false),
        Err(e) => fail(&e),
    }
}

/// `doctor -c FILE`: every uplink of the file, each with its rules' prefixes (a docker rule
/// without a prefix has none to check). One report per uplink: under a heading each, or as
/// a JSON array.
pub fn run_file(path: &std::path::Path, json: bool) -> std::process::ExitCode {
    let config = match crate::config::load(path) {
        Ok(config) => config,
        Err(e) => return fail(&e.to_string()),
    };
    let outcome = block_on(async {
        let handle = netlink::connect()
            .await
            .map_err(|e| format!("opening netlink: {e}"))?;
        let mut reports = Vec::new();
        for uplink in &config.uplinks {
            let mut prefixes: Vec<Ipv6Net> = Vec::new();
            // A slaac rule's /64 is on-link on the uplink by design: its checks are its own.
            let checked = |r: &&crate::decide::targets::Rule| {
                r.prefix.prefix_len() > 0 && r.slaac_interface().is_none()
            };
            for rule in uplink.rules.iter().filter(checked) {
                if !prefixes.contains(&rule.prefix) {
                    prefixes.push(rule.prefix);
                }
            }
            let req = Request {
                ifname: uplink.ifname.clone(),
                prefixes,
                slaac: slaac_interfaces(uplink),
                probe: None,
                json,
            };
            reports.push(examine(&handle, &req).await?);
        }
        Ok(reports)
    });
    match outcome {
        Ok(reports) => print(&reports, json, true),
        Err(e) => fail(&e),
    }
}

/// The SLAAC interfaces of an uplink's rules.
fn slaac_interfaces(uplink: &crate::uplink::Options) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for name in uplink.rules.iter().filter_map(|r| r.slaac_interface()) {
        if !found.iter().any(|f| f == name) {
            found.push(name.to_string());
        }
    }
    found
}

fn block_on<T>(work: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the event loop: {e}"))?
        .block_on(work)
}

fn fail(e: &str) -> std::process::ExitCode {
    eprintln!("ndp-responder doctor: {e}");
    std::process::ExitCode::from(2)
}

/// Observe and judge one uplink (and probe its gateway, if asked).
async fn examine(handle: &netlink::Handle, req: &Request) -> Result<Report, String> {
    let obs = observe(handle, &req.ifname, &req.prefixes, &req.slaac).await?;
    let mut findings = diagnose(&obs, &req.prefixes);
    let mut probed = None;
    if let Some(test_addr) = req.probe {
        let (results, verdict) = run_probe(req, &obs, test_addr).await;
        findings.extend(verdict);
        probed = results;
    }
    let mut report = Report::new(&req.ifname, findings);
    report.probe = probed;
    Ok(report)
}

/// Print the reports (as one JSON value, or an array of them when `several`); exit 0 when
/// all are healthy, else 1.
fn print(reports: &[Report], json: bool, several: bool) -> std::process::ExitCode {
    use std::io::IsTerminal;
    if json {
        let text = match reports {
            [one] if !several => serde_json::to_string_pretty(one),
            all => serde_json::to_string_pretty(all),
        };
        match text {
            Ok(text) => println!("{text}"),
            Err(e) => return fail(&e.to_string()),
        }
    } else {
        let colour = std::io::stdout().is_terminal();
        for (i, report) in reports.iter().enumerate() {
            if several {
                let gap = if i == 0 { "" } else { "\n" };
                println!("{gap}uplink {}:", report.interface);
            }
            print!("{}", report.render(colour));
        }
    }
    if reports.iter().all(|r| r.healthy) {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
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
    use super::diagnose::probe_address;
    use super::*;
    use crate::decide::testing::{ip, net};
    use crate::ndp::MacAddr;

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
            on_link: vec![net("2001:db8:1::/64")],
            responders: vec![],
            slaac: vec![],
            stray_routes: vec![],
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
    fn prefix_outside_every_on_link_prefix() {
        let outside = net("2001:db8:5::/64");
        let f = diagnose(&healthy(), &[outside]);
        let found: Vec<&Finding> = f.iter().filter(|f| f.check == "on_link").collect();
        assert_eq!(found.len(), 1, "{f:#?}");
        assert_eq!(found[0].severity, Severity::Warning);
        assert_eq!(
            found[0].message,
            "2001:db8:5::/64 is not within an on-link prefix of eth0 (2001:db8:1::/64): the provider's router solicits only for on-link addresses, so it will never ask for these"
        );
        assert_eq!(
            found[0].fix.as_deref(),
            Some("give the containers a range inside 2001:db8:1::/64 (e.g. a /112 of it); if the provider routes 2001:db8:5::/64 to this host instead, no NDP proxy is needed for it: remove the rule")
        );
        // Wider than the on-link prefix: most of it is never asked for either.
        assert!(diagnose(&healthy(), &[net("2001:db8::/48")])
            .iter()
            .any(|f| f.check == "on_link"));
        // Inside one, or no on-link prefix known at all (nothing to judge by): no finding.
        assert!(!diagnose(&healthy(), &prefixes())
            .iter()
            .any(|f| f.check == "on_link"));
        let none = Observed {
            on_link: vec![],
            ..healthy()
        };
        assert!(!diagnose(&none, &[outside])
            .iter()
            .any(|f| f.check == "on_link"));
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
