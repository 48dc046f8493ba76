//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use ndp_responder::lab::Topology;

pub const EXE: &str = env!("CARGO_BIN_EXE_ndp-responder");

pub fn exe() -> &'static Path {
    Path::new(EXE)
}

/// A topology with a name unique to this test run (tests run in parallel).
pub fn topology(containers: usize) -> Topology {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let tag = format!(
        "ndpt{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    Topology::build(&tag, containers).unwrap_or_else(|e| panic!("building the test topology: {e}"))
}
