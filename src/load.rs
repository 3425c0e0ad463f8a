//! The first stage of every command: scan the project, build its graph, validate both. What comes
//! out is a [`Loaded`] project with every problem found, errors and warnings, sorted by location.
use crate::diagnostics::Problem;
use crate::graph::{validate, Graph};
use crate::options::{ProjectOptions, Targets};
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

    /// The contexts a run with `targets` is about: the ones named (with every descendant for
    /// `--with-descendants`), each name checked with a did-you-mean; `None` when none is named
    /// (every image).
    pub fn targeted(
        &self,
        targets: &Targets,
    ) -> anyhow::Result<Option<std::collections::BTreeSet<usize>>> {
        if targets.images.is_empty() {
            return Ok(None);
        }
        let mut chosen = std::collections::BTreeSet::new();
        for name in &targets.images {
            let ctx = self.context_named(name)?;
            chosen.insert(ctx);
            if targets.with_descendants {
                chosen.extend(self.graph.descendants(ctx));
            }
        }
        Ok(Some(chosen))
    }

    /// The context `name` names: an image name (`debian-slim`) or a context directory
    /// (`00-debian-slim`, `contexts/00-debian-slim/`); otherwise an error with the closest name.
    pub fn context_named(&self, name: &str) -> anyhow::Result<usize> {
        let wanted = name.trim_end_matches('/');
        let wanted = wanted.strip_prefix("contexts/").unwrap_or(wanted);
        let contexts = &self.project.contexts;
        if let Some(i) = contexts
            .iter()
            .position(|c| c.name == wanted || c.dir_name == wanted)
        {
            return Ok(i);
        }
        let closest = contexts
            .iter()
            .flat_map(|c| [&c.name, &c.dir_name])
            .map(|n| (crate::diagnostics::edit_distance(n, wanted), n))
            .filter(|(d, _)| *d <= 3)
            .min();
        let hint = match closest {
            Some((_, n)) => format!("did you mean {n:?}?"),
            None => "`cip graph` lists the images".to_string(),
        };
        anyhow::bail!(
            "no context produces an image named {} and no context directory is called so: {hint}",
            crate::diagnostics::quote(name)
        )
    }
}

pub fn load(args: &ProjectOptions) -> anyhow::Result<Loaded> {
    let started = std::time::Instant::now();
    let project = project::scan(&args.dir)?;
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
