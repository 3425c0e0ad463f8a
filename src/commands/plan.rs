//! `cip plan`: what a run would build and why, per image and platform, then the steps it would
//! execute (`--json`: the plan itself, see docs/json.md).
use super::{load_valid, print_json};
use crate::builders::BuilderKind;
use crate::options::{FarmOptions, Forcing, PlanOptions, ProjectOptions, TargetOptions, Targets};
use crate::plan;

#[allow(clippy::too_many_arguments)]
pub fn run(
    project: &ProjectOptions,
    target: &TargetOptions,
    force: &Forcing,
    store: bool,
    builder: BuilderKind,
    json: bool,
    farm: &FarmOptions,
    choices: &PlanOptions,
    targets: &Targets,
) -> anyhow::Result<i32> {
    let loaded = load_valid(project)?;
    let (destination, planned) = crate::run::plan_run(
        &loaded, project, target, force, store, builder, farm, choices, targets,
    )?;
    if json {
        print_json(&plan::to_json(&loaded, &destination, &planned))?;
    } else {
        print!("{}", plan::render(&loaded, &planned));
    }
    Ok(0)
}
