//! The results of a run, from what its steps recorded: per image, what happened to it (its
//! [`Outcome`]), where it is, its digests and tags, how long it took, where it was built.
use std::time::Duration;

use super::outcome::{ImageResult, Outcome, StepOutcome};
use super::{node_of, Shared};
use crate::builders::Backend;
use crate::plan::steps::{Action, ImageId, Plan};
use crate::plan::ImagePlan;
use crate::platform::Platform;
use crate::registry::index::Entry;

/// The results of a run with nothing to build: every image is up to date. `store` is the node
/// whose local store holds them (`cip build`), asked for their ids.
pub async fn nothing_to_build(plan: &Plan, store: Option<&dyn Backend>) -> Vec<ImageResult> {
    let mut results = summarize(plan, &[], &Shared::default());
    if let Some(node) = store {
        store_digests(node, &mut results, true).await;
    }
    results
}

/// Fills in the image id of each image the run built into the local store (and, with `kept`, of
/// those it found there), for the platform it was built for. One inspect per image: a no-op run
/// of many images asks only when it must (`kept`). An image the store cannot tell about keeps no
/// digest.
pub(super) async fn store_digests(node: &dyn Backend, results: &mut [ImageResult], kept: bool) {
    for r in results
        .iter_mut()
        .filter(|r| kept || r.result == Outcome::Built)
    {
        let Some(platform) = r.built.first().or(r.kept.first()).cloned() else {
            continue;
        };
        if !matches!(r.result, Outcome::Built | Outcome::UpToDate) {
            continue;
        }
        let tag = format!("{}:{}", r.repository, r.version);
        if let Ok(Some(id)) = node.image_id(&tag).await {
            r.platform_digests = vec![(platform, id.clone())];
            r.digest = Some(id);
            r.tags = match r.result {
                Outcome::Built => vec![r.version.clone(), "latest".into()],
                _ => vec![r.version.clone()],
            };
        }
    }
}

/// Each platform's manifest digest of an index.
fn platform_digests(entries: &[Entry]) -> Vec<(Platform, String)> {
    entries
        .iter()
        .filter_map(|e| Some((e.platform.clone()?, e.digest.clone())))
        .filter(|(_, d)| !d.is_empty())
        .collect()
}

pub(super) fn summarize(
    plan: &Plan,
    outcomes: &[StepOutcome],
    shared: &Shared,
) -> Vec<ImageResult> {
    plan.images
        .iter()
        .enumerate()
        .map(|(i, image)| summarize_image(plan, ImageId(i), image, outcomes, shared))
        .collect()
}

fn summarize_image(
    plan: &Plan,
    id: ImageId,
    image: &ImagePlan,
    outcomes: &[StepOutcome],
    shared: &Shared,
) -> ImageResult {
    let mine: Vec<(&Action, &StepOutcome)> = plan
        .steps
        .iter()
        .zip(outcomes)
        .filter(|(s, _)| s.image == id)
        // A stage's link of a published platform is no work on the image (unless it failed).
        .filter(|(s, o)| !(matches!(s.action, Action::Link(_)) && **o == StepOutcome::Succeeded))
        .map(|(s, o)| (&s.action, o))
        .collect();
    let built: Vec<Platform> = mine
        .iter()
        .filter_map(|(a, o)| match (a, o) {
            (Action::Build(b), StepOutcome::Succeeded) => Some(b.platform.clone()),
            _ => None,
        })
        .collect();
    let to_build = image.to_build();
    let kept = image
        .wanted
        .iter()
        .filter(|p| !to_build.contains(p))
        .cloned()
        .collect();
    let failed = mine.iter().find_map(|(_, o)| match o {
        StepOutcome::Failed(m) => Some(m.clone()),
        _ => None,
    });
    let failed_steps: Vec<(Option<Platform>, Option<std::path::PathBuf>)> = mine
        .iter()
        .filter(|(_, o)| matches!(o, StepOutcome::Failed(_)))
        .map(|(a, _)| match a {
            Action::Build(b) => (Some(b.platform.clone()), Some(b.log.clone())),
            Action::Assemble(_) | Action::Link(_) => (None, None),
        })
        .collect();
    let (result, error) = if let Some(conflict) = shared.conflicts.get(&id) {
        (Outcome::Failed, Some(conflict.clone()))
    } else if mine.is_empty() {
        (Outcome::UpToDate, None)
    } else if let Some(m) = failed {
        // The builds succeeded where only pushing failed: that is what the result says.
        let pushing = shared.push_failures.contains_key(&id)
            && failed_steps.iter().all(|(p, _)| {
                p.as_ref()
                    .is_some_and(|p| shared.push_failures[&id].contains(p))
            });
        let result = if pushing {
            Outcome::PushFailed
        } else {
            Outcome::Failed
        };
        (result, Some(m))
    } else if mine
        .iter()
        .any(|(_, o)| matches!(o, StepOutcome::Skipped { .. }))
    {
        (Outcome::SkippedParentFailed, None)
    } else if mine.iter().any(|(_, o)| **o == StepOutcome::Cancelled) {
        (Outcome::Cancelled, None)
    } else {
        (Outcome::Built, None)
    };
    let published = image.published.as_ref().filter(|p| !p.digest.is_empty());
    let (digest, platform_digests, tags) = match (shared.written.get(&id), published) {
        (Some(w), _) => (
            Some(w.digest.clone()),
            self::platform_digests(&w.entries),
            w.tags.clone(),
        ),
        (None, Some(p)) if result == Outcome::UpToDate => (
            Some(p.digest.clone()),
            self::platform_digests(&p.entries),
            vec![image.version.clone()],
        ),
        _ => (None, Vec::new(), Vec::new()),
    };
    ImageResult {
        name: image.name.clone(),
        version: image.version.clone(),
        built,
        kept,
        replaced: shared
            .written
            .get(&id)
            .map(|w| w.replaced.clone())
            .unwrap_or_default(),
        failed_steps,
        result,
        error,
        duration: wall_time(plan, id, shared),
        repository: format!("{}/{}", plan.destination, image.name),
        digest,
        platform_digests,
        tags,
        built_on: built_on(plan, id, outcomes, shared),
    }
}

/// The node of each platform of image `id` built, for a run on a farm.
fn built_on(
    plan: &Plan,
    id: ImageId,
    outcomes: &[StepOutcome],
    shared: &Shared,
) -> Vec<(Platform, String)> {
    if plan.nodes.iter().all(|n| n.name == "local") {
        return Vec::new();
    }
    plan.steps
        .iter()
        .zip(outcomes)
        .filter(|(s, o)| s.image == id && **o == StepOutcome::Succeeded)
        .filter_map(|(s, _)| match &s.action {
            Action::Build(b) => {
                let node = node_of(plan, s.id, shared)?;
                Some((b.platform.clone(), plan.nodes[node.0].name.clone()))
            }
            Action::Assemble(_) | Action::Link(_) => None,
        })
        .collect()
}

/// From the first of an image's steps starting to the last one ending: its platforms build side
/// by side, so this is not their sum.
fn wall_time(plan: &Plan, id: ImageId, shared: &Shared) -> Duration {
    let ran: Vec<(Duration, Duration)> = plan
        .steps
        .iter()
        .filter(|s| s.image == id)
        .filter_map(|s| shared.ran.get(&s.id).copied())
        .collect();
    match (ran.iter().map(|r| r.0).min(), ran.iter().map(|r| r.1).max()) {
        (Some(start), Some(end)) => end.saturating_sub(start),
        _ => Duration::ZERO,
    }
}
