//! The in-kernel fast path: the XDP program of bpf/fastpath.bpf.c on the uplink, loaded
//! with aya (and its TC ingress twin), and its maps.
//!
//! Owns: loading the checked-in object ([`FastPath::load`]: verifier errors and missing
//! privileges become a [`LoadError`] naming why), attaching it to the uplink (native XDP on a
//! device with a driver that has it; TC ingress on virtual interfaces and as the fallback;
//! generic XDP as the last resort; through bpf_links (TCX from Linux 6.6), so the program goes
//! when the process does, even a crashed one), detaching (on drop), writing a
//! [`FastSet`](crate::decide::fastmap::FastSet) into the maps as one atomic switch
//! ([`FastPath::sync`]: the set the program does not read is rewritten, then the `active`
//! index flips), and reading back its counters and the targets it answered.
//!
//! Must-not: decide what is answered (that is [`crate::decide::fastmap`]) or log; the uplink
//! loop does. Nothing here runs per packet in user space.

pub mod abi;

use std::collections::HashSet;
use std::net::Ipv6Addr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap, MapData, MapError, PerCpuArray};
use aya::programs::tc::{self, SchedClassifier, TcAttachType};
use aya::programs::{ProgramError, Xdp, XdpFlags};
use aya::{Ebpf, EbpfError, EbpfLoader};
use ipnet::Ipv6Net;

use crate::decide::fastmap::FastSet;
use crate::decide::ratelimit::Limits;
use abi::{Config, SLOTS};

/// Should XDP be attached in the driver on interface `ifname`? Only on a device with a
/// driver of hardware (or virtio): virtual interfaces (veth, bridges, bonds, VLANs) either
/// lack native XDP or, like veth, drop what XDP_TX sends unless the peer runs XDP too; and
/// on them a frame's VLAN tag may already sit in the socket buffer, out of XDP's sight (TC
/// sees it).
pub fn native_preferred(ifname: &str) -> bool {
    std::path::Path::new("/sys/class/net")
        .join(ifname)
        .join("device")
        .exists()
}

/// The program, compiled by bpf/build (tests/fastpath.rs checks it is what the source gives).
/// Aligned for the ELF parser (it reads the headers in place).
static OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!("fastpath.bpf.o"));

#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

/// The XDP entry point and the TC ingress one (the same decisions, see bpf/fastpath.bpf.c).
const PROGRAM: &str = "ndp_fastpath";
const TC_PROGRAM: &str = "ndp_fastpath_tc";

/// Which entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Xdp,
    Tc,
}

/// How the program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In the driver, before any socket buffer is built.
    Native,
    /// TC ingress: virtual uplinks (and drivers without XDP), where the socket buffer's VLAN
    /// tag and packet type are visible.
    Tc,
    /// Generic (skb) XDP: the last resort when TC cannot be attached.
    Generic,
    /// Loaded, not attached (BPF_PROG_TEST_RUN only).
    Detached,
}

impl Mode {
    pub fn label(&self) -> &'static str {
        match self {
            Mode::Native => "xdp-native",
            Mode::Tc => "tc-ingress",
            Mode::Generic => "xdp-generic",
            Mode::Detached => "loaded",
        }
    }
}

/// Why the fast path is not running; the socket path answers everything meanwhile.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "loading the XDP program failed (it needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN, or \
         root, and Linux 5.18 or later): {0}"
    )]
    Load(String),
    #[error("attaching to interface {ifname} failed (native XDP: {native}; TC ingress: {tc}; generic XDP: {generic})")]
    Attach {
        ifname: String,
        native: String,
        tc: String,
        generic: String,
    },
    #[error("the XDP object lacks {0}: rebuild it with bpf/build")]
    Missing(&'static str),
}

/// What is in one set of answer maps, to remove what a new set no longer has.
#[derive(Debug, Default)]
struct Installed {
    prefixes: HashSet<(u32, [u8; 16])>,
    targets: HashSet<[u8; 16]>,
}

/// The loaded (and maybe attached) program and its maps.
pub struct FastPath {
    /// The loaded object, until the program is attached: then only its link and maps are
    /// kept (the program stays loaded, held by the link), and the rest is freed.
    ebpf: Option<Ebpf>,
    maps: Vec<(&'static str, aya::maps::Map)>,
    link: Option<Link>,
    mode: Mode,
    /// The set the program reads now.
    active: u32,
    installed: [Installed; 2],
    gateways: HashSet<[u8; 8]>,
    /// The last set written, so that an unchanged snapshot costs no system call.
    last: Option<(FastSet, Limits)>,
}

impl std::fmt::Debug for FastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastPath")
            .field("mode", &self.mode)
            .finish()
    }
}

fn load_error(e: EbpfError) -> LoadError {
    LoadError::Load(chain(&e))
}

fn program_error(e: ProgramError) -> String {
    chain(&e)
}

/// An error and its causes, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

fn xdp(ebpf: &mut Option<Ebpf>) -> Result<&mut Xdp, String> {
    ebpf.as_mut()
        .ok_or_else(|| "already attached".to_string())?
        .program_mut(PROGRAM)
        .ok_or_else(|| "no XDP program".to_string())?
        .try_into()
        .map_err(program_error)
}

/// The maps the daemon reads or writes, taken out of the loader's object at load.
const MAPS: [&str; 9] = [
    "prefixes0",
    "prefixes1",
    "targets0",
    "targets1",
    "config",
    "active",
    "gateways",
    "counters",
    "answered",
];

fn map<'a>(
    maps: &'a mut [(&'static str, aya::maps::Map)],
    name: &'static str,
) -> Result<&'a mut aya::maps::Map, MapError> {
    maps.iter_mut()
        .find(|(n, _)| *n == name)
        .map(|(_, m)| m)
        .ok_or(MapError::InvalidName {
            name: name.to_string(),
        })
}

/// The kinds of map the program has ([`MAPS`]), to reopen one from its descriptor.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Array,
    HashMap,
    LruHashMap,
    LpmTrie,
    PerCpuArray,
}

impl Kind {
    /// The map's kind and a descriptor of its own (the loader's copy is closed with `map`).
    fn detach(map: aya::maps::Map) -> Result<(Kind, OwnedFd), LoadError> {
        use aya::maps::Map;
        let (kind, data) = match map {
            Map::Array(d) => (Kind::Array, d),
            Map::HashMap(d) => (Kind::HashMap, d),
            Map::LruHashMap(d) => (Kind::LruHashMap, d),
            Map::LpmTrie(d) => (Kind::LpmTrie, d),
            Map::PerCpuArray(d) => (Kind::PerCpuArray, d),
            _ => return Err(LoadError::Missing("a map of a kind it reads")),
        };
        let fd = data
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| LoadError::Load(format!("duplicating a map's descriptor: {e}")))?;
        Ok((kind, fd))
    }

    fn wrap(self, data: MapData) -> aya::maps::Map {
        use aya::maps::Map;
        match self {
            Kind::Array => Map::Array(data),
            Kind::HashMap => Map::HashMap(data),
            Kind::LruHashMap => Map::LruHashMap(data),
            Kind::LpmTrie => Map::LpmTrie(data),
            Kind::PerCpuArray => Map::PerCpuArray(data),
        }
    }
}

/// What keeps the program attached (dropping it detaches).
enum Link {
    Xdp(#[allow(dead_code)] aya::programs::xdp::XdpLink),
    Tc(#[allow(dead_code)] aya::programs::tc::SchedClassifierLink),
}

impl FastPath {
    /// Load and verify the program (nothing attached, maps empty: it passes everything up).
    /// The daemon calls it through [`FastPath::load_attached`], which keeps the loader's memory
    /// out of the daemon's heap.
    pub fn load() -> Result<FastPath, LoadError> {
        // No kernel BTF: the program needs no CO-RE relocation (aya's loader still parses
        // it once when created).
        let mut ebpf = EbpfLoader::new()
            .btf(None)
            .load(&OBJECT.0)
            .map_err(load_error)?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or(LoadError::Missing("its program"))?
            .try_into()
            .map_err(|e| LoadError::Load(program_error(e)))?;
        prog.load().map_err(|e| LoadError::Load(program_error(e)))?;
        let tc: &mut SchedClassifier = ebpf
            .program_mut(TC_PROGRAM)
            .ok_or(LoadError::Missing("its TC program"))?
            .try_into()
            .map_err(|e| LoadError::Load(program_error(e)))?;
        tc.load().map_err(|e| LoadError::Load(program_error(e)))?;
        let mut maps = Vec::with_capacity(MAPS.len());
        for name in MAPS {
            let m = ebpf
                .take_map(name)
                .ok_or(LoadError::Missing("one of its maps"))?;
            maps.push((name, m));
        }
        Ok(FastPath {
            ebpf: Some(ebpf),
            maps,
            link: None,
            mode: Mode::Detached,
            active: 0,
            installed: Default::default(),
            gateways: HashSet::new(),
            last: None,
        })
    }

    /// Load the program and attach it to `ifname` ([`FastPath::load`], [`FastPath::attach`])
    /// in a thread of its own, and keep only the link and the maps' descriptors.
    ///
    /// Why a thread: aya's loader parses the kernel's BTF when it is created, megabytes in
    /// many small blocks, whatever the program needs. In the daemon's own heap, the few blocks
    /// that start-up keeps between them would pin those pages for good (fragmentation: about
    /// 450 KiB of idle RSS). The thread's allocations go to an arena of its own, nothing
    /// allocated there outlives it (the maps are reopened here from their descriptors, the
    /// links hold no heap), and the freed arena is then returned to the kernel.
    pub fn load_attached(ifname: &str, ifindex: u32, native: bool) -> Result<FastPath, LoadError> {
        let name = ifname.to_string();
        let loader = std::thread::Builder::new()
            .name("fastpath-load".into())
            .spawn(move || -> Result<_, LoadError> {
                let mut fp = FastPath::load()?;
                let mode = fp.attach(&name, ifindex, native)?;
                let link = fp.link.take();
                let mut fds: [Option<(&'static str, Kind, OwnedFd)>; MAPS.len()] =
                    Default::default();
                for (slot, (name, map)) in fds.iter_mut().zip(fp.maps.drain(..)) {
                    let (kind, fd) = Kind::detach(map)?;
                    *slot = Some((name, kind, fd));
                }
                Ok((mode, link, fds))
            })
            .map_err(|e| LoadError::Load(format!("starting the loader's thread: {e}")))?;
        let (mode, link, fds) = loader
            .join()
            .map_err(|_| LoadError::Load("the loader's thread failed".into()))??;
        let mut maps = Vec::with_capacity(MAPS.len());
        for (name, kind, fd) in fds.into_iter().flatten() {
            let data = MapData::from_fd(fd)
                .map_err(|e| LoadError::Load(format!("reopening map {name}: {}", chain(&e))))?;
            maps.push((name, kind.wrap(data)));
        }
        // The loader's code and heap are not needed again until the next load.
        crate::memory::release_startup_pages();
        Ok(FastPath {
            ebpf: None,
            maps,
            link,
            mode,
            active: 0,
            installed: Default::default(),
            gateways: HashSet::new(),
            last: None,
        })
    }

    /// Attach to interface `ifname` (index `ifindex`): native XDP when `native` is asked and
    /// the driver has it, else TC ingress, else generic XDP.
    pub fn attach(&mut self, ifname: &str, ifindex: u32, native: bool) -> Result<Mode, LoadError> {
        let xdp_link = |ebpf: &mut Option<Ebpf>, flags: XdpFlags| -> Result<Link, String> {
            let prog = xdp(ebpf)?;
            let id = prog
                .attach_to_if_index(ifindex, flags)
                .map_err(program_error)?;
            prog.take_link(id).map(Link::Xdp).map_err(program_error)
        };
        let attached = |this: &mut FastPath, link: Link, mode: Mode| {
            this.link = Some(link);
            this.mode = mode;
            // Attached: the link holds the program; the loader's copy of it goes.
            this.ebpf = None;
            Ok(mode)
        };
        let native = if native {
            match xdp_link(&mut self.ebpf, XdpFlags::DRV_MODE) {
                Ok(link) => return attached(self, link, Mode::Native),
                Err(e) => e,
            }
        } else {
            "not tried: a virtual interface".to_string()
        };
        let tc = (|| -> Result<Link, String> {
            // Only needed before Linux 6.6 (TCX links need no qdisc); there already is fine.
            let _ = tc::qdisc_add_clsact(ifname);
            let prog: &mut SchedClassifier = self
                .ebpf
                .as_mut()
                .ok_or_else(|| "already attached".to_string())?
                .program_mut(TC_PROGRAM)
                .ok_or_else(|| "no TC program".to_string())?
                .try_into()
                .map_err(program_error)?;
            let id = prog
                .attach(ifname, TcAttachType::Ingress)
                .map_err(program_error)?;
            prog.take_link(id).map(Link::Tc).map_err(program_error)
        })();
        let tc = match tc {
            Ok(link) => return attached(self, link, Mode::Tc),
            Err(e) => e,
        };
        match xdp_link(&mut self.ebpf, XdpFlags::SKB_MODE) {
            Ok(link) => attached(self, link, Mode::Generic),
            Err(generic) => Err(LoadError::Attach {
                ifname: ifname.to_string(),
                native,
                tc,
                generic,
            }),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A loaded entry point, for BPF_PROG_TEST_RUN.
    pub fn program_fd(&self, entry: Entry) -> Option<BorrowedFd<'_>> {
        match entry {
            Entry::Xdp => {
                let prog: &Xdp = self.ebpf.as_ref()?.program(PROGRAM)?.try_into().ok()?;
                Some(prog.fd().ok()?.as_fd())
            }
            Entry::Tc => {
                let prog: &SchedClassifier =
                    self.ebpf.as_ref()?.program(TC_PROGRAM)?.try_into().ok()?;
                Some(prog.fd().ok()?.as_fd())
            }
        }
    }

    /// Make the program answer as `set` says, with `limits`: the maps it does not read are
    /// rewritten, then it is switched to them in one write. Unchanged input: nothing done.
    pub fn sync(&mut self, set: &FastSet, limits: Limits) -> Result<(), MapError> {
        if self
            .last
            .as_ref()
            .is_some_and(|(s, l)| s == set && *l == limits)
        {
            return Ok(());
        }
        if set.prefixes.len() > abi::MAX_PREFIXES || set.targets.len() > abi::MAX_TARGETS {
            // Too many to hold: answer nothing here (the socket path answers all).
            return self.sync(&FastSet::default(), limits);
        }
        let next = self.active ^ 1;
        let n = next as usize;

        let mut config = Config::default();
        if let Some(shape) = &set.shape {
            config.enabled = 1;
            config.mac = shape.mac.0;
            config.flags = if shape.router { abi::CONF_ROUTER } else { 0 }
                | if shape.override_flag {
                    abi::CONF_OVERRIDE
                } else {
                    0
                };
            if let Some(src) = shape.source {
                config.flags |= abi::CONF_FIXED_SOURCE;
                config.src = src.octets();
            }
            config.per_source = limits.per_source;
            config.total = limits.total;
        }

        // The prefixes.
        let wanted: Vec<(u32, [u8; 16], u32)> = set
            .prefixes
            .iter()
            .map(|(net, v): &(Ipv6Net, _)| {
                (
                    u32::from(net.prefix_len()),
                    net.network().octets(),
                    abi::encode(*v),
                )
            })
            .collect();
        {
            let name = if next == 0 { "prefixes0" } else { "prefixes1" };
            let mut trie: LpmTrie<&mut MapData, [u8; 16], u32> =
                LpmTrie::try_from(map(&mut self.maps, name)?)?;
            let keep: HashSet<(u32, [u8; 16])> = wanted.iter().map(|(l, a, _)| (*l, *a)).collect();
            for (len, addr) in self.installed[n].prefixes.difference(&keep) {
                let _ = trie.remove(&Key::new(*len, *addr));
            }
            for (len, addr, v) in &wanted {
                trie.insert(&Key::new(*len, *addr), v, 0)?;
            }
            self.installed[n].prefixes = keep;
        }
        // The exact targets.
        {
            let name = if next == 0 { "targets0" } else { "targets1" };
            let mut map: HashMap<&mut MapData, [u8; 16], u32> =
                HashMap::try_from(map(&mut self.maps, name)?)?;
            let keep: HashSet<[u8; 16]> = set.targets.iter().map(|(a, _)| a.octets()).collect();
            for addr in self.installed[n].targets.difference(&keep) {
                let _ = map.remove(addr);
            }
            for (addr, v) in &set.targets {
                map.insert(addr.octets(), abi::encode(*v), 0)?;
            }
            self.installed[n].targets = keep;
        }
        {
            let mut conf: Array<&mut MapData, Config> =
                Array::try_from(map(&mut self.maps, "config")?)?;
            conf.set(next, config, 0)?;
        }
        // The switch: one 4-octet write the program reads once per frame.
        {
            let mut active: Array<&mut MapData, u32> =
                Array::try_from(map(&mut self.maps, "active")?)?;
            active.set(0, next, 0)?;
        }
        self.active = next;
        // The gateways' MACs (their buckets keep their state while they stay).
        {
            let mut gw: HashMap<&mut MapData, [u8; 8], [u64; 2]> =
                HashMap::try_from(map(&mut self.maps, "gateways")?)?;
            let keep: HashSet<[u8; 8]> = set
                .gateway_macs
                .iter()
                .take(abi::MAX_GATEWAYS)
                .map(|m| {
                    let mut k = [0u8; 8];
                    k[..6].copy_from_slice(&m.0);
                    k
                })
                .collect();
            for k in self.gateways.difference(&keep) {
                let _ = gw.remove(k);
            }
            for k in keep.difference(&self.gateways) {
                gw.insert(*k, [0u64; 2], 0)?;
            }
            self.gateways = keep;
        }
        self.last = Some((set.clone(), limits));
        Ok(())
    }

    /// The counters, summed over the CPUs, by slot of [`abi::SLOTS`].
    pub fn counters(&mut self) -> Result<[u64; SLOTS.len()], MapError> {
        let map: PerCpuArray<&mut MapData, u64> =
            PerCpuArray::try_from(map(&mut self.maps, "counters")?)?;
        let mut out = [0u64; SLOTS.len()];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = map.get(&(i as u32), 0)?.iter().sum();
        }
        Ok(out)
    }

    /// The targets answered since the last call, with how long ago their latest answer was
    /// (the program stamps it with bpf_ktime_get_ns, CLOCK_MONOTONIC); read and removed, so
    /// each call costs what was answered since.
    pub fn take_answered(&mut self) -> Result<Vec<(Ipv6Addr, Duration)>, MapError> {
        let mut map: HashMap<&mut MapData, [u8; 16], u64> =
            HashMap::try_from(map(&mut self.maps, "answered")?)?;
        let seen: Vec<([u8; 16], u64)> = map.iter().filter_map(Result::ok).collect();
        for (k, _) in &seen {
            let _ = map.remove(k);
        }
        let now = monotonic_ns();
        Ok(seen
            .into_iter()
            .map(|(k, t)| {
                (
                    Ipv6Addr::from(k),
                    Duration::from_nanos(now.saturating_sub(t)),
                )
            })
            .collect())
    }
}

/// CLOCK_MONOTONIC now, in nanoseconds (the clock of the program's bpf_ktime_get_ns).
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}
