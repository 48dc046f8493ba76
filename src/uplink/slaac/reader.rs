//! The sockets of SLAAC: one on each guests' interface (RS, RA, NS, NA) and one on the uplink
//! (the router's RA, the answers to relayed DAD), each read by a task of its own that hands
//! the frames to the uplink's loop.
//!
//! Owns: opening and reading those sockets, counting the frames dropped when the loop is
//! behind, and sending a frame out of one. Must not: look into a frame (that is
//! [`super::heard`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::link::RECV_BUF_LEN;
use crate::link::{Capture, PacketSocket};
use crate::ndp::{self, router::RouterAdvert};

/// A frame heard by a SLAAC socket: on a guests' interface (its index), or on the uplink.
pub(in crate::uplink) enum Heard {
    Guests(u32, Vec<u8>),
    Uplink(Vec<u8>),
}

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
    pub(super) fn open(
        name: &str,
        index: u32,
        capture: Capture,
        tx: mpsc::Sender<Heard>,
        dropped: Arc<AtomicU64>,
        guests: bool,
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
                match guard.try_io(|s| s.get_ref().recv(&mut buf).map(|f| f.map(<[u8]>::to_vec))) {
                    Ok(Ok(Some(frame))) => {
                        let heard = if guests {
                            Heard::Guests(index, frame)
                        } else {
                            Heard::Uplink(frame)
                        };
                        match tx.try_send(heard) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                dropped.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                        }
                    }
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) if e.raw_os_error() == Some(libc::ENETDOWN) => {}
                    Ok(Err(_)) => return,
                    Err(_would_block) => {}
                }
            }
        });
        Ok(Reader { socket, task })
    }

    pub(super) fn send(&self, frame: &[u8]) -> bool {
        self.socket.get_ref().send(frame).is_ok()
    }
}

pub(super) fn send_small(
    reader: &Reader,
    emit: impl FnOnce(&mut [u8]) -> Result<usize, ndp::BufferTooSmall>,
) -> bool {
    reader.socket.get_ref().send_with(emit).is_ok()
}

pub(super) fn send_ra(reader: &Reader, ra: &RouterAdvert) -> bool {
    match ra.to_frame() {
        Ok(frame) => reader.send(&frame),
        Err(_) => false,
    }
}
