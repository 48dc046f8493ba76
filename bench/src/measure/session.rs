//! The session of one responder's measurement: its namespaces, sender sockets and receiver
//! thread, and what one stage does (send, sample, drain, read the counters before and after).
//!
//! Owns: running a stage and turning its counters into a [`StageResult`]; waiting for a
//! responder's first answer; reading idle memory. Must not: choose the stages or their order
//! (that is [`super::measure`]), or start and stop responders.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{fraction, CpuShare, Env, StageResult};
use crate::responders::Process;
use crate::sys::{self, bail, CpuTimes, DevStats, Memory, Result};
use crate::topo::{Topology, DUT_IF, GEN_IF};
use crate::traffic::{self, Ring, Shared, ThreadSetup, TxSocket};

/// Values read before and after a stage.
pub(super) struct Snapshot {
    at: Instant,
    proc_cpu: Option<u64>,
    proc_times: Option<(u64, u64)>,
    host: CpuTimes,
    gen: CpuTimes,
    dut_dev: DevStats,
    gen_dev: DevStats,
}

/// What one stage runs.
pub(super) struct StageSpec {
    pub(super) label: String,
    pub(super) rate: Option<u64>,
    pub(super) secs: f64,
    pub(super) flood: bool,
    /// The flood's own rate, frames/s (None: as fast as the generator can).
    pub(super) flood_rate: Option<u64>,
    /// Sample VmRSS this often (soak).
    pub(super) sample_every: Option<f64>,
}

/// The namespaces, sockets and receiver of one responder's measurement. Dropping it stops the
/// receiver and removes the namespaces.
pub(super) struct Session<'e> {
    pub(super) env: &'e Env,
    pub(super) topo: Topology,
    pub(super) shared: Arc<Shared>,
    pub(super) tx: TxSocket,
    pub(super) tx_flood: TxSocket,
    pub(super) receiver: Option<JoinHandle<()>>,
    pub(super) seq: u64,
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

impl<'e> Session<'e> {
    pub(super) fn open(env: &'e Env) -> Result<Session<'e>> {
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

    pub(super) fn check_receiver(&self) -> Result<()> {
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

    pub(super) fn host_cpu(&self) -> Option<usize> {
        self.env.cpus.map(|c| c.host)
    }

    pub(super) fn snapshot(&self, pid: Option<u32>) -> Result<Snapshot> {
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
    pub(super) fn background(&self, pid: Option<u32>, secs: f64) -> Result<(CpuShare, CpuShare)> {
        let before = self.snapshot(pid)?;
        std::thread::sleep(Duration::from_secs_f64(secs));
        let after = self.snapshot(pid)?;
        Ok(self.load_between(&before, &after))
    }

    pub(super) fn load_between(&self, before: &Snapshot, after: &Snapshot) -> (CpuShare, CpuShare) {
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
    pub(super) fn wait_ready(
        &mut self,
        process: Option<&mut Process>,
        within: Duration,
    ) -> Result<f64> {
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
    pub(super) fn idle_memory(&self, process: &mut Process, secs: f64) -> Result<Memory> {
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

    pub(super) fn run_stage(
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
        let (mut answered_at, mut refused_at): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
        if let Some(every) = spec.sample_every {
            let n = (spec.secs / every).ceil() as usize + 2;
            samples.reserve_exact(n);
            answered_at.reserve_exact(n);
            refused_at.reserve_exact(n);
        }
        let topo = &self.topo;
        let refused_now = || refused(&sys::dev_stats(&topo.gen, GEN_IF).unwrap_or_default());
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
                        if answered_at.len() < answered_at.capacity() {
                            answered_at.push(shared.answered());
                            refused_at.push(refused_now());
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
        // The stage's last interval ends where the stage's own counts end.
        if spec.sample_every.is_some() && !answered_at.is_empty() {
            answered_at.push(rx.answered[0] + rx.answered[1]);
            refused_at.push(refused(&after.gen_dev));
        }
        // The receiver's counts start at 0 with the stage (reset above), whenever the first
        // sample was taken.
        if let Some(first) = answered_at.first_mut() {
            *first = 0;
        }
        let deltas = |v: &[u64]| v.windows(2).map(|w| w[1].saturating_sub(w[0])).collect();
        let (interval_answered, interval_refused) = (deltas(&answered_at), deltas(&refused_at));
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
            dropped_before_host: refused(&after.gen_dev).saturating_sub(refused(&before.gen_dev)),
            // The same count in the other direction: NAs the generator's queue refused.
            answers_lost: refused(&after.dut_dev).saturating_sub(refused(&before.dut_dev)),
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
            interval_answered,
            interval_refused,
        })
    }

    /// After the senders stop: wait until no NA has arrived for 100 ms (answers still queued
    /// in a responder's socket are part of the stage), at most 3 s.
    pub(super) fn drain(&self) {
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

/// Frames the receiving end's input queue refused, so far, counted at the sending end. veth
/// counts each refused frame twice: as a transmit drop of the sending end and as a receive
/// drop of the receiving end (the input queue's own counter); one of the two is the number.
fn refused(sender: &DevStats) -> u64 {
    sender.tx_dropped
}
