//! The structural mistakes people make in the configuration file, and what to write instead.
//!
//! Owns: turning what the TOML reader refused into the line to name and a message in plain
//! words: `[uplink]` for `[[uplink]]`, a key in the wrong table (`metrics` under an
//! `[[uplink]]`, `prefix` outside a `[[uplink.rule]]`, ...), an ndppd.conf given to `-c`, a
//! duration or a string written as a number, a boolean written otherwise, and the reader's own
//! words for numbers.
//!
//! Must not: validate values (that is [`super::values`], through [`super::parse`]) or read
//! files.

use super::values;

/// The top-level keys (before any `[[uplink]]`).
const TOP: [&str; 3] = ["control_socket", "control_mode", "metrics"];
/// The keys of an `[[uplink]]`.
const UPLINK: [&str; 12] = [
    "interface",
    "source",
    "router",
    "override",
    "gateway_keepalive",
    "announce_interval",
    "probe_ttl",
    "probe_negative_ttl",
    "rate_limit",
    "rate_limit_per_source",
    "fast_path",
    "drop_uncovered",
];
/// The keys of an `[[uplink.rule]]`.
const RULE: [&str; 4] = ["prefix", "mode", "interface", "network"];

/// The duration keys and their ranges.
fn duration_range(key: &str) -> Option<&'static values::DurationRange> {
    match key {
        "gateway_keepalive" => Some(&values::GATEWAY_KEEPALIVE),
        "announce_interval" => Some(&values::ANNOUNCE_INTERVAL),
        "probe_ttl" => Some(&values::PROBE_TTL),
        "probe_negative_ttl" => Some(&values::PROBE_NEGATIVE_TTL),
        _ => None,
    }
}

/// The table an "unknown field" message was about, from the keys serde says it expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Top,
    Uplink,
    Rule,
}

fn table_of(message: &str) -> Option<Table> {
    let expected = message.split_once("expected")?.1;
    if expected.contains("`uplink`") {
        Some(Table::Top)
    } else if expected.contains("`rule`") {
        Some(Table::Uplink)
    } else if expected.contains("`mode`") {
        Some(Table::Rule)
    } else {
        None
    }
}

/// The line of `text` holding byte `offset`.
fn line_at(text: &str, offset: usize) -> &str {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    &text[start..end]
}

/// What the TOML reader refused, explained: the byte offset whose line to name, and the
/// message (`path` is the file, for the ndppd hint).
pub(super) fn explain(path: &str, text: &str, error: &toml::de::Error) -> (usize, String) {
    if let Some(at) = ndppd_syntax(text) {
        return (
            at,
            format!("this is ndppd syntax: ndp-responder import-ndppd {path} prints the equivalent ndp-responder configuration"),
        );
    }
    let span = error.span().unwrap_or(0..0);
    let message = error.message().trim_end();
    let line = line_at(text, span.start);
    let structural = single_table(line, message)
        .or_else(|| wrong_table(message))
        .or_else(|| wrong_type(line, message));
    match structural {
        Some(explained) => (span.start, explained),
        None => (
            span.start,
            format!("{}{}", plain(message), hint_for(message)),
        ),
    }
}

/// An ndppd.conf: its first line that is neither blank nor a comment starts with one of
/// ndppd's own top-level words and assigns nothing. The byte offset of that line.
fn ndppd_syntax(text: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let here = offset;
        offset += line.len();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first() {
            None => continue,
            Some(w) if w.starts_with('#') => continue,
            Some(&("proxy" | "route-ttl" | "address-ttl")) if !line.contains('=') => {
                return Some(here)
            }
            Some(_) => return None,
        }
    }
    None
}

/// `[uplink]` or `[uplink.rule]` (one table) where the schema has a list of them.
fn single_table(line: &str, message: &str) -> Option<String> {
    if !(message.contains("expected a sequence") || message == "duplicate key") {
        return None;
    }
    let header = line.trim();
    if header.starts_with("[[") {
        return None;
    }
    let name: String = header
        .strip_prefix('[')?
        .split(']')
        .next()?
        .split_whitespace()
        .collect();
    let what = match name.as_str() {
        "uplink" => "a file has a list of uplinks: write [[uplink]] (two brackets), one per uplink",
        "uplink.rule" => {
            "an uplink has a list of rules: write [[uplink.rule]] (two brackets), one per rule"
        }
        _ => return None,
    };
    Some(format!("[{name}] is one table, but {what}"))
}

/// A key known to the schema, but written in another table than its own.
fn wrong_table(message: &str) -> Option<String> {
    let key = message.strip_prefix("unknown field `")?.split('`').next()?;
    let table = table_of(message)?;
    let message = match table {
        Table::Top if key == "rule" => {
            "rules belong to an uplink: write [[uplink.rule]], after the [[uplink]] they belong to"
                .to_string()
        }
        Table::Top if UPLINK.contains(&key) => {
            format!("`{key}` belongs in an [[uplink]]: add an [[uplink]] line above it")
        }
        Table::Top if RULE.contains(&key) => format!(
            "`{key}` belongs in a [[uplink.rule]]: add [[uplink]] (with its interface) and [[uplink.rule]] lines above it"
        ),
        Table::Uplink | Table::Rule if TOP.contains(&key) => format!(
            "`{key}` belongs at the top, before any [[uplink]]: a key after a table header belongs to that table; move it above the first [[uplink]]"
        ),
        Table::Uplink if RULE.contains(&key) => format!(
            "`{key}` belongs in a [[uplink.rule]]: add a [[uplink.rule]] line above it (a rule has a prefix and a mode)"
        ),
        Table::Rule if UPLINK.contains(&key) => format!(
            "`{key}` belongs to the [[uplink]], not to one of its rules: move it above the uplink's first [[uplink.rule]]"
        ),
        _ => return None,
    };
    Some(message)
}

/// A value of the wrong kind: a duration or another string written as a number, a boolean
/// written otherwise. `line` holds the value (`key = value`).
fn wrong_type(line: &str, message: &str) -> Option<String> {
    let (key, raw) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    let raw = raw.split('#').next().unwrap_or_default().trim();
    if message.ends_with("expected a boolean") {
        return Some(format!(
            "{key} is true or false, without quotes: write {key} = true"
        ));
    }
    let number = message.starts_with("invalid type: integer")
        || message.starts_with("invalid type: floating point")
        || message.starts_with("unexpected leading zero");
    if !number || !(message.ends_with("expected a string") || message.contains("leading zero")) {
        return None;
    }
    if let Some(range) = duration_range(key) {
        let with_unit = match raw.parse::<f64>() {
            Ok(n) if n < 0.0 => {
                return Some(format!(
                    "{key}: {raw} is negative: {} is {} to {}, written in quotes with its unit, e.g. \"{}\"",
                    range.what,
                    values::short(range.min),
                    values::short(range.max),
                    range.example
                ))
            }
            Ok(n) if n.fract() == 0.0 && n < 1e15 => format!("{n}s"),
            Ok(n) if (n * 1000.0).fract() == 0.0 && n < 1e12 => format!("{}ms", n * 1000.0),
            _ => range.example.to_string(),
        };
        return Some(format!(
            "{key}: a duration is written in quotes with its unit: write \"{with_unit}\""
        ));
    }
    Some(format!(
        "{key} is written in quotes: write {key} = \"{raw}\""
    ))
}

/// The parser's words for numbers, in plain words (the only integers are the rate limits).
fn plain(message: &str) -> String {
    let range = format!("0 (no limit) or 1 to {}", values::RATE_LIMIT_MAX);
    if message.contains("integer number overflowed") {
        format!("the number is too large: a rate limit is {range} answers per second")
    } else {
        message.replace(
            "expected i128",
            &format!("expected a whole number without quotes, {range}"),
        )
    }
}

/// What to write instead, for the mistakes people make.
fn hint_for(message: &str) -> &'static str {
    if message.contains("unknown field") {
        " (check the spelling against the schema in the README)"
    } else if message.contains("missing field `interface`") {
        " (every [[uplink]] names its interface)"
    } else if message.contains("missing field `mode`") {
        " (every [[uplink.rule]] has mode = \"static\", \"auto\", \"probe\", \"docker\" or \"slaac\")"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;

    const PATH: &str = "/etc/ndp-responder.toml";
    const UPLINK: &str = "[[uplink]]\ninterface = \"eth0\"\n";
    const RULE: &str = "[[uplink.rule]]\nprefix = \"2001:db8::/64\"\nmode = \"static\"\n";

    /// The whole error, `file:line: message`.
    fn error(text: &str) -> String {
        parse(PATH, text).unwrap_err().to_string()
    }

    #[test]
    fn one_table_for_a_list_of_tables() {
        assert_eq!(
            error(&format!("[uplink]\ninterface = \"eth0\"\n{RULE}")),
            "/etc/ndp-responder.toml:1: [uplink] is one table, but a file has a list of uplinks: write [[uplink]] (two brackets), one per uplink"
        );
        assert_eq!(
            error(&format!("{UPLINK}\n[uplink.rule]\nprefix = \"2001:db8::/64\"\nmode = \"static\"\n")),
            "/etc/ndp-responder.toml:4: [uplink.rule] is one table, but an uplink has a list of rules: write [[uplink.rule]] (two brackets), one per rule"
        );
        // After a [[uplink]], TOML itself refuses the redefinition: the same words.
        assert_eq!(
            error(&format!("{UPLINK}{RULE}[ uplink ]\ninterface = \"eth1\"\n")),
            "/etc/ndp-responder.toml:6: [uplink] is one table, but a file has a list of uplinks: write [[uplink]] (two brackets), one per uplink"
        );
    }

    #[test]
    fn keys_in_the_wrong_table() {
        let top = "belongs at the top, before any [[uplink]]: a key after a table header belongs to that table; move it above the first [[uplink]]";
        assert_eq!(
            error(&format!("{UPLINK}metrics = \"[::1]:9417\"\n{RULE}")),
            format!("/etc/ndp-responder.toml:3: `metrics` {top}")
        );
        assert_eq!(
            error(&format!("{UPLINK}{RULE}control_socket = \"none\"\n")),
            format!("/etc/ndp-responder.toml:6: `control_socket` {top}")
        );
        assert_eq!(
            error(&format!("{UPLINK}{RULE}gateway_keepalive = \"30s\"\n")),
            "/etc/ndp-responder.toml:6: `gateway_keepalive` belongs to the [[uplink]], not to one of its rules: move it above the uplink's first [[uplink.rule]]"
        );
        assert_eq!(
            error(&format!("{UPLINK}prefix = \"2001:db8::/64\"\n{RULE}")),
            "/etc/ndp-responder.toml:3: `prefix` belongs in a [[uplink.rule]]: add a [[uplink.rule]] line above it (a rule has a prefix and a mode)"
        );
        assert_eq!(
            error(&format!("interface = \"eth0\"\n{UPLINK}{RULE}")),
            "/etc/ndp-responder.toml:1: `interface` belongs in an [[uplink]]: add an [[uplink]] line above it"
        );
        assert_eq!(
            error(&format!("# rules\nmode = \"auto\"\n{UPLINK}{RULE}")),
            "/etc/ndp-responder.toml:2: `mode` belongs in a [[uplink.rule]]: add [[uplink]] (with its interface) and [[uplink.rule]] lines above it"
        );
        assert_eq!(
            error(&format!("[[rule]]\nprefix = \"2001:db8::/64\"\n{UPLINK}{RULE}")),
            "/etc/ndp-responder.toml:1: rules belong to an uplink: write [[uplink.rule]], after the [[uplink]] they belong to"
        );
        // A key known nowhere is a spelling mistake.
        let e = error(&format!("{UPLINK}routers = true\n{RULE}"));
        assert!(
            e.starts_with("/etc/ndp-responder.toml:3: unknown field `routers`")
                && e.ends_with("(check the spelling against the schema in the README)"),
            "{e}"
        );
    }

    #[test]
    fn an_ndppd_conf_is_recognised() {
        let ndppd = "# ndppd.conf\n\nroute-ttl 30000\nproxy eth0 {\n  router yes\n  rule 2001:db8:1::/64 {\n    static\n  }\n}\n";
        assert_eq!(
            error(ndppd),
            "/etc/ndp-responder.toml:3: this is ndppd syntax: ndp-responder import-ndppd /etc/ndp-responder.toml prints the equivalent ndp-responder configuration"
        );
        let e = parse(
            "/etc/ndppd.conf",
            "proxy eth0 {\n  rule 2001:db8:1::/64 {\n    auto\n  }\n}\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "/etc/ndppd.conf:1: this is ndppd syntax: ndp-responder import-ndppd /etc/ndppd.conf prints the equivalent ndp-responder configuration"
        );
    }

    #[test]
    fn numbers_where_strings_are_written() {
        let at3 = |setting: &str| error(&format!("{UPLINK}{setting}\n{RULE}"));
        assert_eq!(
            at3("gateway_keepalive = 30"),
            "/etc/ndp-responder.toml:3: gateway_keepalive: a duration is written in quotes with its unit: write \"30s\""
        );
        assert_eq!(
            at3("probe_ttl = 1.5 # seconds"),
            "/etc/ndp-responder.toml:3: probe_ttl: a duration is written in quotes with its unit: write \"1500ms\""
        );
        assert_eq!(
            at3("announce_interval = -600"),
            "/etc/ndp-responder.toml:3: announce_interval: -600 is negative: the announcement interval is 1s to 1d, written in quotes with its unit, e.g. \"10m\""
        );
        assert_eq!(
            error(&format!("metrics = 9417\n{UPLINK}{RULE}")),
            "/etc/ndp-responder.toml:1: metrics is written in quotes: write metrics = \"9417\""
        );
        assert_eq!(
            error(&format!("control_mode = 0660\n{UPLINK}{RULE}")),
            "/etc/ndp-responder.toml:1: control_mode is written in quotes: write control_mode = \"0660\""
        );
        assert_eq!(
            at3("router = \"yes\""),
            "/etc/ndp-responder.toml:3: router is true or false, without quotes: write router = true"
        );
        assert_eq!(
            at3("override = -1"),
            "/etc/ndp-responder.toml:3: override is true or false, without quotes: write override = true"
        );
    }

    #[test]
    fn negative_values_in_plain_words() {
        let at3 = |setting: &str| error(&format!("{UPLINK}{setting}\n{RULE}"));
        assert_eq!(
            at3("rate_limit = -1"),
            "/etc/ndp-responder.toml:3: rate_limit: -1 is negative: give 0 (no limit) or 1 to 10000000 answers per second"
        );
        assert_eq!(
            at3("gateway_keepalive = \"-30s\""),
            "/etc/ndp-responder.toml:3: gateway_keepalive: '-30s' is negative: give 1s to 1h, e.g. 30s"
        );
        assert_eq!(
            at3("rate_limit = \"10\""),
            "/etc/ndp-responder.toml:3: invalid type: string \"10\", expected a whole number without quotes, 0 (no limit) or 1 to 10000000"
        );
    }
}
