//! `ndp-responder import-ndppd`: turn an ndppd.conf into the equivalent configuration file.
//!
//! Owns: reading ndppd's configuration language as ndppd 0.2 reads it (its quirks included:
//! a block opened on the next line, or after a quoted value, is not the block it seems to be),
//! the mapping of each ndppd setting to our schema, and the refusal, naming the ndppd line, of
//! what would behave differently. The output is serialised with the toml crate and validated
//! by [`crate::config::parse`] (what `check-config` runs) before it is returned.
//!
//! Must not: touch the system; the output is printed for the operator to review. Never return
//! a file that means something other than the ndppd.conf did: refuse instead.

use ipnet::Ipv6Net;
use serde::Serialize;

use crate::config::values::{self};

mod read;

use read::{boolean, millis, no_block, once, read, Item, Refusal};

/// An `[[uplink]]` table's keys, in the order they are written.
#[derive(Serialize)]
struct UplinkOut {
    interface: String,
    source: &'static str,
    router: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    probe_ttl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    probe_negative_ttl: Option<String>,
}

/// An `[[uplink.rule]]` table's keys.
#[derive(Serialize)]
struct RuleOut {
    prefix: String,
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<String>,
}

/// An ndppd rule's method, in our terms.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Method {
    Static,
    /// ndppd's `auto` (None) or `iface NAME`: both our probe rule.
    Probe(Option<String>),
    /// `iface NAME` on a whole /64 under `autowire yes`: the guests on NAME autoconfigure
    /// from the /64 and each answering address gets a route to NAME: our slaac rule.
    Slaac(String),
}

struct RuleIn {
    prefix: Ipv6Net,
    method: Method,
    line: usize,
    notes: Vec<String>,
}

struct UplinkIn {
    out: UplinkOut,
    line: usize,
    notes: Vec<String>,
    rules: Vec<RuleIn>,
}

/// `text` as a TOML comment can hold it (no line breaks or other control characters).
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}

/// The text of line `n` of the ndppd file, as a comment can show it.
fn shown(lines: &[&str], n: usize) -> String {
    printable(
        lines
            .get(n.wrapping_sub(1))
            .copied()
            .unwrap_or_default()
            .trim(),
    )
}

/// Where a setting is: ndppd reads each setting at one level only, and ignores it elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Top,
    Proxy,
    Rule,
}

/// ndppd's rule address: `ADDR` (one address: /128) or `ADDR/LEN`; host bits are ignored by
/// ndppd (it compares the first LEN bits), so they are cleared here, with a note.
fn prefix(item: &Item, notes: &mut Vec<String>) -> Result<Ipv6Net, Refusal> {
    let text = item.value.as_str();
    if text.is_empty() {
        return Err((
            item.line,
            "rule has no address (ndppd refuses it): write e.g. rule 2001:db8:1::/64 { static }"
                .into(),
        ));
    }
    let net = match text.split_once('/') {
        None => text
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|a| Ipv6Net::new(a, 128).expect("128 is a valid length")),
        Some(_) => text.parse::<Ipv6Net>().ok(),
    }
    .ok_or_else(|| {
        (
            item.line,
            format!(
                "rule '{text}' is not an IPv6 address or prefix: write e.g. rule 2001:db8:1::/64"
            ),
        )
    })?;
    let trunc = net.trunc();
    if trunc != net {
        notes.push(format!(
            "ndppd compares only the first {} bits of {text}: the prefix is {trunc}",
            net.prefix_len()
        ));
    }
    values::parse_prefix(&trunc.to_string()).map_err(|e| (item.line, format!("rule {text}: {e}")))
}

/// The note for a setting ndp-responder has no key for, or the refusal when ignoring it would
/// change what is answered or routed.
fn unmapped(item: &Item, lines: &[&str], level: Level) -> Result<String, Refusal> {
    let known = match level {
        Level::Top => &["route-ttl", "address-ttl"][..],
        Level::Proxy => &["timeout", "retries", "keepalive", "promiscuous", "autowire"][..],
        Level::Rule => &["autovia"][..],
    };
    let name = if known.contains(&item.name.as_str()) {
        item.name.as_str()
    } else {
        ""
    };
    let why = match name {
        "route-ttl" | "address-ttl" => {
            "not needed: ndp-responder follows routes and addresses through netlink as they change"
                .to_string()
        }
        "timeout" => {
            "no equivalent: ndp-responder waits 500 ms for each probe's answer (fixed)".into()
        }
        "retries" => {
            "no equivalent: ndp-responder sends 3 probes before it gives up (fixed)".into()
        }
        "keepalive" => {
            boolean(item)?;
            "no equivalent: ndp-responder re-probes an answered address still asked for before its probe_ttl runs out (always on)".into()
        }
        "promiscuous" => {
            if boolean(item)? {
                return Err((
                    item.line,
                    "promiscuous yes cannot be imported: ndp-responder never puts the uplink in promiscuous mode and ignores solicitations sent to another station's MAC; if nothing needs that, remove the line (in a copy) and import again".into(),
                ));
            }
            "the default: ndp-responder never puts the uplink in promiscuous mode".into()
        }
        "autowire" => {
            if boolean(item)? {
                // Which rules it applies to is checked by the proxy (see autowired).
                "ndppd adds a route to the interface for each address that answers there: ndp-responder's slaac rules install (and remove) those /128 routes themselves".into()
            } else {
                "the default: ndp-responder adds no routes for these rules".into()
            }
        }
        "autovia" => {
            boolean(item)?;
            "no equivalent: it only matters to ndppd's autowire (the routes of ndp-responder's slaac rules lead to the interface, never via a neighbour)"
                .into()
        }
        _ => {
            let here = match level {
                Level::Top => "outside any proxy",
                Level::Proxy => "in a proxy block",
                Level::Rule => "in a rule block",
            };
            format!("ndppd ignores this {here}: not imported")
        }
    };
    Ok(format!(
        "line {}: {}: {why}",
        item.line,
        shown(lines, item.line)
    ))
}

fn rule(item: &Item, lines: &[&str]) -> Result<RuleIn, Refusal> {
    let mut notes = Vec::new();
    let prefix = prefix(item, &mut notes)?;
    let empty = Vec::new();
    let children = item.children.as_ref().unwrap_or(&empty);
    let mut methods = Vec::new();
    for child in children {
        no_block(child)?;
        match child.name.as_str() {
            "static" | "auto" => {
                if !matches!(child.value.as_str(), "" | ";") {
                    return Err((
                        child.line,
                        format!(
                            "{} takes no value ('{}'), and ndppd ignores it: remove the value",
                            child.name, child.value
                        ),
                    ));
                }
                methods.push((child, child.name.clone()));
            }
            "iface" => {
                if child.value.is_empty() {
                    return Err((
                        child.line,
                        "iface has no interface name (ndppd refuses it): write e.g. iface br0"
                            .into(),
                    ));
                }
                methods.push((child, format!("iface {}", child.value)));
            }
            _ => notes.push(unmapped(child, lines, Level::Rule)?),
        }
    }
    if let [first, second, ..] = methods.as_slice() {
        return Err((
            second.0.line,
            format!(
                "rule {} has both '{}' (line {}) and '{}': only one of static, auto and iface may be given (ndppd 0.2.5 refuses the rule; older versions used one and ignored the other): keep one",
                item.value, first.1, first.0.line, second.1
            ),
        ));
    }
    let method = match methods.first() {
        Some((m, _)) if m.name == "static" => Method::Static,
        Some((m, _)) if m.name == "auto" => {
            notes.push(
                "ndppd's auto is a probe rule: ndp-responder asks the interface the route points to (its own auto mode needs no probes: see the README)".into(),
            );
            Method::Probe(None)
        }
        Some((m, _)) => Method::Probe(Some(m.value.clone())),
        None => {
            notes.push(
                "no method: ndppd up to 0.2.4 answers such a rule as static (0.2.5 refuses it)"
                    .into(),
            );
            Method::Static
        }
    };
    Ok(RuleIn {
        prefix,
        method,
        line: item.line,
        notes,
    })
}

fn proxy(item: &Item, lines: &[&str]) -> Result<UplinkIn, Refusal> {
    if item.value.is_empty() {
        return Err((
            item.line,
            "proxy has no interface name (ndppd refuses it): write e.g. proxy eth0 { ... }".into(),
        ));
    }
    let iface = item.value.clone();
    let Some(children) = &item.children else {
        return Err((
            item.line,
            format!("proxy {iface} has no '{{ }}' block, so no rule: ndppd answers nothing on {iface}; add a rule in a block on the same line, or remove it"),
        ));
    };
    let mut notes = vec![
        "ndppd answers from the link-local address; \"target\" (the answered address) also passes the anti-spoofing filters of hypervisors".to_string(),
    ];
    for child in children {
        if child.name != "rule" {
            no_block(child)?;
        }
    }
    let router = once(children, "router")?
        .map(boolean)
        .transpose()?
        .unwrap_or(true);
    let ttl = once(children, "ttl")?
        .map(|t| millis(t, &values::PROBE_TTL, "probe_ttl"))
        .transpose()?;
    let deadtime = once(children, "deadtime")?
        .map(|t| millis(t, &values::PROBE_NEGATIVE_TTL, "probe_negative_ttl"))
        .transpose()?;
    let mut rules = Vec::new();
    for child in children {
        match child.name.as_str() {
            "router" | "ttl" | "deadtime" => {}
            "rule" => rules.push(rule(child, lines)?),
            other => {
                if matches!(
                    other,
                    "timeout" | "retries" | "keepalive" | "promiscuous" | "autowire"
                ) {
                    once(children, other)?;
                }
                notes.push(unmapped(child, lines, Level::Proxy)?);
            }
        }
    }
    if rules.is_empty() {
        return Err((
            item.line,
            format!("proxy {iface} has no rule: ndppd answers nothing on {iface}; add a rule or remove the proxy"),
        ));
    }
    if let Some(autowire) = once(children, "autowire")? {
        if boolean(autowire)? {
            autowired(autowire, &mut rules)?;
        }
    }
    check_nesting(&rules)?;
    let probes = rules.iter().any(|r| matches!(r.method, Method::Probe(_)));
    if deadtime.is_none() && probes {
        notes.push(format!(
            "ndppd remembers for the ttl ({}) that an address did not answer (deadtime, where it exists, defaults to it); ndp-responder for probe_negative_ttl, 5s by default: set it to keep ndppd's",
            ttl.as_ref().map_or("30s".into(), |t| t.1.clone())
        ));
    }
    Ok(UplinkIn {
        out: UplinkOut {
            interface: iface,
            source: "target",
            router,
            probe_ttl: ttl.map(|t| t.1),
            probe_negative_ttl: deadtime.map(|t| t.1),
        },
        line: item.line,
        notes,
        rules,
    })
}

/// `autowire yes`: ndppd routes each address that answers behind a rule's interface to it.
/// A rule `iface NAME` on a whole /64 is what a SLAAC setup is (radvd advertising the /64 on
/// NAME, ndppd answering and routing the guests): our slaac rule, which does all three. A
/// static rule has no interface, so autowire does nothing to it. Anything else is refused:
/// ndp-responder adds routes only for the guests of a slaac rule.
fn autowired(autowire: &Item, rules: &mut [RuleIn]) -> Result<(), Refusal> {
    for rule in rules.iter_mut() {
        match &rule.method {
            Method::Static => rule.notes.push(
                "a static rule has no interface: ndppd's autowire adds no route for it".into(),
            ),
            Method::Probe(Some(via)) if rule.prefix.prefix_len() == 64 => {
                rule.notes.push(format!(
                    "iface {via} with autowire on a whole /64: a slaac rule. ndp-responder also sends the router advertisements on {via} (A=1, L=0), the job radvd (or systemd-networkd's IPv6SendRA) did next to ndppd: stop that on {via}; `ndp-responder doctor -c FILE` checks"
                ));
                rule.method = Method::Slaac(via.clone());
            }
            _ => {
                return Err((
                    autowire.line,
                    format!(
                        "autowire yes cannot be imported for rule {} (line {}): ndp-responder adds routes only for a slaac rule, which is an `iface IFACE` rule on a whole /64 (the guests on IFACE autoconfigure from it); make it one, or add the routes yourself (e.g. ip -6 route add {} dev IFACE) and remove the autowire line (in a copy), then import again",
                        rule.prefix, rule.line, rule.prefix
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// ndppd tries every rule that matches a target (and a static one answers at once);
/// ndp-responder lets the narrowest alone decide. Where the two differ, refuse: a rule inside
/// another with a different method, unless the narrower one is static (which answers at once
/// in both).
fn check_nesting(rules: &[RuleIn]) -> Result<(), Refusal> {
    for (i, inner) in rules.iter().enumerate() {
        for (j, outer) in rules.iter().enumerate() {
            let inside =
                outer.prefix.contains(&inner.prefix) && (outer.prefix != inner.prefix || j < i);
            if i == j || !inside || inner.method == outer.method || inner.method == Method::Static {
                continue;
            }
            let later = if i < j { outer } else { inner };
            if inner.prefix == outer.prefix {
                return Err((
                    later.line,
                    format!(
                        "rule {} is given again (first at line {}) with another method: ndppd tries both (and a static rule answers at once), ndp-responder has one method per prefix; keep one",
                        inner.prefix, outer.line
                    ),
                ));
            }
            return Err((
                later.line,
                format!(
                    "rule {} (line {}) lies inside rule {} (line {}) with another method: ndppd tries both (and a static rule answers at once), ndp-responder lets the narrower rule alone decide; give them the same method or make them disjoint",
                    inner.prefix, inner.line, outer.prefix, outer.line
                ),
            ));
        }
    }
    Ok(())
}

/// The comment lines for `notes`.
fn comments(out: &mut String, notes: &[String]) {
    for note in notes {
        out.push_str("# ");
        out.push_str(note);
        out.push('\n');
    }
}

/// Translate ndppd.conf text (named `source` in messages and the header) into our TOML.
/// An error is `SOURCE:LINE: what and how to fix`, LINE being the ndppd file's.
pub fn import(source: &str, text: &str) -> Result<String, String> {
    translate(source, text).map_err(|(line, message)| format!("{source}:{line}: {message}"))
}

fn translate(source: &str, text: &str) -> Result<String, Refusal> {
    let lines: Vec<&str> = text.lines().collect();
    let items = read(text)?;
    let mut header = vec![
        format!(
            "Imported from {} by `ndp-responder import-ndppd`. Review before use.",
            printable(source)
        ),
        "Whatever the rule, ndp-responder answers only addresses the kernel routes to an interface other than the uplink (ndppd's static answers any).".into(),
    ];
    let mut uplinks: Vec<UplinkIn> = Vec::new();
    for item in &items {
        if item.name == "proxy" {
            let uplink = proxy(item, &lines)?;
            if let Some(first) = uplinks
                .iter()
                .find(|u| u.out.interface == uplink.out.interface)
            {
                return Err((
                    item.line,
                    format!(
                        "proxy {} is given again (first at line {}): merge the two blocks into one",
                        uplink.out.interface, first.line
                    ),
                ));
            }
            uplinks.push(uplink);
        } else {
            no_block(item)?;
            if matches!(item.name.as_str(), "route-ttl" | "address-ttl") {
                once(&items, &item.name)?;
            }
            if item.name.is_empty() && item.value == ";" {
                continue;
            }
            header.push(unmapped(item, &lines, Level::Top)?);
        }
    }
    if uplinks.is_empty() {
        return Err((
            lines.len().max(1),
            "no 'proxy IFACE { ... }' block: nothing to import".into(),
        ));
    }
    let mut out = String::new();
    comments(&mut out, &header);
    // Where each table starts in the output, and the ndppd line it comes from.
    let mut anchors: Vec<(usize, usize)> = Vec::new();
    for uplink in &uplinks {
        out.push_str("\n[[uplink]]\n");
        anchors.push((out.lines().count(), uplink.line));
        comments(
            &mut out,
            &[format!(
                "line {}: {}",
                uplink.line,
                shown(&lines, uplink.line)
            )],
        );
        comments(&mut out, &uplink.notes);
        out.push_str(&table(&uplink.out)?);
        for rule in &uplink.rules {
            out.push_str("\n[[uplink.rule]]\n");
            anchors.push((out.lines().count(), rule.line));
            comments(
                &mut out,
                &[format!("line {}: {}", rule.line, shown(&lines, rule.line))],
            );
            comments(&mut out, &rule.notes);
            let (mode, interface) = match &rule.method {
                Method::Static => ("static", None),
                Method::Probe(via) => ("probe", via.clone()),
                Method::Slaac(iface) => ("slaac", Some(iface.clone())),
            };
            out.push_str(&table(&RuleOut {
                prefix: rule.prefix.to_string(),
                mode,
                interface,
            })?);
        }
    }
    // The same validation as check-config's: nothing that it would refuse is printed.
    if let Err(e) = crate::config::parse(source, &out) {
        let line = anchors
            .iter()
            .rev()
            .find(|(at, _)| *at <= e.line)
            .map_or(1, |(_, line)| *line);
        return Err((
            line,
            format!(
                "this cannot be imported: the configuration it becomes is invalid: {}",
                e.message
            ),
        ));
    }
    Ok(out)
}

/// One table's keys, serialised by the toml crate.
fn table(value: &impl Serialize) -> Result<String, Refusal> {
    toml::to_string(value).map_err(|e| (1, format!("cannot write the configuration: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::decide::targets::Mode;
    use std::time::Duration;

    fn roundtrip(conf: &str) -> (String, Vec<crate::uplink::Options>) {
        let toml = import("ndppd.conf", conf).unwrap_or_else(|e| panic!("{e}\n{conf}"));
        let parsed =
            config::parse("imported.toml", &toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        (toml, parsed.uplinks)
    }

    fn refused(conf: &str) -> String {
        match import("ndppd.conf", conf) {
            Ok(toml) => panic!("imported instead of refused:\n{conf}\n---\n{toml}"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_static_rule_as_in_the_field_report() {
        let (toml, uplinks) = roundtrip(
            "proxy uplink {\n  rule 2001:db8:fbc0:2:646f:636b:6572::/112 {\n    static\n  }\n}\n",
        );
        assert_eq!(uplinks[0].ifname, "uplink");
        assert_eq!(uplinks[0].rules[0].mode, Mode::Static);
        assert!(toml.contains("source = \"target\""));
    }

    #[test]
    fn auto_and_iface_rules_become_probe_rules() {
        let (_, uplinks) = roundtrip(
            "route-ttl 30000\nproxy eth0 {\n  router no\n  timeout 500\n  ttl 30000\n  rule 2001:db8:1::/80 {\n    auto\n  }\n  rule 2001:db8:2::/80 {\n    iface br0\n  }\n}\n",
        );
        let eth0 = &uplinks[0];
        assert!(!eth0.settings.router);
        assert_eq!(eth0.probe.ttl, Duration::from_secs(30));
        assert_eq!(eth0.rules[0].mode, Mode::Probe { via: None });
        assert_eq!(
            eth0.rules[1].mode,
            Mode::Probe {
                via: Some("br0".into())
            }
        );
    }

    #[test]
    fn several_proxies_comments_and_unknown_settings() {
        let (toml, uplinks) = roundtrip(
            "# two uplinks\nproxy eth0 {\n  keepalive yes # refresh\n  rule 2001:db8:1::/64 {\n    autovia yes\n  }\n}\nproxy eth1 {\n  promiscuous no\n  rule 2001:db8:9::/64 { static }\n}\n",
        );
        assert_eq!(uplinks.len(), 2);
        assert_eq!(
            uplinks[0].rules[0].mode,
            Mode::Static,
            "no method: static, as ndppd up to 0.2.4 reads it"
        );
        assert!(toml.contains("(0.2.5 refuses it)"), "{toml}");
        assert!(
            toml.contains("# line 3: keepalive yes # refresh: no equivalent"),
            "{toml}"
        );
        assert!(
            toml.contains("# line 5: autovia yes: no equivalent"),
            "{toml}"
        );
        assert!(
            toml.contains("# line 9: promiscuous no: the default"),
            "{toml}"
        );
    }

    #[test]
    fn broken_files_are_refused_with_a_line() {
        assert_eq!(
            refused("proxy eth0 {\n rule 2001:db8::/64 {\n"),
            "ndppd.conf:2: the '{' opened here is never closed: add the missing '}'"
        );
        assert!(refused("}\n").starts_with("ndppd.conf:1: '}' without"));
        assert!(refused("route-ttl 1\n").contains("nothing to import"));
        assert!(refused("proxy eth0 {\n router yes\n}\n")
            .contains("ndppd.conf:1: proxy eth0 has no rule"));
    }

    // The bugs of issue 15, item 5: each refused or imported as ndppd reads it.

    #[test]
    fn router_false_and_no_clear_the_flag_and_other_words_are_refused() {
        for word in ["false", "no", "FALSE", "No"] {
            let conf =
                format!("proxy eth0 {{\n router {word}\n rule 2001:db8::/64 {{ static }}\n}}\n");
            let (toml, uplinks) = roundtrip(&conf);
            assert!(!uplinks[0].settings.router, "router {word}");
            assert!(toml.contains("router = false"), "{toml}");
        }
        for word in ["true", "yes", "YES"] {
            let conf =
                format!("proxy eth0 {{\n router {word}\n rule 2001:db8::/64 {{ static }}\n}}\n");
            assert!(roundtrip(&conf).1[0].settings.router, "router {word}");
        }
        assert!(
            refused("proxy eth0 {\n router on\n rule 2001:db8::/64 { static }\n}\n").starts_with(
                "ndppd.conf:2: router 'on' is not yes, no, true or false (ndppd reads it as no)"
            )
        );
        assert!(
            refused("proxy eth0 {\n router\n rule 2001:db8::/64 { static }\n}\n")
                .starts_with("ndppd.conf:2: router has no value")
        );
    }

    #[test]
    fn an_address_without_a_length_is_one_address() {
        let (toml, uplinks) = roundtrip("proxy eth0 {\n rule 2001:db8:3::1 { static }\n}\n");
        assert_eq!(uplinks[0].rules[0].prefix.to_string(), "2001:db8:3::1/128");
        assert!(toml.contains("prefix = \"2001:db8:3::1/128\""), "{toml}");
    }

    #[test]
    fn host_bits_are_cleared_as_ndppd_ignores_them() {
        let (toml, uplinks) = roundtrip("proxy eth0 {\n rule 2001:db8:5::1/64 { auto }\n}\n");
        assert_eq!(uplinks[0].rules[0].prefix.to_string(), "2001:db8:5::/64");
        assert!(
            toml.contains("# ndppd compares only the first 64 bits of 2001:db8:5::1/64: the prefix is 2001:db8:5::/64"),
            "{toml}"
        );
    }

    #[test]
    fn names_that_need_escaping_are_written_as_valid_toml() {
        let (toml, uplinks) =
            roundtrip("proxy eth\"9\\x {\n rule 2001:db8::/64 {\n  iface 'br\"0'\n }\n}\n");
        assert_eq!(uplinks[0].ifname, "eth\"9\\x");
        assert_eq!(
            uplinks[0].rules[0].mode,
            Mode::Probe {
                via: Some("br\"0".into())
            },
            "{toml}"
        );
    }

    #[test]
    fn a_quoted_name_before_a_brace_is_refused_as_ndppd_misreads_it() {
        assert!(refused("proxy \"eth9\" {\n rule 2001:db8::/64 { static }\n}\n")
            .starts_with("ndppd.conf:1: ndppd reads the quoted value \"eth9\" and then takes the rest of this line"));
    }

    #[test]
    fn durations_without_a_value_or_out_of_range_are_refused() {
        assert_eq!(
            refused("proxy eth0 {\n ttl\n rule 2001:db8::/64 { auto }\n}\n"),
            "ndppd.conf:2: ttl has no value, which ndppd reads as 0 ms: give the milliseconds, e.g. ttl 30000"
        );
        assert!(
            refused("proxy eth0 {\n ttl 30s\n rule 2001:db8::/64 { auto }\n}\n")
                .starts_with("ndppd.conf:2: ttl '30s' is not a whole number of milliseconds")
        );
        assert!(
            refused("proxy eth0 {\n ttl 999\n rule 2001:db8::/64 { auto }\n}\n")
                .starts_with("ndppd.conf:2: ttl 999 ms is outside")
        );
        assert!(
            refused("proxy eth0 {\n deadtime 3600001\n rule 2001:db8::/64 { auto }\n}\n")
                .starts_with("ndppd.conf:2: deadtime 3600001 ms is outside")
        );
    }

    #[test]
    fn deadtime_becomes_the_negative_ttl() {
        let (toml, uplinks) =
            roundtrip("proxy eth0 {\n ttl 1500\n deadtime 2000\n rule 2001:db8::/64 { auto }\n}\n");
        assert_eq!(uplinks[0].probe.ttl, Duration::from_millis(1500));
        assert_eq!(uplinks[0].probe.negative_ttl, Duration::from_secs(2));
        assert!(toml.contains("probe_negative_ttl = \"2s\""), "{toml}");
    }

    #[test]
    fn autowire_on_a_whole_64_behind_an_interface_becomes_a_slaac_rule() {
        let (toml, uplinks) = roundtrip(
            "proxy eth0 {\n autowire yes\n rule 2001:db8:1::/64 {\n  iface br0\n  autovia no\n }\n rule 2001:db8:1::d:5 { static }\n}\n",
        );
        let rules = &uplinks[0].rules;
        assert_eq!(
            rules[0].prefix,
            "2001:db8:1::/64".parse::<Ipv6Net>().unwrap()
        );
        assert_eq!(rules[0].slaac_interface(), Some("br0"), "{toml}");
        assert_eq!(rules[1].mode, Mode::Static);
        assert!(
            toml.contains("mode = \"slaac\"\ninterface = \"br0\""),
            "{toml}"
        );
        assert!(toml.contains("stop that on br0"), "{toml}");
        assert!(
            toml.contains("# line 2: autowire yes: ndppd adds a route"),
            "{toml}"
        );
    }

    #[test]
    fn two_methods_in_one_rule_are_refused() {
        assert!(
            refused("proxy eth0 {\n rule 2001:db8::/64 {\n  static\n  auto\n }\n}\n").starts_with(
                "ndppd.conf:4: rule 2001:db8::/64 has both 'static' (line 3) and 'auto'"
            )
        );
        assert!(
            refused("proxy eth0 {\n rule 2001:db8::/64 {\n  iface br0\n  static\n }\n}\n")
                .contains("has both 'iface br0' (line 3) and 'static'")
        );
    }

    #[test]
    fn the_comments_say_what_ndp_responder_does_instead() {
        let (toml, _) = roundtrip(
            "proxy eth0 {\n autowire no\n promiscuous no\n rule 2001:db8::/64 { auto }\n}\n",
        );
        assert!(
            toml.contains(
                "# line 2: autowire no: the default: ndp-responder adds no routes for these rules"
            ),
            "{toml}"
        );
        assert!(
            toml.contains("# line 3: promiscuous no: the default: ndp-responder never puts the uplink in promiscuous mode"),
            "{toml}"
        );
        assert!(!toml.contains("routes are followed from the kernel instead"));
        assert!(
            refused("proxy eth0 {\n autowire yes\n rule 2001:db8::d:0/112 { iface br0 }\n}\n")
                .starts_with(
                "ndppd.conf:2: autowire yes cannot be imported for rule 2001:db8::d:0/112 (line 3)"
            )
        );
        assert!(
            refused("proxy eth0 {\n autowire yes\n rule 2001:db8::/64 { auto }\n}\n")
                .contains("ndp-responder adds routes only for a slaac rule")
        );
        assert!(
            refused("proxy eth0 {\n promiscuous yes\n rule 2001:db8::/64 { auto }\n}\n")
                .starts_with("ndppd.conf:2: promiscuous yes cannot be imported")
        );
    }

    #[test]
    fn blocks_ndppd_ignores_are_refused() {
        assert!(
            refused("proxy eth0\n{\n rule 2001:db8::/64 { static }\n}\n")
                .starts_with("ndppd.conf:1: proxy eth0 has no '{ }' block")
        );
        assert!(
            refused("proxy eth0 {\n rule 2001:db8::/64\n {\n  iface br0\n }\n}\n")
                .starts_with("ndppd.conf:3: a '{' block without a name")
        );
    }

    #[test]
    fn rules_ndppd_would_combine_are_refused() {
        assert!(refused(
            "proxy eth0 {\n rule 2001:db8::/64 { static }\n rule 2001:db8::/80 { auto }\n}\n"
        )
        .starts_with(
            "ndppd.conf:3: rule 2001:db8::/80 (line 3) lies inside rule 2001:db8::/64 (line 2)"
        ));
        assert!(refused(
            "proxy eth0 {\n rule 2001:db8::/64 { static }\n rule 2001:db8::/64 { auto }\n}\n"
        )
        .starts_with("ndppd.conf:3: rule 2001:db8::/64 is given again (first at line 2)"));
        // A narrower static rule answers at once in both: accepted.
        roundtrip("proxy eth0 {\n rule 2001:db8::/64 { auto }\n rule 2001:db8::53 { static }\n}\n");
    }

    #[test]
    fn ndppd_syntax_forms_are_read_as_ndppd_reads_them() {
        let (_, uplinks) = roundtrip(
            "/* block\n comment */ proxy eth0{ // c\n router = no\n ttl=45000\n rule 2001:db8::/64{ static; }\n rule 2001:db8:1::/64 { iface \"br0\" # c\n }\n}\n",
        );
        assert!(!uplinks[0].settings.router);
        assert_eq!(uplinks[0].probe.ttl, Duration::from_secs(45));
        assert_eq!(uplinks[0].rules[0].mode, Mode::Static);
        assert_eq!(
            uplinks[0].rules[1].mode,
            Mode::Probe {
                via: Some("br0".into())
            }
        );
    }
}
