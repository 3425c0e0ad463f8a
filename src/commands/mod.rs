//! One module per subcommand; each returns the process exit code.
pub mod cascade;
pub mod check;
pub mod graph;
pub mod mirror;
pub mod publish;

use crate::cli::ProjectArgs;
use crate::diagnostics::Problem;
use crate::graph::{validate, Graph};
use crate::output::style_problem;
use crate::project::{self, Project};

/// A scanned and validated project: the graph and every problem (scan and graph) sorted by location.
pub struct Loaded {
    pub project: Project,
    pub graph: Graph,
    pub problems: Vec<Problem>,
}

impl Loaded {
    pub fn errors(&self) -> usize {
        self.problems.iter().filter(|p| p.is_error()).count()
    }
}

pub fn load(args: &ProjectArgs) -> anyhow::Result<Loaded> {
    let started = std::time::Instant::now();
    let project = project::scan(&args.project_dir)?;
    let graph = Graph::build(&project);
    let mut problems = project.problems.clone();
    problems.extend(validate(&project, &graph, &args.default_platforms));
    problems.sort_by(|a, b| (&a.file, a.line, a.severity).cmp(&(&b.file, b.line, b.severity)));
    crate::output::timing("scan and validation", started);
    Ok(Loaded {
        project,
        graph,
        problems,
    })
}

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
