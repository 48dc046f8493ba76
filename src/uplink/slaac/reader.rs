//! The sockets of SLAAC: one on each guests' interface (RS, RA, NS, NA) and one on the uplink
//! (the router's RA, the answers to relayed DAD), each read by a task of its own that hands
//! the frames to the uplink's loop.
//!
//! Owns: opening those sockets (read by [`crate::uplink::reader::Reader`]), what a frame
//! becomes for the loop ([`Heard`]), and sending a frame out of one. Must not: look into a
//! frame (that is [`super::heard`]).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::link::Capture;
use crate::ndp::{self, router::RouterAdvert};
use crate::uplink::reader::Reader;

/// A frame heard by a SLAAC socket: on a guests' interface (its index), or on the uplink.
pub(in crate::uplink) enum Heard {
    Guests(u32, Vec<u8>),
    Uplink(Vec<u8>),
}

/// Open the SLAAC socket of interface `index` (a guests' interface, or the uplink), read by
/// a task that hands every frame to the loop as [`Heard`].
pub(super) fn open(
    name: &str,
    index: u32,
    capture: Capture,
    tx: mpsc::Sender<Heard>,
    dropped: Arc<AtomicU64>,
    guests: bool,
) -> Result<Reader, String> {
    Reader::open(name, index, capture, tx, dropped, move |frame| {
        let frame = frame.to_vec();
        Some(if guests {
            Heard::Guests(index, frame)
        } else {
            Heard::Uplink(frame)
        })
    })
}

pub(super) fn send_small(
    reader: &Reader,
    emit: impl FnOnce(&mut [u8]) -> Result<usize, ndp::BufferTooSmall>,
) -> bool {
    reader.socket().send_with(emit).is_ok()
}

pub(super) fn send_ra(reader: &Reader, ra: &RouterAdvert) -> bool {
    match ra.to_frame() {
        Ok(frame) => reader.socket().send(&frame).is_ok(),
        Err(_) => false,
    }
}
