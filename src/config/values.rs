//! Every kind of value the command line and the configuration file take, parsed once: the
//! same function (and so the same range and the same message) serves the flag and the key.
//!
//! Owns: prefixes, probe rules, durations and their ranges, rate limits, the source policy,
//! socket modes, the metrics address and the log level; each error names the bad value, the
//! allowed range and an example.
//!
//! Must not: know where a value came from (the caller adds the flag or the `file:line: key`),
//! or touch the system.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::Ipv6Net;
use tracing::level_filters::LevelFilter;

use crate::decide::policy::SourcePolicy;

/// Parse a prefix, naming the bad value and what to do about it.
pub fn parse_prefix(s: &str) -> Result<Ipv6Net, String> {
    let net: Ipv6Net = s.parse().map_err(|_| {
        if s.parse::<std::net::Ipv6Addr>().is_ok() {
            format!("'{s}' has no prefix length: write it as {s}/128 for one address, or e.g. /112")
        } else {
            format!("'{s}' is not an IPv6 prefix: expected e.g. 2001:db8:1::d:0/112")
        }
    })?;
    if net.addr().is_multicast() {
        return Err(format!(
            "'{s}' is a multicast prefix: targets must be unicast addresses"
        ));
    }
    let a = net.addr();
    if a.is_unicast_link_local() || a.is_loopback() || a.to_ipv4_mapped().is_some() {
        return Err(format!(
            "'{s}' is not a global prefix: link-local, loopback and IPv4-mapped addresses are never proxied"
        ));
    }
    if net.prefix_len() == 0 {
        return Err(format!(
            "'{s}' covers every address: give the prefix your containers use, e.g. 2001:db8:1::d:0/112"
        ));
    }
    if net.trunc() != net {
        return Err(format!(
            "'{s}' has host bits set: did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

pub fn parse_probe_addr(s: &str) -> Result<std::net::Ipv6Addr, String> {
    parse_unicast(
        s,
        "give a global test address from your range",
        "a test address: give a global unicast address from your range",
    )
}

/// A DNS server advertised to SLAAC guests (RDNSS, RFC 8106): a unicast address they can
/// reach (a link-local one is only reachable on the uplink, not on the guests' link).
pub fn parse_dns_server(s: &str) -> Result<std::net::Ipv6Addr, String> {
    parse_unicast(
        s,
        "give a DNS server, e.g. 2001:db8::53",
        "a DNS server for the guests: give a global unicast address",
    )
}

/// An IPv6 address that is neither multicast, unspecified, loopback nor link-local. The
/// errors say `'{s}' is not an IPv6 address: {hint}` and `'{s}' cannot be {cannot_be}`.
fn parse_unicast(s: &str, hint: &str, cannot_be: &str) -> Result<std::net::Ipv6Addr, String> {
    let addr: std::net::Ipv6Addr = s
        .parse()
        .map_err(|_| format!("'{s}' is not an IPv6 address: {hint}"))?;
    if addr.is_multicast()
        || addr.is_unspecified()
        || addr.is_loopback()
        || addr.is_unicast_link_local()
    {
        return Err(format!("'{s}' cannot be {cannot_be}"));
    }
    Ok(addr)
}

/// The prefix of a SLAAC rule: a /64, since SLAAC forms 64-bit interface identifiers
/// (RFC 4862 5.5.3 d, RFC 4291 2.5.1).
pub fn parse_slaac_prefix(s: &str) -> Result<Ipv6Net, String> {
    let net = parse_prefix(s)?;
    if net.prefix_len() != 64 {
        return Err(format!(
            "'{s}' is a /{}: SLAAC needs a /64 (guests form 64-bit interface identifiers); leave prefix out to share the uplink's /64",
            net.prefix_len()
        ));
    }
    Ok(net)
}

/// `PREFIX` or `PREFIX@IFACE`.
pub fn parse_probe_rule(s: &str) -> Result<(Ipv6Net, Option<String>), String> {
    match s.split_once('@') {
        None => Ok((parse_prefix(s)?, None)),
        Some((_, "")) => Err(format!(
            "'{s}' names no interface after '@': write PREFIX@br0, or just PREFIX"
        )),
        Some((prefix, iface)) => Ok((parse_prefix(prefix)?, Some(iface.to_string()))),
    }
}

/// A duration such as `30s`, `2m` or `1h` (unbounded: every setting goes through
/// [`parse_duration_in`] with its own range).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim_start().starts_with('-') {
        return Err(format!("'{s}' is negative: write e.g. 30s, 2m or 1h"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration ({e}): write e.g. 30s, 2m or 1h"))
}

/// The allowed values of one duration setting. Below `min` a scheduler would fire on every
/// pass of the daemon's loop; above `max` the value is a mistake, and adding it to the clock
/// could overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationRange {
    /// What the value is, in words, for messages.
    pub what: &'static str,
    pub min: Duration,
    pub max: Duration,
    /// The default (or a typical value), offered as an example.
    pub example: &'static str,
}

const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// `gateway_keepalive` / `--gateway-keepalive`: 1s to 1h.
pub const GATEWAY_KEEPALIVE: DurationRange = DurationRange {
    what: "the gateway keepalive interval",
    min: SECOND,
    max: HOUR,
    example: "30s",
};
/// `announce_interval` / `--announce-interval`: 1s to 1d.
pub const ANNOUNCE_INTERVAL: DurationRange = DurationRange {
    what: "the announcement interval",
    min: SECOND,
    max: DAY,
    example: "10m",
};
/// `probe_ttl` / `--probe-ttl`: 1s to 1d.
pub const PROBE_TTL: DurationRange = DurationRange {
    what: "the probe TTL",
    min: SECOND,
    max: DAY,
    example: "30s",
};
/// `probe_negative_ttl` / `--probe-negative-ttl`: 1s to 1h.
pub const PROBE_NEGATIVE_TTL: DurationRange = DurationRange {
    what: "the negative probe TTL",
    min: SECOND,
    max: HOUR,
    example: "5s",
};

/// A duration within `range`; the message names the value and the range.
pub fn parse_duration_in(s: &str, range: &DurationRange) -> Result<Duration, String> {
    let negative = s.trim_start().starts_with('-');
    let d = match negative {
        true => None,
        false => Some(parse_duration(s)?).filter(|d| *d >= range.min && *d <= range.max),
    };
    d.ok_or_else(|| {
        let why = match negative {
            true => "is negative".to_string(),
            false => format!("is out of range for {}", range.what),
        };
        format!(
            "'{s}' {why}: give {} to {}, e.g. {}",
            short(range.min),
            short(range.max),
            range.example
        )
    })
}

/// A whole number of seconds, minutes, hours or days as people write it (1s, 1h, 1d).
pub(crate) fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if s != 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        _ if s != 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        _ if s != 0 && s % 60 == 0 => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

pub fn parse_gateway_keepalive(s: &str) -> Result<Duration, String> {
    parse_duration_in(s, &GATEWAY_KEEPALIVE)
}

pub fn parse_announce_interval(s: &str) -> Result<Duration, String> {
    parse_duration_in(s, &ANNOUNCE_INTERVAL)
}

pub fn parse_probe_ttl(s: &str) -> Result<Duration, String> {
    parse_duration_in(s, &PROBE_TTL)
}

pub fn parse_probe_negative_ttl(s: &str) -> Result<Duration, String> {
    parse_duration_in(s, &PROBE_NEGATIVE_TTL)
}

/// The largest rate limit, in answers per second (far above any router's solicitations, and
/// small enough that a bucket's arithmetic stays exact).
pub const RATE_LIMIT_MAX: u32 = 10_000_000;

/// A rate limit (`rate_limit`, `rate_limit_per_source` and their flags): 0 (no limit) or 1 to
/// [`RATE_LIMIT_MAX`] answers per second.
pub fn rate_limit(n: i128) -> Result<u32, String> {
    let range = format!("give 0 (no limit) or 1 to {RATE_LIMIT_MAX} answers per second");
    match u32::try_from(n) {
        Ok(n) if n <= RATE_LIMIT_MAX => Ok(n),
        _ if n < 0 => Err(format!("{n} is negative: {range}")),
        _ => Err(format!("{n} is too large: {range}")),
    }
}

/// A rate limit written on the command line (see [`rate_limit`]).
pub fn parse_rate_limit(s: &str) -> Result<u32, String> {
    use std::num::IntErrorKind;
    let n: i128 = s.trim().parse().map_err(|e: std::num::ParseIntError| {
        let range = format!("give 0 (no limit) or 1 to {RATE_LIMIT_MAX} answers per second");
        match e.kind() {
            IntErrorKind::PosOverflow => format!("'{s}' is too large: {range}"),
            IntErrorKind::NegOverflow => format!("'{s}' is negative: {range}"),
            _ => format!("'{s}' is not a whole number: {range}"),
        }
    })?;
    rate_limit(n)
}

pub fn parse_source(s: &str) -> Result<SourcePolicy, String> {
    s.parse()
}

/// The log level from `NDPRESPONDER_LOG` (if set) moved by `-v`/`-q`, and a warning when the
/// variable names no level (the daemon then starts at INFO, as the Go ndpresponder does). The
/// Go tool's names are accepted in any case: DEBUG, INFO, WARN, ERROR, and DPANIC, PANIC and
/// FATAL (ERROR here), plus WARNING and TRACE.
pub fn log_level(env: Option<&str>, verbose: u8, quiet: u8) -> (LevelFilter, Option<String>) {
    const LEVELS: [LevelFilter; 5] = [
        LevelFilter::ERROR,
        LevelFilter::WARN,
        LevelFilter::INFO,
        LevelFilter::DEBUG,
        LevelFilter::TRACE,
    ];
    let mut warning = None;
    let base = match env.map(|v| v.trim().to_ascii_uppercase()) {
        None => 2,
        Some(v) if v.is_empty() => 2,
        Some(v) => match v.as_str() {
            "ERROR" | "DPANIC" | "PANIC" | "FATAL" => 0,
            "WARN" | "WARNING" => 1,
            "INFO" => 2,
            "DEBUG" => 3,
            "TRACE" => 4,
            _ => {
                warning = Some(format!(
                    "NDPRESPONDER_LOG='{}' is not a log level (DEBUG, INFO, WARN, ERROR): logging at INFO",
                    env.unwrap_or_default()
                ));
                2
            }
        },
    };
    let level = (base + verbose as usize)
        .saturating_sub(quiet as usize)
        .min(4);
    (LEVELS[level], warning)
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people (under systemd: a syslog priority prefix, no timestamp of our own).
    #[default]
    Text,
    /// One JSON object per line: level, message and fields.
    Json,
}

/// Parse a socket mode written in octal ("0660"); only owner and group bits make sense.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode & !0o770 == 0 && mode & 0o600 == 0o600 => Ok(mode),
        Ok(_) => Err(format!("mode '{s}' must give the owner read and write and nothing to others: \"0600\" (owner only) or \"0660\" (owner and group)")),
        Err(_) => Err(format!("'{s}' is not an octal mode: write \"0600\" or \"0660\"")),
    }
}

/// Parse `--metrics`: `ADDR:PORT`, `[V6ADDR]:PORT`, or a bare port (then on loopback, ::1).
pub fn parse_metrics_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)));
    }
    s.parse().map_err(|_| {
        format!("'{s}' is not ADDR:PORT or a port: e.g. [::1]:9417 (loopback), or 9417")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_address_forms() {
        assert_eq!(
            parse_metrics_addr("9417").unwrap(),
            "[::1]:9417".parse().unwrap()
        );
        assert_eq!(
            parse_metrics_addr("[2001:db8::1]:80").unwrap(),
            "[2001:db8::1]:80".parse().unwrap()
        );
        assert_eq!(
            parse_metrics_addr("127.0.0.1:9417").unwrap(),
            "127.0.0.1:9417".parse().unwrap()
        );
        let e = parse_metrics_addr("localhost").unwrap_err();
        assert!(e.contains("'localhost'") && e.contains("[::1]:9417"), "{e}");
    }

    #[test]
    fn log_levels_as_the_go_tool_takes_them() {
        let level = |env: Option<&str>, v, q| log_level(env, v, q).0;
        assert_eq!(level(None, 0, 0), LevelFilter::INFO);
        assert_eq!(level(Some("debug"), 0, 0), LevelFilter::DEBUG);
        assert_eq!(level(Some("WARN"), 0, 0), LevelFilter::WARN);
        assert_eq!(level(Some("Warning"), 0, 0), LevelFilter::WARN);
        for fatal in ["FATAL", "panic", "DPanic", "error"] {
            assert_eq!(level(Some(fatal), 0, 0), LevelFilter::ERROR, "{fatal}");
        }
        assert_eq!(level(None, 1, 0), LevelFilter::DEBUG);
        assert_eq!(level(None, 0, 1), LevelFilter::WARN);
        assert_eq!(level(None, 0, 5), LevelFilter::ERROR);
        assert_eq!(level(Some("ERROR"), 9, 0), LevelFilter::TRACE);
        assert_eq!(log_level(Some("info"), 0, 0).1, None);
        // An unknown value warns and falls back to INFO instead of refusing to start.
        let (l, warning) = log_level(Some("loud"), 0, 0);
        assert_eq!(l, LevelFilter::INFO);
        let warning = warning.unwrap();
        assert!(
            warning.contains("'loud'") && warning.contains("INFO"),
            "{warning}"
        );
    }
}
