//! What a run removes of what runs left behind (see [`crate::builders::leftovers`]): before it
//! builds, the tags of runs that are over, from the stores of this machine's nodes (the per-platform
//! stores of its builds included) and from the staging repositories its plan pushes to; after a
//! cancellation, its own tags from the same places. Each removal is said, as lines the caller
//! prints. Everything here is best effort: a sweep that fails says so and the run goes on.
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::builders::leftovers::{self, Found, Judge};
use crate::builders::{Backend, StoreRoots};
use crate::plan::steps::{Output, Plan};
use crate::registry::{stage_sweep, Registry};

/// Where a run's builds may have left tags: nodes' per-platform stores (node index and roots)
/// and staging repositories (names within the registry).
struct Places {
    stores: Vec<(usize, StoreRoots)>,
    staging: BTreeSet<String>,
}

fn places(plan: &Plan, nodes: &[Arc<dyn Backend>]) -> Places {
    let mut stores = Vec::new();
    let mut staging = BTreeSet::new();
    for (_, b) in plan.builds() {
        if let Some(s) = &b.store {
            stores.push((b.node.0, s.clone()));
        }
        // A fallback node builds in its own store of the platform (as the executor picks it).
        for f in &b.fallback_nodes {
            if let Some(s) = nodes.get(f.0).and_then(|n| n.platform_store(&b.platform)) {
                stores.push((f.0, s));
            }
        }
        if let Output::Push {
            staging: Some(s), ..
        } = &b.output
        {
            staging.insert(s.name.clone());
        }
    }
    Places { stores, staging }
}

/// Before a run builds: removes what runs that are over left, from the nodes' stores and the
/// staging repositories the plan pushes to. `lease`: how long a run of another machine may last.
pub async fn before_run(
    plan: &Plan,
    nodes: &[Arc<dyn Backend>],
    registry: Option<&Registry>,
    run_id: &str,
    lease: Duration,
) -> Vec<String> {
    let judge = Judge::new(run_id, lease);
    let places = places(plan, nodes);
    let mut lines = leftovers::sweep_all(nodes, &places.stores, &judge).await;
    if let Some(reg) = registry {
        let over = |tag: &str| {
            leftovers::run_of_staging_tag(tag).and_then(|id| judge.over(id, Found::Shared))
        };
        for name in &places.staging {
            let swept = stage_sweep::sweep(reg, name, &|t| over(t).is_some()).await;
            let removed = |tags: &[String]| {
                tags.iter()
                    .map(|t| format!("{t} ({})", over(t).unwrap_or("over")))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            lines.extend(said(
                reg,
                name,
                swept,
                "left by earlier runs that are over",
                removed,
            ));
        }
    }
    lines
}

/// After a run was cancelled: removes its own tags from the nodes' stores and the staging
/// repositories of its plan (what it built or pushed and did not finish).
pub async fn after_cancel(
    plan: &Plan,
    nodes: &[Arc<dyn Backend>],
    registry: Option<&Registry>,
    run_id: &str,
) -> Vec<String> {
    let places = places(plan, nodes);
    let mut lines = leftovers::remove_run(nodes, &places.stores, run_id).await;
    if let Some(reg) = registry {
        let own = |tag: &str| leftovers::run_of_staging_tag(tag) == Some(run_id);
        for name in &places.staging {
            let swept = stage_sweep::sweep(reg, name, &own).await;
            lines.extend(said(reg, name, swept, "of this cancelled run", |t| {
                t.join(", ")
            }));
        }
    }
    lines
}

/// The lines that say what a sweep of repository `name` did.
fn said(
    reg: &Registry,
    name: &str,
    swept: anyhow::Result<stage_sweep::Swept>,
    whose: &str,
    list: impl Fn(&[String]) -> String,
) -> Vec<String> {
    let place = format!("{}/{name}", reg.address());
    let swept = match swept {
        Ok(s) => s,
        Err(e) => {
            return vec![format!(
                "note: staging tags in {place} were not swept: {e:#}"
            )]
        }
    };
    let mut lines = Vec::new();
    if !swept.removed.is_empty() {
        lines.push(format!(
            "removed {} {whose} from {place}: {}",
            crate::output::count(swept.removed.len(), "staging tag"),
            list(&swept.removed)
        ));
    }
    if let Some(note) = swept.note {
        lines.push(format!("note: {note}"));
    }
    lines
}

/// The stage lease of the project in `project_dir`: `stage_lease_hours` of its cip.toml, or
/// [`leftovers::DEFAULT_LEASE`]. A file that does not read gives the default (the run has
/// reported the file's mistakes already).
pub fn lease(project_dir: &std::path::Path) -> Duration {
    crate::config::file::ProjectFile::load(project_dir)
        .ok()
        .flatten()
        .and_then(|f| f.registry.stage_lease_hours)
        .map_or(leftovers::DEFAULT_LEASE, |h| {
            Duration::from_secs(h.value.saturating_mul(3600))
        })
}
