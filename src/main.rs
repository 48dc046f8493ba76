//! Entry point: parse the command line, set up logging, run the chosen command.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use ndp_responder::config::args::{self, Cli, Command, LabAction};
use ndp_responder::config::{self, ndppd};
use ndp_responder::service::control;
use ndp_responder::service::{self, ControlSocket, Setup};
use ndp_responder::tools::{doctor, lab};
use ndp_responder::uplink;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = std::env::var("NDPRESPONDER_LOG").ok();
    let level =
        match ndp_responder::config::values::log_level(env.as_deref(), cli.verbose, cli.quiet) {
            Ok(level) => level,
            Err(e) => {
                eprintln!("ndp-responder: {e}");
                return ExitCode::from(2);
            }
        };
    // Our own lines at the chosen level; the libraries' only from WARN (their DEBUG is noise).
    let filter = Targets::new()
        .with_target("ndp_responder", level)
        .with_default(level.min(LevelFilter::WARN));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false),
        )
        .with(filter)
        .init();

    match cli.command {
        Some(Command::Lab(args)) => {
            let result = match args.action {
                Some(LabAction::Down) => lab::down(),
                None => lab::demo(args.keep),
            };
            match result {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("ndp-responder lab: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Doctor(args)) => doctor::run(doctor::Request {
            ifname: args.ifname,
            prefixes: args.subnets,
            probe: args.probe,
            json: args.json,
        }),
        Some(Command::CheckConfig(args)) => check_config(&args.config),
        Some(Command::Status(args)) => match control::query(&args.socket) {
            Ok(status) => {
                if args.json {
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
        },
        Some(Command::ImportNdppd(args)) => {
            let source = args.path.display().to_string();
            let imported = std::fs::read_to_string(&args.path)
                .map_err(|e| format!("cannot read {source}: {e}"))
                .and_then(|text| {
                    ndppd::import(&source, &text).map_err(|e| format!("{source}: {e}"))
                });
            match imported {
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
        None => run(cli.run),
    }
}

/// `check-config`: the file alone, then (reading only) its rules against the gateways of the
/// uplinks that exist here.
fn check_config(path: &std::path::Path) -> ExitCode {
    let config = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ndp-responder: {e}");
            return ExitCode::FAILURE;
        }
    };
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
    ExitCode::SUCCESS
}

fn run(args: args::RunArgs) -> ExitCode {
    // A parent may have left the signals blocked; the daemon must see them to stop and reload.
    // SAFETY: sigset_t is plain data; this only changes the calling thread's mask before any
    // other thread exists.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    let (uplinks, config_path, file) = match &args.ifname {
        Some(_) => match config::from_flags(&args) {
            Ok(options) => (vec![options], None, None),
            Err(e) => {
                eprintln!("ndp-responder: {e}");
                return ExitCode::from(2);
            }
        },
        None => {
            let path = args
                .config
                .clone()
                .unwrap_or_else(|| config::DEFAULT_PATH.into());
            match config::load(&path) {
                Ok(config) => (config.uplinks.clone(), Some(path), Some(config)),
                Err(e) => {
                    eprintln!("ndp-responder: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let mode = args
        .control_mode
        .or(file.as_ref().and_then(|f| f.control_mode))
        .unwrap_or(config::DEFAULT_CONTROL_MODE);
    let socket = |path: std::path::PathBuf, explicit| {
        Some(ControlSocket {
            path,
            mode,
            explicit,
        })
    };
    let control = match (
        args.control_socket.as_deref(),
        file.as_ref().and_then(|f| f.control.clone()),
    ) {
        (Some("none"), _) | (None, Some(None)) => None,
        (Some(path), _) => socket(path.into(), true),
        (None, Some(Some(path))) => socket(path, true),
        (None, None) => socket(config::DEFAULT_CONTROL_SOCKET.into(), false),
    };
    service::run(Setup {
        uplinks,
        config: config_path,
        control,
        metrics: args.metrics.or(file.as_ref().and_then(|f| f.metrics)),
    })
}
