//! The one-shot commands a user runs next to the daemon: `status`, `check-config`,
//! `import-ndppd`, `completions` and `man`, each printing its result and returning the exit
//! status.
//!
//! Owns: what each prints and its exit status.
//!
//! Must not: run the daemon (that is [`super::run`]) or parse the command line.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::docs;
use crate::config::{self, ndppd};
use crate::service::control;
use crate::uplink;

/// Which control socket `status` asks: `--socket`, else the file's (`-c`), else the default.
fn status_socket(socket: Option<&Path>, config: Option<&Path>) -> Result<PathBuf, String> {
    match (socket, config) {
        (Some(socket), _) => Ok(socket.to_path_buf()),
        (None, None) => Ok(config::DEFAULT_CONTROL_SOCKET.into()),
        (None, Some(file)) => match config::control_socket_of(file) {
            Ok(Some(path)) => Ok(path),
            Ok(None) => Err(format!(
                "{}: control_socket = \"none\": a daemon started with it has no control socket to ask",
                file.display()
            )),
            Err(e) => Err(e.to_string()),
        },
    }
}

/// `status [--json] [--socket PATH | -c FILE]`: ask the daemon and print what it says.
pub fn status(socket: Option<&Path>, config: Option<&Path>, json: bool) -> ExitCode {
    let socket = match status_socket(socket, config) {
        Ok(socket) => socket,
        Err(e) => {
            eprintln!("ndp-responder status: {e}");
            return ExitCode::from(2);
        }
    };
    match control::query(&socket) {
        Ok(status) => {
            if json {
                match serde_json::to_string_pretty(&status) {
                    Ok(json) => println!("{json}"),
                    Err(e) => {
                        eprintln!("ndp-responder status: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                print!("{}", status.render());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ndp-responder status: {e}");
            ExitCode::from(2)
        }
    }
}

/// `import-ndppd FILE`: print the equivalent configuration file (`-`: read standard input).
/// Exit status 1, and nothing on standard output, when it cannot be imported faithfully.
pub fn import_ndppd(path: &Path) -> ExitCode {
    let stdin = path.as_os_str() == "-";
    let source = if stdin {
        "stdin".to_string()
    } else {
        path.display().to_string()
    };
    let text = if stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map(|_| text)
            .map_err(|e| format!("cannot read standard input: {e}"))
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {source}: {e}"))
    };
    match text.and_then(|text| ndppd::import(&source, &text)) {
        Ok(toml) => {
            print!("{toml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ndp-responder: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `check-config`: the file alone, then (reading only) its rules against the gateways of the
/// uplinks that exist here.
pub fn check_config(path: &Path) -> ExitCode {
    let config = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ndp-responder: {e}");
            return ExitCode::FAILURE;
        }
    };
    for warning in &config.warnings {
        eprintln!(
            "ndp-responder: {}:{}: warning: {}",
            warning.path, warning.line, warning.message
        );
    }
    let rules: usize = config.uplinks.iter().map(|u| u.rules.len()).sum();
    let gateways = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(uplink::check_gateways(&config.uplinks)));
    let note = match gateways {
        Ok(absent) if absent.is_empty() => String::new(),
        Ok(absent) => format!(
            " (not on this machine, so not checked against their gateways: {})",
            absent.join(", ")
        ),
        Err(e) if e.contains("netlink") => format!(" (gateways not checked: {e})"),
        Err(e) => {
            eprintln!("ndp-responder: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{}: OK, {} uplink(s), {rules} rule(s){note}",
        path.display(),
        config.uplinks.len()
    );
    // SLAAC rules change the host (RAs on the bridge, routes): say what each will do.
    for u in &config.uplinks {
        for rule in &u.rules {
            let crate::decide::targets::Mode::Slaac { interface, dns } = &rule.mode else {
                continue;
            };
            let prefix = if rule.prefix.prefix_len() == 0 {
                format!("the global /64(s) of {} (followed)", u.ifname)
            } else {
                rule.prefix.to_string()
            };
            let dns = if dns.is_empty() {
                format!("relayed from {}'s router advertisements", u.ifname)
            } else {
                crate::status::list(dns)
            };
            println!(
                "  {}: slaac on {interface}: advertises {prefix} there (A=1, L=0), routes learned guests to {interface} with /128 routes of protocol {} and answers for them on {}; DNS {dns}",
                u.ifname,
                crate::sources::netlink::routes::RTPROT_NDP_RESPONDER,
                u.ifname
            );
        }
    }
    ExitCode::SUCCESS
}

/// `completions SHELL`: the completion script on standard output.
pub fn completions(shell: docs::Shell) -> ExitCode {
    print_bytes("completions", &docs::completions(shell))
}

/// `man`: the man page, in roff, on standard output.
pub fn man() -> ExitCode {
    match docs::man_page() {
        Ok(page) => print_bytes("man", &page),
        Err(e) => {
            eprintln!("ndp-responder man: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_bytes(command: &str, bytes: &[u8]) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ndp-responder {command}: {e}");
            ExitCode::FAILURE
        }
    }
}
