//! The classic BPF program that keeps everything but our solicitations out of user space.
//!
//! Owns: building the program ([`ndp_filter`]: incoming only, not for other stations, Ethernet
//! II + IPv6 + ICMPv6 of one type, the target in one of the rules' prefixes; and
//! [`icmp_types_filter`]: the same without targets, for a few ICMPv6 types, for the SLAAC
//! sockets) and attaching it atomically ([`attach_filter`]).
//!
//! Must not: parse frames in user space.

use std::io;
use std::os::fd::OwnedFd;

use ipnet::Ipv6Net;

use crate::ndp;

use super::{setsockopt, PACKET_OTHERHOST, PACKET_OUTGOING, RECV_BUF_LEN};

// The classic BPF opcodes and the ancillary load both programs use.
const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
// SKF_AD_OFF + SKF_AD_PKTTYPE: the skb's packet type, an ancillary "load".
const PKTTYPE: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32;

/// Offset of an NS's (or NA's) target address in the frame.
pub(super) const TARGET_OFFSET: usize = ndp::ICMPV6_TYPE_OFFSET + 8;
/// Most prefixes the kernel matches targets against; beyond that (or with a rule that covers
/// every address), every solicitation reaches user space.
pub const MAX_FILTER_PREFIXES: usize = 32;

/// The classic BPF program: accept only frames that are not sent by this host nor addressed
/// to another station, carry IPv6 directly in Ethernet II, whose next header is ICMPv6, whose
/// ICMPv6 type is `icmp_type` (135 for NS) and, when `targets` is not empty, whose target
/// address lies in one of `targets`. Everything else is dropped in the kernel: a flood of
/// solicitations for addresses that are not ours costs no wake-up, copy or parse.
/// (NDP with extension headers or VLAN tags never reaches us: Linux sends neither.)
pub fn ndp_filter(icmp_type: u8, targets: &[Ipv6Net]) -> Vec<libc::sock_filter> {
    const ACCEPT: u32 = RECV_BUF_LEN as u32;
    /// Where a jump goes, resolved once the program's length is known.
    #[derive(Clone, Copy)]
    enum To {
        Next,
        Drop,
        Accept,
        /// The first instruction of prefix block `n` (or Drop after the last).
        Block(usize),
    }
    let filter_targets = !targets.is_empty()
        && targets.len() <= MAX_FILTER_PREFIXES
        && targets.iter().all(|t| t.prefix_len() > 0);
    let targets = if filter_targets { targets } else { &[] };
    let mut prog: Vec<(u16, To, To, u32)> = vec![
        (LD_W_ABS, To::Next, To::Next, PKTTYPE),
        (JEQ_K, To::Drop, To::Next, PACKET_OUTGOING as u32),
        (JEQ_K, To::Drop, To::Next, PACKET_OTHERHOST as u32),
        (LD_H_ABS, To::Next, To::Next, ndp::ETH_TYPE_OFFSET as u32),
        (JEQ_K, To::Next, To::Drop, ndp::ETHERTYPE_IPV6 as u32),
        (
            LD_B_ABS,
            To::Next,
            To::Next,
            ndp::IPV6_NEXT_HEADER_OFFSET as u32,
        ),
        (JEQ_K, To::Next, To::Drop, ndp::IPPROTO_ICMPV6 as u32),
        (LD_B_ABS, To::Next, To::Next, ndp::ICMPV6_TYPE_OFFSET as u32),
    ];
    // Every jump must stay within 255 instructions: the header's failures go to the drop right
    // after it, each prefix block ends with its own accept, and a block's mismatch jumps to the
    // next block (or to the final drop).
    let first = if targets.is_empty() {
        To::Accept
    } else {
        To::Block(0)
    };
    prog.push((JEQ_K, first, To::Drop, icmp_type as u32));
    let drop_at = prog.len();
    prog.push((RET_K, To::Next, To::Next, 0));
    let mut accept_at = prog.len();
    if targets.is_empty() {
        prog.push((RET_K, To::Next, To::Next, ACCEPT));
    }
    let mut block_starts = Vec::new();
    for (n, net) in targets.iter().enumerate() {
        block_starts.push(prog.len());
        let addr = u128::from(net.network());
        let len = u32::from(net.prefix_len());
        let words = len.div_ceil(32);
        for w in 0..words {
            let bits = (len - 32 * w).min(32);
            let mask = if bits == 32 {
                u32::MAX
            } else {
                !(u32::MAX >> bits)
            };
            let value = (addr >> (96 - 32 * w)) as u32 & mask;
            prog.push((
                LD_W_ABS,
                To::Next,
                To::Next,
                (TARGET_OFFSET + 4 * w as usize) as u32,
            ));
            if mask != u32::MAX {
                prog.push((AND_K, To::Next, To::Next, mask));
            }
            prog.push((JEQ_K, To::Next, To::Block(n + 1), value));
        }
        accept_at = prog.len();
        prog.push((RET_K, To::Next, To::Next, ACCEPT));
    }
    let final_drop = prog.len();
    if !targets.is_empty() {
        prog.push((RET_K, To::Next, To::Next, 0));
    }
    let resolve = |from: usize, to: To| -> u8 {
        let target = match to {
            To::Next => from + 1,
            To::Drop => drop_at,
            To::Accept => accept_at,
            To::Block(n) => block_starts.get(n).copied().unwrap_or(final_drop),
        };
        // The farthest jump spans one block: at most 4 words of 3 instructions.
        u8::try_from(target - from - 1).expect("BPF jump within 255 instructions")
    };
    prog.iter()
        .enumerate()
        .map(|(i, &(code, jt, jf, k))| libc::sock_filter {
            code,
            jt: if code == JEQ_K { resolve(i, jt) } else { 0 },
            jf: if code == JEQ_K { resolve(i, jf) } else { 0 },
            k,
        })
        .collect()
}

/// The classic BPF program of the SLAAC sockets: like [`ndp_filter`] without targets, but
/// for any of the ICMPv6 `types` (e.g. RS, RA, NS, NA on a guests' bridge). At most 16 types.
pub fn icmp_types_filter(types: &[u8]) -> Vec<libc::sock_filter> {
    let types = &types[..types.len().min(16)];
    let n = types.len() as u8;
    let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    // Header: 8 instructions whose failures jump to the drop after the type tests.
    let to_drop = |at: u8| 8 + n - at - 1;
    let mut prog = vec![
        ins(LD_W_ABS, 0, 0, PKTTYPE),
        ins(JEQ_K, to_drop(1), 0, PACKET_OUTGOING as u32),
        ins(JEQ_K, to_drop(2), 0, PACKET_OTHERHOST as u32),
        ins(LD_H_ABS, 0, 0, ndp::ETH_TYPE_OFFSET as u32),
        ins(JEQ_K, 0, to_drop(4), ndp::ETHERTYPE_IPV6 as u32),
        ins(LD_B_ABS, 0, 0, ndp::IPV6_NEXT_HEADER_OFFSET as u32),
        ins(JEQ_K, 0, to_drop(6), ndp::IPPROTO_ICMPV6 as u32),
        ins(LD_B_ABS, 0, 0, ndp::ICMPV6_TYPE_OFFSET as u32),
    ];
    // Type i matches: jump over the remaining tests and the drop, to the accept.
    for (i, t) in types.iter().enumerate() {
        prog.push(ins(JEQ_K, n - i as u8, 0, u32::from(*t)));
    }
    prog.push(ins(RET_K, 0, 0, 0));
    prog.push(ins(RET_K, 0, 0, RECV_BUF_LEN as u32));
    prog
}

/// Attach (or atomically replace) the classic BPF program of a socket (SO_ATTACH_FILTER).
pub fn attach_filter(fd: &OwnedFd, program: &[libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // The kernel copies the program during the call; `program` outlives it.
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}
