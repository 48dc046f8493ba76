//! The Markdown report (and the same data as JSON).
//!
//! Owns: what the run produced ([`Report`]), the judgement of issue 7's targets
//! ([`targets`]), and the report's text: the prose sections ([`prose`]: machine, method,
//! notes) and the tables ([`tables`]), with the number formatting they share (here). Must not:
//! measure, or touch the system: it only reads the results it is given.

mod prose;
mod tables;
mod targets;

use std::fmt::Write;

use crate::measure::{ResponderResult, Settings, StageResult};
use crate::responders::Responder;
use crate::sys::{BinaryInfo, Machine};
use crate::topo::Cpus;
use crate::traffic::Plan;

/// Everything the run produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub command: String,
    pub started: String,
    pub duration_secs: f64,
    pub machine: Machine,
    pub daemon: BinaryInfo,
    pub daemon_version: String,
    /// ndp-responder's command line (static rule).
    pub daemon_args: String,
    pub ndppd_path: String,
    pub ndppd_version: String,
    pub plan: Plan,
    pub settings: Settings,
    pub cpus: Option<Cpus>,
    /// The kernel threads moved off the host CPU for the run.
    pub quieted: Option<crate::quiet::Quieted>,
    pub results: Vec<ResponderResult>,
    pub targets: Vec<Target>,
}

/// One of issue 7's targets, as measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Target {
    pub target: String,
    pub measured: String,
    pub others: String,
    /// None when it could not be measured in this run.
    pub met: Option<bool>,
}

fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn pct(v: Option<f64>) -> String {
    match v {
        Some(f) if (0.9995..1.0).contains(&f) => "99.9 %".into(),
        Some(f) => format!("{:.1} %", f * 100.0),
        None => "-".into(),
    }
}

fn us(v: Option<f64>) -> String {
    match v {
        Some(x) if x < 10.0 => format!("{x:.1}"),
        Some(x) => thousands(x),
        None => "-".into(),
    }
}

fn cpu(v: Option<f64>) -> String {
    match v {
        Some(x) if x < 10.0 => format!("{x:.2}"),
        Some(x) => format!("{x:.1}"),
        None => "-".into(),
    }
}

fn kib(v: u64) -> String {
    format!("{:.2} MiB ({} KiB)", v as f64 / 1024.0, thousands(v as f64))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "-".into(),
    }
}

impl Report {
    fn get(&self, r: Responder) -> Option<&ResponderResult> {
        self.results.iter().find(|x| x.responder == r)
    }

    fn compared(&self) -> Vec<&ResponderResult> {
        self.results
            .iter()
            .filter(|r| r.responder != Responder::Baseline)
            .collect()
    }

    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = self.write(&mut o);
        o
    }

    fn write(&self, o: &mut String) -> std::fmt::Result {
        let s = &self.settings;
        writeln!(
            o,
            "# Benchmark: ndp-responder, ndppd and the kernel's proxy_ndp\n"
        )?;
        if s.smoke {
            writeln!(
                o,
                "> **Smoke run**: short stages at low rates, to check that the harness works. \
                 Its numbers are not measurements.\n"
            )?;
        }
        writeln!(
            o,
            "Produced by `{}` on {} (took {:.0} s). Every responder ran in the same run, on the \
             same machine, against the same load.\n",
            self.command, self.started, self.duration_secs
        )?;
        self.write_machine(o)?;
        self.write_method(o)?;
        self.write_targets(o)?;
        self.write_rates(o)?;
        self.write_latency(o)?;
        self.write_cpu(o)?;
        self.write_memory(o)?;
        self.write_flood(o)?;
        self.write_soak(o)?;
        self.write_notes(o)?;
        Ok(())
    }
}

/// A paced stage below the responder's saturation: it answered at least 99 % of the multicast
/// NS (ndppd never answers unicast ones, so the total would never qualify it).
fn unsaturated(s: &StageResult) -> bool {
    s.target_rate.is_some() && s.answered_fraction_multicast.is_some_and(|f| f >= 0.99)
}

fn fraction_f(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(pct(Some(0.99951)), "99.9 %");
        assert_eq!(pct(Some(1.0)), "100.0 %");
        assert_eq!(us(Some(3.25)), "3.2");
        assert_eq!(ratio(Some(3.0), Some(2.0)), "1.50×");
    }
}
