//! `portcullis completions SHELL` and `portcullis man --out DIR`: shell
//! completions and manual pages generated from the clap definitions, so
//! they always match the commands and flags that exist.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::Cli;
use crate::output::{finish, no_json};

/// Options of `portcullis completions`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Options of `portcullis man`.
#[derive(Debug, Clone, clap::Args)]
pub struct ManArgs {
    /// Directory to write the pages to (created if missing), e.g.
    /// /usr/local/share/man/man1.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Prints the completion script for `args.shell`.
pub fn completions(args: CompletionsArgs, json: bool) -> ExitCode {
    if json {
        return finish(no_json("completions prints a shell script"));
    }
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "portcullis", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    ExitCode::SUCCESS
}

/// Writes `portcullis.1` and `portcullis-<command>[-<sub>].1` to `args.out`.
pub fn man(args: ManArgs, json: bool) -> ExitCode {
    if json {
        return finish(no_json("man writes manual pages"));
    }
    finish(write_pages(&args.out).map(|n| {
        outln!("wrote {n} manual page(s) to {}", args.out.display());
    }))
}

fn write_pages(dir: &std::path::Path) -> Result<usize, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut cmd = Cli::command();
    cmd.build();
    let mut written = 0;
    let mut pending = vec![("portcullis".to_owned(), cmd)];
    while let Some((name, cmd)) = pending.pop() {
        for sub in cmd.get_subcommands() {
            if sub.get_name() != "help" {
                pending.push((format!("{name}-{}", sub.get_name()), sub.clone()));
            }
        }
        // clap names are &'static str; a page per command is a handful of
        // short strings for the life of this short command.
        let static_name: &'static str = Box::leak(name.clone().into_boxed_str());
        let page = clap_mangen::Man::new(cmd.clone().name(static_name));
        let mut text = Vec::new();
        page.render(&mut text)
            .map_err(|e| format!("cannot render the page of {name}: {e}"))?;
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written += 1;
    }
    Ok(written)
}
