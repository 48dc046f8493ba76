//! Logging: where the daemon's lines go and at which level.
//!
//! Owns: the subscriber: our own lines at the chosen level, the libraries' only from WARN
//! (their DEBUG is noise), on stderr, coloured only on a terminal.
//!
//! Must not: decide the level (that is [`crate::config::values::log_level`]).

use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Install the subscriber for `level`.
pub fn init(level: LevelFilter) {
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
}
