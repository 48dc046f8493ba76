//! What a running daemon reports about itself: the status report and its two renderings.
//!
//! Owns: the serializable [`Status`] (what `ndp-responder status --json` prints and the
//! control socket sends), its text rendering for operators, and the Prometheus exposition of
//! the same counters (with the `prometheus-client` crate).
//!
//! Must not: gather state or do I/O. The daemon fills an [`UplinkStatus`] per uplink, the
//! service adds its own fields, and the control socket and metrics endpoint carry them, adding
//! only their own counters ([`Windows`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv6Addr;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

/// The whole daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub uptime_secs: u64,
    /// The configuration file, when the daemon was started from one.
    pub config: Option<String>,
    /// Successful reloads since start.
    pub reloads: u64,
    /// Why the last reload was refused, if it was (the previous configuration kept running).
    pub last_reload_error: Option<String>,
    pub uplinks: Vec<UplinkStatus>,
    /// The control socket and metrics endpoint (filled in by them); `#[serde(default)]` keeps
    /// older JSON readable.
    #[serde(default)]
    pub windows: Windows,
}

/// How the control socket and the metrics endpoint were used since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Windows {
    /// Status gatherings for the metrics endpoint (a rendering is reused for a second).
    pub metrics_renders: u64,
    /// Metrics connections closed because the limit was reached (the newest, or the oldest
    /// one still waiting for its request).
    pub metrics_connections_shed: u64,
    /// Control socket clients closed because the limit was reached.
    pub control_connections_shed: u64,
}

/// One uplink: its state, rules, the addresses answered and the counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UplinkStatus {
    pub interface: String,
    /// None while the interface does not exist.
    pub index: Option<u32>,
    pub up: bool,
    pub mac: String,
    /// The uplink's own addresses (the kernel answers for those).
    pub addresses: Vec<Ipv6Addr>,
    pub gateways: Vec<Ipv6Addr>,
    pub source: String,
    pub router_flag: bool,
    pub override_flag: bool,
    pub rules: Vec<String>,
    /// Addresses answered for now, and why.
    pub answering: Vec<Answering>,
    pub probe_cache_entries: usize,
    pub probe_cache_max: usize,
    pub counters: CounterValues,
}

/// An address we answer for, and how we know it is ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answering {
    pub address: Ipv6Addr,
    /// static | auto | probe | docker
    pub why: String,
    /// The rule that covers it, or the docker network.
    pub rule: String,
    /// Seconds since we last answered a solicitation for it, if we did.
    pub last_answered_secs: Option<u64>,
}

/// The counters, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterValues {
    pub ns_seen: u64,
    pub answered: u64,
    pub send_errors: u64,
    pub probes_sent: u64,
    pub keepalives_sent: u64,
    pub announcements_sent: u64,
    pub rate_limited: u64,
    /// Solicitations the kernel dropped because the receive ring was full (the daemon could
    /// not keep up); `#[serde(default)]` keeps older JSON readable.
    #[serde(default)]
    pub dropped: u64,
    pub ignored: BTreeMap<String, u64>,
    pub invalid: BTreeMap<String, u64>,
    /// Advertisements (keepalive and probe answers) not acted upon, by reason.
    #[serde(default)]
    pub adverts_refused: BTreeMap<String, u64>,
    /// Our own sends held back by a bound (announcement pacing), by reason.
    #[serde(default)]
    pub withheld: BTreeMap<String, u64>,
}

/// Addresses as an operator reads them: comma-separated, or "none".
pub fn list(addrs: &[Ipv6Addr]) -> String {
    if addrs.is_empty() {
        return "none".into();
    }
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn by_reason(map: &BTreeMap<String, u64>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn ago(secs: u64) -> String {
    match secs {
        0..=119 => format!("{secs}s ago"),
        120..=7199 => format!("{}m ago", secs / 60),
        _ => format!("{}h ago", secs / 3600),
    }
}

impl Status {
    /// The text `ndp-responder status` prints.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "ndp-responder {}, pid {}, running for {}",
            self.version,
            self.pid,
            humantime::format_duration(std::time::Duration::from_secs(self.uptime_secs))
        );
        match &self.config {
            Some(path) => {
                let _ = write!(
                    s,
                    ", configuration {path} (reloaded {} times)",
                    self.reloads
                );
            }
            None => s.push_str(", configured on the command line"),
        }
        s.push('\n');
        if let Some(e) = &self.last_reload_error {
            let _ = writeln!(
                s,
                "last reload REFUSED (the previous configuration is running): {e}"
            );
        }
        for u in &self.uplinks {
            let state = match u.index {
                None => "missing".to_string(),
                Some(i) => format!("index {i}, {}", if u.up { "up" } else { "DOWN" }),
            };
            let _ = writeln!(s, "\nuplink {} ({state}, MAC {})", u.interface, u.mac);
            let _ = writeln!(s, "  own addresses: {}", list(&u.addresses));
            let _ = writeln!(s, "  gateways: {}", list(&u.gateways));
            let _ = writeln!(
                s,
                "  answers: source {}, router flag {}, override flag {}",
                u.source,
                if u.router_flag { "on" } else { "off" },
                if u.override_flag { "on" } else { "off" }
            );
            let _ = writeln!(s, "  rules: {}", u.rules.join("; "));
            let _ = writeln!(s, "  answering for {} address(es):", u.answering.len());
            for a in &u.answering {
                let when = a
                    .last_answered_secs
                    .map(|t| format!(", last answered {}", ago(t)))
                    .unwrap_or_default();
                let _ = writeln!(s, "    {:<40} {:<7} {}{when}", a.address, a.why, a.rule);
            }
            let _ = writeln!(
                s,
                "  probe cache: {} entries (at most {})",
                u.probe_cache_entries, u.probe_cache_max
            );
            let c = &u.counters;
            let _ = writeln!(
                s,
                "  counters: NS seen {}, answered {}, rate-limited {}, dropped (ring full) {}, announcements sent {}, probes sent {}, keepalives sent {}, send errors {}",
                c.ns_seen,
                c.answered,
                c.rate_limited,
                c.dropped,
                c.announcements_sent,
                c.probes_sent,
                c.keepalives_sent,
                c.send_errors
            );
            if !c.ignored.is_empty() {
                let _ = writeln!(s, "  ignored: {}", by_reason(&c.ignored));
            }
            if !c.invalid.is_empty() {
                let _ = writeln!(s, "  invalid: {}", by_reason(&c.invalid));
            }
            if !c.adverts_refused.is_empty() {
                let _ = writeln!(
                    s,
                    "  advertisements refused: {}",
                    by_reason(&c.adverts_refused)
                );
            }
            if !c.withheld.is_empty() {
                let _ = writeln!(s, "  withheld: {}", by_reason(&c.withheld));
            }
        }
        s
    }

    /// The Prometheus text exposition of the same figures.
    pub fn prometheus(&self) -> String {
        type Labels = Vec<(&'static str, String)>;
        let mut registry = Registry::with_prefix("ndp_responder");
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<Labels, Counter>::default();
            registry.register(name, help, family.clone());
            family
        };
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<Labels, Gauge>::default();
            registry.register(name, help, family.clone());
            family
        };
        let seen = counter(
            &mut registry,
            "solicitations",
            "Neighbor Solicitations received on the uplink",
        );
        let answered = counter(
            &mut registry,
            "answered",
            "Neighbor Advertisements sent in answer",
        );
        let ignored = counter(
            &mut registry,
            "ignored",
            "Valid solicitations not answered, by reason",
        );
        let invalid = counter(
            &mut registry,
            "invalid",
            "Solicitations dropped as invalid (RFC 4861 7.1.1), by reason",
        );
        let refused_adverts = counter(
            &mut registry,
            "adverts_refused",
            "Neighbor Advertisements not acted upon (keepalive and probe answers), by reason",
        );
        let withheld = counter(
            &mut registry,
            "withheld",
            "Sends of our own held back by a bound, by reason",
        );
        let limited = counter(
            &mut registry,
            "rate_limited",
            "Answers withheld by the rate limits",
        );
        let dropped = counter(
            &mut registry,
            "dropped",
            "Solicitations the kernel dropped because the receive ring was full",
        );
        let announcements = counter(
            &mut registry,
            "announcements",
            "Announcements sent (unsolicited NA and NS to the gateway)",
        );
        let probes = counter(
            &mut registry,
            "probes",
            "Probes sent on downstream interfaces",
        );
        let keepalives = counter(
            &mut registry,
            "keepalives",
            "Gateway keepalive solicitations sent",
        );
        let errors = counter(
            &mut registry,
            "send_errors",
            "Frames that could not be sent",
        );
        let up = gauge(
            &mut registry,
            "uplink_up",
            "1 when the uplink exists and is up",
        );
        let targets = gauge(
            &mut registry,
            "targets",
            "Addresses answered for now, by how they are known",
        );
        let cache = gauge(&mut registry, "probe_cache_entries", "Probe cache entries");
        let reloads = Counter::<u64>::default();
        registry.register("reloads", "Configuration reloads applied", reloads.clone());
        reloads.inc_by(self.reloads);
        let refused = Gauge::<i64>::default();
        registry.register(
            "last_reload_refused",
            "1 when the last reload was refused",
            refused.clone(),
        );
        refused.set(i64::from(self.last_reload_error.is_some()));
        let renders = Counter::<u64>::default();
        registry.register(
            "metrics_renders",
            "Status gatherings for the metrics endpoint (each rendering is reused for a second)",
            renders.clone(),
        );
        renders.inc_by(self.windows.metrics_renders);
        let shed = counter(
            &mut registry,
            "connections_shed",
            "Connections closed because the window's limit of connections at once was reached",
        );
        for (window, n) in [
            ("metrics", self.windows.metrics_connections_shed),
            ("control", self.windows.control_connections_shed),
        ] {
            shed.get_or_create(&vec![("window", window.to_string())])
                .inc_by(n);
        }
        for u in &self.uplinks {
            let l: Labels = vec![("uplink", u.interface.clone())];
            let c = &u.counters;
            seen.get_or_create(&l).inc_by(c.ns_seen);
            answered.get_or_create(&l).inc_by(c.answered);
            limited.get_or_create(&l).inc_by(c.rate_limited);
            dropped.get_or_create(&l).inc_by(c.dropped);
            announcements.get_or_create(&l).inc_by(c.announcements_sent);
            probes.get_or_create(&l).inc_by(c.probes_sent);
            keepalives.get_or_create(&l).inc_by(c.keepalives_sent);
            errors.get_or_create(&l).inc_by(c.send_errors);
            for (family, map) in [
                (&ignored, &c.ignored),
                (&invalid, &c.invalid),
                (&refused_adverts, &c.adverts_refused),
                (&withheld, &c.withheld),
            ] {
                for (reason, n) in map {
                    let mut labels = l.clone();
                    labels.push(("reason", reason.clone()));
                    family.get_or_create(&labels).inc_by(*n);
                }
            }
            up.get_or_create(&l)
                .set(i64::from(u.index.is_some() && u.up));
            cache
                .get_or_create(&l)
                .set(i64::try_from(u.probe_cache_entries).unwrap_or(i64::MAX));
            for why in ["static", "auto", "probe", "docker"] {
                let n = u.answering.iter().filter(|a| a.why == why).count();
                let mut labels = l.clone();
                labels.push(("source", why.to_string()));
                targets
                    .get_or_create(&labels)
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        Status {
            version: "0.1.0".into(),
            pid: 42,
            uptime_secs: 75,
            config: Some("/etc/ndp-responder.toml".into()),
            reloads: 2,
            last_reload_error: None,
            uplinks: vec![UplinkStatus {
                interface: "eth0".into(),
                index: Some(2),
                up: true,
                mac: "02:00:00:00:02:01".into(),
                addresses: vec!["2001:db8:1::2".parse().unwrap()],
                gateways: vec!["2001:db8:1::1".parse().unwrap()],
                source: "target".into(),
                router_flag: true,
                override_flag: true,
                rules: vec!["2001:db8:1::d:0/112 (static)".into()],
                answering: vec![Answering {
                    address: "2001:db8:1::d:2".parse().unwrap(),
                    why: "static".into(),
                    rule: "2001:db8:1::d:0/112 (static)".into(),
                    last_answered_secs: Some(3),
                }],
                probe_cache_entries: 0,
                probe_cache_max: 0,
                counters: CounterValues {
                    ns_seen: 10,
                    answered: 7,
                    ignored: BTreeMap::from([("not_ours".to_string(), 3)]),
                    ..Default::default()
                },
            }],
            windows: Windows {
                metrics_renders: 4,
                ..Default::default()
            },
        }
    }

    #[test]
    fn json_round_trips() {
        let status = sample();
        let json = serde_json::to_string(&status).unwrap();
        assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), status);
    }

    #[test]
    fn text_names_uplink_addresses_and_counters() {
        let text = sample().render();
        assert!(text.contains("uplink eth0 (index 2, up, MAC 02:00:00:00:02:01)"));
        assert!(text.contains("2001:db8:1::d:2"));
        assert!(text.contains("last answered 3s ago"));
        assert!(text.contains("NS seen 10, answered 7"));
        assert!(text.contains("ignored: not_ours=3"));
        assert!(text.contains("reloaded 2 times"));
    }

    #[test]
    fn prometheus_exposition_has_labelled_counters() {
        let text = sample().prometheus();
        assert!(text.contains("ndp_responder_solicitations_total{uplink=\"eth0\"} 10"));
        assert!(text.contains("ndp_responder_answered_total{uplink=\"eth0\"} 7"));
        assert!(text.contains("ndp_responder_ignored_total{uplink=\"eth0\",reason=\"not_ours\"} 3"));
        assert!(text.contains("ndp_responder_targets{uplink=\"eth0\",source=\"static\"} 1"));
        assert!(text.contains("ndp_responder_uplink_up{uplink=\"eth0\"} 1"));
        assert!(text.contains("ndp_responder_reloads_total 2"));
        assert!(text.contains("ndp_responder_metrics_renders_total 4"));
        assert!(text.contains("ndp_responder_connections_shed_total{window=\"control\"} 0"));
        assert!(text.ends_with("# EOF\n"));
    }
}
