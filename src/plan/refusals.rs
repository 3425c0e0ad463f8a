//! What stops a run before it builds anything, decided with its plan so that `cip plan` and
//! `--dry-run` show what `publish` refuses: drift (unless `--allow-drift`), builds no node takes,
//! `--native-only` with an emulated build, what a node's builder cannot build, a platform a node
//! cannot emulate. Each becomes a [`Blocked`] entry of the plan, and the steps it stops say why.
use super::steps::{Blocked, BlockedBy, Plan, StepId};
use crate::builders::{capabilities, emulation, Backend};
use crate::platform::Platform;
use crate::project::Project;

/// The flags of a run that turn what the plan found into refusals.
#[derive(Debug, Clone, Copy)]
pub struct Checks<'a> {
    /// `--allow-drift`: a drifted published version does not stop the run.
    pub allow_drift: bool,
    /// `--native-only`: a build placed under emulation stops the run.
    pub native_only: bool,
    /// Where this machine's kernel keeps its binfmt handlers (`CIP_BINFMT_DIR`).
    pub binfmt_dir: &'a std::path::Path,
}

/// A node of the plan (same index as [`Plan::nodes`]) as the refusals need to know it.
pub struct NodeCheck<'a> {
    pub builder: &'a dyn Backend,
    /// What the engine itself runs natively (a declared platform may differ).
    pub reported: &'a [Platform],
    /// Whether this machine's kernel emulates for it (a local engine), so that its emulation can
    /// be checked here.
    pub emulates_here: bool,
}

/// Adds to `plan.blocked` every refusal of the run, in the order the run checks them, and to
/// each step it stops, its reason.
pub fn add(plan: &mut Plan, project: &Project, nodes: &[NodeCheck], checks: Checks) {
    let mut found: Vec<(Blocked, Vec<StepId>)> = Vec::new();
    if let Some(drift) = drift(plan, checks.allow_drift) {
        found.push((drift, Vec::new()));
    }
    for e in &plan.unplaced {
        found.push((Blocked::new(BlockedBy::Unplaced, e.clone()), Vec::new()));
    }
    if checks.native_only {
        found.extend(native_only(plan));
    }
    for (i, node) in nodes.iter().enumerate() {
        found.extend(builder(plan, project, i, node));
        found.extend(emulation(plan, i, node, checks.binfmt_dir));
    }
    for (blocked, steps) in found {
        for id in steps {
            plan.steps[id.0].blocked.push(blocked.reason.clone());
        }
        plan.blocked.push(blocked);
    }
}

/// A published version whose context changed without a version bump is never skipped silently,
/// nor linked into a stage (see [`super::ImagePlan::drift_stands`]).
fn drift(plan: &Plan, allow: bool) -> Option<Blocked> {
    if allow || !plan.images.iter().any(super::ImagePlan::drift_stands) {
        return None;
    }
    let mut blocked = Blocked::new(
        BlockedBy::Drift,
        "published versions differ from their contexts: bump them, or pass --allow-drift".into(),
    );
    blocked.said_before = super::drift_report(&plan.images);
    Some(blocked)
}

/// `--native-only`: one refusal naming every platform built under emulation, and on which node.
fn native_only(plan: &Plan) -> Option<(Blocked, Vec<StepId>)> {
    let emulated: Vec<_> = plan.builds().filter(|(_, b)| b.emulated).collect();
    let mut named: Vec<String> = emulated
        .iter()
        .map(|(_, b)| format!("{} on node {}", b.platform, plan.nodes[b.node.0].name))
        .collect();
    named.sort();
    named.dedup();
    if named.is_empty() {
        return None;
    }
    let reason = format!(
        "--native-only: no native node for {}; add a node native for it (or declare its \
         platforms in cip.toml), or drop --native-only to build it under emulation",
        named.join(", ")
    );
    let steps = emulated.iter().map(|(s, _)| s.id).collect();
    Some((Blocked::new(BlockedBy::NativeOnly, reason), steps))
}

/// The Dockerfile features node `i`'s builder cannot build (heredocs), for the images it builds;
/// its warnings go to [`Plan::builder_warnings`].
fn builder(
    plan: &mut Plan,
    project: &Project,
    i: usize,
    node: &NodeCheck,
) -> Option<(Blocked, Vec<StepId>)> {
    let mine: Vec<(StepId, usize)> = plan
        .builds()
        .filter(|(_, b)| b.node.0 == i)
        .map(|(s, _)| (s.id, plan.image(s.image).ctx))
        .collect();
    // In build order (an image's builds are consecutive): the files are listed as they build.
    let mut building: Vec<usize> = mine.iter().map(|&(_, c)| c).collect();
    building.dedup();
    if building.is_empty() {
        return None;
    }
    let (shown, refusal) = capabilities::judge_build(project, building.clone(), node.builder);
    let styled: Vec<String> = shown.iter().map(crate::output::style_problem).collect();
    let Some(refusal) = refusal else {
        plan.builder_warnings.extend(styled);
        return None;
    };
    let errors: Vec<String> = shown
        .iter()
        .filter(|p| p.is_error())
        .map(|p| p.to_string())
        .collect();
    let failing: Vec<usize> = building
        .into_iter()
        .filter(|&c| {
            capabilities::problems_for(project, [c], node.builder)
                .iter()
                .any(|p| p.is_error())
        })
        .collect();
    let steps = mine
        .iter()
        .filter(|(_, c)| failing.contains(c))
        .map(|&(s, _)| s)
        .collect();
    let blocked = Blocked {
        by: BlockedBy::Builder,
        reason: if errors.is_empty() {
            refusal.clone()
        } else {
            errors.join("\n")
        },
        refusal,
        said_before: styled.iter().map(|s| format!("{s}\n")).collect(),
    };
    Some((blocked, steps))
}

/// The platforms placed on node `i` that this machine's kernel cannot emulate for it.
fn emulation(
    plan: &Plan,
    i: usize,
    node: &NodeCheck,
    binfmt_dir: &std::path::Path,
) -> Option<(Blocked, Vec<StepId>)> {
    if !node.emulates_here {
        return None;
    }
    let mine: Vec<(StepId, &Platform)> = plan
        .builds()
        .filter(|(_, b)| b.node.0 == i)
        .map(|(s, b)| (s.id, &b.platform))
        .collect();
    let mut platforms: Vec<Platform> = mine.iter().map(|&(_, p)| p.clone()).collect();
    platforms.sort();
    platforms.dedup();
    if platforms.is_empty() {
        return None;
    }
    let reason = emulation::check_in(binfmt_dir, &platforms, node.reported).err()?;
    let steps = mine
        .iter()
        .filter(|(_, p)| !node.reported.contains(p))
        .map(|&(s, _)| s)
        .collect();
    Some((Blocked::new(BlockedBy::Emulation, reason), steps))
}
