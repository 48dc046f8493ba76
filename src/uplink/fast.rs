//! The uplink's in-kernel fast path: keeping the XDP program attached and its maps equal to
//! the answer set, and folding what it did into the uplink's counters.
//!
//! Owns: when the program is loaded and attached (the uplink exists and `fast_path` is on),
//! re-attached (the uplink came back with a new index) and detached (the uplink went, the
//! option was turned off by a reload, the daemon stops); the one warning naming why it could
//! not load (the socket path then answers everything); [`Responder::sync_fast`], called at
//! every snapshot, probe-cache or configuration change; and [`Responder::poll_fast`], which
//! adds the program's per-reason counts to the ONE counters type and marks the targets it
//! answered as in use (for `status` and the announcer).
//!
//! Must not: decide what is answered ([`crate::decide::fastmap`]) or touch the maps itself
//! ([`crate::link::fastpath`]).

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::Responder;
use crate::decide::fastmap;
use crate::decide::targets::Snapshot;
use crate::link::fastpath::abi::{Slot, SLOTS};
use crate::link::fastpath::FastPath;

/// How often the program's counters and answered targets are read while it runs.
const POLL: Duration = Duration::from_secs(5);

/// The fast path of one uplink.
#[derive(Debug, Default)]
pub(super) struct Fast {
    path: Option<FastPath>,
    /// The interface it is attached to.
    index: Option<u32>,
    /// The interface it failed to load or attach on (not retried until the index changes).
    failed: Option<u32>,
    /// What `status` says (`xdp-native`, `xdp-generic`, or `off: why`).
    state: String,
    /// The counters as last read, to add only what is new.
    seen: [u64; SLOTS.len()],
    next_poll: Option<Instant>,
}

impl Fast {
    pub(super) fn state(&self) -> String {
        if self.state.is_empty() {
            "off".into()
        } else {
            self.state.clone()
        }
    }

    pub(super) fn next_poll(&self) -> Option<Instant> {
        self.path.as_ref().and(self.next_poll)
    }
}

impl Responder {
    /// Make the program (attached or not) match `snap`, the probe cache and the options.
    pub(super) fn sync_fast(&mut self, snap: &Snapshot) {
        let wanted = if self.opts.fast_path {
            snap.uplink
        } else {
            None
        };
        if wanted != self.fast.index {
            self.stop_fast();
            if !self.opts.fast_path {
                self.fast.state = "off (fast_path = false or --no-fast-path)".into();
            }
        }
        let Some(index) = wanted else {
            return;
        };
        if self.fast.path.is_none() {
            if self.fast.failed == Some(index) {
                return;
            }
            let native = crate::link::fastpath::native_preferred(&self.ifname);
            let attached = FastPath::load_attached(&self.ifname, index, native);
            match attached {
                Ok(fp) => {
                    info!(
                        "{}: fast path attached ({}): solicitations the maps cover are answered in the kernel{}",
                        self.ifname,
                        fp.mode().label(),
                        if self.opts.drop_uncovered {
                            "; those for targets nobody here answers are dropped there (drop_uncovered)"
                        } else {
                            ""
                        }
                    );
                    self.fast.state = fp.mode().label().to_string();
                    self.fast.path = Some(fp);
                    self.fast.index = Some(index);
                    self.fast.failed = None;
                    self.fast.next_poll = Some(Instant::now() + POLL);
                    // A fresh program counts from zero.
                    self.fast.seen = [0; SLOTS.len()];
                }
                Err(e) => {
                    warn!(
                        "{}: no fast path, answering from the packet socket only: {e}",
                        self.ifname
                    );
                    self.fast.state = format!("off: {e}");
                    self.fast.failed = Some(index);
                    return;
                }
            }
        }
        let positives: Vec<Ipv6Addr> = self.cache.positives().collect();
        let uncovered = if self.opts.drop_uncovered {
            fastmap::Uncovered::Drop
        } else {
            fastmap::Uncovered::Pass
        };
        let set = fastmap::compute(snap, positives, &self.settings, uncovered);
        let limits = self.opts.rate_limit;
        if let Some(fp) = self.fast.path.as_mut() {
            if let Err(e) = fp.sync(&set, limits) {
                warn!(
                    "{}: could not update the fast path's maps ({e}); detaching it, the packet socket answers everything",
                    self.ifname
                );
                self.fast.failed = Some(index);
                self.fast.state = format!("off: updating its maps failed: {e}");
                self.stop_fast();
            }
        }
    }

    /// Read what the program did and detach it.
    pub(super) fn stop_fast(&mut self) {
        if self.fast.path.is_some() {
            self.poll_fast();
            self.fast.path = None;
            self.fast.index = None;
            self.fast.state = "off (uplink gone)".into();
        }
    }

    /// Add the program's counts since the last read to the counters; mark the targets it
    /// answered as in use.
    pub(super) fn poll_fast(&mut self) {
        let Some(fp) = self.fast.path.as_mut() else {
            return;
        };
        let now = Instant::now();
        self.fast.next_poll = Some(now + POLL);
        let answered = fp.take_answered().unwrap_or_default();
        let Ok(counts) = fp.counters() else {
            return;
        };
        let last = std::mem::replace(&mut self.fast.seen, counts);
        let c = &mut self.counters;
        let (mut seen, mut passed) = (0, 0);
        for ((slot, count), last) in SLOTS.iter().zip(counts).zip(last) {
            let n = count.saturating_sub(last);
            if n == 0 {
                continue;
            }
            match slot {
                Slot::Seen => seen = n,
                Slot::Passed => passed = n,
                Slot::Answered => {
                    c.answered += n;
                    c.answered_in_kernel += n;
                }
                Slot::Malformed(e) => c.invalid.add_n(*e, n),
                Slot::Invalid(e) => c.invalid.add_n(*e, n),
                Slot::Ignored(e) => c.ignored.add_n(*e, n),
                Slot::Limited(e) => {
                    c.rate_limited += n;
                    c.withheld.add_n(*e, n);
                }
            }
        }
        // Those passed up are counted again by the socket path when they reach it.
        c.ns_seen += seen.saturating_sub(passed);
        c.passed_up += passed;
        for (addr, ago) in answered {
            self.note_in_use(addr, now.checked_sub(ago).unwrap_or(now));
        }
    }
}
