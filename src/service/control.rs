//! The two windows into a running daemon: the control socket and the metrics endpoint.
//!
//! Owns: binding the unix control socket (mode 0600/0660 set by the umask at creation, never
//! by chmod; replacing only a stale socket, refusing anything else at the path and a socket
//! that another daemon answers on), its one-line protocol (`status\n` in, one JSON [`Status`]
//! out), the client side used by `ndp-responder status`, the HTTP endpoint that serves the same
//! figures in the Prometheus text format (hyper), and what bounds both: connections at once,
//! timeouts, request size, one rendering of the metrics reused for a second, and their
//! counters ([`Windows`](crate::status::Windows)).
//!
//! Must not: gather the status itself; both ask the service through [`Ask`]. Must not let a
//! client grow memory or ask the uplinks' loops for more than about one status a second
//! through the metrics endpoint.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::status::{Status, Windows};

/// How a window asks the service for the current status.
pub type Ask = mpsc::Sender<oneshot::Sender<Status>>;

/// How long a client may take to send its request, and we to answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Control socket clients served at once.
const CONTROL_CLIENTS: usize = 8;
/// Metrics connections served at once.
const METRICS_CONNECTIONS: usize = 16;
/// How long an HTTP client may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The most a metrics connection lasts, whatever the client does.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);
/// hyper's read buffer for a connection: its minimum; a longer request head is refused (431).
const MAX_BUF: usize = 8192;
/// How long one rendering of the metrics is served before the uplinks are asked again.
const RENDER_REUSE: Duration = Duration::from_secs(1);
/// Connections closed at a window's limit are logged (at debug) at most this often.
const SHED_NOTE_EVERY: Duration = Duration::from_secs(60);

static METRICS_RENDERS: AtomicU64 = AtomicU64::new(0);
static METRICS_SHED: AtomicU64 = AtomicU64::new(0);
static CONTROL_SHED: AtomicU64 = AtomicU64::new(0);

/// The windows' own counters, as the status reports them.
fn windows() -> Windows {
    Windows {
        metrics_renders: METRICS_RENDERS.load(Ordering::Relaxed),
        metrics_connections_shed: METRICS_SHED.load(Ordering::Relaxed),
        control_connections_shed: CONTROL_SHED.load(Ordering::Relaxed),
    }
}

/// What is at `path` instead of a socket, for an error message.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_fifo() {
        "a named pipe"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a socket"
    }
}

/// Bind the control socket at `path` with permissions `mode`. Only a stale socket (left by a
/// crash) is replaced: anything else at the path (a file, a directory, a symbolic link, even
/// to a socket) is refused and left as it is, and so is a socket a live daemon answers on.
/// The mode comes from the umask at creation: nothing is chmod-ed, so no link is followed.
pub fn bind(path: &Path, mode: u32) -> io::Result<std::os::unix::net::UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io::Error::new(e.kind(), format!("cannot inspect {shown}: {e}"))),
        Ok(meta) if meta.file_type().is_socket() => match StdUnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another ndp-responder answers on it: stop that one, or give this one its own path (--control-socket, control_socket)",
                ))
            }
            // Nobody listens: a stale socket, replaced.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path)?,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("a socket is there and cannot be checked ({e}); if no daemon uses it, remove {shown}, or choose another path (--control-socket, control_socket)"),
                ))
            }
        },
        Ok(meta) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{shown} is {}, not a socket; only a stale socket is ever replaced: remove it if it is not needed, or choose another path (--control-socket, control_socket)",
                    kind_of(&meta)
                ),
            ))
        }
    }
    // Created with exactly `mode` (the kernel gives a socket 0777 less the umask).
    // SAFETY: umask only changes the process's file-creation mask; restored right after.
    let old = unsafe { libc::umask(!mode & 0o777) };
    let bound = std::os::unix::net::UnixListener::bind(path);
    unsafe { libc::umask(old) };
    let listener = bound?;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.mode() & 0o777 != mode & 0o777 {
            warn!(
                "the control socket {shown} has mode {:o}, not {mode:o} (a default ACL on its directory?)",
                meta.mode() & 0o777
            );
        }
    }
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The connections one window serves at once. When all are taken, a new connection takes the
/// place of the oldest one that has not sent its request yet (a slow or idle client: held
/// connections cannot lock everyone out), or is closed at once when every one is busy
/// answering. Either way memory stays bounded.
struct Slots {
    window: &'static str,
    cap: usize,
    live: VecDeque<Slot>,
    shed: &'static AtomicU64,
    noted: Option<Instant>,
    unnoted: u64,
}

struct Slot {
    task: JoinHandle<()>,
    /// Set once the client's request is in.
    asked: Arc<AtomicBool>,
}

impl Slots {
    fn new(window: &'static str, cap: usize, shed: &'static AtomicU64) -> Slots {
        Slots {
            window,
            cap,
            live: VecDeque::with_capacity(cap),
            shed,
            noted: None,
            unnoted: 0,
        }
    }

    /// Make room for a new connection; false when there is none (close the new one).
    fn admit(&mut self) -> bool {
        self.live.retain(|s| !s.task.is_finished());
        if self.live.len() < self.cap {
            return true;
        }
        let idle = self
            .live
            .iter()
            .position(|s| !s.asked.load(Ordering::Relaxed));
        let room = match idle.and_then(|i| self.live.remove(i)) {
            Some(oldest) => {
                oldest.task.abort();
                true
            }
            None => false,
        };
        self.shed.fetch_add(1, Ordering::Relaxed);
        self.unnoted += 1;
        if self.noted.is_none_or(|t| t.elapsed() >= SHED_NOTE_EVERY) {
            debug!(
                "{}: {} connection(s) closed at the limit of {} at once since the last such note (all are counted in the status and metrics)",
                self.window, self.unnoted, self.cap
            );
            self.noted = Some(Instant::now());
            self.unnoted = 0;
        }
        room
    }

    fn add(&mut self, task: JoinHandle<()>, asked: Arc<AtomicBool>) {
        self.live.push_back(Slot { task, asked });
    }
}

/// Answer control connections forever.
pub async fn serve(listener: std::os::unix::net::UnixListener, ask: Ask) {
    let listener = match UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!("control socket: {e}; `ndp-responder status` will not work");
            return;
        }
    };
    let mut slots = Slots::new("control socket", CONTROL_CLIENTS, &CONTROL_SHED);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if !slots.admit() {
                    continue; // dropping it closes it
                }
                let ask = ask.clone();
                let asked = Arc::new(AtomicBool::new(false));
                let flag = asked.clone();
                let task = tokio::spawn(async move {
                    let _ = tokio::time::timeout(CLIENT_TIMEOUT, client(stream, ask, &flag)).await;
                });
                slots.add(task, asked);
            }
            Err(e) => {
                // E.g. out of descriptors: do not spin.
                warn!("control socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn client(stream: tokio::net::UnixStream, ask: Ask, asked: &AtomicBool) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(tokio::io::AsyncReadExt::take(read, 256))
        .read_line(&mut line)
        .await?;
    asked.store(true, Ordering::Relaxed);
    let reply = match line.trim() {
        "status" => match gather(&ask).await {
            Some(status) => serde_json::to_string(&status).map_err(io::Error::other)?,
            None => r#"{"error":"the daemon is stopping"}"#.to_string(),
        },
        other => {
            debug!("control socket: unknown request {other:?}");
            serde_json::json!({ "error": format!("unknown request {other:?}; the only one is \"status\"") })
                .to_string()
        }
    };
    write.write_all(reply.as_bytes()).await?;
    write.write_all(b"\n").await?;
    write.shutdown().await
}

async fn gather(ask: &Ask) -> Option<Status> {
    let (tx, rx) = oneshot::channel();
    ask.send(tx).await.ok()?;
    let mut status = rx.await.ok()?;
    status.windows = windows();
    Some(status)
}

/// Ask the daemon listening on `path` for its status (the client side of `status`).
pub fn query(path: &Path) -> Result<Status, String> {
    let hint = "is the daemon running, and is this its control socket (--control-socket / control_socket)? Reading it needs the socket's owner or group";
    let mut stream = StdUnixStream::connect(path)
        .map_err(|e| format!("cannot reach the daemon at {}: {e}; {hint}", path.display()))?;
    let io_err = |e: io::Error| format!("talking to the daemon at {}: {e}", path.display());
    stream
        .set_read_timeout(Some(CLIENT_TIMEOUT))
        .map_err(io_err)?;
    stream.write_all(b"status\n").map_err(io_err)?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).map_err(io_err)?;
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&reply) {
        if let Some(e) = map.get("error") {
            return Err(format!("the daemon answered: {e}"));
        }
    }
    serde_json::from_str(&reply).map_err(|e| {
        format!(
            "the daemon at {} sent a status this version cannot read ({e}); are both the same version?",
            path.display()
        )
    })
}

/// One rendering of the metrics, served again for [`RENDER_REUSE`].
type Cache = Arc<tokio::sync::Mutex<Option<(Instant, Bytes)>>>;

/// Serve `GET /metrics` forever.
pub async fn serve_metrics(listener: std::net::TcpListener, ask: Ask) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!("metrics: {e}; no metrics will be served");
            return;
        }
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_BUF)
        .keep_alive(false);
    let cache = Cache::default();
    let mut slots = Slots::new("metrics", METRICS_CONNECTIONS, &METRICS_SHED);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn!("metrics: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !slots.admit() {
            continue; // dropping it closes it
        }
        let asked = Arc::new(AtomicBool::new(false));
        let (ask, cache, flag) = (ask.clone(), cache.clone(), asked.clone());
        let service = hyper::service::service_fn(move |req| {
            flag.store(true, Ordering::Relaxed);
            let (ask, cache) = (ask.clone(), cache.clone());
            async move { Ok::<_, std::convert::Infallible>(respond(req, &ask, &cache).await) }
        });
        let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let task = tokio::spawn(async move {
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, connection).await;
        });
        slots.add(task, asked);
    }
}

/// The metrics text: the cached rendering while it is fresh, else a new one (one at a time:
/// the others wait for it). None when the daemon is stopping.
async fn rendering(ask: &Ask, cache: &Cache) -> Option<Bytes> {
    let mut cached = cache.lock().await;
    if let Some((at, body)) = cached.as_ref() {
        if at.elapsed() < RENDER_REUSE {
            return Some(body.clone());
        }
    }
    METRICS_RENDERS.fetch_add(1, Ordering::Relaxed);
    let body = Bytes::from(gather(ask).await?.prometheus());
    *cached = Some((Instant::now(), body.clone()));
    Some(body)
}

async fn respond<B>(
    req: hyper::Request<B>,
    ask: &Ask,
    cache: &Cache,
) -> hyper::Response<Full<Bytes>> {
    let reply = |code: u16, kind: &str, body: Bytes| {
        hyper::Response::builder()
            .status(code)
            .header("content-type", kind)
            .body(Full::new(body))
            .unwrap_or_default()
    };
    if req.method() != hyper::Method::GET || req.uri().path() != "/metrics" {
        return reply(
            404,
            "text/plain",
            Bytes::from_static(b"ndp-responder serves GET /metrics\n"),
        );
    }
    match rendering(ask, cache).await {
        Some(body) => reply(
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            body,
        ),
        None => reply(
            503,
            "text/plain",
            Bytes::from_static(b"the daemon is stopping\n"),
        ),
    }
}

/// Remove the control socket at exit, only if it is still ours: a socket (never what a
/// symbolic link points to), with the inode it had when bound.
pub struct SocketFile {
    path: PathBuf,
    inode: Option<(u64, u64)>,
}

/// The device and inode of the socket at `path` (not following a link); None for anything else.
fn socket_inode(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.file_type().is_socket())
        .map(|m| (m.dev(), m.ino()))
}

impl SocketFile {
    pub fn new(path: &Path) -> SocketFile {
        SocketFile {
            path: path.to_path_buf(),
            inode: socket_inode(path),
        }
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if self.inode.is_some() && socket_inode(&self.path) == self.inode {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory of one test, removed at the end.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("ndpctl-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o777
    }

    /// The error names the path, what is there and what to do.
    fn assert_refused(e: &io::Error, path: &Path, what: &str) {
        let text = e.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(
            text.contains(what) && text.contains("not a socket"),
            "{text}"
        );
        assert!(text.contains("--control-socket"), "{text}");
    }
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn control_socket_is_created_with_its_mode_and_not_stolen() {
        let scratch = Scratch::new("stale");
        let path = scratch.0.join("sub/control.sock");
        let listener = bind(&path, 0o600).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        // A live listener is not taken over.
        let e = bind(&path, 0o600).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        drop(listener);
        // A stale one (nobody listening) is replaced, with exactly the mode asked for.
        let again = bind(&path, 0o660).unwrap();
        assert!(std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_socket());
        assert_eq!(mode_of(&path), 0o660);
        {
            let _cleanup = SocketFile::new(&path);
        }
        assert!(!path.exists());
        drop(again);
    }

    #[test]
    fn a_regular_file_is_refused_and_kept() {
        let scratch = Scratch::new("file");
        let path = scratch.0.join("control.sock");
        std::fs::write(&path, "precious\n").unwrap();
        let e = bind(&path, 0o600).unwrap_err();
        assert_refused(&e, &path, "a regular file");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious\n");
    }

    #[test]
    fn a_symlink_is_refused_and_its_target_kept() {
        let scratch = Scratch::new("link");
        let target = scratch.0.join("target");
        std::fs::write(&target, "precious\n").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = scratch.0.join("control.sock");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let e = bind(&path, 0o600).unwrap_err();
        assert_refused(&e, &path, "a symbolic link");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
        assert_eq!(mode_of(&target), 0o644);
        assert!(std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        // Nor one to a stale socket: links are never followed.
        std::fs::remove_file(&path).unwrap();
        let socket = scratch.0.join("real.sock");
        drop(bind(&socket, 0o600).unwrap());
        std::os::unix::fs::symlink(&socket, &path).unwrap();
        let e = bind(&path, 0o600).unwrap_err();
        assert_refused(&e, &path, "a symbolic link");
    }

    #[test]
    fn a_directory_is_refused() {
        let scratch = Scratch::new("dir");
        let path = scratch.0.join("control.sock");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), "kept").unwrap();
        let e = bind(&path, 0o600).unwrap_err();
        assert_refused(&e, &path, "a directory");
        assert_eq!(
            std::fs::read_to_string(path.join("inside")).unwrap(),
            "kept"
        );
    }

    #[test]
    fn the_socket_is_removed_at_exit_only_while_it_is_ours() {
        let scratch = Scratch::new("exit");
        let path = scratch.0.join("control.sock");
        let listener = bind(&path, 0o600).unwrap();
        let cleanup = SocketFile::new(&path);
        // Replaced by a file meanwhile: that file stays.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "someone else's").unwrap();
        drop(cleanup);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "someone else's");
        drop(listener);
    }
}
