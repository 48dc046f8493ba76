//! Generate the man page and shell completions from the CLI definition (`src/cli.rs`), so the
//! package's documentation never drifts from the flags:
//!
//! ```sh
//! cargo run --example gen-docs -- OUTDIR
//! ```
//!
//! writes `OUTDIR/ndp-responder.8` (with a section per subcommand) and
//! `OUTDIR/completions/{ndp-responder.bash,_ndp-responder,ndp-responder.fish}`.

use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;
use ndp_responder::cli::Cli;

fn main() -> std::io::Result<()> {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/docs"));
    std::fs::create_dir_all(out.join("completions"))?;
    let cmd = Cli::command();

    let mut page = Vec::new();
    let man = clap_mangen::Man::new(cmd.clone()).section("8");
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    // Each subcommand as a section of the one page: `man ndp-responder` tells all.
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("ndp-responder {}", sub.get_name());
        let sub = sub.clone().bin_name(name.clone());
        let mut roff = Vec::new();
        let sub_man = clap_mangen::Man::new(sub);
        sub_man.render_synopsis_section(&mut roff)?;
        sub_man.render_description_section(&mut roff)?;
        sub_man.render_options_section(&mut roff)?;
        // Sub-pages' own section headers become subsections of this one.
        let text = String::from_utf8_lossy(&roff).replace(".SH ", ".SS ");
        page.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        page.extend_from_slice(text.as_bytes());
    }
    man.render_extra_section(&mut page)?;
    man.render_version_section(&mut page)?;
    man.render_authors_section(&mut page)?;
    page.extend_from_slice(
        b".SH FILES\n/etc/ndp-responder.toml \\- configuration (see check\\-config)\n.br\n/run/ndp\\-responder/control.sock \\- control socket (see status)\n.SH SIGNALS\nSIGHUP reloads the configuration file; SIGTERM and SIGINT stop.\n",
    );
    std::fs::write(out.join("ndp-responder.8"), page)?;

    for (shell, file) in [
        (Shell::Bash, "ndp-responder.bash"),
        (Shell::Zsh, "_ndp-responder"),
        (Shell::Fish, "ndp-responder.fish"),
    ] {
        let mut cmd = Cli::command();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, "ndp-responder", &mut buf);
        std::fs::write(out.join("completions").join(file), buf)?;
    }
    println!("{}", out.display());
    Ok(())
}
