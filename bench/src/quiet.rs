//! Keeping the host CPU to the host's work for the run: the machine's own kernel threads that
//! may run anywhere (memory scanners such as DAMON's `kdamond`, compaction, unbound
//! workqueues) are moved off it, and put back when the run ends.
//!
//! Why: on the host CPU, packet processing that overflows a softirq round continues in
//! `ksoftirqd`, an ordinary thread. A kernel thread that runs there for milliseconds (measured
//! on the development VM: `kdamond.0`, 1-16 ms at a time) makes every responder's NS wait in
//! the input queue, which shows as latency tails and as frames the full queue refuses. Per-CPU
//! threads (`ksoftirqd/N`, `migration/N`, bound kworkers) and user processes stay where they
//! are; the responder and the generator are pinned by the run itself.
//!
//! It also measures what the machine itself takes from the measured CPUs ([`probe`]): on a
//! virtual machine the hypervisor can stop a vCPU for milliseconds at a time, which no
//! responder can answer through. Each responder's stages wait (up to a bound) until a probe
//! finds the machine quiet, and the report gives every probe.
//!
//! A run killed with SIGKILL cannot put them back: the threads then stay off the host CPU until
//! reboot, or until `taskset -p ALL-CPUS-MASK PID` for each (harmless, but the machine has one
//! CPU less for them).
//!
//! Owns: which threads were moved and their original CPU sets, and putting them back (at the
//! end of the run, on Ctrl-C, on a panic); the stall probe and the wait for a quiet machine.
//! Must not: touch a thread that is not a kernel thread, or one bound to a single CPU.

use std::fs;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sys;
use crate::topo::Cpus;

/// PF_KTHREAD in /proc/PID/stat's flags field (include/linux/sched.h).
const PF_KTHREAD: u64 = 0x0020_0000;
/// The CPU set of the kernel's unbound workqueue workers (`kworker/uN:M`).
const WORKQUEUE_MASK: &str = "/sys/devices/virtual/workqueue/cpumask";

/// What was moved: (pid, its original CPU set), and the workqueue mask as it was.
struct Moved {
    threads: Vec<(i32, libc::cpu_set_t)>,
    workqueue: Option<String>,
}

static MOVED: Mutex<Option<Moved>> = Mutex::new(None);

/// Which threads were moved off the host CPU, for the report.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Quieted {
    /// Names of the kernel threads moved (sorted, each once).
    pub threads: Vec<String>,
    /// Whether the unbound workqueues' CPU set left the host CPU out.
    pub workqueues: bool,
}

/// Move every movable kernel thread off `host` (onto the CPUs it may use but `host`), and the
/// unbound workqueues too. A thread the kernel refuses to move is left alone. Call [`restore`]
/// when the run ends.
pub fn host_cpu(host: usize) -> Quieted {
    let mut moved = Moved {
        threads: Vec::new(),
        workqueue: None,
    };
    let mut names = Vec::new();
    for (pid, name) in kernel_threads() {
        // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: a valid set of the size passed.
        if unsafe { libc::sched_getaffinity(pid, size, &mut set) } != 0 {
            continue;
        }
        // SAFETY: CPU_ISSET/CPU_COUNT read inside the set.
        let (on_host, count) = unsafe { (libc::CPU_ISSET(host, &set), libc::CPU_COUNT(&set)) };
        if !on_host || count < 2 {
            continue;
        }
        let mut narrowed = set;
        // SAFETY: CPU_CLR writes inside the set.
        unsafe { libc::CPU_CLR(host, &mut narrowed) };
        // SAFETY: a valid set of the size passed; fails (EINVAL) for threads the kernel pins.
        if unsafe { libc::sched_setaffinity(pid, size, &narrowed) } == 0 {
            moved.threads.push((pid, set));
            names.push(name);
        }
    }
    let mut workqueues = false;
    if let Ok(old) = fs::read_to_string(WORKQUEUE_MASK) {
        let old = old.trim().to_string();
        if let Some(mask) = without_cpu(&old, host) {
            if fs::write(WORKQUEUE_MASK, &mask).is_ok() {
                moved.workqueue = Some(old);
                workqueues = true;
            }
        }
    }
    *MOVED.lock().unwrap_or_else(|e| e.into_inner()) = Some(moved);
    names.sort();
    names.dedup();
    Quieted {
        threads: names,
        workqueues,
    }
}

/// Put every moved thread and the workqueue mask back as they were. Safe to call more than
/// once, and from the signal thread or a panic hook (try_lock: never waits).
pub fn restore() {
    let Ok(mut guard) = MOVED.try_lock() else {
        return;
    };
    if let Some(moved) = guard.take() {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        for (pid, set) in &moved.threads {
            // SAFETY: a valid set of the size passed. A thread that ended meanwhile: ESRCH.
            unsafe { libc::sched_setaffinity(*pid, size, set) };
        }
        if let Some(mask) = moved.workqueue {
            let _ = fs::write(WORKQUEUE_MASK, mask);
        }
    }
}

/// What one CPU lost in a probe: a thread pinned to it read the clock in a loop, and every gap
/// over [`STALL_US`] between two reads is time the machine gave to something else (the
/// hypervisor, interrupts, other threads).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Stalls {
    pub seconds: f64,
    /// Gaps over STALL_US, and over 1 ms.
    pub stalls: u64,
    pub over_1ms: u64,
    pub longest_us: f64,
    /// The gaps' total over the probe's length.
    pub lost_fraction: f64,
}

/// A gap in a spinning thread's clock reads that counts as a stall, µs. Timer ticks and other
/// short interrupts stay below it.
pub const STALL_US: u64 = 100;

impl Stalls {
    /// Quiet enough to measure: no stall over 1 ms, and under 0.5 % of the time lost.
    pub fn quiet(&self) -> bool {
        self.over_1ms == 0 && self.lost_fraction < 0.005
    }
}

/// The probes before one responder's stages: the host CPU's and the generator CPU's stalls
/// (measured at the same time), how many probes were taken, and how long it waited.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Probe {
    pub host: Stalls,
    pub generator: Stalls,
    pub probes: u32,
    pub waited_secs: f64,
    pub quiet: bool,
}

/// Spin on both CPUs for `secs` at once; what each lost.
pub fn probe(cpus: Cpus, secs: f64) -> (Stalls, Stalls) {
    let spin = |cpu: usize| {
        std::thread::spawn(move || {
            let _ = sys::pin_current_thread(cpu);
            let length = Duration::from_secs_f64(secs);
            let start = Instant::now();
            let mut last = start;
            let mut out = Stalls::default();
            let mut lost = Duration::ZERO;
            loop {
                let now = Instant::now();
                let gap = now - last;
                last = now;
                if gap > Duration::from_micros(STALL_US) {
                    out.stalls += 1;
                    out.over_1ms += u64::from(gap > Duration::from_millis(1));
                    out.longest_us = out.longest_us.max(gap.as_secs_f64() * 1e6);
                    lost += gap;
                }
                if now - start >= length {
                    out.seconds = (now - start).as_secs_f64();
                    out.lost_fraction = lost.as_secs_f64() / out.seconds;
                    return out;
                }
            }
        })
    };
    let (host, generator) = (spin(cpus.host), spin(cpus.generator));
    (
        host.join().unwrap_or_default(),
        generator.join().unwrap_or_default(),
    )
}

/// Probe for `secs` until the host CPU is quiet or `wait_secs` have passed (4 s between
/// probes); the last probe of both CPUs, and whether the host CPU was quiet.
pub fn wait_for_quiet(cpus: Cpus, secs: f64, wait_secs: f64) -> Probe {
    let start = Instant::now();
    let mut probes = 0;
    loop {
        let (host, generator) = probe(cpus, secs);
        probes += 1;
        // The host CPU decides: the generator's CPU now also runs the kernel threads moved
        // off the host's, so it is rarely quiet by this measure, and its stalls delay sends
        // (which are stamped right before) rather than answers.
        let quiet = host.quiet();
        let waited_secs = start.elapsed().as_secs_f64();
        if quiet || waited_secs + 4.0 + secs > wait_secs {
            return Probe {
                host,
                generator,
                probes,
                waited_secs,
                quiet,
            };
        }
        std::thread::sleep(Duration::from_secs(4));
    }
}

/// (pid, name) of every kernel thread.
fn kernel_threads() -> Vec<(i32, String)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (name, flags) = name_and_flags(&stat)?;
            (flags & PF_KTHREAD != 0).then_some((pid, name))
        })
        .collect()
}

/// The command name and the flags field of a /proc/PID/stat line (the name is in parentheses
/// and may hold spaces or parentheses itself; flags is the 9th field).
fn name_and_flags(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    // After ") ": state ppid pgrp session tty_nr tpgid flags ...
    let flags = stat
        .get(close + 2..)?
        .split_whitespace()
        .nth(6)?
        .parse()
        .ok()?;
    Some((name, flags))
}

/// A hexadecimal CPU mask as /sys writes it ("3", "ff", "ffffffff,ffffffff") without `cpu`;
/// None when the mask is unreadable, lacks the CPU, or would be left empty.
fn without_cpu(mask: &str, cpu: usize) -> Option<String> {
    let words: Vec<u32> = mask
        .split(',')
        .map(|w| u32::from_str_radix(w, 16).ok())
        .collect::<Option<_>>()?;
    let mut words = words;
    let n = words.len();
    let (word, bit) = (cpu / 32, cpu % 32);
    if word >= n {
        return None;
    }
    let w = &mut words[n - 1 - word];
    if *w & (1 << bit) == 0 {
        return None;
    }
    *w &= !(1 << bit);
    if words.iter().all(|w| *w == 0) {
        return None;
    }
    let text: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                format!("{w:x}")
            } else {
                format!("{w:08x}")
            }
        })
        .collect();
    Some(text.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_lose_one_cpu() {
        assert_eq!(without_cpu("3", 1).as_deref(), Some("1"));
        assert_eq!(without_cpu("ff", 0).as_deref(), Some("fe"));
        assert_eq!(
            without_cpu("ffffffff,ffffffff", 33).as_deref(),
            Some("fffffffd,ffffffff")
        );
        // Not in the mask, or the last CPU left, or not a mask: untouched.
        assert_eq!(without_cpu("1", 1), None);
        assert_eq!(without_cpu("2", 1), None);
        assert_eq!(without_cpu("zz", 1), None);
    }

    #[test]
    fn stat_lines_give_name_and_flags() {
        let line = "105 (kdamond.0) S 2 0 0 0 -1 2129984 0 0 0 0 1 2 0 0 20 0 1 0";
        assert_eq!(
            name_and_flags(line),
            Some(("kdamond.0".to_string(), 2_129_984))
        );
        let odd = "7 (a) b (c)) R 1 7 7 0 -1 4194560 0";
        assert_eq!(
            name_and_flags(odd),
            Some(("a) b (c)".to_string(), 4_194_560))
        );
    }
}
