//! Where targets and kernel facts come from: the kernel over rtnetlink ([`netlink`]) and the
//! Docker/Podman engine over its API socket ([`docker`]).
//!
//! Must not: decide answers or send packets.

pub mod docker;
pub mod netlink;
