//! The report's prose: the machine and versions, how it was measured, and the notes that
//! explain what the tables show.
//!
//! Owns: the words around the numbers. Must not: compute figures beyond formatting (the
//! tables and targets own those).

use std::fmt::Write;

use super::{cpu, pct, thousands, Report};
use crate::responders::Responder;
use crate::topo::{DUT_IF, PREFIX};
use crate::traffic;

impl Report {
    pub(super) fn write_machine(&self, o: &mut String) -> std::fmt::Result {
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

    pub(super) fn write_method(&self, o: &mut String) -> std::fmt::Result {
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
        if let (Some(c), Some(q)) = (self.cpus, &self.quieted) {
            let threads = if q.threads.is_empty() {
                "no kernel thread could be moved".to_string()
            } else {
                format!("kernel threads moved: {}", q.threads.join(", "))
            };
            writeln!(
                o,
                "- **Host CPU kept to the host's work**: for the run, the machine's kernel \
                 threads that may run on any CPU are moved off CPU {}{}, and put back at the end \
                 ({threads}). Packet work that overflows a softirq round continues in \
                 `ksoftirqd`, an ordinary thread; a memory scanner that runs there for \
                 milliseconds (DAMON's `kdamond` on the development VM) would make every \
                 responder's NS wait in the input queue. Per-CPU threads and user processes \
                 stay where they are.",
                c.host,
                if q.workqueues {
                    " (so are the unbound workqueues)"
                } else {
                    ""
                },
            )?;
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
            "- **Generator**: Rust, in ndp-bench: frames built with `ndp_responder::ndp` (the \
             flood's broken ones rewritten in place with `ndp::packet::Packet`), sent with \
             `sendmmsg` on an AF_PACKET socket (qdisc bypassed), paced against the clock: it wakes at most every {} µs and sends what fell due in calls \
             of at most {} frames, each stamped just before it (\"max\" is unpaced, {} frames a \
             call). A frame the host's input \
             queue refuses (veth tells the sender at once) is lost and counts as sent, as on a \
             link whose receiver cannot keep up, so the offered rate never depends on the \
             responder. Rate stages last {} s each: {}.",
            traffic::PACE_MIN.as_micros(),
            traffic::PACED_BATCH,
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
             generator's interface (BPF: the daemon's own program, `link::ndp_filter`, for incoming \
             NAs) and takes the **kernel's receive timestamp** \
             of each NA, stamped as the NA enters the generator's interface (`netif_rx`, on the \
             CPU that sent it: a socket with SO_TIMESTAMPNS is held open for the run, so the \
             generator CPU's own delays in getting to the frame are not counted); the send time is user space's CLOCK_REALTIME just before the \
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
             stream of {} NS/s mixed in by the same thread: each valid NS falls due at a \
             pseudo-random moment of its period and takes a pseudo-random place among the next \
             64 frames of the stream, which it keeps until sent, so the host's full queue \
             refuses valid and flood frames alike (a separate thread would pause the flood \
             right before every valid NS and let the host catch up, which favours the valid \
             stream).{}{}",
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

    pub(super) fn write_notes(&self, o: &mut String) -> std::fmt::Result {
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
        let probes: Vec<String> = self
            .results
            .iter()
            .filter_map(|r| {
                let p = r.probe?;
                let one = |s: &crate::quiet::Stalls| {
                    format!(
                        "{} ({} over 1 ms), longest {} µs, {:.2} % lost",
                        s.stalls,
                        s.over_1ms,
                        thousands(s.longest_us),
                        s.lost_fraction * 100.0
                    )
                };
                Some(format!(
                    "{}: host {}; generator {}{}",
                    r.name,
                    one(&p.host),
                    one(&p.generator),
                    match (p.quiet, p.probes) {
                        (true, 1) => String::new(),
                        (true, n) => format!(" (quiet at probe {n}, after {:.0} s)", p.waited_secs),
                        (false, n) => format!(
                            " (**not quiet** after {n} probes and {:.0} s: measured anyway)",
                            p.waited_secs
                        ),
                    }
                ))
            })
            .collect();
        if !probes.is_empty() {
            writeln!(
                o,
                "- What the machine itself took from the measured CPUs, right before each \
                 responder's stages: a thread spinning on each CPU for {} s counts the gaps \
                 over {} µs between its clock reads (a vCPU stopped by the hypervisor, \
                 interrupts). A responder's stages start once the host CPU is quiet (no gap over \
                 1 ms, under 0.5 % of the time lost), or after {} s of waiting; the generator's \
                 CPU also runs the kernel threads moved off the host's. {}.",
                self.settings.probe_secs,
                crate::quiet::STALL_US,
                self.settings.quiet_wait_secs,
                probes.join("; ")
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
