//! Docker rules against a real Podman engine (Debian's podman with netavark) that the test runs
//! itself: its Docker-compatible API served by `podman system service` in the test's host
//! namespace, with its own storage, runtime and configuration directories; the image is
//! imported from Debian's busybox-static, nothing is pulled. The network is created as the
//! README says (Podman 4 refuses a subnet inside the uplink's /64 where it checks, so it is
//! created where no interface holds an address). Then: a container known at start, one
//! connected, disconnected, run and stopped while the daemon runs (Podman before 5 names no
//! network in its network events and sends none for run and stop), each answered or dropped
//! within 2 s; an engine restart with changes made meanwhile; and `-N` with `--auto` and `-n`
//! on overlapping prefixes, where an address is answered when any rule says so.
//!
//! Everything is read through the daemon's `status` (its `docker` entry, the answering list,
//! counters by reason), solicitations from the router, and the engine's own view (`podman
//! inspect`); the daemon's log only goes into failure messages.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::engine::{docker_answered, followed, run_args, wait_docker, IMAGE, NETWORK};
use common::{exe, host_answers, never_answered, topology};
use ndp_responder::decide::policy::Ignored;
use ndp_responder::tools::lab::{
    container_addr, wait_until, Daemon, Topology, BRIDGE_ADDR, CONTAINER_PREFIX, INTERNET_ADDR,
};

/// Changes made through the engine are answered or dropped within this.
const CHANGE: Duration = Duration::from_secs(2);

/// A Podman of the test's own: `podman system service` in the test's host namespace, every
/// directory and configuration file under `dir`. Dropping it removes its containers, stops
/// the service and deletes its directory.
struct Podman {
    dir: PathBuf,
    ns: String,
    child: Option<Child>,
}

impl Podman {
    fn start(topo: &Topology, dir: &Path) -> Podman {
        common::engine::require(
            &["podman", "nsenter", "unshare", "busybox"],
            "apt-get install podman netavark busybox-static",
        );
        std::fs::create_dir_all(dir).unwrap();
        let d = |name: &str| dir.join(name).display().to_string();
        // Podman raises a container's nofile and nproc limits to the host's maximum by
        // default, which a sandboxed test may not be allowed to do: fixed, low limits.
        // File locks, not the host-wide shared-memory ones; events in a file of its own.
        let runtime = if has("runc") { "runc" } else { "crun" };
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
                 events_logfile_path = \"{}\"\nlock_type = \"file\"\nruntime = \"{runtime}\"\n\n\
                 [network]\nnetwork_backend = \"netavark\"\nnetwork_config_dir = \"{}\"\n",
                d("events.log"),
                d("networks"),
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
                d("runroot"),
                d("root"),
            ),
        )
        .unwrap();
        let mut engine = Podman {
            dir: dir.to_path_buf(),
            ns: topo.host(),
            child: None,
        };
        engine.launch();
        engine
    }

    /// The API's socket, as `DOCKER_HOST` names it.
    fn host(&self) -> String {
        format!("unix://{}", self.dir.join("podman.sock").display())
    }

    /// `podman` with the test's configuration and directories, run locally (not through the
    /// service) by `program` with `args` before podman's (nsenter, unshare).
    fn local_via(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args).arg("podman");
        self.configure(&mut cmd);
        cmd
    }

    fn configure(&self, cmd: &mut Command) {
        let d = |name: &str| self.dir.join(name);
        cmd.env("CONTAINERS_CONF", d("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d("storage.conf"))
            .arg("--root")
            .arg(d("root"))
            .arg("--runroot")
            .arg(d("runroot"))
            .arg("--tmpdir")
            .arg(d("tmp"))
            .stdin(Stdio::null());
    }

    /// `podman` in the test's host namespace, without the service (while it is down).
    fn in_host(&self, args: &[&str]) -> String {
        let netns = format!("--net=/run/netns/{}", self.ns);
        let mut cmd = self.local_via("nsenter", &[&netns]);
        succeeded(&format!("podman {args:?} in the host namespace"), {
            cmd.args(args).output().unwrap()
        })
    }

    /// Run the API service in the host namespace (nsenter switches only the network
    /// namespace, so cgroups stay visible).
    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("service.log"))
            .unwrap();
        let netns = format!("--net=/run/netns/{}", self.ns);
        let child = self
            .local_via("nsenter", &[&netns])
            .args(["system", "service", "--time=0", &self.host()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let up = wait_until(Duration::from_secs(30), || {
            self.try_remote(&["version"]).status.success()
        });
        assert!(up, "podman system service did not start:\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("service.log")).unwrap_or_default()
    }

    /// `podman --remote`: through the service's API, as a user's client would.
    fn try_remote(&self, args: &[&str]) -> Output {
        Command::new("podman")
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .args(["--remote", "--url", &self.host()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn remote(&self, args: &[&str]) -> String {
        succeeded(&format!("podman {args:?}"), self.try_remote(args))
    }

    fn import_busybox(&self) {
        let mut import = Command::new("podman");
        import
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .args(["--remote", "--url", &self.host()]);
        common::engine::import_busybox(&self.dir, import);
    }

    /// The network, as the README says: `podman network create` refuses (Podman 4) a subnet
    /// that overlaps an address of an interface where it runs, and the uplink's /64 holds the
    /// container prefix; so it runs in a network namespace of its own (`unshare --net`), where
    /// no interface holds one. The configuration it writes is the engine's.
    fn create_network(&self) {
        let create = [
            "network",
            "create",
            "--ipv6",
            "--subnet",
            CONTAINER_PREFIX,
            "--gateway",
            BRIDGE_ADDR,
            // No aardvark-dns process in the host namespace: names are not used here.
            "--disable-dns",
            NETWORK,
        ];
        let direct = self.try_remote(&create);
        if direct.status.success() {
            return;
        }
        let refusal = String::from_utf8_lossy(&direct.stderr).to_string();
        assert!(
            refusal.contains("is already used on the host"),
            "podman network create: {refusal}"
        );
        let mut cmd = self.local_via("unshare", &["--net"]);
        succeeded("unshare --net podman network create", {
            cmd.args(create).output().unwrap()
        });
        let listed = self.remote(&["network", "ls", "--format", "{{.Name}}"]);
        assert!(
            listed.lines().any(|n| n == NETWORK),
            "the service does not see {NETWORK}: {listed}"
        );
    }

    /// Start container `name` on the network with address `addr`, sleeping.
    fn run_on_network(&self, name: &str, addr: &str) {
        self.remote(&run_args(name, addr));
    }

    /// The IPv6 addresses of the running containers on the network, as the engine reports
    /// them.
    fn addresses(&self) -> BTreeSet<String> {
        let filter = format!("network={NETWORK}");
        let ids = self.remote(&["ps", "-q", "--filter", &filter]);
        let format =
            format!("{{{{with index .NetworkSettings.Networks \"{NETWORK}\"}}}}{{{{.GlobalIPv6Address}}}}{{{{end}}}}");
        ids.split_whitespace()
            .map(|id| self.remote(&["inspect", "-f", &format, id]))
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect()
    }

    /// Stop the API service (the containers keep running: conmon holds them).
    fn stop(&mut self) {
        common::engine::stop(self.child.take());
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let netns = format!("--net=/run/netns/{}", self.ns);
        let _ = self
            .local_via("nsenter", &[&netns])
            .args(["rm", "-f", "-a", "-t", "0"])
            .output();
        self.stop();
        common::engine::remove_dir(&self.dir);
    }
}

fn has(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The standard output of a command that must succeed.
fn succeeded(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Let the daemon's announcements end (no new one for 1.5 s, within 15 s), then make the
/// router forget the lab's container addresses: an announcement's NS makes the router create
/// an entry it would probe (unicast, answered) seconds later, and its NAs reach the router's
/// ndisc6 too; `never_answered` wants neither meanwhile.
fn settle(topo: &Topology, daemon: &Daemon) {
    let mut last = daemon.counters().announcements_sent;
    let mut since = std::time::Instant::now();
    let quiet = wait_until(Duration::from_secs(15), || {
        let now = daemon.counters().announcements_sent;
        if now != last {
            (last, since) = (now, std::time::Instant::now());
        }
        since.elapsed() >= Duration::from_millis(1500)
    });
    assert!(quiet, "the announcements never ended:\n{}", daemon.log());
    for n in 0..=8 {
        topo.router_forget(&container_addr(n)).unwrap();
    }
}

#[test]
fn podman_containers_are_followed_through_connect_disconnect_run_stop_and_a_restart() {
    let topo = topology(0);
    // Podman (netavark) brings its own bridge for the container prefix.
    topo.delete_bridge().unwrap();
    let dir = std::env::temp_dir().join(format!("ndpt-podman-{}", std::process::id()));
    let mut engine = Podman::start(&topo, &dir);
    engine.import_busybox();
    engine.create_network();
    let docker_host = engine.host();
    let env = [("DOCKER_HOST", docker_host.as_str())];

    // Known at start: a container running before the daemon.
    let c1 = container_addr(1);
    engine.run_on_network("c1", &c1);
    let daemon = topo
        .start_daemon_env(exe(), &["-N", NETWORK], &env)
        .unwrap();
    let u = wait_docker(
        &daemon,
        "c1 known at start",
        Duration::from_secs(10),
        |u, d| d.engine_connected && d.exists && docker_answered(u).contains(&c1),
    );
    assert_eq!(docker_answered(&u), BTreeSet::from([c1.clone()]));
    assert_eq!(followed(&u).unwrap().addresses, 1);
    topo.router_forget(&c1).unwrap();
    assert!(
        topo.ping_from_router(INTERNET_ADDR, &c1, 3).unwrap(),
        "{}",
        daemon.log()
    );

    // Run on the network while the daemon runs: Podman sends container events only.
    let c3 = container_addr(3);
    engine.run_on_network("c3", &c3);
    let u = wait_docker(&daemon, "c3 answered once run", CHANGE, |u, _| {
        docker_answered(u).contains(&c3)
    });
    assert_eq!(docker_answered(&u), engine.addresses());
    topo.router_forget(&c3).unwrap();
    assert!(host_answers(&topo, &c3), "{}", daemon.log());

    // Connected: Podman 4's network event names the container, not the network.
    let c2 = container_addr(2);
    engine.remote(&["run", "-d", "--name", "c2", IMAGE, "sleep", "600"]);
    engine.remote(&["network", "connect", "--ip6", &c2, NETWORK, "c2"]);
    wait_docker(&daemon, "c2 answered once connected", CHANGE, |u, _| {
        docker_answered(u).contains(&c2)
    });
    topo.router_forget(&c2).unwrap();
    assert!(host_answers(&topo, &c2), "{}", daemon.log());

    // Disconnected: no longer answered. (The kernel filter still spans c1's and c3's
    // addresses, so its solicitations reach the daemon, which counts them as not connected.)
    engine.remote(&["network", "disconnect", NETWORK, "c2"]);
    wait_docker(&daemon, "c2 dropped once disconnected", CHANGE, |u, _| {
        !docker_answered(u).contains(&c2)
    });
    settle(&topo, &daemon);
    never_answered(&topo, &daemon, &c2, Ignored::NotConnected);

    // Stopped: no longer answered (c4 runs above it, so the filter still spans it).
    let c4 = container_addr(4);
    engine.run_on_network("c4", &c4);
    wait_docker(&daemon, "c4 answered once run", CHANGE, |u, _| {
        docker_answered(u).contains(&c4)
    });
    engine.remote(&["stop", "-t", "0", "c3"]);
    let u = wait_docker(&daemon, "c3 dropped once stopped", CHANGE, |u, _| {
        !docker_answered(u).contains(&c3)
    });
    assert_eq!(
        docker_answered(&u),
        BTreeSet::from([c1.clone(), c4.clone()])
    );
    assert_eq!(docker_answered(&u), engine.addresses());
    settle(&topo, &daemon);
    never_answered(&topo, &daemon, &c3, Ignored::NotConnected);

    // The engine restarts; meanwhile c4 stops and c3 starts again (podman without the
    // service). What is known is answered during the outage; the resync brings the change.
    engine.stop();
    let u = wait_docker(
        &daemon,
        "the engine's outage noticed",
        Duration::from_secs(10),
        |_, d| !d.engine_connected,
    );
    let d = followed(&u).unwrap();
    assert!(d.engine_error.is_some(), "{d:?}");
    assert_eq!(
        (d.engine_outages, d.exists, d.addresses),
        (1, true, 2),
        "{d:?}"
    );
    topo.router_forget(&c4).unwrap();
    assert!(
        host_answers(&topo, &c4),
        "known addresses must be answered while the engine is down:\n{}",
        daemon.log()
    );
    engine.in_host(&["stop", "-t", "0", "c4"]);
    engine.in_host(&["start", "c3"]);
    engine.launch();
    let want = BTreeSet::from([c1.clone(), c3.clone()]);
    let u = wait_docker(
        &daemon,
        "the engine's containers after its restart",
        Duration::from_secs(40),
        |u, d| d.engine_connected && docker_answered(u) == want,
    );
    assert_eq!(docker_answered(&u), engine.addresses());
    let d = followed(&u).unwrap();
    assert_eq!(
        (d.engine_outages, d.engine_error.as_deref()),
        (1, None),
        "{d:?}"
    );
    settle(&topo, &daemon);
    never_answered(&topo, &daemon, &c4, Ignored::NotConnected);
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);

    overlapping_rules_answer_what_any_of_them_knows(&topo, &env, &c1);
}

/// `-N` with `--auto` on the container prefix and `-n` on part of it: an address is answered
/// when any rule says so. `ct` is the one container running on the network.
fn overlapping_rules_answer_what_any_of_them_knows(
    topo: &Topology,
    env: &[(&str, &str)],
    ct: &str,
) {
    let daemon = topo
        .start_daemon_env(
            exe(),
            &[
                "-N",
                NETWORK,
                "--auto",
                CONTAINER_PREFIX,
                "-n",
                "2001:db8:1::d:80/121",
            ],
            env,
        )
        .unwrap();
    wait_docker(
        &daemon,
        "the container known to the docker rule",
        Duration::from_secs(10),
        |u, d| d.engine_connected && docker_answered(u).contains(ct),
    );
    // The container, under the more specific auto rule, which need not know it (the host's
    // neighbour entries for the prefix are flushed): the docker rule does.
    topo.exec(
        &topo.host(),
        &["ip", "-6", "neigh", "flush", "to", CONTAINER_PREFIX],
    )
    .unwrap();
    topo.router_forget(ct).unwrap();
    assert!(host_answers(topo, ct), "{}", daemon.log());
    // The bridge's own address: the auto rule knows it; the docker rule does not.
    assert!(host_answers(topo, BRIDGE_ADDR), "{}", daemon.log());
    // Nobody's address in the static rule's prefix: the static rule.
    assert!(host_answers(topo, "2001:db8:1::d:90"), "{}", daemon.log());
    // Nobody's address outside it: no rule knows it; the most specific rule's reason.
    settle(topo, &daemon);
    never_answered(
        topo,
        &daemon,
        "2001:db8:1::d:50",
        Ignored::UnknownDownstream,
    );
    let counters = daemon.counters();
    assert!(counters.answered >= 3, "{counters:?}");
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
}
