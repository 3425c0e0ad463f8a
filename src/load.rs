//! The first stage of every command: scan the project, build its graph, validate both. What comes
//! out is a [`Loaded`] project with every problem found, errors and warnings, sorted by location.
use crate::cli::ProjectArgs;
use crate::diagnostics::Problem;
use crate::graph::{validate, Graph};
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
