//! The Markdown report (and the same data as JSON).

use std::fmt::Write;

use crate::measure::{ResponderResult, Settings, StageResult};
use crate::responders::Responder;
use crate::sys::{BinaryInfo, Machine, Memory};
use crate::topo::{Cpus, DUT_IF, PREFIX};
use crate::traffic::{self, Plan};

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
            target: "idle VmRSS <= 3 MiB in Docker mode".into(),
            measured: mem(docker, |m| m.vm_rss_kib).unwrap_or_else(none),
            others: String::new(),
            met: docker.map(|m| m.vm_rss_kib <= 3072),
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

    fn write_machine(&self, o: &mut String) -> std::fmt::Result {
        let m = &self.machine;
        let d = &self.daemon;
        writeln!(o, "## Machine and versions\n")?;
        writeln!(o, "| | |\n| --- | --- |")?;
        writeln!(o, "| CPU | {} ({} CPUs usable) |", m.cpu_model, m.cpus)?;
        writeln!(o, "| kernel | Linux {} |", m.kernel)?;
        writeln!(o, "| OS | {} |", m.os)?;
        writeln!(o, "| memory | {} MiB |", thousands(m.memory_mib as f64))?;
        writeln!(
            o,
            "| ndp-responder | {}: `{}`, {} build, {}, {}, {} bytes, modified {} |",
            self.daemon_version,
            d.path,
            d.profile,
            d.linking,
            if d.stripped {
                "stripped"
            } else {
                "not stripped"
            },
            thousands(d.size_bytes as f64),
            d.modified
        )?;
        writeln!(
            o,
            "| ndppd | {} (`{}`) |",
            self.ndppd_version, self.ndppd_path
        )?;
        writeln!(
            o,
            "| kernel proxy_ndp | Linux {}: `proxy_ndp=1`, `proxy_delay=0` on {DUT_IF}, one `ip -6 neigh add proxy` entry per target |",
            m.kernel
        )?;
        writeln!(o)
    }

    fn write_method(&self, o: &mut String) -> std::fmt::Result {
        let p = &self.plan;
        let s = &self.settings;
        writeln!(o, "## How it was measured\n")?;
        writeln!(
            o,
            "- **Topology**: two network namespaces joined by a veth pair. The generator \
             (`ndpb<PID>-gen`, the provider's router; IPv6 disabled there, so its kernel neither \
             sends nor answers anything) and the host (`ndpb<PID>-dut`) whose uplink `{DUT_IF}` \
             has 2001:db8:1::2/64 and forwarding on; the prefix `{PREFIX}` is routed to a \
             downstream veth. Each responder gets a fresh pair of namespaces. Only \
             2001:db8::/32 addresses are used, and no packet leaves the namespaces."
        )?;
        match self.cpus {
            Some(c) => writeln!(
                o,
                "- **CPUs**: the generator's threads run on CPU {} and the responder on CPU {}; \
                 receive processing is steered (RPS) so that the host's kernel work (delivery to \
                 the responder's socket, or all of proxy_ndp) runs on CPU {} and the generator's \
                 on CPU {}. \"Host CPU\" below is all of CPU {}'s busy time (/proc/stat): \
                 the responder and the kernel on its side.",
                c.generator, c.host, c.host, c.generator, c.host
            )?,
            None => writeln!(
                o,
                "- **CPUs**: one CPU only, nothing pinned; \"host CPU\" is the whole machine."
            )?,
        }
        writeln!(
            o,
            "- **Responders**: ndp-responder `{}`; ndppd `-c FILE` in the \
             foreground with `proxy {DUT_IF} {{ rule {PREFIX} {{ static }} }}`; the kernel with \
             `net.ipv6.conf.all.proxy_ndp=1`, `net.ipv6.neigh.{DUT_IF}.proxy_delay=0` (no random \
             delay before answering a multicast NS) and {} proxy entries. The generator's \
             addresses have permanent neighbour entries on the host, so no responder waits for \
             address resolution.",
            self.daemon_args, p.targets
        )?;
        writeln!(
            o,
            "- **Valid load**: NS for {} targets (2001:db8:1::d:1000 onwards) from {} solicitors; \
             every {}th target is asked by unicast NUD NS (to the target, from \
             2001:db8:1::100:ID), the others by multicast resolution NS (to the solicited-node \
             group, from fe80::100:ID). Every NS has a source link-layer option. Each \
             (solicitor, target) pair is a slot used round-robin ({} slots), so an NA is matched \
             to its NS by its destination and target.",
            p.targets,
            p.solicitors,
            p.unicast_every,
            thousands(p.slots() as f64)
        )?;
        writeln!(
            o,
            "- **Generator**: Rust, in ndp-bench: frames built with `ndp_responder::ndp`, sent \
             with `sendmmsg` on an AF_PACKET socket (qdisc bypassed), paced against the clock: \
             it wakes at most every {} µs and sends what fell due in one call (at most {} \
             frames; \"max\" is unpaced). A frame the host's input \
             queue refuses (veth tells the sender at once) is lost and counts as sent, as on a \
             link whose receiver cannot keep up, so the offered rate never depends on the \
             responder. Rate stages last {} s each: {}.",
            traffic::PACE_MIN.as_micros(),
            traffic::BATCH,
            s.stage_secs,
            s.rates
                .iter()
                .map(|r| r.map_or("max".to_string(), |r| format!(
                    "{} NS/s",
                    thousands(r as f64)
                )))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(
            o,
            "- **Receiver and latency**: a separate thread reads a TPACKET_V3 ring on the \
             generator's interface (BPF: NAs only) and takes the **kernel's receive timestamp** \
             of each NA; the send time is user space's CLOCK_REALTIME just before the \
             `sendmmsg` that carried the NS. Latency = NA received - NS sent; percentiles come \
             from a fixed histogram (1 µs buckets below 1 ms). NAs still arriving after a stage's \
             senders stop (answers to queued NS) count for that stage."
        )?;
        writeln!(
            o,
            "- **CPU**: the responder's process CPU as `utime+stime` deltas of /proc/PID/stat \
             (clock ticks) and as its scheduler runtime (process CPU clock, ns precision), per \
             NS the host's interface received (\"handled\"). Softirq work that happens to run \
             while the responder is on the CPU is charged to it (as the kernel does without IRQ \
             time accounting). The kernel's proxy has no process: its cost is the host CPU's busy \
             time (wall time minus the idle time of /proc/stat, which NO_HZ accounts exactly; the \
             tick-sampled user/system/softirq columns miss the short bursts of a packet-driven \
             CPU), reported for every responder next to the baseline run with no responder at \
             all (the cost of delivering the NS to the host)."
        )?;
        writeln!(
            o,
            "- **Memory**: VmRSS, RssAnon and VmHWM from /proc/PID/status: idle ({} s after the \
             first answer; ndp-responder also in Docker mode, `-N` with DOCKER_HOST pointing at \
             a socket that does not exist), after the rate stages, and during the flood.",
            s.idle_secs
        )?;
        writeln!(
            o,
            "- **Flood**: {} for {} s, as fast as one generator thread can send, with a valid \
             stream of {} NS/s mixed in by the same thread at pseudo-random positions of its \
             batches (a separate thread would pause the flood right before every valid NS and \
             let the host catch up, which favours the valid stream).{}{}",
            traffic::FLOOD_MIX,
            s.flood_secs,
            thousands(s.flood_valid_rate as f64),
            if s.flood_reference_rate > 0 {
                format!(
                    " Then the same flood paced at {} frames/s (whole batches of 64 as they fall \
                     due), the rate the issue's reference generator reached on one core.",
                    thousands(s.flood_reference_rate as f64)
                )
            } else {
                String::new()
            },
            if s.soak_secs > 0.0 {
                format!(
                    " ndp-responder then stays under the same flood for {} s (the soak) while its \
                     VmRSS is sampled.",
                    s.soak_secs
                )
            } else {
                String::new()
            }
        )?;
        writeln!(o)
    }

    fn write_targets(&self, o: &mut String) -> std::fmt::Result {
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

    fn stage_rows(&self) -> Vec<(String, Option<u64>)> {
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

    fn stage<'a>(r: &'a ResponderResult, label: &str) -> Option<&'a StageResult> {
        r.rates.iter().find(|s| s.label == label)
    }

    fn write_rates(&self, o: &mut String) -> std::fmt::Result {
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

    fn write_latency(&self, o: &mut String) -> std::fmt::Result {
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

    fn write_cpu(&self, o: &mut String) -> std::fmt::Result {
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

    fn write_memory(&self, o: &mut String) -> std::fmt::Result {
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

    fn write_flood(&self, o: &mut String) -> std::fmt::Result {
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

    fn write_flood_table(
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

    fn write_soak(&self, o: &mut String) -> std::fmt::Result {
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
        writeln!(o, "VmRSS samples, KiB: {}\n", shown.join(" "))
    }

    fn write_notes(&self, o: &mut String) -> std::fmt::Result {
        writeln!(o, "## Notes\n")?;
        let loads: Vec<String> = self
            .results
            .iter()
            .filter_map(|r| {
                let (host, gen) = r.background?;
                Some(format!(
                    "{} {:.1} % / {:.1} %",
                    r.name,
                    host.busy_fraction * 100.0,
                    gen.busy_fraction * 100.0
                ))
            })
            .collect();
        if !loads.is_empty() {
            writeln!(
                o,
                "- Background load with no traffic (host CPU / generator CPU), measured before \
                 each responder's stages: {}.",
                loads.join("; ")
            )?;
        }
        if self.results.iter().any(|r| {
            r.background
                .is_some_and(|(h, g)| h.busy_fraction > 0.05 || g.busy_fraction > 0.05)
        }) {
            writeln!(
                o,
                "- **The machine was not quiet**: some other work kept a measured CPU more than \
                 5 % busy with no traffic. Every CPU figure includes that work, and it competes \
                 with the responders; run the benchmark again on an idle machine."
            )?;
        }
        if let Some(b) = self.get(Responder::Baseline) {
            for s in &b.rates {
                writeln!(
                    o,
                    "- Baseline, no responder, {}: the host CPU spent {} µs per NS received, \
                     {:.0} % busy: the cost of delivering the solicitations (and forwarding the \
                     unicast ones downstream) that every responder also pays.",
                    s.label,
                    cpu(s.host_us_per_delivered()),
                    s.host_cpu.busy_fraction * 100.0
                )?;
            }
        }
        for r in &self.results {
            if let Some(c) = &r.counters {
                writeln!(o, "- {}'s counters at exit: `{c}`", r.name)?;
                let limited = c
                    .split("rate-limited ")
                    .nth(1)
                    .and_then(|v| v.split(|ch: char| !ch.is_ascii_digit()).next())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                if limited > 0 {
                    writeln!(
                        o,
                        "- ndp-responder withheld {} answers under its own rate limits (`--rate-limit`, \
                         `--rate-limit-per-source`; see `ndp-responder --help` for the defaults): \
                         stages whose answers exceed them are capped by design, not by speed. \
                         `ndp-bench --daemon-arg=--rate-limit=0 --daemon-arg=--rate-limit-per-source=0` \
                         measures without them.",
                        thousands(limited as f64)
                    )?;
                }
            }
            if let Some(ms) = r.ready_ms {
                writeln!(
                    o,
                    "- {} answered its first NS {:.0} ms after start.",
                    r.name, ms
                )?;
            }
            if let Some(rps) = &r.rps {
                if rps != "on" {
                    writeln!(o, "- {}: receive steering {rps}.", r.name)?;
                }
            }
            let stages = r
                .rates
                .iter()
                .chain(&r.flood)
                .chain(&r.flood_reference)
                .chain(&r.soak);
            for s in stages {
                if s.send_errors > 0 {
                    writeln!(
                        o,
                        "- {}, {}: {} send errors (first: {}); those frames were sent again.",
                        r.name,
                        s.label,
                        s.send_errors,
                        s.first_send_error.as_deref().unwrap_or("?")
                    )?;
                }
                if s.unknown_answers > 0 || s.malformed_answers > 0 {
                    writeln!(
                        o,
                        "- {}, {}: {} NAs matched nothing sent, {} were malformed.",
                        r.name, s.label, s.unknown_answers, s.malformed_answers
                    )?;
                }
                if s.answers_lost > 0 {
                    writeln!(
                        o,
                        "- {}, {}: {} NAs were lost on the way back (the generator's input queue \
                         was full): the answered fraction is a lower bound.",
                        r.name, s.label, s.answers_lost
                    )?;
                }
                if s.receiver_ring_drops > 0 {
                    writeln!(
                        o,
                        "- {}, {}: the receiver's ring dropped {} frames (the answered fraction is a lower bound).",
                        r.name, s.label, s.receiver_ring_drops
                    )?;
                }
            }
            if r.responder == Responder::Ndppd
                && r.rates
                    .iter()
                    .any(|s| s.sent_unicast > 0 && s.answered_unicast == 0)
            {
                writeln!(
                    o,
                    "- ndppd never answers unicast NUD solicitations: it drops every NS whose \
                     destination is not multicast (`iface::poll_all` in ndppd 0.2.5), so its \
                     answered fraction is at most the multicast share ({}).",
                    pct(Some(1.0 - 1.0 / self.plan.unicast_every.max(1) as f64))
                )?;
            }
        }
        writeln!(o)
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
