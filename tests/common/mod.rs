//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod battery;
pub mod engine;
pub mod slaac;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;

use ndp_responder::status::{Counters, Reason, Status};
use ndp_responder::tools::lab::{wait_until, Daemon, Topology};
use ndp_responder::tools::netns;

pub const EXE: &str = env!("CARGO_BIN_EXE_ndp-responder");

pub fn exe() -> &'static Path {
    Path::new(EXE)
}

/// The tools the tests drive, besides those the lab itself checks for.
const TEST_TOOLS: [(&str, &str); 2] = [("ndisc6", "ndisc6"), ("setpriv", "util-linux")];

/// Fail loudly (never skip) when a tool the tests need is missing.
pub fn require_tools() {
    for (tool, package) in TEST_TOOLS {
        let found = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        assert!(
            found,
            "the tests need '{tool}': apt-get install {package} (or run ./test)"
        );
    }
}

/// Remove namespaces left by earlier test runs that were killed (their process is gone).
fn remove_stale_namespaces() {
    for name in netns::list().unwrap_or_default() {
        let Some(pid) = name
            .strip_prefix("ndpt")
            .and_then(|rest| rest.split('x').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = netns::delete(&name);
        }
    }
}

/// A namespace name prefix unique to this test run (tests run in parallel), after removing
/// what killed earlier runs left.
fn unique_tag() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    static CLEANED: std::sync::Once = std::sync::Once::new();
    require_tools();
    CLEANED.call_once(remove_stale_namespaces);
    format!(
        "ndpt{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A topology with a name unique to this test run (tests run in parallel).
pub fn topology(containers: usize) -> Topology {
    Topology::build(&unique_tag(), containers)
        .unwrap_or_else(|e| panic!("building the test topology: {e}"))
}

/// The SLAAC topology (guests that autoconfigure behind br0; guest 2 also with temporary
/// addresses), with a name unique to this test run.
pub fn slaac_topology(guests: usize) -> Topology {
    Topology::build_slaac(&unique_tag(), guests)
        .unwrap_or_else(|e| panic!("building the SLAAC test topology: {e}"))
}

/// Send raw Ethernet frames out of `ifname` inside namespace `ns` (from a thread that joins
/// the namespace, so the test process itself stays where it is). Returns how many were sent.
pub fn send_frames_in(ns: &str, ifname: &str, frames: &[Vec<u8>]) -> usize {
    send_paced_in(ns, ifname, frames, std::time::Duration::ZERO)
}

/// The same, `gap` apart (a steady stream).
pub fn send_paced_in(
    ns: &str,
    ifname: &str,
    frames: &[Vec<u8>],
    gap: std::time::Duration,
) -> usize {
    let frames: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    send_each_in(ns, ifname, &frames, gap)
        .iter()
        .filter(|r| r.is_ok())
        .count()
}

/// Send each frame (of any length, even shorter than an Ethernet header) out of `ifname` in
/// namespace `ns`, `gap` apart, from a packet socket in a thread that joins the namespace;
/// the outcome of each send, in order.
pub fn send_each_in(
    ns: &str,
    ifname: &str,
    frames: &[&[u8]],
    gap: std::time::Duration,
) -> Vec<std::io::Result<()>> {
    let ifname = std::ffi::CString::new(ifname).unwrap();
    netns::run_in(ns, || {
        // SAFETY: plain socket calls with valid arguments.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(
            fd >= 0,
            "packet socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: ifname is a valid NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
        assert_ne!(index, 0);
        let results = frames
            .iter()
            .map(|frame| {
                if !gap.is_zero() {
                    std::thread::sleep(gap);
                }
                // SAFETY: sockaddr_ll is plain data; frame is valid for its length. A raw
                // packet socket sends the frame as it is (its address only names the
                // interface).
                let n = unsafe {
                    let mut addr: libc::sockaddr_ll = std::mem::zeroed();
                    addr.sll_family = libc::AF_PACKET as u16;
                    addr.sll_ifindex = index as i32;
                    libc::sendto(
                        fd,
                        frame.as_ptr().cast(),
                        frame.len(),
                        0,
                        (&addr as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    )
                };
                match n {
                    n if n == frame.len() as isize => Ok(()),
                    n if n < 0 => Err(std::io::Error::last_os_error()),
                    n => Err(std::io::Error::other(format!("sent {n} octets"))),
                }
            })
            .collect();
        // SAFETY: closing our own descriptor.
        unsafe { libc::close(fd) };
        results
    })
    .unwrap()
}

/// Recompute the ICMPv6 checksum of an untagged Ethernet/IPv6/ICMPv6 frame over the message
/// its IPv6 payload length declares (bounded by the frame): the project's one checksum.
pub fn fix_checksum(f: &mut [u8]) {
    ndp_responder::ndp::packet::Packet::new_unchecked(f).fill_checksum();
}

/// The frame of a multicast solicitation for `target` from the lab's router.
pub fn router_ns(target: &str) -> Vec<u8> {
    use ndp_responder::ndp::{self, NeighborSolicit};
    use ndp_responder::tools::lab::ROUTER_MAC;
    let ns = NeighborSolicit::resolution(
        ROUTER_MAC.parse().unwrap(),
        "fe80::ff:fe00:101".parse().unwrap(),
        target.parse().unwrap(),
    );
    let mut buf = vec![0u8; ndp::MAX_EMIT_LEN];
    let len = ns.emit(&mut buf).unwrap();
    buf.truncate(len);
    buf
}

/// Ask for `target` from the router with ndisc6: the line naming the MAC that answered, if any.
pub fn solicit(topo: &Topology, target: &str) -> Option<String> {
    let out = topo
        .try_exec(
            &topo.router(),
            &["ndisc6", "-1", "-n", "-r", "2", "-w", "400", target, "r0"],
        )
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    text.lines()
        .find(|l| l.contains("link-layer address"))
        .map(|l| l.trim().to_string())
}

/// True when the host's MAC answers a solicitation for `target`.
pub fn host_answers(topo: &Topology, target: &str) -> bool {
    solicit(topo, target).is_some_and(|l| l.contains(ndp_responder::tools::lab::HOST_MAC))
}

/// Load an nftables ruleset into namespace `ns`.
pub fn nft(ns: &str, rules: &str) {
    netns::nft(ns, rules).unwrap_or_else(|e| panic!("{e}"));
}

/// A running tcpdump whose output goes to a file (a pipe nobody reads would fill after 64 KiB
/// and stall it, losing packets).
pub struct Capture {
    child: std::process::Child,
    path: std::path::PathBuf,
}

/// Start `tcpdump -c count` on `iface` in namespace `ns` and return once it is capturing
/// (it says "listening on" when its filter is attached).
pub fn start_capture(ns: &str, iface: &str, count: usize, filter: &str) -> Capture {
    start_capture_with(ns, iface, count, &[], filter)
}

/// The same with extra tcpdump flags (e.g. `-v`, which shows an advertisement's flags:
/// "tgt is X, Flags [router, solicited, override]").
pub fn start_capture_with(
    ns: &str,
    iface: &str,
    count: usize,
    extra: &[&str],
    filter: &str,
) -> Capture {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "ndpt-capture-{}-{}.txt",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let out = std::fs::File::create(&path).unwrap();
    let mut child = netns::command(ns, "tcpdump")
        .args(["-l", "-n", "-tt", "-c"])
        .arg(count.to_string())
        .args(extra)
        .args(["-i", iface, filter])
        .stdout(out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_listening(&mut child);
    Capture { child, path }
}

/// Read a starting tcpdump's standard error (piped) until it says "listening on": its filter
/// is attached and nothing sent from now on is missed.
pub fn wait_until_listening(child: &mut std::process::Child) {
    use std::io::BufRead;
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 && !line.contains("listening on") {
        line.clear();
    }
    assert!(
        line.contains("listening on"),
        "tcpdump did not start: {line}"
    );
}

impl Capture {
    /// What it printed so far (one line per packet).
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }

    /// Poll (up to `within`) until `cond` holds for what it printed; whether it did.
    pub fn wait_for(&self, within: Duration, mut cond: impl FnMut(&str) -> bool) -> bool {
        wait_until(within, || cond(&self.text()))
    }

    /// Lines that contain every one of `needles`.
    pub fn lines(&self, needles: &[&str]) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Wait for a capture to finish (or stop it after `within`); what it printed.
pub fn capture_output(mut capture: Capture, within: std::time::Duration) -> String {
    let pid = capture.child.id();
    let done = ndp_responder::tools::lab::wait_until(within, || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    if !done {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    let _ = capture.child.wait();
    capture.text()
}

/// `ndp-responder status --socket SOCKET [--json]`: (succeeded, stdout, stderr).
pub fn status_cmd(socket: &Path, json: bool) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(exe());
    cmd.args(["status", "--socket"]).arg(socket);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The capability lines of /proc/PID/status (and of every thread).
pub fn capability_lines(pid: u32) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    for task in tasks {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        for line in status.lines() {
            if let Some((key, value)) = line.split_once(':') {
                if key.starts_with("Cap") || key == "NoNewPrivs" {
                    found.push((key.to_string(), value.trim().to_string()));
                }
            }
        }
    }
    found
}

/// The daemon's status over its control socket; panics (with its log) if it does not answer.
pub fn status(daemon: &Daemon) -> Status {
    daemon.status().unwrap_or_else(|| {
        panic!(
            "the daemon's control socket does not answer:\n{}",
            daemon.log()
        )
    })
}

/// A count by reason, 0 when the reason was never counted.
pub fn by(reasons: &ndp_responder::status::Reasons, why: impl Reason) -> u64 {
    reasons.get(why.reason()).copied().unwrap_or(0)
}

/// Poll the first uplink's counters (up to `within`) until `cond` holds; the last ones read.
pub fn wait_counters(
    daemon: &Daemon,
    within: Duration,
    mut cond: impl FnMut(&Counters) -> bool,
) -> Result<Counters, Box<Counters>> {
    let mut last = Counters::default();
    let ok = wait_until(within, || {
        last = daemon.counters();
        cond(&last)
    });
    if ok {
        Ok(last)
    } else {
        Err(Box::new(last))
    }
}

/// Poll the daemon's status (up to `within`) until `cond` holds for it; whether it did.
pub fn wait_status(
    daemon: &Daemon,
    within: Duration,
    mut cond: impl FnMut(&Status) -> bool,
) -> bool {
    wait_until(within, || daemon.status().is_some_and(|s| cond(&s)))
}

/// `target` is not answered, at each of at least three attempts that together last at least
/// two seconds (each a solicitation from the router with ndisc6, two tries 400 ms apart; more
/// attempts while two seconds have not passed: ndisc6's own timing is not exact), and the
/// daemon counts every one of those solicitations as ignored for `why`, answering none of them.
pub fn never_answered(topo: &Topology, daemon: &Daemon, target: &str, why: impl Reason) {
    let before = daemon.counters();
    let start = std::time::Instant::now();
    let mut attempts = 0u64;
    while attempts < 3 || start.elapsed() < Duration::from_secs(2) {
        attempts += 1;
        let answer = solicit(topo, target);
        assert!(
            !answer
                .as_deref()
                .is_some_and(|l| l.contains(ndp_responder::tools::lab::HOST_MAC)),
            "{target} answered at attempt {attempts}: {answer:?}\n{}",
            daemon.log()
        );
    }
    // ndisc6 -r 2: two solicitations per attempt.
    let sent = 2 * attempts;
    let counted = wait_counters(daemon, Duration::from_secs(3), |c| {
        by(&c.ignored, why) >= by(&before.ignored, why) + sent
    });
    let after = counted.unwrap_or_else(|c| {
        panic!(
            "{target}: the daemon did not count {sent} solicitations as ignored for {}: before {before:?}, after {c:?}\n{}",
            why.reason(),
            daemon.log()
        )
    });
    assert_eq!(
        after.answered, before.answered,
        "{target}: answered meanwhile: {after:?}"
    );
}

/// The neighbor advertisements in a capture's text, as (source, destination, target).
pub fn adverts(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter(|l| l.contains("neighbor advertisement, tgt is "))
        .filter_map(|l| {
            let after = l.split("IP6 ").nth(1)?;
            let (src, rest) = after.split_once(" > ")?;
            let (dst, _) = rest.split_once(": ICMP6")?;
            let tgt = l.split("tgt is ").nth(1)?.split(',').next()?.to_string();
            Some((src.to_string(), dst.to_string(), tgt))
        })
        .collect()
}

/// The host's neighbour entry for the gateway, e.g. "2001:db8:1::1 lladdr ... REACHABLE".
pub fn gateway_entry(topo: &Topology) -> String {
    let out = topo
        .exec(
            &topo.host(),
            &[
                "ip",
                "-6",
                "neigh",
                "show",
                ndp_responder::tools::lab::GATEWAY,
                "dev",
                "eth0",
            ],
        )
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An HTTP GET over TCP from inside namespace `ns`; the whole response.
pub fn http_get_in(ns: &str, addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let netns = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    let addr = addr.to_string();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    std::thread::spawn(move || {
        // SAFETY: setns on a namespace file descriptor; affects this thread only.
        assert_eq!(
            unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let mut stream = std::net::TcpStream::connect(addr.as_str()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    })
    .join()
    .unwrap()
}

/// Make the hypervisor's bridge snoop MLD with a querier of its own (fast: a query a second,
/// answers within half a second), and pass unreported multicast no longer to the host's port.
pub fn snoop(topo: &Topology) {
    let hv = topo.hypervisor();
    let set = |args: &[&str]| {
        topo.exec(&hv, args)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    };
    set(&[
        "ip",
        "link",
        "set",
        "hvbr",
        "type",
        "bridge",
        "mcast_snooping",
        "1",
        "mcast_query_interval",
        "100",
        "mcast_query_response_interval",
        "50",
        "mcast_startup_query_interval",
        "50",
        "mcast_startup_query_count",
        "3",
    ]);
    // Only then the querier: it waits one response interval, as it stands when it is
    // enabled, before it counts as present (and until then the bridge floods, which the
    // host's port no longer gets).
    set(&[
        "ip",
        "link",
        "set",
        "hvbr",
        "type",
        "bridge",
        "mcast_querier",
        "1",
    ]);
    set(&[
        "bridge",
        "link",
        "set",
        "dev",
        "to-host",
        "mcast_flood",
        "off",
    ]);
}

/// A directory of one test's own (configuration files, sockets), removed when dropped.
pub struct Scratch(std::path::PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("ndpt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }

    /// [`Scratch::path`] as a string, for command lines.
    pub fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Wait up to `within` for `child` to exit (killing it if it does not); whether it exited by
/// itself, and its output.
pub fn exit_within(
    mut child: std::process::Child,
    within: std::time::Duration,
) -> (bool, std::process::Output) {
    let exited = ndp_responder::tools::lab::wait_until(within, || {
        child.try_wait().is_ok_and(|s| s.is_some())
    });
    if !exited {
        let _ = child.kill();
    }
    (exited, child.wait_with_output().unwrap())
}

/// A steady stream from the router: `frames` sent on r0 `gap` apart from a thread, while a
/// capture on r0 collects the advertisements that come back (room for the stream and some).
pub fn steady_stream(
    topo: &Topology,
    frames: Vec<Vec<u8>>,
    gap: std::time::Duration,
) -> (Capture, std::thread::JoinHandle<usize>) {
    let capture = start_capture(
        &topo.router(),
        "r0",
        frames.len() + 100,
        "icmp6 and ip6[40] == 136",
    );
    let router = topo.router();
    let sender = std::thread::spawn(move || send_paced_in(&router, "r0", &frames, gap));
    (capture, sender)
}

/// Run `ndp-responder doctor -i IFNAME --json ARGS` in the host namespace; (exit code,
/// report). Panics, with what doctor printed, if the report is not JSON.
pub fn doctor_json(topo: &Topology, ifname: &str, args: &[&str]) -> (i32, serde_json::Value) {
    let mut full = vec![EXE, "doctor", "-i", ifname, "--json"];
    full.extend_from_slice(args);
    let out = topo.try_exec(&topo.host(), &full).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

/// The checks of a doctor report that found something (severity warning or problem), in
/// the report's order.
pub fn faulty_checks(report: &serde_json::Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "ok")
        .map(|f| f["check"].as_str().unwrap().to_string())
        .collect()
}
