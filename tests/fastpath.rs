//! The in-kernel fast path (src/link/fastpath/, bpf/fastpath.bpf.c) against the socket path.
//!
//! 1. The checked-in object is what bpf/build makes of the source, bit for bit (fails, never
//!    skips, without clang: ./test installs it).
//! 2. Differential: the malformed battery (tests/common/battery.rs), the fuzz seeds
//!    (fuzz/seeds/) and thousands of seeded mutations go through the loaded program with
//!    BPF_PROG_TEST_RUN and through the socket path's pure functions (`NeighborSolicit::parse`
//!    then `policy::decide` then `NeighborAdvert::emit`), under every answer shape. Required:
//!    an answer from the program is byte-identical to the socket path's; a drop is one the
//!    socket path makes too, counted under the same reason; a frame the socket path answers
//!    is answered by the program (never passed up); a pass ("unsure") is allowed otherwise.
//! 3. The rate limits hold in the program; a swap of the maps changes what it answers.
//!
//! The daemon with the fast path in network namespaces is tests/fastpath_lab.rs.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, BorrowedFd};

use common::battery::{battery, ip};
use ndp_responder::decide::fastmap;
use ndp_responder::decide::policy::{self, Decision, Settings, SourcePolicy};
use ndp_responder::decide::ratelimit::Limits;
use ndp_responder::decide::targets::{Downstream, Mode, Rule, Snapshot};
use ndp_responder::link::fastpath::abi::{Slot, SLOTS};
use ndp_responder::link::fastpath::{Entry, FastPath};
use ndp_responder::ndp::{self, MacAddr, NeighborSolicit};
use ndp_responder::tools::lab::{HOST_MAC, ROUTER_MAC};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;

/// What an entry point did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Did {
    Answered,
    Dropped,
    Passed,
}

fn did(entry: Entry, rc: u32) -> Did {
    match (entry, rc) {
        (Entry::Xdp, XDP_TX) | (Entry::Tc, TC_ACT_REDIRECT) => Did::Answered,
        (Entry::Xdp, XDP_DROP) | (Entry::Tc, TC_ACT_SHOT) => Did::Dropped,
        (Entry::Xdp, XDP_PASS) | (Entry::Tc, TC_ACT_OK) => Did::Passed,
        _ => panic!("{entry:?}: return code {rc}"),
    }
}

/// `union bpf_attr`, the BPF_PROG_TEST_RUN member (linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct TestRun {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// Run the program once on `frame`: its return code and the frame as it left it. None when
/// the kernel refuses the input (an Ethernet header or less: no link delivers that).
fn run(fd: BorrowedFd<'_>, frame: &[u8]) -> Option<(u32, Vec<u8>)> {
    let mut out = vec![0u8; 4096];
    let mut attr = TestRun {
        prog_fd: fd.as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_size_out: out.len() as u32,
        data_in: frame.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat: 1,
        ..TestRun::default()
    };
    // SAFETY: attr is a valid bpf_attr prefix of the size passed; the buffers outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRun,
            std::mem::size_of::<TestRun>(),
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "test run: {e}");
        // For a SCHED_CLS program the kernel also wants the whole IPv6 header of an IPv6
        // frame (14 + 40); both programs pass anything shorter than 78 octets untouched.
        assert!(
            frame.len() < 54,
            "test run refused a {}-octet frame",
            frame.len()
        );
        return None;
    }
    out.truncate(attr.data_size_out as usize);
    Some((attr.retval, out))
}

/// What the socket path does with a frame.
#[derive(Debug, PartialEq, Eq)]
enum Reference {
    Answer(Vec<u8>),
    Probe,
    /// Dropped by its kernel filter (src/link/bpf.rs): never seen, never counted.
    Filtered,
    /// Dropped and counted for this reason.
    Silent(&'static str),
}

fn reference(
    frame: &[u8],
    snap: &Snapshot,
    settings: &Settings,
    positives: &[Ipv6Addr],
) -> Reference {
    use ndp_responder::status::Reason;
    // The kernel filter reads the target's octets (62..78) before anything is parsed.
    let Some(target) = frame.get(62..78) else {
        return Reference::Filtered;
    };
    let target = Ipv6Addr::from(<[u8; 16]>::try_from(target).unwrap());
    if !snap.filter_prefixes().iter().any(|p| p.contains(&target)) {
        return Reference::Filtered;
    }
    let ns = match NeighborSolicit::parse(frame) {
        Ok(ns) => ns,
        Err(e) => return Reference::Silent(e.reason()),
    };
    let advert = match policy::decide(&ns, snap, settings) {
        Decision::Answer { advert, .. } => advert,
        Decision::Probe { .. } if positives.contains(&ns.target) => {
            match policy::advert(&ns, snap, settings) {
                Ok(a) => a,
                Err(why) => return Reference::Silent(Reason::reason(&why)),
            }
        }
        Decision::Probe { .. } => return Reference::Probe,
        Decision::Ignore(_, why) => return Reference::Silent(Reason::reason(&why)),
        Decision::Invalid(why) => return Reference::Silent(Reason::reason(&why)),
    };
    let mut buf = [0u8; ndp::MAX_EMIT_LEN];
    let n = advert.emit(&mut buf).unwrap();
    Reference::Answer(buf[..n].to_vec())
}

fn host_mac() -> MacAddr {
    HOST_MAC.parse().unwrap()
}

fn router_mac() -> MacAddr {
    ROUTER_MAC.parse().unwrap()
}

/// The lab's host: uplink eth0 (2) on 2001:db8:1::/64, containers on br0 (3) in
/// 2001:db8:1::d:0/112 (static), auto on ::a:0/112 behind br0 with one known address, a probe
/// rule on ::f:0/112, a docker network, a prefix without a route.
fn snapshot() -> Snapshot {
    Snapshot {
        uplink: Some(2),
        mac: host_mac(),
        up: true,
        link_local: Some(ip("fe80::ff:fe00:201")),
        rules: vec![
            Rule {
                prefix: "2001:db8:1::a:0/112".parse().unwrap(),
                mode: Mode::Auto,
            },
            Rule {
                prefix: "2001:db8:1::d:0/112".parse().unwrap(),
                mode: Mode::Static,
            },
            Rule {
                prefix: "2001:db8:1::f:0/112".parse().unwrap(),
                mode: Mode::Probe { via: None },
            },
            Rule {
                prefix: "2001:db8:9::/64".parse().unwrap(),
                mode: Mode::Static,
            },
            Rule::docker("web"),
        ],
        uplink_addrs: vec![ip("2001:db8:1::2"), ip("fe80::ff:fe00:201")],
        gateways: vec![ip("2001:db8:1::1"), ip("fe80::ff:fe00:101")],
        default_gateways: vec![ip("fe80::ff:fe00:101")],
        pinned: vec![],
        gateway_macs: vec![(ip("fe80::ff:fe00:101"), router_mac())],
        routes: vec![
            ("2001:db8:1::a:0/112".parse().unwrap(), Some(3)),
            ("2001:db8:1::d:0/112".parse().unwrap(), Some(3)),
            ("2001:db8:1::f:0/112".parse().unwrap(), Some(3)),
            ("2001:db8:1::/64".parse().unwrap(), Some(2)),
            ("2001:db8:5::/64".parse().unwrap(), Some(3)),
        ],
        downstream: HashMap::from([(
            3,
            Downstream {
                name: "br0".into(),
                neighbours: true,
                mac: Some(MacAddr([2, 0, 0, 0, 3, 1])),
                link_local: Some(ip("fe80::3")),
            },
        )]),
        known: HashSet::from([ip("2001:db8:1::a:5")]),
        docker: HashMap::from([(ip("2001:db8:5::7"), "web".to_string())]),
    }
}

fn settings_variants() -> Vec<(&'static str, Settings)> {
    let d = Settings::default();
    vec![
        ("default", d),
        (
            "fixed source, no router flag",
            Settings {
                source: SourcePolicy::Fixed(ip("2001:db8:1::2")),
                router: false,
                ..d
            },
        ),
        (
            "link-local source, no override flag",
            Settings {
                source: SourcePolicy::LinkLocal,
                override_flag: false,
                ..d
            },
        ),
    ]
}

/// Solicitations beyond the battery: every kind, every kind of target.
fn extra_frames() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let targets = [
        "2001:db8:1::d:2",
        "2001:db8:1::d:0",
        "2001:db8:1::a:5",
        "2001:db8:1::a:6",
        "2001:db8:1::f:3",
        "2001:db8:1::f:4",
        "2001:db8:1::2",
        "2001:db8:1::1",
        "2001:db8:1::99",
        "2001:db8:5::7",
        "2001:db8:5::8",
        "2001:db8:9::1",
        "2001:db8:77::1",
        "fe80::ff:fe00:201",
    ];
    for t in targets {
        let target = ip(t);
        let res = NeighborSolicit::resolution(router_mac(), ip("fe80::ff:fe00:101"), target);
        let other =
            NeighborSolicit::resolution(MacAddr([2, 0, 0, 0, 9, 9]), ip("2001:db8:1::77"), target);
        let nud = NeighborSolicit {
            eth_dst: host_mac(),
            ip_dst: target,
            source_lladdr: None,
            ..res
        };
        let dad = NeighborSolicit {
            ip_src: Ipv6Addr::UNSPECIFIED,
            source_lladdr: None,
            nonce: Some([1, 2, 3, 4, 5, 6]),
            ..other
        };
        let slla_elsewhere = NeighborSolicit {
            source_lladdr: Some(MacAddr([2, 0, 0, 0, 8, 8])),
            ..other
        };
        let from_us = NeighborSolicit {
            eth_src: host_mac(),
            ..res
        };
        let not_for_us = NeighborSolicit {
            eth_dst: MacAddr([2, 0, 0, 0, 7, 7]),
            ip_dst: target,
            ..res
        };
        let nud_wrong_dst = NeighborSolicit {
            eth_dst: host_mac(),
            ip_dst: ip("2001:db8:1::d:9"),
            ..res
        };
        for (what, ns) in [
            ("resolution", res),
            ("resolution from a station", other),
            ("NUD", nud),
            ("DAD with nonce", dad),
            ("SLLA elsewhere", slla_elsewhere),
            ("from our MAC", from_us),
            ("to another MAC", not_for_us),
            ("NUD to another address", nud_wrong_dst),
        ] {
            let mut buf = [0u8; ndp::MAX_EMIT_LEN];
            let n = ns.emit(&mut buf).unwrap();
            out.push((format!("{what} for {t}"), buf[..n].to_vec()));
            // Padded by the link (60-octet minimum, or a switch's padding).
            let mut padded = buf[..n].to_vec();
            padded.extend_from_slice(&[0xa5; 24]);
            out.push((format!("{what} for {t}, padded"), padded));
        }
        // An unknown option after the SLLA, and a two-unit SLLA.
        let mut buf = [0u8; ndp::MAX_EMIT_LEN];
        let n = res.emit(&mut buf).unwrap();
        let mut f = buf[..n].to_vec();
        f.extend_from_slice(&[200, 1, 0, 0, 0, 0, 0, 0]);
        let plen = ((f.len() - 54) as u16).to_be_bytes();
        f[18..20].copy_from_slice(&plen);
        common::fix_checksum(&mut f);
        out.push((format!("unknown option for {t}"), f));
        let mut f = buf[..n].to_vec();
        f[79] = 2;
        f.extend_from_slice(&[0; 8]);
        let plen = ((f.len() - 54) as u16).to_be_bytes();
        f[18..20].copy_from_slice(&plen);
        common::fix_checksum(&mut f);
        out.push((format!("two-unit SLLA for {t}"), f));
    }
    out
}

/// The fuzzers' seeds: raw frames (wire_parse) and frames behind a selector byte
/// (policy_decide).
fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut out = Vec::new();
    for (sub, skip) in [("wire_parse", 0), ("policy_decide", 1)] {
        let mut names: Vec<_> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let bytes = std::fs::read(&p).unwrap();
            out.push((
                p.display().to_string(),
                bytes[skip.min(bytes.len())..].to_vec(),
            ));
        }
    }
    assert!(out.len() >= 40, "the fuzz seeds are missing: {}", out.len());
    out
}

/// Seeded mutations of answerable frames: flipped bytes, changed lengths, mostly with the
/// checksum fixed so that they get past it.
fn mutations(bases: &[Vec<u8>], n: usize) -> Vec<(String, Vec<u8>)> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let mut f = bases[(next() as usize) % bases.len()].clone();
            for _ in 0..1 + next() % 3 {
                match next() % 6 {
                    0 => {
                        let len = f.len();
                        f.truncate(14 + (next() as usize) % (len - 13));
                    }
                    1 => f.extend_from_slice(&[next() as u8; 8]),
                    2 => {
                        let at = 54 + (next() as usize) % 40;
                        if at < f.len() {
                            f[at] = next() as u8;
                        }
                    }
                    _ => {
                        let at = (next() as usize) % f.len();
                        f[at] ^= 1 << (next() % 8);
                    }
                }
            }
            if next() % 4 != 0 && f.len() >= 58 {
                let plen = u16::from_be_bytes([f[18], f[19]]) as usize;
                if 54 + plen <= f.len() && plen >= 4 {
                    common::fix_checksum(&mut f[..54 + plen]);
                }
            }
            (format!("mutation {i}"), f)
        })
        .collect()
}

fn counter_sums(fp: &mut FastPath) -> [u64; SLOTS.len()] {
    fp.counters().unwrap()
}

#[derive(Default, Debug)]
struct Tally {
    answered: usize,
    dropped: usize,
    passed: usize,
}

/// Every frame through both paths; the comparison the module comment states.
fn differential(
    fp: &mut FastPath,
    entry: Entry,
    frames: &[(String, Vec<u8>)],
    snap: &Snapshot,
    settings: &Settings,
    positives: &[Ipv6Addr],
    uncovered: fastmap::Uncovered,
) -> Tally {
    let set = fastmap::compute(snap, positives.iter().copied(), settings, uncovered);
    fp.sync(
        &set,
        Limits {
            per_source: 0,
            total: 0,
        },
    )
    .unwrap();
    let mut tally = Tally::default();
    for (what, frame) in frames {
        let before = counter_sums(fp);
        let Some((rc, out)) = run(fp.program_fd(entry).unwrap(), frame) else {
            continue;
        };
        let after = counter_sums(fp);
        let moved: Vec<Slot> = (0..SLOTS.len())
            .filter(|&i| after[i] != before[i] && !matches!(SLOTS[i], Slot::Seen))
            .map(|i| SLOTS[i])
            .collect();
        let expected = reference(frame, snap, settings, positives);
        match did(entry, rc) {
            Did::Answered => {
                tally.answered += 1;
                assert_eq!(
                    Reference::Answer(out.clone()),
                    expected,
                    "{what}: the program's answer differs from the socket path's\nframe {frame:02x?}"
                );
                assert_eq!(moved, vec![Slot::Answered], "{what}");
            }
            Did::Dropped => {
                tally.dropped += 1;
                assert_eq!(moved.len(), 1, "{what}: {moved:?}");
                let not_covered = moved[0] == Slot::Ignored(policy::Ignored::NotCovered);
                if uncovered == fastmap::Uncovered::Drop
                    && (not_covered || expected == Reference::Filtered)
                {
                    // Dropped in the kernel as nobody here answers its target (or as invalid,
                    // where the socket path's filter would not have let it up): the socket
                    // path never saw it or ignored it as not covered, and it is none of the
                    // kernel's own.
                    if not_covered {
                        assert!(
                            matches!(expected, Reference::Filtered | Reference::Silent("not_covered")),
                            "{what}: dropped as not covered, the socket path says {expected:?}\nframe {frame:02x?}"
                        );
                        let target = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[62..78]).unwrap());
                        assert!(
                            !snap.uplink_addrs.contains(&target),
                            "{what}: the uplink's own"
                        );
                    }
                    continue;
                }
                assert_eq!(
                    Reference::Silent(moved[0].label()),
                    expected,
                    "{what}: dropped, but not as the socket path would\nframe {frame:02x?}"
                );
            }
            Did::Passed => {
                tally.passed += 1;
                assert_eq!(out, *frame, "{what}: passed up changed");
                // BPF_PROG_TEST_RUN builds the TC program's socket buffer on the loopback
                // device: a frame to a unicast MAC is "for another host" there, and TC
                // passes those on (as it must on the uplink).
                let otherhost = entry == Entry::Tc && frame[0] & 1 == 0;
                assert!(
                    otherhost || !matches!(expected, Reference::Answer(_)),
                    "{what}: the socket path answers it, the program passed it up\nframe {frame:02x?}"
                );
                assert!(
                    moved.is_empty() || moved == vec![Slot::Passed],
                    "{what}: {moved:?}"
                );
            }
        }
    }
    tally
}

fn load() -> FastPath {
    FastPath::load().unwrap_or_else(|e| panic!("the fast path does not load here: {e}"))
}

#[test]
fn object_is_rebuilt_bit_for_bit_from_the_source() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("fastpath-{}.o", std::process::id()));
    let status = std::process::Command::new(root.join("bpf/build"))
        .arg(&out)
        .status()
        .expect("bpf/build runs (it needs clang-14, llvm-14 and libbpf-dev: ./test installs them)");
    assert!(status.success(), "bpf/build failed: {status}");
    let built = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    let checked_in = std::fs::read(root.join("src/link/fastpath/fastpath.bpf.o")).unwrap();
    assert!(
        built == checked_in,
        "src/link/fastpath/fastpath.bpf.o is not what bpf/build makes of bpf/fastpath.bpf.c: run bpf/build and commit"
    );
}

#[test]
fn program_and_socket_path_agree_on_every_frame() {
    let mut fp = load();
    let snap = snapshot();
    let target = ip("2001:db8:1::d:2");
    let valid = common::router_ns(&target.to_string());
    let mut frames: Vec<(String, Vec<u8>)> = battery(&valid, target)
        .into_iter()
        .map(|c| (c.what, c.frame))
        .collect();
    frames.push(("the valid solicitation".into(), valid.clone()));
    let extra = extra_frames();
    let answerable: Vec<Vec<u8>> = extra
        .iter()
        .filter(|(_, f)| {
            matches!(
                reference(f, &snap, &Settings::default(), &[]),
                Reference::Answer(_)
            )
        })
        .map(|(_, f)| f.clone())
        .collect();
    assert!(answerable.len() >= 20, "{}", answerable.len());
    frames.extend(extra);
    frames.extend(seeds());
    frames.extend(mutations(&answerable, 6000));
    let positives = [ip("2001:db8:1::f:3")];
    for entry in [Entry::Xdp, Entry::Tc] {
        for (name, settings) in settings_variants() {
            for uncovered in [fastmap::Uncovered::Pass, fastmap::Uncovered::Drop] {
                let t = differential(
                    &mut fp, entry, &frames, &snap, &settings, &positives, uncovered,
                );
                eprintln!(
                    "{entry:?}, {name}, {uncovered:?}: {t:?} of {}",
                    frames.len()
                );
                assert!(t.answered >= 100 && t.dropped >= 100, "{name}: {t:?}");
            }
        }
    }
    // With the seeds' own addresses covered (they solicit fe80:: and 2001:db8:: targets of
    // the seed topology), so that their answers are compared too.
    let mut wide = snap.clone();
    wide.rules.insert(
        0,
        Rule {
            prefix: "::/0".parse().unwrap(),
            mode: Mode::Static,
        },
    );
    wide.routes.push(("::/0".parse().unwrap(), Some(3)));
    wide.uplink_addrs.clear();
    wide.gateways.clear();
    for entry in [Entry::Xdp, Entry::Tc] {
        let t = differential(
            &mut fp,
            entry,
            &seeds(),
            &wide,
            &Settings::default(),
            &[],
            fastmap::Uncovered::Pass,
        );
        eprintln!("{entry:?}, seeds, everything ours: {t:?}");
        assert!(t.answered >= 10, "{t:?}");
    }
}

#[test]
fn nothing_is_answered_until_the_maps_say_so() {
    let mut fp = load();
    let valid = common::router_ns("2001:db8:1::d:2");
    let (rc, out) = run(fp.program_fd(Entry::Xdp).unwrap(), &valid).unwrap();
    assert_eq!((rc, &out), (XDP_PASS, &valid));
    // The program's verdict on `valid` once the maps hold what `snap` computes to.
    let verdict_with = |fp: &mut FastPath, snap: &Snapshot| {
        fp.sync(
            &fastmap::compute(snap, [], &Settings::default(), fastmap::Uncovered::Pass),
            Limits::default(),
        )
        .unwrap();
        run(fp.program_fd(Entry::Xdp).unwrap(), &valid).unwrap().0
    };
    // No uplink: no shape, everything passes.
    let mut snap = snapshot();
    snap.uplink = None;
    assert_eq!(verdict_with(&mut fp, &snap), XDP_PASS);
    assert_eq!(verdict_with(&mut fp, &snapshot()), XDP_TX);
    // A swap to a set without the rule: passed again.
    let mut snap = snapshot();
    snap.rules.clear();
    assert_eq!(verdict_with(&mut fp, &snap), XDP_PASS);
}

#[test]
fn drop_uncovered_drops_only_what_nobody_here_answers() {
    let mut fp = load();
    let snap = snapshot();
    let own = snap.uplink_addrs[0];
    let i = SLOTS
        .iter()
        .position(|s| *s == Slot::Ignored(policy::Ignored::NotCovered))
        .unwrap();
    let cases = [
        ("2001:db8:1::d:2".to_string(), Did::Answered, Did::Answered),
        ("2001:db8:1::99".to_string(), Did::Passed, Did::Dropped),
        ("2001:db8:3::1".to_string(), Did::Passed, Did::Dropped),
        (own.to_string(), Did::Passed, Did::Passed),
    ];
    for entry in [Entry::Xdp, Entry::Tc] {
        for uncovered in [fastmap::Uncovered::Pass, fastmap::Uncovered::Drop] {
            fp.sync(
                &fastmap::compute(&snap, [], &Settings::default(), uncovered),
                Limits::default(),
            )
            .unwrap();
            for (target, passing, dropping) in &cases {
                let before = counter_sums(&mut fp);
                let (rc, _) =
                    run(fp.program_fd(entry).unwrap(), &common::router_ns(target)).unwrap();
                let want = match uncovered {
                    fastmap::Uncovered::Pass => *passing,
                    fastmap::Uncovered::Drop => *dropping,
                };
                assert_eq!(did(entry, rc), want, "{entry:?}, {uncovered:?}: {target}");
                let after = counter_sums(&mut fp);
                assert_eq!(
                    after[i] - before[i],
                    u64::from(want == Did::Dropped),
                    "{entry:?}, {uncovered:?}: {target}: the not-covered counter"
                );
            }
        }
    }
}

#[test]
fn rate_limits_hold_in_the_program() {
    let mut fp = load();
    let snap = snapshot();
    let limits = Limits {
        per_source: 5,
        total: 8,
    };
    fp.sync(
        &fastmap::compute(&snap, [], &Settings::default(), fastmap::Uncovered::Pass),
        limits,
    )
    .unwrap();
    let from = |src: &str, mac: MacAddr| {
        let ns = NeighborSolicit::resolution(mac, ip(src), ip("2001:db8:1::d:2"));
        let mut buf = [0u8; ndp::MAX_EMIT_LEN];
        let n = ns.emit(&mut buf).unwrap();
        buf[..n].to_vec()
    };
    let station = from("2001:db8:1::77", MacAddr([2, 0, 0, 0, 9, 9]));
    let other = from("2001:db8:1::78", MacAddr([2, 0, 0, 0, 9, 8]));
    let gateway = from("fe80::ff:fe00:101", router_mac());
    let fd = || fp.program_fd(Entry::Xdp).unwrap();
    let codes = |frame: &[u8], n: usize| -> Vec<u32> {
        (0..n).map(|_| run(fd(), frame).unwrap().0).collect()
    };
    // One source: its 5 (a second's worth), then withheld.
    let c = codes(&station, 7);
    assert_eq!(
        c,
        [XDP_TX, XDP_TX, XDP_TX, XDP_TX, XDP_TX, XDP_DROP, XDP_DROP]
    );
    // Another source: the total (8) has 3 left.
    let c = codes(&other, 5);
    assert_eq!(c, [XDP_TX, XDP_TX, XDP_TX, XDP_DROP, XDP_DROP]);
    // The gateway draws on buckets of its own: 5 more, whatever the total says.
    let c = codes(&gateway, 6);
    assert_eq!(c, [XDP_TX, XDP_TX, XDP_TX, XDP_TX, XDP_TX, XDP_DROP]);

    let counters = fp.counters().unwrap();
    let by = |slot: Slot| counters[SLOTS.iter().position(|s| *s == slot).unwrap()];
    use ndp_responder::decide::ratelimit::Limited;
    assert_eq!(by(Slot::Limited(Limited::PerSource)), 2);
    assert_eq!(by(Slot::Limited(Limited::Total)), 2);
    assert_eq!(by(Slot::Limited(Limited::GatewayOther)), 1);
    assert_eq!(by(Slot::Answered), 13);
    // The answered targets are there to be read, once.
    let answered = fp.take_answered().unwrap();
    assert_eq!(
        answered.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        [ip("2001:db8:1::d:2")]
    );
    assert!(fp.take_answered().unwrap().is_empty());
}
