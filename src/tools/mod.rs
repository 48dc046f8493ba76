//! Tools around the daemon: the lab (a provider's network in namespaces, for the demo and the
//! end-to-end tests), the network-namespace helpers it is built on, the doctor (checks a real
//! host), and the documentation generated from the CLI (man page, completions).
//!
//! Must not: be on the daemon's packet path.

pub mod doctor;
pub mod lab;
pub mod netns;
