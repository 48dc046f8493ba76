//! The pure core: whether and how a solicitation is answered, and everything that decision
//! needs that has state but no I/O.
//!
//! Owns: the policy ([`policy::decide`]), which advertisements may be acted on ([`advert`]),
//! the target table and its snapshots ([`targets`]), the probe cache ([`probe`]), the
//! solicited-node groups an uplink joins ([`groups`]), the rate limits ([`ratelimit`]), the
//! keepalive and announcement schedules ([`schedule`]), which advertisements are the
//! gateway's answers ([`gateway`]), and SLAAC on the guests' interfaces: their stations,
//! duplicate detection across the proxy, what and when to advertise ([`slaac`]). Time is always passed in; every state machine is
//! unit-tested without sleeping.
//!
//! Must not: open sockets, read the kernel, read clocks or log. The uplink loop does all of that.

pub mod advert;
pub mod fastmap;
pub mod gateway;
pub mod groups;
pub mod policy;
pub mod probe;
pub mod ratelimit;
pub mod schedule;
pub mod slaac;
pub mod targets;
#[cfg(test)]
pub(crate) mod testing;
