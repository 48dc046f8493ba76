//! `ndp-bench`: measures ndp-responder, ndppd and the kernel's proxy_ndp side by side, in one
//! run, in network namespaces it creates itself, and writes a Markdown report (issue 7).
//!
//! ```text
//! bench/run                          # the full run (20-35 min): static daemon, docs/benchmark.md
//! cargo build --release && cargo run --release -p ndp-bench -- --out docs/benchmark.md
//! cargo run --release -p ndp-bench -- --smoke            # a few seconds (as root)
//! ```
//!
//! Modules: [`topo`] the namespaces and their cleanup, [`quiet`] the host CPU kept to the
//! host's work, [`traffic`] the load generator and the
//! receiver, [`responders`] the processes under test, [`measure`] the stages, [`report`] the
//! Markdown and JSON, [`sys`] system helpers. The frames, the checksum, the receiver's BPF
//! program and the packet-socket helpers are the daemon's own (`ndp_responder::ndp`, `link`).
//!
//! Owns: the command line, checking what a run needs (root, tools, the binaries), the order of
//! the responders, the signal thread (Ctrl-C: stop the responders, remove the namespaces and
//! the temporary directory, exit 130), and writing the report files. Must not: measure or
//! format figures itself (that is `measure` and `report`).

mod measure;
mod quiet;
mod report;
mod responders;
mod sys;
mod topo;
mod traffic;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Parser;

use measure::{Env, Settings};
use responders::Responder;
use sys::{bail, Context, Result};
use traffic::Plan;

/// Benchmark ndp-responder against ndppd and the kernel's proxy_ndp (needs root).
#[derive(Parser, Debug)]
#[command(name = "ndp-bench", version)]
struct Args {
    /// A few seconds in total: short stages at low rates (the CI check that the harness works).
    /// The report goes to a temporary file unless --out is given.
    #[arg(long)]
    smoke: bool,
    /// The ndp-responder binary (default: the one next to ndp-bench, e.g. target/release).
    #[arg(long, value_name = "PATH")]
    daemon: Option<PathBuf>,
    /// An extra argument for ndp-responder, after `-i IFACE -n PREFIX` (repeatable), e.g.
    /// --daemon-arg=--rate-limit=0 to measure without its answer rate limits.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    daemon_arg: Vec<String>,
    /// The ndppd binary: a path, or a name looked up in PATH and /usr/sbin.
    #[arg(long, value_name = "PATH", default_value = "ndppd")]
    ndppd: String,
    /// Where to write the Markdown report (default: ndp-bench-report.md; --smoke: a temp file).
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Also write every number as JSON here.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Offered rates of the rate stages, NS/s, comma-separated; "max" is unpaced
    /// [default: 1000,10000,50000,100000,200000,max; --smoke: 1000,5000,max].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    rates: Option<Vec<String>>,
    /// Seconds per rate stage [default: 5; --smoke: 0.3].
    #[arg(long, value_name = "SECONDS")]
    stage: Option<f64>,
    /// Seconds of flood for every responder [default: 10; --smoke: 0.5].
    #[arg(long, value_name = "SECONDS")]
    flood: Option<f64>,
    /// Seconds of the long flood (memory flatness) for ndp-responder; 0 skips it
    /// [default: 600; --smoke: 1.5].
    #[arg(long, value_name = "SECONDS")]
    soak: Option<f64>,
    /// Seconds a responder idles after its first answer before its idle memory is read
    /// [default: 3; --smoke: 0.3].
    #[arg(long, value_name = "SECONDS")]
    idle: Option<f64>,
    /// The valid stream during the flood, NS/s.
    #[arg(long, value_name = "RATE", default_value_t = 1000)]
    flood_valid_rate: u64,
    /// Also flood at this many frames/s, paced (the rate the issue's reference generator
    /// reached on one core); 0 skips that flood.
    #[arg(long, value_name = "RATE", default_value_t = 190_000)]
    flood_reference_rate: u64,
    /// Before each responder's stages, wait up to this long for a quiet host CPU: a probe
    /// spins on both measured CPUs for a second and counts stalls (a virtual machine's vCPU
    /// stopped by its hypervisor) [default: 300; --smoke: 0, one short probe].
    #[arg(long, value_name = "SECONDS")]
    quiet_wait: Option<f64>,
    /// Number of target addresses (each gets a kernel proxy entry).
    #[arg(long, value_name = "N", default_value_t = 256)]
    targets: u32,
    /// Number of solicitor addresses (NAs are matched by solicitor and target).
    #[arg(long, value_name = "N", default_value_t = 128)]
    solicitors: u32,
    /// Every N-th target is asked by unicast NUD NS, the others by multicast (0: none).
    #[arg(long, value_name = "N", default_value_t = 4)]
    unicast_every: u32,
    /// Only these responders, comma-separated: baseline, ndp-responder (fast path on),
    /// ndp-responder-socket (--no-fast-path), ndppd, kernel
    /// (the report then lacks the others).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    only: Option<Vec<String>>,
    /// Do not pin the generator and the responder to separate CPUs.
    #[arg(long)]
    no_pin: bool,
}

/// The run's temporary directory (logs, configuration), removed at exit and on Ctrl-C.
static TEMP_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

fn remove_temp_dir() {
    if let Ok(mut dir) = TEMP_DIR.try_lock() {
        if let Some(d) = dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Poll `cond` every 5 ms until it holds or `within` passes. Not the lab's
/// `tools::lab::wait_until`, which polls every 20 ms: the readiness probe measures the time to
/// a responder's first answer with it.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// SIGINT, SIGTERM and SIGHUP are blocked in every thread and taken by one thread that kills
/// the responders, removes the namespaces and exits 130. Must run before any other thread.
fn handle_signals() {
    // SAFETY: sigset_t is plain data; these calls only change this process's signal mask.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: a valid signal set and out-pointer.
        unsafe { libc::sigwait(&set, &mut sig) };
        eprintln!("\nndp-bench: interrupted: stopping the responders and removing the namespaces");
        topo::interrupted_cleanup();
        quiet::restore();
        remove_temp_dir();
        std::process::exit(130);
    });
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        topo::emergency_cleanup();
        quiet::restore();
        remove_temp_dir();
        default(info);
    }));
}

fn parse_rates(list: &[String]) -> Result<Vec<Option<u64>>> {
    list.iter()
        .map(|r| {
            let r = r.trim();
            if r == "max" {
                return Ok(None);
            }
            let (digits, mult) = match r.strip_suffix(['k', 'K']) {
                Some(d) => (d, 1000),
                None => (r, 1),
            };
            match digits.parse::<u64>() {
                Ok(n) if n > 0 => Ok(Some(n * mult)),
                _ => bail!("--rates: '{r}' is not a rate (a positive number of NS/s, e.g. 10000 or 10k, or max)"),
            }
        })
        .collect()
}

/// The first two CPUs this process may use: the generator's and the host's.
fn pick_cpus(no_pin: bool) -> Option<topo::Cpus> {
    if no_pin {
        return None;
    }
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    let allowed: Vec<usize> = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    };
    match allowed[..] {
        [generator, host, ..] => Some(topo::Cpus { generator, host }),
        _ => None,
    }
}

fn default_daemon() -> Result<PathBuf> {
    let me = std::env::current_exe().context(|| "finding ndp-bench's own path".to_string())?;
    let path = me.with_file_name("ndp-responder");
    if !path.is_file() {
        bail!(
            "there is no ndp-responder next to ndp-bench ({}): build it with `cargo build --release`, or pass --daemon PATH",
            path.display()
        );
    }
    Ok(path)
}

fn quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

fn run(args: Args) -> Result<PathBuf> {
    let started_at = Instant::now();
    let started = sys::now_utc();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("ndp-bench must run as root (it creates network namespaces and packet sockets): run it with sudo");
    }
    for (tool, package) in [("ip", "iproute2"), ("sh", "dash")] {
        if !sys::on_path(tool) {
            bail!("'{tool}' is not installed: apt-get install {package}");
        }
    }
    let ndppd = responders::find_ndppd(&args.ndppd)?;
    let daemon = match &args.daemon {
        Some(p) if p.is_file() => p.clone(),
        Some(p) => bail!("--daemon {}: no such file", p.display()),
        None => default_daemon()?,
    };
    let smoke = args.smoke;
    let pick = |given: Option<f64>, full: f64, quick: f64| {
        given.unwrap_or(if smoke { quick } else { full })
    };
    let rates = match &args.rates {
        Some(list) => parse_rates(list)?,
        None if smoke => vec![Some(1000), Some(5000), None],
        None => vec![
            Some(1000),
            Some(10_000),
            Some(50_000),
            Some(100_000),
            Some(200_000),
            None,
        ],
    };
    let settings = Settings {
        smoke,
        rates,
        stage_secs: pick(args.stage, 5.0, 0.3),
        flood_secs: pick(args.flood, 10.0, 0.5),
        soak_secs: pick(args.soak, 600.0, 1.5),
        idle_secs: pick(args.idle, 3.0, 0.3),
        flood_valid_rate: args.flood_valid_rate,
        flood_reference_rate: args.flood_reference_rate,
        quiet_wait_secs: pick(args.quiet_wait, 300.0, 0.0),
        probe_secs: if smoke { 0.2 } else { 1.0 },
        baseline_rates: if smoke {
            vec![1000]
        } else {
            vec![10_000, 100_000]
        },
    };
    for (name, v) in [
        ("--stage", settings.stage_secs),
        ("--flood", settings.flood_secs),
        ("--idle", settings.idle_secs),
    ] {
        if !(v > 0.0 && v <= 86_400.0) {
            bail!("{name} {v}: give a number of seconds above 0");
        }
    }
    if !(0.0..=86_400.0).contains(&settings.quiet_wait_secs) {
        bail!(
            "--quiet-wait {}: give a number of seconds (0: one probe, no waiting)",
            settings.quiet_wait_secs
        );
    }
    if !(0.0..=86_400.0).contains(&settings.soak_secs) {
        bail!(
            "--soak {}: give a number of seconds (0 skips the soak)",
            settings.soak_secs
        );
    }
    if !(1..=4096).contains(&args.targets) || !(1..=4096).contains(&args.solicitors) {
        bail!("--targets and --solicitors must be between 1 and 4096");
    }
    if args.targets * args.solicitors > 1 << 20 {
        bail!("--targets × --solicitors must be at most 1,048,576 slots");
    }
    if settings.flood_valid_rate == 0 {
        bail!("--flood-valid-rate must be above 0");
    }
    let order = [
        Responder::Baseline,
        Responder::NdpResponder,
        Responder::NdpResponderSocket,
        Responder::Ndppd,
        Responder::Kernel,
    ];
    let chosen: Vec<Responder> = match &args.only {
        None => order.to_vec(),
        Some(list) => {
            let mut v = Vec::new();
            for name in list {
                match Responder::parse(name.trim()) {
                    Some(r) => v.push(r),
                    None => bail!("--only: unknown responder '{name}' (baseline, ndp-responder, ndp-responder-socket, ndppd, kernel)"),
                }
            }
            order.into_iter().filter(|r| v.contains(r)).collect()
        }
    };
    let out = match &args.out {
        Some(p) => p.clone(),
        None if smoke => {
            std::env::temp_dir().join(format!("ndp-bench-smoke-{}.md", std::process::id()))
        }
        None => PathBuf::from("ndp-bench-report.md"),
    };

    let _lock = topo::lock()?;
    // Held for the whole run: NAs are stamped when they reach the generator's interface.
    let _stamps = sys::stamp_arrivals()?;
    let stale = topo::remove_stale()?;
    if stale > 0 {
        eprintln!("ndp-bench: removed {stale} namespace(s) left by a run that died");
    }
    let dir = std::env::temp_dir().join(format!("ndp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
    *TEMP_DIR.lock().unwrap_or_else(|e| e.into_inner()) = Some(dir.clone());

    let plan = Plan {
        targets: args.targets,
        solicitors: args.solicitors,
        unicast_every: args.unicast_every,
    };
    let cpus = pick_cpus(args.no_pin);
    // Put back by main() when the run ends, by the signal thread, or by the panic hook.
    let quieted = cpus.map(|c| quiet::host_cpu(c.host));
    let env = Env {
        plan,
        valid: traffic::valid_frames(&plan),
        flood: traffic::flood_frames(&plan, 4096),
        cpus,
        dir: dir.clone(),
        daemon: daemon.clone(),
        daemon_args: args.daemon_arg.clone(),
        ndppd: ndppd.clone(),
        settings: settings.clone(),
    };
    let daemon_info = sys::binary_info(&daemon)?;
    let command = std::env::args()
        .map(|a| quote(&a))
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!(
        "ndp-bench: {} run; daemon {} ({}, {}); report to {}",
        if smoke { "smoke" } else { "full" },
        daemon.display(),
        daemon_info.profile,
        daemon_info.linking,
        out.display()
    );
    let mut results = Vec::new();
    for responder in chosen {
        results.push(
            measure::measure(&env, responder)
                .context(|| format!("measuring {}", responder.name()))?,
        );
    }
    let mut report = report::Report {
        command,
        started,
        duration_secs: started_at.elapsed().as_secs_f64(),
        machine: sys::machine(),
        daemon: daemon_info,
        daemon_version: responders::ndp_responder_version(&daemon),
        daemon_args: responders::ndp_responder_args(&args.daemon_arg).join(" "),
        ndppd_path: ndppd.display().to_string(),
        ndppd_version: responders::ndppd_version(&ndppd, &dir),
        plan,
        settings,
        cpus,
        quieted,
        results,
        targets: Vec::new(),
    };
    report.evaluate();
    write_file(&out, &report.markdown())?;
    if let Some(json) = &args.json {
        let text = serde_json::to_string_pretty(&report)
            .context(|| "serialising the results".to_string())?;
        write_file(json, &text)?;
    }
    println!("Targets (issue 7), measured on ndp-responder:");
    for t in &report.targets {
        let verdict = match t.met {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None => "not measured",
        };
        println!("  [{verdict}] {}: {}", t.target, t.measured);
    }
    let busy = report.results.iter().any(|r| {
        r.background
            .is_some_and(|(h, g)| h.busy_fraction > 0.05 || g.busy_fraction > 0.05)
    });
    if busy {
        eprintln!(
            "ndp-bench: warning: the machine was not quiet (a measured CPU was more than 5 % \
             busy with no traffic); its CPU figures include that work"
        );
    }
    println!("Report: {}", out.display());
    Ok(out)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).context(|| format!("writing {}", path.display()))
}

fn main() -> ExitCode {
    let args = Args::parse();
    handle_signals();
    let result = run(args);
    quiet::restore();
    topo::emergency_cleanup();
    remove_temp_dir();
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ndp-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
