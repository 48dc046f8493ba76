//! Helpers for the unit tests of `decide` (and of the doctor, which judges the same values):
//! addresses, prefixes and rules written as text.
//!
//! Owns: nothing the daemon runs (compiled for tests only). Must not: hold fixtures that
//! belong to one module's tests.

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use super::targets::{Mode, Rule};

pub fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

pub fn net(s: &str) -> Ipv6Net {
    s.parse().unwrap()
}

pub fn rule(prefix: &str, mode: Mode) -> Rule {
    Rule {
        prefix: net(prefix),
        mode,
    }
}
