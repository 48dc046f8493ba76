//! Entry point: parse the command line, set up logging, run the chosen command.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use ndp_responder::cli::{self, Cli, Command, LabAction};
use ndp_responder::daemon::{self, Options};
use ndp_responder::policy::Settings;
use ndp_responder::probe;
use ndp_responder::{config, doctor, lab, ndppd};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = std::env::var("NDPRESPONDER_LOG").ok();
    let level = match cli::log_level(env.as_deref(), cli.verbose, cli.quiet) {
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
        Some(Command::CheckConfig(args)) => match config::load(&args.config) {
            Ok(uplinks) => {
                let rules: usize = uplinks.iter().map(|u| u.rules.len()).sum();
                println!(
                    "{}: OK, {} uplink(s), {rules} rule(s)",
                    args.config.display(),
                    uplinks.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ndp-responder: {e}");
                ExitCode::FAILURE
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

fn run(args: cli::RunArgs) -> ExitCode {
    // A parent may have left SIGINT/SIGTERM blocked; the daemon must see them to stop cleanly.
    // SAFETY: sigset_t is plain data; this only changes the calling thread's mask before any
    // other thread exists.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    let uplinks = match &args.ifname {
        Some(ifname) => vec![Options {
            ifname: ifname.clone(),
            rules: args.rules(),
            settings: Settings {
                source: args.source,
                router: !args.no_router_flag,
                override_flag: !args.no_override_flag,
            },
            probe: probe::Limits {
                ttl: args.probe_ttl,
                negative_ttl: args.probe_negative_ttl,
                ..probe::Limits::default()
            },
            keepalive: args.gateway_keepalive,
            announce: args.announce_interval,
        }],
        None => {
            let path = args
                .config
                .clone()
                .unwrap_or_else(|| config::DEFAULT_PATH.into());
            match config::load(&path) {
                Ok(uplinks) => uplinks,
                Err(e) => {
                    eprintln!("ndp-responder: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ndp-responder: cannot start the event loop: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One responder per uplink, side by side; the first that cannot start stops them all.
    let all = futures::future::try_join_all(uplinks.into_iter().map(daemon::run));
    match runtime.block_on(all) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
