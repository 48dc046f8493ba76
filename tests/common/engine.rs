//! What the container-engine tests (tests/docker.rs, tests/podman.rs) share: the followed
//! network as the daemon's status shows it, polling it, the busybox image both import, and
//! stopping an engine and clearing its directory.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ndp_responder::status::{DockerNetwork, UplinkStatus};
use ndp_responder::tools::lab::{wait_until, Daemon};

/// The network the tests create and the daemon follows.
pub const NETWORK: &str = "ipv6exposed";
/// The image the tests import (busybox only).
pub const IMAGE: &str = "ndpt-busybox";

/// The engine command line (`docker` or `podman --remote`, after the program) that runs a
/// container `name` with address `addr` on the followed network, idle for 10 minutes.
pub fn run_args<'a>(name: &'a str, addr: &'a str) -> [&'a str; 11] {
    [
        "run",
        "-d",
        "--name",
        name,
        "--network",
        NETWORK,
        "--ip6",
        addr,
        IMAGE,
        "sleep",
        "600",
    ]
}

/// The entry of the followed network in an uplink's status.
pub fn followed(u: &UplinkStatus) -> Option<&DockerNetwork> {
    u.docker.iter().find(|d| d.name == NETWORK)
}

/// The addresses an uplink answers for because a container on a docker network has them.
pub fn docker_answered(u: &UplinkStatus) -> BTreeSet<String> {
    u.answering
        .iter()
        .filter(|a| a.why == "docker")
        .map(|a| a.address.to_string())
        .collect()
}

/// Poll the daemon's first uplink (up to `within`) until `cond` holds for it and its entry of
/// the followed network; that uplink's status. Panics saying `what` was awaited, with the last
/// status read and the log.
pub fn wait_docker(
    daemon: &Daemon,
    what: &str,
    within: Duration,
    mut cond: impl FnMut(&UplinkStatus, &DockerNetwork) -> bool,
) -> UplinkStatus {
    let mut last = None;
    let ok = wait_until(within, || {
        last = daemon.uplink();
        last.as_ref()
            .is_some_and(|u| followed(u).is_some_and(|d| cond(u, d)))
    });
    assert!(
        ok,
        "{what}: not within {within:?}; last status {last:#?}\n{}",
        daemon.log()
    );
    last.unwrap()
}

/// Import an image with busybox only, built from Debian's busybox-static (a root file system
/// in `dir`/rootfs, as a tarball on the standard input of `import`, the engine's
/// `import - IMAGE` command).
pub fn import_busybox(dir: &Path, mut import: Command) {
    let root = dir.join("rootfs");
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
    let out = import
        .args(["import", "-", IMAGE])
        .stdin(tar.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(tar.wait().unwrap().success(), "tar of the image failed");
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fail loudly (never skip) when a tool the engine's test needs is missing.
pub fn require(tools: &[&str], install: &str) {
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap()
            .status
            .success();
        assert!(found, "the test needs '{tool}': {install} (or run ./test)");
    }
}

/// Stop an engine's process: SIGTERM, then SIGKILL after 20 s; wait for it.
pub fn stop(child: Option<Child>) {
    if let Some(mut child) = child {
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

/// Remove an engine's directory, unmounting first what it may have left mounted there
/// (network namespaces, shm), deepest first.
pub fn remove_dir(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut ours: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| Path::new(m).starts_with(dir))
        .collect();
    ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in ours {
        let _ = Command::new("umount").args(["-l", mount]).status();
    }
    let _ = Command::new("rm").arg("-rf").arg(dir).status();
}
