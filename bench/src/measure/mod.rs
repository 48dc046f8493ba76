//! One responder's measurement: build the namespaces, start the receiver and the responder,
//! run the stages, and collect what each stage cost and achieved.
//!
//! Owns: the order of a measurement (readiness, idle memory, rate stages, floods, soak) and
//! the result types the report reads. Must not: write the report, or leave a responder or a
//! namespace behind (the [`session::Session`] and the responder's `Process` remove theirs on
//! drop).

mod session;

use std::path::PathBuf;
use std::time::Duration;

use crate::quiet;
use crate::responders::{self, Responder};
use crate::sys::{self, bail, Memory, Result};
use crate::topo::{self, Cpus, DUT_IF};
use crate::traffic::{FrameSet, Plan};

use session::{Session, StageSpec};

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
    /// How long to wait for a quiet machine before each responder, and one probe's length.
    pub quiet_wait_secs: f64,
    pub probe_secs: f64,
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
    /// Per sampling interval (soak only): valid NS answered, and frames the host's input queue
    /// refused. Shows whether losses are spread evenly or come in bursts.
    pub interval_answered: Vec<u64>,
    pub interval_refused: Vec<u64>,
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
    /// What the machine took from the measured CPUs before the stages (None: nothing pinned).
    pub probe: Option<quiet::Probe>,
}

fn progress(text: &str) {
    eprintln!("ndp-bench: {text}");
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
    let probe = env
        .cpus
        .map(|c| quiet::wait_for_quiet(c, s.probe_secs, s.quiet_wait_secs));
    if let Some(p) = probe.filter(|p| !p.quiet && s.quiet_wait_secs > 0.0) {
        progress(&format!(
            "  the host CPU is not quiet (after {:.0} s: it lost {:.1} % to stalls, \
             longest {:.0} µs); measuring anyway",
            p.waited_secs,
            p.host.lost_fraction * 100.0,
            p.host.longest_us
        ));
    }
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
        probe,
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
        Responder::NdpResponderSocket => {
            let mut args = env.daemon_args.clone();
            args.push("--no-fast-path".into());
            Some(responders::start_ndp_responder(
                &dut,
                &env.daemon,
                &args,
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
