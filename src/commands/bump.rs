//! `cip bump NAME [part]`: bump one image and cascade to its descendants; `cip bump --changed`:
//! bump every image whose context drifted since its version was published (asks the registry).
use super::load_valid;
use crate::cascade::Level;
use crate::cli::EditArgs;
use crate::options::{ProjectOptions, TargetOptions};

pub fn run(
    project: &ProjectOptions,
    name: Option<&str>,
    part: Level,
    changed: bool,
    target: &TargetOptions,
    edit: &EditArgs,
) -> anyhow::Result<i32> {
    match name {
        Some(name) if !changed => super::cascade::run(project, Some((name, part)), edit),
        _ => bump_changed(project, target, edit),
    }
}

fn bump_changed(
    project: &ProjectOptions,
    t: &TargetOptions,
    edit: &EditArgs,
) -> anyhow::Result<i32> {
    let loaded = load_valid(project)?;
    let (_, images) = crate::run::plan_images(&loaded, project, t, &[], &Default::default())?;
    let drifted: Vec<usize> = images
        .iter()
        .filter(|p| p.drift.is_some())
        .map(|p| p.ctx)
        .collect();
    if drifted.is_empty() {
        eprintln!("no published version differs from its context: nothing to bump");
        return Ok(0);
    }
    super::cascade::apply(&loaded, &drifted, edit.level, edit)
}
