//! Entry point: parse the command line and dispatch to the command's owner.

use std::process::ExitCode;

use clap::Parser;

use ndp_responder::config::args::{Cli, Command, LabAction};
use ndp_responder::config::values;
use ndp_responder::service::{self, commands, logging};
use ndp_responder::tools::{doctor, lab};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = std::env::var("NDPRESPONDER_LOG").ok();
    let (level, warning) = values::log_level(env.as_deref(), cli.verbose, cli.quiet);
    logging::init(level, cli.log_format);
    if let Some(warning) = warning {
        tracing::warn!("{warning}");
    }
    match cli.command {
        Some(Command::Lab(args)) => {
            let result = match args.action {
                Some(LabAction::Down) => lab::down(),
                None => lab::demo(args.keep),
            };
            result.unwrap_or_else(|e| {
                eprintln!("ndp-responder lab: {e}");
                ExitCode::FAILURE
            })
        }
        Some(Command::Doctor(args)) => match (args.config, args.ifname) {
            (Some(file), _) => doctor::run_file(&file, args.json),
            (None, ifname) => doctor::run(doctor::Request {
                ifname: ifname.unwrap_or_default(),
                prefixes: args.subnets,
                slaac: args.slaac,
                probe: args.probe,
                json: args.json,
            }),
        },
        Some(Command::CheckConfig(args)) => commands::check_config(&args.config),
        Some(Command::Status(args)) => {
            commands::status(args.socket.as_deref(), args.config.as_deref(), args.json)
        }
        Some(Command::ImportNdppd(args)) => commands::import_ndppd(&args.path),
        Some(Command::Completions(args)) => commands::completions(args.shell),
        Some(Command::Man) => commands::man(),
        None => service::setup::start(cli.run),
    }
}
