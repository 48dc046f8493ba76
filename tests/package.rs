//! The Debian package, built the way a release is (`packaging/build-deb`: static binary,
//! generated man page and completions, cargo-deb), then taken apart with dpkg-deb: exactly the
//! files it should hold, its control fields and maintainer scripts (the service is never
//! enabled or started on install), the binary (static, runs, accepts the shipped
//! configuration and every example commented out in it), documentation that matches the CLI,
//! and the unit (`systemd-analyze verify` offline, its hardening and exposure score).
//!
//! Needs cargo-deb (`cargo install cargo-deb --locked`), dpkg-deb, gzip and systemd-analyze;
//! without them it fails and says so (`./test` installs them). About 3 minutes from a clean
//! `target/package-test` (a static release build; under `$CARGO_TARGET_DIR` when set), 15 s
//! once that is built.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use clap::CommandFactory;
use ndp_responder::config::args::Cli;

/// `systemd-analyze security --offline=true` of the shipped unit must not get worse than this
/// (lower is better; what remains is what the job needs, see the unit's comments). 1.8 before
/// the fast path, whose bpf(2) and CAP_BPF cost 0.1.
const MAX_EXPOSURE: f64 = 1.9;

/// The files of the package, and nothing else (only the daemon: no ndp-bench).
const FILES: [&str; 9] = [
    "./etc/ndp-responder.toml",
    "./usr/lib/systemd/system/ndp-responder.service",
    "./usr/sbin/ndp-responder",
    "./usr/share/bash-completion/completions/ndp-responder",
    "./usr/share/doc/ndp-responder/README.md",
    "./usr/share/doc/ndp-responder/copyright",
    "./usr/share/fish/vendor_completions.d/ndp-responder.fish",
    "./usr/share/man/man8/ndp-responder.8.gz",
    "./usr/share/zsh/vendor-completions/_ndp-responder",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Run `cmd`, which must succeed; its standard output.
fn run(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
}

/// Everything found wrong, reported together at the end.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }
}

/// A directory removed when the test ends, however it ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What makes an ELF file depend on others: its PT_INTERP (the dynamic loader) and the
/// DT_NEEDED entries of its dynamic section (shared libraries). A static-pie binary has a
/// dynamic section (for its own relocations) but neither of these.
struct Linkage {
    interpreter: bool,
    needed: usize,
}

fn linkage(path: &Path) -> Linkage {
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    const DT_NEEDED: u64 = 1;
    let elf = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&elf[..4], b"\x7fELF", "{} is not ELF", path.display());
    assert_eq!(elf[4], 2, "{}: 64-bit ELF expected", path.display());
    assert_eq!(elf[5], 1, "{}: little-endian ELF expected", path.display());
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    let phoff = u64_at(0x20) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    let mut found = Linkage {
        interpreter: false,
        needed: 0,
    };
    for header in (0..phnum).map(|i| phoff + i * phentsize) {
        match u32_at(header) {
            PT_INTERP => found.interpreter = true,
            PT_DYNAMIC => {
                let (offset, size) = (u64_at(header + 8) as usize, u64_at(header + 32) as usize);
                for entry in (offset..offset + size).step_by(16) {
                    match u64_at(entry) {
                        0 => break,
                        DT_NEEDED => found.needed += 1,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    found
}

/// The configuration with every commented-out setting and rule switched on.
fn uncomment_examples(config: &str) -> String {
    config
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if rest.starts_with("[[")
                    || rest.split_once(" = ").is_some_and(|(key, _)| {
                        key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    }) =>
            {
                rest
            }
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every subcommand, nested ones included, with its full name ("ndp-responder lab down").
fn subcommands(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("{prefix} {}", sub.get_name());
        out.push(name.clone());
        subcommands(sub, &name, out);
    }
}

#[test]
fn the_debian_package_holds_a_static_binary_unit_config_man_page_and_completions() {
    for (tool, how) in [
        ("cargo-deb", "cargo install cargo-deb --locked"),
        ("dpkg-deb", "apt-get install dpkg"),
        ("gzip", "apt-get install gzip"),
        ("systemd-analyze", "apt-get install systemd"),
    ] {
        assert!(
            on_path(tool),
            "the package test needs {tool}, which is not installed: {how} (or run ./test)"
        );
    }

    // Its own target directory (under $CARGO_TARGET_DIR when set): the outer cargo holds the
    // lock of the test's. tests/docker.rs builds the image in the same one, so the static
    // binary is built once.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| root().join(t))
        .unwrap_or_else(|| root().join("target"))
        .join("package-test");
    let started = Instant::now();
    let out = run(Command::new(root().join("packaging/build-deb"))
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("CARGO_ENCODED_RUSTFLAGS"));
    eprintln!("packaging/build-deb: {:.1?}", started.elapsed());
    let deb = PathBuf::from(out.lines().last().unwrap_or_default().trim());
    assert!(
        deb.extension().is_some_and(|e| e == "deb") && deb.is_file(),
        "build-deb printed {out:?}"
    );
    let mut problems = Problems::default();

    // The files, their modes and owners.
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let mut files = BTreeSet::new();
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(mode), Some(owner), Some(path)) = (fields.first(), fields.get(1), fields.last())
        else {
            continue;
        };
        problems.check(*owner == "0/0" || *owner == "root/root", || {
            format!("{path} is owned by {owner}, not root")
        });
        if !mode.starts_with('-') {
            continue;
        }
        files.insert(path.to_string());
        let expected = if *path == "./usr/sbin/ndp-responder" {
            "-rwxr-xr-x"
        } else {
            "-rw-r--r--"
        };
        problems.check(*mode == expected, || {
            format!("{path} has mode {mode}, expected {expected}")
        });
    }
    let expected: BTreeSet<String> = FILES.iter().map(|f| f.to_string()).collect();
    problems.check(files == expected, || {
        format!(
            "the package's files differ: missing {:?}, unexpected {:?}",
            expected.difference(&files).collect::<Vec<_>>(),
            files.difference(&expected).collect::<Vec<_>>()
        )
    });

    // Control fields.
    let field = |name: &str| {
        run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name))
            .trim_end()
            .to_string()
    };
    let arch = run(Command::new("dpkg").arg("--print-architecture"));
    for (name, value) in [
        ("Package", "ndp-responder".to_string()),
        ("Version", format!("{}-1", env!("CARGO_PKG_VERSION"))),
        ("Architecture", arch.trim().to_string()),
        ("Section", "net".into()),
        ("Priority", "optional".into()),
    ] {
        let got = field(name);
        problems.check(got == value, || {
            format!("{name}: {got:?}, expected {value:?}")
        });
    }
    let maintainer = field("Maintainer");
    problems.check(
        maintainer.contains('<') && maintainer.ends_with('>'),
        || format!("Maintainer: {maintainer:?} is not 'Name <address>'"),
    );
    let depends = field("Depends");
    problems.check(!depends.contains("libc"), || {
        format!("Depends: {depends:?}: a static binary needs no libc")
    });
    let size: u64 = field("Installed-Size").parse().unwrap_or(u64::MAX);
    problems.check(size < 8 * 1024, || {
        format!("Installed-Size: {size} KiB: more than the binary and its documentation?")
    });
    let description = field("Description");
    let synopsis = description.lines().next().unwrap_or_default();
    problems.check(synopsis == env!("CARGO_PKG_DESCRIPTION"), || {
        format!(
            "the Description's synopsis is {synopsis:?}: cargo-deb wraps Cargo.toml's description \
             at 79 characters, so the rest becomes the first line of the long description. \
             Shorten the description in Cargo.toml to at most 79 characters ({} now)",
            env!("CARGO_PKG_DESCRIPTION").len()
        )
    });
    problems.check(description.contains("neither enabled nor started"), || {
        format!("the Description does not say the service is not started:\n{description}")
    });

    // Control files: the conffile, and maintainer scripts that never enable or start.
    let scratch = TempDir(target.join(format!("inspect-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&scratch.0);
    std::fs::create_dir_all(&scratch.0).unwrap();
    let control = scratch.0.join("DEBIAN");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let read = |path: &Path| {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let conffiles = read(&control.join("conffiles"));
    problems.check(conffiles == "/etc/ndp-responder.toml\n", || {
        format!("conffiles: {conffiles:?}")
    });
    let postinst = read(&control.join("postinst"));
    problems.check(
        postinst.contains("daemon-reload")
            && postinst.contains("deb-systemd-helper debian-installed")
            && !postinst.contains("deb-systemd-invoke start")
            && !postinst.contains("systemctl start")
            && !postinst.contains("--now"),
        || format!("postinst must reload systemd and neither enable nor start:\n{postinst}"),
    );
    let prerm = read(&control.join("prerm"));
    problems.check(prerm.contains("deb-systemd-invoke stop"), || {
        format!("prerm does not stop the service on removal:\n{prerm}")
    });
    let postrm = read(&control.join("postrm"));
    problems.check(postrm.contains("deb-systemd-helper purge"), || {
        format!("postrm does not forget the unit on purge:\n{postrm}")
    });

    // Unpacked: the binary is static, runs, and accepts the shipped configuration.
    let unpacked = scratch.0.join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked));
    let bin = unpacked.join("usr/sbin/ndp-responder");
    let linked = linkage(&bin);
    problems.check(!linked.interpreter && linked.needed == 0, || {
        format!(
            "the packaged binary is not static: interpreter {}, {} shared libraries needed",
            linked.interpreter, linked.needed
        )
    });
    let version = run(Command::new(&bin).arg("--version"));
    problems.check(
        version.trim() == format!("ndp-responder {}", env!("CARGO_PKG_VERSION")),
        || format!("--version printed {version:?}"),
    );
    let config = unpacked.join("etc/ndp-responder.toml");
    problems.check(
        read(&config) == read(&root().join("packaging/ndp-responder.toml")),
        || "the packaged configuration is not packaging/ndp-responder.toml".into(),
    );
    let checked = output(Command::new(&bin).args(["check-config", "-c"]).arg(&config));
    let text = String::from_utf8_lossy(&checked.stdout);
    problems.check(
        checked.status.success() && text.contains(": OK, 1 uplink(s), 1 rule(s)"),
        || {
            format!(
                "check-config of the shipped configuration: {}\n{text}{}",
                checked.status,
                String::from_utf8_lossy(&checked.stderr)
            )
        },
    );
    // Every setting and rule it shows commented out is valid too, once switched on (four
    // rules and the commented slaac rule).
    let all = scratch.0.join("all-examples.toml");
    std::fs::write(&all, uncomment_examples(&read(&config))).unwrap();
    let checked = output(Command::new(&bin).args(["check-config", "-c"]).arg(&all));
    let text = String::from_utf8_lossy(&checked.stdout);
    problems.check(
        checked.status.success() && text.contains(": OK, 1 uplink(s), 5 rule(s)"),
        || {
            format!(
                "check-config of the configuration with its examples switched on: {}\n{text}{}",
                checked.status,
                String::from_utf8_lossy(&checked.stderr)
            )
        },
    );

    // The documentation matches the CLI: every long flag and every subcommand.
    let man_gz = unpacked.join("usr/share/man/man8/ndp-responder.8.gz");
    let man = run(Command::new("gzip").arg("-dc").arg(&man_gz));
    let bash = read(&unpacked.join("usr/share/bash-completion/completions/ndp-responder"));
    let zsh = read(&unpacked.join("usr/share/zsh/vendor-completions/_ndp-responder"));
    let fish = read(&unpacked.join("usr/share/fish/vendor_completions.d/ndp-responder.fish"));
    problems.check(
        man.lines().any(|l| l.starts_with(".TH ndp-responder 8 ")),
        || "the man page has no .TH ndp-responder 8".into(),
    );
    problems.check(zsh.starts_with("#compdef ndp-responder"), || {
        "the zsh completion does not start with #compdef ndp-responder".into()
    });
    problems.check(fish.contains("complete -c ndp-responder"), || {
        "the fish completion does not complete ndp-responder".into()
    });
    let cli = Cli::command();
    for arg in cli.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        problems.check(
            man.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
            || format!("the man page lacks --{long}"),
        );
        problems.check(bash.contains(&format!("--{long}")), || {
            format!("the bash completion lacks --{long}")
        });
        problems.check(fish.contains(&format!("-l {long}")), || {
            format!("the fish completion lacks --{long}")
        });
    }
    let mut subs = Vec::new();
    subcommands(&cli, "ndp-responder", &mut subs);
    for sub in &subs {
        let heading = format!(".SH \"{}\"", sub.to_uppercase().replace('-', "\\-"));
        problems.check(man.contains(&heading), || {
            format!("the man page has no section {heading}")
        });
        let name = sub.rsplit(' ').next().unwrap();
        problems.check(
            bash.contains(name) && zsh.contains(name) && fish.contains(name),
            || format!("a completion lacks the subcommand {name}"),
        );
    }
    for section in [
        ".SH FILES",
        ".SH SIGNALS",
        ".SH CONFIGURATION",
        ".SH ENVIRONMENT",
    ] {
        problems.check(man.contains(section), || {
            format!("the man page has no {section}")
        });
    }

    // The unit: what the daemon relies on, what would break it, systemd's own checks.
    let unit_path = unpacked.join("usr/lib/systemd/system/ndp-responder.service");
    let unit = read(&unit_path);
    problems.check(
        unit == read(&root().join("packaging/ndp-responder.service")),
        || "the packaged unit is not packaging/ndp-responder.service".into(),
    );
    for line in [
        "Type=notify",
        "ExecStart=/usr/sbin/ndp-responder -c /etc/ndp-responder.toml",
        "ExecReload=/usr/sbin/ndp-responder check-config -c /etc/ndp-responder.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WatchdogSec=30s",
        "Restart=on-failure",
        "DynamicUser=yes",
        "RuntimeDirectory=ndp-responder",
        "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN CAP_BPF CAP_PERFMON",
        "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN CAP_BPF CAP_PERFMON",
        "SystemCallFilter=bpf",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "RestrictAddressFamilies=AF_PACKET AF_NETLINK AF_UNIX AF_INET6",
        "SystemCallFilter=@system-service",
        "SystemCallArchitectures=native",
        "MemoryMax=64M",
        "WantedBy=multi-user.target",
    ] {
        problems.check(unit.lines().any(|l| l == line), || {
            format!("the unit lacks {line}")
        });
    }
    // A refused file makes `systemctl reload` fail: the check runs before the signal.
    let reload_lines: Vec<&str> = unit
        .lines()
        .filter(|l| l.starts_with("ExecReload="))
        .collect();
    problems.check(
        reload_lines
            .first()
            .is_some_and(|l| l.contains("check-config")),
        || format!("ExecReload must run check-config before the signal: {reload_lines:?}"),
    );
    // The host's network namespace and its capabilities there are the point.
    for key in [
        "PrivateNetwork=",
        "PrivateUsers=",
        "IPAddressDeny=",
        "User=",
        "Group=",
    ] {
        problems.check(!unit.lines().any(|l| l.starts_with(key)), || {
            format!("the unit must not set {key}")
        });
    }
    // systemd-analyze verify works offline (no running systemd needed); it checks that the
    // commands exist and that `man ndp-responder(8)` resolves. So: a copy of the unit that
    // runs the unpacked binary, and the unpacked man pages on MANPATH. Warnings (unknown keys,
    // bad values) go to stderr with exit status 0, so stderr must be empty.
    let verify_dir = scratch.0.join("verify");
    std::fs::create_dir_all(&verify_dir).unwrap();
    let verify_unit = verify_dir.join("ndp-responder.service");
    std::fs::write(
        &verify_unit,
        unit.replace("/usr/sbin/ndp-responder", &bin.display().to_string()),
    )
    .unwrap();
    let verified = output(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(&verify_unit)
            .env("MANPATH", unpacked.join("usr/share/man")),
    );
    let complaints = String::from_utf8_lossy(&verified.stderr);
    problems.check(
        verified.status.success() && complaints.trim().is_empty(),
        || format!("systemd-analyze verify: {}\n{complaints}", verified.status),
    );
    let security = output(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&unit_path),
    );
    let text = String::from_utf8_lossy(&security.stdout);
    let score: Option<f64> = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for ndp-responder.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    match score {
        Some(score) => problems.check(score <= MAX_EXPOSURE, || {
            format!("exposure {score}, more than {MAX_EXPOSURE}:\n{text}")
        }),
        None => problems.0.push(format!(
            "no exposure level from systemd-analyze security:\n{text}{}",
            String::from_utf8_lossy(&security.stderr)
        )),
    }

    eprintln!(
        "{} ({} bytes), checked in {:.1?}",
        deb.display(),
        std::fs::metadata(&deb).map(|m| m.len()).unwrap_or(0),
        started.elapsed()
    );
    assert!(
        problems.0.is_empty(),
        "{} problem(s) with the package:\n- {}",
        problems.0.len(),
        problems.0.join("\n- ")
    );
}
