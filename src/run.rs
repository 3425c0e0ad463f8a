//! A building run (`build`, `publish`, `publish-locally`) from a loaded project to its report, and
//! the plans `cip plan` and `cip status` show: connect ([`crate::session`]), plan the images
//! ([`crate::plan::make`]) and their steps ([`crate::plan::steps`]), then execute the steps
//! ([`crate::execute`]). The command files print what these return.
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;

use crate::builders::{Backend, BuilderKind, NodeEnv};
use crate::execute::{nothing_to_build, Executor, ImageResult, StepRecord};
use crate::interrupt::Signal;
use crate::load::Loaded;
use crate::options::{
    ConnectOptions, FarmOptions, Forcing, PlanOptions, ProjectOptions, RunOptions, TargetOptions,
    Targets,
};
use crate::plan::steps::{self, BlockedBy, Plan};
use crate::plan::{self, refusals, ImagePlan, PlatformScope, Target};
use crate::platform::Platform;
use crate::progress::Reporter;
use crate::registry::Endpoint;
use crate::session::{runtime, Session};

/// Where a run publishes.
pub enum Mode {
    /// `publish`: a remote registry, every declared platform (or only the local one).
    Remote {
        registry: String,
        only_local_platform: bool,
        /// `--stage`: the staging namespace root (`cip-stage`).
        stage: Option<String>,
    },
    /// `publish-locally`: a local registry, the local platform.
    Local { registry: String },
    /// `build`: the builder's local store, the local platform.
    Store { registry: String },
}

impl Mode {
    fn registry(&self) -> &str {
        match self {
            Mode::Remote { registry, .. } | Mode::Local { registry } | Mode::Store { registry } => {
                registry
            }
        }
    }

    /// The platforms a run builds: every declared one (`publish`), or this machine's
    /// (`publish-locally`, `build`, `--only-local-platform`); `--platform` names them instead.
    fn scope(&self, project: &ProjectOptions, platform: Option<&Vec<Platform>>) -> PlatformScope {
        let local = || vec![crate::builders::local_platform()];
        let chosen = platform.cloned();
        match self {
            Mode::Remote {
                only_local_platform,
                ..
            } => {
                let defaults = project.default_platforms.clone();
                match (chosen, only_local_platform) {
                    (Some(platforms), _) => PlatformScope::Only {
                        platforms,
                        defaults,
                    },
                    (None, true) => PlatformScope::Only {
                        platforms: local(),
                        defaults,
                    },
                    (None, false) => PlatformScope::Declared(defaults),
                }
            }
            Mode::Local { .. } | Mode::Store { .. } => {
                let platforms = chosen.unwrap_or_else(local);
                PlatformScope::Only {
                    defaults: platforms.clone(),
                    platforms,
                }
            }
        }
    }

    /// The platforms the command line names (`--platform`, `--only-local-platform`), which
    /// some image must declare.
    fn requested(&self, platform: Option<&Vec<Platform>>) -> Option<Vec<Platform>> {
        match (platform, self) {
            (Some(p), _) => Some(p.clone()),
            (
                None,
                Mode::Remote {
                    only_local_platform: true,
                    ..
                },
            ) => Some(vec![crate::builders::local_platform()]),
            (None, _) => None,
        }
    }

    /// Where the images of a run on `registry` go: its final repositories, or for `--stage` the
    /// staging namespace of the one platform the run builds.
    fn target(
        &self,
        registry: Arc<crate::registry::Registry>,
        scope: &PlatformScope,
    ) -> anyhow::Result<Target> {
        let Mode::Remote {
            stage: Some(ns), ..
        } = self
        else {
            return Ok(Target::registry(registry));
        };
        let platform = match scope {
            PlatformScope::Only { platforms, .. } if platforms.len() == 1 => &platforms[0],
            _ => bail!(
                "--stage builds one platform, staged apart from the others: name it with --platform P \
                 (e.g. --platform linux/arm64) or --only-local-platform; one CI job per platform"
            ),
        };
        crate::registry::address::Address::parse(&format!("{}/{ns}", registry.address()))
            .map_err(|e| anyhow::anyhow!("--stage-namespace {ns:?}: {e:#}"))?;
        Ok(Target::stage(registry, plan::stage_namespace(ns, platform)))
    }

    /// The mode whose registry and platforms a read-only command asks about.
    pub fn of(t: &TargetOptions) -> Mode {
        match &t.remote_registry {
            Some(registry) => Mode::Remote {
                registry: registry.clone(),
                only_local_platform: t.only_local_platform,
                stage: t.stage.clone(),
            },
            None => Mode::Local {
                registry: t.local_registry.clone(),
            },
        }
    }
}

/// The images planned against the registry a read-only command names (no builder is looked for).
pub fn plan_images(
    loaded: &Loaded,
    project: &ProjectOptions,
    t: &TargetOptions,
    force: &[String],
    targets: &Targets,
) -> anyhow::Result<(Target, Vec<ImagePlan>)> {
    plan_images_with(loaded, project, t, force, targets, &|| {})
}

/// [`plan_images`], calling `to_build` as soon as an image to build is found.
fn plan_images_with(
    loaded: &Loaded,
    project: &ProjectOptions,
    t: &TargetOptions,
    force: &[String],
    targets: &Targets,
    to_build: &(dyn Fn() + Sync),
) -> anyhow::Result<(Target, Vec<ImagePlan>)> {
    let mode = Mode::of(t);
    let rt = runtime()?;
    // A read-only command shows no run: its lines go as the settings say, not verbose.
    let events = t.connect.events.clone();
    let session = rt.block_on(Session::open(mode.registry(), &t.connect, &events))?;
    let scope = mode.scope(project, t.platforms.as_ref());
    let target = mode.target(session.registry.clone(), &scope)?;
    let plans = rt.block_on(plan::make_with(
        loaded,
        &target,
        &scope,
        force,
        t.query_concurrency,
        to_build,
    ))?;
    let plans = plan::select(loaded, plans, targets)?;
    check_platforms(mode.requested(t.platforms.as_ref()).as_deref(), &plans)?;
    Ok((target, plans))
}

/// A platform the command line names that no image of the run declares is said (a warning),
/// and when none is declared the command refuses: it would call everything up to date.
fn check_platforms(requested: Option<&[Platform]>, images: &[ImagePlan]) -> anyhow::Result<()> {
    let Some(requested) = requested else {
        return Ok(());
    };
    let mut declared: Vec<_> = images
        .iter()
        .flat_map(|i| i.wanted.iter().chain(&i.out_of_scope))
        .cloned()
        .collect();
    declared.sort();
    declared.dedup();
    match crate::platform::check_requested(requested, &declared) {
        Ok(None) => Ok(()),
        Ok(Some(warning)) => {
            eprintln!("warning: {warning}");
            Ok(())
        }
        Err(e) => bail!("{e}"),
    }
}

/// What a building run is asked, resolved from its command line: `cip plan`, `--dry-run` and the
/// run make their plan from these same values (see [`resolve`]).
pub struct Request<'a> {
    pub project: &'a ProjectOptions,
    pub mode: Mode,
    /// `--platform`.
    pub platform: Option<&'a Vec<Platform>>,
    pub connect: &'a ConnectOptions,
    pub forcing: &'a Forcing,
    pub targets: &'a Targets,
    pub builder: BuilderKind,
    pub farm: &'a FarmOptions,
    /// The local builder's slots.
    pub jobs: usize,
    /// Registry queries at once (`CIP_QUERY_CONCURRENCY`).
    pub query_concurrency: usize,
    /// Where this machine's kernel keeps its binfmt handlers (`CIP_BINFMT_DIR`).
    pub binfmt_dir: PathBuf,
    pub choices: Choices,
    /// Where lower layers report (retries, credentials, the builder's lines).
    pub events: crate::events::Events,
}

/// What a run decides beyond what it builds and where: its tags, build arguments, logs, and
/// which refusals it waives.
pub struct Choices {
    pub no_latest: bool,
    pub arch_tags: bool,
    pub allow_drift: bool,
    /// `--build-arg`s (REGISTRY is cip's).
    pub build_args: Vec<(String, String)>,
    /// Arguments given after `--`, passed to every builder invocation.
    pub builder_args: Vec<String>,
    pub options: crate::builders::BuildOptions,
    pub log_dir: PathBuf,
    /// Makes the builder tags of a run private to it: `RUN` in `cip plan`.
    pub run_id: String,
}

impl Choices {
    /// The choices of a building run (`publish`, `publish-locally`, `build`).
    fn of_run(args: &RunOptions) -> anyhow::Result<Choices> {
        Ok(Choices {
            no_latest: args.no_latest,
            arch_tags: args.arch_tags,
            allow_drift: args.allow_drift,
            build_args: user_build_args(&args.build_args)?,
            builder_args: args.builder_args.clone(),
            options: crate::builders::BuildOptions {
                no_cache: args.no_cache,
                pull: args.pull,
                labels: args.labels.clone(),
                secrets: args.secrets.clone(),
                target: None,
            },
            log_dir: args.log_dir.clone(),
            run_id: crate::execute::new_run_id(),
        })
    }

    /// The choices `cip plan` is given: those of the run it shows.
    fn of_plan(c: &PlanOptions) -> anyhow::Result<Choices> {
        Ok(Choices {
            no_latest: c.no_latest,
            arch_tags: c.arch_tags,
            allow_drift: c.allow_drift,
            build_args: user_build_args(&c.build_args)?,
            builder_args: Vec::new(),
            options: crate::builders::BuildOptions {
                no_cache: c.no_cache,
                pull: c.pull,
                labels: c.labels.clone(),
                secrets: c.secrets.clone(),
                target: None,
            },
            log_dir: c.log_dir.clone(),
            run_id: "RUN".into(),
        })
    }
}

/// A run resolved into its plan, with what executes it.
struct Resolved {
    target: Target,
    /// The registry's session (none for `cip build`'s local store).
    session: Option<Session>,
    /// `cip build`'s builder, whose store the plan was made against.
    store_builder: Option<Arc<dyn Backend>>,
    nodes: RunNodes,
    plan: Plan,
}

/// Resolves a run into its plan: every decision it makes (images, nodes, steps, tags, and the
/// refusals as blocked entries). `cip plan`, `--dry-run` and the run all call it; `for_builds`
/// prepares what builders need to reach the registry (a run, not a plan).
fn resolve(
    loaded: &Loaded,
    req: &Request,
    rt: &tokio::runtime::Runtime,
    for_builds: bool,
) -> anyhow::Result<Resolved> {
    let store = matches!(req.mode, Mode::Store { .. });
    refuse_farm_for_store(req.farm, store)?;
    // Only `build` plans with the builder (its local store); the others find one when they must build.
    let store_builder = if store {
        Some(detect(req.builder, &req.farm.local)?)
    } else {
        None
    };
    let scope = req.mode.scope(req.project, req.platform);
    let (target, session) = match (&req.mode, &store_builder) {
        (Mode::Store { registry }, Some(builder)) => {
            // Checked before anything prints it, as for a registry that is connected to.
            let target = Target::store(builder.clone(), Endpoint::parse(registry)?.address());
            (target, None)
        }
        _ => {
            let session = if for_builds {
                rt.block_on(Session::open_for_builds(
                    req.mode.registry(),
                    req.connect,
                    &req.events,
                ))?
            } else {
                rt.block_on(Session::open(req.mode.registry(), req.connect, &req.events))?
            };
            (
                req.mode.target(session.registry.clone(), &scope)?,
                Some(session),
            )
        }
    };
    let force = plan::forced(loaded, &req.forcing.images, req.forcing.all, req.targets)?;
    let early = EarlyBuilder::new(req.builder, req.farm);
    let images = rt.block_on(plan::make_with(
        loaded,
        &target,
        &scope,
        &force,
        req.query_concurrency,
        &|| {
            if store_builder.is_none() {
                early.start()
            }
        },
    ));
    let found = early.take();
    let images = plan::select(loaded, images?, req.targets)?;
    check_platforms(req.mode.requested(req.platform).as_deref(), &images)?;
    // The nodes are found (a farm's probed) only when something is to be built: a no-op run
    // contacts none.
    let nodes = match &store_builder {
        Some(b) => RunNodes::local(b.clone(), req.jobs),
        None if images.iter().any(ImagePlan::needs_build) => match found {
            Some(b) => RunNodes::local(b?, req.jobs),
            None => RunNodes::find(&req.project.dir, req.farm, req.builder, req.jobs)?,
        },
        None => RunNodes::none(),
    };
    let c = &req.choices;
    let inputs = steps::Inputs {
        project: &loaded.project,
        destination: target.destination.clone(),
        nodes: nodes.inputs(),
        farm: nodes.farm,
        log_dir: c.log_dir.clone(),
        run_id: c.run_id.clone(),
        builder_args: c.builder_args.clone(),
        no_latest: c.no_latest,
        arch_tags: c.arch_tags,
        build_args: c.build_args.clone(),
        options: c.options.clone(),
    };
    let mut plan = steps::plan_steps(images, &inputs);
    let checks: Vec<refusals::NodeCheck> = nodes
        .list
        .iter()
        .map(|n| refusals::NodeCheck {
            builder: n.backend.as_ref(),
            reported: &n.reported,
            emulates_here: n.emulates_here,
        })
        .collect();
    refusals::add(
        &mut plan,
        &loaded.project,
        &checks,
        refusals::Checks {
            allow_drift: c.allow_drift,
            native_only: req.farm.native_only,
            binfmt_dir: &req.binfmt_dir,
        },
    );
    drop(checks);
    Ok(Resolved {
        target,
        session,
        store_builder,
        nodes,
        plan,
    })
}

/// What `cip plan` shows: the plan of the run these flags start ([`resolve`]), the builder found
/// only when something is to be built (as a run finds it). `store` plans `cip build` (the
/// builder's local store) instead of a registry.
#[allow(clippy::too_many_arguments)]
pub fn plan_run(
    loaded: &Loaded,
    project: &ProjectOptions,
    t: &TargetOptions,
    force: &Forcing,
    store: bool,
    builder: BuilderKind,
    farm: &FarmOptions,
    choices: &PlanOptions,
    targets: &Targets,
) -> anyhow::Result<(Target, Plan)> {
    let mode = if store {
        Mode::Store {
            registry: t.local_registry.clone(),
        }
    } else {
        Mode::of(t)
    };
    let req = Request {
        project,
        mode,
        platform: t.platforms.as_ref(),
        connect: &t.connect,
        forcing: force,
        targets,
        builder,
        farm,
        jobs: choices.jobs,
        query_concurrency: t.query_concurrency,
        binfmt_dir: choices.binfmt_dir.clone(),
        choices: Choices::of_plan(choices)?,
        events: t.connect.events.clone(),
    };
    let resolved = resolve(loaded, &req, &runtime()?, false)?;
    Ok((resolved.target, resolved.plan))
}

/// What `cip status` shows: the images against the registry, without steps.
pub fn status(
    loaded: &Loaded,
    project: &ProjectOptions,
    t: &TargetOptions,
    targets: &Targets,
) -> anyhow::Result<(Target, Plan)> {
    let (target, images) = plan_images(loaded, project, t, &[], targets)?;
    let inputs = steps::Inputs {
        project: &loaded.project,
        destination: target.destination.clone(),
        nodes: Vec::new(),
        farm: false,
        log_dir: project.dir.join(".cip/logs"),
        run_id: String::new(),
        builder_args: Vec::new(),
        no_latest: false,
        arch_tags: false,
        build_args: Vec::new(),
        options: Default::default(),
    };
    Ok((target, steps::plan_steps(images, &inputs)))
}

/// How a building run ended.
pub enum Ended {
    /// `--dry-run`: the plan, not executed.
    DryRun(Box<Plan>),
    /// The steps ran (none, when everything was up to date).
    Ran(Finished),
}

/// What a building run did.
pub struct Finished {
    /// The registry (or the local store's registry name) the images went to.
    pub destination: String,
    pub results: Vec<ImageResult>,
    pub steps: Vec<StepRecord>,
    pub ok: bool,
    /// The signal that stopped the run early, if one did.
    pub interrupted: Option<Signal>,
    pub log_dir: PathBuf,
}

impl Finished {
    /// The process exit code: 0, 1, or the signal's.
    pub fn exit_code(&self) -> i32 {
        match self.interrupted {
            Some(signal) => signal.exit_code(),
            None if self.ok => 0,
            None => 1,
        }
    }
}

/// Builds what is missing for `mode`, parents first, and publishes it: executes the plan
/// [`resolve`] makes, or refuses it as `cip plan` shows it blocked.
pub fn build(
    loaded: &Loaded,
    args: &RunOptions,
    mode: Mode,
    reporter: &Arc<Reporter>,
) -> anyhow::Result<Ended> {
    let rt = runtime()?;
    let req = Request {
        project: &args.project,
        mode,
        platform: args.platforms.as_ref(),
        connect: &args.connect,
        forcing: &args.forcing,
        targets: &args.targets,
        builder: args.builder,
        farm: &args.farm,
        jobs: args.jobs,
        query_concurrency: args.query_concurrency,
        binfmt_dir: args.binfmt_dir.clone(),
        choices: Choices::of_run(args)?,
        events: reporter.events(),
    };
    let Resolved {
        target,
        session,
        store_builder,
        nodes,
        plan,
    } = resolve(loaded, &req, &rt, true)?;
    if args.dry_run {
        return Ok(Ended::DryRun(Box::new(plan)));
    }
    refuse_blocked(&plan, false)?;
    if args.allow_drift && plan.images.iter().any(ImagePlan::drift_stands) {
        eprint!("{}", plan::drift_report(&plan.images));
        eprintln!("{ALLOWED_DRIFT}");
    }
    for warning in &plan.warnings {
        eprintln!("warning: {warning}");
    }
    let destination = target.registry_name();
    let log_dir = req.choices.log_dir.clone();
    let run_id = req.choices.run_id.clone();
    // `build` asks its store for the ids of the images it holds, where they are shown.
    let ids_of_kept = args.metadata_file.is_some() || args.verbose;
    let store = store_builder.clone().filter(|_| ids_of_kept);
    if let Some(note) = build_args_unused(args, &plan) {
        eprintln!("note: {note}");
    }
    if nodes.list.is_empty() || plan.steps.is_empty() {
        return Ok(Ended::Ran(Finished {
            destination,
            results: rt.block_on(nothing_to_build(&plan, store.as_deref())),
            steps: Vec::new(),
            ok: true,
            interrupted: None,
            log_dir,
        }));
    };
    if !plan.blocked.iter().any(|b| b.by == BlockedBy::Builder) {
        for warning in &plan.builder_warnings {
            eprintln!("{warning}");
        }
    }
    refuse_blocked(&plan, true)?;
    let nodes: Vec<Arc<dyn Backend>> = nodes.list.iter().map(|n| n.backend.clone()).collect();
    let executor = Executor {
        nodes: nodes.clone(),
        registry: session.as_ref().map(|s| s.registry.clone()),
        access: session.as_ref().map(Session::access).unwrap_or_default(),
        keep_going: args.keep_going,
        ids_of_kept,
        reporter: reporter.clone(),
        temp_dir: args.connect.temp_dir.clone(),
    };
    // sweep: what runs that are over left in the nodes' stores and the staging repositories goes
    // first; a cancelled run removes its own (see `cleanup`).
    let registry = session.as_ref().map(|s| s.registry.clone());
    let lease = crate::cleanup::lease(&args.project.dir);
    for line in rt.block_on(crate::cleanup::before_run(
        &plan,
        &nodes,
        registry.as_deref(),
        &run_id,
        lease,
    )) {
        eprintln!("{line}");
    }
    let run = rt.block_on(executor.run(&plan))?;
    // The run handles SIGINT/SIGTERM from now on: another one skips the grace period of the builders
    // being cancelled (after a failure or a first signal).
    let hurried = nodes.clone();
    rt.spawn(async move {
        crate::interrupt::requested().await;
        for node in &hurried {
            node.cancel();
        }
    });
    // Cancelled builders get SIGKILL from a helper thread after a grace period: let that happen.
    for node in &nodes {
        node.wait_cancelled(std::time::Duration::from_secs(10));
    }
    // What a cancelled run's builds left tagged (built, not pushed) goes with it.
    if run.interrupted.is_some() {
        for line in rt.block_on(crate::cleanup::after_cancel(
            &plan,
            &nodes,
            registry.as_deref(),
            &run_id,
        )) {
            eprintln!("{line}");
        }
    }
    Ok(Ended::Ran(Finished {
        destination,
        results: run.results,
        steps: run.steps,
        ok: run.ok,
        interrupted: run.interrupted,
        log_dir,
    }))
}

/// What `--build-arg` did not reach: published images are not rebuilt for them (the reason for
/// `--force-all`), said rather than left silent. None when none was given, or nothing is left out.
fn build_args_unused(args: &RunOptions, plan: &Plan) -> Option<String> {
    if args.build_args.is_empty() || args.forcing.all {
        return None;
    }
    let published = plan.images.iter().filter(|i| !i.needs_build()).count();
    if published == 0 {
        return None;
    }
    if published == plan.images.len() {
        return Some(
            "--build-arg given, but every image is published: nothing was rebuilt; use \
             --force-all to rebuild with them"
                .into(),
        );
    }
    Some(format!(
        "--build-arg given: {} published, not rebuilt with them (--force-all rebuilds every \
         image)",
        crate::output::count(published, "image")
    ))
}

/// `--build-arg`s: REGISTRY is cip's own (every child finds its parents by it).
fn user_build_args(build_arg: &[(String, String)]) -> anyhow::Result<Vec<(String, String)>> {
    if build_arg.iter().any(|(k, _)| k == "REGISTRY") {
        bail!(
            "--build-arg REGISTRY=... is not yours to set: cip passes the registry it publishes to \
             (choose it with --local-registry or --remote-registry)"
        );
    }
    Ok(build_arg.to_vec())
}

/// A blocked plan is refused before anything is built, rather than failing in the builder
/// midway: images that cannot be built (all of them named), else its first other refusal, with
/// what it says before. `once_building`: the refusals checked once the run knows it builds (see
/// [`BlockedBy::once_building`]), else the others.
fn refuse_blocked(plan: &Plan, once_building: bool) -> anyhow::Result<()> {
    let parents: Vec<&str> = plan
        .blocked
        .iter()
        .filter(|b| b.by == BlockedBy::Parent)
        .map(|b| b.refusal.as_str())
        .collect();
    match parents.as_slice() {
        _ if once_building => {}
        [] => {}
        [one] => bail!("{one}"),
        many => bail!(
            "{} images cannot be built in this run:\n  {}",
            many.len(),
            many.join("\n  ")
        ),
    }
    let first = plan
        .blocked
        .iter()
        .find(|b| b.by != BlockedBy::Parent && b.by.once_building() == once_building);
    if let Some(b) = first {
        eprint!("{}", b.said_before);
        bail!("{}", b.refusal);
    }
    Ok(())
}

/// What `--allow-drift` says once the drift report is shown.
const ALLOWED_DRIFT: &str =
    "--allow-drift: going on; drifted versions keep the context digest they were published with";

/// A published version whose context changed without a version bump is never skipped silently,
/// nor linked into a stage, nor completed by a merge. A forced image is rebuilt from its current
/// context, so its drift does not matter (see [`ImagePlan::drift_stands`]).
pub fn refuse_drift(images: &[ImagePlan], allow: bool) -> anyhow::Result<()> {
    if !images.iter().any(ImagePlan::drift_stands) {
        return Ok(());
    }
    eprint!("{}", plan::drift_report(images));
    if !allow {
        bail!("published versions differ from their contexts: bump them, or pass --allow-drift");
    }
    eprintln!("{ALLOWED_DRIFT}");
    Ok(())
}

/// `cip build` keeps its images in one builder's store: a farm has no such store.
fn refuse_farm_for_store(farm: &FarmOptions, store: bool) -> anyhow::Result<()> {
    if store && farm.selection().is_some() {
        bail!(
            "--farm and --node build on other engines, whose stores cip build cannot keep its images \
             in: use them with publish or publish-locally"
        );
    }
    Ok(())
}

/// The local builder of a run without a farm, looked for on a thread of its own as soon as the
/// plan finds an image to build, while the registry is still asked about the others: a first
/// plan, where everything is to build, does not wait for it after its queries. A run that finds
/// nothing to build never starts it.
struct EarlyBuilder {
    kind: BuilderKind,
    /// The environment the builder is found in.
    env: NodeEnv,
    /// None for a farm's run (its nodes are probed once the plan is known).
    enabled: bool,
    started: std::sync::Mutex<Option<Detection>>,
}

impl Drop for EarlyBuilder {
    /// A run that ends early (an error) still waits for the detection's processes.
    fn drop(&mut self) {
        let _ = self.take();
    }
}

/// A builder detection running on its own thread.
type Detection = std::thread::JoinHandle<anyhow::Result<Arc<dyn Backend>>>;

impl EarlyBuilder {
    fn new(kind: BuilderKind, farm: &FarmOptions) -> EarlyBuilder {
        EarlyBuilder {
            kind,
            env: farm.local.clone(),
            enabled: farm.selection().is_none(),
            started: std::sync::Mutex::new(None),
        }
    }

    fn start(&self) {
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        if self.enabled && started.is_none() {
            let (kind, env) = (self.kind, self.env.clone());
            *started = Some(std::thread::spawn(move || detect(kind, &env)));
        }
    }

    /// The builder found, if the search was started (waited for: nothing it runs outlives it).
    fn take(&self) -> Option<anyhow::Result<Arc<dyn Backend>>> {
        let handle = self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        Some(
            handle
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the builder detection failed"))),
        )
    }
}

/// One engine a run's steps may be placed on.
struct RunNode {
    name: String,
    backend: Arc<dyn Backend>,
    slots: usize,
    emulates: Option<Vec<crate::platform::Platform>>,
    /// What the engine itself runs natively (a declared platform may differ).
    reported: Vec<crate::platform::Platform>,
    /// Whether this machine's kernel emulates for it (a local engine).
    emulates_here: bool,
    /// What the route of its images is decided from (a farm's node).
    reach: Option<crate::farm::route::NodeReach>,
}

/// The engines of a run: the local builder, or the reachable nodes of a farm.
struct RunNodes {
    list: Vec<RunNode>,
    farm: bool,
}

impl RunNodes {
    fn none() -> RunNodes {
        RunNodes {
            list: Vec::new(),
            farm: false,
        }
    }

    fn local(backend: Arc<dyn Backend>, slots: usize) -> RunNodes {
        RunNodes {
            list: vec![RunNode {
                name: "local".into(),
                reported: backend.native_platforms(),
                backend,
                slots,
                emulates: None,
                emulates_here: true,
                reach: None,
            }],
            farm: false,
        }
    }

    /// The farm `farm` names (its unreachable nodes left out, with a warning), else the local
    /// builder `kind` with `jobs` slots.
    fn find(
        project_dir: &std::path::Path,
        farm: &FarmOptions,
        kind: BuilderKind,
        jobs: usize,
    ) -> anyhow::Result<RunNodes> {
        let Some(selection) = farm.selection() else {
            return Ok(RunNodes::local(detect(kind, &farm.local)?, jobs));
        };
        let started = std::time::Instant::now();
        let probed = crate::farm::probe_selection(project_dir, &selection, None, &farm.probing)?;
        crate::output::timing("farm probe", started);
        let mut list = Vec::new();
        for n in probed {
            let Some(backend) = n.backend else {
                let why = n.reason.as_deref().unwrap_or("unknown");
                eprintln!(
                    "warning: node {} ({}) is left out: {why}",
                    n.name, n.address
                );
                continue;
            };
            list.push(RunNode {
                name: n.name,
                emulates_here: n.emulates.is_some(),
                backend,
                slots: n.jobs,
                emulates: n.emulates,
                reported: n.reported_platforms,
                reach: Some(n.reach),
            });
        }
        if list.is_empty() {
            bail!("no node of the farm answers (see above; `cip farm` shows each node)");
        }
        Ok(RunNodes { list, farm: true })
    }

    fn inputs(&self) -> Vec<steps::NodeInput<'_>> {
        self.list
            .iter()
            .map(|n| steps::NodeInput {
                name: n.name.clone(),
                backend: n.backend.as_ref(),
                slots: n.slots,
                emulates: n.emulates.clone(),
                reach: n.reach,
            })
            .collect()
    }
}

/// The builder `kind` names, found on this machine in the environment `env`.
pub fn detect(kind: BuilderKind, env: &NodeEnv) -> anyhow::Result<Arc<dyn Backend>> {
    let started = std::time::Instant::now();
    let builder = crate::builders::detect_with(kind, env.clone())?;
    crate::output::timing("builder detection", started);
    Ok(builder)
}
