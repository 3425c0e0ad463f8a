//! `cip publish`: build every missing image for all its platforms (or only this machine's) and push
//! it to a remote registry, with its multi-platform index tagged VERSION and latest; with `--stage`,
//! one platform into a staging namespace; with `--merge`, the final indexes from the staged
//! platforms (see `crate::fan_in`).
use crate::cli::StageArgs;
use crate::options::RunOptions;
use crate::run::Mode;
use crate::session::{runtime, Session};

/// The fan-in flags of `publish`.
pub struct Merge {
    pub merge: bool,
    pub allow_incomplete: bool,
    /// `--prune-stage`: delete the staging tags of the images published in full.
    pub prune_stage: bool,
}

pub fn run(
    args: &RunOptions,
    remote_registry: &str,
    only_local_platform: bool,
    stage: &StageArgs,
    merge: Merge,
) -> anyhow::Result<i32> {
    if merge.merge {
        return run_merge(args, remote_registry, stage, &merge);
    }
    let mode = Mode::Remote {
        registry: remote_registry.to_string(),
        only_local_platform,
        stage: stage.namespace(),
    };
    super::building(args, mode)
}

/// `publish --merge`: exit 1 when an image lacks a platform, unless `--allow-incomplete`.
fn run_merge(
    args: &RunOptions,
    registry: &str,
    stage: &StageArgs,
    flags: &Merge,
) -> anyhow::Result<i32> {
    let allow_incomplete = flags.allow_incomplete;
    let loaded = super::load_valid(&args.project)?;
    let rt = runtime()?;
    // As before this command had a reporter: the settings' mode, whatever the flags say.
    let events = args.connect.events.clone();
    let session = rt.block_on(Session::open(registry, &args.connect, &events))?;
    let reg = session.registry.clone();
    let opts = crate::fan_in::Options {
        namespace: stage.stage_namespace.clone(),
        no_latest: args.no_latest,
        arch_tags: args.arch_tags,
        concurrency: args.query_concurrency,
    };
    let images = rt.block_on(crate::fan_in::plan(
        &loaded,
        &reg,
        &args.project.default_platforms,
        &opts,
    ))?;
    let all = images.clone();
    let images = crate::fan_in::select(&loaded, images, &args.targets)?;
    if args.json {
        super::print_json(&serde_json::json!({
            "registry": reg.address(),
            "dry_run": args.dry_run,
            "images": images.iter().map(|m| {
                let mut v = serde_json::to_value(m).unwrap_or_default();
                v["result"] = serde_json::to_value(m.result()).unwrap_or_default();
                v
            }).collect::<Vec<_>>(),
        }))?;
    }
    eprint!(
        "{}",
        crate::fan_in::render(&images, reg.address(), &stage.stage_namespace)
    );
    let plans: Vec<_> = images.iter().map(|m| m.plan().clone()).collect();
    if args.dry_run {
        eprint!("{}", crate::plan::drift_report(&plans));
    } else {
        // A drifted final version is completed only on purpose, as publish adds a platform to it.
        crate::run::refuse_drift(&plans, args.allow_drift)?;
        rt.block_on(crate::fan_in::execute(&reg, &images))?;
        if flags.prune_stage {
            rt.block_on(crate::fan_in::prune_stage(
                &reg,
                &loaded,
                &all,
                &images,
                &stage.stage_namespace,
            ))?;
        }
    }
    let incomplete = images
        .iter()
        .filter(|m| m.result() == crate::fan_in::Outcome::Incomplete)
        .count();
    if incomplete > 0 {
        eprintln!(
            "{incomplete} image(s) incomplete: their indexes were not written (a published index never lacks a declared platform){}",
            if allow_incomplete { "; --allow-incomplete: exit 0" } else { "" }
        );
        if !allow_incomplete {
            return Ok(1);
        }
    }
    Ok(0)
}
