//! The report's tables: answered rate and fraction, latency, CPU time, memory, the floods
//! and the soak, one column per responder.
//!
//! Owns: which figure goes in which cell. Must not: judge targets (that is [`super::targets`]).

use std::fmt::Write;

use super::{cpu, kib, pct, ratio, thousands, us, Report};
use crate::measure::{ResponderResult, StageResult};
use crate::responders::Responder;
use crate::sys::Memory;

impl Report {
    pub(super) fn stage_rows(&self) -> Vec<(String, Option<u64>)> {
        let mut rows: Vec<(String, Option<u64>)> = Vec::new();
        for r in self.compared() {
            for s in &r.rates {
                if !rows.iter().any(|(l, _)| *l == s.label) {
                    rows.push((s.label.clone(), s.target_rate));
                }
            }
        }
        rows
    }

    pub(super) fn stage<'a>(r: &'a ResponderResult, label: &str) -> Option<&'a StageResult> {
        r.rates.iter().find(|s| s.label == label)
    }

    pub(super) fn write_rates(&self, o: &mut String) -> std::fmt::Result {
        let cols = self.compared();
        writeln!(o, "## Answered rate and fraction\n")?;
        writeln!(
            o,
            "NA/s answered and the fraction of valid NS sent that were answered, per offered \
             rate (\"max\": the generator unpaced; its actual rate is in the details, and it is \
             lower where many answers come back, since the generator's CPU also receives them). \
             \"Below saturation\" means a paced stage where at least 99 % of the multicast NS \
             were answered.\n"
        )?;
        write!(o, "| offered |")?;
        for r in &cols {
            write!(o, " {} NA/s | {} answered |", r.name, r.name)?;
        }
        writeln!(o, " ndp-responder ÷ ndppd (NA/s) |")?;
        write!(o, "| --- |")?;
        for _ in &cols {
            write!(o, " ---: | ---: |")?;
        }
        writeln!(o, " ---: |")?;
        let ours = self.get(Responder::NdpResponder);
        let ndppd = self.get(Responder::Ndppd);
        for (label, _) in self.stage_rows() {
            write!(o, "| {label} |")?;
            for r in &cols {
                match Self::stage(r, &label) {
                    Some(s) => write!(
                        o,
                        " {} | {} |",
                        thousands(s.answered_rate),
                        pct(s.answered_fraction)
                    )?,
                    None => write!(o, " - | - |")?,
                }
            }
            let a = ours
                .and_then(|r| Self::stage(r, &label))
                .map(|s| s.answered_rate);
            let b = ndppd
                .and_then(|r| Self::stage(r, &label))
                .map(|s| s.answered_rate);
            writeln!(o, " {} |", ratio(a, b))?;
        }
        writeln!(o)?;
        for r in &cols {
            writeln!(o, "### {}\n", r.name)?;
            writeln!(
                o,
                "| offered | sent NS/s | host received /s | dropped before the host | answered NA/s | answered (multicast / unicast) | NAs lost on the way back | late or duplicate NAs | receiver drops | generator CPU busy |"
            )?;
            writeln!(
                o,
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
            )?;
            for s in &r.rates {
                writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} ({} / {}) | {} | {} | {} | {:.0} % |",
                    s.label,
                    thousands(s.sent_rate),
                    thousands(s.delivered as f64 / s.seconds),
                    thousands(s.dropped_before_host as f64),
                    thousands(s.answered_rate),
                    pct(s.answered_fraction),
                    pct(s.answered_fraction_multicast),
                    pct(s.answered_fraction_unicast),
                    thousands(s.answers_lost as f64),
                    thousands(s.late_or_duplicate as f64),
                    thousands(s.receiver_ring_drops as f64),
                    s.generator_cpu.busy_fraction * 100.0,
                )?;
            }
            writeln!(o)?;
        }
        Ok(())
    }

    pub(super) fn write_latency(&self, o: &mut String) -> std::fmt::Result {
        let cols = self.compared();
        writeln!(o, "## Latency\n")?;
        writeln!(
            o,
            "NS sent to NA received, µs: p50 / p99 / max, per offered rate. Every answer crosses \
             the CPUs twice (generator to host and back, each an inter-processor interrupt), so \
             the kernel's proxy shows the floor of this harness. Above saturation the latency is \
             mostly the time an NS waits in a full queue.\n"
        )?;
        write!(o, "| offered |")?;
        for r in &cols {
            write!(o, " {} |", r.name)?;
        }
        writeln!(o)?;
        write!(o, "| --- |")?;
        for _ in &cols {
            write!(o, " ---: |")?;
        }
        writeln!(o)?;
        for (label, _) in self.stage_rows() {
            write!(o, "| {label} |")?;
            for r in &cols {
                match Self::stage(r, &label) {
                    Some(s) => write!(
                        o,
                        " {} / {} / {} |",
                        us(s.latency_p50_us),
                        us(s.latency_p99_us),
                        us(s.latency_max_us)
                    )?,
                    None => write!(o, " - |")?,
                }
            }
            writeln!(o)?;
        }
        writeln!(o)
    }

    pub(super) fn write_cpu(&self, o: &mut String) -> std::fmt::Result {
        let cols = self.compared();
        writeln!(o, "## CPU time\n")?;
        writeln!(
            o,
            "Per 1,000 NS the host received, in ms (= µs per NS). **Process** is the responder's \
             utime+stime from /proc/PID/stat (tick resolution; the scheduler's ns-precise runtime \
             in brackets); **host** is all of the host CPU's busy time, **outside the process** \
             the part the responder process was not charged for: the kernel's receive path, and \
             for the kernel's proxy its whole cost. At saturation most received NS are dropped \
             from a full socket queue, so per-NS figures there are not per-answer figures.\n"
        )?;
        writeln!(
            o,
            "| responder | offered | process | host | outside the process | host CPU busy | process ÷ ndppd |"
        )?;
        writeln!(o, "| --- | --- | ---: | ---: | ---: | ---: | ---: |")?;
        let ndppd = self.get(Responder::Ndppd);
        for r in self.results.iter() {
            let stages: Vec<&StageResult> = r
                .rates
                .iter()
                .chain(r.flood.as_ref())
                .chain(r.flood_reference.as_ref())
                .collect();
            for s in stages {
                let vs = ndppd
                    .and_then(|n| {
                        if s.label == "flood" {
                            n.flood.as_ref()
                        } else if s.label == "flood-reference" {
                            n.flood_reference.as_ref()
                        } else {
                            Self::stage(n, &s.label)
                        }
                    })
                    .and_then(|n| n.precise_us_per_delivered());
                writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {:.0} % | {} |",
                    r.name,
                    s.label,
                    if s.responder_cpu_ns.is_some() {
                        format!(
                            "{} [{}]",
                            cpu(s.stat_us_per_delivered()),
                            cpu(s.precise_us_per_delivered())
                        )
                    } else {
                        "- (no process)".into()
                    },
                    cpu(s.host_us_per_delivered()),
                    cpu(s.host_outside_us_per_delivered()),
                    s.host_cpu.busy_fraction * 100.0,
                    if r.responder == Responder::NdpResponder {
                        ratio(s.precise_us_per_delivered(), vs)
                    } else {
                        "-".into()
                    }
                )?;
            }
        }
        writeln!(o)?;
        let _ = cols;
        Ok(())
    }

    pub(super) fn write_memory(&self, o: &mut String) -> std::fmt::Result {
        writeln!(o, "## Memory\n")?;
        writeln!(
            o,
            "From /proc/PID/status. The kernel's proxy has no process (its proxy entries live \
             in kernel memory).\n"
        )?;
        let ours = self.get(Responder::NdpResponder);
        let ndppd = self.get(Responder::Ndppd);
        let mut cols: Vec<(String, Option<&ResponderResult>, bool)> = Vec::new();
        if ours.is_some() {
            cols.push(("ndp-responder (static rule)".into(), ours, false));
            cols.push(("ndp-responder (Docker mode, no engine)".into(), ours, true));
        }
        // What the fast path's loader adds to the process: the same daemon without it.
        let socket = self.get(Responder::NdpResponderSocket);
        if socket.is_some() {
            cols.push((
                "ndp-responder --no-fast-path (static rule)".into(),
                socket,
                false,
            ));
        }
        if ndppd.is_some() {
            cols.push(("ndppd".into(), ndppd, false));
        }
        write!(o, "| |")?;
        for (name, _, _) in &cols {
            write!(o, " {name} |")?;
        }
        writeln!(o, " ndp-responder ÷ ndppd |")?;
        write!(o, "| --- |")?;
        for _ in &cols {
            write!(o, " ---: |")?;
        }
        writeln!(o, " ---: |")?;
        type Pick = fn(&ResponderResult, bool) -> Option<Memory>;
        type Field = fn(&Memory) -> u64;
        let rows: [(&str, Pick, Field); 6] = [
            (
                "idle VmRSS",
                |r, d| if d { r.idle_docker } else { r.idle },
                |m| m.vm_rss_kib,
            ),
            (
                "idle RssAnon (heap + stacks)",
                |r, d| if d { r.idle_docker } else { r.idle },
                |m| m.rss_anon_kib,
            ),
            (
                "idle RssFile (mapped binary and libraries)",
                |r, d| if d { r.idle_docker } else { r.idle },
                |m| m.rss_file_kib,
            ),
            (
                "VmRSS after the rate stages (steady)",
                |r, d| if d { None } else { r.after_rates },
                |m| m.vm_rss_kib,
            ),
            (
                "VmRSS at the end (after the flood)",
                |r, d| if d { None } else { r.end_memory },
                |m| m.vm_rss_kib,
            ),
            (
                "VmHWM at the end (peak)",
                |r, d| if d { None } else { r.end_memory },
                |m| m.vm_hwm_kib,
            ),
        ];
        for (label, pick, field) in rows {
            write!(o, "| {label} |")?;
            for (_, r, docker) in &cols {
                match r.and_then(|r| pick(r, *docker)) {
                    Some(m) => write!(o, " {} |", kib(field(&m)))?,
                    None => write!(o, " - |")?,
                }
            }
            let a = ours.and_then(|r| pick(r, false)).map(|m| field(&m) as f64);
            let b = ndppd.and_then(|r| pick(r, false)).map(|m| field(&m) as f64);
            writeln!(o, " {} |", ratio(a, b))?;
        }
        writeln!(o)
    }

    pub(super) fn write_flood(&self, o: &mut String) -> std::fmt::Result {
        writeln!(o, "## Flood resistance\n")?;
        writeln!(
            o,
            "A flood of invalid and out-of-range NS with a valid stream of {} NS/s alongside, for \
             {} s each: at the generator's maximum rate, then paced at {} frames/s (the rate the \
             issue's reference generator reached on one core). \"Dropped before the host\" are \
             frames the host's input queue refused: no responder ever sees those.\n",
            thousands(self.settings.flood_valid_rate as f64),
            self.settings.flood_secs,
            thousands(self.settings.flood_reference_rate as f64)
        )?;
        writeln!(o, "### At the generator's maximum rate\n")?;
        self.write_flood_table(o, |r| r.flood.as_ref())?;
        if self.settings.flood_reference_rate > 0 {
            writeln!(
                o,
                "### Paced at {} frames/s\n",
                thousands(self.settings.flood_reference_rate as f64)
            )?;
            self.write_flood_table(o, |r| r.flood_reference.as_ref())?;
        }
        Ok(())
    }

    pub(super) fn write_flood_table(
        &self,
        o: &mut String,
        pick: fn(&ResponderResult) -> Option<&StageResult>,
    ) -> std::fmt::Result {
        let cols = self.compared();
        write!(o, "| |")?;
        for r in &cols {
            write!(o, " {} |", r.name)?;
        }
        writeln!(o)?;
        write!(o, "| --- |")?;
        for _ in &cols {
            write!(o, " ---: |")?;
        }
        writeln!(o)?;
        type Cell = fn(&StageResult) -> String;
        let rows: [(&str, Cell); 9] = [
            ("flood frames sent /s", |s| thousands(s.flood_rate)),
            ("frames the host received /s", |s| {
                thousands(s.delivered as f64 / s.seconds)
            }),
            ("dropped before the host", |s| {
                thousands(s.dropped_before_host as f64)
            }),
            ("valid NS answered", |s| {
                format!(
                    "{} ({} of {})",
                    pct(s.answered_fraction),
                    thousands(s.answered as f64),
                    thousands(s.sent as f64)
                )
            }),
            ("latency p50 / p99 / max, µs", |s| {
                format!(
                    "{} / {} / {}",
                    us(s.latency_p50_us),
                    us(s.latency_p99_us),
                    us(s.latency_max_us)
                )
            }),
            ("answers to flood frames (must be 0)", |s| {
                thousands(s.flood_answers as f64)
            }),
            ("host CPU busy", |s| {
                format!("{:.0} %", s.host_cpu.busy_fraction * 100.0)
            }),
            ("process CPU per frame received, µs", |s| {
                cpu(s.precise_us_per_delivered())
            }),
            ("VmRSS at the end", |s| {
                s.memory_end
                    .map(|m| kib(m.vm_rss_kib))
                    .unwrap_or_else(|| "-".into())
            }),
        ];
        for (label, cell) in rows {
            write!(o, "| {label} |")?;
            for r in &cols {
                match pick(r) {
                    Some(s) => write!(o, " {} |", cell(s))?,
                    None => write!(o, " - |")?,
                }
            }
            writeln!(o)?;
        }
        writeln!(o)
    }

    pub(super) fn write_soak(&self, o: &mut String) -> std::fmt::Result {
        writeln!(o, "## Memory under a long flood (ndp-responder)\n")?;
        let Some(r) = self.get(Responder::NdpResponder) else {
            return writeln!(o, "ndp-responder was not measured in this run.\n");
        };
        let Some(s) = &r.soak else {
            return writeln!(o, "No soak in this run (`--soak 0`).\n");
        };
        let samples = &s.rss_samples_kib;
        let first = samples.first().copied().unwrap_or(0);
        let last = samples.last().copied().unwrap_or(0);
        let max = samples.iter().copied().max().unwrap_or(0);
        writeln!(
            o,
            "The same flood for {:.0} s; VmRSS sampled every {:.1} s: {} KiB at the start, {} KiB \
             at the end ({:+.1} %), at most {} KiB. Valid stream answered: {} (p99 {} µs); flood \
             frames sent: {}/s; answers to flood frames: {}.\n",
            s.seconds,
            r.soak_interval_secs,
            thousands(first as f64),
            thousands(last as f64),
            (last as f64 - first as f64) / first.max(1) as f64 * 100.0,
            thousands(max as f64),
            pct(s.answered_fraction),
            us(s.latency_p99_us),
            thousands(s.flood_rate),
            thousands(s.flood_answers as f64)
        )?;
        let shown: Vec<String> = samples.iter().map(|v| v.to_string()).collect();
        writeln!(o, "VmRSS samples, KiB: {}\n", shown.join(" "))?;
        let (answered, refused) = (&s.interval_answered, &s.interval_refused);
        if answered.is_empty() {
            return Ok(());
        }
        let expected = (self.settings.flood_valid_rate as f64 * r.soak_interval_secs).round();
        let total: u64 = refused.iter().sum();
        let mut sorted = refused.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let worst = 3.min(sorted.len());
        let worst_sum: u64 = sorted[..worst].iter().sum();
        writeln!(
            o,
            "Per {:.0} s interval (about {} valid NS sent in each): valid NS answered, and flood \
             frames the host's input queue refused. The {worst} worst of {} intervals hold {} of \
             the {} refused frames.\n",
            r.soak_interval_secs,
            thousands(expected),
            refused.len(),
            pct((total > 0).then(|| worst_sum as f64 / total as f64)),
            thousands(total as f64)
        )?;
        let pairs: Vec<String> = answered
            .iter()
            .zip(refused)
            .map(|(a, f)| format!("{a}/{f}"))
            .collect();
        writeln!(o, "Answered/refused: {}\n", pairs.join(" "))
    }
}
