//! The documentation generated from the CLI definition ([`crate::config::args`]), so that it
//! never drifts from the flags: the man page and the shell completions. `ndp-responder man` and
//! `ndp-responder completions SHELL` print them (for installs without the .deb);
//! `examples/gen-docs.rs` writes them for the package.
//!
//! Owns: the page's layout (the daemon's options, a section per subcommand, nested ones
//! included, the shipped example configuration, files, signals and environment) and its prose
//! beyond the flags' own help.
//!
//! Must not: describe a flag by hand (its help text is the one place), or touch the system.

use clap::CommandFactory;
pub use clap_complete::Shell;

use crate::config::args::Cli;

/// The program's name, as the completions know it.
pub const NAME: &str = "ndp-responder";

/// The configuration installed as /etc/ndp-responder.toml, quoted in the page.
const EXAMPLE_CONFIG: &str = include_str!("../../packaging/ndp-responder.toml");

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, NAME, &mut buf);
    buf
}

/// The whole page, in roff.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut cmd = Cli::command();
    // Built, subcommands know their full names ("ndp-responder lab down") and the global
    // flags (-v, -q) are propagated to them.
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone()).section("8");

    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    page.extend_from_slice(DESCRIPTION.as_bytes());
    man.render_options_section(&mut page)?;

    // Every subcommand, nested ones included, as a section of this one page: `man
    // ndp-responder` tells all.
    let mut subs: Vec<clap::Command> = Vec::new();
    collect_subcommands(&cmd, &mut subs);
    page.extend_from_slice(b".SH COMMANDS\n");
    for sub in &subs {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        page.extend_from_slice(
            format!(
                ".TP\n\\fB{}\\fR\n{}\n",
                escape(sub.get_bin_name().unwrap_or(sub.get_name())),
                escape(&about)
            )
            .as_bytes(),
        );
    }
    for sub in &subs {
        let name = sub.get_bin_name().unwrap_or(sub.get_name()).to_string();
        let sub_man = clap_mangen::Man::new(sub.clone());
        let mut roff = Vec::new();
        sub_man.render_synopsis_section(&mut roff)?;
        sub_man.render_description_section(&mut roff)?;
        if sub.get_arguments().next().is_some() {
            sub_man.render_options_section(&mut roff)?;
        }
        // The sub-page's own section headers become subsections of this one.
        let text = String::from_utf8_lossy(&roff).replace(".SH ", ".SS ");
        page.extend_from_slice(format!(".SH \"{}\"\n", escape(&name.to_uppercase())).as_bytes());
        page.extend_from_slice(text.as_bytes());
    }

    page.extend_from_slice(CONFIGURATION.as_bytes());
    page.extend_from_slice(b".PP\n.nf\n.RS 4\n");
    for line in EXAMPLE_CONFIG.lines() {
        page.extend_from_slice(format!("\\&{}\n", escape(line)).as_bytes());
    }
    page.extend_from_slice(b".RE\n.fi\n");
    page.extend_from_slice(REST.as_bytes());
    man.render_version_section(&mut page)?;
    if cmd.get_author().is_some() {
        man.render_authors_section(&mut page)?;
    }
    Ok(page)
}

/// Depth first, in the order the CLI defines them; hidden ones and `help` left out.
fn collect_subcommands(cmd: &clap::Command, out: &mut Vec<clap::Command>) {
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        out.push(sub.clone());
        collect_subcommands(sub, out);
    }
}

/// Text for roff: backslashes and hyphens escaped, no line read as a request.
fn escape(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

const DESCRIPTION: &str = r#".PP
Without \fB\-i\fR, the daemon reads its configuration file (\fB/etc/ndp\-responder.toml\fR, or
\fB\-c\fR \fIPATH\fR): one or more uplinks, each with its rules. The command line flags are a
shortcut for one uplink of the same shape. Each rule says how the addresses of a prefix are
known to be behind this host: \fBstatic\fR (every address of the prefix), \fBauto\fR (what the
kernel knows behind a downstream interface: addresses, neighbours, /128 routes), \fBprobe\fR (an
address that answers a Neighbor Solicitation sent downstream), \fBdocker\fR (the containers of
a Docker or Podman network) or \fBslaac\fR (\fB\-\-slaac\fR \fIIFACE\fR: the uplink's /64 is
shared with the guests on the bridge \fIIFACE\fR; the daemon sends them Router Advertisements
(A=1, L=0: everything goes through the host), learns their addresses once no one upstream
holds them, routes each to \fIIFACE\fR with a /128 of its own protocol, and makes a guest's
duplicate address detection fail for an address in use upstream). Whatever the rule, an
address is answered only while the kernel routes it to an interface other than the uplink. Rules may overlap: an address is answered
when any rule that covers it says it is ours (a probe rule probes only what no other rule
knows).
.PP
\fBndp\-responder doctor\fR explains what a host still lacks; \fBndp\-responder status\fR shows
what a running daemon answers and why.
"#;

const CONFIGURATION: &str = r#".SH CONFIGURATION
The file is TOML: top\-level keys (\fBcontrol_socket\fR, \fBcontrol_mode\fR, \fBmetrics\fR), then
one \fB[[uplink]]\fR table per uplink (\fBinterface\fR, \fBsource\fR, \fBrouter\fR,
\fBoverride\fR, \fBgateway_keepalive\fR, \fBannounce_interval\fR, \fBprobe_ttl\fR,
\fBprobe_negative_ttl\fR, \fBrate_limit\fR, \fBrate_limit_per_source\fR, \fBfast_path\fR,
\fBdrop_uncovered\fR), each with one or more
\fB[[uplink.rule]]\fR tables (\fBprefix\fR, \fBmode\fR, and \fBinterface\fR for probe or
\fBnetwork\fR for docker rules; a slaac rule has \fBinterface\fR, an optional /64 \fBprefix\fR
(default: the uplink's global /64s, followed) and optional \fBdns\fR servers). Unknown keys, bad values and a rule covering a gateway of its
uplink are refused with the file, the line and what to
write instead; \fBndp\-responder check\-config\fR validates a file without changing anything.
The example installed as \fB/etc/ndp\-responder.toml\fR:
"#;

const REST: &str = r#".SH FILES
.TP
\fB/etc/ndp\-responder.toml\fR
The configuration file (see \fBcheck\-config\fR).
.TP
\fB/run/ndp\-responder/control.sock\fR
The control socket that \fBstatus\fR asks (mode 0660 by default; \fBcontrol_socket\fR,
\fB\-\-control\-socket\fR).
.TP
\fB/usr/lib/systemd/system/ndp\-responder.service\fR
The systemd unit: installed, not enabled. Edit the configuration first, then
\fBsystemctl enable \-\-now ndp\-responder\fR.
.SH SIGNALS
.TP
\fBSIGHUP\fR
Read the configuration file again and apply it without a gap in answering for the targets that
stay (\fBsystemctl reload ndp\-responder\fR). A file that does not validate is refused and the
running configuration stays.
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Stop cleanly, printing the counters.
.SH ENVIRONMENT
.TP
\fBNDPRESPONDER_LOG\fR
The log level: \fBDEBUG\fR, \fBINFO\fR (default), \fBWARN\fR or \fBERROR\fR; \fB\-v\fR and
\fB\-q\fR move it.
.TP
\fBDOCKER_HOST\fR
The Docker or Podman engine for docker rules (default \fBunix:///var/run/docker.sock\fR; unix
sockets only).
.TP
\fBNOTIFY_SOCKET\fR, \fBWATCHDOG_USEC\fR
Set by systemd (\fBType=notify\fR, \fBWatchdogSec=\fR): the daemon reports \fBREADY=1\fR,
\fBSTATUS=\fR, \fBRELOADING=1\fR, \fBSTOPPING=1\fR and \fBWATCHDOG=1\fR.
.SH EXAMPLES
.PP
.nf
.RS 4
ndp\-responder \-i eth0 \-n 2001:db8:1::d:0/112
ndp\-responder \-i eth0 \-\-auto 2001:db8:1::d:0/112 \-\-gateway\-keepalive
ndp\-responder \-i eth0 \-N ipv6exposed
ndp\-responder check\-config \-c /etc/ndp\-responder.toml
ndp\-responder doctor \-i eth0 \-n 2001:db8:1::d:0/112 \-\-probe 2001:db8:1::d:99
ndp\-responder doctor \-c /etc/ndp\-responder.toml
ndp\-responder status \-\-json
ndp\-responder status \-c /etc/ndp\-responder.toml
ndp\-responder completions bash > /etc/bash_completion.d/ndp\-responder
ndp\-responder man | man \-l \-
ndp\-responder lab
.RE
.fi
.SH EXIT STATUS
0 on success and after a clean stop; non\-zero, with a message on standard error, when the
daemon cannot start or a command fails. \fBdoctor\fR exits 0 when nothing is wrong, 1 when
something is, 2 when it could not run.
.SH SEE ALSO
\fBsystemd.exec\fR(5), \fBsystemctl\fR(1), \fBndppd.conf\fR(5); the README in
\fB/usr/share/doc/ndp\-responder/\fR.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_every_subcommand_and_the_example_configuration() {
        let page = String::from_utf8(man_page().unwrap()).unwrap();
        assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{}", &page[..80]);
        assert!(page.contains(".TH ndp-responder 8"), "{page}");
        for section in [
            "DOCTOR",
            "STATUS",
            "CHECK\\-CONFIG",
            "COMPLETIONS",
            "MAN",
            "LAB DOWN",
        ] {
            assert!(
                page.contains(&format!(".SH \"NDP\\-RESPONDER {section}\"")),
                "{section}"
            );
        }
        assert!(
            page.contains("\\&[[uplink]]"),
            "the example configuration is quoted"
        );
    }

    #[test]
    fn completions_for_each_shell_name_the_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = String::from_utf8(completions(shell)).unwrap();
            assert!(script.contains("check-config"), "{shell}");
            assert!(script.contains("completions"), "{shell}");
        }
    }
}
