//! `ndp-responder import-ndppd` on real ndppd configurations, through the binary: each
//! `tests/fixtures/ndppd/NAME.conf` has either `NAME.toml`, the exact output (which
//! `check-config` must accept), or `NAME.err`, the exact refusal (exit status 1, nothing on
//! standard output, the ndppd line named). `-` reads the file from standard input.
//!
//! Needs nothing but the binary: no root, no network.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const EXE: &str = env!("CARGO_BIN_EXE_ndp-responder");
const DIR: &str = "tests/fixtures/ndppd";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `import-ndppd ARG`, run from the package's root (so the paths in messages are relative).
fn import(arg: &str, stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(EXE)
        .args(["import-ndppd", arg])
        .current_dir(root())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ndp-responder");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The fixtures' names (without `.conf`), sorted.
fn fixtures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join(DIR))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".conf").map(String::from)
        })
        .collect();
    names.sort();
    names
}

/// `check-config -c PATH` accepts the file.
fn check_config(toml: &str, name: &str) {
    let dir = std::env::temp_dir().join(format!("ndppd-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml).unwrap();
    let out = Command::new(EXE)
        .args(["check-config", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).ok();
    assert!(
        out.status.success(),
        "{name}: check-config refuses the import:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn every_fixture_is_imported_or_refused_exactly_as_recorded() {
    let names = fixtures();
    let (mut imported, mut refused) = (0, 0);
    let mut failures = Vec::new();
    for name in &names {
        let conf = format!("{DIR}/{name}.conf");
        let golden = root().join(DIR).join(format!("{name}.toml"));
        let error = root().join(DIR).join(format!("{name}.err"));
        let out = import(&conf, None);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        if golden.exists() {
            imported += 1;
            let want = std::fs::read_to_string(&golden).unwrap();
            if !out.status.success() || stdout != want {
                failures.push(format!(
                    "{name}: expected exit 0 and {}, got {:?}:\n{stdout}{stderr}",
                    golden.display(),
                    out.status.code()
                ));
                continue;
            }
            check_config(&stdout, name);
        } else if error.exists() {
            refused += 1;
            let want = std::fs::read_to_string(&error).unwrap();
            if out.status.code() != Some(1) || !stdout.is_empty() || stderr != want {
                failures.push(format!(
                    "{name}: expected exit 1, no output and\n{want}got {:?}:\n{stdout}{stderr}",
                    out.status.code()
                ));
            }
        } else {
            failures.push(format!("{name}: neither {name}.toml nor {name}.err"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(imported >= 15, "only {imported} imported fixtures");
    assert!(refused >= 10, "only {refused} refused fixtures");
}

#[test]
fn a_dash_reads_standard_input() {
    for name in ["field-report", "two-proxies"] {
        let conf = std::fs::read(root().join(DIR).join(format!("{name}.conf"))).unwrap();
        let out = import("-", Some(&conf));
        let want = std::fs::read_to_string(root().join(DIR).join(format!("{name}.toml")))
            .unwrap()
            .replacen(&format!("{DIR}/{name}.conf"), "stdin", 1);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), want);
    }
    let conf = std::fs::read(root().join(DIR).join("refuse-static-and-auto.conf")).unwrap();
    let out = import("-", Some(&conf));
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).starts_with("ndp-responder: stdin:4: rule 2001:db8:1::/64 has both"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_missing_file_is_an_error_not_an_empty_import() {
    let out = import("tests/fixtures/ndppd/no-such.conf", None);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("cannot read tests/fixtures/ndppd/no-such.conf"));
}
