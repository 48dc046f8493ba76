//! The command line: flags, their validation and the messages for bad values.
//!
//! Owns: the clap definitions and the value parsers (prefixes, source policy, log level), and
//! the allowed range of every duration and number setting: the configuration file parses its
//! values with these same functions, so a flag and its key accept exactly the same values.
//! `-i/--ifname` and `-n/--subnet` keep the Go ndpresponder's flags so that its users can
//! switch by changing the binary name.
//!
//! Must not: touch the system; `main.rs` turns a parsed [`Cli`] into actions (through
//! [`crate::config::from_flags`], which checks the rules as it checks a file's).

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ipnet::Ipv6Net;

use crate::config::values::{
    parse_announce_interval, parse_gateway_keepalive, parse_metrics_addr, parse_mode, parse_prefix,
    parse_probe_addr, parse_probe_negative_ttl, parse_probe_rule, parse_probe_ttl,
    parse_rate_limit, parse_source, LogFormat,
};
use crate::decide::policy::SourcePolicy;

/// Answers IPv6 Neighbor Solicitations on an uplink for container and VM addresses, with
/// advertisements that pass hypervisor anti-spoofing filters.
#[derive(Debug, Parser)]
#[command(
    name = "ndp-responder",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Examples:\n  ndp-responder -i eth0 -n 2001:db8:1::d:0/112\n  ndp-responder lab\n\n\
                  Environment: NDPRESPONDER_LOG=DEBUG|INFO|WARN|ERROR (any case; FATAL, PANIC, DPANIC mean ERROR)\n\
                  sets the log level (default INFO; an unknown value warns and logs at INFO)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,

    /// More log output (-v: DEBUG, shows every ignored solicitation)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Less log output (-q: WARN, -qq: ERROR)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub quiet: u8,

    /// Log lines as text, or as one JSON object per line (level, message, fields); under
    /// systemd both carry syslog priority prefixes and no timestamp of their own
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

/// Flags of the responder itself (the default command).
#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("targets")
        .args(["subnets", "auto", "probe", "docker_networks", "slaac"])
        .multiple(true)
        .requires("ifname")
))]
pub struct RunArgs {
    /// Configuration file with one or more uplinks (default /etc/ndp-responder.toml when
    /// no -i is given)
    #[arg(
        short = 'c',
        long = "config",
        value_name = "PATH",
        conflicts_with = "ifname"
    )]
    pub config: Option<std::path::PathBuf>,

    /// Uplink interface, where the provider's router solicits (a shortcut for a one-uplink
    /// configuration)
    #[arg(
        short = 'i',
        long = "ifname",
        value_name = "IFACE",
        requires = "targets"
    )]
    pub ifname: Option<String>,

    /// Static rule: answer for every address in this prefix that is routed to a downstream
    /// interface (repeatable)
    #[arg(short = 'n', long = "subnet", value_name = "PREFIX", value_parser = parse_prefix, value_delimiter = ',')]
    pub subnets: Vec<Ipv6Net>,

    /// Auto rule: answer for addresses in this prefix that the kernel knows behind a
    /// downstream interface (neighbour entry, address, /128 route; any address routed to a
    /// point-to-point link), following changes live (repeatable)
    #[arg(long = "auto", value_name = "PREFIX", value_parser = parse_prefix)]
    pub auto: Vec<Ipv6Net>,

    /// Probe rule: answer for an address in this prefix once it answers a Neighbor
    /// Solicitation sent on IFACE (or on the interface its route points to) (repeatable)
    #[arg(long = "probe", value_name = "PREFIX[@IFACE]", value_parser = parse_probe_rule)]
    pub probe: Vec<(Ipv6Net, Option<String>)>,

    /// Docker rule: answer for the containers connected to this Docker (or Podman) network,
    /// following connect/disconnect events (repeatable; DOCKER_HOST selects the engine)
    #[arg(
        short = 'N',
        long = "docker-network",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub docker_networks: Vec<String>,

    /// SLAAC rule: share the uplink's /64 with the hosts on IFACE (a bridge): advertise it
    /// there (RA: A=1, L=0), learn the guests' addresses, route each to IFACE and answer for
    /// it on the uplink (repeatable)
    #[arg(long = "slaac", value_name = "IFACE")]
    pub slaac: Vec<String>,

    /// How long a probed address is trusted before it is probed again (when in use; 1s to 1d)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_probe_ttl)]
    pub probe_ttl: Duration,

    /// How long an address that did not answer a probe is not probed again (1s to 1h)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_probe_negative_ttl)]
    pub probe_negative_ttl: Duration,

    /// IPv6 source of our advertisements: 'target' (passes anti-spoof filters), 'link-local'
    /// (what proxy_ndp and ndppd send), or a fixed address
    #[arg(long, value_name = "target|link-local|ADDR", default_value = "target", value_parser = parse_source)]
    pub source: SourcePolicy,

    /// Clear the Router flag in advertisements (it is set by default: the host forwards)
    #[arg(long)]
    pub no_router_flag: bool,

    /// Keep the gateway's neighbour entry fresh: solicit it from a global address every
    /// INTERVAL (1s to 1h, default 30s) and confirm the answer in the kernel's table (never
    /// pinned)
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "30s", value_parser = parse_gateway_keepalive)]
    pub gateway_keepalive: Option<Duration>,

    /// Re-announce every address in use (unsolicited NA, and an NS from it to the gateway)
    /// once per DURATION (1s to 1d), spread over it
    #[arg(long, value_name = "DURATION", value_parser = parse_announce_interval)]
    pub announce_interval: Option<Duration>,

    /// Clear the Override flag in answers to multicast solicitations (RFC 4861 7.2.8's
    /// suggestion for proxies; by default it is set so a router's stale cached MAC is replaced)
    #[arg(long)]
    pub no_override_flag: bool,

    /// Answer only from the packet socket: do not load the XDP fast path that answers in the
    /// kernel (it is loaded by default where the kernel allows; see `status`)
    #[arg(long)]
    pub no_fast_path: bool,

    /// With the fast path: drop, in the kernel, solicitations for targets that no rule covers
    /// and the uplink does not hold (its own addresses and their subnet-router anycast still
    /// reach the kernel). Saves the host's receive path under a flood; leave it off if other
    /// software on this host answers solicitations on the uplink (ndppd, proxy entries)
    #[arg(long)]
    pub drop_uncovered: bool,

    /// At most this many answers per second in all (0: no limit; at most 10000000)
    #[arg(long, value_name = "N", default_value_t = crate::decide::ratelimit::Limits::default().total, value_parser = parse_rate_limit)]
    pub rate_limit: u32,

    /// At most this many answers per second to one solicitation source (0: no limit; at most
    /// 10000000)
    #[arg(long, value_name = "N", default_value_t = crate::decide::ratelimit::Limits::default().per_source, value_parser = parse_rate_limit)]
    pub rate_limit_per_source: u32,

    /// Control socket for `ndp-responder status` ('none' for no socket; default
    /// /run/ndp-responder/control.sock, or the configuration file's control_socket)
    #[arg(long, value_name = "PATH|none")]
    pub control_socket: Option<String>,

    /// Permissions of the control socket: 0600 (owner) or 0660 (owner and group; default)
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    pub control_mode: Option<u32>,

    /// Serve Prometheus metrics on GET /metrics at ADDR:PORT (a bare PORT binds loopback ::1)
    #[arg(long, value_name = "ADDR:PORT", value_parser = parse_metrics_addr)]
    pub metrics: Option<std::net::SocketAddr>,
}

impl RunArgs {
    /// The rules, in the order given: static, auto, probe, docker, slaac.
    pub fn rules(&self) -> Vec<crate::decide::targets::Rule> {
        use crate::decide::targets::{Mode, Rule};
        let mut rules: Vec<Rule> = self
            .subnets
            .iter()
            .map(|p| Rule {
                prefix: *p,
                mode: Mode::Static,
            })
            .collect();
        rules.extend(self.auto.iter().map(|p| Rule {
            prefix: *p,
            mode: Mode::Auto,
        }));
        rules.extend(self.probe.iter().map(|(p, via)| Rule {
            prefix: *p,
            mode: Mode::Probe { via: via.clone() },
        }));
        rules.extend(self.docker_networks.iter().map(|n| Rule::docker(n)));
        rules.extend(self.slaac.iter().map(|i| Rule::slaac(i)));
        rules
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a provider topology in network namespaces and show the daemon at work
    Lab(LabArgs),
    /// Check a real host's setup and explain what breaks container IPv6, with fixes
    Doctor(DoctorArgs),
    /// Validate a configuration file (changes nothing; where an uplink exists here, its rules
    /// are also checked against its gateways)
    CheckConfig(CheckConfigArgs),
    /// Print the configuration equivalent to an ndppd.conf
    ImportNdppd(ImportArgs),
    /// Show a running daemon's uplinks, rules, the addresses it answers and its counters
    Status(StatusArgs),
    /// Print the shell completion script for SHELL (installs without the .deb: e.g.
    /// `ndp-responder completions bash > /etc/bash_completion.d/ndp-responder`)
    Completions(CompletionsArgs),
    /// Print the man page, in roff (e.g. `ndp-responder man | man -l -`)
    Man,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The daemon's control socket (default: the configuration file's control_socket with -c,
    /// else /run/ndp-responder/control.sock)
    #[arg(long, value_name = "PATH")]
    pub socket: Option<std::path::PathBuf>,

    /// Find the control socket in this configuration file (its control_socket); --socket wins
    #[arg(short = 'c', long = "config", value_name = "PATH")]
    pub config: Option<std::path::PathBuf>,

    /// Print the status as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The ndppd configuration to translate ("-": standard input)
    #[arg(value_name = "NDPPD_CONF", default_value = "/etc/ndppd.conf")]
    pub path: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The file to check
    #[arg(short = 'c', long = "config", value_name = "PATH", default_value = crate::config::DEFAULT_PATH)]
    pub config: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Uplink interface to check
    #[arg(
        short = 'i',
        long = "ifname",
        value_name = "IFACE",
        required_unless_present = "config"
    )]
    pub ifname: Option<String>,

    /// Prefix you want answered (repeatable): checks where it is routed
    #[arg(short = 'n', long = "subnet", value_name = "PREFIX", value_parser = parse_prefix)]
    pub subnets: Vec<Ipv6Net>,

    /// Check every uplink of this configuration file, each with its rules' prefixes
    #[arg(
        short = 'c',
        long = "config",
        value_name = "PATH",
        conflicts_with_all = ["ifname", "subnets", "probe"]
    )]
    pub config: Option<std::path::PathBuf>,

    /// An interface whose hosts get addresses from the uplink's /64 (repeatable): checks
    /// what the SLAAC mode needs there
    #[arg(long = "slaac", value_name = "IFACE", conflicts_with = "config")]
    pub slaac: Vec<String>,

    /// Actively ask the gateway, from this test address and from link-local, which NS
    /// sources it answers (sends at most 3 solicitations per source)
    #[arg(long, value_name = "ADDR", value_parser = parse_probe_addr)]
    pub probe: Option<std::net::Ipv6Addr>,

    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LabArgs {
    /// Leave the lab up afterwards and print how to enter each namespace
    #[arg(long)]
    pub keep: bool,

    #[command(subcommand)]
    pub action: Option<LabAction>,
}

#[derive(Debug, Subcommand)]
pub enum LabAction {
    /// Remove a lab left up by --keep or by a crash (safe to run any time)
    Down,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::values::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn go_ndpresponder_flags_are_accepted() {
        let cli = Cli::try_parse_from([
            "ndp-responder",
            "-i",
            "eth0",
            "-n",
            "2001:db8:1::d:0/112",
            "--subnet",
            "2001:db8:2::/64",
        ])
        .unwrap();
        assert_eq!(cli.run.ifname.as_deref(), Some("eth0"));
        assert_eq!(cli.run.subnets.len(), 2);
        assert_eq!(cli.run.source, SourcePolicy::Target);
        assert!(!cli.run.no_router_flag);
        assert!(cli.command.is_none());
    }

    #[test]
    fn responder_needs_an_interface_and_a_rule() {
        let err = Cli::try_parse_from(["ndp-responder", "-n", "2001:db8::/64"]).unwrap_err();
        assert!(err.to_string().contains("--ifname"), "{err}");
        let err = Cli::try_parse_from(["ndp-responder", "-i", "eth0"]).unwrap_err();
        assert!(err.to_string().contains("--subnet"), "{err}");
    }

    #[test]
    fn auto_and_probe_rules() {
        use crate::decide::targets::{Mode, Rule};
        let cli = Cli::try_parse_from([
            "ndp-responder",
            "-i",
            "eth0",
            "--auto",
            "2001:db8:1::d:0/112",
            "--probe",
            "2001:db8:1::e:0/112@br1",
            "--probe",
            "2001:db8:1::f:0/112",
            "--probe-ttl",
            "2s",
        ])
        .unwrap();
        let rules = cli.run.rules();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].mode, Mode::Auto);
        assert_eq!(
            rules[1].mode,
            Mode::Probe {
                via: Some("br1".into())
            }
        );
        assert_eq!(rules[2].mode, Mode::Probe { via: None });
        assert_eq!(cli.run.probe_ttl, std::time::Duration::from_secs(2));
        assert_eq!(cli.run.gateway_keepalive, None);
        let docker =
            Cli::try_parse_from(["ndp-responder", "-i", "eth0", "-N", "ipv6exposed"]).unwrap();
        assert_eq!(docker.run.rules(), vec![Rule::docker("ipv6exposed")]);
        let with = |extra: &[&str]| {
            let mut args = vec!["ndp-responder", "-i", "eth0", "-n", "2001:db8::/64"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args).unwrap().run
        };
        let secs = std::time::Duration::from_secs;
        assert_eq!(
            with(&["--gateway-keepalive"]).gateway_keepalive,
            Some(secs(30))
        );
        assert_eq!(
            with(&["--gateway-keepalive=5s"]).gateway_keepalive,
            Some(secs(5))
        );
        assert_eq!(
            with(&["--announce-interval", "10m"]).announce_interval,
            Some(secs(600))
        );
        let err = parse_probe_rule("2001:db8::/64@").unwrap_err();
        assert!(err.contains("names no interface"), "{err}");
        let err = parse_duration("soon").unwrap_err();
        assert!(err.contains("'soon'"), "{err}");
    }

    /// `-i eth0 -n 2001:db8::/64` and `extra`.
    fn responder(extra: &[&str]) -> Result<Cli, clap::Error> {
        let mut args = vec!["ndp-responder", "-i", "eth0", "-n", "2001:db8::/64"];
        args.extend_from_slice(extra);
        Cli::try_parse_from(args)
    }

    #[test]
    fn durations_and_rate_limits_are_bounded_naming_flag_value_and_range() {
        const D1H: &str = "give 1s to 1h";
        const D1D: &str = "give 1s to 1d";
        const RATE: &str = "give 0 (no limit) or 1 to 10000000 answers per second";
        let cases = [
            ("--gateway-keepalive", "18446744073709551615s", D1H),
            ("--gateway-keepalive", "0s", D1H),
            ("--gateway-keepalive", "500ms", D1H),
            ("--gateway-keepalive", "100y", D1H),
            ("--gateway-keepalive", "3601s", D1H),
            ("--announce-interval", "0s", D1D),
            ("--announce-interval", "999ms", D1D),
            ("--announce-interval", "18446744073709551615s", D1D),
            ("--announce-interval", "100y", D1D),
            ("--probe-ttl", "0s", D1D),
            ("--probe-ttl", "500ms", D1D),
            ("--probe-ttl", "100y", D1D),
            ("--probe-negative-ttl", "0s", D1H),
            ("--probe-negative-ttl", "500ms", D1H),
            ("--probe-negative-ttl", "18446744073709551615s", D1H),
            ("--rate-limit", "-1", RATE),
            ("--rate-limit", "1099511627776", RATE),
            ("--rate-limit", "10000001", RATE),
            ("--rate-limit-per-source", "18446744073709551616", RATE),
            ("--rate-limit-per-source", "-99999999999999999999", RATE),
            ("--rate-limit-per-source", "lots", RATE),
        ];
        for (flag, value, range) in cases {
            let err = responder(&[&format!("{flag}={value}")]).unwrap_err();
            let text = err.to_string();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{flag}={value}: {text}"
            );
            assert_eq!(err.exit_code(), 2, "{flag}={value}");
            assert!(
                text.contains(&format!("'{value}'")) && text.contains(flag),
                "{flag}={value}: {text}"
            );
            assert!(text.contains(range), "{flag}={value}: {text}");
        }
        let err = parse_gateway_keepalive("0s").unwrap_err();
        assert_eq!(
            err,
            "'0s' is out of range for the gateway keepalive interval: give 1s to 1h, e.g. 30s"
        );
        assert!(parse_rate_limit("-1").unwrap_err().contains("negative"));
        assert!(parse_rate_limit("1099511627776")
            .unwrap_err()
            .contains("too large"));
        range_boundaries_are_accepted();
    }

    /// The boundaries of every range are accepted (called by the test above).
    fn range_boundaries_are_accepted() {
        let secs = Duration::from_secs;
        let run = responder(&[
            "--gateway-keepalive=1s",
            "--announce-interval=1d",
            "--probe-ttl=1s",
            "--probe-negative-ttl=1h",
            "--rate-limit=0",
            "--rate-limit-per-source=10000000",
        ])
        .unwrap()
        .run;
        assert_eq!(run.gateway_keepalive, Some(secs(1)));
        assert_eq!(run.announce_interval, Some(secs(86_400)));
        assert_eq!(run.probe_ttl, secs(1));
        assert_eq!(run.probe_negative_ttl, secs(3600));
        assert_eq!((run.rate_limit, run.rate_limit_per_source), (0, 10_000_000));
        let run = responder(&[
            "--gateway-keepalive=1h",
            "--announce-interval=1s",
            "--probe-ttl=24h",
            "--probe-negative-ttl=1s",
            "--rate-limit=1",
            "--rate-limit-per-source=1",
        ])
        .unwrap()
        .run;
        assert_eq!(run.gateway_keepalive, Some(secs(3600)));
        assert_eq!(run.announce_interval, Some(secs(1)));
        assert_eq!(run.probe_ttl, secs(86_400));
        assert_eq!(run.probe_negative_ttl, secs(1));
        assert_eq!((run.rate_limit, run.rate_limit_per_source), (1, 1));
        assert_eq!(
            parse_announce_interval("1500ms"),
            Ok(Duration::from_millis(1500))
        );
        // The defaults are within their ranges.
        let run = responder(&[]).unwrap().run;
        assert_eq!((run.probe_ttl, run.probe_negative_ttl), (secs(30), secs(5)));
        assert_eq!(
            (run.rate_limit, run.rate_limit_per_source),
            (100_000, 10_000)
        );
        assert_eq!(
            responder(&["--gateway-keepalive"])
                .unwrap()
                .run
                .gateway_keepalive,
            Some(secs(30))
        );
    }

    #[test]
    fn config_file_instead_of_flags() {
        let cli = Cli::try_parse_from(["ndp-responder", "-c", "/tmp/x.toml"]).unwrap();
        assert_eq!(
            cli.run.config.as_deref(),
            Some(std::path::Path::new("/tmp/x.toml"))
        );
        let err = Cli::try_parse_from([
            "ndp-responder",
            "-c",
            "x.toml",
            "-i",
            "eth0",
            "-n",
            "2001:db8::/64",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("cannot be used with"), "{err}");
        let cli = Cli::try_parse_from(["ndp-responder", "check-config"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::CheckConfig(CheckConfigArgs { ref config })) if config.as_os_str() == "/etc/ndp-responder.toml")
        );
        let cli = Cli::try_parse_from(["ndp-responder"]).unwrap();
        assert!(cli.run.ifname.is_none() && cli.run.config.is_none());
    }

    #[test]
    fn lab_needs_no_responder_flags() {
        let cli = Cli::try_parse_from(["ndp-responder", "lab", "--keep"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Lab(LabArgs {
                keep: true,
                action: None
            }))
        ));
        let cli = Cli::try_parse_from(["ndp-responder", "lab", "down"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Lab(LabArgs {
                action: Some(LabAction::Down),
                ..
            }))
        ));
    }

    #[test]
    fn doctor_takes_an_interface_prefixes_and_a_probe_address() {
        let cli = Cli::try_parse_from([
            "ndp-responder",
            "doctor",
            "-i",
            "eth0",
            "-n",
            "2001:db8:1::d:0/112",
            "--probe",
            "2001:db8:1::d:99",
            "--json",
        ])
        .unwrap();
        let Some(Command::Doctor(args)) = cli.command else {
            panic!("not doctor");
        };
        assert_eq!(args.ifname.as_deref(), Some("eth0"));
        assert_eq!(args.subnets.len(), 1);
        assert_eq!(args.probe, Some("2001:db8:1::d:99".parse().unwrap()));
        assert!(args.json);
        let err = Cli::try_parse_from([
            "ndp-responder",
            "doctor",
            "-i",
            "eth0",
            "--probe",
            "fe80::1",
        ])
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("'fe80::1' cannot be a test address"),
            "{err}"
        );
    }

    #[test]
    fn doctor_and_status_take_a_configuration_file() {
        let cli = Cli::try_parse_from(["ndp-responder", "doctor", "-c", "/tmp/x.toml"]).unwrap();
        let Some(Command::Doctor(args)) = cli.command else {
            panic!("not doctor");
        };
        assert_eq!(
            args.config.as_deref(),
            Some(std::path::Path::new("/tmp/x.toml"))
        );
        assert_eq!(args.ifname, None);
        let err = Cli::try_parse_from(["ndp-responder", "doctor"]).unwrap_err();
        assert!(err.to_string().contains("--ifname"), "{err}");
        for extra in [
            ["-i", "eth0"],
            ["-n", "2001:db8::/64"],
            ["--probe", "2001:db8::9"],
        ] {
            let mut args = vec!["ndp-responder", "doctor", "-c", "x.toml"];
            args.extend_from_slice(&extra);
            let err = Cli::try_parse_from(args).unwrap_err();
            assert!(
                err.to_string().contains("cannot be used with"),
                "{extra:?}: {err}"
            );
        }
        let cli =
            Cli::try_parse_from(["ndp-responder", "status", "-c", "x.toml", "--socket", "/s"])
                .unwrap();
        let Some(Command::Status(args)) = cli.command else {
            panic!("not status");
        };
        assert_eq!(args.config.as_deref(), Some(std::path::Path::new("x.toml")));
        assert_eq!(args.socket.as_deref(), Some(std::path::Path::new("/s")));
    }

    #[test]
    fn completions_and_man_page() {
        let cli = Cli::try_parse_from(["ndp-responder", "completions", "zsh"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Completions(CompletionsArgs {
                shell: clap_complete::Shell::Zsh
            }))
        ));
        let err = Cli::try_parse_from(["ndp-responder", "completions", "tcsh"]).unwrap_err();
        assert!(err.to_string().contains("bash"), "{err}");
        let cli = Cli::try_parse_from(["ndp-responder", "man"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Man)));
    }

    #[test]
    fn bad_prefixes_are_named_with_a_hint() {
        let cases = [
            ("2001:db8:1::d:5/112", "did you mean 2001:db8:1::d:0/112"),
            ("2001:db8:1::d:5", "/128"),
            ("eth0", "not an IPv6 prefix"),
            ("2001:db8::/200", "not an IPv6 prefix"),
            ("ff02::/16", "multicast"),
            ("::/0", "covers every address"),
            ("fe80::/64", "not a global prefix"),
            ("::1/128", "not a global prefix"),
            ("::ffff:0:0/96", "not a global prefix"),
        ];
        for (input, hint) in cases {
            let err = parse_prefix(input).unwrap_err();
            assert!(err.contains(&format!("'{input}'")), "{err}");
            assert!(err.contains(hint), "{input}: {err}");
        }
        assert_eq!(
            parse_prefix("2001:db8:1::d:0/112").unwrap().to_string(),
            "2001:db8:1::d:0/112"
        );
    }

    #[test]
    fn bad_source_is_rejected_by_clap_with_the_value() {
        let err = Cli::try_parse_from([
            "ndp-responder",
            "-i",
            "eth0",
            "-n",
            "2001:db8::/64",
            "--source",
            "global",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("'global'"), "{err}");
    }

    #[test]
    fn comma_lists_and_suggestions_as_the_go_tool_users_expect() {
        let cli = Cli::try_parse_from([
            "ndp-responder",
            "-i",
            "eth0",
            "-n",
            "2001:db8:1::d:0/112,2001:db8:1::e:0/112",
            "-N",
            "net1,net2",
        ])
        .unwrap();
        assert_eq!(cli.run.subnets.len(), 2);
        assert_eq!(cli.run.docker_networks, ["net1", "net2"]);
        // Typos get a suggestion.
        let e = Cli::try_parse_from(["ndp-responder", "-i", "eth0", "--subnett", "2001:db8::/64"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--subnet"), "{e}");
        let e = Cli::try_parse_from(["ndp-responder", "docter"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("doctor"), "{e}");
    }
}
