//! Docker networks against a real Docker engine that the test starts itself, in the host's
//! network namespace, with its own data root and socket; the image is imported from Debian's
//! busybox-static, nothing is pulled. Containers connected to the network become reachable from
//! the router through the anti-spoof filter and are announced; disconnecting makes them
//! unreachable; an engine restart is survived and a container connected meanwhile is picked up.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{exe, host_answers, topology};
use ndp_responder::tools::lab::{
    container_addr, wait_until, Topology, BRIDGE_ADDR, CONTAINER_PREFIX, GATEWAY, INTERNET_ADDR,
};

const IMAGE: &str = "ndpt-busybox";
const NETWORK: &str = "ipv6exposed";

/// A dockerd of the test's own, in the host namespace. Dropping it removes its containers,
/// stops it and deletes its directory.
struct Engine {
    dir: PathBuf,
    ns: String,
    child: Option<Child>,
}

impl Engine {
    fn start(topo: &Topology, dir: &Path) -> Engine {
        for tool in ["dockerd", "docker", "nsenter", "busybox"] {
            assert!(
                Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap().status.success(),
                "the Docker tests need '{tool}': apt-get install docker.io busybox-static (or run .ci/run)"
            );
        }
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

    /// An image with busybox only, built from Debian's busybox-static.
    fn import_busybox(&self) {
        let root = self.dir.join("rootfs");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for applet in ["sh", "sleep", "ping"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Command::new("docker")
            .arg("-H")
            .arg(self.host())
            .args(["import", "-", IMAGE])
            .stdin(tar.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(tar.wait().unwrap().success(), "tar of the image failed");
        assert!(
            out.status.success(),
            "docker import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stop dockerd (SIGTERM, then SIGKILL after 20 s) and wait for it.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            if !wait_until(Duration::from_secs(20), || {
                child.try_wait().unwrap().is_some()
            }) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
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
        let _ = Command::new("rm").arg("-rf").arg(&self.dir).status();
    }
}

#[test]
fn docker_network_containers_are_answered_followed_announced_and_survive_an_engine_restart() {
    let topo = topology(0);
    // Docker brings its own bridge for the container prefix.
    topo.delete_bridge().unwrap();
    let dir = std::env::temp_dir().join(format!("ndpt-docker-{}", std::process::id()));
    let mut engine = Engine::start(&topo, &dir);
    engine.import_busybox();
    let docker_host = engine.host();
    let env = [("DOCKER_HOST", docker_host.as_str())];

    // The network does not exist yet: one clear warning, then it is picked up when created.
    let sock = dir.join("control.sock");
    let daemon = topo
        .start_daemon_env(
            exe(),
            &["-N", NETWORK, "--control-socket", sock.to_str().unwrap()],
            &env,
        )
        .unwrap();
    assert!(
        wait_for_log(
            &daemon,
            &["docker: connected to the engine"],
            Duration::from_secs(10)
        ),
        "{}",
        daemon.log()
    );
    assert!(
        wait_for_log(
            &daemon,
            &["network ipv6exposed does not exist"],
            Duration::from_secs(5)
        ),
        "{}",
        daemon.log()
    );
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
    assert!(
        wait_for_log(
            &daemon,
            &["network ipv6exposed exists now"],
            Duration::from_secs(5)
        ),
        "{}",
        daemon.log()
    );
    assert_eq!(
        daemon.log_lines(&["does not exist"]).len(),
        1,
        "warned more than once"
    );

    // A container connects: announced to the router, then reachable through the filter.
    let ct = container_addr(1);
    let capture = common::start_capture(
        &topo.router(),
        "r0",
        2,
        &format!(
            "icmp6 and ((ip6[40] == 136 and ip6 dst ff02::1) or (ip6[40] == 135 and ip6 src {ct}))"
        ),
    );
    engine.docker(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        NETWORK,
        "--ip6",
        &ct,
        IMAGE,
        "sleep",
        "600",
    ]);
    assert!(
        wait_for_log(
            &daemon,
            &["docker:", &ct, "(c1) connected to ipv6exposed"],
            Duration::from_secs(5)
        ),
        "{}",
        daemon.log()
    );
    let seen = common::capture_output(capture, Duration::from_secs(5));
    assert!(
        seen.contains(&format!("neighbor advertisement, tgt is {ct}")),
        "no unsolicited NA:\n{seen}\n{}",
        daemon.log()
    );
    assert!(
        seen.contains(&format!("{ct} > ")) && seen.contains(&format!("who has {GATEWAY}")),
        "no NS from the address:\n{seen}\n{}",
        daemon.log()
    );
    topo.router_forget(&ct).unwrap();
    assert!(
        topo.ping_from_router(INTERNET_ADDR, &ct, 3).unwrap(),
        "{}",
        daemon.log()
    );

    // The rule has no prefix, yet the kernel filter stays narrow (the network's addresses):
    // solicitations for other targets never reach the daemon. Twenty of them, then one for
    // the container, whose answer shows that everything before it was handled.
    let before = common::counters(&sock);
    let mut frames: Vec<Vec<u8>> = (0..20)
        .map(|i| common::router_ns(&format!("2001:db8:1::e:{i:x}")))
        .collect();
    frames.push(common::router_ns(&ct));
    common::send_frames_in(&topo.router(), "r0", &frames);
    assert!(
        wait_until(Duration::from_secs(5), || common::counters(&sock).answered
            > before.answered),
        "{:?}",
        common::counters(&sock)
    );
    let after = common::counters(&sock);
    let ignored = |c: &ndp_responder::status::Counters| c.ignored.values().sum::<u64>();
    assert_eq!(
        ignored(&after),
        ignored(&before),
        "solicitations for other targets reached the daemon: {after:?}"
    );

    // Disconnect: no longer answered, at once.
    engine.docker(&["network", "disconnect", NETWORK, "c1"]);
    assert!(
        wait_for_log(
            &daemon,
            &["docker:", &ct, "left ipv6exposed"],
            Duration::from_secs(5)
        ),
        "{}",
        daemon.log()
    );
    // The watcher logs the change, then hands it to the responder's table: allow that hand-over.
    topo.router_forget(&ct).unwrap();
    assert!(
        wait_until(Duration::from_secs(3), || !host_answers(&topo, &ct)),
        "a disconnected container is still answered"
    );

    // Reconnect, then restart the engine: what is known is answered meanwhile, and a
    // container connected right after the engine is back is picked up by the resync.
    engine.docker(&["network", "connect", "--ip6", &ct, NETWORK, "c1"]);
    // The second "connected" line: the first is from before the disconnect.
    assert!(
        wait_until(Duration::from_secs(5), || {
            daemon.log_lines(&["docker:", &ct, "(c1) connected"]).len() >= 2
        }),
        "the reconnect was not seen:\n{}",
        daemon.log()
    );
    engine.stop();
    assert!(
        wait_for_log(
            &daemon,
            &["docker: the engine", "is not reachable"],
            Duration::from_secs(10)
        ),
        "{}",
        daemon.log()
    );
    topo.router_forget(&ct).unwrap();
    assert!(
        host_answers(&topo, &ct),
        "known addresses must be answered while the engine is down"
    );
    engine.launch();
    let ct2 = container_addr(2);
    engine.docker(&[
        "run",
        "-d",
        "--name",
        "c2",
        "--network",
        NETWORK,
        "--ip6",
        &ct2,
        IMAGE,
        "sleep",
        "600",
    ]);
    assert!(
        wait_for_log(
            &daemon,
            &["docker:", &ct2, "(c2) connected"],
            Duration::from_secs(40)
        ),
        "{}",
        daemon.log()
    );
    assert!(
        topo.ping_from_router(INTERNET_ADDR, &ct2, 3).unwrap(),
        "{}",
        daemon.log()
    );
    assert_eq!(
        daemon.log_lines(&["is not reachable"]).len(),
        1,
        "one warning per outage:\n{}",
        daemon.log()
    );

    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);

    // The shipped image: packaging/build-image builds it FROM scratch (no registry) around
    // the static binary; it runs. (Its own target directory, shared with the package test:
    // this test's cargo holds the lock of the default one.)
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = Command::new(root.join("packaging/build-image"))
        .env("DOCKER_HOST", engine.host())
        .env("CARGO_TARGET_DIR", root.join("target/package-test"))
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
}

/// Poll the daemon's log for a line with every one of `needles` (still to be replaced by
/// status: see the report of the tests-status branch).
fn wait_for_log(
    daemon: &ndp_responder::tools::lab::Daemon,
    needles: &[&str],
    within: Duration,
) -> bool {
    wait_until(within, || !daemon.log_lines(needles).is_empty())
}
