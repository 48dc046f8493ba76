//! Report: what `ndp-responder status` and the metrics show of one uplink.
//!
//! Owns: building the uplink's [`UplinkStatus`] from the snapshot, the probe cache, the
//! addresses in use, the groups joined, the counters, and the state its Docker feed publishes
//! (the entries of [`DockerNetwork`]).
//!
//! Must not: render it (that is [`crate::status`]) or change any state.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::time::Instant;

use super::refresh::DockerFeed;
use super::Responder;
use crate::decide::targets::Mode;
use crate::sources::docker::{DockerTargets, EngineState};
use crate::status::{Answering, DockerNetwork, Limits, UplinkStatus};

/// One entry per followed network (once, however many rules name it), from what the Docker
/// feed's watcher published.
fn docker_networks(
    networks: &[String],
    targets: &DockerTargets,
    engine: &EngineState,
) -> Vec<DockerNetwork> {
    let mut seen = std::collections::HashSet::new();
    networks
        .iter()
        .filter(|name| seen.insert(name.as_str()))
        .map(|name| DockerNetwork {
            name: name.clone(),
            engine_connected: engine.connected,
            engine_error: engine.error.clone(),
            engine_outages: engine.outages,
            exists: engine.existing.contains(name),
            addresses: targets.values().filter(|(net, _)| net == name).count(),
        })
        .collect()
}

impl Responder {
    /// What `ndp-responder status` shows for this uplink, with what `docker` (its feed) knows.
    pub(super) fn status(&self, docker: &DockerFeed) -> UplinkStatus {
        let snap = self.table.load();
        let now = Instant::now();
        // The rule of `mode`'s kind that covers `a` (rules may overlap).
        let rule_of = |a: &Ipv6Addr, mode: fn(&Mode) -> bool| {
            snap.rules_for(a)
                .find(|r| mode(&r.mode))
                .map(|r| r.to_string())
        };
        let since_reloaded = || "no rule (since reloaded)".to_string();
        let last = |a: &Ipv6Addr| {
            self.in_use
                .get(a)
                .map(|t| now.saturating_duration_since(*t).as_secs())
        };
        let mut answering: BTreeMap<Ipv6Addr, Answering> = BTreeMap::new();
        let mut add = |address: Ipv6Addr, why: &str, rule: String| {
            answering.entry(address).or_insert(Answering {
                address,
                why: why.to_string(),
                rule,
                last_answered_secs: last(&address),
            });
        };
        for (addr, network) in &snap.docker {
            add(*addr, "docker", format!("docker network {network}"));
        }
        for addr in &snap.known {
            if let Some(rule) = rule_of(addr, |m| matches!(m, Mode::Slaac { .. })) {
                add(*addr, "slaac", rule);
                continue;
            }
            let rule = rule_of(addr, |m| *m == Mode::Auto);
            add(*addr, "auto", rule.unwrap_or_else(since_reloaded));
        }
        for addr in self
            .cache
            .positives()
            .filter(|a| !crate::decide::policy::awaits_route(&snap, a))
        {
            let rule = rule_of(&addr, |m| matches!(m, Mode::Probe { .. }));
            add(addr, "probe", rule.unwrap_or_else(since_reloaded));
        }
        // Addresses of static rules are listed once answered. One of another rule that was
        // answered but is no longer known (the container left) is not answered any more:
        // it is not listed.
        for addr in self.in_use.keys() {
            if let Some(rule) = rule_of(addr, |m| *m == Mode::Static) {
                add(*addr, "static", rule);
            }
        }
        let settings = &self.settings;
        UplinkStatus {
            interface: self.ifname.clone(),
            index: snap.uplink,
            up: snap.up,
            mac: snap.mac.to_string(),
            addresses: snap.uplink_addrs.clone(),
            gateways: snap.gateways.clone(),
            source: settings.source.to_string(),
            router_flag: settings.router,
            override_flag: settings.override_flag,
            rules: snap.rules.iter().map(|r| r.to_string()).collect(),
            answering: answering.into_values().collect(),
            probe_cache_entries: self.cache.len(),
            probe_cache_max: self.opts.probe.max_entries,
            probe_cache_high_water: self.cache.high_water,
            gateway_macs: self
                .gateway_macs
                .iter()
                .map(|(a, m)| (*a, m.to_string()))
                .collect(),
            pinned_gateways: snap
                .default_gateways
                .iter()
                .filter(|g| snap.pinned.contains(g))
                .copied()
                .collect(),
            limits: Limits {
                rate_limit: self.opts.rate_limit.total,
                rate_limit_per_source: self.opts.rate_limit.per_source,
                gateway_keepalive_ms: self.opts.keepalive.map(|d| d.as_millis() as u64),
                announce_interval_ms: self.opts.announce.map(|d| d.as_millis() as u64),
                probe_ttl_ms: self.opts.probe.ttl.as_millis() as u64,
                probe_negative_ttl_ms: self.opts.probe.negative_ttl.as_millis() as u64,
            },
            slaac: self.slaac.status(&snap, now),
            docker: docker_networks(
                &docker.networks,
                &docker.rx.borrow(),
                &docker.state.borrow(),
            ),
            mld_groups: self.groups.as_ref().map_or(0, |g| g.len()),
            fast_path: self.fast.state(),
            counters: self.counters.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_followed_network_is_reported_once_with_its_engines_state() {
        let held = |net: &str| (net.to_string(), "c".to_string());
        let targets = DockerTargets::from([
            ("2001:db8:1::d:2".parse().unwrap(), held("a")),
            ("2001:db8:1::d:3".parse().unwrap(), held("a")),
            ("2001:db8:2::d:2".parse().unwrap(), held("other")),
        ]);
        let engine = EngineState {
            connected: false,
            existing: ["a".to_string()].into(),
            error: Some("the event stream ended".into()),
            outages: 1,
        };
        let networks = ["a", "b", "a"].map(String::from);
        let report = docker_networks(&networks, &targets, &engine);
        let entry = |name: &str, exists: bool, addresses: usize| DockerNetwork {
            name: name.into(),
            engine_connected: false,
            engine_error: Some("the event stream ended".into()),
            engine_outages: 1,
            exists,
            addresses,
        };
        assert_eq!(report, [entry("a", true, 2), entry("b", false, 0)]);
    }
}
