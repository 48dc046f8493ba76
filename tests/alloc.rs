//! The packet path allocates nothing per answer: parse -> decide -> (probe cache) -> rate
//! limit -> emit into the send batch, for static, auto, docker and probe rules, counted by a
//! global allocator over ten thousand solicitations each after a warm-up. (The socket calls
//! around it take caller-owned buffers: the receive ring and `sendmmsg`.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;
use std::time::Instant;

use ndp_responder::decide::policy::{self, Decision, Settings};
use ndp_responder::decide::probe::{self, Verdict};
use ndp_responder::decide::ratelimit::{Limits, RateLimiter};
use ndp_responder::decide::targets::{Downstream, Mode, Rule, Snapshot};
use ndp_responder::link::TxQueue;
use ndp_responder::ndp::{MacAddr, NeighborSolicit, MAX_EMIT_LEN};

/// Counts the allocations of the thread that turned `COUNTING` on (the test harness's own
/// threads do not mix in).
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const HOST_MAC: MacAddr = MacAddr([2, 0, 0, 0, 2, 1]);
const ROUTER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn snapshot() -> Snapshot {
    let rule = |p: &str, mode: Mode| Rule {
        prefix: p.parse().unwrap(),
        mode,
    };
    Snapshot {
        uplink: Some(2),
        mac: HOST_MAC,
        up: true,
        link_local: Some(ip("fe80::2")),
        rules: vec![
            rule("2001:db8:1::a:0/112", Mode::Static),
            rule("2001:db8:1::b:0/112", Mode::Auto),
            rule(
                "2001:db8:1::c:0/112",
                Mode::Docker {
                    network: "ipv6exposed".into(),
                },
            ),
            rule("2001:db8:1::d:0/112", Mode::Probe { via: None }),
        ],
        uplink_addrs: vec![ip("2001:db8:1::2")],
        gateways: vec![ip("fe80::1")],
        default_gateways: vec![ip("fe80::1")],
        routes: ["a", "b", "c", "d"]
            .iter()
            .map(|x| (format!("2001:db8:1::{x}:0/112").parse().unwrap(), Some(3)))
            .collect(),
        downstream: HashMap::from([(
            3,
            Downstream {
                name: "br0".into(),
                neighbours: true,
                mac: Some(MacAddr([2, 0, 0, 0, 3, 1])),
                link_local: Some(ip("fe80::3")),
            },
        )]),
        known: HashSet::from([ip("2001:db8:1::b:2")]),
        docker: HashMap::from([(ip("2001:db8:1::c:2"), "ipv6exposed".to_string())]),
        ..Snapshot::default()
    }
}

fn frame(target: &str) -> Vec<u8> {
    let ns = NeighborSolicit::resolution(ROUTER_MAC, ip("fe80::1"), ip(target));
    let mut buf = vec![0u8; MAX_EMIT_LEN];
    let len = ns.emit(&mut buf).unwrap();
    buf.truncate(len);
    buf
}

/// The packet path for `frames`, `rounds` times; returns the answers queued.
fn run(
    frames: &[Vec<u8>],
    rounds: usize,
    snap: &Snapshot,
    cache: &mut probe::Cache<NeighborSolicit>,
    limiter: &mut RateLimiter,
    tx: &mut TxQueue,
) -> usize {
    let settings = Settings::default();
    let now = Instant::now();
    let mut answered = 0;
    for _ in 0..rounds {
        for f in frames {
            let ns = NeighborSolicit::parse(f).unwrap();
            let advert = match policy::decide(&ns, snap, &settings) {
                Decision::Answer { advert, .. } => advert,
                Decision::Probe { .. } => match cache.solicit(ns.target, ns, now) {
                    Verdict::Answer => policy::advert(&ns, snap, &settings).unwrap(),
                    other => panic!("the probed target is known present: {other:?}"),
                },
                other => panic!("not answered: {other:?}"),
            };
            assert!(limiter.allow(ns.ip_src, now));
            if tx.is_full() {
                tx.clear();
            }
            assert!(tx.push(|buf| advert.emit(buf)));
            answered += 1;
        }
    }
    answered
}

#[test]
fn answering_allocates_nothing_for_any_kind_of_rule() {
    let snap = snapshot();
    let mut cache = probe::Cache::new(probe::Limits::default());
    let mut limiter = RateLimiter::new(
        Limits {
            per_source: 0,
            total: 0,
        },
        Instant::now(),
    );
    let mut tx = Box::<TxQueue>::default();
    // The probed target answered its probe once (that allocates the cache entry).
    let probed = ip("2001:db8:1::d:2");
    let first = NeighborSolicit::parse(&frame("2001:db8:1::d:2")).unwrap();
    assert_eq!(cache.solicit(probed, first, Instant::now()), Verdict::Probe);
    assert_eq!(
        cache.advert(probed, Instant::now()).map(|w| w.len()),
        Some(1)
    );

    for (kind, target) in [
        ("static", "2001:db8:1::a:2"),
        ("auto", "2001:db8:1::b:2"),
        ("docker", "2001:db8:1::c:2"),
        ("probe", "2001:db8:1::d:2"),
    ] {
        let frames = vec![frame(target)];
        // Warm-up, then counted.
        run(&frames, 10, &snap, &mut cache, &mut limiter, &mut tx);
        ALLOCATIONS.with(|n| n.set(0));
        COUNTING.with(|c| c.set(true));
        let answered = run(&frames, 10_000, &snap, &mut cache, &mut limiter, &mut tx);
        COUNTING.with(|c| c.set(false));
        assert_eq!(answered, 10_000);
        assert_eq!(allocations(), 0, "the {kind} rule's answers allocated");
    }
}

#[test]
fn the_counter_counts() {
    // The allocator above is really in use: a Vec allocates, and is counted.
    let before = allocations();
    COUNTING.with(|c| c.set(true));
    let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(64));
    COUNTING.with(|c| c.set(false));
    drop(v);
    assert!(allocations() > before);
}
