//! Runs a plan: builds every missing (image, platform) in dependency order, pushes each platform by
//! digest, then assembles and tags the image index (VERSION and latest). Used by `publish`,
//! `publish-locally` and `build`.
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use crate::build::{BuildJob, Builder, RegistryAccess};
use crate::commands::Loaded;
use crate::interrupt::{self, Signal};
use crate::plan::{ImagePlan, Target};
use crate::platform::Platform;
use crate::progress::Progress;
use crate::registry::index::{self, Entry};
use crate::registry::push::push_layout;
use crate::registry::{Published, Registry};
use crate::schedule::{self, Outcome, Task};

/// How a run builds and where its results go.
pub struct Runner {
    pub builder: Arc<Builder>,
    pub target: Target,
    /// How builders reach the registry their parents come from.
    pub access: RegistryAccess,
    pub jobs: usize,
    pub keep_going: bool,
    pub log_dir: PathBuf,
    pub builder_args: Vec<String>,
    /// Names this run's private builder tags (see [`private_tag`]), so concurrent runs never share one.
    pub run_id: String,
}

/// A name unique to this process and moment, for the builder tags a run owns.
pub fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{nanos:x}", std::process::id())
}

/// How long after tagging a run looks again at the version tags it wrote. Another run that checked a
/// tag before this run wrote it writes its own within moments; waiting this long lets the later
/// writer's tag show, so at most one of two racing runs reports success.
const TAG_SETTLE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy)]
enum Step {
    Build { plan: usize, platform: usize },
    Assemble { plan: usize },
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
    pub result: String,
    pub error: Option<String>,
    pub duration: Duration,
}

/// Shared state of a run: new index entries per plan and timings.
#[derive(Default)]
struct Shared {
    entries: HashMap<usize, Vec<Entry>>,
    durations: HashMap<usize, Duration>,
    /// The index digest this run wrote to each plan's version tag.
    tagged: HashMap<usize, String>,
    /// Published platform entries each plan's index replaced.
    replaced: HashMap<usize, Vec<Platform>>,
    /// Version tags another run moved after this run wrote them.
    conflicts: HashMap<usize, String>,
}

/// How a run ended.
pub struct RunReport {
    /// One result per image.
    pub results: Vec<ImageResult>,
    /// Whether every build and index succeeded.
    pub ok: bool,
    /// The signal that stopped the run early, if one did.
    pub interrupted: Option<Signal>,
}

impl Runner {
    /// Builds what the plans say. SIGINT or SIGTERM stops the run as a first failure would.
    pub async fn run(&self, loaded: &Loaded, plans: &[ImagePlan]) -> anyhow::Result<RunReport> {
        let (steps, tasks) = self.tasks(plans);
        let builds = steps
            .iter()
            .filter(|s| matches!(s, Step::Build { .. }))
            .count();
        let progress = Arc::new(Progress::new(builds as u64));
        progress.println(&format!(
            "{builds} build(s) with {}, {} at a time, into {}",
            self.builder.describe(),
            self.jobs,
            self.target.registry_name()
        ));
        if matches!(self.target, Target::Registry(_)) {
            self.announce_platform_stores(plans, &progress);
        }
        let shared = Arc::new(Mutex::new(Shared::default()));
        let ctx = Arc::new(RunContext {
            builder: self.builder.clone(),
            target: self.target.clone(),
            access: self.access.clone(),
            log_dir: self.log_dir.clone(),
            builder_args: self.builder_args.clone(),
            run_id: self.run_id.clone(),
            plans: plans.to_vec(),
            dirs: plans
                .iter()
                .map(|p| {
                    let c = &loaded.project.contexts[p.ctx];
                    (c.dir.clone(), c.dockerfile.clone())
                })
                .collect(),
            shared: shared.clone(),
            progress: progress.clone(),
        });
        let opts = schedule::Options::jobs(self.jobs, self.keep_going);
        let steps2 = steps.clone();
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
            let ctx = ctx.clone();
            let step = steps2[i];
            async move { ctx.execute(step).await }
        })
        .await;
        progress.done();
        self.verify_tags(plans, &shared).await;
        let shared = shared.lock().unwrap_or_else(|e| e.into_inner());
        let results = summarize(plans, &steps, &outcomes, &shared);
        let ok = outcomes.iter().all(|o| *o == Outcome::Succeeded) && shared.conflicts.is_empty();
        let interrupted = *interrupted.lock().unwrap_or_else(|e| e.into_inner());
        Ok(RunReport {
            results,
            ok,
            interrupted,
        })
    }

    /// Looks again, after [`TAG_SETTLE`], at every version tag this run wrote: one that now points
    /// elsewhere was overwritten by a concurrent run, and is reported as a conflict (the run fails).
    async fn verify_tags(&self, plans: &[ImagePlan], shared: &Mutex<Shared>) {
        let Target::Registry(reg) = &self.target else {
            return;
        };
        let tagged: Vec<(usize, String)> = {
            let s = shared.lock().unwrap_or_else(|e| e.into_inner());
            s.tagged.iter().map(|(k, v)| (*k, v.clone())).collect()
        };
        if tagged.is_empty() {
            return;
        }
        tokio::time::sleep(TAG_SETTLE).await;
        for (pi, written) in tagged {
            let plan = &plans[pi];
            let found = reg
                .manifest_raw(&reg.tag_ref(&plan.name, &plan.version))
                .await;
            let conflict = match found {
                Ok(Some((_, digest))) if digest == written => continue,
                Ok(Some((_, digest))) => format!(
                    "{}:{} now points at {digest}, not at what this run published ({written}): another \
                     publish of the same version ran at the same time; check which content you want and \
                     republish it with --force {}",
                    plan.name, plan.version, plan.name
                ),
                Ok(None) => format!(
                    "{}:{} disappeared after this run tagged it ({written})",
                    plan.name, plan.version
                ),
                Err(e) => format!("cannot verify {}:{}: {e:#}", plan.name, plan.version),
            };
            let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
            s.conflicts.insert(pi, conflict);
        }
    }

    /// Names the private store of each platform that builds in one (see `Builder::for_platform`).
    fn announce_platform_stores(&self, plans: &[ImagePlan], progress: &Progress) {
        let platforms: std::collections::BTreeSet<Platform> =
            plans.iter().flat_map(|p| p.to_build()).collect();
        for p in platforms {
            if let Some(store) = self.builder.platform_store(&p) {
                progress.println(&format!(
                    "{p} builds in its own store {} (one platform per store)",
                    store.graph_root.display()
                ));
            }
        }
    }

    fn tasks(&self, plans: &[ImagePlan]) -> (Vec<Step>, Vec<Task>) {
        let mut steps = Vec::new();
        let mut tasks = Vec::new();
        let mut assemble_of: HashMap<usize, usize> = HashMap::new(); // ctx -> task index
        for (pi, plan) in plans.iter().enumerate() {
            if !plan.needs_build() {
                continue;
            }
            let parent_deps: Vec<usize> = plan
                .waits_for
                .iter()
                .filter_map(|c| assemble_of.get(c).copied())
                .collect();
            let mut builds = Vec::new();
            for (k, _) in plan.to_build().iter().enumerate() {
                builds.push(tasks.len());
                steps.push(Step::Build {
                    plan: pi,
                    platform: k,
                });
                tasks.push(Task {
                    deps: parent_deps.clone(),
                    pool: Some(0),
                    cost: 1.0,
                });
            }
            assemble_of.insert(plan.ctx, tasks.len());
            steps.push(Step::Assemble { plan: pi });
            tasks.push(Task {
                deps: builds,
                pool: None,
                cost: 0.01,
            });
        }
        (steps, tasks)
    }
}

struct RunContext {
    builder: Arc<Builder>,
    target: Target,
    access: RegistryAccess,
    log_dir: PathBuf,
    builder_args: Vec<String>,
    run_id: String,
    plans: Vec<ImagePlan>,
    /// Context dir and Dockerfile per plan.
    dirs: Vec<(PathBuf, PathBuf)>,
    shared: Arc<Mutex<Shared>>,
    progress: Arc<Progress>,
}

fn slug(p: &Platform) -> String {
    p.to_string().replace('/', "-")
}

impl RunContext {
    async fn execute(&self, step: Step) -> anyhow::Result<()> {
        let (plan_idx, label) = match step {
            Step::Build { plan, platform } => {
                let p = &self.plans[plan];
                (
                    plan,
                    format!("build {}:{} {}", p.name, p.version, p.to_build()[platform]),
                )
            }
            Step::Assemble { plan } => {
                let p = &self.plans[plan];
                (plan, format!("tag {}:{}", p.name, p.version))
            }
        };
        let line = self.progress.start(&label);
        let started = Instant::now();
        let result = match step {
            Step::Build { plan, platform } => self.build(plan, platform).await,
            Step::Assemble { plan } => self.assemble(plan).await,
        };
        {
            let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            *s.durations.entry(plan_idx).or_default() += started.elapsed();
        }
        let counts = matches!(step, Step::Build { .. });
        match &result {
            Ok(()) => self.progress.finish(line, "done", counts),
            Err(e) => self
                .progress
                .finish(line, &format!("FAILED: {e:#}"), counts),
        }
        result
    }

    async fn build(&self, plan_idx: usize, platform_idx: usize) -> anyhow::Result<()> {
        let plan = &self.plans[plan_idx];
        let platform = plan.to_build()[platform_idx].clone();
        let (context_dir, dockerfile) = self.dirs[plan_idx].clone();
        let registry = self.target.registry_name().to_string();
        let tag = match &self.target {
            // Private to this run: two runs building one version at once must not swap images.
            Target::Registry(_) => format!(
                "cip.local/run-{}/{}:{}-{}",
                self.run_id,
                plan.name,
                plan.version,
                slug(&platform)
            ),
            Target::LocalStore { .. } => format!("{registry}/{}:{}", plan.name, plan.version),
        };
        let job = BuildJob {
            context_dir,
            dockerfile,
            platform: platform.clone(),
            build_args: vec![("REGISTRY".into(), registry.clone())],
            tag: tag.clone(),
            extra_args: self.builder_args.clone(),
            log: self.log_dir.join(format!(
                "{}-{}-{}.log",
                plan.name,
                plan.version,
                slug(&platform)
            )),
            registry: self.access.clone(),
        };
        match &self.target {
            Target::Registry(reg) => {
                // Pushed images build in their platform's own store (see `Builder::for_platform`).
                let builder = self.builder.for_platform(&platform);
                builder.build(&job).await?;
                let entry = self.push(&builder, reg, &plan.name, &tag, &platform).await;
                // The private tag is only a hand-over to the push: never leave it behind.
                let _ = builder.remove_image(&tag).await;
                let entry = entry?;
                let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
                s.entries.entry(plan_idx).or_default().push(entry);
            }
            Target::LocalStore { .. } => {
                self.builder.build(&job).await?;
                self.builder
                    .tag_image(&tag, &format!("{registry}/{}:latest", plan.name))
                    .await?;
            }
        }
        Ok(())
    }

    async fn push(
        &self,
        builder: &Builder,
        reg: &Registry,
        name: &str,
        tag: &str,
        platform: &Platform,
    ) -> anyhow::Result<Entry> {
        // Where a killed run's layout is found and removed by the next run (see `scratch`).
        let dir = crate::scratch::private_dir("layout")
            .context("cannot create a temporary directory for the image layout")?;
        let layout = dir.path().join("image");
        builder.export_oci_layout(tag, &layout).await?;
        let pushed = push_layout(reg, name, &layout, platform).await?;
        Ok(pushed.entry)
    }

    /// Tags the index of all platforms as `latest`, then `VERSION`. The platforms this run did not
    /// build stay as published, even in a forced rebuild of some platforms. The version tag comes
    /// last: its presence proves that `latest` was written too, so a run that failed in between
    /// leaves the version unpublished, and the next run publishes it again.
    async fn assemble(&self, plan_idx: usize) -> anyhow::Result<()> {
        let Target::Registry(reg) = &self.target else {
            return Ok(()); // local store images are tagged by their build
        };
        let plan = &self.plans[plan_idx];
        let new = {
            let s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            s.entries.get(&plan_idx).cloned().unwrap_or_default()
        };
        // Refuse to replace a tag that moved since the plan was made (another publisher raced us).
        let now = reg.published(&plan.name, &plan.version).await?;
        let before = plan.published.as_ref().map(|p| p.digest.as_str());
        if now.as_ref().map(|p| p.digest.as_str()) != before {
            bail!(
                "{}:{} changed on {} while building; not overwriting it (rerun to see what it holds now)",
                plan.name,
                plan.version,
                reg.host(),
            );
        }
        let replaced = replaced_platforms(now.as_ref(), &new);
        let entries = index::merge(now.as_ref(), new);
        let annotations = index_annotations(plan, now.as_ref());
        let (bytes, digest) = index::build_index(&entries, &annotations);
        for tag in ["latest", plan.version.as_str()] {
            reg.put_manifest(
                &reg.tag_ref(&plan.name, tag),
                bytes.clone(),
                index::OCI_INDEX,
            )
            .await?;
        }
        if !replaced.is_empty() {
            self.progress.println(&format!(
                "{}:{}: replaced the published {} entry; kept {}",
                plan.name,
                plan.version,
                list(&replaced),
                list(&kept_platforms(&entries, &replaced)),
            ));
        }
        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        s.tagged.insert(plan_idx, digest);
        s.replaced.insert(plan_idx, replaced);
        Ok(())
    }
}

/// The published platforms that `new` entries replace.
fn replaced_platforms(published: Option<&Published>, new: &[Entry]) -> Vec<Platform> {
    let Some(published) = published else {
        return Vec::new();
    };
    let have = published.platforms();
    let mut out: Vec<Platform> = new
        .iter()
        .filter_map(|e| e.platform.clone())
        .filter(|p| have.contains(p))
        .collect();
    out.sort();
    out
}

fn kept_platforms(entries: &[Entry], replaced: &[Platform]) -> Vec<Platform> {
    entries
        .iter()
        .filter_map(|e| e.platform.clone())
        .filter(|p| !replaced.contains(p))
        .collect()
}

/// The index annotations: the version, and the context digest. A drifted version (published from
/// other content, version not bumped) keeps the digest it was published with unless forced, so
/// adding a platform under `--allow-drift` never hides the drift from later runs.
fn index_annotations(plan: &ImagePlan, published: Option<&Published>) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "org.opencontainers.image.version".to_string(),
        plan.version.clone(),
    );
    let recorded = published.and_then(|p| p.annotations.get(crate::digest::ANNOTATION));
    let context_digest = match (&plan.drift, recorded) {
        (Some(_), Some(recorded)) if !plan.forced => recorded.clone(),
        _ => plan.context_digest.clone(),
    };
    // Lets later runs tell a context changed without a version bump (see `digest`).
    annotations.insert(crate::digest::ANNOTATION.to_string(), context_digest);
    annotations
}

/// The results of a run with nothing to build: every image is up to date.
pub fn nothing_to_build(plans: &[ImagePlan]) -> Vec<ImageResult> {
    summarize(plans, &[], &[], &Shared::default())
}

fn summarize(
    plans: &[ImagePlan],
    steps: &[Step],
    outcomes: &[Outcome],
    shared: &Shared,
) -> Vec<ImageResult> {
    plans
        .iter()
        .enumerate()
        .map(|(pi, plan)| {
            let mine: Vec<(Step, &Outcome)> = steps
                .iter()
                .zip(outcomes)
                .filter(|(s, _)| matches!(s, Step::Build { plan, .. } | Step::Assemble { plan } if *plan == pi))
                .map(|(s, o)| (*s, o))
                .collect();
            let to_build = plan.to_build();
            let built: Vec<Platform> = mine
                .iter()
                .filter_map(|(s, o)| match (s, o) {
                    (Step::Build { platform, .. }, Outcome::Succeeded) => Some(to_build[*platform].clone()),
                    _ => None,
                })
                .collect();
            let kept = plan.wanted.iter().filter(|p| !to_build.contains(p)).cloned().collect();
            let failed = mine.iter().find_map(|(_, o)| match o {
                Outcome::Failed(m) => Some(m.clone()),
                _ => None,
            });
            let (result, error) = if let Some(conflict) = shared.conflicts.get(&pi) {
                ("failed".to_string(), Some(conflict.clone()))
            } else if mine.is_empty() {
                ("up to date".to_string(), None)
            } else if let Some(m) = failed {
                ("failed".to_string(), Some(m))
            } else if mine.iter().any(|(_, o)| matches!(o, Outcome::Skipped { .. })) {
                ("skipped: a parent failed".to_string(), None)
            } else if mine.iter().any(|(_, o)| **o == Outcome::Cancelled) {
                ("cancelled".to_string(), None)
            } else {
                ("built".to_string(), None)
            };
            ImageResult {
                name: plan.name.clone(),
                version: plan.version.clone(),
                built,
                kept,
                replaced: shared.replaced.get(&pi).cloned().unwrap_or_default(),
                result,
                error,
                duration: shared.durations.get(&pi).copied().unwrap_or_default(),
            }
        })
        .collect()
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

/// The summary table printed at the end of a run.
pub fn render_summary(results: &[ImageResult]) -> String {
    let mut rows = vec![[
        "IMAGE".to_string(),
        "VERSION".into(),
        "BUILT".into(),
        "ALREADY PUBLISHED".into(),
        "RESULT".into(),
        "TIME".into(),
    ]];
    for r in results {
        rows.push([
            r.name.clone(),
            r.version.clone(),
            list(&r.built),
            list(&r.kept),
            r.result.clone(),
            format!("{:.1}s", r.duration.as_secs_f64()),
        ]);
    }
    let mut out = crate::output::table(&rows);
    let failures: Vec<&ImageResult> = results.iter().filter(|r| r.error.is_some()).collect();
    for f in &failures {
        out.push_str(&format!(
            "\nFAILED {}:{}: {}\n",
            f.name,
            f.version,
            f.error.as_deref().unwrap_or("")
        ));
    }
    out
}

pub fn summary_json(registry: &str, results: &[ImageResult]) -> Value {
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
            "error": r.error,
            "duration_seconds": r.duration.as_secs_f64(),
        })).collect::<Vec<_>>(),
    })
}
