//! The configuration file: several uplinks, each with its rules and upstream care.
//!
//! Owns: the TOML schema (below), its validation with errors that name `file:line` and say
//! what to write instead, and the translation into the daemon's [`Options`]. The CLI's
//! `-i/-n/--auto/--probe/-N` flags are a shortcut for one uplink of this same shape: they
//! become [`Options`] here too ([`from_flags`]), through the same checks; rules may overlap
//! freely (an address is answered when any rule says it is ours); durations and numbers go through the same parsers as the flags ([`crate::config::args`] owns their
//! ranges).
//!
//! ```toml
//! # Top-level keys come before the first [[uplink]] (all optional):
//! control_socket = "/run/ndp-responder/control.sock"   # "none" disables it
//! control_mode = "0660"        # 0600: root only; 0660: root and the socket's group
//! # metrics = "[::1]:9417"     # Prometheus text format on GET /metrics
//!
//! [[uplink]]
//! interface = "eth0"
//! source = "target"            # target | link-local | an IPv6 address
//! router = true
//! override = true              # Override flag on answers to multicast solicitations
//! gateway_keepalive = "30s"    # optional, 1s to 1h
//! announce_interval = "10m"    # optional, 1s to 1d
//! probe_ttl = "30s"            # optional, 1s to 1d
//! probe_negative_ttl = "5s"    # optional, 1s to 1h
//! rate_limit = 100000          # answers/s in all (0: no limit; at most 10000000)
//! rate_limit_per_source = 10000 # answers/s to one source (0: no limit; at most 10000000)
//! fast_path = true             # answer in the kernel (XDP) where it can; false: sockets only
//! drop_uncovered = false       # fast path: drop NS for targets nobody here answers (floods)
//!
//! [[uplink.rule]]
//! prefix = "2001:db8:1::d:0/112"
//! mode = "static"              # static | auto | probe | docker | slaac
//! # interface = "br0"          # probe: downstream interface (else chosen by route);
//! #                            # slaac: the guests' bridge (required)
//! # network = "ipv6exposed"    # docker: network name (prefix optional: limits the addresses)
//! # dns = ["2001:db8::53"]     # slaac: RDNSS for the guests (else relayed from the uplink's RA)
//! # (slaac: prefix optional, a /64; default the uplink's global /64s, followed)
//! ```
//!
//! Must not: touch the system (`check-config` validates without it).

pub mod args;
pub mod docs;
mod mistakes;
pub mod ndppd;
pub mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv6Net;
use serde::Deserialize;
use toml::Spanned;

use crate::decide::policy::{Settings, SourcePolicy};
use crate::decide::probe;
use crate::decide::targets::{Mode, Rule};
use crate::uplink::Options;

/// Where the daemon looks when neither `-i` nor `-c` is given.
pub const DEFAULT_PATH: &str = "/etc/ndp-responder.toml";

/// Where the control socket is unless configured otherwise (systemd's RuntimeDirectory).
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/ndp-responder/control.sock";
/// Who may ask: the owner and its group.
pub const DEFAULT_CONTROL_MODE: u32 = 0o660;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    control_socket: Option<Spanned<String>>,
    #[serde(default)]
    control_mode: Option<Spanned<String>>,
    #[serde(default)]
    metrics: Option<Spanned<String>>,
    uplink: Vec<Spanned<Uplink>>,
}

/// A validated configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    pub uplinks: Vec<Options>,
    /// Some(None): `control_socket = "none"`; None: not set (the default applies).
    pub control: Option<Option<PathBuf>>,
    pub control_mode: Option<u32>,
    pub metrics: Option<SocketAddr>,
    /// Valid, but likely to fail where the file is used (e.g. under the shipped unit), each at
    /// its line: `check-config` and the daemon's start print them.
    pub warnings: Vec<ConfigError>,
}

/// The address families the shipped systemd unit allows (its `RestrictAddressFamilies=`).
pub const UNIT_ADDRESS_FAMILIES: &str = "AF_PACKET AF_NETLINK AF_UNIX AF_INET6";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Uplink {
    interface: Spanned<String>,
    #[serde(default)]
    source: Option<Spanned<String>>,
    #[serde(default = "yes")]
    router: bool,
    #[serde(default = "yes", rename = "override")]
    override_flag: bool,
    #[serde(default)]
    gateway_keepalive: Option<Spanned<String>>,
    #[serde(default)]
    announce_interval: Option<Spanned<String>>,
    #[serde(default)]
    probe_ttl: Option<Spanned<String>>,
    #[serde(default)]
    probe_negative_ttl: Option<Spanned<String>>,
    /// Wider than the range on purpose: negative and too large numbers are refused by
    /// [`values::rate_limit`] in plain words, not by serde.
    #[serde(default)]
    rate_limit: Option<Spanned<i128>>,
    #[serde(default)]
    rate_limit_per_source: Option<Spanned<i128>>,
    #[serde(default = "yes")]
    fast_path: bool,
    #[serde(default)]
    drop_uncovered: bool,
    #[serde(default)]
    rule: Vec<Spanned<RuleEntry>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    #[serde(default)]
    prefix: Option<Spanned<String>>,
    mode: Spanned<String>,
    #[serde(default)]
    interface: Option<Spanned<String>>,
    #[serde(default)]
    network: Option<Spanned<String>>,
    #[serde(default)]
    dns: Option<Spanned<Vec<String>>>,
}

/// A configuration error, pointing at the line to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path, self.line, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Read and validate the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let hint = "write one (see the README), or give -c PATH, or use -i and -n";
    parse(&path.display().to_string(), &read(path, hint)?)
}

fn read(path: &Path, hint: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.display().to_string(),
        line: 0,
        message: format!("cannot read it ({e}): {hint}"),
    })
}

/// The control socket the file at `path` gives the daemon (None: `control_socket = "none"`;
/// the default path when it names none). Only that key is read: `status -c` must still find a
/// daemon whose file was broken since it started (a refused reload is what it then reports).
pub fn control_socket_of(path: &Path) -> Result<Option<PathBuf>, ConfigError> {
    #[derive(Deserialize)]
    struct Top {
        #[serde(default)]
        control_socket: Option<Spanned<String>>,
    }
    let text = read(
        path,
        "give the daemon's configuration file, or --socket PATH",
    )?;
    let shown = path.display().to_string();
    let at = |offset: usize, message: String| ConfigError {
        path: shown.clone(),
        line: text[..offset.min(text.len())].matches('\n').count() + 1,
        message,
    };
    let top: Top = toml::from_str(&text).map_err(|e| {
        at(
            e.span().map_or(0, |s| s.start),
            format!(
                "{} (looking for its control_socket: give --socket PATH instead)",
                e.message().trim_end()
            ),
        )
    })?;
    match top.control_socket {
        None => Ok(Some(PathBuf::from(DEFAULT_CONTROL_SOCKET))),
        Some(c) => control_socket(c.get_ref()).map_err(|e| at(c.span().start, e)),
    }
}

/// The value of `control_socket`: a path, or "none".
fn control_socket(value: &str) -> Result<Option<PathBuf>, String> {
    match value {
        "none" => Ok(None),
        "" => Err("control_socket is empty: give a path, or \"none\" to have no control socket".into()),
        p if !p.starts_with('/') => Err(format!(
            "control_socket '{p}' must be an absolute path, e.g. \"/run/ndp-responder/control.sock\""
        )),
        p => Ok(Some(PathBuf::from(p))),
    }
}

/// Validate `text` (named `path` in errors) and turn it into one [`Options`] per uplink.
pub fn parse(path: &str, text: &str) -> Result<Config, ConfigError> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let err = |span: std::ops::Range<usize>, message: String| ConfigError {
        path: path.to_string(),
        line: line_of(span.start),
        message,
    };
    let file: File = toml::from_str(text).map_err(|e| {
        let (at, message) = mistakes::explain(path, text, &e);
        err(at..at, message)
    })?;
    if file.uplink.is_empty() {
        return Err(err(
            0..0,
            "no [[uplink]]: add one with interface = \"eth0\" and a [[uplink.rule]]".into(),
        ));
    }
    let mut all = Vec::new();
    let mut interfaces: Vec<Spanned<String>> = Vec::new();
    for uplink in &file.uplink {
        let up = uplink.get_ref();
        let name = up.interface.get_ref();
        if name.is_empty() {
            return Err(err(
                up.interface.span(),
                "interface is empty: name the uplink, e.g. \"eth0\"".into(),
            ));
        }
        if let Some(first) = interfaces.iter().find(|i| i.get_ref() == name) {
            return Err(err(
                up.interface.span(),
                format!("uplink {name} is configured twice (first at line {}): merge the two into one [[uplink]]", line_of(first.span().start)),
            ));
        }
        interfaces.push(up.interface.clone());
        let source = match &up.source {
            None => SourcePolicy::Target,
            Some(s) => s.get_ref().parse().map_err(|e: String| err(s.span(), e))?,
        };
        let duration = |field: &Option<Spanned<String>>,
                        key: &str,
                        range: &values::DurationRange|
         -> Result<Option<Duration>, ConfigError> {
            field
                .as_ref()
                .map(|d| {
                    values::parse_duration_in(d.get_ref(), range)
                        .map_err(|e| err(d.span(), format!("{key}: {e}")))
                })
                .transpose()
        };
        let rate = |field: &Option<Spanned<i128>>, key: &str, default: u32| {
            field.as_ref().map_or(Ok(default), |n| {
                values::rate_limit(*n.get_ref()).map_err(|e| err(n.span(), format!("{key}: {e}")))
            })
        };
        let defaults = probe::Limits::default();
        let mut rules: Vec<(Rule, std::ops::Range<usize>)> = Vec::new();
        if up.rule.is_empty() {
            return Err(err(
                uplink.span(),
                format!("uplink {name} has no [[uplink.rule]]: add at least one"),
            ));
        }
        for entry in &up.rule {
            let rule = rule_from(entry.get_ref())
                .map_err(|(span, message)| err(span.unwrap_or(entry.span()), message))?;
            if rule.slaac_interface() == Some(name.as_str()) {
                return Err(err(
                    entry.span(),
                    format!("the slaac rule names the uplink {name} itself: give the bridge the guests are on, e.g. interface = \"br0\""),
                ));
            }
            rules.push((rule, entry.span()));
        }
        let limits = crate::decide::ratelimit::Limits::default();
        all.push(Options {
            ifname: name.clone(),
            origins: rules
                .iter()
                .map(|(_, span)| format!("{path}:{}", line_of(span.start)))
                .collect(),
            rules: rules.into_iter().map(|(r, _)| r).collect(),
            settings: Settings {
                source,
                router: up.router,
                override_flag: up.override_flag,
            },
            probe: probe::Limits {
                ttl: duration(&up.probe_ttl, "probe_ttl", &values::PROBE_TTL)?
                    .unwrap_or(defaults.ttl),
                negative_ttl: duration(
                    &up.probe_negative_ttl,
                    "probe_negative_ttl",
                    &values::PROBE_NEGATIVE_TTL,
                )?
                .unwrap_or(defaults.negative_ttl),
                ..defaults
            },
            rate_limit: crate::decide::ratelimit::Limits {
                per_source: rate(
                    &up.rate_limit_per_source,
                    "rate_limit_per_source",
                    limits.per_source,
                )?,
                total: rate(&up.rate_limit, "rate_limit", limits.total)?,
            },
            keepalive: duration(
                &up.gateway_keepalive,
                "gateway_keepalive",
                &values::GATEWAY_KEEPALIVE,
            )?,
            announce: duration(
                &up.announce_interval,
                "announce_interval",
                &values::ANNOUNCE_INTERVAL,
            )?,
            fast_path: up.fast_path,
            drop_uncovered: up.drop_uncovered,
        });
    }
    let control = file
        .control_socket
        .as_ref()
        .map(|c| control_socket(c.get_ref()).map_err(|e| err(c.span(), e)))
        .transpose()?;
    let control_mode = file
        .control_mode
        .as_ref()
        .map(|m| values::parse_mode(m.get_ref()).map_err(|e| err(m.span(), e)))
        .transpose()?;
    let metrics = file
        .metrics
        .as_ref()
        .map(|m| {
            values::parse_metrics_addr(m.get_ref())
                .map_err(|e| err(m.span(), format!("metrics: {e}")))
        })
        .transpose()?;
    let mut warnings = Vec::new();
    if let (Some(addr), Some(m)) = (metrics, &file.metrics) {
        if addr.is_ipv4() {
            warnings.push(err(m.span(), ipv4_metrics(m.get_ref(), addr.port())));
        }
    }
    Ok(Config {
        uplinks: all,
        control,
        control_mode,
        metrics,
        warnings,
    })
}

/// The warning for an IPv4 metrics address: the shipped unit forbids AF_INET.
fn ipv4_metrics(written: &str, port: u16) -> String {
    format!(
        "metrics = \"{written}\" binds an IPv4 address, but the shipped systemd unit allows only RestrictAddressFamilies={UNIT_ADDRESS_FAMILIES} (no AF_INET): under it the daemon cannot serve metrics and will not start; write metrics = \"[::1]:{port}\" (loopback) or \"[::]:{port}\" (every address, IPv4 too), or allow AF_INET in a drop-in (systemctl edit ndp-responder: [Service] RestrictAddressFamilies=AF_INET)"
    )
}

/// The one uplink of `-i IFACE` and its flags, checked as a file's uplink is (the flags'
/// values were parsed by the same functions as the file's).
pub fn from_flags(args: &args::RunArgs) -> Result<Options, String> {
    let ifname = args.ifname.clone().unwrap_or_default();
    if ifname.is_empty() {
        return Err("-i/--ifname is empty: name the uplink, e.g. -i eth0".into());
    }
    if args.docker_networks.iter().any(String::is_empty) {
        return Err(
            "-N/--docker-network is empty: name the network (see `docker network ls`)".into(),
        );
    }
    if args.slaac.iter().any(String::is_empty) {
        return Err("--slaac is empty: name the guests' bridge, e.g. --slaac br0".into());
    }
    if args.slaac.contains(&ifname) {
        return Err(format!(
            "--slaac {ifname} names the uplink itself: give the bridge the guests are on (e.g. --slaac br0)"
        ));
    }
    let rules = args.rules();
    Ok(Options {
        ifname,
        rules,
        origins: Vec::new(),
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
        rate_limit: crate::decide::ratelimit::Limits {
            per_source: args.rate_limit_per_source,
            total: args.rate_limit,
        },
        keepalive: args.gateway_keepalive,
        announce: args.announce_interval,
        fast_path: !args.no_fast_path,
        drop_uncovered: args.drop_uncovered,
    })
}

type RuleError = (Option<std::ops::Range<usize>>, String);

fn rule_from(entry: &RuleEntry) -> Result<Rule, RuleError> {
    let prefix = match &entry.prefix {
        Some(p) => Some(values::parse_prefix(p.get_ref()).map_err(|e| (Some(p.span()), e))?),
        None => None,
    };
    let need_prefix = |mode: &str| -> Result<Ipv6Net, RuleError> {
        prefix.ok_or_else(|| {
            (
                Some(entry.mode.span()),
                format!(
                    "a {mode} rule needs prefix = \"2001:db8:1::d:0/112\" (your containers' range)"
                ),
            )
        })
    };
    let refuse = |field: &Option<Spanned<String>>, what: &str| -> Result<(), RuleError> {
        match field {
            Some(f) => Err((Some(f.span()), format!("{what}: remove it"))),
            None => Ok(()),
        }
    };
    let mode = entry.mode.get_ref().as_str();
    if mode != "slaac" {
        if let Some(dns) = &entry.dns {
            return Err((
                Some(dns.span()),
                format!("dns applies to slaac rules, not {mode}: remove it"),
            ));
        }
    }
    match mode {
        "slaac" => {
            refuse(&entry.network, "network applies to docker rules, not slaac")?;
            let interface = entry
                .interface
                .as_ref()
                .map(|i| i.get_ref().clone())
                .filter(|i| !i.is_empty())
                .ok_or((
                    Some(entry.mode.span()),
                    "a slaac rule needs interface = \"br0\" (the bridge the guests are on)"
                        .to_string(),
                ))?;
            let prefix = match &entry.prefix {
                Some(p) => {
                    values::parse_slaac_prefix(p.get_ref()).map_err(|e| (Some(p.span()), e))?
                }
                None => Ipv6Net::default(),
            };
            let dns = match &entry.dns {
                Some(d) => d
                    .get_ref()
                    .iter()
                    .map(|s| values::parse_dns_server(s))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| (Some(d.span()), format!("dns: {e}")))?,
                None => Vec::new(),
            };
            Ok(Rule {
                prefix,
                mode: Mode::Slaac { interface, dns },
            })
        }
        "static" | "auto" => {
            refuse(
                &entry.interface,
                &format!("interface applies to probe and slaac rules, not {mode}"),
            )?;
            refuse(
                &entry.network,
                &format!("network applies to docker rules, not {mode}"),
            )?;
            let prefix = need_prefix(mode)?;
            let mode = if mode == "static" {
                Mode::Static
            } else {
                Mode::Auto
            };
            Ok(Rule { prefix, mode })
        }
        "probe" => {
            refuse(&entry.network, "network applies to docker rules, not probe")?;
            Ok(Rule {
                prefix: need_prefix(mode)?,
                mode: Mode::Probe {
                    via: entry.interface.as_ref().map(|i| i.get_ref().clone()),
                },
            })
        }
        "docker" => {
            refuse(
                &entry.interface,
                "interface applies to probe and slaac rules, not docker",
            )?;
            let network = entry
                .network
                .as_ref()
                .map(|n| n.get_ref().clone())
                .filter(|n| !n.is_empty())
                .ok_or((
                    Some(entry.mode.span()),
                    "a docker rule needs network = \"NAME\" (see `docker network ls`)".to_string(),
                ))?;
            Ok(Rule {
                prefix: prefix.unwrap_or_default(),
                mode: Mode::Docker { network },
            })
        }
        other => Err((
            Some(entry.mode.span()),
            format!("mode \"{other}\" is not one of static, auto, probe, docker, slaac"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    const GOOD: &str = r#"
[[uplink]]
interface = "eth0"
source = "target"
router = true
gateway_keepalive = "30s"
announce_interval = "10m"

[[uplink.rule]]
prefix = "2001:db8:1::d:0/112"
mode = "static"

[[uplink.rule]]
prefix = "2001:db8:1::e:0/112"
mode = "probe"
interface = "br1"

[[uplink.rule]]
mode = "docker"
network = "ipv6exposed"

[[uplink]]
interface = "eth1"
source = "link-local"
router = false

[[uplink.rule]]
prefix = "2001:db8:2::/64"
mode = "auto"
"#;

    fn error(text: &str) -> ConfigError {
        parse("/etc/ndp-responder.toml", text).unwrap_err()
    }

    #[test]
    fn the_documented_schema_parses() {
        let uplinks = parse("x.toml", GOOD).unwrap().uplinks;
        assert_eq!(uplinks.len(), 2);
        let eth0 = &uplinks[0];
        assert_eq!(eth0.ifname, "eth0");
        assert_eq!(eth0.origins[0], "x.toml:9");
        assert_eq!(eth0.rules.len(), 3);
        assert_eq!(
            eth0.rules[1].mode,
            Mode::Probe {
                via: Some("br1".into())
            }
        );
        assert_eq!(eth0.rules[2], Rule::docker("ipv6exposed"));
        assert_eq!(eth0.keepalive, Some(Duration::from_secs(30)));
        assert_eq!(eth0.announce, Some(Duration::from_secs(600)));
        assert!(eth0.settings.router && eth0.settings.override_flag);
        let eth1 = &uplinks[1];
        assert_eq!(eth1.settings.source, SourcePolicy::LinkLocal);
        assert!(!eth1.settings.router);
        assert_eq!(eth1.rules[0].mode, Mode::Auto);
        assert_eq!(eth1.keepalive, None);
    }

    #[test]
    fn the_module_doc_example_parses() {
        let doc = include_str!("mod.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n");
        let config = parse("doc", &example).unwrap();
        assert_eq!(
            config.control,
            Some(Some(PathBuf::from("/run/ndp-responder/control.sock")))
        );
        assert_eq!(config.control_mode, Some(0o660));
        assert_eq!(config.metrics, None);
    }

    #[test]
    fn service_keys() {
        let uplink = "[[uplink]]\ninterface = \"eth0\"\n[[uplink.rule]]\nprefix = \"2001:db8::/64\"\nmode = \"static\"\n";
        let config = parse(
            "x",
            &format!(
                "control_socket = \"none\"\nmetrics = \"9417\"\ncontrol_mode = \"0600\"\n{uplink}"
            ),
        )
        .unwrap();
        assert_eq!(config.control, Some(None));
        assert_eq!(config.control_mode, Some(0o600));
        assert_eq!(config.metrics, Some("[::1]:9417".parse().unwrap()));
        let e = error(&format!("control_mode = \"0666\"\n{uplink}"));
        assert_eq!(e.line, 1);
        assert!(e.message.contains("nothing to others"), "{e}");
        let e = error(&format!("\ncontrol_mode = \"rw\"\n{uplink}"));
        assert_eq!(e.line, 2);
        assert!(e.message.contains("not an octal mode"), "{e}");
        let e = error(&format!("control_socket = \"run/x.sock\"\n{uplink}"));
        assert!(e.message.contains("absolute path"), "{e}");
        let e = error(&format!("metrics = \"localhost\"\n{uplink}"));
        assert!(e.message.contains("[::1]:9417"), "{e}");
    }

    #[test]
    fn the_control_socket_is_found_in_a_file_even_a_broken_one() {
        let dir = std::env::temp_dir().join(format!("ndp-control-of-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("x.toml");
        let of = |text: &str| {
            std::fs::write(&file, text).unwrap();
            control_socket_of(&file).map_err(|e| e.to_string())
        };
        assert_eq!(
            of("control_socket = \"/run/a.sock\"\n[[uplink]]\nbroken = 1\n"),
            Ok(Some(PathBuf::from("/run/a.sock")))
        );
        assert_eq!(
            of("[[uplink]]\ninterface = \"eth0\"\n"),
            Ok(Some(PathBuf::from(DEFAULT_CONTROL_SOCKET)))
        );
        assert_eq!(of("control_socket = \"none\"\n"), Ok(None));
        let shown = file.display();
        assert_eq!(
            of("\ncontrol_socket = \"run/a.sock\"\n"),
            Err(format!("{shown}:2: control_socket 'run/a.sock' must be an absolute path, e.g. \"/run/ndp-responder/control.sock\""))
        );
        let e = of("[[uplink]\n").unwrap_err();
        assert!(
            e.starts_with(&format!("{shown}:1: "))
                && e.ends_with("(looking for its control_socket: give --socket PATH instead)"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_ipv4_metrics_address_is_warned_about_not_refused() {
        let uplink = "[[uplink]]\ninterface = \"eth0\"\n[[uplink.rule]]\nprefix = \"2001:db8::/64\"\nmode = \"static\"\n";
        let config = parse(
            "x.toml",
            &format!("# metrics\nmetrics = \"127.0.0.1:9417\"\n{uplink}"),
        )
        .unwrap();
        assert_eq!(config.metrics, Some("127.0.0.1:9417".parse().unwrap()));
        let warnings: Vec<String> = config.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            warnings,
            ["x.toml:2: metrics = \"127.0.0.1:9417\" binds an IPv4 address, but the shipped systemd unit allows only RestrictAddressFamilies=AF_PACKET AF_NETLINK AF_UNIX AF_INET6 (no AF_INET): under it the daemon cannot serve metrics and will not start; write metrics = \"[::1]:9417\" (loopback) or \"[::]:9417\" (every address, IPv4 too), or allow AF_INET in a drop-in (systemctl edit ndp-responder: [Service] RestrictAddressFamilies=AF_INET)"]
        );
        for v6 in ["9417", "[::1]:9417", "[::]:9417", "[::ffff:127.0.0.1]:9417"] {
            let config = parse("x", &format!("metrics = \"{v6}\"\n{uplink}")).unwrap();
            assert!(config.warnings.is_empty(), "{v6}: {:?}", config.warnings);
        }
        // The families named are the shipped unit's.
        let unit = include_str!("../../packaging/ndp-responder.service");
        assert!(
            unit.lines()
                .any(|l| l == format!("RestrictAddressFamilies={UNIT_ADDRESS_FAMILIES}")),
            "the unit's RestrictAddressFamilies= changed: update UNIT_ADDRESS_FAMILIES"
        );
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let e = error("[[uplink]]\ninterface = \"eth0\"\nrouters = true\n[[uplink.rule]]\nprefix = \"2001:db8::/64\"\nmode = \"static\"\n");
        assert_eq!(e.line, 3, "{e}");
        assert!(
            e.message.contains("routers") && e.message.contains("spelling"),
            "{e}"
        );
        assert!(
            e.to_string().starts_with("/etc/ndp-responder.toml:3: "),
            "{e}"
        );
    }

    #[test]
    fn bad_prefix_is_named_with_its_line_and_a_hint() {
        let e = error("[[uplink]]\ninterface = \"eth0\"\n\n[[uplink.rule]]\nprefix = \"2001:db8:1::d:5/112\"\nmode = \"static\"\n");
        assert_eq!(e.line, 5, "{e}");
        assert!(
            e.message.contains("did you mean 2001:db8:1::d:0/112"),
            "{e}"
        );
    }

    #[test]
    fn nested_rules_are_fine() {
        let nested = parse(
            "t",
            "[[uplink]]\ninterface = \"eth0\"\n[[uplink.rule]]\nprefix = \"2001:db8:1::d:0/112\"\nmode = \"auto\"\n[[uplink.rule]]\nprefix = \"2001:db8:1::d:100/120\"\nmode = \"probe\"\n",
        );
        assert!(nested.is_ok(), "{nested:?}");
    }

    /// An uplink with `setting` on its line 3.
    fn with_setting(setting: &str) -> String {
        format!("[[uplink]]\ninterface = \"eth0\"\n{setting}\n[[uplink.rule]]\nprefix = \"2001:db8::/64\"\nmode = \"static\"\n")
    }

    #[test]
    fn fast_path_switches_from_the_file_and_the_flags() {
        let up =
            |setting: &str| parse("x.toml", &with_setting(setting)).unwrap().uplinks[0].clone();
        let default = up("");
        assert!(default.fast_path && !default.drop_uncovered);
        assert!(up("drop_uncovered = true").drop_uncovered);
        assert!(!up("fast_path = false").fast_path);
        let err = parse("x.toml", &with_setting("drop_uncovered = 1")).unwrap_err();
        assert!(err.to_string().contains("x.toml:3"), "{err}");
        let flags = |extra: &[&str]| {
            let mut argv = vec!["ndp-responder", "-i", "eth0", "-n", "2001:db8::/64"];
            argv.extend(extra);
            let cli = <args::Cli as clap::Parser>::try_parse_from(argv).unwrap();
            from_flags(&cli.run).unwrap()
        };
        assert!(!flags(&[]).drop_uncovered);
        assert!(flags(&["--drop-uncovered"]).drop_uncovered);
    }

    #[test]
    fn durations_and_rate_limits_are_bounded_naming_key_line_and_range() {
        const D1H: &str = "give 1s to 1h";
        const D1D: &str = "give 1s to 1d";
        const RATE: &str = "give 0 (no limit) or 1 to 10000000 answers per second";
        let cases = [
            ("gateway_keepalive", "\"18446744073709551615s\"", D1H),
            ("gateway_keepalive", "\"0s\"", D1H),
            ("gateway_keepalive", "\"500ms\"", D1H),
            ("gateway_keepalive", "\"100y\"", D1H),
            ("announce_interval", "\"0s\"", D1D),
            ("announce_interval", "\"18446744073709551615s\"", D1D),
            ("announce_interval", "\"100y\"", D1D),
            ("probe_ttl", "\"0s\"", D1D),
            ("probe_ttl", "\"100y\"", D1D),
            ("probe_negative_ttl", "\"500ms\"", D1H),
            ("probe_negative_ttl", "\"2h\"", D1H),
            ("rate_limit", "-1", RATE),
            ("rate_limit", "1099511627776", RATE),
            ("rate_limit_per_source", "-1", RATE),
            ("rate_limit_per_source", "10000001", RATE),
        ];
        for (key, value, range) in cases {
            let e = error(&with_setting(&format!("{key} = {value}")));
            assert_eq!(e.line, 3, "{key} = {value}: {e}");
            let shown = value.trim_matches('"');
            assert!(
                e.message.starts_with(&format!("{key}: ")) && e.message.contains(shown),
                "{key} = {value}: {e}"
            );
            assert!(e.message.contains(range), "{key} = {value}: {e}");
        }
        let e = error(&with_setting(
            "gateway_keepalive = \"18446744073709551615s\"",
        ));
        assert_eq!(
            e.to_string(),
            "/etc/ndp-responder.toml:3: gateway_keepalive: '18446744073709551615s' is out of range for the gateway keepalive interval: give 1s to 1h, e.g. 30s"
        );
        let e = error(&with_setting("rate_limit = -1"));
        assert!(e.message.contains("-1 is negative"), "{e}");
        let e = error(&with_setting("rate_limit_per_source = 1099511627776"));
        assert!(e.message.contains("1099511627776 is too large"), "{e}");
        // Beyond what TOML can hold: still its line, in plain words.
        let e = error(&with_setting("rate_limit = 99999999999999999999"));
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("too large"), "{e}");
        let e = error(&with_setting(&format!("rate_limit = {}", "9".repeat(60))));
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("too large"), "{e}");
        let e = error(&with_setting("rate_limit = \"1000\""));
        assert!(e.message.contains("expected"), "{e}");
        range_boundaries_are_accepted_in_the_file();
    }

    /// The boundaries of every range are accepted (called by the test above).
    fn range_boundaries_are_accepted_in_the_file() {
        let secs = Duration::from_secs;
        let low = parse(
            "x",
            &with_setting("gateway_keepalive = \"1s\"\nannounce_interval = \"1s\"\nprobe_ttl = \"1s\"\nprobe_negative_ttl = \"1s\"\nrate_limit = 0\nrate_limit_per_source = 1"),
        )
        .unwrap();
        let up = &low.uplinks[0];
        assert_eq!((up.keepalive, up.announce), (Some(secs(1)), Some(secs(1))));
        assert_eq!((up.probe.ttl, up.probe.negative_ttl), (secs(1), secs(1)));
        assert_eq!((up.rate_limit.total, up.rate_limit.per_source), (0, 1));
        let high = parse(
            "x",
            &with_setting("gateway_keepalive = \"1h\"\nannounce_interval = \"1d\"\nprobe_ttl = \"24h\"\nprobe_negative_ttl = \"60m\"\nrate_limit = 10000000\nrate_limit_per_source = 10000000"),
        )
        .unwrap();
        let up = &high.uplinks[0];
        assert_eq!(
            (up.keepalive, up.announce),
            (Some(secs(3600)), Some(secs(86_400)))
        );
        assert_eq!(
            (up.probe.ttl, up.probe.negative_ttl),
            (secs(86_400), secs(3600))
        );
        assert_eq!(
            (up.rate_limit.total, up.rate_limit.per_source),
            (10_000_000, 10_000_000)
        );
    }

    #[test]
    fn rules_may_overlap_freely_in_flags_and_file() {
        // One prefix, two modes: an address is answered when either says it is ours.
        let file = parse(
            "x",
            "[[uplink]]\ninterface = \"eth0\"\n[[uplink.rule]]\nprefix = \"2001:db8:1::d:0/112\"\nmode = \"static\"\n[[uplink.rule]]\nprefix = \"2001:db8:1::d:0/112\"\nmode = \"auto\"\n[[uplink.rule]]\nmode = \"docker\"\nnetwork = \"ipv6exposed\"\n",
        )
        .unwrap();
        assert_eq!(file.uplinks[0].rules.len(), 3);
        let cli = args::Cli::try_parse_from([
            "ndp-responder",
            "-i",
            "eth0",
            "-n",
            "2001:db8:1::d:0/112",
            "--auto",
            "2001:db8:1::d:0/112",
            "--probe",
            "2001:db8:1::/64",
        ])
        .unwrap();
        assert_eq!(from_flags(&cli.run).unwrap().rules.len(), 3);
        let cli = args::Cli::try_parse_from([
            "ndp-responder",
            "-i",
            "eth0",
            "-n",
            "2001:db8:1::/64",
            "-n",
            "2001:db8:1::d:0/112",
            "-N",
            "ipv6exposed",
        ])
        .unwrap();
        let options = from_flags(&cli.run).unwrap();
        assert_eq!(options.rules.len(), 3);
        assert_eq!(options.ifname, "eth0");
        let cli =
            args::Cli::try_parse_from(["ndp-responder", "-i", "", "-n", "2001:db8::/64"]).unwrap();
        assert!(from_flags(&cli.run).unwrap_err().contains("is empty"));
    }

    #[test]
    fn slaac_rules_from_the_file_and_the_flags() {
        let file = parse(
            "x",
            "[[uplink]]\ninterface = \"eth0\"\n[[uplink.rule]]\nmode = \"slaac\"\ninterface = \"br0\"\ndns = [\"2001:db8::53\"]\n[[uplink.rule]]\nmode = \"slaac\"\ninterface = \"br1\"\nprefix = \"2001:db8:7::/64\"\n",
        )
        .unwrap();
        let rules = &file.uplinks[0].rules;
        assert_eq!(
            rules[0].mode,
            Mode::Slaac {
                interface: "br0".into(),
                dns: vec!["2001:db8::53".parse().unwrap()]
            }
        );
        assert_eq!(
            rules[0].prefix.prefix_len(),
            0,
            "the uplink's /64s, resolved live"
        );
        assert_eq!(
            rules[1].prefix,
            "2001:db8:7::/64".parse::<Ipv6Net>().unwrap()
        );
        let slaac = |rest: &str| {
            format!("[[uplink]]\ninterface = \"eth0\"\n[[uplink.rule]]\nmode = \"slaac\"\n{rest}")
        };
        let e = error(&slaac(""));
        assert!(e.message.contains("needs interface = \"br0\""), "{e}");
        let e = error(&slaac(
            "interface = \"br0\"\nprefix = \"2001:db8:1::d:0/112\"\n",
        ));
        assert!(e.message.contains("SLAAC needs a /64"), "{e}");
        assert_eq!(e.line, 6);
        let e = error(&slaac("interface = \"br0\"\ndns = [\"fe80::1\"]\n"));
        assert!(
            e.message.contains("dns: 'fe80::1' cannot be a DNS server"),
            "{e}"
        );
        let e = error(&slaac("interface = \"eth0\"\n"));
        assert!(e.message.contains("names the uplink eth0 itself"), "{e}");
        let e = error("[[uplink]]\ninterface = \"eth0\"\n[[uplink.rule]]\nmode = \"static\"\nprefix = \"2001:db8:1::d:0/112\"\ndns = [\"2001:db8::53\"]\n");
        assert!(e.message.contains("dns applies to slaac rules"), "{e}");

        let cli = args::Cli::try_parse_from([
            "ndp-responder",
            "-i",
            "eth0",
            "--slaac",
            "br0",
            "--slaac",
            "br1",
        ])
        .unwrap();
        let options = from_flags(&cli.run).unwrap();
        assert_eq!(options.rules, vec![Rule::slaac("br0"), Rule::slaac("br1")]);
        assert_eq!(options.rules[0].to_string(), "uplink /64 (slaac on br0)");
        let cli =
            args::Cli::try_parse_from(["ndp-responder", "-i", "eth0", "--slaac", "eth0"]).unwrap();
        assert!(from_flags(&cli.run)
            .unwrap_err()
            .contains("names the uplink itself"));
        assert!(args::Cli::try_parse_from(["ndp-responder", "--slaac", "br0"]).is_err());
    }

    #[test]
    fn mode_specific_fields_are_checked() {
        let base = "[[uplink]]\ninterface = \"eth0\"\n[[uplink.rule]]\n";
        let cases = [
            ("mode = \"docker\"\n", "needs network"),
            ("mode = \"static\"\n", "needs prefix"),
            (
                "prefix = \"2001:db8::/64\"\nmode = \"static\"\nnetwork = \"x\"\n",
                "network applies to docker rules",
            ),
            (
                "prefix = \"2001:db8::/64\"\nmode = \"auto\"\ninterface = \"br0\"\n",
                "interface applies to probe and slaac rules",
            ),
            (
                "prefix = \"2001:db8::/64\"\nmode = \"proxy\"\n",
                "is not one of static, auto, probe, docker",
            ),
            ("prefix = \"2001:db8::/64\"\n", "missing field `mode`"),
        ];
        for (rule, want) in cases {
            let e = error(&format!("{base}{rule}"));
            assert!(e.message.contains(want), "{rule}: {e}");
            assert!(e.line >= 3, "{rule}: {e}");
        }
    }

    #[test]
    fn uplink_level_mistakes() {
        assert!(error("").message.contains("missing field `uplink`"));
        let e = error("uplink = []\n");
        assert!(e.message.contains("no [[uplink]]"), "{e}");
        let e = error("[[uplink]]\ninterface = \"eth0\"\n");
        assert!(e.message.contains("has no [[uplink.rule]]"), "{e}");
        let e = error("[[uplink]]\ninterface = \"eth0\"\nsource = \"global\"\n[[uplink.rule]]\nprefix = \"2001:db8::/64\"\nmode = \"static\"\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("'global'"), "{e}");
        let e = error("[[uplink]]\ninterface = \"eth0\"\ngateway_keepalive = \"soon\"\n[[uplink.rule]]\nprefix = \"2001:db8::/64\"\nmode = \"static\"\n");
        assert_eq!(e.line, 3);
        let twice = "[[uplink]]\ninterface = \"eth0\"\n[[uplink.rule]]\nprefix = \"2001:db8::/64\"\nmode = \"static\"\n";
        let e = error(&format!("{twice}{twice}"));
        assert_eq!(e.line, 7, "{e}");
        assert!(
            e.message.contains("configured twice (first at line 2)"),
            "{e}"
        );
    }

    #[test]
    fn syntax_errors_point_at_their_line() {
        let e = error("[[uplink]]\ninterface = \"eth0\n");
        assert_eq!(e.line, 2, "{e}");
    }
}
