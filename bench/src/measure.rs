//! One responder's measurement: build the namespaces, start the receiver and the responder,
//! run the stages, and collect what each stage cost and achieved.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::responders::{self, Process, Responder};
use crate::sys::{self, bail, CpuTimes, DevStats, Memory, Result};
use crate::topo::{self, Cpus, Topology, DUT_IF, GEN_IF};
use crate::traffic::{self, FrameSet, Plan, Ring, Shared, ThreadSetup, TxSocket};

/// How long and how hard each part of the run goes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settings {
    pub smoke: bool,
    /// Offered rates of the rate stages, NS/s; None is "as fast as the generator can".
    pub rates: Vec<Option<u64>>,
    pub stage_secs: f64,
    pub flood_secs: f64,
    pub soak_secs: f64,
    pub idle_secs: f64,
    /// The valid stream that runs during the flood, NS/s.
    pub flood_valid_rate: u64,
    /// A second flood paced at this many frames/s (the reference generator's rate);
    /// 0 skips it.
    pub flood_reference_rate: u64,
    /// Rates of the baseline (no responder) stages.
    pub baseline_rates: Vec<u64>,
}

/// Everything the measurements share.
pub struct Env {
    pub plan: Plan,
    pub valid: FrameSet,
    pub flood: FrameSet,
    pub cpus: Option<Cpus>,
    pub dir: PathBuf,
    pub daemon: PathBuf,
    /// Extra arguments for ndp-responder (after `-i IFACE -n PREFIX`).
    pub daemon_args: Vec<String>,
    pub ndppd: PathBuf,
    pub settings: Settings,
}

/// How busy one CPU (or the machine) was over a stage, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CpuShare {
    pub wall_ns: u64,
    /// Wall time minus idle and stolen time.
    pub busy_ns: u64,
    pub busy_fraction: f64,
}

impl CpuShare {
    fn between(
        before: &Snapshot,
        after: &Snapshot,
        pick: fn(&Snapshot) -> CpuTimes,
        cpus: u64,
    ) -> CpuShare {
        let wall = after.at.duration_since(before.at).as_nanos() as u64 * cpus;
        let (a, b) = (pick(after), pick(before));
        let not_busy = a.idle.saturating_sub(b.idle) + a.steal.saturating_sub(b.steal);
        let busy = wall.saturating_sub(not_busy);
        CpuShare {
            wall_ns: wall,
            busy_ns: busy,
            busy_fraction: if wall > 0 {
                busy as f64 / wall as f64
            } else {
                0.0
            },
        }
    }
}

/// What one stage offered, achieved and cost.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StageResult {
    pub label: String,
    pub target_rate: Option<u64>,
    pub seconds: f64,
    pub sent: u64,
    pub sent_multicast: u64,
    pub sent_unicast: u64,
    pub sent_rate: f64,
    pub flood_sent: u64,
    pub flood_rate: f64,
    /// Frames the host's interface received (valid + flood).
    pub delivered: u64,
    /// Frames the host's input queue refused (veth drop counter).
    pub dropped_before_host: u64,
    /// NAs lost on the way back: the generator's input queue was full (veth drop counter).
    pub answers_lost: u64,
    pub answered: u64,
    pub answered_multicast: u64,
    pub answered_unicast: u64,
    pub answered_rate: f64,
    pub answered_fraction: Option<f64>,
    pub answered_fraction_multicast: Option<f64>,
    pub answered_fraction_unicast: Option<f64>,
    pub latency_p50_us: Option<f64>,
    pub latency_p99_us: Option<f64>,
    pub latency_max_us: Option<f64>,
    pub late_or_duplicate: u64,
    pub flood_answers: u64,
    pub unknown_answers: u64,
    pub malformed_answers: u64,
    pub receiver_ring_drops: u64,
    /// The responder process: scheduler runtime (ns precision) and /proc/PID/stat times.
    pub responder_cpu_ns: Option<u64>,
    pub responder_utime_ns: Option<u64>,
    pub responder_stime_ns: Option<u64>,
    /// The host's CPU (all of its time: the responder and the kernel's receive path).
    pub host_cpu: CpuShare,
    pub generator_cpu: CpuShare,
    pub sender_cpu_ns: u64,
    /// Frames the host's input queue refused (lost, counted as sent).
    pub refused: u64,
    pub send_errors: u64,
    pub first_send_error: Option<String>,
    pub memory_end: Option<Memory>,
    /// VmRSS samples (soak only), KiB.
    pub rss_samples_kib: Vec<u64>,
}

impl StageResult {
    /// Responder CPU (utime + stime from /proc/PID/stat) per NS the host received, in µs.
    pub fn stat_us_per_delivered(&self) -> Option<f64> {
        let (u, s) = (self.responder_utime_ns?, self.responder_stime_ns?);
        per(u + s, self.delivered)
    }
    pub fn precise_us_per_delivered(&self) -> Option<f64> {
        per(self.responder_cpu_ns?, self.delivered)
    }
    /// The host CPU's busy time per NS it received, in µs.
    pub fn host_us_per_delivered(&self) -> Option<f64> {
        per(self.host_cpu.busy_ns, self.delivered)
    }
    /// The host CPU's busy time outside the responder process per NS received, in µs: the
    /// kernel's receive path (and, for the kernel's proxy, all of it).
    pub fn host_outside_us_per_delivered(&self) -> Option<f64> {
        let outside = self
            .host_cpu
            .busy_ns
            .saturating_sub(self.responder_cpu_ns.unwrap_or(0));
        per(outside, self.delivered)
    }
}

fn per(ns: u64, count: u64) -> Option<f64> {
    (count > 0).then(|| ns as f64 / 1000.0 / count as f64)
}

fn fraction(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Everything measured for one responder.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResponderResult {
    pub responder: Responder,
    pub name: String,
    /// From start to the first answer to a probe NS.
    pub ready_ms: Option<f64>,
    pub idle: Option<Memory>,
    pub idle_docker: Option<Memory>,
    pub rates: Vec<StageResult>,
    pub after_rates: Option<Memory>,
    pub flood: Option<StageResult>,
    /// The flood paced at the reference rate.
    pub flood_reference: Option<StageResult>,
    pub soak: Option<StageResult>,
    pub soak_interval_secs: f64,
    pub end_memory: Option<Memory>,
    /// ndp-responder's counters line at exit.
    pub counters: Option<String>,
    pub kernel_proxy_entries: Option<usize>,
    pub rps: Option<String>,
    pub notes: Vec<String>,
    /// How busy the host and generator CPUs were with no traffic at all (other work on the
    /// machine, which every CPU figure then includes).
    pub background: Option<(CpuShare, CpuShare)>,
}

/// Values read before and after a stage.
struct Snapshot {
    at: Instant,
    proc_cpu: Option<u64>,
    proc_times: Option<(u64, u64)>,
    host: CpuTimes,
    gen: CpuTimes,
    dut_dev: DevStats,
    gen_dev: DevStats,
}

/// What one stage runs.
struct StageSpec {
    label: String,
    rate: Option<u64>,
    secs: f64,
    flood: bool,
    /// The flood's own rate, frames/s (None: as fast as the generator can).
    flood_rate: Option<u64>,
    /// Sample VmRSS this often (soak).
    sample_every: Option<f64>,
}

/// The namespaces, sockets and receiver of one responder's measurement. Dropping it stops the
/// receiver and removes the namespaces.
struct Session<'e> {
    env: &'e Env,
    topo: Topology,
    shared: Arc<Shared>,
    tx: TxSocket,
    tx_flood: TxSocket,
    receiver: Option<JoinHandle<()>>,
    seq: u64,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.receiver.take() {
            let _ = r.join();
        }
        self.topo.remove();
    }
}

fn progress(text: &str) {
    eprintln!("ndp-bench: {text}");
}

impl<'e> Session<'e> {
    fn open(env: &'e Env) -> Result<Session<'e>> {
        let topo = Topology::build(&env.plan.solicitors(), env.cpus)?;
        let shared = Shared::new(&env.plan);
        let ring = Ring::open(&topo.gen, topo.gen_ifindex)?;
        let tx = TxSocket::open(&topo.gen, topo.gen_ifindex)?;
        let tx_flood = TxSocket::open(&topo.gen, topo.gen_ifindex)?;
        let (plan, cpu) = (env.plan, env.cpus.map(|c| c.generator));
        let for_receiver = shared.clone();
        let receiver = std::thread::Builder::new()
            .name("receiver".into())
            .spawn(move || traffic::receive(ring, for_receiver, plan, cpu))
            .map_err(|e| sys::Error(format!("starting the receiver thread: {e}")))?;
        let session = Session {
            env,
            topo,
            shared,
            tx,
            tx_flood,
            receiver: Some(receiver),
            seq: 0,
        };
        let started = crate::wait_until(Duration::from_secs(5), || {
            session.shared.receiver_running.load(Ordering::Acquire) == 1
        });
        if !started {
            bail!("the receiver thread did not start within 5 s");
        }
        Ok(session)
    }

    fn check_receiver(&self) -> Result<()> {
        if let Some(e) = self
            .shared
            .receiver_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            bail!("the receiver failed: {e}");
        }
        Ok(())
    }

    fn host_cpu(&self) -> Option<usize> {
        self.env.cpus.map(|c| c.host)
    }

    fn snapshot(&self, pid: Option<u32>) -> Result<Snapshot> {
        let (host, gen) = match self.env.cpus {
            Some(c) => (
                sys::cpu_times(Some(c.host)),
                sys::cpu_times(Some(c.generator)),
            ),
            None => (sys::cpu_times(None), sys::cpu_times(None)),
        };
        Ok(Snapshot {
            at: Instant::now(),
            proc_cpu: pid.and_then(sys::process_cpu_ns),
            proc_times: pid.and_then(sys::proc_stat_times),
            host,
            gen,
            dut_dev: sys::dev_stats(&self.topo.dut, DUT_IF)?,
            gen_dev: sys::dev_stats(&self.topo.gen, GEN_IF)?,
        })
    }

    /// The host and generator CPUs' busy share over `secs` with no traffic.
    fn background(&self, pid: Option<u32>, secs: f64) -> Result<(CpuShare, CpuShare)> {
        let before = self.snapshot(pid)?;
        std::thread::sleep(Duration::from_secs_f64(secs));
        let after = self.snapshot(pid)?;
        Ok(self.load_between(&before, &after))
    }

    fn load_between(&self, before: &Snapshot, after: &Snapshot) -> (CpuShare, CpuShare) {
        let cpus = if self.env.cpus.is_some() {
            1
        } else {
            sys::cpu_count() as u64
        };
        (
            CpuShare::between(before, after, |s| s.host, cpus),
            CpuShare::between(before, after, |s| s.gen, cpus),
        )
    }

    /// Send a probe NS every 100 ms until one is answered (or `within` passes).
    fn wait_ready(&mut self, process: Option<&mut Process>, within: Duration) -> Result<f64> {
        let start = Instant::now();
        let mut process = process;
        loop {
            self.shared.reset();
            traffic::send_one(&self.tx, &self.env.valid, &self.env.plan, &self.shared, 0)?;
            let answered =
                crate::wait_until(Duration::from_millis(100), || self.shared.answered() > 0);
            if answered {
                self.shared.reset();
                return Ok(start.elapsed().as_secs_f64() * 1000.0);
            }
            if let Some(p) = process.as_deref_mut() {
                p.check_alive()?;
            }
            self.check_receiver()?;
            if start.elapsed() >= within {
                let log = process
                    .as_deref()
                    .map(|p| format!("; its log:\n{}", p.log()))
                    .unwrap_or_default();
                bail!(
                    "the responder did not answer a valid NS for {} within {} s{log}",
                    self.env.plan.target(0),
                    within.as_secs()
                );
            }
        }
    }

    /// Let the responder idle for `secs` (watching that it stays up), then read its memory.
    fn idle_memory(&self, process: &mut Process, secs: f64) -> Result<Memory> {
        let end = Instant::now() + Duration::from_secs_f64(secs);
        while Instant::now() < end {
            process.check_alive()?;
            std::thread::sleep(Duration::from_millis(20).min(end - Instant::now()));
        }
        process.check_alive()?;
        sys::memory(process.pid).ok_or_else(|| {
            sys::Error(format!(
                "reading /proc/{}/status of {}",
                process.pid, process.what
            ))
        })
    }

    fn run_stage(
        &mut self,
        spec: &StageSpec,
        process: Option<&mut Process>,
    ) -> Result<StageResult> {
        let pid = process.as_ref().map(|p| p.pid);
        self.shared.reset();
        self.shared.ring_drops.store(0, Ordering::Relaxed);
        let before = self.snapshot(pid)?;
        let duration = Duration::from_secs_f64(spec.secs);
        let gen_cpu = self.env.cpus.map(|c| c.generator);
        let env = self.env;
        let (shared, tx, tx_flood) = (&*self.shared, &self.tx, &self.tx_flood);
        let mut seq = self.seq;
        let mut samples: Vec<u64> = Vec::new();
        if let Some(every) = spec.sample_every {
            samples.reserve_exact((spec.secs / every).ceil() as usize + 2);
        }
        let gen = |nice| ThreadSetup { cpu: gen_cpu, nice };
        let result = std::thread::scope(|scope| {
            let seq = &mut seq;
            let sender = scope.spawn(move || {
                if spec.flood {
                    // One thread sends the flood with the valid stream mixed in.
                    let mixed = spec.rate.map(|rate| traffic::Mixed {
                        frames: &env.valid,
                        plan: &env.plan,
                        rate,
                        seq,
                    });
                    traffic::send_flood(
                        tx_flood,
                        &env.flood,
                        shared,
                        duration,
                        spec.flood_rate,
                        mixed,
                        gen(10),
                    )
                } else {
                    // Unpaced (max) stages must not starve the receiver on the same CPU.
                    let nice = if spec.rate.is_none() { 10 } else { 0 };
                    traffic::send_valid(
                        tx,
                        &env.valid,
                        &env.plan,
                        shared,
                        spec.rate,
                        duration,
                        seq,
                        gen(nice),
                    )
                }
            });
            if let (Some(every), Some(pid)) = (spec.sample_every, pid) {
                let start = Instant::now();
                let mut next = start;
                while !sender.is_finished() {
                    if Instant::now() >= next {
                        if let Some(m) = sys::memory(pid) {
                            if samples.len() < samples.capacity() {
                                samples.push(m.vm_rss_kib);
                            }
                        }
                        next += Duration::from_secs_f64(every);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            sender.join()
        });
        let out = result.map_err(|_| sys::Error("a sender thread panicked".into()))?;
        self.seq = seq;
        self.drain();
        let after = self.snapshot(pid)?;
        let rx = self.shared.take_stats();
        if let Some(p) = process {
            p.check_alive()?;
        }
        self.check_receiver()?;
        let secs = out.elapsed.as_secs_f64().max(1e-9);
        let sent_m = out.sent[0];
        let sent_u = out.sent[1];
        let (ans_m, ans_u) = (rx.answered[0], rx.answered[1]);
        let sent = sent_m + sent_u;
        let answered = ans_m + ans_u;
        let memory_end = pid.and_then(sys::memory);
        if let (Some(m), Some(_)) = (memory_end, spec.sample_every) {
            if samples.len() < samples.capacity() {
                samples.push(m.vm_rss_kib);
            }
        }
        let host_cpus = if self.env.cpus.is_some() {
            1
        } else {
            sys::cpu_count() as u64
        };
        Ok(StageResult {
            label: spec.label.clone(),
            target_rate: spec.rate,
            seconds: secs,
            sent,
            sent_multicast: sent_m,
            sent_unicast: sent_u,
            sent_rate: sent as f64 / secs,
            flood_sent: out.flood_sent,
            flood_rate: out.flood_sent as f64 / secs,
            delivered: after
                .dut_dev
                .rx_packets
                .saturating_sub(before.dut_dev.rx_packets),
            dropped_before_host: after
                .gen_dev
                .tx_dropped
                .saturating_sub(before.gen_dev.tx_dropped)
                + after
                    .dut_dev
                    .rx_dropped
                    .saturating_sub(before.dut_dev.rx_dropped),
            answers_lost: after
                .dut_dev
                .tx_dropped
                .saturating_sub(before.dut_dev.tx_dropped)
                + after
                    .gen_dev
                    .rx_dropped
                    .saturating_sub(before.gen_dev.rx_dropped),
            answered,
            answered_multicast: ans_m,
            answered_unicast: ans_u,
            answered_rate: answered as f64 / secs,
            answered_fraction: fraction(answered, sent),
            answered_fraction_multicast: fraction(ans_m, sent_m),
            answered_fraction_unicast: fraction(ans_u, sent_u),
            latency_p50_us: rx.latency.quantile_us(0.50),
            latency_p99_us: rx.latency.quantile_us(0.99),
            latency_max_us: (rx.latency.total > 0).then(|| rx.latency.max_ns as f64 / 1000.0),
            late_or_duplicate: rx.late_or_duplicate,
            flood_answers: rx.flood_answers,
            unknown_answers: rx.unknown,
            malformed_answers: rx.malformed,
            receiver_ring_drops: self.shared.ring_drops.load(Ordering::Relaxed),
            responder_cpu_ns: after
                .proc_cpu
                .zip(before.proc_cpu)
                .map(|(a, b)| a.saturating_sub(b)),
            responder_utime_ns: after
                .proc_times
                .zip(before.proc_times)
                .map(|(a, b)| a.0.saturating_sub(b.0)),
            responder_stime_ns: after
                .proc_times
                .zip(before.proc_times)
                .map(|(a, b)| a.1.saturating_sub(b.1)),
            host_cpu: CpuShare::between(&before, &after, |s| s.host, host_cpus),
            generator_cpu: CpuShare::between(&before, &after, |s| s.gen, host_cpus),
            sender_cpu_ns: out.cpu_ns,
            refused: out.refused,
            send_errors: out.send_errors,
            first_send_error: out.first_error,
            memory_end,
            rss_samples_kib: samples,
        })
    }

    /// After the senders stop: wait until no NA has arrived for 100 ms (answers still queued
    /// in a responder's socket are part of the stage), at most 3 s.
    fn drain(&self) {
        let deadline = Instant::now() + Duration::from_secs(3);
        let quiet = Duration::from_millis(100 + 2 * traffic::RING_RETIRE_MS);
        let mut last = self.shared.seen.load(Ordering::Acquire);
        let mut since = Instant::now();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            let now = self.shared.seen.load(Ordering::Acquire);
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                break;
            }
        }
    }
}

fn rate_label(rate: Option<u64>) -> String {
    match rate {
        None => "max".into(),
        Some(r) if r >= 1000 && r % 1000 == 0 => format!("{}k/s", r / 1000),
        Some(r) => format!("{r}/s"),
    }
}

/// Measure one responder from start to stop.
pub fn measure(env: &Env, responder: Responder) -> Result<ResponderResult> {
    progress(&format!("measuring {}", responder.name()));
    let s = &env.settings;
    let mut session = Session::open(env)?;
    let mut result = ResponderResult {
        responder,
        name: responder.name().to_string(),
        ready_ms: None,
        idle: None,
        idle_docker: None,
        rates: Vec::new(),
        after_rates: None,
        flood: None,
        flood_reference: None,
        soak: None,
        soak_interval_secs: 0.0,
        end_memory: None,
        counters: None,
        kernel_proxy_entries: None,
        rps: Some(match &session.topo.rps {
            Ok(()) => "on".into(),
            Err(e) => format!("off: {e}"),
        }),
        notes: Vec::new(),
        background: None,
    };
    let cpu = session.host_cpu();
    let dut = session.topo.dut.clone();

    if responder == Responder::Baseline {
        result.background = Some(session.background(None, s.idle_secs)?);
        for &rate in &s.baseline_rates {
            let spec = StageSpec {
                label: rate_label(Some(rate)),
                rate: Some(rate),
                secs: s.stage_secs,
                flood: false,
                flood_rate: None,
                sample_every: None,
            };
            progress(&format!("  baseline stage {}", spec.label));
            result.rates.push(session.run_stage(&spec, None)?);
        }
        return Ok(result);
    }

    let mut process = match responder {
        Responder::NdpResponder => {
            progress("  idle in Docker mode (no engine)");
            let mut docker =
                responders::start_ndp_responder_docker(&dut, &env.daemon, &env.dir, cpu)?;
            docker.wait_for_log("answering on", Duration::from_secs(10))?;
            result.idle_docker = Some(session.idle_memory(&mut docker, s.idle_secs)?);
            docker.stop()?;
            Some(responders::start_ndp_responder(
                &dut,
                &env.daemon,
                &env.daemon_args,
                &env.dir,
                cpu,
            )?)
        }
        Responder::Ndppd => Some(responders::start_ndppd(&dut, &env.ndppd, &env.dir, cpu)?),
        Responder::Kernel => {
            topo::enable_kernel_proxy(&dut, &env.plan.targets())?;
            let entries = topo::kernel_proxy_entries(&dut)?;
            if entries < env.plan.targets as usize {
                bail!(
                    "the kernel holds {entries} proxy entries, expected {}",
                    env.plan.targets
                );
            }
            result.kernel_proxy_entries = Some(entries);
            None
        }
        Responder::Baseline => None,
    };
    result.ready_ms = Some(session.wait_ready(process.as_mut(), Duration::from_secs(10))?);
    // The idle period doubles as the measure of the machine's background load.
    let pid = process.as_ref().map(|p| p.pid);
    let quiet = session.snapshot(pid)?;
    match process.as_mut() {
        Some(p) => result.idle = Some(session.idle_memory(p, s.idle_secs)?),
        None => std::thread::sleep(Duration::from_secs_f64(s.idle_secs)),
    }
    let after = session.snapshot(pid)?;
    result.background = Some(session.load_between(&quiet, &after));

    for &rate in &s.rates {
        let spec = StageSpec {
            label: rate_label(rate),
            rate,
            secs: s.stage_secs,
            flood: false,
            flood_rate: None,
            sample_every: None,
        };
        progress(&format!("  stage {}", spec.label));
        let stage = session.run_stage(&spec, process.as_mut())?;
        progress(&format!(
            "    sent {:.0}/s, answered {:.0}/s ({:.1} %), p99 {}",
            stage.sent_rate,
            stage.answered_rate,
            stage.answered_fraction.unwrap_or(0.0) * 100.0,
            stage
                .latency_p99_us
                .map(|v| format!("{v:.0} µs"))
                .unwrap_or_else(|| "-".into())
        ));
        result.rates.push(stage);
    }
    result.after_rates = process.as_ref().and_then(|p| sys::memory(p.pid));

    // The flood at the generator's maximum, then paced at the reference rate.
    let mut flood = |label: &str, flood_rate: Option<u64>, heading: String| {
        let spec = StageSpec {
            label: label.into(),
            rate: Some(s.flood_valid_rate),
            secs: s.flood_secs,
            flood: true,
            flood_rate,
            sample_every: None,
        };
        progress(&heading);
        let stage = session.run_stage(&spec, process.as_mut())?;
        progress(&format!(
            "    flood {:.0}/s, valid answered {:.1} %",
            stage.flood_rate,
            stage.answered_fraction.unwrap_or(0.0) * 100.0
        ));
        Ok::<_, sys::Error>(stage)
    };
    result.flood = Some(flood(
        "flood",
        None,
        format!("  flood ({} s)", s.flood_secs),
    )?);
    if s.flood_reference_rate > 0 {
        let heading = format!(
            "  flood at {} frames/s ({} s)",
            s.flood_reference_rate, s.flood_secs
        );
        let rate = Some(s.flood_reference_rate);
        result.flood_reference = Some(flood("flood-reference", rate, heading)?);
    }

    if responder == Responder::NdpResponder && s.soak_secs > 0.0 {
        let every = (s.soak_secs / 60.0).clamp(0.25, 10.0);
        result.soak_interval_secs = every;
        let soak = StageSpec {
            label: "soak".into(),
            rate: Some(s.flood_valid_rate),
            secs: s.soak_secs,
            flood: true,
            flood_rate: None,
            sample_every: Some(every),
        };
        progress(&format!("  soak: flood for {} s", s.soak_secs));
        let stage = session.run_stage(&soak, process.as_mut())?;
        progress(&format!(
            "    VmRSS {} -> {} KiB, valid answered {:.1} %",
            stage.rss_samples_kib.first().copied().unwrap_or(0),
            stage.rss_samples_kib.last().copied().unwrap_or(0),
            stage.answered_fraction.unwrap_or(0.0) * 100.0
        ));
        result.soak = Some(stage);
    }

    if let Some(p) = process.take() {
        result.end_memory = sys::memory(p.pid);
        let log = p.stop()?;
        result.counters = log
            .lines()
            .rev()
            .find(|l| l.contains("stopped:"))
            .map(|l| l[l.find(DUT_IF).unwrap_or(0)..].trim().to_string());
    }
    Ok(result)
}
