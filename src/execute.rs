//! Runs a [`Plan`]: each step as soon as the steps it waits for succeeded, on the node it names,
//! writing where it says. It decides nothing the plan did not: a build step builds and pushes (or
//! keeps) one platform, an assemble step writes one image's index. Used by `publish`,
//! `publish-locally` and `build`.
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use crate::builders::{Backend, BuildJob, RegistryAccess};
use crate::index_writer::{self, IndexWrite, IndexWriter, NewImage, Written};
use crate::interrupt::{self, Signal};
use crate::plan::steps::{
    Action, Assemble, Build, ImageId, Link, NodeId, Output, Plan, Route, Staging, StepId,
};
use crate::plan::ImagePlan;
use crate::platform::Platform;
use crate::progress::{Display, Line};
use crate::registry::index::{self, Entry};
use crate::registry::merge;
use crate::registry::push::{push_layout_from, PushedImage};
use crate::registry::Registry;
use crate::schedule::{self, Outcome, Task};

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
    pub temp_dir: PathBuf,
}

/// A name unique to this process and moment, for the builder tags a run owns (see
/// `builders::leftovers`: it tells whether the run still lives).
pub fn new_run_id() -> String {
    crate::builders::leftovers::new_run_id()
}

/// What happened to one image.
#[derive(Debug, Clone)]
pub struct ImageResult {
    pub name: String,
    pub version: String,
    pub built: Vec<Platform>,
    pub kept: Vec<Platform>,
    /// Platforms whose published entry this run replaced (a forced rebuild).
    pub replaced: Vec<Platform>,
    /// The steps of this image that failed: the platform built (None for the index) and its log.
    pub failed_steps: Vec<(Option<Platform>, Option<std::path::PathBuf>)>,
    pub result: String,
    pub error: Option<String>,
    pub duration: Duration,
    /// Where it is: `REGISTRY/name` (a repository, or the local store's name).
    pub repository: String,
    /// The digest of its index (registry), or its image id (local store); None if it has none.
    pub digest: Option<String>,
    /// The manifest digest (image id in a store) of each platform.
    pub platform_digests: Vec<(Platform, String)>,
    /// The tags this run wrote, or the version tag of an image it left as it was.
    pub tags: Vec<String>,
    /// The node that built each platform built, for a run on a farm (empty on the local builder).
    pub built_on: Vec<(Platform, String)>,
}

/// What happened to one step, in the order the steps finished.
#[derive(Debug, Clone)]
pub struct StepRecord {
    pub id: StepId,
    pub outcome: Outcome,
    /// When it started and finished, from the start of the run (None if it never ran).
    pub ran: Option<(Duration, Duration)>,
    /// The node a build step ran on (the plan's, or the one it was retried on).
    pub node: Option<String>,
}

/// Shared state of a run, keyed by the plan's ids.
#[derive(Default)]
struct Shared {
    /// Platform images pushed per image, for its index.
    entries: HashMap<ImageId, Vec<NewImage>>,
    ran: HashMap<StepId, (Duration, Duration)>,
    /// The index written for each image's version tag (recorded by [`Record`], a hook of the
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

impl Executor {
    /// Runs the plan's steps. SIGINT or SIGTERM stops the run as a first failure would.
    pub async fn run(&self, plan: &Plan) -> anyhow::Result<RunReport> {
        let builds = plan.builds().count();
        let progress = Arc::new(Display::new(builds as u64, plan.steps.len()));
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
            summarize(plan, &outcomes, &s)
        };
        if self.registry.is_none() {
            if let Some(node) = self.nodes.first() {
                store_digests(node.as_ref(), &mut results, self.ids_of_kept).await;
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
        let ok = outcomes.iter().all(|o| *o == Outcome::Succeeded) && shared.conflicts.is_empty();
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
        let conflicts = IndexWriter::new(reg).settle(&written).await;
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
    temp_dir: PathBuf,
    shared: Arc<Mutex<Shared>>,
    progress: Arc<Display>,
    started: Instant,
    /// Each node's slots, held by every build running on it: the scheduler fills a node's
    /// slots with its planned steps, and a build moved there from a lost node waits for one too.
    slots: Vec<Arc<tokio::sync::Semaphore>>,
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

    /// Builds on the plan's node; when that fails and the node no longer answers (lost in the
    /// middle of the run), once more on the first of the step's fallback nodes that answers.
    async fn build_or_move(
        &self,
        id: StepId,
        image: ImageId,
        b: &Build,
        line: &Line,
    ) -> anyhow::Result<()> {
        let first = self.build(image, b, b.node, line).await;
        let Err(error) = first else {
            return Ok(());
        };
        if b.fallback_nodes.is_empty() {
            return Err(error);
        }
        if self.nodes[b.node.0].answers().await.unwrap_or(false) {
            return Err(error);
        }
        let lost = &self.plan.nodes[b.node.0].name;
        for &other in &b.fallback_nodes {
            if !self.nodes[other.0].answers().await.unwrap_or(false) {
                continue;
            }
            let img = self.plan.image(image);
            self.progress.println(&format!(
                "retry: building {}:{} for {} on node {lost} failed and the node no longer \
                 answers: building it on node {} (attempt 2/2)",
                img.name, img.version, b.platform, self.plan.nodes[other.0].name
            ));
            self.shared().moved.insert(id, other);
            return self
                .build(image, b, other, line)
                .await
                .with_context(|| format!("after node {lost} was lost ({error:#})"));
        }
        Err(error.context(format!(
            "node {lost} no longer answers, and no other node able to build {} does",
            b.platform
        )))
    }

    /// Builds on node `on` (the plan's, or a fallback); on a farm a failure names the node.
    async fn build(
        &self,
        image: ImageId,
        b: &Build,
        on: NodeId,
        line: &Line,
    ) -> anyhow::Result<()> {
        let _slot = match self.slots.get(on.0) {
            Some(slots) => Some(slots.acquire().await.context("the run is ending")?),
            None => None,
        };
        let result = self.build_on(image, b, on, line).await;
        match &self.plan.nodes[on.0].name {
            name if name == "local" => result,
            name => result.with_context(|| format!("on node {name}")),
        }
    }

    async fn build_on(
        &self,
        image: ImageId,
        b: &Build,
        on: NodeId,
        line: &Line,
    ) -> anyhow::Result<()> {
        let node = &self.nodes[on.0];
        let store = match on == b.node {
            true => b.store.clone(),
            false => node.platform_store(&b.platform),
        };
        let builder = match &store {
            Some(store) => node.with_store(store),
            None => node.clone(),
        };
        let job = BuildJob {
            context_dir: b.context_dir.clone(),
            dockerfile: b.dockerfile.clone(),
            platform: b.platform.clone(),
            build_args: b.build_args.clone().into_iter().collect(),
            tag: b.tag.clone(),
            extra_args: b.builder_args.clone(),
            log: b.log.clone(),
            registry: self.access.clone(),
            options: b.options.clone(),
        };
        let prefix = format!("{} {}", self.plan.image(image).name, b.platform);
        let streaming = line
            .output_sink(&prefix)
            .map(|sink| crate::builders::process::stream_log(&b.log, sink));
        builder.build(&job).await?;
        drop(streaming);
        match &b.output {
            Output::Push { name, .. } => {
                let entry = match self.plan.nodes[on.0].route {
                    Route::Direct => self.push_direct(builder.as_ref(), image, b, on).await,
                    Route::ThroughCip => self.push(builder.as_ref(), image, b).await,
                };
                // The private tag is only a hand-over to the push: never leave it behind.
                let _ = builder.remove_image(&b.tag).await;
                if entry.is_err() {
                    let mut s = self.shared();
                    s.push_failures
                        .entry(image)
                        .or_default()
                        .push(b.platform.clone());
                }
                let entry = entry?;
                let node = &self.plan.nodes[on.0].name;
                let new = NewImage {
                    entry,
                    from: name.clone(),
                    node: (node != "local").then(|| node.clone()),
                };
                self.shared().entries.entry(image).or_default().push(new);
            }
            Output::Store { also_tagged } => {
                for tag in also_tagged {
                    builder.tag_image(&b.tag, tag).await?;
                }
            }
        }
        Ok(())
    }

    async fn push(
        &self,
        builder: &dyn Backend,
        image: ImageId,
        b: &Build,
    ) -> anyhow::Result<Entry> {
        let reg = self
            .registry
            .as_ref()
            .context("a push step needs a registry")?;
        // Where a killed run's layout is found and removed by the next run (see `scratch`).
        let dir = crate::scratch::private_dir(&self.temp_dir, "layout")
            .context("cannot create a temporary directory for the image layout")?;
        let layout = dir.path().join("image");
        builder.export_oci_layout(&b.tag, &layout).await?;
        let img = self.plan.image(image);
        let line = self
            .progress
            .start(&format!("push {}:{} {}", img.name, img.version, b.platform));
        let Output::Push { name, .. } = &b.output else {
            bail!("a build kept in the store is not pushed");
        };
        let parents = self.parent_names(image, name);
        let report = |p: &PushedImage, total: usize| line.set_message(&push_counts(p, Some(total)));
        let pushed = push_layout_from(reg, name, &layout, &b.platform, &parents, &report)
            .await
            .with_context(|| {
                format!(
                    "pushing {}:{} for {} (the build succeeded)",
                    img.name, img.version, b.platform
                )
            });
        let done = match &pushed {
            Ok(p) => push_counts(p, None),
            Err(e) => format!("FAILED: {e:#}"),
        };
        self.progress.finish(line, &done, false);
        let pushed = pushed?;
        Ok(pushed.entry)
    }

    /// The direct route: node `on` pushes the image to its staging name, then cip copies it
    /// registry-side into the final repository by digest (blobs mounted, manifest put), and the
    /// staging name is removed (best effort). Nothing is tagged in the final repository.
    async fn push_direct(
        &self,
        builder: &dyn Backend,
        image: ImageId,
        b: &Build,
        on: NodeId,
    ) -> anyhow::Result<Entry> {
        let reg = self
            .registry
            .as_ref()
            .context("a push step needs a registry")?;
        let Output::Push {
            name,
            staging: Some(staging),
            ..
        } = &b.output
        else {
            bail!("a direct push needs the staging name the plan gives it");
        };
        let img = self.plan.image(image);
        let node = &self.plan.nodes[on.0].name;
        let line = self.progress.start(&format!(
            "push {}:{} {} from node {node}",
            img.name, img.version, b.platform
        ));
        let what = || {
            format!(
                "pushing {}:{} for {} from node {node} (the build succeeded)",
                img.name, img.version, b.platform
            )
        };
        let pushed = builder
            .push_to(&b.tag, &staging.reference, &self.access, &b.log)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "{e}\n  hint: a node that cannot reach the registry takes push = \
                     \"through-cip\" in [nodes.{node}] of cip.toml"
                )
            })
            .with_context(what);
        let adopted = match pushed {
            Ok(()) => adopt_staged(reg, staging, name, &b.platform, node)
                .await
                .with_context(what),
            Err(e) => Err(e),
        };
        let done = match &adopted {
            Ok((_, m)) => format!(
                "pushed by the node to {}; {} blob(s) mounted into {name}, {} already there, {} copied",
                staging.reference, m.blobs_mounted, m.blobs_there, m.blobs_copied
            ),
            Err(e) => format!("FAILED: {e:#}"),
        };
        self.progress.finish(line, &done, false);
        if staging.remove {
            let known = adopted.as_ref().ok().map(|(e, _)| e.digest.as_str());
            self.remove_staged(reg, staging, img, known).await;
        }
        Ok(adopted?.0)
    }

    /// Removes the staged manifest from the registry, unless the fan-out's own tag of the version
    /// in that repository names the same manifest (a delete goes by digest). Best effort: a
    /// registry that refuses deletes keeps it, with a note in the progress output. `known`: its
    /// digest, when adopting it read it already.
    async fn remove_staged(
        &self,
        reg: &Registry,
        staging: &Staging,
        img: &ImagePlan,
        known: Option<&str>,
    ) {
        let digest = match known {
            Some(d) => d.to_string(),
            None => match reg
                .manifest_raw(&reg.tag_ref(&staging.name, &staging.tag))
                .await
            {
                Ok(Some((_, d))) => d,
                _ => return,
            },
        };
        let fan_out = reg
            .manifest_raw(&reg.tag_ref(&staging.name, &img.version))
            .await;
        if matches!(&fan_out, Ok(Some((_, d))) if *d == digest) || fan_out.is_err() {
            return;
        }
        let kept = match reg.delete_manifest(&staging.name, &digest).await {
            Ok(crate::registry::Deleted::Deleted | crate::registry::Deleted::Absent) => return,
            Ok(crate::registry::Deleted::Unsupported) => "it does not allow deletes".to_string(),
            Err(e) => format!("{e:#}"),
        };
        self.progress.println(&format!(
            "note: {} stays in the registry ({kept})",
            staging.reference
        ));
    }

    /// The repositories of an image's parents beside its own `repository` (under the same path:
    /// the stage's in a stage run), which hold its base layers.
    fn parent_names(&self, image: ImageId, repository: &str) -> Vec<String> {
        let img = self.plan.image(image);
        let prefix = repository.strip_suffix(img.name.as_str()).unwrap_or("");
        self.plan
            .images
            .iter()
            .filter(|p| img.waits_for.contains(&p.ctx))
            .map(|p| format!("{prefix}{}", p.name))
            .collect()
    }

    /// Writes the index of all platforms under the plan's tags, the version tag last. The
    /// platforms this run did not build stay as published, even in a forced rebuild of some
    /// platforms.
    async fn assemble(&self, id: ImageId, a: &Assemble) -> anyhow::Result<()> {
        let reg = self
            .registry
            .as_ref()
            .context("an assemble step needs a registry")?;
        let image = self.plan.image(id);
        let write = IndexWrite {
            repository: a.name.clone(),
            label: format!("{}:{}", image.name, image.version),
            new: self.shared().entries.get(&id).cloned().unwrap_or_default(),
            // Refuse to replace a tag that moved since the plan was made (another publisher raced us).
            guard: index_writer::Guard::Unchanged(
                image.published.as_ref().map(|p| p.digest.clone()),
            ),
            keep_published: true,
            annotations: index_writer::Annotations::Image(Box::new(image.clone())),
            arch_tags: a.arch_tags.clone(),
            tags: a.tags.clone(),
        };
        let record = Arc::new(Record {
            shared: self.shared.clone(),
            image: id,
        });
        let written = IndexWriter::new(reg)
            .after_index_written(record)
            .write(&write)
            .await?;
        if !written.replaced.is_empty() {
            self.progress.println(&format!(
                "{}: replaced the published {} entry; kept {}",
                written.label,
                list(&written.replaced),
                list(&written.kept),
            ));
        }
        Ok(())
    }

    /// Makes the final repository's image of one platform available in the stage: its blobs
    /// mounted, its manifest put, and the stage's index for the version (with the final index's
    /// annotations) written to hold it.
    async fn link(&self, l: &Link) -> anyhow::Result<()> {
        let reg = self
            .registry
            .as_ref()
            .context("a link step needs a registry")?;
        let published = reg
            .published(&l.from_name, &l.tag)
            .await?
            .with_context(|| format!("{}:{} is no longer published", l.from, l.tag))?;
        let entry = published
            .entries
            .iter()
            .find(|e| e.platform.as_ref() == Some(&l.platform))
            .cloned()
            .with_context(|| format!("{}:{} no longer holds {}", l.from, l.tag, l.platform))?;
        let staged = reg.published(&l.name, &l.tag).await?;
        let write = IndexWrite {
            repository: l.name.clone(),
            label: format!("{}:{}", l.repository, l.tag),
            new: vec![NewImage {
                entry,
                from: l.from_name.clone(),
                node: None,
            }],
            // A stage is this pipeline's scratch space: only a concurrent change of it is refused.
            guard: index_writer::Guard::Unchanged(staged.map(|s| s.digest)),
            keep_published: true,
            annotations: index_writer::Annotations::Fixed(published.annotations),
            arch_tags: BTreeMap::new(),
            tags: vec![l.tag.clone()],
        };
        IndexWriter::new(reg).write(&write).await.map(|_| ())
    }
}

/// Records each index the run wrote for the image, for the summary and the check after the run
/// (see `Executor::verify_tags`).
struct Record {
    shared: Arc<Mutex<Shared>>,
    image: ImageId,
}

impl index_writer::AfterIndexWritten for Record {
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

/// Makes the image a node pushed to `staging` part of repository `name` (both within the
/// registry): its manifest read by the staging tag, checked to be of `platform`, its blobs mounted
/// and the manifest put by digest; its index entry.
async fn adopt_staged(
    reg: &Registry,
    staging: &Staging,
    name: &str,
    platform: &Platform,
    node: &str,
) -> anyhow::Result<(Entry, merge::Mounted)> {
    let (raw, digest) = reg
        .manifest_raw(&reg.tag_ref(&staging.name, &staging.tag))
        .await?
        .with_context(|| {
            format!(
                "the node pushed {}, but the registry has no such tag",
                staging.reference
            )
        })?;
    let what = format!("{} (pushed by the node)", staging.reference);
    index_writer::check_manifest(
        reg,
        &staging.name,
        &raw,
        &digest,
        platform,
        Some(node),
        &what,
    )
    .await?;
    let index::Parsed::Manifest { entry, .. } = index::parse(&raw, &digest)? else {
        bail!("{what} is an index");
    };
    let mounted = if staging.name == name {
        merge::Mounted::default()
    } else {
        merge::mount_image(reg, &staging.name, name, &digest).await?
    };
    let entry = index::new_entry(platform, &digest, entry.size, &entry.media_type);
    Ok((entry, mounted))
}

/// What a push did (so far, out of `total` blobs): `2 blob(s) uploaded (1.2 MiB), 1 mounted, 0
/// already there`.
fn push_counts(p: &PushedImage, total: Option<usize>) -> String {
    let done = p.blobs_uploaded + p.blobs_mounted + p.blobs_skipped;
    let progress = total.map_or_else(String::new, |t| format!("{done}/{t} blobs: "));
    format!(
        "{progress}{} blob(s) uploaded ({:.1} MiB), {} mounted, {} already there",
        p.blobs_uploaded,
        p.bytes_uploaded as f64 / (1024.0 * 1024.0),
        p.blobs_mounted,
        p.blobs_skipped
    )
}

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
async fn store_digests(node: &dyn Backend, results: &mut [ImageResult], kept: bool) {
    for r in results.iter_mut().filter(|r| kept || r.result == "built") {
        let Some(platform) = r.built.first().or(r.kept.first()).cloned() else {
            continue;
        };
        if !matches!(r.result.as_str(), "built" | "up to date") {
            continue;
        }
        let tag = format!("{}:{}", r.repository, r.version);
        if let Ok(Some(id)) = node.image_id(&tag).await {
            r.platform_digests = vec![(platform, id.clone())];
            r.digest = Some(id);
            r.tags = match r.result.as_str() {
                "built" => vec![r.version.clone(), "latest".into()],
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

fn summarize(plan: &Plan, outcomes: &[Outcome], shared: &Shared) -> Vec<ImageResult> {
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
    outcomes: &[Outcome],
    shared: &Shared,
) -> ImageResult {
    let mine: Vec<(&Action, &Outcome)> = plan
        .steps
        .iter()
        .zip(outcomes)
        .filter(|(s, _)| s.image == id)
        // A stage's link of a published platform is no work on the image (unless it failed).
        .filter(|(s, o)| !(matches!(s.action, Action::Link(_)) && **o == Outcome::Succeeded))
        .map(|(s, o)| (&s.action, o))
        .collect();
    let built: Vec<Platform> = mine
        .iter()
        .filter_map(|(a, o)| match (a, o) {
            (Action::Build(b), Outcome::Succeeded) => Some(b.platform.clone()),
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
        Outcome::Failed(m) => Some(m.clone()),
        _ => None,
    });
    let failed_steps: Vec<(Option<Platform>, Option<std::path::PathBuf>)> = mine
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
        .map(|(a, _)| match a {
            Action::Build(b) => (Some(b.platform.clone()), Some(b.log.clone())),
            Action::Assemble(_) | Action::Link(_) => (None, None),
        })
        .collect();
    let (result, error) = if let Some(conflict) = shared.conflicts.get(&id) {
        ("failed".to_string(), Some(conflict.clone()))
    } else if mine.is_empty() {
        ("up to date".to_string(), None)
    } else if let Some(m) = failed {
        // The builds succeeded where only pushing failed: that is what the result says.
        let pushing = shared.push_failures.contains_key(&id)
            && failed_steps.iter().all(|(p, _)| {
                p.as_ref()
                    .is_some_and(|p| shared.push_failures[&id].contains(p))
            });
        let result = if pushing { "push failed" } else { "failed" };
        (result.to_string(), Some(m))
    } else if mine
        .iter()
        .any(|(_, o)| matches!(o, Outcome::Skipped { .. }))
    {
        ("skipped: a parent failed".to_string(), None)
    } else if mine.iter().any(|(_, o)| **o == Outcome::Cancelled) {
        ("cancelled".to_string(), None)
    } else {
        ("built".to_string(), None)
    };
    let published = image.published.as_ref().filter(|p| !p.digest.is_empty());
    let (digest, platform_digests, tags) = match (shared.written.get(&id), published) {
        (Some(w), _) => (
            Some(w.digest.clone()),
            self::platform_digests(&w.entries),
            w.tags.clone(),
        ),
        (None, Some(p)) if result == "up to date" => (
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
    outcomes: &[Outcome],
    shared: &Shared,
) -> Vec<(Platform, String)> {
    if plan.nodes.iter().all(|n| n.name == "local") {
        return Vec::new();
    }
    plan.steps
        .iter()
        .zip(outcomes)
        .filter(|(s, o)| s.image == id && **o == Outcome::Succeeded)
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

/// Platforms as the summary shows them: `amd64,arm64` for Linux ones.
fn short_list(ps: &[Platform]) -> String {
    if ps.is_empty() {
        return "-".into();
    }
    ps.iter()
        .map(|p| match p.os.as_str() {
            "linux" => p.to_string()["linux/".len()..].to_string(),
            _ => p.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The BUILT column: the platforms, each with its node on a farm (`amd64@amd-1,arm64@arm-1`).
fn built_column(r: &ImageResult) -> String {
    if r.built_on.is_empty() {
        return short_list(&r.built);
    }
    r.built_on
        .iter()
        .map(|(p, node)| format!("{}@{node}", short_list(std::slice::from_ref(p))))
        .collect::<Vec<_>>()
        .join(",")
}

fn list(ps: &[Platform]) -> String {
    if ps.is_empty() {
        "-".into()
    } else {
        ps.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A digest as the summary shows it: the first 12 hex digits, as docker shows image ids.
fn short_digest(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.chars().take(12).collect()
}

/// The rows without the columns whose cells below the header are all `-`.
fn without_empty_columns<const N: usize>(rows: Vec<[String; N]>) -> Vec<Vec<String>> {
    let keep: Vec<bool> = (0..N)
        .map(|c| rows.iter().skip(1).any(|r| r[c] != "-"))
        .collect();
    rows.into_iter()
        .map(|r| {
            r.into_iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(cell, _)| cell)
                .collect()
        })
        .collect()
}

/// The summary printed at the end of a run: a row per image the run did something with (all rows
/// with `verbose`), one line for the images that were up to date, the failures, and the run's
/// wall time. Fits 80 columns for usual names.
pub fn render_summary(results: &[ImageResult], total: Duration, verbose: bool) -> String {
    let up_to_date = results.iter().filter(|r| r.result == "up to date").count();
    let shown: Vec<&ImageResult> = results
        .iter()
        .filter(|r| verbose || r.result != "up to date")
        .collect();
    let mut out = String::new();
    if !shown.is_empty() {
        let mut rows = vec![[
            "IMAGE".to_string(),
            "BUILT".into(),
            "KEPT".into(),
            "RESULT".into(),
            "TIME".into(),
            "DIGEST".into(),
        ]];
        for r in &shown {
            rows.push([
                format!("{}:{}", r.name, r.version),
                built_column(r),
                short_list(&r.kept),
                r.result.clone(),
                format!("{:.1}s", r.duration.as_secs_f64()),
                r.digest.as_deref().map_or_else(|| "-".into(), short_digest),
            ]);
        }
        // Columns with nothing to say (no platform kept) make room for the others.
        let rows: Vec<Vec<String>> = without_empty_columns(rows);
        out.push_str(&crate::output::table_of(&rows));
    }
    if up_to_date > 0 && !verbose {
        let others = if shown.is_empty() { "" } else { "other " };
        out.push_str(&format!(
            "{} up to date\n",
            crate::output::count(up_to_date, &format!("{others}image"))
        ));
    }
    for f in results.iter().filter(|r| r.error.is_some()) {
        out.push_str(&format!(
            "\nFAILED {}:{}: {}\n",
            f.name,
            f.version,
            f.error.as_deref().unwrap_or("")
        ));
    }
    out.push_str(&format!("total {:.1}s\n", total.as_secs_f64()));
    out
}

/// What `--progress quiet` prints at the end: each failure, then one line that counts the images
/// by result, with the run's wall time.
pub fn result_line(results: &[ImageResult], total: Duration) -> String {
    let mut out = String::new();
    for f in results.iter().filter(|r| r.error.is_some()) {
        out.push_str(&format!(
            "FAILED {}:{}: {}\n",
            f.name,
            f.version,
            f.error.as_deref().unwrap_or("")
        ));
    }
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for r in results {
        let what = match r.result.as_str() {
            "skipped: a parent failed" => "skipped",
            other => other,
        };
        match counts.iter_mut().find(|(w, _)| *w == what) {
            Some((_, n)) => *n += 1,
            None => counts.push((what, 1)),
        }
    }
    let counts: Vec<String> = counts.iter().map(|(w, n)| format!("{n} {w}")).collect();
    out.push_str(&format!(
        "{}: {} in {:.1}s\n",
        crate::output::count(results.len(), "image"),
        if counts.is_empty() {
            "none".to_string()
        } else {
            counts.join(", ")
        },
        total.as_secs_f64()
    ));
    out
}

/// The run summary document (docs/json.md): one entry per image, and one per step of the plan
/// with its outcome and when it ran.
pub fn summary_json(registry: &str, results: &[ImageResult], steps: &[StepRecord]) -> Value {
    json!({
        "schema_version": 1,
        "registry": registry,
        "images": results.iter().map(|r| json!({
            "name": r.name,
            "version": r.version,
            "built": r.built,
            "already_published": r.kept,
            "replaced": r.replaced,
            "result": r.result,
            "code": result_code(&r.result),
            "digest": r.digest,
            "error": r.error,
            "failed": r.failed_steps.iter().map(|(platform, log)| json!({
                "platform": platform,
                "log": log,
            })).collect::<Vec<_>>(),
            "duration_seconds": millis(r.duration),
            "built_on": r.built_on.iter().map(|(p, n)| json!({
                "platform": p,
                "node": n,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "steps": steps.iter().map(|s| json!({
            "id": s.id,
            "outcome": outcome_name(&s.outcome),
            "started_seconds": s.ran.map(|r| millis(r.0)),
            "finished_seconds": s.ran.map(|r| millis(r.1)),
            "node": s.node,
        })).collect::<Vec<_>>(),
    })
}

/// The machine-friendly form of a result: `up_to_date`, `built`, `failed`, `push_failed`,
/// `skipped_parent_failed`, `cancelled`.
pub fn result_code(result: &str) -> &'static str {
    match result {
        "up to date" => "up_to_date",
        "built" => "built",
        "failed" => "failed",
        "push failed" => "push_failed",
        "cancelled" => "cancelled",
        _ => "skipped_parent_failed",
    }
}

/// Seconds, rounded to milliseconds.
fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed(_) => "failed",
        Outcome::Skipped { .. } => "skipped",
        Outcome::Cancelled => "cancelled",
    }
}

/// The executor in-process, on a test backend that records what it is asked and fails on demand:
/// what runs is exactly the plan's steps, in an order the plan allows, within the node's slots.
/// (The same behaviour on real engines: tests/plan_steps.rs, tests/publish.rs.)
#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::{Backend, BuilderKind, Op, StoreRoots};
    use crate::plan::steps::{plan_steps, Destination, Inputs};
    use crate::registry::Published;
    use std::collections::HashSet;

    #[derive(Debug, Default)]
    struct TestBackend {
        /// Builds and tags, in the order they started and ended.
        events: Mutex<Vec<String>>,
        /// Image names whose build fails.
        failing: HashSet<String>,
        running: Mutex<(usize, usize)>,
        supervisor: crate::builders::Supervisor,
        /// A node lost: every build fails and it does not answer.
        lost: bool,
    }

    impl TestBackend {
        fn events(&self) -> Vec<String> {
            self.events.lock().unwrap().clone()
        }
    }

    impl Backend for TestBackend {
        fn kind(&self) -> BuilderKind {
            BuilderKind::Buildah
        }
        fn version(&self) -> &str {
            "0.0-test"
        }
        fn describe(&self) -> String {
            "test backend".into()
        }
        fn native_platforms(&self) -> Vec<Platform> {
            vec![Platform::new("linux", "amd64", None)]
        }
        fn with_store(&self, _: &StoreRoots) -> Arc<dyn Backend> {
            unreachable!("store builds push")
        }
        fn build<'a>(&'a self, job: &'a BuildJob) -> crate::builders::Op<'a, ()> {
            Box::pin(async move {
                {
                    let mut r = self.running.lock().unwrap();
                    r.0 += 1;
                    r.1 = r.1.max(r.0);
                }
                if self.lost {
                    return Err(anyhow::anyhow!("Cannot connect to the Docker daemon").into());
                }
                self.events
                    .lock()
                    .unwrap()
                    .push(format!("start {}", job.tag));
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.events.lock().unwrap().push(format!("end {}", job.tag));
                self.running.lock().unwrap().0 -= 1;
                let name = job
                    .tag
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .split(':')
                    .next()
                    .unwrap();
                if self.failing.contains(name) {
                    return Err(anyhow::anyhow!("{name} does not build").into());
                }
                Ok(())
            })
        }
        fn export_oci_layout<'a>(&'a self, _: &'a str, _: &'a std::path::Path) -> Op<'a, ()> {
            unreachable!("store builds are not exported")
        }
        fn local_tags(&self) -> Op<'_, HashSet<String>> {
            Box::pin(async { Ok(HashSet::new()) })
        }
        fn image_exists<'a>(&'a self, _: &'a str) -> Op<'a, bool> {
            Box::pin(async { Ok(false) })
        }
        fn remove_image<'a>(&'a self, _: &'a str) -> Op<'a, ()> {
            Box::pin(async { Ok(()) })
        }
        fn tag_image<'a>(&'a self, src: &'a str, dst: &'a str) -> Op<'a, ()> {
            self.events.lock().unwrap().push(format!("tag {src} {dst}"));
            Box::pin(async { Ok(()) })
        }
        fn pull<'a>(
            &'a self,
            _: &'a str,
            _: Option<&'a Platform>,
            _: &'a RegistryAccess,
        ) -> Op<'a, ()> {
            Box::pin(async { Ok(()) })
        }
        fn supervisor(&self) -> &crate::builders::Supervisor {
            &self.supervisor
        }
        fn answers(&self) -> Op<'_, bool> {
            let lost = self.lost;
            Box::pin(async move { Ok(!lost) })
        }
    }

    /// base <- mid <- top, and a lone image; every one missing.
    fn project() -> (tempfile::TempDir, crate::project::Project) {
        let tmp = tempfile::tempdir().unwrap();
        let contexts = [
            ("00-base", "FROM scratch\n"),
            ("01-mid", "ARG REGISTRY\nFROM ${REGISTRY}/base:1.0.0\n"),
            ("02-top", "ARG REGISTRY\nFROM ${REGISTRY}/mid:1.0.0\n"),
            ("00-lone", "FROM scratch\n"),
        ];
        for (dir, dockerfile) in contexts {
            let d = tmp.path().join("contexts").join(dir);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("Dockerfile"), dockerfile).unwrap();
            std::fs::write(d.join("info.edn"), "{:version \"1.0.0\"}").unwrap();
        }
        let p = crate::project::scan(tmp.path()).unwrap();
        (tmp, p)
    }

    /// The inputs of a test plan: these nodes, to `destination`, nothing else asked for.
    fn test_inputs<'a>(
        project: &'a crate::project::Project,
        destination: Destination,
        nodes: Vec<crate::plan::steps::NodeInput<'a>>,
        farm: bool,
    ) -> Inputs<'a> {
        Inputs {
            project,
            destination,
            nodes,
            farm,
            log_dir: std::env::temp_dir(),
            run_id: "test".into(),
            builder_args: Vec::new(),
            no_latest: false,
            arch_tags: false,
            build_args: Vec::new(),
            options: Default::default(),
        }
    }

    fn plan_of(project: &crate::project::Project, backend: &TestBackend, slots: usize) -> Plan {
        let graph = crate::graph::Graph::build(project);
        let amd64 = Platform::new("linux", "amd64", None);
        let images: Vec<ImagePlan> = graph
            .order()
            .into_iter()
            .map(|c| {
                let ctx = &project.contexts[c];
                ImagePlan {
                    ctx: c,
                    name: ctx.name.clone(),
                    version: "1.0.0".into(),
                    wanted: vec![amd64.clone()],
                    out_of_scope: Vec::new(),
                    published: None,
                    forced: false,
                    waits_for: graph.parents(c),
                    context_digest: String::new(),
                    drift: None,
                    drifted_parents: Vec::new(),
                    drift_only_parents: false,
                    unknown_provenance: false,
                    unknown_parents: Vec::new(),
                    latest: None,
                    in_final: None,
                    blocked: Vec::new(),
                }
            })
            .collect();
        let inputs = test_inputs(
            project,
            Destination::Store {
                name: "reg.test".into(),
            },
            vec![crate::plan::steps::NodeInput::local(backend, slots)],
            false,
        );
        plan_steps(images, &inputs)
    }

    async fn execute(backend: Arc<TestBackend>, plan: &Plan, keep_going: bool) -> RunReport {
        run_on(vec![backend], plan, keep_going).await
    }

    /// Runs `plan` on these nodes (the plan's node ids index them), without a registry.
    async fn run_on(nodes: Vec<Arc<TestBackend>>, plan: &Plan, keep_going: bool) -> RunReport {
        let executor = Executor {
            nodes: nodes.into_iter().map(|n| n as Arc<dyn Backend>).collect(),
            registry: None,
            access: RegistryAccess::default(),
            keep_going,
            ids_of_kept: false,
            temp_dir: std::env::temp_dir(),
        };
        executor.run(plan).await.unwrap()
    }

    fn position(events: &[String], event: &str) -> usize {
        events
            .iter()
            .position(|e| e == event)
            .unwrap_or_else(|| panic!("no {event:?} in {events:?}"))
    }

    #[tokio::test]
    async fn the_executor_runs_exactly_the_planned_steps_parents_first() {
        let (_tmp, project) = project();
        let backend = Arc::new(TestBackend::default());
        let plan = plan_of(&project, &backend, 2);
        assert_eq!(
            plan.steps.len(),
            4,
            "one build per image, no index for a store"
        );
        let report = execute(backend.clone(), &plan, false).await;
        assert!(report.ok);
        let ids: Vec<StepId> = report.steps.iter().map(|s| s.id).collect();
        assert_eq!(ids, plan.steps.iter().map(|s| s.id).collect::<Vec<_>>());
        let events = backend.events();
        let builds = events.iter().filter(|e| e.starts_with("start ")).count();
        assert_eq!(builds, 4, "{events:?}");
        for (child, parent) in [("mid", "base"), ("top", "mid")] {
            assert!(
                position(&events, &format!("end reg.test/{parent}:1.0.0"))
                    < position(&events, &format!("start reg.test/{child}:1.0.0")),
                "{events:?}"
            );
        }
        // The plan's extra tags, and the slots: base and lone together, never more than 2.
        assert!(events.contains(&"tag reg.test/top:1.0.0 reg.test/top:latest".to_string()));
        assert_eq!(backend.running.lock().unwrap().1, 2);
        for s in &report.steps {
            let (start, end) = s.ran.expect("every step ran");
            for dep in &plan.step(s.id).waits_for {
                assert!(report.steps[dep.0].ran.unwrap().1 <= start);
            }
            assert!(start <= end);
        }
    }

    /// A stage run plan where base is published in final form: base gets a link step (no build),
    /// mid and top build into the stage with REGISTRY there, mid after base's link; the indexes
    /// get their version tag only. (The same on a real registry: tests/it/stage.rs.)
    #[test]
    fn a_stage_plan_links_the_published_parent_and_builds_the_rest_in_the_stage() {
        let (_tmp, project) = project();
        let backend = TestBackend::default();
        let mut plan = plan_of(&project, &backend, 2);
        let amd64 = Platform::new("linux", "amd64", None);
        let final_base = Published {
            digest: "sha256:ix".into(),
            is_index: true,
            entries: vec![index::new_entry(&amd64, "sha256:m", 1, "m")],
            annotations: Default::default(),
        };
        for image in plan.images.iter_mut() {
            if image.name == "base" {
                image.in_final = Some(final_base.clone());
            }
        }
        let graph = crate::graph::Graph::build(&project);
        for image in plan.images.iter_mut() {
            image.waits_for = graph.parents(image.ctx);
        }
        let inputs = Inputs {
            arch_tags: true,
            ..test_inputs(
                &project,
                Destination::Stage {
                    name: "reg.test/cip-stage/linux-amd64".into(),
                    namespace: "cip-stage/linux-amd64".into(),
                },
                vec![crate::plan::steps::NodeInput {
                    name: "local".into(),
                    backend: &backend,
                    slots: 2,
                    emulates: None,
                    reach: None,
                }],
                false,
            )
        };
        let staged = plan_steps(plan.images.clone(), &inputs);
        let name_of = |s: &crate::plan::steps::Step| staged.image(s.image).name.clone();
        let link = staged
            .steps
            .iter()
            .find(|s| matches!(s.action, Action::Link(_)))
            .expect("a link step");
        assert_eq!(name_of(link), "base");
        let Action::Link(l) = &link.action else {
            unreachable!()
        };
        assert_eq!(
            (l.from.as_str(), l.name.as_str()),
            ("reg.test/base", "cip-stage/linux-amd64/base")
        );
        let mut built: Vec<String> = staged.builds().map(|(s, _)| name_of(s)).collect();
        built.sort();
        assert_eq!(built, ["lone", "mid", "top"]);
        for (s, b) in staged.builds() {
            assert_eq!(b.build_args["REGISTRY"], "reg.test/cip-stage/linux-amd64");
            if name_of(s) == "mid" {
                assert_eq!(s.waits_for, [link.id]);
            }
        }
        for s in &staged.steps {
            if let Action::Assemble(a) = &s.action {
                assert_eq!(a.tags, ["1.0.0"], "a stage tags the version only");
                assert!(a.arch_tags.is_empty(), "per-arch tags are the merge's");
                assert!(a.name.starts_with("cip-stage/linux-amd64/"));
            }
        }
        // Without a child to build, nothing is linked.
        let only_base: Vec<ImagePlan> = plan
            .images
            .iter()
            .filter(|i| i.name == "base" || i.name == "lone")
            .cloned()
            .collect();
        let lone = plan_steps(only_base, &inputs);
        assert!(!lone
            .steps
            .iter()
            .any(|s| matches!(s.action, Action::Link(_))));
    }

    /// Two amd64 nodes; the first is lost before the run: each of its steps is built on the other
    /// after a retry line, and the report names the node that built it.
    #[tokio::test]
    async fn steps_of_a_lost_node_move_to_another_that_builds_their_platform() {
        let (_tmp, project) = project();
        let lost = Arc::new(TestBackend {
            lost: true,
            ..Default::default()
        });
        let alive = Arc::new(TestBackend::default());
        let mut plan = plan_of(&project, &lost, 2);
        let inputs = test_inputs(
            &project,
            Destination::Store {
                name: "reg.test".into(),
            },
            vec![
                crate::plan::steps::NodeInput {
                    name: "a".into(),
                    backend: lost.as_ref(),
                    slots: 2,
                    emulates: None,
                    reach: None,
                },
                crate::plan::steps::NodeInput {
                    name: "b".into(),
                    backend: alive.as_ref(),
                    slots: 2,
                    emulates: None,
                    reach: None,
                },
            ],
            true,
        );
        plan = plan_steps(plan.images, &inputs);
        let on_a = plan.builds().filter(|(_, b)| b.node == NodeId(0)).count();
        assert!(on_a > 0, "the plan uses both nodes");
        let report = run_on(vec![lost.clone(), alive.clone()], &plan, false).await;
        assert!(report.ok, "{:?}", report.results);
        assert!(report.steps.iter().all(|s| s.node.as_deref() == Some("b")));
        let built = alive
            .events()
            .iter()
            .filter(|e| e.starts_with("end "))
            .count();
        assert_eq!(built, 4, "{:?}", alive.events());
        let top = report.results.iter().find(|r| r.name == "top").unwrap();
        assert_eq!(top.built_on, [(Platform::host(), "b".to_string())]);
    }

    /// A build moved to another node takes one of that node's slots: a node of one slot runs one
    /// build at a time, its own or moved ones.
    #[tokio::test]
    async fn a_moved_build_waits_for_a_slot_of_its_new_node() {
        let (_tmp, project) = project();
        let lost = Arc::new(TestBackend {
            lost: true,
            ..Default::default()
        });
        let alive = Arc::new(TestBackend::default());
        let images = plan_of(&project, &lost, 2).images;
        fn node<'a>(
            name: &str,
            backend: &'a TestBackend,
            slots: usize,
        ) -> crate::plan::steps::NodeInput<'a> {
            crate::plan::steps::NodeInput {
                name: name.into(),
                backend,
                slots,
                emulates: None,
                reach: None,
            }
        }
        let inputs = test_inputs(
            &project,
            Destination::Store {
                name: "reg.test".into(),
            },
            vec![node("a", lost.as_ref(), 2), node("b", alive.as_ref(), 1)],
            true,
        );
        let plan = plan_steps(images, &inputs);
        let on_a = plan.builds().filter(|(_, b)| b.node == NodeId(0)).count();
        assert!(on_a >= 2, "two independent builds on the lost node");
        let report = run_on(vec![lost.clone(), alive.clone()], &plan, false).await;
        assert!(report.ok, "{:?}", report.results);
        assert_eq!(alive.running.lock().unwrap().1, 1, "{:?}", alive.events());
    }

    /// Each build pushes by its node's route: a farm's node on this machine directly (to a
    /// staging name of the run), one elsewhere through cip for a loopback registry, directly for
    /// another; the local builder of a run without a farm always through cip. A build is staged
    /// when its node or a fallback node pushes directly.
    #[test]
    fn the_plan_gives_each_build_its_nodes_route_and_a_staging_name_when_one_pushes_directly() {
        use crate::farm::route::NodeReach;
        let (_tmp, project) = project();
        let (far, here) = (TestBackend::default(), TestBackend::default());
        let images = plan_of(&project, &far, 2).images;
        let plan_for = |registry: &str, farm: bool, nodes: &[(&'static str, bool)]| {
            let backends = [&far, &here];
            let inputs = test_inputs(
                &project,
                Destination::Registry {
                    name: registry.into(),
                },
                nodes
                    .iter()
                    .enumerate()
                    .map(|(i, (name, local))| crate::plan::steps::NodeInput {
                        name: name.to_string(),
                        backend: backends[i],
                        slots: 1,
                        emulates: None,
                        reach: Some(NodeReach {
                            local: *local,
                            declared: None,
                        }),
                    })
                    .collect(),
                farm,
            );
            plan_steps(images.clone(), &inputs)
        };
        let outputs = |plan: &Plan| -> Vec<(String, Route, Option<String>)> {
            plan.builds()
                .map(|(_, b)| match &b.output {
                    Output::Push { route, staging, .. } => (
                        plan.nodes[b.node.0].name.clone(),
                        *route,
                        staging.as_ref().map(|s| s.reference.clone()),
                    ),
                    Output::Store { .. } => unreachable!("a registry run pushes"),
                })
                .collect()
        };
        let both = plan_for("127.0.0.1:5000", true, &[("far", false), ("here", true)]);
        let found = outputs(&both);
        assert!(found.iter().any(|(n, ..)| n == "far") && found.iter().any(|(n, ..)| n == "here"));
        for (node, route, staging) in &found {
            let want = if node == "here" {
                Route::Direct
            } else {
                Route::ThroughCip
            };
            assert_eq!(*route, want, "{found:?}");
            let staging = staging
                .as_deref()
                .expect("a fallback or the node pushes directly");
            assert!(
                staging.starts_with("127.0.0.1:5000/cip-stage/linux-amd64/")
                    && staging.ends_with(":1.0.0-test"),
                "{staging}"
            );
        }
        let remote = plan_for("reg.example/team", true, &[("far", false)]);
        for (_, route, staging) in outputs(&remote) {
            assert_eq!(route, Route::Direct);
            assert!(staging
                .unwrap()
                .starts_with("reg.example/team/cip-stage/linux-amd64/"));
        }
        for plan in [
            plan_for("127.0.0.1:5000", true, &[("far", false)]),
            plan_for("reg.example", false, &[("local", true)]),
        ] {
            for (_, route, staging) in outputs(&plan) {
                assert_eq!((route, staging), (Route::ThroughCip, None));
            }
        }
    }

    /// On a farm, a failed build says which node it failed on.
    #[tokio::test]
    async fn a_failure_on_a_farm_names_its_node() {
        let (_tmp, project) = project();
        let backend = Arc::new(TestBackend {
            failing: HashSet::from(["lone".to_string()]),
            ..Default::default()
        });
        let plan = plan_of(&project, &backend, 2);
        let inputs = test_inputs(
            &project,
            Destination::Store {
                name: "reg.test".into(),
            },
            vec![crate::plan::steps::NodeInput {
                name: "amd-1".into(),
                backend: backend.as_ref(),
                slots: 2,
                emulates: None,
                reach: None,
            }],
            true,
        );
        let plan = plan_steps(plan.images, &inputs);
        let report = execute(backend, &plan, true).await;
        let lone = report.results.iter().find(|r| r.name == "lone").unwrap();
        assert_eq!(
            lone.error.as_deref(),
            Some("on node amd-1: lone does not build"),
            "{lone:?}"
        );
        let base = report.results.iter().find(|r| r.name == "base").unwrap();
        assert_eq!(base.error, None);
    }

    fn result(name: &str, result: &str, built: &[&str]) -> ImageResult {
        ImageResult {
            name: name.into(),
            version: "1.0.0".into(),
            built: built.iter().map(|p| p.parse().unwrap()).collect(),
            kept: Vec::new(),
            replaced: Vec::new(),
            failed_steps: Vec::new(),
            result: result.into(),
            error: None,
            duration: Duration::from_millis(1500),
            repository: format!("reg.test/{name}"),
            digest: (result != "failed")
                .then(|| format!("sha256:{}", "0123456789abcdef".repeat(4))),
            platform_digests: Vec::new(),
            tags: Vec::new(),
            built_on: Vec::new(),
        }
    }

    #[test]
    fn a_no_op_summary_is_one_line_and_verbose_lists_every_image() {
        let all: Vec<ImageResult> = (0..1000)
            .map(|i| result(&format!("img-{i}"), "up to date", &[]))
            .collect();
        let s = render_summary(&all, Duration::from_millis(640), false);
        assert_eq!(s, "1000 images up to date\ntotal 0.6s\n");
        let v = render_summary(&all, Duration::from_millis(640), true);
        assert_eq!(v.lines().count(), 1000 + 2, "a header, the rows, the total");

        let mut mixed = all[..3].to_vec();
        mixed.push(result(
            "a-rather-long-image-name",
            "built",
            &["linux/amd64", "linux/arm64", "linux/arm/v7"],
        ));
        let s = render_summary(&mixed, Duration::from_secs(75), false);
        assert!(s.contains("amd64,arm64,arm/v7"), "{s}");
        assert!(
            s.contains(
                "a-rather-long-image-name:1.0.0  amd64,arm64,arm/v7  built   1.5s  0123456789ab\n"
            ),
            "the short digest: {s}"
        );
        assert!(!s.contains("KEPT"), "no platform kept, no column: {s}");
        assert!(s.contains("3 other images up to date"), "{s}");
        assert!(!s.contains("img-0"), "{s}");
        assert!(s.lines().all(|l| l.chars().count() <= 80), "{s}");
    }

    #[tokio::test]
    async fn an_images_time_is_its_wall_time_not_the_sum_of_its_platforms() {
        let (_tmp, project) = project();
        let backend = Arc::new(TestBackend::default());
        let mut plan = plan_of(&project, &backend, 3);
        // Give `lone` a second platform: both build at once (3 slots for the 3 ready builds).
        let arm64 = Platform::new("linux", "arm64", None);
        let lone = plan.images.iter().position(|i| i.name == "lone").unwrap();
        let mut step = plan
            .steps
            .iter()
            .find(|s| s.image == ImageId(lone))
            .unwrap()
            .clone();
        step.id = StepId(plan.steps.len());
        if let Action::Build(b) = &mut step.action {
            b.platform = arm64;
            b.tag = "reg.test/lone:1.0.0-arm64".into();
        }
        plan.steps.push(step);
        let report = execute(backend.clone(), &plan, false).await;
        assert!(report.ok);
        let ran: Vec<(Duration, Duration)> = report
            .steps
            .iter()
            .filter(|s| plan.step(s.id).image == ImageId(lone))
            .map(|s| s.ran.unwrap())
            .collect();
        assert_eq!(ran.len(), 2);
        let start = ran.iter().map(|r| r.0).min().unwrap();
        let end = ran.iter().map(|r| r.1).max().unwrap();
        let result = report.results.iter().find(|r| r.name == "lone").unwrap();
        assert_eq!(result.duration, end - start);
        let sum: Duration = ran.iter().map(|r| r.1 - r.0).sum();
        // The two platforms overlapped.
        assert!(result.duration < sum, "{:?} vs {sum:?}", result.duration);
    }

    #[tokio::test]
    async fn one_slot_runs_one_build_at_a_time() {
        let (_tmp, project) = project();
        let backend = Arc::new(TestBackend::default());
        let plan = plan_of(&project, &backend, 1);
        assert!(execute(backend.clone(), &plan, false).await.ok);
        assert_eq!(backend.running.lock().unwrap().1, 1);
    }

    #[tokio::test]
    async fn keep_going_skips_only_what_waits_for_a_failure() {
        let (_tmp, project) = project();
        let backend = Arc::new(TestBackend {
            failing: HashSet::from(["mid".to_string()]),
            ..Default::default()
        });
        let plan = plan_of(&project, &backend, 2);
        let report = execute(backend.clone(), &plan, true).await;
        assert!(!report.ok);
        let result = |name: &str| {
            report
                .results
                .iter()
                .find(|r| r.name == name)
                .unwrap()
                .result
                .clone()
        };
        assert_eq!(result("base"), "built");
        assert_eq!(result("lone"), "built");
        assert_eq!(result("mid"), "failed");
        assert_eq!(result("top"), "skipped: a parent failed");
        assert!(!backend
            .events()
            .iter()
            .any(|e| e.starts_with("start reg.test/top")));
    }
}
