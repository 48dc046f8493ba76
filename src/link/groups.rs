//! The uplink's multicast memberships: solicited-node groups joined through IPv6 sockets, so
//! that the kernel reports them with MLD and answers the queries of snooping switches and
//! bridges for them (all-multicast reception, which the packet socket also asks for, reports
//! nothing).
//!
//! Owns: the sockets (AF_INET6 datagram sockets, never bound, never read), the set of groups
//! joined on one interface, the bound on it ([`MAX_GROUPS`]), and joining and leaving
//! ([`Groups::sync`]). Joining needs no capability.
//!
//! Must not: decide which groups are wanted (that is [`crate::decide::groups`]) or log.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::net::Ipv6Addr;

use socket2::{Domain, Socket, Type};

use crate::status::Reason;

/// The most groups joined on one uplink; more wanted are refused (and counted). A group costs
/// the kernel one membership and the switch one forwarding entry per port.
pub const MAX_GROUPS: usize = 1024;

/// Memberships per socket. The kernel charges each (about 56 octets) to the socket's option
/// memory, which `net.core.optmem_max` bounds: 20 KiB before Linux 6.8 (about 350 groups),
/// 128 KiB since. Should a socket still run out (ENOBUFS), the next one takes over.
const PER_SOCKET: usize = 256;

/// Sockets opened at most, so that a kernel refusing every join cannot open descriptors
/// without end.
const MAX_SOCKETS: usize = 16;

/// Why a wanted group is not joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRefused {
    /// [`MAX_GROUPS`] are joined already.
    Limit,
    /// The kernel refused the membership (or a socket for it).
    Kernel,
}

impl Reason for JoinRefused {
    fn reason(&self) -> &'static str {
        match self {
            JoinRefused::Limit => "group_limit",
            JoinRefused::Kernel => "kernel",
        }
    }
}

/// What one [`Groups::sync`] did.
#[derive(Debug, Default)]
pub struct Synced {
    pub joined: usize,
    pub left: usize,
    /// Groups newly refused (each is counted once, until it is joined or no longer wanted;
    /// every sync tries the refused ones again).
    pub refused: Vec<(Ipv6Addr, JoinRefused)>,
    /// The first error the kernel gave, for the log.
    pub error: Option<io::Error>,
}

struct Member {
    socket: Socket,
    groups: usize,
    /// The kernel said ENOBUFS: no more on this one until it leaves a group.
    full: bool,
}

/// The solicited-node groups joined on one interface. Dropping it closes the sockets, which
/// leaves every group.
pub struct Groups {
    ifindex: u32,
    sockets: Vec<Member>,
    /// Each joined group and the socket that holds it.
    joined: HashMap<Ipv6Addr, usize>,
    /// Wanted groups not joined, already reported.
    refused: HashSet<Ipv6Addr>,
}

impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groups")
            .field("ifindex", &self.ifindex)
            .field("sockets", &self.sockets.len())
            .field("joined", &self.joined.len())
            .field("refused", &self.refused.len())
            .finish()
    }
}

impl Groups {
    /// No group yet on interface `ifindex` (sockets are opened as groups are joined).
    pub fn new(ifindex: u32) -> Groups {
        Groups {
            ifindex,
            sockets: Vec::new(),
            joined: HashMap::new(),
            refused: HashSet::new(),
        }
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Groups joined now.
    pub fn len(&self) -> usize {
        self.joined.len()
    }

    pub fn is_empty(&self) -> bool {
        self.joined.is_empty()
    }

    pub fn contains(&self, group: &Ipv6Addr) -> bool {
        self.joined.contains_key(group)
    }

    /// Leave the groups no longer in `wanted`, then join those missing, up to [`MAX_GROUPS`]
    /// (the groups already joined stay first in line).
    pub fn sync(&mut self, wanted: &BTreeSet<Ipv6Addr>) -> Synced {
        let mut out = Synced::default();
        let gone: Vec<Ipv6Addr> = self
            .joined
            .keys()
            .filter(|g| !wanted.contains(g))
            .copied()
            .collect();
        for group in gone {
            if let Some(i) = self.joined.remove(&group) {
                let member = &mut self.sockets[i];
                // An error means the membership is gone already (the interface went away).
                let _ = member.socket.leave_multicast_v6(&group, self.ifindex);
                member.groups -= 1;
                member.full = false;
                out.left += 1;
            }
        }
        self.refused.retain(|g| wanted.contains(g));
        for group in wanted {
            if self.joined.contains_key(group) {
                continue;
            }
            match self.join(group) {
                Ok(()) => {
                    self.refused.remove(group);
                    out.joined += 1;
                }
                Err((why, error)) => {
                    if self.refused.insert(*group) {
                        out.refused.push((*group, why));
                    }
                    if out.error.is_none() {
                        out.error = error;
                    }
                }
            }
        }
        out
    }

    /// Join `group` on a socket with room, opening one if need be.
    fn join(&mut self, group: &Ipv6Addr) -> Result<(), (JoinRefused, Option<io::Error>)> {
        if self.joined.len() >= MAX_GROUPS {
            return Err((JoinRefused::Limit, None));
        }
        loop {
            let i = match self
                .sockets
                .iter()
                .position(|m| !m.full && m.groups < PER_SOCKET)
            {
                Some(i) => i,
                None if self.sockets.len() < MAX_SOCKETS => {
                    let socket = Socket::new(Domain::IPV6, Type::DGRAM, None)
                        .map_err(|e| (JoinRefused::Kernel, Some(e)))?;
                    self.sockets.push(Member {
                        socket,
                        groups: 0,
                        full: false,
                    });
                    self.sockets.len() - 1
                }
                None => return Err((JoinRefused::Kernel, None)),
            };
            let member = &mut self.sockets[i];
            match member.socket.join_multicast_v6(group, self.ifindex) {
                Ok(()) => {
                    member.groups += 1;
                    self.joined.insert(*group, i);
                    return Ok(());
                }
                // Out of option memory: this socket is full, try the next one. A socket with
                // nothing on it that cannot take one more will not take any.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) && member.groups > 0 => {
                    member.full = true;
                }
                Err(e) => return Err((JoinRefused::Kernel, Some(e))),
            }
        }
    }
}
