//! Tools around the daemon: the lab (a provider's network in namespaces, for the demo and the
//! end-to-end tests), the network-namespace helpers it is built on, and the doctor (checks a
//! real host).
//!
//! Must not: be on the daemon's packet path.

pub mod doctor;
pub mod lab;
pub mod netns;
