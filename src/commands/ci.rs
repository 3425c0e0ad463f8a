//! `cip ci matrix`: what a CI fan-out must run, per platform (see `crate::ci_matrix`).
use super::load_valid;
use crate::ci_matrix;
use crate::cli::{CiFormat, MatrixArgs, ProjectArgs, Targets};

pub fn matrix(
    project: &ProjectArgs,
    target: &MatrixArgs,
    format: CiFormat,
    targets: &Targets,
) -> anyhow::Result<i32> {
    let loaded = load_valid(project)?;
    let runners = match crate::config::file::ProjectFile::load(&project.project_dir)? {
        Some(file) => file
            .ci
            .runners
            .into_iter()
            .map(|(p, label)| (p, label.value))
            .collect(),
        None => Default::default(),
    };
    let (_, plans) = crate::run::plan_images(&loaded, project, &target.target(), &[], targets)?;
    let entries = ci_matrix::entries(&plans, &runners);
    match format {
        CiFormat::Github => print!("{}", ci_matrix::github(&entries)),
        CiFormat::Gitlab => print!("{}", ci_matrix::gitlab(&entries)),
        CiFormat::Json => super::print_json(&ci_matrix::to_json(&entries))?,
    }
    for e in &entries {
        eprintln!(
            "{}: {} image(s) to build{}",
            e.platform,
            e.images.len(),
            e.runner
                .as_deref()
                .map_or(String::new(), |r| format!(" on runner {r}"))
        );
    }
    if entries.is_empty() {
        eprintln!("nothing to build: the registry holds every platform of every image");
    }
    Ok(0)
}
