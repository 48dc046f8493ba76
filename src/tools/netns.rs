//! Network namespaces and the commands run in them: the one set of helpers that the lab, the
//! end-to-end tests and the benchmark share.
//!
//! Owns: creating and deleting named namespaces (`ip netns`, or, inside a user namespace of
//! our own, a child that pins one to its file), running `ip`, `sysctl`, `nft` and any command
//! inside one, running a closure in a thread that joined one, and entering a user namespace so
//! that an unprivileged user can do all that.
//!
//! Must not: know any topology (that is [`crate::tools::lab`]) or touch a namespace it was not
//! named; nothing here changes the namespace of the calling process, except
//! [`enter_user_namespace`], which is called once, on purpose, by a single-threaded process.

use std::fs;
use std::io::{self, Write};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once this process has entered its own user namespace (unprivileged lab).
static IN_USER_NAMESPACE: AtomicBool = AtomicBool::new(false);

/// A namespace operation or a command in one failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error(
        "the lab needs root, or a kernel that lets users create user namespaces ({0}): \
         run it as root (e.g. with sudo)"
    )]
    NoUserNamespace(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Run a command (stdin closed); its output, or an error with its stderr if it failed.
pub fn run(cmd: &mut Command) -> Result<Output, Error> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(Error::Command {
            command: format!("{cmd:?}").replace('"', ""),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

/// `ip ARGS` (use `-n NS` in `args` to act inside a namespace).
pub fn ip(args: &[&str]) -> Result<Output, Error> {
    run(Command::new("ip").args(args))
}

/// A command that runs `program` inside namespace `ns` (`ip netns exec`, which execs it: the
/// child's pid is the program's), for callers that spawn and watch it themselves.
pub fn command(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program);
    cmd
}

/// Run `args` inside namespace `ns`; fails if the command fails.
pub fn exec(ns: &str, args: &[&str]) -> Result<Output, Error> {
    run(Command::new("ip").args(["netns", "exec", ns]).args(args))
}

/// Run `args` inside namespace `ns`; its exit status and output, whatever they are.
pub fn try_exec(ns: &str, args: &[&str]) -> Result<Output, Error> {
    Ok(Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::null())
        .output()?)
}

/// Write a sysctl inside namespace `ns` (`key` as a path below /proc/sys, e.g.
/// `net/ipv6/conf/all/forwarding`).
pub fn sysctl(ns: &str, key: &str, value: &str) -> Result<(), Error> {
    let script = format!("echo {value} > /proc/sys/{key}");
    exec(ns, &["sh", "-c", &script])?;
    Ok(())
}

/// Load an nftables ruleset into namespace `ns`.
pub fn nft(ns: &str, rules: &str) -> Result<(), Error> {
    let mut child = command(ns, "nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(rules.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(Error::Command {
            command: format!("nft -f - in {ns}:\n{rules}"),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Create namespace `name` with its loopback up. Inside a user namespace of our own
/// (`ip netns add` would switch back to the initial namespace, which is not allowed there) a
/// child pins a new namespace to /run/netns/NAME instead.
pub fn add(name: &str) -> Result<(), Error> {
    if in_user_namespace() {
        let path = format!("/run/netns/{name}");
        fs::File::create(&path)?;
        if let Err(e) = run(Command::new("unshare")
            .arg(format!("--net={path}"))
            .arg("true"))
        {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
    } else {
        ip(&["netns", "add", name])?;
    }
    ip(&["-n", name, "link", "set", "lo", "up"])?;
    Ok(())
}

/// Delete namespace `name` (and with it every interface in it).
pub fn delete(name: &str) -> Result<(), Error> {
    ip(&["netns", "del", name])?;
    Ok(())
}

/// The names of the namespaces in /run/netns.
pub fn list() -> Result<Vec<String>, Error> {
    let out = ip(&["netns", "list"])?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// Run `f` in a thread that joined namespace `ns` (the calling thread stays where it is);
/// what `f` returns. Sockets `f` opens belong to `ns`.
pub fn run_in<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    use std::os::fd::AsRawFd;
    let file = fs::File::open(format!("/run/netns/{ns}"))?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                // SAFETY: setns on a namespace file descriptor; affects this thread only.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(f())
            })
            .join()
            .map_err(|_| io::Error::other(format!("the thread in namespace {ns} panicked")))?
    })
}

/// True when `tool` is an executable on PATH.
pub fn have_tool(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

/// True once this process has entered a user namespace of its own ([`enter_user_namespace`]).
pub fn in_user_namespace() -> bool {
    IN_USER_NAMESPACE.load(Ordering::Relaxed)
}

/// True when this process may create network namespaces: it is root, or it has entered a
/// user namespace of its own.
pub fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    euid == 0 || in_user_namespace()
}

/// Become root in a new user namespace, with a mount namespace whose /run is private and a
/// network namespace of our own, so that an unprivileged user can create namespaces.
/// Everything created afterwards disappears with this process. Must be called while the
/// process has a single thread.
pub fn enter_user_namespace() -> Result<(), Error> {
    let fail =
        |what: &str| Error::NoUserNamespace(format!("{what}: {}", io::Error::last_os_error()));
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // SAFETY: unshare only changes this (single-threaded) process's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWNET) } != 0 {
        return Err(fail("unshare"));
    }
    let write = |path: &str, text: String| {
        fs::write(path, text).map_err(|e| Error::NoUserNamespace(format!("writing {path}: {e}")))
    };
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL in a constant");
    let (root, run_dir, tmpfs) = (c("/"), c("/run"), c("tmpfs"));
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
            run_dir.as_ptr(),
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
