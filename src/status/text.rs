//! The text `ndp-responder status` prints, for operators.
//!
//! Owns: [`Status::render`]. Must not: gather state or do I/O (see the parent module).

use std::fmt::Write as _;

use super::{list, Status};

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
                None => "waiting for it to appear".to_string(),
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
            for d in &u.docker {
                let engine = match (&d.engine_error, d.engine_connected) {
                    (_, true) => "engine connected".to_string(),
                    (Some(e), false) => format!("engine NOT reachable: {e}"),
                    (None, false) => "engine not connected yet".to_string(),
                };
                let _ = writeln!(
                    s,
                    "  docker network {}: {}, {} container address(es); {engine} ({} outage(s))",
                    d.name,
                    if d.exists { "exists" } else { "does NOT exist" },
                    d.addresses,
                    d.engine_outages
                );
            }
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
            let _ = writeln!(s, "  solicited-node groups joined: {}", u.mld_groups);
            for sl in &u.slaac {
                let _ = writeln!(
                    s,
                    "  slaac on {}: prefixes {}{}; {} route(s); DNS {}",
                    sl.interface,
                    if sl.prefixes.is_empty() {
                        "none".into()
                    } else {
                        sl.prefixes.join(", ")
                    },
                    if sl.deprecating.is_empty() {
                        String::new()
                    } else {
                        format!(" (deprecating {})", sl.deprecating.join(", "))
                    },
                    sl.routes,
                    list(&sl.dns)
                );
                for (mac, addrs) in &sl.stations {
                    let _ = writeln!(s, "    station {mac}: {}", list(addrs));
                }
                if sl.dad_pending > 0 || !sl.dad_failed.is_empty() {
                    let _ = writeln!(
                        s,
                        "    DAD: {} relayed and pending; failed: {}",
                        sl.dad_pending,
                        list(&sl.dad_failed)
                    );
                }
                if !sl.other_ra_senders.is_empty() {
                    let _ = writeln!(
                        s,
                        "    WARNING: other routers advertise here: {}",
                        sl.other_ra_senders.join(", ")
                    );
                }
            }
            let _ = writeln!(s, "  fast path: {}", u.fast_path);
            let c = &u.counters;
            let totals: Vec<String> = c
                .totals()
                .map(|(shown, n)| format!("{} {n}", shown.words))
                .collect();
            let _ = writeln!(s, "  counters: {}", totals.join(", "));
            for (shown, reasons) in c.by_reason().filter(|(_, r)| !r.is_empty()) {
                let _ = writeln!(s, "  {}: {}", shown.words, reasons.words());
            }
        }
        s
    }
}
