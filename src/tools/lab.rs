//! The provider topology in network namespaces, for `ndp-responder lab` and the end-to-end tests.
//!
//! Owns: building and removing the namespaces, running commands inside them, starting the real
//! daemon there, and the demo's scenarios. The tests use the same [`Topology`], so the demo and
//! the tests cannot drift apart.
//!
//! ```text
//!  router ns                 hypervisor ns (bridge + anti-spoof nftables)       host ns                      container ns
//!  i0 2001:db8:ff::1/64 ---- inet ns 2001:db8:ff::2 (the Internet stand-in)
//!  r0 2001:db8:1::1/64 ---- to-router [hvbr] to-host ---- eth0 2001:db8:1::2/64   br0 2001:db8:1::d:1/112 ---- eth0 2001:db8:1::d:2/112
//!  (the provider's router)   drops NAs from the host with a link-local source     (runs ndp-responder)        (ct1, ct2, ...)
//!                            for a target that is not link-local
//! ```
//!
//! Must not: touch anything outside the namespaces it creates (besides the daemon's log file
//! in the temporary directory, removed with it, and the demo's lock file in /run); every
//! address is in the documentation prefix 2001:db8::/32.

use std::fs;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// The router's (gateway's) address on the provider link.
pub const GATEWAY: &str = "2001:db8:1::1";
/// The host's own address on the uplink.
pub const HOST_ADDR: &str = "2001:db8:1::2";
/// The prefix routed to the container bridge; the daemon answers for it.
pub const CONTAINER_PREFIX: &str = "2001:db8:1::d:0/112";
/// The bridge's own address, inside the container prefix.
pub const BRIDGE_ADDR: &str = "2001:db8:1::d:1";
/// A host behind the router that stands for the Internet: the router forwards its traffic,
/// so the router solicits from its link-local address (and confirms nothing by itself).
pub const INTERNET_ADDR: &str = "2001:db8:ff::2";
/// The host's uplink MAC, fixed so that the evidence is easy to read.
pub const HOST_MAC: &str = "02:00:00:00:02:01";
/// The router's MAC.
pub const ROUTER_MAC: &str = "02:00:00:00:01:01";
/// The name prefix of the demo's namespaces; `lab down` removes exactly these.
pub const LAB_TAG: &str = "ndplab";

/// The address of container `n` (1-based): 2001:db8:1::d:2, ::d:3, ...
pub fn container_addr(n: usize) -> String {
    format!("2001:db8:1::d:{:x}", n + 1)
}

/// Set once this process has entered its own user namespace (unprivileged lab).
static IN_USER_NAMESPACE: AtomicBool = AtomicBool::new(false);
/// Daemons started by this process, killed by the Ctrl-C handler before it cleans up.
static DAEMON_PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// Held while a namespace is created or a daemon started; the Ctrl-C handler takes it for
/// good, so that nothing new appears while (or after) it cleans up.
static CREATING: Mutex<()> = Mutex::new(());
/// Set by the Ctrl-C handler: what the demo's own thread returns then no longer matters.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Something in the lab failed, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("the lab needs root to create network namespaces: run it as root (e.g. with sudo)")]
    NotRoot,
    #[error(
        "the lab needs root, or a kernel that lets users create user namespaces ({0}): \
         run it as root (e.g. with sudo)"
    )]
    NoUserNamespace(String),
    #[error(
        "another `ndp-responder lab` is running (lock {0} is held): wait for it to finish, \
         or stop it with Ctrl-C"
    )]
    Busy(String),
    #[error("'{0}' is not installed: apt-get install {1}")]
    MissingTool(&'static str, &'static str),
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Timeout(String),
}

/// True when this process may create network namespaces: it is root, or it has entered a
/// user namespace of its own with [`enter_user_namespace`].
fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    euid == 0 || IN_USER_NAMESPACE.load(Ordering::Relaxed)
}

/// Become root in a new user namespace, with a mount namespace whose /run is private and a
/// network namespace of our own, so that an unprivileged user can build the lab. Everything
/// the lab creates then disappears with this process. Must be called while the process has a
/// single thread.
pub fn enter_user_namespace() -> Result<(), LabError> {
    let fail =
        |what: &str| LabError::NoUserNamespace(format!("{what}: {}", io::Error::last_os_error()));
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // SAFETY: unshare only changes this (single-threaded) process's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWNET) } != 0 {
        return Err(fail("unshare"));
    }
    let write = |path: &str, text: String| {
        fs::write(path, text).map_err(|e| LabError::NoUserNamespace(format!("writing {path}: {e}")))
    };
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL in a constant");
    let (root, run, tmpfs) = (c("/"), c("/run"), c("tmpfs"));
    // SAFETY: valid NUL-terminated strings; mount changes only our own mount namespace.
    unsafe {
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(fail("making / private"));
        }
        if libc::mount(
            tmpfs.as_ptr(),
            run.as_ptr(),
            tmpfs.as_ptr(),
            0,
            std::ptr::null(),
        ) != 0
        {
            return Err(fail("mounting a private /run"));
        }
    }
    fs::create_dir_all("/run/netns")?;
    IN_USER_NAMESPACE.store(true, Ordering::Relaxed);
    ip(&["link", "set", "lo", "up"])?;
    Ok(())
}

/// Check what the lab needs before touching anything.
pub fn preflight() -> Result<(), LabError> {
    if !privileged() {
        return Err(LabError::NotRoot);
    }
    for (tool, package) in [
        ("ip", "iproute2"),
        ("nft", "nftables"),
        ("ping", "iputils-ping"),
    ] {
        let found = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            return Err(LabError::MissingTool(tool, package));
        }
    }
    Ok(())
}

/// Run a command; error with its stderr if it fails.
fn run(cmd: &mut Command) -> Result<Output, LabError> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(LabError::Command {
            command: format!("{cmd:?}").replace('"', ""),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

fn ip(args: &[&str]) -> Result<Output, LabError> {
    run(Command::new("ip").args(args))
}

/// Poll `cond` every 20 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The namespaces of one lab and what runs in them. Dropping it removes them all.
#[derive(Debug)]
pub struct Topology {
    tag: String,
    containers: usize,
    namespaces: Vec<String>,
}

impl Topology {
    /// Build the whole topology with `containers` containers; namespace names start with `tag`.
    pub fn build(tag: &str, containers: usize) -> Result<Topology, LabError> {
        preflight()?;
        let mut topo = Topology {
            tag: tag.to_string(),
            containers: 0,
            namespaces: Vec::new(),
        };
        // On error the partly built topology is dropped, which removes what was created.
        topo.build_provider()?;
        topo.build_host()?;
        for _ in 0..containers {
            topo.add_container()?;
        }
        Ok(topo)
    }

    pub fn router(&self) -> String {
        format!("{}-router", self.tag)
    }
    pub fn internet(&self) -> String {
        format!("{}-inet", self.tag)
    }
    pub fn hypervisor(&self) -> String {
        format!("{}-hv", self.tag)
    }
    pub fn host(&self) -> String {
        format!("{}-host", self.tag)
    }
    pub fn container(&self, n: usize) -> String {
        format!("{}-ct{n}", self.tag)
    }
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    fn add_netns(&mut self, name: String) -> Result<(), LabError> {
        let creating = CREATING.lock().unwrap_or_else(|e| e.into_inner());
        if IN_USER_NAMESPACE.load(Ordering::Relaxed) {
            // `ip netns add` switches back to the initial namespace, which a user namespace
            // may not do: create the namespace in a child that just pins it to the file.
            let path = format!("/run/netns/{name}");
            fs::File::create(&path)?;
            self.namespaces.push(name.clone());
            run(Command::new("unshare")
                .arg(format!("--net={path}"))
                .arg("true"))?;
        } else {
            ip(&["netns", "add", &name])?;
            self.namespaces.push(name.clone());
        }
        drop(creating);
        // No duplicate address detection: addresses are usable at once and no test waits.
        self.sysctl(&name, "net/ipv6/conf/all/accept_dad", "0")?;
        self.sysctl(&name, "net/ipv6/conf/default/accept_dad", "0")?;
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// Write a sysctl inside a namespace (`key` as a path below /proc/sys).
    pub fn sysctl(&self, ns: &str, key: &str, value: &str) -> Result<(), LabError> {
        let script = format!("echo {value} > /proc/sys/{key}");
        run(Command::new("ip").args(["netns", "exec", ns, "sh", "-c", &script]))?;
        Ok(())
    }

    /// Run a command inside namespace `ns`; fails if the command fails.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Result<Output, LabError> {
        run(Command::new("ip").args(["netns", "exec", ns]).args(args))
    }

    /// Run a command inside namespace `ns` and return its exit status and output, whatever it is.
    pub fn try_exec(&self, ns: &str, args: &[&str]) -> Result<Output, LabError> {
        Ok(Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .output()?)
    }

    fn build_provider(&mut self) -> Result<(), LabError> {
        let (router, hv) = (self.router(), self.hypervisor());
        self.add_netns(router.clone())?;
        self.add_netns(hv.clone())?;
        self.sysctl(&router, "net/ipv6/conf/all/forwarding", "1")?;
        // The hypervisor's bridge: layer 2 only, flooding multicast like a plain switch.
        ip(&[
            "-n",
            &hv,
            "link",
            "add",
            "hvbr",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        ip(&["-n", &hv, "link", "set", "hvbr", "up"])?;
        ip(&[
            "link",
            "add",
            "r0",
            "netns",
            &router,
            "address",
            ROUTER_MAC,
            "type",
            "veth",
            "peer",
            "name",
            "to-router",
            "netns",
            &hv,
        ])?;
        ip(&[
            "-n",
            &hv,
            "link",
            "set",
            "to-router",
            "master",
            "hvbr",
            "up",
        ])?;
        ip(&[
            "-n",
            &router,
            "addr",
            "add",
            "2001:db8:1::1/64",
            "dev",
            "r0",
            "nodad",
        ])?;
        ip(&["-n", &router, "link", "set", "r0", "up"])?;
        // The Internet stand-in: a namespace behind the router's other interface.
        let inet = self.internet();
        self.add_netns(inet.clone())?;
        ip(&[
            "link", "add", "i0", "netns", &router, "type", "veth", "peer", "name", "eth0", "netns",
            &inet,
        ])?;
        ip(&[
            "-n",
            &router,
            "addr",
            "add",
            "2001:db8:ff::1/64",
            "dev",
            "i0",
            "nodad",
        ])?;
        ip(&["-n", &router, "link", "set", "i0", "up"])?;
        ip(&[
            "-n",
            &inet,
            "addr",
            "add",
            "2001:db8:ff::2/64",
            "dev",
            "eth0",
            "nodad",
        ])?;
        ip(&["-n", &inet, "link", "set", "eth0", "up"])?;
        ip(&[
            "-n",
            &inet,
            "-6",
            "route",
            "add",
            "default",
            "via",
            "2001:db8:ff::1",
            "dev",
            "eth0",
        ])?;
        // Virtualizor-style anti-spoofing: a VM may not advertise a foreign address from its
        // link-local address. Only NAs for the host's own link-local target may use one.
        let rules = "table bridge antispoof {\n\
             \tchain forward {\n\
             \t\ttype filter hook forward priority 0; policy accept;\n\
             \t\tiifname \"to-host\" icmpv6 type nd-neighbor-advert ip6 saddr fe80::/10 \
             @th,64,16 & 0xffc0 != 0xfe80 counter drop\n\
             \t}\n}\n";
        let mut child = Command::new("ip")
            .args(["netns", "exec", &hv, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(rules.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(LabError::Command {
                command: "nft -f - (the anti-spoof rules)".into(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(())
    }

    fn build_host(&mut self) -> Result<(), LabError> {
        let host = self.host();
        self.add_netns(host.clone())?;
        self.sysctl(&host, "net/ipv6/conf/all/forwarding", "1")?;
        self.connect_uplink()?;
        self.create_bridge()
    }

    /// Create the host's uplink eth0 (a veth into the hypervisor's bridge), its address and
    /// default route. Also used to bring the uplink back after [`Topology::delete_uplink`].
    pub fn connect_uplink(&self) -> Result<(), LabError> {
        let (host, hv) = (self.host(), self.hypervisor());
        ip(&[
            "link", "add", "eth0", "netns", &host, "address", HOST_MAC, "type", "veth", "peer",
            "name", "to-host", "netns", &hv,
        ])?;
        ip(&["-n", &hv, "link", "set", "to-host", "master", "hvbr", "up"])?;
        ip(&[
            "-n",
            &host,
            "addr",
            "add",
            "2001:db8:1::2/64",
            "dev",
            "eth0",
            "nodad",
        ])?;
        ip(&["-n", &host, "link", "set", "eth0", "up"])?;
        ip(&[
            "-n", &host, "-6", "route", "add", "default", "via", GATEWAY, "dev", "eth0",
        ])?;
        Ok(())
    }

    /// Delete the host's uplink (and its peer in the hypervisor).
    pub fn delete_uplink(&self) -> Result<(), LabError> {
        ip(&["-n", &self.host(), "link", "del", "eth0"])?;
        Ok(())
    }

    /// Create the container bridge br0 with its address, and attach every container's port.
    /// Also used to bring the bridge back after [`Topology::delete_bridge`].
    pub fn create_bridge(&self) -> Result<(), LabError> {
        let host = self.host();
        ip(&[
            "-n",
            &host,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        ip(&[
            "-n",
            &host,
            "addr",
            "add",
            "2001:db8:1::d:1/112",
            "dev",
            "br0",
            "nodad",
        ])?;
        ip(&["-n", &host, "link", "set", "br0", "up"])?;
        for n in 1..=self.containers {
            let port = format!("veth-ct{n}");
            // A removed container has no port any more.
            if self
                .try_exec(&host, &["ip", "link", "show", &port])?
                .status
                .success()
            {
                ip(&["-n", &host, "link", "set", &port, "master", "br0", "up"])?;
            }
        }
        Ok(())
    }

    /// Delete the container bridge (the containers' ports stay, detached).
    pub fn delete_bridge(&self) -> Result<(), LabError> {
        ip(&["-n", &self.host(), "link", "del", "br0"])?;
        Ok(())
    }

    /// Remove container `n`, as `docker rm` or `machinectl terminate` would: its namespace
    /// and, with it, its port on the bridge.
    pub fn remove_container(&mut self, n: usize) -> Result<(), LabError> {
        let ns = self.container(n);
        // The port first: deleting a link is synchronous, while the kernel tears a deleted
        // namespace down later, in a queue shared with every other namespace being deleted.
        ip(&["-n", &self.host(), "link", "del", &format!("veth-ct{n}")])?;
        ip(&["netns", "del", &ns])?;
        self.namespaces.retain(|x| *x != ns);
        Ok(())
    }

    /// Make container `n` send one packet (a ping to the bridge), as any container does when
    /// it starts talking: the host then knows its address.
    pub fn container_speaks(&self, n: usize) -> Result<(), LabError> {
        // Up to three tries: a loaded machine may miss one reply's one-second wait.
        let ping = ["ping", "-6", "-n", "-q", "-c", "1", "-W", "1", BRIDGE_ADDR];
        for _ in 1..3 {
            if self.try_exec(&self.container(n), &ping)?.status.success() {
                return Ok(());
            }
        }
        self.exec(&self.container(n), &ping)?;
        Ok(())
    }

    /// Add one more container behind the host's bridge; returns its number (1-based).
    pub fn add_container(&mut self) -> Result<usize, LabError> {
        let n = self.containers + 1;
        let (ct, host) = (self.container(n), self.host());
        self.add_netns(ct.clone())?;
        let port = format!("veth-ct{n}");
        ip(&[
            "link", "add", "eth0", "netns", &ct, "type", "veth", "peer", "name", &port, "netns",
            &host,
        ])?;
        ip(&["-n", &host, "link", "set", &port, "master", "br0", "up"])?;
        let addr = format!("{}/112", container_addr(n));
        ip(&["-n", &ct, "addr", "add", &addr, "dev", "eth0", "nodad"])?;
        ip(&["-n", &ct, "link", "set", "eth0", "up"])?;
        ip(&[
            "-n",
            &ct,
            "-6",
            "route",
            "add",
            "default",
            "via",
            BRIDGE_ADDR,
            "dev",
            "eth0",
        ])?;
        self.containers = n;
        Ok(n)
    }

    /// Ping `dst` from `src` (see [`Topology::ping_stats`]); true if any reply came back.
    pub fn ping_from_router(&self, src: &str, dst: &str, count: u32) -> Result<bool, LabError> {
        Ok(self.ping_stats(src, dst, count)?.1 > 0)
    }

    /// Ping `dst` `count` times, 0.2 s apart, from `src`: the router's address, or
    /// [`INTERNET_ADDR`] (from the Internet stand-in, forwarded by the router). Returns
    /// (transmitted, received).
    pub fn ping_stats(&self, src: &str, dst: &str, count: u32) -> Result<(u32, u32), LabError> {
        let count = count.to_string();
        let ns = if src == INTERNET_ADDR {
            self.internet()
        } else {
            self.router()
        };
        let out = self.try_exec(
            &ns,
            &[
                "ping", "-6", "-n", "-q", "-c", &count, "-i", "0.2", "-W", "1", "-I", src, dst,
            ],
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "5 packets transmitted, 5 received, 0% packet loss, time 801ms"
        let Some(summary) = text.lines().find(|l| l.contains("transmitted")) else {
            return Err(LabError::Command {
                command: format!("ping -I {src} {dst} (in {ns})"),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        };
        let number_before = |word: &str| {
            summary
                .split(',')
                .find(|part| part.contains(word))
                .and_then(|part| part.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        Ok((number_before("transmitted"), number_before("received")))
    }

    /// Forget what the router knows about `addr`, so that its next packet solicits anew.
    pub fn router_forget(&self, addr: &str) -> Result<(), LabError> {
        // "No such entry" is fine: the goal is that there is none.
        let _ = self.try_exec(
            &self.router(),
            &["ip", "-6", "neigh", "del", addr, "dev", "r0"],
        );
        Ok(())
    }

    /// The router's neighbour-table line for `addr` (e.g. "... lladdr 02:.. REACHABLE"), if any.
    pub fn router_neighbour(&self, addr: &str) -> Result<Option<String>, LabError> {
        let out = self.exec(
            &self.router(),
            &["ip", "-6", "neigh", "show", addr, "dev", "r0"],
        )?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok((!text.is_empty()).then_some(text))
    }

    /// How many NAs the anti-spoof filter has dropped so far.
    pub fn antispoof_drops(&self) -> Result<u64, LabError> {
        let out = self.exec(
            &self.hypervisor(),
            &["nft", "list", "table", "bridge", "antispoof"],
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }

    /// Start the daemon (`exe`) in the host namespace on eth0 with extra `args`.
    pub fn start_daemon(&self, exe: &Path, args: &[&str]) -> Result<Daemon, LabError> {
        let mut full = vec!["-i", "eth0"];
        full.extend_from_slice(args);
        Daemon::start(&self.host(), exe, &full, &[])
    }

    /// Start the daemon in the host namespace with exactly `args` (e.g. `-c FILE`).
    pub fn start_daemon_args(&self, exe: &Path, args: &[&str]) -> Result<Daemon, LabError> {
        Daemon::start(&self.host(), exe, args, &[])
    }

    /// The same, with extra environment variables (e.g. DOCKER_HOST).
    pub fn start_daemon_env(
        &self,
        exe: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Daemon, LabError> {
        let mut full = vec!["-i", "eth0"];
        full.extend_from_slice(args);
        Daemon::start(&self.host(), exe, &full, env)
    }

    /// Start the daemon in the host namespace with exactly `args` and extra environment.
    pub fn start_daemon_args_env(
        &self,
        exe: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Daemon, LabError> {
        Daemon::start(&self.host(), exe, args, env)
    }

    /// Remove every namespace of this topology (and with them, every interface).
    pub fn remove(&mut self) {
        // Not while the Ctrl-C handler removes the lab: it holds this for good.
        let _creating = CREATING.lock().unwrap_or_else(|e| e.into_inner());
        for ns in self.namespaces.drain(..).rev() {
            let _ = ip(&["netns", "del", &ns]);
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.remove();
    }
}

/// How a daemon ended.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    pub log: String,
}

impl Stopped {
    /// The daemon's last words: its counters.
    pub fn summary(&self) -> &str {
        self.log
            .lines()
            .find(|l| l.contains("stopped:"))
            .unwrap_or_default()
    }
}

/// The real daemon running in a namespace, its log captured to a file.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    log_path: PathBuf,
}

impl Daemon {
    fn start(
        ns: &str,
        exe: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Daemon, LabError> {
        let log_path =
            std::env::temp_dir().join(format!("ndp-responder-{ns}-{}.log", std::process::id()));
        let log = fs::File::create(&log_path)?;
        let mut cmd = Command::new("ip");
        // SAFETY: the closure only calls sigprocmask, which is async-signal-safe: the lab
        // blocks SIGINT/SIGTERM for its own cleanup thread, the daemon must not inherit that.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                Ok(())
            });
        }
        let creating = CREATING.lock().unwrap_or_else(|e| e.into_inner());
        let child = cmd
            .args(["netns", "exec", ns])
            .arg(exe)
            .args(args)
            .env("NDPRESPONDER_LOG", "DEBUG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        DAEMON_PIDS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child.id());
        drop(creating);
        let mut daemon = Daemon {
            child: Some(child),
            log_path,
        };
        let ready = wait_until(Duration::from_secs(10), || {
            daemon.log().contains("answering on") || daemon.exited()
        });
        if !ready || daemon.exited() {
            return Err(LabError::Timeout(format!(
                "the daemon did not start; its log:\n{}",
                daemon.log()
            )));
        }
        Ok(daemon)
    }

    /// The daemon's process id (`ip netns exec` execs it, so it is the child's).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Send `signal` (e.g. libc::SIGHUP) to the daemon.
    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(child.id() as i32, signal) };
        }
    }

    /// Everything the daemon has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Wait (up to `within`) until a log line contains every one of `needles`.
    pub fn wait_for_log(&self, needles: &[&str], within: Duration) -> bool {
        wait_until(within, || !self.log_lines(needles).is_empty())
    }

    /// Log lines containing every one of `needles`.
    pub fn log_lines(&self, needles: &[&str]) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_string)
            .collect()
    }

    fn exited(&mut self) -> bool {
        !matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Send SIGTERM and wait (up to 5 s) for a clean exit; returns the exit status and the
    /// whole log (which ends with the daemon's counters).
    pub fn stop(mut self) -> Result<Stopped, LabError> {
        let mut child = self.child.take().expect("a running daemon has a child");
        forget_pid(child.id());
        // `ip netns exec` execs the daemon, so the child's pid is the daemon's.
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Stopped {
                    status,
                    log: self.log(),
                });
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError::Timeout(
                    "the daemon did not stop within 5 s of SIGTERM".into(),
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn forget_pid(pid: u32) {
    DAEMON_PIDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| *p != pid);
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            forget_pid(child.id());
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_file(&self.log_path);
    }
}

/// Where the root-mode demo holds its lock, so that a second run refuses clearly.
pub const LOCK_PATH: &str = "/run/ndp-responder-lab.lock";

/// Take the demo's lock; held until the returned file is dropped (or the process dies).
fn lock() -> Result<fs::File, LabError> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_PATH)?;
    // SAFETY: flock on a descriptor we own.
    if unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    } != 0
    {
        return Err(LabError::Busy(LOCK_PATH.into()));
    }
    Ok(file)
}

/// Remove the demo's namespaces, whoever left them (idempotent).
pub fn down() -> Result<ExitCode, LabError> {
    if !privileged() {
        println!("lab down: nothing to remove (an unprivileged lab ends with its process)");
        return Ok(ExitCode::SUCCESS);
    }
    preflight()?;
    let _lock = lock()?;
    let removed = remove_lab_namespaces()?;
    println!("lab down: removed {removed} namespace(s)");
    Ok(ExitCode::SUCCESS)
}

/// Delete every namespace named `ndplab-*`; returns how many there were.
fn remove_lab_namespaces() -> Result<usize, LabError> {
    let out = ip(&["netns", "list"])?;
    let mut removed = 0;
    let mut failed = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if name.starts_with(&format!("{LAB_TAG}-")) {
            // One that cannot be removed does not keep the others.
            match ip(&["netns", "del", name]) {
                Ok(_) => removed += 1,
                Err(e) => failed = failed.or(Some(e)),
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}

/// On SIGINT, SIGTERM or SIGHUP: stop the daemons, remove the lab, exit 130. The signals are
/// blocked in every thread and taken by one waiting thread, so cleanup never runs inside a
/// signal handler. The daemon is started with a clean signal mask ([`Daemon`]).
fn clean_up_on_interrupt(remove_namespaces: bool) {
    // SAFETY: sigset_t is plain data; the calls only change this process's signal mask.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: set is a valid signal set; sig is a valid out-pointer.
        unsafe { libc::sigwait(&set, &mut sig) };
        INTERRUPTED.store(true, Ordering::SeqCst);
        eprintln!("\ninterrupted: stopping the daemon and removing the lab");
        // Never released: the process exits below.
        std::mem::forget(CREATING.lock().unwrap_or_else(|e| e.into_inner()));
        for pid in DAEMON_PIDS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
        if remove_namespaces {
            let _ = remove_lab_namespaces();
        }
        std::process::exit(130);
    });
}

/// Styling of the demo's output: colour on a terminal, plain text when piped.
struct Style {
    colour: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn verdict(&self, ok: bool, expected: bool, text: &str) {
        let mark = if ok == expected {
            self.paint("32", "PASS")
        } else {
            self.paint("31", "FAIL")
        };
        let state = if ok {
            self.paint("1", "reachable")
        } else {
            self.paint("1", "unreachable")
        };
        println!("[{mark}] {text}: container {state}");
    }
    fn evidence(&self, text: &str) {
        println!("       {}", self.paint("2", text));
    }
}

/// The built-in demo: every scenario on the embedded default topology.
pub fn demo(keep: bool) -> Result<ExitCode, LabError> {
    let result = run_demo(keep);
    // Interrupted: the commands of a scenario fail as its namespaces go; the handler's
    // thread is cleaning up and exits with 130, which must not be pre-empted.
    while INTERRUPTED.load(Ordering::SeqCst) {
        thread::park();
    }
    result
}

fn run_demo(keep: bool) -> Result<ExitCode, LabError> {
    // SAFETY: geteuid has no preconditions.
    let unprivileged = unsafe { libc::geteuid() } != 0;
    if unprivileged {
        if keep {
            return Err(LabError::NotRoot);
        }
        enter_user_namespace()?;
    }
    preflight()?;
    let exe = std::env::current_exe()?;
    let _lock = if unprivileged { None } else { Some(lock()?) };
    clean_up_on_interrupt(!unprivileged);
    let style = Style {
        colour: io::stdout().is_terminal(),
    };
    if !unprivileged {
        // A lab left behind by --keep or a crash would make namespace creation fail.
        let left = remove_lab_namespaces()?;
        if left > 0 {
            println!("Removed {left} namespace(s) left by an earlier lab.");
        }
    }
    let mode = if unprivileged {
        "in a user namespace, no root needed"
    } else {
        "as root"
    };
    println!("Building the provider topology in network namespaces {LAB_TAG}-* ({mode}):");
    println!("  Internet {INTERNET_ADDR} -- router {GATEWAY} (Linux) -- hypervisor bridge with anti-spoof filter");
    println!(
        "  -- host {HOST_ADDR} -- br0 {BRIDGE_ADDR} -- containers {} and {}",
        container_addr(1),
        container_addr(2)
    );
    let mut topo = Topology::build(LAB_TAG, 2)?;
    let ct = container_addr(1);
    let mut failures = 0;
    let mut check = |ok: bool, expected: bool, text: &str| {
        style.verdict(ok, expected, text);
        if ok != expected {
            failures += 1;
        }
    };
    let answered = |daemon: &Daemon, addr: &str| {
        daemon
            .log_lines(&["answered", addr])
            .last()
            .map(|line| line.split("answered ").nth(1).unwrap_or(line).to_string())
            .unwrap_or_else(|| "no NS answered".into())
    };
    let neighbour = |topo: &Topology, addr: &str| -> Result<String, LabError> {
        Ok(format!(
            "router's neighbour table: {}",
            topo.router_neighbour(addr)?
                .unwrap_or_else(|| "no entry".into())
        ))
    };

    let ok = topo.ping_from_router(INTERNET_ADDR, &ct, 3)?;
    check(ok, false, "no responder");
    style.evidence(&neighbour(&topo, &ct)?);

    let daemon = topo.start_daemon(&exe, &["-n", CONTAINER_PREFIX, "--source", "link-local"])?;
    topo.router_forget(&ct)?;
    let drops_before = topo.antispoof_drops()?;
    let ok = topo.ping_from_router(INTERNET_ADDR, &ct, 3)?;
    check(
        ok,
        false,
        "link-local-sourced NAs (what proxy_ndp and ndppd send)",
    );
    style.evidence(&answered(&daemon, &ct));
    style.evidence(&format!(
        "anti-spoof filter dropped {} NA(s); {}",
        topo.antispoof_drops()? - drops_before,
        neighbour(&topo, &ct)?
    ));
    daemon.stop()?;

    let daemon = topo.start_daemon(&exe, &["-n", CONTAINER_PREFIX])?;
    for (src, who) in [
        (
            INTERNET_ADDR,
            "ndp-responder, router solicits from link-local (forwarded traffic)",
        ),
        (
            GATEWAY,
            "ndp-responder, router solicits from its global address",
        ),
    ] {
        topo.router_forget(&ct)?;
        let ok = topo.ping_from_router(src, &ct, 3)?;
        check(ok, true, who);
        style.evidence(&answered(&daemon, &ct));
        style.evidence(&neighbour(&topo, &ct)?);
    }
    let ct2 = container_addr(2);
    let ok = topo.ping_from_router(INTERNET_ADDR, &ct2, 3)?;
    check(ok, true, &format!("second container {ct2}"));

    let n = topo.add_container()?;
    let ct3 = container_addr(n);
    let ok = topo.ping_from_router(INTERNET_ADDR, &ct3, 3)?;
    check(
        ok,
        true,
        &format!("container {ct3} added while the daemon runs"),
    );
    style.evidence(&answered(&daemon, &ct3));

    let stopped = daemon.stop()?;
    style.evidence(&format!("daemon stopped on SIGTERM: {}", stopped.status));

    if keep {
        let names = topo.namespaces().to_vec();
        std::mem::forget(topo);
        println!("\nThe lab stays up. Enter a namespace with:");
        for ns in names {
            println!("  ip netns exec {ns} bash");
        }
        println!(
            "Start the daemon: ip netns exec {LAB_TAG}-host {} -i eth0 -n {CONTAINER_PREFIX}",
            exe.display()
        );
        println!("Remove the lab:   ndp-responder lab down");
    } else {
        topo.remove();
    }
    if failures == 0 {
        println!("\nAll scenarios behaved as expected.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("\n{failures} scenario(s) did not behave as expected.");
        Ok(ExitCode::FAILURE)
    }
}
