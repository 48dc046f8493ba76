//! System helpers: errors with context, running commands, doing things inside a network
//! namespace from a thread, CPU affinity, the /proc readers the measurements use, CPU clocks of
//! other processes, and the facts about the machine and the binaries for the report.
//!
//! Owns: those helpers, none of which knows about responders or the report. Must not: keep
//! state, or change anything outside the namespace a caller names.
//!
//! Running commands, `ip`, entering a namespace from a thread and finding a tool on PATH are
//! the library's ([`ndp_responder::tools::netns`], shared with the lab and the tests); here
//! they only gain the benchmark's error type with its context.

use std::ffi::CString;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use ndp_responder::tools::netns;
use std::process::{Command, Output, Stdio};

/// An error that names what failed and, where there is one, what to do about it.
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Attach what we were doing to a lower-level error.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error(format!("{}: {e}", what())))
    }
}

macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::sys::Error(format!($($arg)*)))
    };
}
pub(crate) use bail;

/// Run a command to completion ([`netns::run`]); an error carries the command line and its
/// stderr.
pub fn run(cmd: &mut Command) -> Result<Output> {
    netns::run(cmd).map_err(|e| Error(e.to_string()))
}

/// `ip ARGS...` ([`netns::ip`]).
pub fn ip(args: &[&str]) -> Result<Output> {
    netns::ip(args).map_err(|e| Error(e.to_string()))
}

/// Feed `lines` to `ip -n NS -batch -` (one `ip` command per line, without the `ip`).
pub fn ip_batch(ns: &str, lines: &[String]) -> Result<()> {
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context(|| format!("running `ip -n {ns} -batch -`"))?;
    let mut text = lines.join("\n");
    text.push('\n');
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .context(|| format!("writing commands to `ip -n {ns} -batch -`"))?;
    }
    let out = child
        .wait_with_output()
        .context(|| format!("waiting for `ip -n {ns} -batch -`"))?;
    if !out.status.success() {
        bail!(
            "`ip -n {ns} -batch -` failed: {} (first command: {})",
            String::from_utf8_lossy(&out.stderr).trim(),
            lines.first().map(String::as_str).unwrap_or_default()
        );
    }
    Ok(())
}

/// Run `f` on a thread that has joined network namespace `ns` ([`netns::run_in`]; this
/// process stays where it is). Sockets opened there keep belonging to `ns` after the thread
/// ends.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    netns::run_in(ns, f).context(|| format!("entering network namespace {ns}"))?
}

/// Write a sysctl of namespace `ns` (`key` is the path below /proc/sys).
pub fn sysctl(ns: &str, key: &str, value: &str) -> Result<()> {
    in_netns(ns, || {
        let path = format!("/proc/sys/{key}");
        fs::write(&path, value).context(|| format!("writing {value} to {path} in {ns}"))
    })
}

/// An interface's index inside namespace `ns`.
pub fn ifindex_in(ns: &str, ifname: &str) -> Result<u32> {
    in_netns(ns, || ifindex(ifname))
}

/// An interface's index in the calling thread's namespace.
pub fn ifindex(ifname: &str) -> Result<u32> {
    let name = CString::new(ifname).context(|| format!("interface name {ifname}"))?;
    // SAFETY: a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        bail!(
            "no interface named {ifname}: {}",
            io::Error::last_os_error()
        );
    }
    Ok(index)
}

/// Interface counters from /proc/net/dev, as seen inside namespace `ns`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DevStats {
    pub rx_packets: u64,
    /// Frames this end could not hand to its peer (veth: the peer's input queue was full).
    pub tx_dropped: u64,
}

pub fn dev_stats(ns: &str, ifname: &str) -> Result<DevStats> {
    in_netns(ns, || {
        // thread-self: this thread's namespace, not the process's.
        let text = fs::read_to_string("/proc/thread-self/net/dev")
            .context(|| format!("reading /proc/net/dev in {ns}"))?;
        for line in text.lines() {
            let Some((name, rest)) = line.split_once(':') else {
                continue;
            };
            if name.trim() != ifname {
                continue;
            }
            let v: Vec<u64> = rest
                .split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            if v.len() < 12 {
                break;
            }
            return Ok(DevStats {
                rx_packets: v[1],
                tx_dropped: v[11],
            });
        }
        bail!("interface {ifname} is not in /proc/net/dev of {ns}")
    })
}

/// A CPU set holding one CPU.
fn cpu_set(cpu: usize) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        set
    }
}

/// Pin the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> Result<()> {
    let set = cpu_set(cpu);
    // SAFETY: set is a valid cpu_set_t of the size passed; 0 is the calling thread.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        bail!(
            "pinning a generator thread to CPU {cpu}: {}",
            io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Make the kernel stamp every frame when it enters an interface's input queue (`netif_rx`),
/// system-wide, for as long as the returned socket is open.
///
/// Without it a packet socket's ring stamps a frame only when the receiving CPU gets round to
/// it, so an NA's receive time would include the generator CPU's own delays (waking from idle,
/// or finishing a batch of sends first). Any socket with SO_TIMESTAMPNS turns on the kernel's
/// `netstamp_needed` key; TPACKET rings then prefer that earlier stamp (net/packet/af_packet.c,
/// `tpacket_get_timestamp`). The key is switched on by a deferred work item, so this runs once,
/// well before the first stage.
pub fn stamp_arrivals() -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket and setsockopt calls; the descriptor is owned at once.
    unsafe {
        let fd = libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            bail!(
                "opening the socket that turns on receive timestamps: {}",
                std::io::Error::last_os_error()
            );
        }
        let fd = std::os::fd::OwnedFd::from_raw_fd(fd);
        let on: libc::c_int = 1;
        let rc = libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        if rc != 0 {
            bail!(
                "turning on receive timestamps (SO_TIMESTAMPNS): {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(fd)
    }
}

/// Timer slack of 1 ns for the calling thread, so that paced sleeps wake on time.
pub fn precise_timers() {
    // SAFETY: prctl with an integer argument.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
}

/// Lower the calling thread's priority (a flood must not starve the measuring side).
pub fn nice_current_thread(nice: i32) {
    // SAFETY: gettid/setpriority have no memory-safety preconditions.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice);
    }
}

/// Nanoseconds on CLOCK_REALTIME, the clock of the kernel's packet timestamps.
pub fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME).unwrap_or(0)
}

/// CPU time of the calling thread, in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or(0)
}

fn clock_ns(clock: libc::clockid_t) -> Option<u64> {
    // SAFETY: timespec is plain data; clock_gettime writes it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// CPU time (all threads, user + system, nanosecond precision) of process `pid`: the
/// scheduler's own runtime through the process CPU clock.
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: clock is a valid out-pointer.
    if unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) } != 0 {
        return None;
    }
    clock_ns(clock)
}

/// utime and stime of process `pid` (all threads) from /proc/PID/stat, in nanoseconds
/// (the file counts clock ticks).
pub fn proc_stat_times(pid: u32) -> Option<(u64, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may contain spaces, start at field 3 (state).
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let tick_ns = 1_000_000_000 / clock_ticks();
    Some((utime * tick_ns, stime * tick_ns))
}

/// USER_HZ: the unit of /proc/PID/stat and /proc/stat times.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as u64
    } else {
        100
    }
}

/// Memory of a process from /proc/PID/status, in KiB.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Memory {
    pub vm_rss_kib: u64,
    pub vm_hwm_kib: u64,
    pub rss_anon_kib: u64,
    pub rss_file_kib: u64,
}

pub fn memory(pid: u32) -> Option<Memory> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Some(Memory {
        vm_rss_kib: field("VmRSS:"),
        vm_hwm_kib: field("VmHWM:"),
        rss_anon_kib: field("RssAnon:"),
        rss_file_kib: field("RssFile:"),
    })
}

/// Idle and stolen time of one CPU (or all) from /proc/stat, in nanoseconds. Busy time is
/// taken as wall time minus these: with NO_HZ the kernel accounts idle time exactly at every
/// idle entry and exit, while the user/system/softirq columns are sampled by the tick and miss
/// the short bursts between idle periods that a packet-driven CPU is made of.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTimes {
    pub idle: u64,
    pub steal: u64,
}

/// The times of `cpu` (or of all CPUs with `None`) from /proc/stat.
pub fn cpu_times(cpu: Option<usize>) -> CpuTimes {
    let label = match cpu {
        Some(n) => format!("cpu{n}"),
        None => "cpu".to_string(),
    };
    let text = fs::read_to_string("/proc/stat").unwrap_or_default();
    let tick_ns = 1_000_000_000 / clock_ticks();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        if fields.next() != Some(label.as_str()) {
            continue;
        }
        // user nice system idle iowait irq softirq steal ...
        let v: Vec<u64> = fields.map(|f| f.parse().unwrap_or(0) * tick_ns).collect();
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        return CpuTimes {
            idle: at(3) + at(4),
            steal: at(7),
        };
    }
    CpuTimes::default()
}

/// The number of CPUs this process may run on.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// What the report says about the machine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cpus: usize,
    pub kernel: String,
    pub os: String,
    pub memory_mib: u64,
    pub hostname: String,
}

pub fn machine() -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let os = fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "unknown".into());
    let memory_mib = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib / 1024)
        .unwrap_or(0);
    // SAFETY: utsname is plain data; uname fills it with NUL-terminated strings.
    let (kernel, hostname) = unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) == 0 {
            let s = |f: &[libc::c_char]| {
                std::ffi::CStr::from_ptr(f.as_ptr())
                    .to_string_lossy()
                    .into_owned()
            };
            (s(&u.release), s(&u.nodename))
        } else {
            ("unknown".into(), "unknown".into())
        }
    };
    Machine {
        cpu_model,
        cpus: cpu_count(),
        kernel,
        os,
        memory_mib,
        hostname,
    }
}

/// How a binary was linked, read from its ELF headers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BinaryInfo {
    pub path: String,
    pub size_bytes: u64,
    /// "static" (no ELF interpreter) or "dynamic (interpreter ...)".
    pub linking: String,
    pub stripped: bool,
    /// Guessed from the path (target/.../release or debug), else "unknown".
    pub profile: String,
    pub modified: String,
}

pub fn binary_info(path: &Path) -> Result<BinaryInfo> {
    let bytes = fs::read(path).context(|| format!("reading {}", path.display()))?;
    let elf = Elf(&bytes);
    if bytes.get(..4) != Some(b"\x7fELF") || bytes.get(4) != Some(&2) {
        bail!("{} is not a 64-bit ELF executable", path.display());
    }
    let linking = match elf.interpreter() {
        Some(interp) => format!("dynamic (interpreter {interp})"),
        None => "static (no ELF interpreter)".to_string(),
    };
    let text = path.to_string_lossy();
    let profile = if text.contains("/release/") {
        "release"
    } else if text.contains("/debug/") {
        "debug"
    } else {
        "unknown"
    };
    let modified = fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| utc(d.as_secs()))
        .unwrap_or_default();
    Ok(BinaryInfo {
        path: path.display().to_string(),
        size_bytes: bytes.len() as u64,
        linking,
        stripped: !elf.has_section(".symtab"),
        profile: profile.to_string(),
        modified,
    })
}

/// Just enough of ELF64 (little-endian) to find the interpreter and the section names.
struct Elf<'a>(&'a [u8]);

impl Elf<'_> {
    fn u16(&self, at: usize) -> Option<usize> {
        Some(u16::from_le_bytes(self.0.get(at..at + 2)?.try_into().ok()?) as usize)
    }
    fn u32(&self, at: usize) -> Option<usize> {
        Some(u32::from_le_bytes(self.0.get(at..at + 4)?.try_into().ok()?) as usize)
    }
    fn u64(&self, at: usize) -> Option<usize> {
        Some(u64::from_le_bytes(self.0.get(at..at + 8)?.try_into().ok()?) as usize)
    }

    fn interpreter(&self) -> Option<String> {
        let (phoff, phentsize, phnum) = (self.u64(0x20)?, self.u16(0x36)?, self.u16(0x38)?);
        (0..phnum).find_map(|i| {
            let ph = phoff + i * phentsize;
            if self.u32(ph)? != 3 {
                return None; // PT_INTERP
            }
            let (off, size) = (self.u64(ph + 8)?, self.u64(ph + 32)?);
            let raw = self.0.get(off..off + size)?;
            Some(
                String::from_utf8_lossy(raw)
                    .trim_end_matches('\0')
                    .to_string(),
            )
        })
    }

    fn has_section(&self, wanted: &str) -> bool {
        let found = || -> Option<bool> {
            let (shoff, shentsize, shnum, shstrndx) = (
                self.u64(0x28)?,
                self.u16(0x3a)?,
                self.u16(0x3c)?,
                self.u16(0x3e)?,
            );
            let strtab = shoff + shstrndx * shentsize;
            let str_off = self.u64(strtab + 0x18)?;
            Some((0..shnum).any(|i| {
                let sh = shoff + i * shentsize;
                let Some(name) = self.u32(sh) else {
                    return false;
                };
                let start = str_off + name;
                self.0
                    .get(start..start + wanted.len() + 1)
                    .is_some_and(|n| {
                        &n[..wanted.len()] == wanted.as_bytes() && n[wanted.len()] == 0
                    })
            }))
        };
        found().unwrap_or(false)
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the epoch (civil-from-days, no time crate).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn now_utc() -> String {
    utc(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0))
}

/// True when `tool` is an executable file in one of PATH's directories ([`netns::have_tool`]).
pub fn on_path(tool: &str) -> bool {
    netns::have_tool(tool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }
}
