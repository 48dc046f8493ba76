//! The control socket: a unix socket, one line in (`status`), one JSON [`Status`] out.
//!
//! Owns: binding it (mode 0600/0660 set by the umask at creation, never by chmod; replacing
//! only a stale socket, refusing anything else at the path and a socket that another daemon
//! answers on), serving clients (8 at once, 5 s each), the client side used by
//! `ndp-responder status`, and removing the socket at exit if it is still ours.
//!
//! Must not: gather the status itself (it asks through [`Ask`]).

use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tracing::{debug, warn};

use crate::status::Status;

use super::windows::{gather, Ask, Slots, CONTROL_SHED};

/// How long a client may take to send its request, and we to answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Control socket clients served at once.
const CONTROL_CLIENTS: usize = 8;
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
