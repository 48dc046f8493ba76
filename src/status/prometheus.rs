//! The Prometheus exposition of the status (with the `prometheus-client` crate).
//!
//! Owns: [`Status::prometheus`]. Must not: gather state or do I/O (see the parent module).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Counters, Status};

impl Status {
    /// The Prometheus text exposition of the same figures: the daemon's own metrics prefixed
    /// `ndp_responder_`, and the standard process metrics unprefixed, under the names every
    /// Prometheus client library's process collector uses (`process_start_time_seconds`,
    /// `process_resident_memory_bytes`), so that the usual dashboards and alerts apply.
    pub fn prometheus(&self) -> String {
        type Labels = Vec<(&'static str, String)>;
        let mut root = Registry::default();
        let seconds = |registry: &mut Registry, name: &str, help: &str, value: f64| {
            let gauge = Gauge::<f64, AtomicU64>::default();
            registry.register(name, help, gauge.clone());
            gauge.set(value);
        };
        seconds(
            &mut root,
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds",
            self.process.start_time_unix_secs,
        );
        let resident = Gauge::<i64>::default();
        root.register(
            "process_resident_memory_bytes",
            "Resident memory size, in bytes",
            resident.clone(),
        );
        resident.set(i64::try_from(self.process.resident_memory_bytes).unwrap_or(i64::MAX));
        let registry = root.sub_registry_with_prefix("ndp_responder");
        let build = Family::<Labels, Gauge>::default();
        registry.register(
            "build_info",
            "Always 1; its labels say which build is running",
            build.clone(),
        );
        build
            .get_or_create(&vec![("version", self.version.clone())])
            .set(1);
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
        // Registered once each, in report order; every uplink adds its labelled values.
        let sample = Counters::default();
        let totals: Vec<_> = sample
            .totals()
            .map(|(shown, _)| counter(registry, shown.metric, shown.help))
            .collect();
        let reasons: Vec<_> = sample
            .by_reason()
            .map(|(shown, _)| counter(registry, shown.metric, shown.help))
            .collect();
        let up = gauge(registry, "uplink_up", "1 when the uplink exists and is up");
        let targets = gauge(
            registry,
            "targets",
            "Addresses answered for now, by how they are known",
        );
        let cache = gauge(registry, "probe_cache_entries", "Probe cache entries");
        let mld_groups = gauge(
            registry,
            "mld_groups",
            "Solicited-node groups joined on the uplink (reported with MLD)",
        );
        let engine_connected = gauge(
            registry,
            "docker_engine_connected",
            "1 while the container engine is answering and its events are followed, per followed network",
        );
        let network_exists = gauge(
            registry,
            "docker_network_exists",
            "1 when the followed network exists on the engine (as of its last answer)",
        );
        let network_addresses = gauge(
            registry,
            "docker_addresses",
            "Container addresses on the followed network, as the engine last reported them",
        );
        let slaac_routes = gauge(
            registry,
            "slaac_routes",
            "Learned SLAAC guest addresses (each with a /128 route of ours), per SLAAC interface",
        );
        let slaac_prefixes = gauge(
            registry,
            "slaac_prefixes",
            "Prefixes advertised on a SLAAC interface",
        );
        let engine_outages = counter(
            registry,
            "docker_engine_outages",
            "Outages of the container engine (one however many retries it took), per followed network",
        );
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
        // Named as Prometheus and Alertmanager name their own, so the same alert rules apply.
        let successful = Gauge::<i64>::default();
        registry.register(
            "config_last_reload_successful",
            "1 when the last reload (or the start) applied the configuration in full",
            successful.clone(),
        );
        successful.set(i64::from(self.last_reload_error.is_none()));
        seconds(
            registry,
            "config_last_reload_success_timestamp_seconds",
            "When the configuration was last applied in full (the start, or a reload), since the Unix epoch",
            self.last_reload_success_unix_secs,
        );
        let renders = Counter::<u64>::default();
        registry.register(
            "metrics_renders",
            "Status gatherings for the metrics endpoint (each rendering is reused for a second)",
            renders.clone(),
        );
        renders.inc_by(self.windows.metrics_renders);
        let shed = counter(
            registry,
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
            for (family, (_, n)) in totals.iter().zip(c.totals()) {
                family.get_or_create(&l).inc_by(n);
            }
            for (family, (_, map)) in reasons.iter().zip(c.by_reason()) {
                for (reason, n) in map.iter() {
                    let mut labels = l.clone();
                    labels.push(("reason", reason.to_string()));
                    family.get_or_create(&labels).inc_by(n);
                }
            }
            up.get_or_create(&l)
                .set(i64::from(u.index.is_some() && u.up));
            cache
                .get_or_create(&l)
                .set(i64::try_from(u.probe_cache_entries).unwrap_or(i64::MAX));
            mld_groups
                .get_or_create(&l)
                .set(i64::try_from(u.mld_groups).unwrap_or(i64::MAX));
            for d in &u.docker {
                let mut labels = l.clone();
                labels.push(("network", d.name.clone()));
                engine_connected
                    .get_or_create(&labels)
                    .set(i64::from(d.engine_connected));
                network_exists
                    .get_or_create(&labels)
                    .set(i64::from(d.exists));
                network_addresses
                    .get_or_create(&labels)
                    .set(i64::try_from(d.addresses).unwrap_or(i64::MAX));
                engine_outages
                    .get_or_create(&labels)
                    .inc_by(d.engine_outages);
            }
            for sl in &u.slaac {
                let mut labels = l.clone();
                labels.push(("interface", sl.interface.clone()));
                slaac_routes
                    .get_or_create(&labels)
                    .set(i64::try_from(sl.routes).unwrap_or(i64::MAX));
                slaac_prefixes
                    .get_or_create(&labels)
                    .set(i64::try_from(sl.prefixes.len()).unwrap_or(i64::MAX));
            }
            for why in ["static", "auto", "probe", "docker", "slaac"] {
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
        let _ = encode(&mut out, &root);
        out
    }
}
