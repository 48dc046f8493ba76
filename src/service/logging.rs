//! Logging: where the daemon's lines go, at which level and in which form.
//!
//! Owns: the subscriber: our own lines at the chosen level, the libraries' only from WARN
//! (their DEBUG is noise), on stderr; the two forms (`--log-format text|json`); and, when
//! stderr is systemd's journal stream (`JOURNAL_STREAM` names it, see systemd.exec(5)), a
//! syslog priority prefix on every line (`<3>` error ... `<7>` debug, sd-daemon(3)) and no
//! timestamp of our own, so that `journalctl -p err` works and lines do not carry two times.
//!
//! Must not: decide the level (that is [`crate::config::values::log_level`]).

use std::fmt;
use std::io::IsTerminal;
use std::os::fd::AsRawFd;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::values::LogFormat;

/// Install the subscriber for `level` and `format`.
pub fn init(level: LevelFilter, format: LogFormat) {
    let filter = Targets::new()
        .with_target("ndp_responder", level)
        .with_default(level.min(LevelFilter::WARN));
    let journal = stderr_is_journal(std::env::var("JOURNAL_STREAM").ok().as_deref());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(!journal && format == LogFormat::Text && std::io::stderr().is_terminal())
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    match (format, journal) {
        (LogFormat::Text, false) => registry.with(layer).init(),
        (LogFormat::Text, true) => registry.with(layer.event_format(Journal)).init(),
        (LogFormat::Json, journal) => registry.with(layer.event_format(Json { journal })).init(),
    }
}

/// Is stderr the stream systemd connected to the journal? `JOURNAL_STREAM` is
/// `DEVICE:INODE` of that stream (systemd.exec(5)); a child that inherited the variable but
/// writes elsewhere is not.
fn stderr_is_journal(journal_stream: Option<&str>) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // SAFETY: fstat on our own stderr descriptor into a zeroed stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(std::io::stderr().as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    st.st_dev == dev && st.st_ino == ino
}

/// The syslog priority of a level (sd-daemon(3): `<3>` error, `<4>` warning, `<6>` info,
/// `<7>` debug).
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Text for the journal: `<6>message field=value`, nothing else (journald adds the time).
struct Journal;

impl<S, N> FormatEvent<S, N> for Journal
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// One JSON object per line: `time` (left to the journal under systemd), `level`, `message`,
/// and the event's other fields under `fields`.
struct Json {
    journal: bool,
}

impl<S, N> FormatEvent<S, N> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = event.metadata().level();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut line = Map::new();
        if self.journal {
            write!(writer, "<{}>", priority(level))?;
        } else {
            let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
            line.insert("time".into(), Value::String(now.to_string()));
        }
        line.insert("level".into(), Value::String(level.as_str().into()));
        if let Some(message) = fields.0.remove("message") {
            line.insert("message".into(), message);
        }
        if !fields.0.is_empty() {
            line.insert("fields".into(), Value::Object(fields.0));
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// An event's fields as JSON values.
#[derive(Default)]
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().into(), Value::String(value.into()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::Bool(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_is_recognised_only_by_its_own_stream() {
        use std::os::unix::fs::MetadataExt;
        assert!(!stderr_is_journal(None));
        assert!(!stderr_is_journal(Some("garbage")));
        assert!(!stderr_is_journal(Some("1:2")));
        // Our stderr's own device and inode do match.
        let meta =
            std::fs::metadata(format!("/proc/self/fd/{}", std::io::stderr().as_raw_fd())).unwrap();
        let own = format!("{}:{}", meta.dev(), meta.ino());
        assert!(stderr_is_journal(Some(&own)), "{own}");
    }

    #[test]
    fn priorities_follow_sd_daemon() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
    }
}
