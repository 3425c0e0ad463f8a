//! `cip status`: per image, its version, what the registry holds, and whether its context drifted
//! since that version was published.
use super::{load_valid, print_json};
use crate::options::{ProjectOptions, TargetOptions, Targets};
use crate::plan;

pub fn run(
    project: &ProjectOptions,
    target: &TargetOptions,
    json: bool,
    targets: &Targets,
) -> anyhow::Result<i32> {
    let loaded = load_valid(project)?;
    let (destination, planned) = crate::run::status(&loaded, project, target, targets)?;
    if json {
        print_json(&plan::to_json(&loaded, &destination, &planned))?;
    } else {
        print!("{}", plan::render_status(&planned.images));
        print!("{}", plan::drift_report(&planned.images));
    }
    Ok(0)
}
