//! One module per subcommand; each returns the process exit code.
pub mod cascade;
pub mod check;
pub mod graph;
pub mod mirror;
pub mod publish;

use crate::cli::ProjectArgs;
use crate::output::style_problem;

pub use crate::load::{load, Loaded};

/// Loads the project for a command that acts on it: shows every problem, and refuses to go on if one
/// is an error (warnings only inform).
pub fn load_valid(args: &ProjectArgs) -> anyhow::Result<Loaded> {
    let loaded = load(args)?;
    for p in &loaded.problems {
        eprintln!("{}", style_problem(p));
    }
    if loaded.errors() > 0 {
        anyhow::bail!(
            "{} error(s) in the project (see above; `cip check` lists them)",
            loaded.errors()
        );
    }
    Ok(loaded)
}
