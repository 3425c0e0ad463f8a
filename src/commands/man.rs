//! `cip man`: the manual page (roff, section 1), from the same command definition as `--help`.
use clap::CommandFactory;

use crate::cli::Cli;

pub fn run() -> anyhow::Result<i32> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    render_subcommands(&mut out)?;
    std::io::Write::write_all(&mut std::io::stdout(), &out)?;
    Ok(0)
}

/// One section per subcommand with its flags, after the page's own list of subcommands.
fn render_subcommands(out: &mut Vec<u8>) -> anyhow::Result<()> {
    let cmd = Cli::command();
    for sub in cmd.get_subcommands() {
        let title = format!(".SH \"CIP {}\"\n", sub.get_name().to_uppercase());
        out.extend_from_slice(title.as_bytes());
        let man = clap_mangen::Man::new(sub.clone());
        man.render_description_section(out)?;
        man.render_options_section(out)?;
    }
    Ok(())
}
