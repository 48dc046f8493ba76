//! What a running daemon reports about itself: the status report and its two renderings.
//!
//! Owns: the serializable [`Status`] (what `ndp-responder status --json` prints and the
//! control socket sends), its text rendering for operators, and the Prometheus exposition of
//! the same counters (with the `prometheus-client` crate).
//!
//! Must not: gather state or do I/O. The daemon fills an [`UplinkStatus`] per uplink, the
//! service adds its own fields, and the control socket and metrics endpoint carry them, adding
//! only their own counters ([`Windows`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv6Addr;

mod prometheus;
mod text;

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
    /// When the configuration in force was last applied in full (Unix time, seconds): at start,
    /// then at each reload that succeeded (one refused, or with an uplink that could not
    /// start, leaves it).
    #[serde(default)]
    pub last_reload_success_unix_secs: f64,
    /// The process itself (the standard process metrics).
    #[serde(default)]
    pub process: Process,
}

/// The process, as the standard `process_*` metrics describe it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Process {
    /// When the daemon started (Unix time, seconds).
    pub start_time_unix_secs: f64,
    /// Resident memory (RSS), in bytes; 0 when it could not be read.
    pub resident_memory_bytes: u64,
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
    /// The most entries the probe cache ever held (never above `probe_cache_max`).
    #[serde(default)]
    pub probe_cache_high_water: usize,
    /// Gateways whose keepalive answer was accepted, with the MAC they answered from.
    #[serde(default)]
    pub gateway_macs: BTreeMap<Ipv6Addr, String>,
    /// Gateways whose neighbour entry someone pinned (PERMANENT/NOARP): the keepalive leaves
    /// them alone.
    #[serde(default)]
    pub pinned_gateways: Vec<Ipv6Addr>,
    /// The limits and intervals in force (they change in place on reload).
    #[serde(default)]
    pub limits: Limits,
    /// The Docker/Podman networks its docker rules follow, and the engine's state.
    #[serde(default)]
    pub docker: Vec<DockerNetwork>,
    /// Solicited-node groups joined on the uplink now (reported with MLD, for snooping
    /// switches).
    #[serde(default)]
    pub mld_groups: usize,
    /// The SLAAC interfaces of its slaac rules (issue 17).
    #[serde(default)]
    pub slaac: Vec<SlaacStatus>,
    /// The in-kernel fast path: `xdp-native`, `xdp-generic`, or `off` and why.
    #[serde(default)]
    pub fast_path: String,
    pub counters: Counters,
}

/// A SLAAC interface: what is advertised there and who was learned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaacStatus {
    pub interface: String,
    pub index: Option<u32>,
    /// Prefixes advertised (A=1, L=0).
    pub prefixes: Vec<String>,
    /// Prefixes that went away, advertised with lifetime 0 a few more times.
    pub deprecating: Vec<String>,
    /// Learned addresses by station MAC; each has a /128 route of ours to the interface.
    pub stations: BTreeMap<String, Vec<Ipv6Addr>>,
    /// Routes of ours to the interface (one per learned address).
    pub routes: usize,
    /// Guests' DAD relayed upstream and not yet decided.
    pub dad_pending: usize,
    /// Addresses that failed DAD (upstream), neither learned nor answered for a while.
    pub dad_failed: Vec<Ipv6Addr>,
    /// DNS servers advertised (configured, or relayed from the uplink's router).
    pub dns: Vec<Ipv6Addr>,
    /// Other routers advertising on the interface ("source (MAC)").
    pub other_ra_senders: Vec<String>,
}

/// A Docker (or Podman) network an uplink's docker rule follows, as the engine last said.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerNetwork {
    pub name: String,
    /// The engine answered in full and its events are being followed.
    pub engine_connected: bool,
    /// Why the engine is unreachable, while it is.
    #[serde(default)]
    pub engine_error: Option<String>,
    /// Engine outages since the network is followed (one however many retries it took).
    #[serde(default)]
    pub engine_outages: u64,
    /// The network exists on the engine (as of its last answer: false before the first).
    pub exists: bool,
    /// Container addresses on the network as the engine last reported them (those a rule's
    /// prefix holds are answered: see `answering`, why "docker").
    pub addresses: usize,
}

/// An uplink's limits and intervals in force, in milliseconds where they are durations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Answers per second in all, and to one source (0: no limit).
    pub rate_limit: u32,
    pub rate_limit_per_source: u32,
    pub gateway_keepalive_ms: Option<u64>,
    pub announce_interval_ms: Option<u64>,
    pub probe_ttl_ms: u64,
    pub probe_negative_ttl_ms: u64,
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

/// A kind of reason a counter is kept by: each is an enum whose variants name themselves
/// with a short stable snake_case label ([`crate::decide::policy::Ignored`], ...), so that
/// no counter key is a free-form string.
pub trait Reason: Copy {
    fn reason(&self) -> &'static str;
}

/// Counts by reason. Serialized as a map from the reason's label to its count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Reasons(BTreeMap<Cow<'static, str>, u64>);

impl Reasons {
    /// Count one more for `why`; allocates only the first time a reason is seen.
    pub fn add(&mut self, why: impl Reason) {
        self.add_n(why, 1);
    }

    pub fn add_n(&mut self, why: impl Reason, n: u64) {
        *self.0.entry(Cow::Borrowed(why.reason())).or_default() += n;
    }

    pub fn get(&self, reason: &str) -> Option<&u64> {
        self.0.get(reason)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), *v))
    }

    pub fn values(&self) -> impl Iterator<Item = &u64> {
        self.0.values()
    }

    /// `reason=count reason=count`, for the text report and the stop summary.
    pub fn words(&self) -> String {
        self.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Where a counter shows: its words in the text report and the stop summary, and its metric
/// (`ndp_responder_<metric>_total{uplink}`) with its help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    pub words: &'static str,
    pub metric: &'static str,
    pub help: &'static str,
}

macro_rules! counters {
    (
        totals { $( $(#[$doc:meta])* $field:ident => $words:literal, $metric:literal, $help:literal; )* }
        by_reason { $( $(#[$rdoc:meta])* $rfield:ident => $rwords:literal, $rmetric:literal, $rhelp:literal; )* }
    ) => {
        /// Every counter of an uplink. Adding one is one line in the table below plus its use:
        /// the JSON status, the text report, the metrics and the stop summary all read
        /// [`Counters::totals`] and [`Counters::by_reason`].
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Counters {
            $( $(#[$doc])* #[serde(default)] pub $field: u64, )*
            $( $(#[$rdoc])* #[serde(default)] pub $rfield: Reasons, )*
        }

        impl Counters {
            /// The plain counters, in report order.
            pub fn totals(&self) -> impl Iterator<Item = (Shown, u64)> {
                [$( (Shown { words: $words, metric: $metric, help: $help }, self.$field), )*]
                    .into_iter()
            }

            /// The counters by reason, in report order.
            pub fn by_reason(&self) -> impl Iterator<Item = (Shown, &Reasons)> {
                [$( (Shown { words: $rwords, metric: $rmetric, help: $rhelp }, &self.$rfield), )*]
                    .into_iter()
            }
        }
    };
}

counters! {
    totals {
        /// Neighbor Solicitations read from the uplink.
        ns_seen => "NS seen", "solicitations", "Neighbor Solicitations received on the uplink";
        answered => "answered", "answered", "Neighbor Advertisements sent in answer";
        /// Of `answered`, those the XDP fast path sent from the kernel.
        answered_in_kernel => "answered in the kernel", "answered_in_kernel", "Neighbor Advertisements the XDP fast path sent";
        /// Solicitations the fast path passed up to the kernel and the packet socket.
        passed_up => "passed up by the fast path", "fast_path_passed", "Solicitations the XDP fast path passed up to the packet socket";
        rate_limited => "rate-limited", "rate_limited", "Answers withheld by the rate limits";
        /// Solicitations the kernel dropped because the receive ring was full (the daemon
        /// could not keep up).
        dropped => "dropped (ring full)", "dropped", "Solicitations the kernel dropped because the receive ring was full";
        send_errors => "send errors", "send_errors", "Frames that could not be sent";
        probes_sent => "probes sent", "probes", "Probes sent on downstream interfaces";
        keepalives_sent => "keepalives sent", "keepalives", "Gateway keepalive solicitations sent";
        /// Keepalive solicitations the gateway answered (an answer accepted as the gateway's:
        /// its kernel entry is confirmed from it).
        keepalives_answered => "keepalives answered", "keepalives_answered", "Gateway keepalive solicitations answered by the gateway";
        /// Keepalive solicitations with no acceptable answer within the answer window (or before
        /// the next one to the same gateway from the same source replaced them).
        keepalives_failed => "keepalives failed", "keepalives_failed", "Gateway keepalive solicitations the gateway did not answer in time";
        announcements_sent => "announcements sent", "announcements", "Announcements sent (unsolicited NA and NS to the gateway)";
        /// SLAAC (issue 17): Router Advertisements sent on the guests' interfaces.
        ras_sent => "RAs sent", "slaac_ras", "Router Advertisements sent on SLAAC interfaces";
        rs_answered => "RS answered", "slaac_rs_answered", "Router Solicitations answered with a unicast Router Advertisement";
        dad_relayed => "DAD relayed", "slaac_dad_relayed", "Guests' duplicate address detection relayed to the uplink";
        dad_defended => "DAD defended", "slaac_dad_defended", "Guests' duplicate address detection answered so that the guest gives the address up";
        slaac_routes_added => "guest routes added", "slaac_routes_added", "Host routes added for learned SLAAC guest addresses";
        slaac_routes_removed => "guest routes removed", "slaac_routes_removed", "Host routes of ours removed (station gone, stop, stale)";
        foreign_ras => "other RAs seen", "slaac_foreign_ras", "Router Advertisements from another router on a SLAAC interface";
        slaac_dropped => "SLAAC frames dropped", "slaac_dropped", "Frames of SLAAC interfaces dropped because the queue to the loop was full";
    }
    by_reason {
        /// Valid solicitations not answered.
        ignored => "ignored", "ignored", "Valid solicitations not answered, by reason";
        /// Solicitations dropped as invalid (RFC 4861 7.1.1, or malformed).
        invalid => "invalid", "invalid", "Solicitations dropped as invalid (RFC 4861 7.1.1), by reason";
        /// Advertisements (keepalive and probe answers) not acted upon.
        adverts_refused => "advertisements refused", "adverts_refused", "Neighbor Advertisements not acted upon (keepalive and probe answers), by reason";
        /// Our own sends held back by a bound (announcement pacing).
        withheld => "withheld", "withheld", "Sends of our own held back by a bound, by reason";
        /// Solicited-node groups wanted but not joined (each counted once until joined).
        mld_refused => "MLD joins refused", "mld_joins_refused", "Solicited-node groups wanted on the uplink but not joined, by reason";
        /// Addresses seen on a SLAAC interface and not stood for upstream.
        slaac_refused => "SLAAC refused", "slaac_refused", "Addresses claimed on a SLAAC interface and not stood for upstream, by reason";
    }
}

impl Counters {
    /// One line: the totals, then each non-empty count by reason (the stop summary, and the
    /// status report's counters).
    pub fn summary(&self) -> String {
        let mut s = self
            .totals()
            .map(|(shown, n)| format!("{} {n}", shown.words))
            .collect::<Vec<_>>()
            .join(", ");
        for (shown, reasons) in self.by_reason().filter(|(_, r)| !r.is_empty()) {
            let _ = write!(s, "; {}: {}", shown.words, reasons.words());
        }
        s
    }
}

/// Prefixes as an operator reads them: comma-separated, or "none".
pub fn list_nets(nets: &[ipnet::Ipv6Net]) -> String {
    if nets.is_empty() {
        return "none".into();
    }
    nets.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
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
                probe_cache_high_water: 0,
                gateway_macs: BTreeMap::new(),
                pinned_gateways: vec![],
                limits: Limits::default(),
                docker: vec![DockerNetwork {
                    name: "ipv6exposed".into(),
                    engine_connected: false,
                    engine_error: Some("connecting to /run/docker.sock: refused".into()),
                    engine_outages: 2,
                    exists: true,
                    addresses: 3,
                }],
                mld_groups: 5,
                slaac: vec![],
                fast_path: "xdp-native".into(),
                counters: {
                    #[derive(Clone, Copy)]
                    struct NotOurs;
                    impl Reason for NotOurs {
                        fn reason(&self) -> &'static str {
                            "not_ours"
                        }
                    }
                    let mut c = Counters {
                        ns_seen: 10,
                        answered: 7,
                        keepalives_sent: 9,
                        keepalives_answered: 6,
                        keepalives_failed: 2,
                        ..Default::default()
                    };
                    c.ignored.add_n(NotOurs, 3);
                    c
                },
            }],
            windows: Windows {
                metrics_renders: 4,
                ..Default::default()
            },
            last_reload_success_unix_secs: 1_700_000_100.25,
            process: Process {
                start_time_unix_secs: 1_700_000_000.5,
                resident_memory_bytes: 4_194_304,
            },
        }
    }

    #[test]
    fn slaac_interfaces_show_in_the_report_and_the_metrics() {
        let mut status = sample();
        let mac = "02:00:00:00:03:01".to_string();
        status.uplinks[0].slaac = vec![SlaacStatus {
            interface: "br0".into(),
            index: Some(3),
            prefixes: vec!["2001:db8:1::/64".into()],
            deprecating: vec!["2001:db8:2::/64".into()],
            stations: BTreeMap::from([(mac, vec!["2001:db8:1::ff:fe00:301".parse().unwrap()])]),
            routes: 1,
            dad_pending: 0,
            dad_failed: vec!["2001:db8:1::77".parse().unwrap()],
            dns: vec![],
            other_ra_senders: vec!["fe80::9 (02:00:00:00:09:09)".into()],
        }];
        status.uplinks[0].counters.ras_sent = 4;
        #[derive(Clone, Copy)]
        struct FailedDad;
        impl Reason for FailedDad {
            fn reason(&self) -> &'static str {
                "failed_dad"
            }
        }
        status.uplinks[0].counters.slaac_refused.add(FailedDad);
        let text = status.render();
        assert!(
            text.contains("slaac on br0: prefixes 2001:db8:1::/64 (deprecating 2001:db8:2::/64); 1 route(s); DNS none"),
            "{text}"
        );
        assert!(
            text.contains("station 02:00:00:00:03:01: 2001:db8:1::ff:fe00:301"),
            "{text}"
        );
        assert!(text.contains("failed: 2001:db8:1::77"), "{text}");
        assert!(
            text.contains("WARNING: other routers advertise here"),
            "{text}"
        );
        assert!(text.contains("SLAAC refused: failed_dad=1"), "{text}");
        let metrics = status.prometheus();
        assert!(
            metrics.contains("ndp_responder_slaac_routes{uplink=\"eth0\",interface=\"br0\"} 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("ndp_responder_slaac_ras_total{uplink=\"eth0\"} 4"),
            "{metrics}"
        );
        assert!(metrics.contains(
            "ndp_responder_slaac_refused_total{uplink=\"eth0\",reason=\"failed_dad\"} 1"
        ));
        let json = serde_json::to_string(&status).unwrap();
        assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), status);
    }

    #[test]
    fn json_round_trips() {
        let status = sample();
        let json = serde_json::to_string(&status).unwrap();
        assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), status);
    }

    #[test]
    fn json_without_docker_networks_is_still_read() {
        let mut json = serde_json::to_value(sample()).unwrap();
        json["uplinks"][0].as_object_mut().unwrap().remove("docker");
        let status: Status = serde_json::from_value(json).unwrap();
        assert!(status.uplinks[0].docker.is_empty());
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
        assert!(text.contains("solicited-node groups joined: 5"));
        assert!(text.contains(
            "docker network ipv6exposed: exists, 3 container address(es); engine NOT reachable: connecting to /run/docker.sock: refused (2 outage(s))"
        ));
    }

    #[test]
    fn prometheus_exposition_has_labelled_counters() {
        let text = sample().prometheus();
        assert!(text.contains("ndp_responder_solicitations_total{uplink=\"eth0\"} 10"));
        assert!(text.contains("ndp_responder_answered_total{uplink=\"eth0\"} 7"));
        assert!(text.contains("ndp_responder_ignored_total{uplink=\"eth0\",reason=\"not_ours\"} 3"));
        assert!(text.contains("ndp_responder_targets{uplink=\"eth0\",source=\"static\"} 1"));
        assert!(text.contains("ndp_responder_uplink_up{uplink=\"eth0\"} 1"));
        assert!(text.contains("ndp_responder_mld_groups{uplink=\"eth0\"} 5"));
        let docker = "{uplink=\"eth0\",network=\"ipv6exposed\"}";
        assert!(text.contains(&format!("ndp_responder_docker_engine_connected{docker} 0")));
        assert!(text.contains(&format!("ndp_responder_docker_network_exists{docker} 1")));
        assert!(text.contains(&format!("ndp_responder_docker_addresses{docker} 3")));
        assert!(text.contains(&format!(
            "ndp_responder_docker_engine_outages_total{docker} 2"
        )));
        assert!(text.contains("ndp_responder_reloads_total 2"));
        assert!(text.contains("ndp_responder_metrics_renders_total 4"));
        assert!(text.contains("ndp_responder_connections_shed_total{window=\"control\"} 0"));
        assert!(text.ends_with("# EOF\n"));
    }

    /// The lines of `family` in `text`: its TYPE line and its samples.
    fn family<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| {
                l.strip_prefix("# TYPE ")
                    .unwrap_or(l)
                    .split([' ', '{'])
                    .next()
                    .is_some_and(|n| n == name || n.strip_suffix("_total") == Some(name))
            })
            .collect()
    }

    #[test]
    fn prometheus_exposition_has_the_operators_families_with_their_types() {
        let text = sample().prometheus();
        let expect = |name: &str, lines: &[&str]| {
            assert_eq!(family(&text, name), lines, "{name} in:\n{text}");
        };
        expect(
            "process_start_time_seconds",
            &[
                "# TYPE process_start_time_seconds gauge",
                "process_start_time_seconds 1700000000.5",
            ],
        );
        expect(
            "process_resident_memory_bytes",
            &[
                "# TYPE process_resident_memory_bytes gauge",
                "process_resident_memory_bytes 4194304",
            ],
        );
        expect(
            "ndp_responder_build_info",
            &[
                "# TYPE ndp_responder_build_info gauge",
                "ndp_responder_build_info{version=\"0.1.0\"} 1",
            ],
        );
        expect(
            "ndp_responder_keepalives_answered",
            &[
                "# TYPE ndp_responder_keepalives_answered counter",
                "ndp_responder_keepalives_answered_total{uplink=\"eth0\"} 6",
            ],
        );
        expect(
            "ndp_responder_keepalives_failed",
            &[
                "# TYPE ndp_responder_keepalives_failed counter",
                "ndp_responder_keepalives_failed_total{uplink=\"eth0\"} 2",
            ],
        );
        expect(
            "ndp_responder_config_last_reload_successful",
            &[
                "# TYPE ndp_responder_config_last_reload_successful gauge",
                "ndp_responder_config_last_reload_successful 1",
            ],
        );
        expect(
            "ndp_responder_config_last_reload_success_timestamp_seconds",
            &[
                "# TYPE ndp_responder_config_last_reload_success_timestamp_seconds gauge",
                "ndp_responder_config_last_reload_success_timestamp_seconds 1700000100.25",
            ],
        );
        expect(
            "ndp_responder_docker_engine_connected",
            &[
                "# TYPE ndp_responder_docker_engine_connected gauge",
                "ndp_responder_docker_engine_connected{uplink=\"eth0\",network=\"ipv6exposed\"} 0",
            ],
        );
        let refused = Status {
            last_reload_error: Some("x.toml:3: nope".into()),
            ..sample()
        }
        .prometheus();
        assert!(refused.contains("\nndp_responder_config_last_reload_successful 0\n"));
        assert!(refused.contains("\nndp_responder_last_reload_refused 1\n"));
    }
}
