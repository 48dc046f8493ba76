//! The Debian package, built the way a release is (`packaging/build-deb`: static binary,
//! generated man page and completions, cargo-deb), then taken apart: its files, its control
//! fields, the binary (static, runs, validates the shipped configuration) and the unit's
//! hardening.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
}

/// Does the ELF file have a PT_INTERP program header (a dynamic loader)?
fn has_interpreter(path: &Path) -> bool {
    let elf = std::fs::read(path).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF", "{} is not ELF", path.display());
    assert_eq!(elf[4], 2, "64-bit ELF expected");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3 // PT_INTERP
    })
}

#[test]
fn the_debian_package_holds_a_static_binary_unit_config_man_page_and_completions() {
    for (tool, how) in [
        ("cargo-deb", "cargo install cargo-deb --locked"),
        ("dpkg-deb", "apt-get install dpkg"),
        ("systemd-analyze", "apt-get install systemd"),
    ] {
        assert!(
            have(tool),
            "the package test needs {tool}: {how} (or run .ci/run)"
        );
    }
    // Its own target directory: the outer cargo holds the lock of the test's.
    let target = root().join("target/package-test");
    let out =
        run(Command::new(root().join("packaging/build-deb")).env("CARGO_TARGET_DIR", &target));
    let deb = PathBuf::from(out.lines().last().unwrap_or_default().trim());
    assert!(
        deb.extension().is_some_and(|e| e == "deb") && deb.is_file(),
        "build-deb printed {out:?}"
    );

    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for path in [
        "./usr/sbin/ndp-responder",
        "./usr/lib/systemd/system/ndp-responder.service",
        "./etc/ndp-responder.toml",
        "./usr/share/man/man8/ndp-responder.8.gz",
        "./usr/share/bash-completion/completions/ndp-responder",
        "./usr/share/zsh/vendor-completions/_ndp-responder",
        "./usr/share/fish/vendor_completions.d/ndp-responder.fish",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} is not in the package:\n{listing}"
        );
    }
    assert!(
        !listing.contains("ndp-bench"),
        "only the daemon is shipped:\n{listing}"
    );
    let field = |name: &str| run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name));
    assert_eq!(field("Package").trim(), "ndp-responder");
    assert_eq!(field("Section").trim(), "net");
    assert_eq!(field("Architecture").trim(), "amd64");
    assert_eq!(
        field("Version").trim(),
        format!("{}-1", env!("CARGO_PKG_VERSION"))
    );
    let info = run(Command::new("dpkg-deb").arg("-I").arg(&deb));
    assert!(info.contains("conffiles"), "{info}");

    // Unpacked: the binary is static, runs, and accepts the shipped configuration.
    let unpacked = target.join("unpacked");
    let _ = std::fs::remove_dir_all(&unpacked);
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked));
    let bin = unpacked.join("usr/sbin/ndp-responder");
    assert!(!has_interpreter(&bin), "the packaged binary must be static");
    let version = run(Command::new(&bin).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("ndp-responder {}", env!("CARGO_PKG_VERSION"))
    );
    let checked = run(Command::new(&bin)
        .args(["check-config", "-c"])
        .arg(unpacked.join("etc/ndp-responder.toml")));
    assert!(checked.contains(": OK, 1 uplink(s)"), "{checked}");
    let man = std::fs::read(unpacked.join("usr/share/man/man8/ndp-responder.8.gz")).unwrap();
    assert_eq!(&man[..2], b"\x1f\x8b", "the man page is gzipped");
    let bash = std::fs::read_to_string(
        unpacked.join("usr/share/bash-completion/completions/ndp-responder"),
    )
    .unwrap();
    assert!(bash.contains("--control-socket") && bash.contains("check-config"));

    // The unit: what the daemon relies on, and its exposure as systemd rates it.
    let unit =
        std::fs::read_to_string(unpacked.join("usr/lib/systemd/system/ndp-responder.service"))
            .unwrap();
    for line in [
        "Type=notify",
        "ExecStart=/usr/sbin/ndp-responder -c /etc/ndp-responder.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WatchdogSec=",
        "DynamicUser=yes",
        "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN",
        "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN",
        "ProtectSystem=strict",
        "RestrictAddressFamilies=AF_PACKET AF_NETLINK AF_UNIX AF_INET6",
        "SystemCallFilter=@system-service",
        "MemoryMax=",
        "RuntimeDirectory=ndp-responder",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(line)),
            "the unit lacks {line}"
        );
    }
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(root().join("packaging/ndp-responder.service"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&security.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for ndp-responder.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(score <= 2.5, "exposure {score} (README says 2.0):\n{text}");
}
