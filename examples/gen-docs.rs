//! Generate the man page and shell completions from the CLI definition (see
//! `ndp_responder::config::docs`, which `ndp-responder man` and `ndp-responder completions`
//! print too), for the package:
//!
//! ```sh
//! cargo run --example gen-docs -- OUTDIR
//! ```
//!
//! writes `OUTDIR/ndp-responder.8` and
//! `OUTDIR/completions/{ndp-responder.bash,_ndp-responder,ndp-responder.fish}`.
//! `packaging/build-deb` runs it and gzips the page.

use std::path::PathBuf;

use ndp_responder::config::docs::{self, Shell, NAME};

fn main() -> std::io::Result<()> {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: cargo run --example gen-docs -- OUTDIR");
        std::process::exit(2);
    };
    std::fs::create_dir_all(out.join("completions"))?;

    std::fs::write(out.join(format!("{NAME}.8")), docs::man_page()?)?;

    for (shell, file) in [
        (Shell::Bash, format!("{NAME}.bash")),
        (Shell::Zsh, format!("_{NAME}")),
        (Shell::Fish, format!("{NAME}.fish")),
    ] {
        std::fs::write(out.join("completions").join(file), docs::completions(shell))?;
    }
    println!("{}", out.display());
    Ok(())
}
