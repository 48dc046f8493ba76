//! ndp-responder answers IPv6 Neighbor Solicitations on an uplink for addresses that live
//! behind the host (containers and VMs on a bridge), so that a provider's router that only
//! hands out an on-link /64 can reach them.
//!
//! A packet travels a short, visible path, and the folders follow it:
//!
//! ```text
//! link     capture: AF_PACKET + classic BPF (only NS for our prefixes reach user space)
//!   -> ndp      parse: bytes -> NeighborSolicit (structural checks)
//!   -> decide   decide(&ns, &snapshot, &settings): answer, probe, or not (RFC 4861 7.1.1, 7.2.4)
//!   -> ndp      emit: NeighborAdvert -> bytes
//!   -> link     send: batched sendmmsg
//! ```
//!
//! [`uplink`] runs that path for one uplink (one file per duty: answering, probing, upstream
//! care, refresh, report); [`sources`] feed it what the kernel ([`sources::netlink`]) and the
//! container engines ([`sources::docker`]) know; [`config`] turns flags and files into its
//! options; [`service`] runs the uplinks as one daemon (supervision, reload, control socket,
//! metrics, privileges); [`status`] is what it reports. [`tools`] holds the lab (the demo and the
//! end-to-end tests' topology), the doctor, and the man page and completions generated from
//! the CLI. `main.rs` only dispatches.

pub mod config;
pub mod decide;
pub mod link;
pub mod memory;
pub mod ndp;
pub mod service;
pub mod sources;
pub mod status;
pub mod tools;
pub mod uplink;
