//! Shell completion scripts and man pages, generated from the same clap definitions as the
//! command line itself, so that neither can drift from the flags the binary really takes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use clap_complete::Shell;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write the completion script for.
    #[arg(value_enum)]
    shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory to write the pages to (created when missing): reposync.1, and one page
    /// per subcommand such as reposync-connector-add.1.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// `reposync completions SHELL`: the completion script on standard output.
pub fn completions(args: CompletionsArgs, mut command: clap::Command) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "reposync", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    Ok(ExitCode::SUCCESS)
}

/// `reposync man --out DIR`: one roff page per command, as `man -l` and `MANPATH` read them.
pub fn man_pages(args: ManArgs, command: clap::Command) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("--out: cannot create {}", args.out.display()))?;
    // `help` is clap's own subcommand, not one of ours: it gets no page.
    let mut command = command.disable_help_subcommand(true);
    // Building names each subcommand by its path (`reposync-connector-add`), which becomes
    // its page's title and file name.
    command.build();
    let mut written = Vec::new();
    write_pages(command, &args.out, &mut written)?;
    eprintln!(
        "wrote {} man pages to {}; read one with `man -l {}`",
        written.len(),
        args.out.display(),
        args.out.join("reposync.1").display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_pages(
    command: clap::Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), dir, written)?;
    }
    // A subcommand has no version of its own: every page says the binary's.
    let page = clap_mangen::Man::new(command)
        .source(format!("reposync {}", env!("CARGO_PKG_VERSION")))
        .manual("reposync manual");
    let path = dir.join(page.get_filename());
    let mut roff = Vec::new();
    page.render(&mut roff)
        .with_context(|| format!("cannot render {}", path.display()))?;
    std::fs::write(&path, roff)
        .with_context(|| format!("--out: cannot write {}", path.display()))?;
    written.push(path);
    Ok(())
}
