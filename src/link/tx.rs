//! Batched sending: the answers found in one pass over the ring leave together, in one
//! `sendmmsg` call.
//!
//! Owns: [`TxQueue`] (frames written in place by the codec, no allocation) and what a flush
//! sent or failed to send ([`Flushed`]).
//!
//! Must not: decide what to send.

use std::io;
use std::mem;
use std::os::fd::AsRawFd;

use crate::ndp;

use super::PacketSocket;

/// Answers sent by one `sendmmsg` call, at most.
pub const TX_BATCH: usize = 64;

/// Frames waiting to leave by one `sendmmsg` call: the answers found in one pass over the
/// receive ring go out together, after the pass (a pass takes microseconds, so no answer is
/// held back for long).
pub struct TxQueue {
    frames: [[u8; ndp::MAX_EMIT_LEN]; TX_BATCH],
    lens: [usize; TX_BATCH],
    queued: usize,
}

/// The outcome of [`TxQueue::flush`].
#[derive(Debug, Default)]
pub struct Flushed {
    pub sent: usize,
    pub failed: usize,
    /// The first error, if any frame could not be sent.
    pub error: Option<io::Error>,
}

impl Default for TxQueue {
    fn default() -> Self {
        TxQueue {
            frames: [[0; ndp::MAX_EMIT_LEN]; TX_BATCH],
            lens: [0; TX_BATCH],
            queued: 0,
        }
    }
}

impl TxQueue {
    pub fn is_full(&self) -> bool {
        self.queued == TX_BATCH
    }

    /// Drop the queued frames without sending them.
    pub fn clear(&mut self) {
        self.queued = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Queue the frame that `emit` writes into the buffer it is given (returning its length).
    /// False, and nothing queued, if the queue is full or `emit` fails.
    pub fn push<E>(&mut self, emit: impl FnOnce(&mut [u8]) -> Result<usize, E>) -> bool {
        if self.is_full() {
            return false;
        }
        match emit(&mut self.frames[self.queued]) {
            Ok(len) if len <= ndp::MAX_EMIT_LEN => {
                self.lens[self.queued] = len;
                self.queued += 1;
                true
            }
            _ => false,
        }
    }

    /// Send every queued frame out of `socket`'s interface, in order, and empty the queue. A
    /// frame the kernel refuses is counted as failed and the rest are still sent.
    pub fn flush(&mut self, socket: &PacketSocket) -> Flushed {
        let mut out = Flushed::default();
        let n = std::mem::take(&mut self.queued);
        if n == 0 {
            return out;
        }
        // SAFETY: iovec and mmsghdr are plain old data; zeroed is a valid value.
        let mut iovs: [libc::iovec; TX_BATCH] = unsafe { mem::zeroed() };
        let mut msgs: [libc::mmsghdr; TX_BATCH] = unsafe { mem::zeroed() };
        for ((iov, frame), len) in iovs
            .iter_mut()
            .zip(&mut self.frames)
            .zip(&self.lens)
            .take(n)
        {
            *iov = libc::iovec {
                iov_base: frame.as_mut_ptr().cast(),
                iov_len: *len,
            };
        }
        for (msg, iov) in msgs.iter_mut().zip(iovs.iter_mut()).take(n) {
            // The socket is bound: no destination address.
            msg.msg_hdr.msg_iov = iov;
            msg.msg_hdr.msg_iovlen = 1;
        }
        let mut next = 0;
        while next < n {
            // SAFETY: msgs[next..n] point to iovecs over live frame buffers.
            let rc = unsafe {
                libc::sendmmsg(
                    socket.fd.as_raw_fd(),
                    msgs[next..].as_mut_ptr(),
                    (n - next) as libc::c_uint,
                    0,
                )
            };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first frame left is refused: count it and go on with the rest.
                out.failed += 1;
                out.error.get_or_insert(e);
                next += 1;
            } else {
                out.sent += rc as usize;
                next += (rc as usize).max(1).min(n - next);
                if rc == 0 {
                    out.failed += 1;
                }
            }
        }
        out
    }
}
