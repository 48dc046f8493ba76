//! Issue 7's targets, judged on ndp-responder's figures with the others of the same run beside
//! them, and their table in the report.
//!
//! Owns: each target's threshold and how its figure is picked from the results. Must not:
//! measure, or write anything but the targets' table.

use std::fmt::Write;

use super::{fraction_f, kib, pct, thousands, unsaturated, us, Report, Target};
use crate::measure::{ResponderResult, StageResult};
use crate::responders::Responder;
use crate::sys::Memory;

impl Report {
    /// Issue 7's targets, measured on ndp-responder.
    pub fn evaluate(&mut self) {
        let mut targets = Vec::new();
        let ours = self.get(Responder::NdpResponder);
        let ndppd = self.get(Responder::Ndppd);
        let kernel = self.get(Responder::Kernel);
        let idle = ours.and_then(|r| r.idle);
        let docker = ours.and_then(|r| r.idle_docker);
        let ndppd_idle = ndppd.and_then(|r| r.idle);
        let mem = |m: Option<Memory>, f: fn(&Memory) -> u64| m.map(|m| kib(f(&m)));
        let none = || "-".to_string();

        targets.push(Target {
            target: "idle VmRSS <= 2 MiB with static prefixes".into(),
            measured: mem(idle, |m| m.vm_rss_kib).unwrap_or_else(none),
            others: format!(
                "ndppd {}",
                mem(ndppd_idle, |m| m.vm_rss_kib).unwrap_or_else(none)
            ),
            met: idle.map(|m| m.vm_rss_kib <= 2048),
        });
        targets.push(Target {
            target: "idle VmRSS <= 2.5 MiB in Docker mode".into(),
            measured: mem(docker, |m| m.vm_rss_kib).unwrap_or_else(none),
            others: String::new(),
            met: docker.map(|m| m.vm_rss_kib <= 2560),
        });
        targets.push(Target {
            target: "idle RssAnon (heap + stacks) <= 512 KiB".into(),
            measured: format!(
                "static {}, Docker mode {}",
                mem(idle, |m| m.rss_anon_kib).unwrap_or_else(none),
                mem(docker, |m| m.rss_anon_kib).unwrap_or_else(none)
            ),
            others: format!(
                "ndppd {}",
                mem(ndppd_idle, |m| m.rss_anon_kib).unwrap_or_else(none)
            ),
            met: match (idle, docker) {
                (Some(a), Some(b)) => Some(a.rss_anon_kib <= 512 && b.rss_anon_kib <= 512),
                (Some(a), None) => Some(a.rss_anon_kib <= 512),
                _ => None,
            },
        });
        targets.push(Target {
            target: "idle VmRSS below ndppd's (same run)".into(),
            measured: mem(idle, |m| m.vm_rss_kib).unwrap_or_else(none),
            others: format!(
                "ndppd {}",
                mem(ndppd_idle, |m| m.vm_rss_kib).unwrap_or_else(none)
            ),
            met: idle
                .zip(ndppd_idle)
                .map(|(a, b)| a.vm_rss_kib < b.vm_rss_kib),
        });
        let soak = ours.and_then(|r| r.soak.as_ref());
        let flat = soak.and_then(|s| {
            let first = *s.rss_samples_kib.first()?;
            let last = *s.rss_samples_kib.last()?;
            let max = *s.rss_samples_kib.iter().max()?;
            Some((first, last, max))
        });
        targets.push(Target {
            target: "memory flat (within 5 %) after 10 minutes of flood".into(),
            measured: match (flat, soak) {
                (Some((first, last, max)), Some(s)) => format!(
                    "VmRSS {} KiB at the start, {} KiB after {:.0} s of flood ({:+.1} %), at most {} KiB{}",
                    thousands(first as f64),
                    thousands(last as f64),
                    s.seconds,
                    (last as f64 - first as f64) / first.max(1) as f64 * 100.0,
                    thousands(max as f64),
                    if s.seconds < 599.0 {
                        " (shorter than the target's 10 minutes)"
                    } else {
                        ""
                    }
                ),
                _ => "not measured (no soak)".into(),
            },
            others: String::new(),
            met: flat.map(|(first, last, max)| {
                let limit = first as f64 * 1.05;
                (last as f64) <= limit && (max as f64) <= limit
            }),
        });
        // Below saturation (see `unsaturated`): process CPU / NAs.
        let cpu_per_answered = |r: Option<&ResponderResult>| {
            let r = r?;
            let below = || r.rates.iter().filter(|s| unsaturated(s));
            let cpu: u64 = below().filter_map(|s| s.responder_cpu_ns).sum();
            let answered: u64 = below().map(|s| s.answered).sum();
            (answered > 0).then(|| cpu as f64 / 1000.0 / answered as f64)
        };
        let ours_cpu = cpu_per_answered(ours);
        targets.push(Target {
            target: "CPU time per answered NS <= 2 µs".into(),
            measured: ours_cpu
                .map(|v| {
                    format!("{v:.2} µs (process CPU / NAs over the paced stages below saturation)")
                })
                .unwrap_or_else(none),
            others: format!(
                "ndppd {}",
                cpu_per_answered(ndppd)
                    .map(|v| format!("{v:.2} µs"))
                    .unwrap_or_else(none)
            ),
            met: ours_cpu.map(|v| v <= 2.0),
        });
        fn max_stage(r: Option<&ResponderResult>) -> Option<&StageResult> {
            r.and_then(|r| r.rates.iter().find(|s| s.target_rate.is_none()))
        }
        let ours_max = max_stage(ours);
        targets.push(Target {
            target: ">= 99 % of valid NS answered at the generator's highest rate".into(),
            measured: ours_max
                .map(|s| {
                    format!(
                        "{} of {} NS/s sent ({} of those the host received)",
                        pct(s.answered_fraction),
                        thousands(s.sent_rate),
                        pct(fraction_f(s.answered, s.delivered))
                    )
                })
                .unwrap_or_else(none),
            others: format!(
                "ndppd {}, kernel {}",
                pct(max_stage(ndppd).and_then(|s| s.answered_fraction)),
                pct(max_stage(kernel).and_then(|s| s.answered_fraction))
            ),
            met: ours_max.and_then(|s| s.answered_fraction.map(|f| f >= 0.99)),
        });
        // The reference generator reached about 190,000 NS/s: the nearest paced stage.
        fn near(r: Option<&ResponderResult>) -> Option<&StageResult> {
            r.and_then(|r| {
                r.rates
                    .iter()
                    .filter(|s| s.target_rate.is_some_and(|t| t >= 150_000))
                    .min_by_key(|s| s.target_rate.unwrap_or(0).abs_diff(190_000))
            })
        }
        let ours_near = near(ours);
        targets.push(Target {
            target:
                "(the same at the issue's reference rate: its generator reached about 190,000 NS/s)"
                    .into(),
            measured: ours_near
                .map(|s| {
                    format!(
                        "{} at {} NS/s",
                        pct(s.answered_fraction),
                        thousands(s.sent_rate)
                    )
                })
                .unwrap_or_else(|| "no paced stage near 190,000 NS/s in this run".into()),
            others: format!(
                "ndppd {}, kernel {}",
                pct(near(ndppd).and_then(|s| s.answered_fraction)),
                pct(near(kernel).and_then(|s| s.answered_fraction))
            ),
            met: ours_near.and_then(|s| s.answered_fraction.map(|f| f >= 0.99)),
        });
        let worst_p99 = |r: Option<&ResponderResult>| {
            r.and_then(|r| {
                r.rates
                    .iter()
                    .filter(|s| unsaturated(s))
                    .filter_map(|s| Some((s.latency_p99_us?, s.target_rate?)))
                    .max_by(|a, b| a.0.total_cmp(&b.0))
            })
        };
        let ours_p99 = worst_p99(ours);
        targets.push(Target {
            target: "p99 latency < 200 µs below saturation".into(),
            measured: ours_p99
                .map(|(p, rate)| {
                    format!(
                        "worst p99 {} µs (at {} NS/s) over the paced stages below saturation",
                        us(Some(p)),
                        thousands(rate as f64)
                    )
                })
                .unwrap_or_else(|| "no paced stage below saturation".into()),
            others: format!(
                "ndppd {}, kernel {}",
                worst_p99(ndppd)
                    .map(|(p, _)| format!("{} µs", us(Some(p))))
                    .unwrap_or_else(none),
                worst_p99(kernel)
                    .map(|(p, _)| format!("{} µs", us(Some(p))))
                    .unwrap_or_else(none)
            ),
            met: ours_p99.map(|(p, _)| p < 200.0),
        });
        fn flood(r: Option<&ResponderResult>) -> Option<&StageResult> {
            r.and_then(|r| r.flood.as_ref())
        }
        let ours_flood = flood(ours);
        targets.push(Target {
            target: ">= 99 % of a 1,000 NS/s valid stream answered under a flood at the generator's maximum rate".into(),
            measured: ours_flood
                .map(|s| {
                    format!(
                        "{} (flood {} frames/s sent){}",
                        pct(s.answered_fraction),
                        thousands(s.flood_rate),
                        soak.map(|k| format!("; {} during the {:.0} s soak", pct(k.answered_fraction), k.seconds))
                            .unwrap_or_default()
                    )
                })
                .unwrap_or_else(none),
            others: format!(
                "ndppd {}, kernel {}",
                pct(flood(ndppd).and_then(|s| s.answered_fraction)),
                pct(flood(kernel).and_then(|s| s.answered_fraction))
            ),
            met: ours_flood.and_then(|s| s.answered_fraction.map(|f| f >= 0.99)),
        });
        fn flood_reference(r: Option<&ResponderResult>) -> Option<&StageResult> {
            r.and_then(|r| r.flood_reference.as_ref())
        }
        let ours_reference = flood_reference(ours);
        targets.push(Target {
            target: format!(
                "(the same at the issue's reference rate: a flood of {} frames/s, paced)",
                thousands(self.settings.flood_reference_rate as f64)
            ),
            measured: ours_reference
                .map(|s| {
                    format!(
                        "{} (flood {} frames/s sent)",
                        pct(s.answered_fraction),
                        thousands(s.flood_rate)
                    )
                })
                .unwrap_or_else(|| "no paced flood in this run".into()),
            others: format!(
                "ndppd {}, kernel {}",
                pct(flood_reference(ndppd).and_then(|s| s.answered_fraction)),
                pct(flood_reference(kernel).and_then(|s| s.answered_fraction))
            ),
            met: ours_reference.and_then(|s| s.answered_fraction.map(|f| f >= 0.99)),
        });
        self.targets = targets;
    }

    pub(super) fn write_targets(&self, o: &mut String) -> std::fmt::Result {
        writeln!(o, "## Targets (issue 7), measured on ndp-responder\n")?;
        writeln!(o, "| target | ndp-responder | others, same run | met |")?;
        writeln!(o, "| --- | --- | --- | --- |")?;
        for t in &self.targets {
            writeln!(
                o,
                "| {} | {} | {} | {} |",
                t.target,
                t.measured,
                if t.others.is_empty() { "-" } else { &t.others },
                match t.met {
                    Some(true) => "met",
                    Some(false) => "**not met**",
                    None => "not measured",
                }
            )?;
        }
        writeln!(o)
    }
}
