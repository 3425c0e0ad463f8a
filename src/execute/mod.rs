//! Runs a [`Plan`]: each step as soon as the steps it waits for succeeded, on the node it names,
//! writing where it says. It decides nothing the plan did not: a build step builds and delivers
//! one platform, an assemble step writes one image's index. Used by `publish`, `publish-locally`
//! and `build`. One job per file:
//! - here: the [`Executor`], the scheduling glue, and running a step;
//! - `build`: building a step on its node (or, its node lost, on a fallback);
//! - `deliver`: where a built image goes (one `Deliver`: the two push routes, the store);
//! - `assemble`: the index steps (an image's index, a stage's link);
//! - `index_writer`: the one place an image index is written (also `cip merge` and the fan-in);
//! - `outcome`: what happened to each image and step ([`Outcome`], [`ImageResult`]);
//! - `results`: the results of a run, from what its steps recorded;
//! - `summary`: the summary table, the result line and the `--json` document.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::builders::{Backend, RegistryAccess};
use crate::interrupt::{self, Signal};
use crate::plan::steps::{Action, ImageId, NodeId, Plan, StepId};
use crate::platform::Platform;
use crate::progress::{Display, Reporter};
use crate::registry::Registry;
use crate::schedule::{self, Task};

mod assemble;
mod build;
pub mod deliver;
pub mod index_writer;
mod outcome;
mod results;
mod summary;
#[cfg(test)]
mod tests;

pub use assemble::image_annotations;
pub use deliver::{AfterImagePushed, Pushed};
use index_writer::{AfterIndexWritten, NewImage, Written};
pub use outcome::{step_outcome_name, ImageResult, Outcome, StepOutcome, StepRecord};
pub use results::nothing_to_build;
pub use summary::{render_summary, result_line, summary_json};

/// What a plan's steps run with: the nodes' builders (by `NodeId`), the registry that receives
/// pushed images, and how builders reach it.
pub struct Executor {
    pub nodes: Vec<Arc<dyn Backend>>,
    pub registry: Option<Arc<Registry>>,
    pub access: RegistryAccess,
    pub keep_going: bool,
    /// A local store run asks the store for the ids of the images it did not build too (for
    /// `--metadata-file` and `--verbose`); the images it built are always asked about.
    pub ids_of_kept: bool,
    /// Where the private directories of pushes go (`TMPDIR`, see `scratch`).
    pub temp_dir: std::path::PathBuf,
    /// Where the run's display draws and lower layers' events go.
    pub reporter: Arc<Reporter>,
}

/// A name unique to this process and moment, for the builder tags a run owns (see
/// `builders::leftovers`: it tells whether the run still lives).
pub fn new_run_id() -> String {
    crate::builders::leftovers::new_run_id()
}

/// Shared state of a run, keyed by the plan's ids.
#[derive(Default)]
struct Shared {
    /// Platform images pushed per image, for its index (recorded by [`Record`], a hook of
    /// delivering).
    entries: HashMap<ImageId, Vec<NewImage>>,
    ran: HashMap<StepId, (Duration, Duration)>,
    /// The index written for each image's version tag (recorded by [`RecordIndex`], a hook of the
    /// index writer).
    written: HashMap<ImageId, Written>,
    /// Version tags another run moved after this run wrote them.
    conflicts: HashMap<ImageId, String>,
    /// The platforms of each image whose build succeeded and whose push failed.
    push_failures: HashMap<ImageId, Vec<Platform>>,
    /// Build steps that ran on another node than the plan's (their node was lost).
    moved: HashMap<StepId, NodeId>,
}

/// How a run ended.
pub struct RunReport {
    /// One result per image.
    pub results: Vec<ImageResult>,
    /// One record per step of the plan, by step id.
    pub steps: Vec<StepRecord>,
    /// Whether every step succeeded.
    pub ok: bool,
    /// The signal that stopped the run early, if one did.
    pub interrupted: Option<Signal>,
}

/// What a run calls besides recording itself: after each platform image is pushed into the
/// registry, and after each image's index is written (not a stage's link). Where signing and
/// attestations plug in; an error of a hook fails the step that called it.
#[derive(Default, Clone)]
pub struct Hooks {
    pub after_push: Vec<Arc<dyn AfterImagePushed>>,
    pub after_index: Vec<Arc<dyn AfterIndexWritten>>,
}

impl Executor {
    /// Runs the plan's steps. SIGINT or SIGTERM stops the run as a first failure would.
    pub async fn run(&self, plan: &Plan) -> anyhow::Result<RunReport> {
        self.run_with(plan, Hooks::default()).await
    }

    /// [`Executor::run`], calling `hooks` after what the run records of each push and index.
    pub async fn run_with(&self, plan: &Plan, hooks: Hooks) -> anyhow::Result<RunReport> {
        let builds = plan.builds().count();
        let progress = Arc::new(self.reporter.display(builds as u64, plan.steps.len()));
        for node in &plan.nodes {
            let on_node = plan.builds().filter(|(_, b)| b.node == node.id).count();
            progress.println(&format!(
                "{} with {} on node {}, {} at a time, into {}",
                crate::output::count(on_node, "build"),
                node.builder,
                node.name,
                node.slots,
                plan.destination
            ));
        }
        announce_platform_stores(plan, &progress);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let record: Arc<dyn AfterImagePushed> = Arc::new(Record {
            shared: shared.clone(),
        });
        let run = Arc::new(StepRunner {
            plan: plan.clone(),
            nodes: self.nodes.clone(),
            registry: self.registry.clone(),
            access: self.access.clone(),
            temp_dir: self.temp_dir.clone(),
            shared: shared.clone(),
            progress: progress.clone(),
            started: Instant::now(),
            slots: plan
                .nodes
                .iter()
                .map(|n| Arc::new(tokio::sync::Semaphore::new(n.slots.max(1))))
                .collect(),
            after_push: std::iter::once(record).chain(hooks.after_push).collect(),
            after_index: hooks.after_index,
        });
        let tasks = tasks_of(plan);
        let opts = schedule::Options {
            slots: plan.nodes.iter().map(|n| n.slots).collect(),
            keep_going: self.keep_going,
        };
        let interrupted = Arc::new(Mutex::new(None));
        let stop = {
            let (interrupted, progress) = (interrupted.clone(), progress.clone());
            async move {
                let signal = interrupt::requested().await;
                progress.println(&format!(
                    "{}: stopping; the running builds are cancelled (send it again to kill them at once)",
                    signal.name()
                ));
                *interrupted.lock().unwrap_or_else(|e| e.into_inner()) = Some(signal);
            }
        };
        let outcomes = schedule::run_until(&tasks, opts, stop, move |i| {
            let run = run.clone();
            async move { run.execute(StepId(i)).await }
        })
        .await;
        progress.done();
        self.verify_tags(&shared).await;
        let mut results = {
            let s = shared.lock().unwrap_or_else(|e| e.into_inner());
            results::summarize(plan, &outcomes, &s)
        };
        if self.registry.is_none() {
            if let Some(node) = self.nodes.first() {
                results::store_digests(node.as_ref(), &mut results, self.ids_of_kept).await;
            }
        }
        let shared = shared.lock().unwrap_or_else(|e| e.into_inner());
        let steps = outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| StepRecord {
                id: StepId(i),
                outcome: o.clone(),
                ran: shared.ran.get(&StepId(i)).copied(),
                node: node_of(plan, StepId(i), &shared).map(|n| plan.nodes[n.0].name.clone()),
            })
            .collect();
        let ok =
            outcomes.iter().all(|o| *o == StepOutcome::Succeeded) && shared.conflicts.is_empty();
        let interrupted = *interrupted.lock().unwrap_or_else(|e| e.into_inner());
        Ok(RunReport {
            results,
            steps,
            ok,
            interrupted,
        })
    }

    /// Looks again, after a moment, at every version tag this run wrote: one that now points
    /// elsewhere was overwritten by a concurrent run, and is reported as a conflict (the run fails).
    async fn verify_tags(&self, shared: &Mutex<Shared>) {
        let Some(reg) = &self.registry else {
            return;
        };
        let (ids, written): (Vec<ImageId>, Vec<Written>) = {
            let s = shared.lock().unwrap_or_else(|e| e.into_inner());
            s.written.iter().map(|(k, v)| (*k, v.clone())).unzip()
        };
        let conflicts = index_writer::IndexWriter::new(reg).settle(&written).await;
        let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
        for (i, conflict) in conflicts {
            s.conflicts.insert(ids[i], conflict);
        }
    }
}

/// The node a build step ran on: the plan's, or the one it moved to.
fn node_of(plan: &Plan, id: StepId, shared: &Shared) -> Option<NodeId> {
    match &plan.step(id).action {
        Action::Build(b) => Some(shared.moved.get(&id).copied().unwrap_or(b.node)),
        Action::Assemble(_) | Action::Link(_) => None,
    }
}

/// The scheduler's view of the steps: dependencies, the node's pool for builds, and a cost.
fn tasks_of(plan: &Plan) -> Vec<Task> {
    plan.steps
        .iter()
        .map(|s| Task {
            deps: s.waits_for.iter().map(|d| d.0).collect(),
            pool: match &s.action {
                Action::Build(b) => Some(b.node.0),
                Action::Assemble(_) | Action::Link(_) => None,
            },
            cost: match &s.action {
                Action::Build(_) => 1.0,
                Action::Assemble(_) | Action::Link(_) => 0.01,
            },
        })
        .collect()
}

/// Names the private store of each platform that builds in one.
fn announce_platform_stores(plan: &Plan, progress: &Display) {
    let stores: BTreeMap<String, String> = plan
        .builds()
        .filter_map(|(_, b)| {
            let store = b.store.as_ref()?;
            Some((
                b.platform.to_string(),
                store.graph_root.display().to_string(),
            ))
        })
        .collect();
    for (platform, root) in stores {
        progress.println(&format!(
            "{platform} builds in its own store {root} (one platform per store)"
        ));
    }
}

/// Runs single steps; shared by the run's tasks.
struct StepRunner {
    plan: Plan,
    nodes: Vec<Arc<dyn Backend>>,
    registry: Option<Arc<Registry>>,
    access: RegistryAccess,
    temp_dir: std::path::PathBuf,
    shared: Arc<Mutex<Shared>>,
    progress: Arc<Display>,
    started: Instant,
    /// Each node's slots, held by every build running on it: the scheduler fills a node's
    /// slots with its planned steps, and a build moved there from a lost node waits for one too.
    slots: Vec<Arc<tokio::sync::Semaphore>>,
    /// Called after each push: [`Record`] first, then the run's hooks.
    after_push: Vec<Arc<dyn AfterImagePushed>>,
    /// Called after each image's index is written, after [`RecordIndex`].
    after_index: Vec<Arc<dyn AfterIndexWritten>>,
}

impl StepRunner {
    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn execute(&self, id: StepId) -> anyhow::Result<()> {
        let step = self.plan.step(id);
        let image = self.plan.image(step.image);
        let label = match &step.action {
            Action::Build(b) => format!(
                "build {}:{} {}{}",
                image.name,
                image.version,
                b.platform,
                self.on_node(b.node)
            ),
            Action::Assemble(a) => format!("tag {}:{}", a.repository, image.version),
            Action::Link(l) => format!("link {}:{} {}", l.repository, l.tag, l.platform),
        };
        self.progress.step_started();
        let line = self.progress.start(&label);
        let started = self.started.elapsed();
        let result = match &step.action {
            Action::Build(b) => self.build_or_move(id, step.image, b, &line).await,
            Action::Assemble(a) => self.assemble(step.image, a).await,
            Action::Link(l) => self.link(l).await,
        };
        let finished = self.started.elapsed();
        {
            let mut s = self.shared();
            s.ran.insert(id, (started, finished));
        }
        let counts = matches!(step.action, Action::Build(_));
        match &result {
            Ok(()) => self.progress.finish(line, "done", counts),
            Err(e) => self
                .progress
                .finish(line, &format!("FAILED: {e:#}"), counts),
        }
        result
    }

    /// ` on NODE` for a run on a farm, nothing on the local builder.
    fn on_node(&self, node: NodeId) -> String {
        match &self.plan.nodes[node.0].name {
            name if name == "local" => String::new(),
            name => format!(" on {name}"),
        }
    }
}

/// Records each platform image pushed, for its image's index (see `assemble`).
struct Record {
    shared: Arc<Mutex<Shared>>,
}

impl AfterImagePushed for Record {
    fn after_image_pushed<'a>(
        &'a self,
        _reg: &'a Registry,
        pushed: &'a Pushed,
    ) -> futures_util::future::BoxFuture<'a, anyhow::Result<()>> {
        let new = NewImage {
            entry: pushed.entry.clone(),
            from: pushed.repository.clone(),
            node: pushed.node.clone(),
        };
        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        s.entries.entry(pushed.image).or_default().push(new);
        Box::pin(async { Ok(()) })
    }
}

/// Records each index the run wrote for the image, for the summary and the check after the run
/// (see `Executor::verify_tags`).
struct RecordIndex {
    shared: Arc<Mutex<Shared>>,
    image: ImageId,
}

impl AfterIndexWritten for RecordIndex {
    fn after_index_written<'a>(
        &'a self,
        _reg: &'a Registry,
        written: &'a Written,
    ) -> futures_util::future::BoxFuture<'a, anyhow::Result<()>> {
        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        s.written.insert(self.image, written.clone());
        Box::pin(async { Ok(()) })
    }
}
