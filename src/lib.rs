//! ndp-responder answers IPv6 Neighbor Solicitations on an uplink for addresses that live
//! behind the host (containers and VMs on a bridge), so that a provider's router that only
//! hands out an on-link /64 can reach them.
//!
//! A packet travels a short, visible path:
//!
//! ```text
//! link::PacketSocket::recv  (AF_PACKET + classic BPF: only NS reach user space)
//!   -> wire::NeighborSolicit::parse      (bytes -> fields, structural checks)
//!   -> policy::decide(&ns, &snapshot, &settings)
//!                                        (RFC 4861 7.1.1 + 7.2.4: answer, probe, or not)
//!   -> wire::NeighborAdvert::emit        (fields -> bytes)
//!   -> link::PacketSocket::send
//! ```
//!
//! [`daemon`] wires that path to the kernel facts ([`netlink`]), the target table
//! ([`targets`]) and the probe cache ([`probe`]); [`service`] runs the uplinks as one daemon
//! (signals, reload, [`control`] socket and metrics, systemd, [`privileges`]); `main.rs` only
//! parses the command line ([`cli`]). [`lab`] builds the provider
//! topology in network namespaces for the demo and the end-to-end tests;
//! [`doctor`] checks a real host.

pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod docker;
pub mod doctor;
pub mod gateway;
pub mod lab;
pub mod link;
pub mod ndppd;
pub mod netlink;
pub mod policy;
pub mod privileges;
pub mod probe;
pub mod ratelimit;
pub mod service;
pub mod status;
pub mod targets;
pub mod upstream;
pub mod wire;
