//! The provider topology: the namespaces, links and addresses of one lab, and what the demo
//! and the tests do to it (containers coming and going, the uplink and bridge flapping,
//! pings, the router's neighbour table, the anti-spoof filter's counter).
//!
//! Owns: [`Topology`], built on [`crate::tools::netns`]; dropping it removes every namespace
//! it created.
//!
//! Must not: touch a namespace it did not create, start the daemon by itself (that is
//! [`super::daemon`], through [`Topology::start_daemon`]), or use addresses outside
//! 2001:db8::/32.

use std::path::Path;
use std::process::Output;

use super::daemon::Daemon;
use super::{
    container_addr, preflight, LabError, BRIDGE_ADDR, CREATING, GATEWAY, HOST_MAC, INTERNET_ADDR,
    ROUTER_MAC,
};
use crate::tools::netns::{self, ip};

/// The namespaces of one lab and what runs in them. Dropping it removes them all.
#[derive(Debug)]
pub struct Topology {
    pub(super) tag: String,
    pub(super) containers: usize,
    pub(super) namespaces: Vec<String>,
    /// A topology of guests that autoconfigure (SLAAC) behind br0 (see [`super::guests`]):
    /// br0 has no container prefix then.
    pub(super) slaac: bool,
    pub(super) guests: usize,
}

impl Topology {
    /// Build the whole topology with `containers` containers; namespace names start with `tag`.
    pub fn build(tag: &str, containers: usize) -> Result<Topology, LabError> {
        preflight()?;
        let mut topo = Topology {
            tag: tag.to_string(),
            containers: 0,
            namespaces: Vec::new(),
            slaac: false,
            guests: 0,
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

    pub(super) fn add_netns(&mut self, name: String) -> Result<(), LabError> {
        let creating = CREATING.lock().unwrap_or_else(|e| e.into_inner());
        netns::add(&name)?;
        self.namespaces.push(name.clone());
        drop(creating);
        // No duplicate address detection: addresses are usable at once and no test waits.
        netns::sysctl(&name, "net/ipv6/conf/all/accept_dad", "0")?;
        netns::sysctl(&name, "net/ipv6/conf/default/accept_dad", "0")?;
        Ok(())
    }

    /// Write a sysctl inside a namespace (`key` as a path below /proc/sys).
    pub fn sysctl(&self, ns: &str, key: &str, value: &str) -> Result<(), LabError> {
        Ok(netns::sysctl(ns, key, value)?)
    }

    /// Run a command inside namespace `ns`; fails if the command fails.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Result<Output, LabError> {
        Ok(netns::exec(ns, args)?)
    }

    /// Run a command inside namespace `ns` and return its exit status and output, whatever it is.
    pub fn try_exec(&self, ns: &str, args: &[&str]) -> Result<Output, LabError> {
        Ok(netns::try_exec(ns, args)?)
    }

    pub(super) fn build_provider(&mut self) -> Result<(), LabError> {
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
        netns::nft(&hv, rules)?;
        Ok(())
    }

    pub(super) fn build_host(&mut self) -> Result<(), LabError> {
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
        if self.slaac {
            return self.create_guest_bridge();
        }
        self.bridge_with_ports(
            None,
            Some("2001:db8:1::d:1/112"),
            "veth-ct",
            self.containers,
        )
    }

    /// The host's br0 (snooping off), with a fixed MAC and an address if given, up, and the
    /// ports `{port_prefix}1..={ports}` that still exist attached to it (a removed container
    /// or guest has no port any more). One bridge set-up for both topologies.
    pub(super) fn bridge_with_ports(
        &self,
        mac: Option<&str>,
        addr: Option<&str>,
        port_prefix: &str,
        ports: usize,
    ) -> Result<(), LabError> {
        let host = self.host();
        let mut add = vec!["-n", &host, "link", "add", "br0"];
        if let Some(mac) = mac {
            add.extend(["address", mac]);
        }
        add.extend(["type", "bridge", "mcast_snooping", "0"]);
        ip(&add)?;
        if let Some(addr) = addr {
            ip(&["-n", &host, "addr", "add", addr, "dev", "br0", "nodad"])?;
        }
        ip(&["-n", &host, "link", "set", "br0", "up"])?;
        for n in 1..=ports {
            let port = format!("{port_prefix}{n}");
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
        netns::delete(&ns)?;
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
        let ns = if src == INTERNET_ADDR {
            self.internet()
        } else {
            self.router()
        };
        self.ping_in(&ns, Some(src), dst, count)
    }

    /// Ping `dst` `count` times, 0.2 s apart, from namespace `ns` (from address `src`, if
    /// given). Returns (transmitted, received).
    pub fn ping_in(
        &self,
        ns: &str,
        src: Option<&str>,
        dst: &str,
        count: u32,
    ) -> Result<(u32, u32), LabError> {
        let count = count.to_string();
        let mut args = vec![
            "ping", "-6", "-n", "-q", "-c", &count, "-i", "0.2", "-W", "1",
        ];
        if let Some(src) = src {
            args.extend(["-I", src]);
        }
        args.push(dst);
        let out = self.try_exec(ns, &args)?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "5 packets transmitted, 5 received, 0% packet loss, time 801ms"
        let Some(summary) = text.lines().find(|l| l.contains("transmitted")) else {
            return Err(netns::Error::Command {
                command: format!(
                    "ping {} {dst} (in {ns})",
                    src.map_or(String::new(), |s| format!("-I {s}"))
                ),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }
            .into());
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
        Ok(counted_packets(&out.stdout))
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
            let _ = netns::delete(&ns);
        }
    }
}

/// The packets of the first counter in an `nft list table` listing (0 if it has none): the
/// drops of the hypervisor's anti-spoof and MAC filters.
pub(super) fn counted_packets(listing: &[u8]) -> u64 {
    String::from_utf8_lossy(listing)
        .split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.remove();
    }
}
