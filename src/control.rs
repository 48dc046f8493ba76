//! The two windows into a running daemon: the control socket and the metrics endpoint.
//!
//! Owns: binding the unix control socket (mode 0600/0660, refusing to steal one that another
//! daemon answers on), its one-line protocol (`status\n` in, one JSON [`Status`] out), the
//! client side used by `ndp-responder status`, and the HTTP endpoint that serves the same
//! figures in the Prometheus text format (hyper).
//!
//! Must not: gather the status itself; both ask the service through [`Ask`].

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::status::Status;

/// Where the control socket is unless configured otherwise (systemd's RuntimeDirectory).
pub const DEFAULT_SOCKET: &str = "/run/ndp-responder/control.sock";
/// Who may ask: the owner and its group.
pub const DEFAULT_MODE: u32 = 0o660;

/// How a window asks the service for the current status.
pub type Ask = mpsc::Sender<oneshot::Sender<Status>>;

/// How long a client may take to send its request, and we to answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Bind the control socket at `path` with permissions `mode`. An existing socket that a live
/// daemon answers on is not taken over; a stale one (left by a crash) is replaced.
pub fn bind(path: &Path, mode: u32) -> io::Result<std::os::unix::net::UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if StdUnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another ndp-responder answers on it: stop that one, or give this one its own path (--control-socket, control_socket)",
            ));
        }
        std::fs::remove_file(path)?;
    }
    // Created with no access for others from the start, then opened up to `mode`.
    // SAFETY: umask only changes the process's file-creation mask; restored right after.
    let old = unsafe { libc::umask(0o177) };
    let bound = std::os::unix::net::UnixListener::bind(path);
    unsafe { libc::umask(old) };
    let listener = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
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
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let ask = ask.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(CLIENT_TIMEOUT, client(stream, ask)).await;
                });
            }
            Err(e) => {
                // E.g. out of descriptors: do not spin.
                warn!("control socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn client(stream: tokio::net::UnixStream, ask: Ask) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(tokio::io::AsyncReadExt::take(read, 256))
        .read_line(&mut line)
        .await?;
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
    rx.await.ok()
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

/// Parse `--metrics`: `ADDR:PORT`, `[V6ADDR]:PORT`, or a bare port (then on loopback, ::1).
pub fn parse_metrics_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)));
    }
    s.parse().map_err(|_| {
        format!("'{s}' is not ADDR:PORT or a port: e.g. [::1]:9417 (loopback), or 9417")
    })
}

/// Serve `GET /metrics` forever.
pub async fn serve_metrics(listener: std::net::TcpListener, ask: Ask) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!("metrics: {e}; no metrics will be served");
            return;
        }
    };
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn!("metrics: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ask = ask.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let ask = ask.clone();
                async move { Ok::<_, std::convert::Infallible>(respond(req, &ask).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(60), connection).await;
        });
    }
}

async fn respond<B>(req: hyper::Request<B>, ask: &Ask) -> hyper::Response<Full<Bytes>> {
    let reply = |code: u16, kind: &str, body: String| {
        hyper::Response::builder()
            .status(code)
            .header("content-type", kind)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    if req.method() != hyper::Method::GET || req.uri().path() != "/metrics" {
        return reply(
            404,
            "text/plain",
            "ndp-responder serves GET /metrics\n".into(),
        );
    }
    match gather(ask).await {
        Some(status) => reply(
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            status.prometheus(),
        ),
        None => reply(503, "text/plain", "the daemon is stopping\n".into()),
    }
}

/// Remove the control socket at exit (only if it is still ours: same inode).
pub struct SocketFile {
    path: PathBuf,
    inode: Option<u64>,
}

impl SocketFile {
    pub fn new(path: &Path) -> SocketFile {
        use std::os::unix::fs::MetadataExt;
        SocketFile {
            path: path.to_path_buf(),
            inode: std::fs::metadata(path).ok().map(|m| m.ino()),
        }
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        if std::fs::metadata(&self.path).ok().map(|m| m.ino()) == self.inode {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_address_forms() {
        assert_eq!(
            parse_metrics_addr("9417").unwrap(),
            "[::1]:9417".parse().unwrap()
        );
        assert_eq!(
            parse_metrics_addr("[2001:db8::1]:80").unwrap(),
            "[2001:db8::1]:80".parse().unwrap()
        );
        assert_eq!(
            parse_metrics_addr("127.0.0.1:9417").unwrap(),
            "127.0.0.1:9417".parse().unwrap()
        );
        let e = parse_metrics_addr("localhost").unwrap_err();
        assert!(e.contains("'localhost'") && e.contains("[::1]:9417"), "{e}");
    }

    #[test]
    fn control_socket_is_created_with_its_mode_and_not_stolen() {
        let dir = std::env::temp_dir().join(format!("ndpctl-{}", std::process::id()));
        let path = dir.join("sub/control.sock");
        let listener = bind(&path, 0o600).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A live listener is not taken over.
        let e = bind(&path, 0o600).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        drop(listener);
        // A stale one (nobody listening) is replaced.
        let again = bind(&path, 0o660).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        {
            let _cleanup = SocketFile::new(&path);
        }
        assert!(!path.exists());
        drop(again);
        let _ = std::fs::remove_dir_all(dir);
    }
}
