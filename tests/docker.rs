//! Docker networks against a real Docker engine that the test starts itself, in the host's
//! network namespace, with its own data root and socket; the image is imported from Debian's
//! busybox-static, nothing is pulled. Containers connected to the network become reachable from
//! the router through the anti-spoof filter and are announced; disconnecting makes them
//! unreachable; an engine restart is survived and a container connected meanwhile is picked up;
//! the shipped image runs the daemon, which answers for the network's containers.
//!
//! Everything is read through the daemon's interfaces (`status`: its `docker` entry, the
//! answering list, counters by reason), packet captures in the router's namespace, and the
//! engine's own view (`docker network inspect`); the daemon's log only goes into failure
//! messages.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::engine::{docker_answered, followed, run_args, wait_docker, NETWORK};
use common::{exe, host_answers, topology};
use ndp_responder::decide::policy::Ignored;
use ndp_responder::status::Status;
use ndp_responder::tools::lab::{
    container_addr, wait_until, Topology, BRIDGE_ADDR, CONTAINER_PREFIX, GATEWAY, HOST_MAC,
    INTERNET_ADDR,
};

/// A dockerd of the test's own, in the host namespace. Dropping it removes its containers,
/// stops it and deletes its directory.
struct Engine {
    dir: PathBuf,
    ns: String,
    child: Option<Child>,
}

impl Engine {
    fn start(topo: &Topology, dir: &Path) -> Engine {
        common::engine::require(
            &["dockerd", "docker", "nsenter", "busybox"],
            "apt-get install docker.io busybox-static",
        );
        std::fs::create_dir_all(dir).unwrap();
        let mut engine = Engine {
            dir: dir.to_path_buf(),
            ns: topo.host(),
            child: None,
        };
        engine.launch();
        engine
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    /// Run dockerd (nsenter switches only the network namespace, so cgroups stay visible).
    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .unwrap();
        let d = |name: &str| self.dir.join(name).display().to_string();
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns))
            .arg("dockerd")
            .args([
                "--data-root",
                &d("data"),
                "--exec-root",
                &d("exec"),
                "--pidfile",
                &d("dockerd.pid"),
            ])
            .args([
                "-H",
                &self.host(),
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
            ])
            .args([
                "--storage-driver=vfs",
                "--containerd-namespace=ndpt",
                "--containerd-plugins-namespace=ndpt-plugins",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let up = wait_until(Duration::from_secs(30), || {
            self.try_docker(&["version"]).status.success()
        });
        assert!(up, "dockerd did not start:\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    fn try_docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("-H")
            .arg(self.host())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn docker(&self, args: &[&str]) -> String {
        let out = self.try_docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The IPv6 addresses of the containers on the network, as the engine itself reports them.
    fn addresses(&self) -> BTreeSet<String> {
        let format = "{{range .Containers}}{{.IPv6Address}} {{end}}";
        self.docker(&["network", "inspect", "-f", format, NETWORK])
            .split_whitespace()
            .filter_map(|a| a.split('/').next())
            .map(str::to_string)
            .collect()
    }

    /// Start container `name` on the network with address `addr`, sleeping.
    fn run_on_network(&self, name: &str, addr: &str) {
        self.docker(&run_args(name, addr));
    }

    /// An image with busybox only, built from Debian's busybox-static.
    fn import_busybox(&self) {
        let mut import = Command::new("docker");
        import.arg("-H").arg(self.host());
        common::engine::import_busybox(&self.dir, import);
    }

    /// Stop dockerd (SIGTERM, then SIGKILL after 20 s) and wait for it.
    fn stop(&mut self) {
        common::engine::stop(self.child.take());
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = String::from_utf8_lossy(&self.try_docker(&["ps", "-aq"]).stdout).to_string();
            for id in ids.split_whitespace() {
                let _ = self.try_docker(&["rm", "-f", id]);
            }
        }
        self.stop();
        // dockerd may leave mounts in its directories (the host network's namespace under
        // exec/netns once a container used --network host).
        common::engine::remove_dir(&self.dir);
    }
}

/// The timestamps (`tcpdump -tt`) of capture lines.
fn times(lines: &[String]) -> Vec<f64> {
    lines
        .iter()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect()
}

/// Consecutive timestamps are 0.6-1.4 s apart (announcements are 1 s apart).
fn spaced_a_second_apart(what: &str, times: &[f64], capture: &str) {
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (0.6..=1.4).contains(&gap),
            "{what} {gap:.3} s apart, not 1 s:\n{capture}"
        );
    }
}

#[test]
fn docker_network_containers_are_answered_followed_announced_and_survive_an_engine_restart() {
    let topo = topology(0);
    // Docker brings its own bridge for the container prefix.
    topo.delete_bridge().unwrap();
    // The hypervisor's bridge snoops MLD and floods nothing unreported to the host (issue 15):
    // the router's solicitations for the containers reach the host only because the daemon
    // joins their solicited-node groups.
    common::snoop(&topo);
    let dir = std::env::temp_dir().join(format!("ndpt-docker-{}", std::process::id()));
    let mut engine = Engine::start(&topo, &dir);
    engine.import_busybox();
    let docker_host = engine.host();
    let env = [("DOCKER_HOST", docker_host.as_str())];

    // The network does not exist yet: the engine is followed, the network reported missing,
    // then found when it is created.
    let daemon = topo
        .start_daemon_env(exe(), &["-N", NETWORK], &env)
        .unwrap();
    let u = wait_docker(
        &daemon,
        "connected to the engine, the network missing",
        Duration::from_secs(10),
        |_, d| d.engine_connected && !d.exists,
    );
    let d = followed(&u).unwrap();
    assert_eq!((d.addresses, d.engine_outages), (0, 0), "{d:?}");
    assert_eq!(d.engine_error, None);
    engine.docker(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "192.0.2.0/24",
        "--subnet",
        CONTAINER_PREFIX,
        "--gateway",
        BRIDGE_ADDR,
        NETWORK,
    ]);
    wait_docker(
        &daemon,
        "the created network found",
        Duration::from_secs(5),
        |_, d| d.exists && d.engine_connected,
    );

    // A container connects: announced to the router three times, 1 s apart (an unsolicited
    // NA to all nodes and an NS from its address to the gateway each time), then reachable
    // through the filter.
    let ct = container_addr(1);
    let capture = common::start_capture(
        &topo.router(),
        "r0",
        100,
        &format!(
            "icmp6 and ((ip6[40] == 136 and ip6 dst ff02::1) or (ip6[40] == 135 and ip6 src {ct}))"
        ),
    );
    engine.run_on_network("c1", &ct);
    let u = wait_docker(
        &daemon,
        "c1 answered for",
        Duration::from_secs(5),
        |u, d| d.addresses == 1 && docker_answered(u).contains(&ct),
    );
    assert_eq!(docker_answered(&u), BTreeSet::from([ct.clone()]));
    let nas = |c: &common::Capture| -> Vec<String> {
        c.lines(&["neighbor advertisement", &format!("tgt is {ct},")])
    };
    let nss = |c: &common::Capture| -> Vec<String> {
        c.lines(&[&format!("IP6 {ct} > "), &format!("who has {GATEWAY},")])
    };
    assert!(
        capture.wait_for(Duration::from_secs(8), |_| nas(&capture).len() >= 3
            && nss(&capture).len() >= 3),
        "not three announcements of {ct}:\n{}\n{}",
        capture.text(),
        daemon.log()
    );
    let text = capture.text();
    let adverts = common::adverts(&text);
    assert!(
        adverts
            .iter()
            .filter(|(_, _, tgt)| *tgt == ct)
            .all(|(src, dst, _)| *src == ct && dst == "ff02::1"),
        "the unsolicited NA goes from the address to all nodes:\n{text}"
    );
    spaced_a_second_apart("the NAs", &times(&nas(&capture)), &text);
    spaced_a_second_apart("the NSs to the gateway", &times(&nss(&capture)), &text);
    topo.router_forget(&ct).unwrap();
    assert!(
        topo.ping_from_router(INTERNET_ADDR, &ct, 3).unwrap(),
        "{}",
        daemon.log()
    );

    // The rule has no prefix, yet the kernel filter stays narrow (the network's addresses):
    // solicitations for other targets never reach the daemon. Twenty of them, then one for
    // the container, whose answer shows that everything before it was handled.
    let before = daemon.counters();
    let mut frames: Vec<Vec<u8>> = (0..20)
        .map(|i| common::router_ns(&format!("2001:db8:1::e:{i:x}")))
        .collect();
    frames.push(common::router_ns(&ct));
    common::send_frames_in(&topo.router(), "r0", &frames);
    let after = common::wait_counters(&daemon, Duration::from_secs(5), |c| {
        c.answered > before.answered
    })
    .unwrap_or_else(|c| panic!("the solicitation for {ct} was not answered: {c:?}"));
    let ignored = |c: &ndp_responder::status::Counters| c.ignored.values().sum::<u64>();
    assert_eq!(
        ignored(&after),
        ignored(&before),
        "solicitations for other targets reached the daemon: {after:?}"
    );

    // Two more containers; the middle one disconnects: no longer answered, at once. (The
    // kernel filter still spans the remaining two addresses, so its solicitations reach the
    // daemon, which counts them as not connected.)
    let mid = container_addr(2);
    let hi = container_addr(3);
    engine.run_on_network("c2", &mid);
    engine.run_on_network("c3", &hi);
    wait_docker(
        &daemon,
        "c2 and c3 answered for",
        Duration::from_secs(5),
        |u, d| d.addresses == 3 && docker_answered(u) == engine.addresses(),
    );
    engine.docker(&["network", "disconnect", NETWORK, "c2"]);
    let u = wait_docker(
        &daemon,
        "c2 no longer answered for",
        Duration::from_secs(5),
        |u, d| d.addresses == 2 && !docker_answered(u).contains(&mid),
    );
    assert_eq!(docker_answered(&u), engine.addresses());
    common::never_answered(&topo, &daemon, &mid, Ignored::NotConnected);

    // Reconnect, then restart the engine: what is known is answered meanwhile, and a
    // container connected right after the engine is back is picked up by the resync.
    engine.docker(&["network", "connect", "--ip6", &mid, NETWORK, "c2"]);
    wait_docker(
        &daemon,
        "c2 answered for again",
        Duration::from_secs(5),
        |u, d| d.addresses == 3 && docker_answered(u).contains(&mid),
    );
    // By now (seconds after the first announcements) c1 was announced exactly three times.
    assert_eq!(
        (nas(&capture).len(), nss(&capture).len()),
        (3, 3),
        "c1 announced other than three times:\n{}",
        capture.text()
    );
    drop(capture);
    engine.stop();
    let u = wait_docker(
        &daemon,
        "the engine's outage noticed",
        Duration::from_secs(10),
        |_, d| !d.engine_connected,
    );
    let d = followed(&u).unwrap();
    assert!(d.engine_error.is_some(), "{d:?}");
    assert_eq!(d.engine_outages, 1, "{d:?}");
    assert!(d.exists, "what is known is kept: {d:?}");
    assert_eq!(d.addresses, 3, "what is known is kept: {d:?}");
    topo.router_forget(&mid).unwrap();
    assert!(
        host_answers(&topo, &mid),
        "known addresses must be answered while the engine is down:\n{}",
        daemon.log()
    );
    engine.launch();
    let ct4 = container_addr(4);
    engine.run_on_network("c4", &ct4);
    // The resync: the daemon's addresses are the engine's again (the new container in; the
    // ones the engine's restart stopped out), after one outage, however many retries.
    let u = wait_docker(
        &daemon,
        "the engine's containers after its restart",
        Duration::from_secs(40),
        |u, d| {
            d.engine_connected
                && docker_answered(u).contains(&ct4)
                && docker_answered(u) == engine.addresses()
        },
    );
    let d = followed(&u).unwrap();
    assert_eq!(d.engine_outages, 1, "one outage: {d:?}");
    assert_eq!((d.engine_error.as_deref(), d.exists), (None, true), "{d:?}");
    assert!(
        topo.ping_from_router(INTERNET_ADDR, &ct4, 3).unwrap(),
        "{}",
        daemon.log()
    );

    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);

    image_runs_the_daemon(&topo, &engine, &dir, &ct4);
}

/// The shipped image: packaging/build-image builds it FROM scratch (no registry) around the
/// static binary. It passes `check-config` on a mounted configuration, and runs the daemon as
/// packaging/Dockerfile says to (host network, two capabilities, read-only, the engine's
/// socket mounted), which follows the network and answers the router for `ct` (the test's own
/// daemon is stopped: nothing else here answers). Its own target directory, shared with the
/// package test: this test's cargo holds the lock of its own.
fn image_runs_the_daemon(topo: &Topology, engine: &Engine, dir: &Path, ct: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| root.join(t))
        .unwrap_or_else(|| root.join("target"));
    let built = Command::new(root.join("packaging/build-image"))
        .env("DOCKER_HOST", engine.host())
        .env("CARGO_TARGET_DIR", target.join("package-test"))
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "build-image: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let tag = String::from_utf8_lossy(&built.stdout).trim().to_string();
    assert_eq!(tag, format!("ndp-responder:{}", env!("CARGO_PKG_VERSION")));
    let version = engine.docker(&["run", "--rm", "--network", "none", &tag, "--version"]);
    assert_eq!(
        version.trim(),
        format!("ndp-responder {}", env!("CARGO_PKG_VERSION"))
    );
    let size: u64 = engine
        .docker(&["image", "inspect", "-f", "{{.Size}}", &tag])
        .trim()
        .parse()
        .unwrap();
    assert!(
        size < 8 << 20,
        "the image is {size} bytes: only the binary belongs in it"
    );

    // "Host" is the test's host namespace: the engine runs there.
    let config = dir.join("image.toml");
    std::fs::write(
        &config,
        format!(
            "[[uplink]]\ninterface = \"eth0\"\n\n[[uplink.rule]]\nmode = \"docker\"\nnetwork = \"{NETWORK}\"\n"
        ),
    )
    .unwrap();
    let config_mount = format!("{}:/etc/ndp-responder.toml:ro", config.display());
    let checked = engine.docker(&[
        "run",
        "--rm",
        "--network",
        "host",
        "-v",
        &config_mount,
        &tag,
        "check-config",
        "-c",
        "/etc/ndp-responder.toml",
    ]);
    assert_eq!(
        checked.trim(),
        "/etc/ndp-responder.toml: OK, 1 uplink(s), 1 rule(s)"
    );

    let socket_mount = format!("{}:/var/run/docker.sock", dir.join("docker.sock").display());
    engine.docker(&[
        "run",
        "-d",
        "--name",
        "ndp-responder",
        "--network",
        "host",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "NET_RAW",
        "--cap-add",
        "NET_ADMIN",
        "--security-opt",
        "no-new-privileges",
        "--read-only",
        "--tmpfs",
        "/run",
        "-v",
        &config_mount,
        "-v",
        &socket_mount,
        &tag,
    ]);
    let status = || -> Option<Status> {
        let out = engine.try_docker(&[
            "exec",
            "ndp-responder",
            "/ndp-responder",
            "status",
            "--json",
        ]);
        serde_json::from_slice(&out.stdout).ok()
    };
    let logs = || {
        let out = engine.try_docker(&["logs", "ndp-responder"]);
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let following = |s: &Status| {
        s.uplinks.first().is_some_and(|u| {
            followed(u).is_some_and(|d| d.engine_connected && d.exists)
                && docker_answered(u).contains(ct)
        })
    };
    assert!(
        wait_until(Duration::from_secs(20), || status()
            .is_some_and(|s| following(&s))),
        "the daemon in the image does not follow {NETWORK}: {:#?}\n{}",
        status(),
        logs()
    );
    topo.router_forget(ct).unwrap();
    let answer = common::solicit(topo, ct);
    assert!(
        answer.as_deref().is_some_and(|l| l.contains(HOST_MAC)),
        "the daemon in the image did not answer for {ct}: {answer:?}\n{}",
        logs()
    );
    let answered = status().map_or(0, |s| s.uplinks[0].counters.answered);
    assert!(answered >= 1, "answered {answered}:\n{}", logs());
    engine.docker(&["rm", "-f", "ndp-responder"]);
}
