//! `ndp-responder import-ndppd`: turn an ndppd.conf into the equivalent configuration file.
//!
//! Owns: reading ndppd's configuration language (words, `{ }` blocks, `#` comments) and writing
//! TOML in our schema, with a comment for every setting that has no equivalent.
//!
//! Must not: touch the system; the output is printed for the operator to review.

use std::fmt::Write;

/// One parsed item: `name args... [{ children }]`.
#[derive(Debug)]
struct Item {
    name: String,
    args: Vec<String>,
    children: Vec<Item>,
    line: usize,
}

fn tokenize(text: &str) -> Vec<(String, usize)> {
    let mut tokens = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default();
        let spaced = line
            .replace('{', " { ")
            .replace('}', " } ")
            .replace(';', " ; ");
        tokens.extend(spaced.split_whitespace().map(|t| (t.to_string(), n + 1)));
    }
    tokens
}

fn parse_items(
    tokens: &[(String, usize)],
    pos: &mut usize,
    nested: bool,
) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut current: Option<Item> = None;
    while *pos < tokens.len() {
        let (token, line) = &tokens[*pos];
        *pos += 1;
        match token.as_str() {
            "{" => {
                let mut item = current
                    .take()
                    .ok_or_else(|| format!("line {line}: '{{' without a name before it"))?;
                item.children = parse_items(tokens, pos, true)?;
                items.push(item);
            }
            "}" => {
                if !nested {
                    return Err(format!("line {line}: '}}' without a matching '{{'"));
                }
                items.extend(current.take());
                return Ok(items);
            }
            ";" => items.extend(current.take()),
            word => match current.as_mut() {
                // ndppd puts one setting per line: a new line starts a new item.
                Some(item) if item.line == *line => item.args.push(word.to_string()),
                _ => {
                    items.extend(current.take());
                    current = Some(Item {
                        name: word.to_string(),
                        args: Vec::new(),
                        children: Vec::new(),
                        line: *line,
                    });
                }
            },
        }
    }
    if nested {
        return Err("the file ends inside a '{ }' block".into());
    }
    items.extend(current);
    Ok(items)
}

/// Translate ndppd.conf text (named `source` in the header) into our TOML.
pub fn import(source: &str, text: &str) -> Result<String, String> {
    let tokens = tokenize(text);
    let items = parse_items(&tokens, &mut 0, false)?;
    let mut out =
        format!("# Imported from {source} by `ndp-responder import-ndppd`. Review before use.\n");
    let mut proxies = 0;
    for item in &items {
        if item.name != "proxy" {
            let _ = writeln!(
                out,
                "# {} {}: no equivalent (line {})",
                item.name,
                item.args.join(" "),
                item.line
            );
            continue;
        }
        proxies += 1;
        let iface = item
            .args
            .first()
            .ok_or_else(|| format!("line {}: 'proxy' needs an interface name", item.line))?;
        let _ = writeln!(out, "\n[[uplink]]\ninterface = \"{iface}\"");
        let _ = writeln!(
            out,
            "# ndppd answers from the link-local address; \"target\" also passes hypervisor anti-spoof filters\nsource = \"target\""
        );
        let mut rules = String::new();
        for setting in &item.children {
            let value = setting.args.first().map(String::as_str).unwrap_or("");
            match setting.name.as_str() {
                "router" => {
                    let _ = writeln!(out, "router = {}", value != "no");
                }
                "ttl" => {
                    let _ = writeln!(out, "probe_ttl = \"{value}ms\"");
                }
                "rule" => rules.push_str(&rule(setting)?),
                other => {
                    let _ = writeln!(
                        out,
                        "# {other} {}: no equivalent (line {}){}",
                        setting.args.join(" "),
                        setting.line,
                        match other {
                            "timeout" | "retries" => "; probes wait 500 ms and try 3 times",
                            "keepalive" => "; probe entries in use are always refreshed",
                            "promiscuous" | "autowire" =>
                                "; routes are followed from the kernel instead",
                            _ => "",
                        }
                    );
                }
            }
        }
        if rules.is_empty() {
            return Err(format!("line {}: proxy {iface} has no rule", item.line));
        }
        out.push_str(&rules);
    }
    if proxies == 0 {
        return Err("no 'proxy IFACE { ... }' block: nothing to import".into());
    }
    Ok(out)
}

fn rule(item: &Item) -> Result<String, String> {
    let prefix = item
        .args
        .first()
        .ok_or_else(|| format!("line {}: 'rule' needs a prefix", item.line))?;
    let mut out = format!("\n[[uplink.rule]]\nprefix = \"{prefix}\"\n");
    let mut mode = None;
    for setting in &item.children {
        match setting.name.as_str() {
            "static" => mode = Some("mode = \"static\"\n".to_string()),
            // ndppd's auto asks the interface the route points to: our probe rule.
            "auto" => {
                mode = Some(
                    "mode = \"probe\"   # ndppd auto: probe where the route points\n".to_string(),
                )
            }
            "iface" => {
                let via = setting.args.first().ok_or_else(|| {
                    format!("line {}: 'iface' needs an interface name", setting.line)
                })?;
                mode = Some(format!("mode = \"probe\"\ninterface = \"{via}\"\n"));
            }
            other => {
                let _ = writeln!(
                    out,
                    "# {other} {}: no equivalent (line {})",
                    setting.args.join(" "),
                    setting.line
                );
            }
        }
    }
    // ndppd's default, a rule without a method, is static.
    out.push_str(&mode.unwrap_or_else(|| "mode = \"static\"\n".into()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::decide::targets::Mode;

    fn roundtrip(conf: &str) -> (String, Vec<crate::uplink::Options>) {
        let toml = import("ndppd.conf", conf).unwrap();
        let parsed =
            config::parse("imported.toml", &toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        (toml, parsed.uplinks)
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
        assert_eq!(eth0.probe.ttl, std::time::Duration::from_secs(30));
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
            "no method means static in ndppd"
        );
        assert!(
            toml.contains("# keepalive yes: no equivalent (line 3)"),
            "{toml}"
        );
        assert!(
            toml.contains("# autovia yes: no equivalent (line 5)"),
            "{toml}"
        );
        assert!(
            toml.contains("# promiscuous no: no equivalent (line 9)"),
            "{toml}"
        );
    }

    #[test]
    fn broken_files_are_refused_with_a_line() {
        assert!(import("x", "proxy eth0 {\n rule 2001:db8::/64 {\n")
            .unwrap_err()
            .contains("ends inside"));
        assert!(import("x", "}\n").unwrap_err().contains("line 1"));
        assert!(import("x", "route-ttl 1\n")
            .unwrap_err()
            .contains("nothing to import"));
        assert!(import("x", "proxy eth0 {\n router yes\n}\n")
            .unwrap_err()
            .contains("has no rule"));
    }
}
