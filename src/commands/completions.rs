//! `cip completions SHELL`: a completion script for bash, zsh, fish, elvish or PowerShell, from
//! the same command definition as `--help`, so it always lists every subcommand and flag.
use clap::CommandFactory;

use crate::cli::Cli;

pub fn run(shell: clap_complete::Shell) -> anyhow::Result<i32> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "cip", &mut std::io::stdout());
    Ok(0)
}
