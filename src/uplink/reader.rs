//! A packet socket read by a task of its own, which hands what it reads to the uplink's loop:
//! the probers' and the gateway's advertisement readers ([`super::probing`]) and the SLAAC
//! sockets ([`super::slaac`]).
//!
//! Owns: registering the socket with the runtime, the read loop (an interface that is down
//! keeps its reader; one that went away ends it), counting the frames the loop's queue had no
//! room for, stopping the task when the reader is dropped, and the socket for sending out of
//! the same interface. Must not: look into a frame beyond the `read` function it is given.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::link::{Capture, PacketSocket, RECV_BUF_LEN};

/// A socket and the task that reads it.
pub(super) struct Reader {
    socket: Arc<AsyncFd<PacketSocket>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Reader {
    /// Open a `capture` socket on interface `index` and read it: what `read` makes of a frame
    /// goes to `tx`; when `tx` is full it is dropped and counted in `dropped`.
    pub(super) fn open<T: Send + 'static>(
        name: &str,
        index: u32,
        capture: Capture,
        tx: mpsc::Sender<T>,
        dropped: Arc<AtomicU64>,
        read: impl Fn(&[u8]) -> Option<T> + Send + 'static,
    ) -> Result<Reader, String> {
        let socket = PacketSocket::open(name, index, capture).map_err(|e| e.to_string())?;
        // SAFETY: the socket owns its descriptor, which lives as long as the AsyncFd.
        let socket = Arc::new(unsafe { AsyncFd::register(socket) }.map_err(|e| e.to_string())?);
        let reader = socket.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; RECV_BUF_LEN];
            loop {
                let Ok(mut guard) = reader.readable().await else {
                    return;
                };
                match guard.try_io(|s| s.get_ref().recv(&mut buf).map(|f| f.and_then(&read))) {
                    Ok(Ok(Some(item))) => match tx.try_send(item) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    },
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) if e.raw_os_error() == Some(libc::ENETDOWN) => {}
                    // The interface went away: the next snapshot drops this reader.
                    Ok(Err(_)) => return,
                    Err(_would_block) => {}
                }
            }
        });
        Ok(Reader { socket, task })
    }

    /// The socket, to send out of the same interface.
    pub(super) fn socket(&self) -> &PacketSocket {
        self.socket.get_ref()
    }
}
