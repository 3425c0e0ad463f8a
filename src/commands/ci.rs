//! `cip ci matrix`: what a CI fan-out must run, per platform (see `crate::ci_matrix`).
use super::load_valid;
use crate::ci_matrix::{self, JobTemplate};
use crate::cli::{CiFormat, MatrixArgs};
use crate::options::{ProjectOptions, TargetOptions, Targets};

/// `asked`: the registry the pipeline publishes to (`--remote-registry`, resolved), its final
/// repositories.
pub fn matrix(
    project: &ProjectOptions,
    target: &MatrixArgs,
    asked: &TargetOptions,
    format: CiFormat,
    targets: &Targets,
) -> anyhow::Result<i32> {
    // The template is read first: a pipeline that cannot be written fails before any lookup.
    let template = match (&target.job_template, format) {
        (Some(path), CiFormat::GitlabPipeline) => Some(JobTemplate::read(path)?),
        (None, CiFormat::GitlabPipeline) => anyhow::bail!(
            "--format gitlab-pipeline needs --job-template FILE: the hidden jobs `{}` and `{}` \
             the child pipeline's jobs extend (see docs/ci/gitlab-ci-jobs.yml)",
            ci_matrix::STAGE_JOB,
            ci_matrix::MERGE_JOB
        ),
        (Some(_), _) => {
            anyhow::bail!("--job-template is read by --format gitlab-pipeline only")
        }
        (None, _) => None,
    };
    let loaded = load_valid(project)?;
    let runners = match crate::config::file::ProjectFile::load(&project.dir)? {
        Some(file) => file
            .ci
            .runners
            .into_iter()
            .map(|(p, label)| (p, label.value))
            .collect(),
        None => Default::default(),
    };
    let (_, plans) = crate::run::plan_images(&loaded, project, asked, &[], targets)?;
    // Each platform left is asked again as its stage job would plan it: what is staged from
    // the current contexts is built already.
    let entries = ci_matrix::unstaged(ci_matrix::entries(&plans, &runners), |platform| {
        let stage = stage_target(asked, &target.stage_namespace, platform);
        let (_, plans) = crate::run::plan_images(&loaded, project, &stage, &[], targets)?;
        Ok(plans
            .iter()
            .filter(|i| i.to_build().contains(platform))
            .map(|i| i.name.clone())
            .collect())
    })?;
    match (format, &template) {
        (CiFormat::Github, _) => print!("{}", ci_matrix::github(&entries)),
        (CiFormat::Gitlab, _) => print!("{}", ci_matrix::gitlab(&entries)),
        (CiFormat::GitlabPipeline, Some(t)) => {
            print!("{}", ci_matrix::gitlab_pipeline(&entries, t))
        }
        (CiFormat::GitlabPipeline, None) => unreachable!("checked above"),
        (CiFormat::Json, _) => super::print_json(&ci_matrix::to_json(&entries))?,
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
        eprintln!(
            "nothing to build: the registry holds every platform of every image (published, or \
             staged from the current contexts)"
        );
    }
    Ok(0)
}

/// The target of the stage job of `platform`: what it would build (images staged from the current
/// contexts, or published, count as built).
fn stage_target(
    asked: &TargetOptions,
    namespace: &str,
    platform: &crate::platform::Platform,
) -> TargetOptions {
    TargetOptions {
        platforms: Some(vec![platform.clone()]),
        stage: Some(namespace.to_string()),
        ..asked.clone()
    }
}
