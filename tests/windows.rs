//! The daemon's two windows under abuse, end to end in network namespaces: the metrics
//! endpoint held by hundreds of unfinished requests (memory, answering, the header timeout)
//! and flooded with requests (how often the uplinks are asked for their status), and the
//! control socket refusing to replace anything but a stale socket.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{exe, status_cmd};
use ndp_responder::tools::lab::{container_addr, wait_until, CONTAINER_PREFIX};

/// The metrics endpoint, on loopback in the host's namespace.
const METRICS: &str = "[::1]:9417";

/// A directory of this test's own, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ndp-windows-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run `f` in a thread that has joined namespace `ns` (the sockets it opens stay there).
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    use std::os::fd::AsRawFd;
    let netns = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                // SAFETY: setns on a namespace file descriptor; affects this thread only.
                assert_eq!(
                    unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) },
                    0
                );
                f()
            })
            .join()
            .unwrap()
    })
}

/// `GET /metrics` on a connection of its own: the whole response.
fn get_metrics() -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&METRICS.parse().unwrap(), Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// Open `count` connections to the metrics endpoint that each send `len` octets of a request
/// head that never ends, and keep them (a write the daemon cut short is fine).
fn unfinished_requests(count: usize, len: usize) -> Vec<TcpStream> {
    let mut head = b"GET /metrics HTTP/1.1\r\nHost: test\r\nX-Pad: ".to_vec();
    head.resize(len.max(head.len()), b'a');
    (0..count)
        .filter_map(|_| {
            let mut stream =
                TcpStream::connect_timeout(&METRICS.parse().unwrap(), Duration::from_secs(5))
                    .ok()?;
            stream
                .set_write_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let _ = stream.write_all(&head);
            stream.set_nonblocking(true).unwrap();
            Some(stream)
        })
        .collect()
}

/// True once the daemon has closed `stream` (end of file or reset), reading what it sent.
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// The daemon's resident memory in KiB.
fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// One of the windows' counters from `status --json`.
fn window_counter(socket: &Path, name: &str) -> u64 {
    let (ok, out, err) = status_cmd(socket, true);
    assert!(ok, "status --json failed: {err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    status["windows"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("status --json has no windows.{name}: {out}"))
}

#[test]
fn metrics_endpoint_held_and_flooded() {
    let topo = common::topology(1);
    let dir = TempDir::new("metrics");
    let socket = dir.path("control.sock");
    let daemon = topo
        .start_daemon(
            exe(),
            &[
                "-n",
                CONTAINER_PREFIX,
                "--control-socket",
                socket.to_str().unwrap(),
                "--metrics",
                METRICS,
            ],
        )
        .unwrap();
    let ct = container_addr(1);
    assert!(common::host_answers(&topo, &ct), "{}", daemon.log());
    let host = topo.host();
    let first = in_netns(&host, get_metrics).unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let before = vm_rss_kib(daemon.pid());

    // 300 connections with 32 KiB of a request head each, then 40 that send a few octets of
    // one and wait: all held by this test.
    let (mut held, opened) = in_netns(&host, || {
        let mut held = unfinished_requests(300, 32 * 1024);
        let opened = Instant::now();
        held.extend(unfinished_requests(40, 64));
        (held, opened)
    });
    assert!(held.len() >= 330, "only {} connections opened", held.len());
    let mut during = vec![vm_rss_kib(daemon.pid())];
    // Meanwhile the endpoint answers, and so does the daemon.
    let response = in_netns(&host, get_metrics).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    during.push(vm_rss_kib(daemon.pid()));
    assert!(common::host_answers(&topo, &ct), "{}", daemon.log());
    during.push(vm_rss_kib(daemon.pid()));
    let peak = during.iter().copied().max().unwrap_or_default();
    eprintln!("VmRSS before {before} KiB, while held {during:?} KiB");
    assert!(
        peak <= before + 2048,
        "VmRSS grew from {before} KiB to {peak} KiB with {} connections held",
        held.len()
    );
    assert!(window_counter(&socket, "metrics_connections_shed") > 0);

    // The daemon closes every held connection within its header timeout (5 s), with margin.
    let all_closed = wait_until(
        Duration::from_secs(15).saturating_sub(opened.elapsed()),
        || {
            held.retain_mut(|s| !closed_by_peer(s));
            held.is_empty()
        },
    );
    assert!(
        all_closed,
        "{} connections still open {:?} after they sent their unfinished request",
        held.len(),
        opened.elapsed()
    );
    eprintln!(
        "all held connections closed by the daemon within {:?}",
        opened.elapsed()
    );

    // A flood of 200 requests asks the uplinks for their status about once a second.
    let renders = window_counter(&socket, "metrics_renders");
    let start = Instant::now();
    let ok = in_netns(&host, || {
        (0..200)
            .filter(|_| get_metrics().is_ok_and(|r| r.starts_with("HTTP/1.1 200")))
            .count()
    });
    let took = start.elapsed();
    assert_eq!(ok, 200, "of 200 requests, {ok} were answered 200");
    let rendered = window_counter(&socket, "metrics_renders") - renders;
    eprintln!("200 requests in {took:?}: {rendered} status gatherings");
    assert!(
        (1..=took.as_secs() + 2).contains(&rendered),
        "200 requests in {took:?} made {rendered} status gatherings"
    );

    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
}

/// Start the daemon with `--control-socket path` in the host's namespace: whether it exited
/// by itself within 10 s (else it is killed), its exit status and its standard error.
fn start_with_socket(
    topo: &ndp_responder::tools::lab::Topology,
    path: &Path,
) -> (bool, bool, String) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &topo.host()])
        .arg(exe())
        .args(["-i", "eth0", "-n", CONTAINER_PREFIX, "--control-socket"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let exited = wait_until(Duration::from_secs(10), || {
        child.try_wait().unwrap().is_some()
    });
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    (
        exited,
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn control_socket_replaces_only_a_stale_socket() {
    let topo = common::topology(0);
    let dir = TempDir::new("control");

    // A regular file: refused, kept as it is.
    let file = dir.path("control.sock");
    std::fs::write(&file, "precious\n").unwrap();
    let (exited, success, stderr) = start_with_socket(&topo, &file);
    assert_eq!(
        std::fs::read_to_string(&file).ok().as_deref(),
        Some("precious\n"),
        "the daemon replaced the regular file {}",
        file.display()
    );
    assert!(exited && !success, "the daemon started: {stderr}");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    assert!(stderr.contains("a regular file, not a socket"), "{stderr}");

    // A symbolic link to a file: refused, neither the link nor its target touched.
    let target = dir.path("target");
    std::fs::write(&target, "precious\n").unwrap();
    let link = dir.path("link.sock");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (exited, success, stderr) = start_with_socket(&topo, &link);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the daemon replaced the symbolic link {}",
        link.display()
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    assert!(exited && !success, "the daemon started: {stderr}");
    assert!(stderr.contains(&link.display().to_string()), "{stderr}");
    assert!(stderr.contains("a symbolic link, not a socket"), "{stderr}");
}
