//! `cip publish`, `cip publish-locally`, `cip build` and `cip plan`: plan against the target, then build
//! what is missing.
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _};

use super::{load_valid, Loaded};
use crate::build::{emulation, Backend, BuilderKind, RegistryAccess};
use crate::cli::{BuildArgs, ConnectArgs, EditArgs, ProjectArgs, TargetArgs};
use crate::execute::{
    nothing_to_build, render_summary, summary_json, Executor, ImageResult, StepRecord,
};
use crate::plan::{self, steps, ImagePlan, PlatformScope, Target};
use crate::registry::{self, auth, Endpoint, Registry};

/// Where a run publishes.
pub enum Mode {
    /// `publish`: a remote registry, every declared platform (or only the local one).
    Remote {
        registry: String,
        only_local_platform: bool,
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

    fn scope(&self, project: &ProjectArgs) -> PlatformScope {
        match self {
            Mode::Remote {
                only_local_platform: false,
                ..
            } => PlatformScope::Declared(project.default_platforms.0.clone()),
            _ => PlatformScope::Only(crate::build::local_platform()),
        }
    }
}

/// Connects to the registry at `address` (`HOST[:PORT][/PATH]`) with the run's TLS settings and
/// credentials.
pub async fn connect(address: &str, c: &ConnectArgs) -> anyhow::Result<Registry> {
    let ep = endpoint(address, c)?;
    let creds = credentials(&ep.host, c)?;
    connect_as(ep, creds).await
}

/// Connects as `connect` does, and also hands the credentials to builders that will pull from the
/// registry (see `builder_auth_dir`); the credentials are resolved once for both.
pub async fn connect_for_builds(
    address: &str,
    c: &ConnectArgs,
) -> anyhow::Result<(Registry, Option<tempfile::TempDir>)> {
    let ep = endpoint(address, c)?;
    let creds = credentials(&ep.host, c)?;
    let auth_dir = builder_auth_dir(&ep.host, &creds)?;
    Ok((connect_as(ep, creds).await?, auth_dir))
}

/// The credentials for `host` (`HOST[:PORT]`, never a path: credentials belong to the host); says
/// where they come from (never what they are).
fn credentials(host: &str, c: &ConnectArgs) -> anyhow::Result<auth::Credentials> {
    let options = auth::Options {
        no_login: c.no_login,
    };
    let creds = auth::resolve(host, &options)?;
    eprintln!("registry {host}: {}", creds.describe_source());
    Ok(creds)
}

async fn connect_as(ep: Endpoint, creds: auth::Credentials) -> anyhow::Result<Registry> {
    let started = std::time::Instant::now();
    let reg = Registry::connect_with(ep, creds).await;
    crate::output::timing("registry connection", started);
    reg
}

/// The validated endpoint of `address`, before anything prints it (it may carry a password, which
/// validation refuses without echoing it). `--insecure-registry` names hosts: a path given with one
/// is ignored.
fn endpoint(address: &str, c: &ConnectArgs) -> anyhow::Result<Endpoint> {
    let mut e = Endpoint::parse(address)?;
    e.insecure_hosts = c
        .insecure_registry
        .iter()
        .map(|h| {
            registry::address::split(h.trim_end_matches('/'))
                .0
                .to_string()
        })
        .collect();
    e.ca_certs = c.ca_cert.clone();
    if let Ok(f) = std::env::var("SSL_CERT_FILE") {
        e.ca_certs.push(PathBuf::from(f));
    }
    Ok(e)
}

/// Credentials given in the environment, written where builders look for them (see
/// `RegistryAccess::auth_dir`), readable by the owner only. None when builders find them on their own.
fn builder_auth_dir(
    host: &str,
    creds: &auth::Credentials,
) -> anyhow::Result<Option<tempfile::TempDir>> {
    use base64::Engine as _;
    use std::os::unix::fs::PermissionsExt;
    let (auth::Source::Env, oci_client::secrets::RegistryAuth::Basic(user, password)) =
        (&creds.source, &creds.auth)
    else {
        return Ok(None);
    };
    let dir = crate::scratch::private_dir("auth")?;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        serde_json::json!({"auths": {host: {"auth": token}}}).to_string(),
    )?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(Some(dir))
}

/// Copies the CA files into a directory as `*.crt`, the form buildah's `--cert-dir` reads.
pub fn cert_dir(ca_certs: &[PathBuf]) -> anyhow::Result<Option<tempfile::TempDir>> {
    if ca_certs.is_empty() {
        return Ok(None);
    }
    let dir = crate::scratch::private_dir("certs")?;
    for (i, c) in ca_certs.iter().enumerate() {
        std::fs::copy(c, dir.path().join(format!("ca-{i}.crt")))
            .with_context(|| format!("cannot read CA certificate {}", c.display()))?;
    }
    Ok(Some(dir))
}

impl Mode {
    /// The mode whose registry and platforms a read-only command asks about.
    pub fn of(t: &TargetArgs) -> Mode {
        match &t.remote_registry {
            Some(registry) => Mode::Remote {
                registry: registry.clone(),
                only_local_platform: t.only_local_platform,
            },
            None => Mode::Local {
                registry: t.local_registry.clone(),
            },
        }
    }
}

/// What `cip plan` or `cip status` shows.
pub enum Shown {
    /// The plan with its steps; `store` plans `cip build` (the builder's local store).
    Plan {
        store: bool,
        builder: BuilderKind,
    },
    Status,
}

/// Plans the images against the target without building.
fn plan_only(
    loaded: &Loaded,
    project: &ProjectArgs,
    t: &TargetArgs,
    force: &[String],
) -> anyhow::Result<(Target, Vec<ImagePlan>)> {
    let mode = Mode::of(t);
    let rt = runtime()?;
    let reg = rt.block_on(connect(mode.registry(), &t.connect))?;
    let target = Target::Registry(Arc::new(reg));
    let plans = rt.block_on(plan::make(loaded, &target, &mode.scope(project), force))?;
    Ok((target, plans))
}

/// `cip plan --store`: the images against the builder's local store, as `cip build` plans them.
fn plan_store(
    loaded: &Loaded,
    t: &TargetArgs,
    force: &[String],
    builder: &Arc<dyn Backend>,
) -> anyhow::Result<(Target, Vec<ImagePlan>)> {
    // Checked before anything prints it, as for a registry that is connected to.
    let registry = Endpoint::parse(&t.local_registry)?.address();
    let target = Target::LocalStore {
        builder: builder.clone(),
        registry,
    };
    let scope = PlatformScope::Only(crate::build::local_platform());
    let plans = runtime()?.block_on(plan::make(loaded, &target, &scope, force))?;
    Ok((target, plans))
}

/// `cip plan` (what would be built and why, step by step) and `cip status` (per image state and
/// drift).
pub fn plan(
    project: &ProjectArgs,
    t: &TargetArgs,
    force: &[String],
    json: bool,
    shown: Shown,
) -> anyhow::Result<i32> {
    let loaded = load_valid(project)?;
    let Shown::Plan { store, builder } = shown else {
        let (target, images) = plan_only(&loaded, project, t, force)?;
        let plan = steps::plan_steps(images, &step_inputs_without_builder(&loaded, project));
        if json {
            print_json(&plan::to_json(&loaded, &target, &plan))?;
        } else {
            print!("{}", plan::render_status(&plan.images));
            print!("{}", plan::drift_report(&plan.images));
        }
        return Ok(0);
    };
    let (target, images) = if store {
        let b = detect(builder)?;
        plan_store(&loaded, t, force, &b)?
    } else {
        plan_only(&loaded, project, t, force)?
    };
    // The node is found only when something is to be built, as a run would.
    let node = match &target {
        Target::LocalStore { builder, .. } => Some(builder.clone()),
        Target::Registry(_) if images.iter().any(ImagePlan::needs_build) => Some(detect(builder)?),
        Target::Registry(_) => None,
    };
    let destination = destination_of(&target, store);
    let inputs = steps::Inputs {
        project: &loaded.project,
        destination,
        builder: node.as_deref(),
        slots: default_jobs(),
        log_dir: project.project_dir.join(".cip/logs"),
        run_id: "RUN".into(),
        builder_args: Vec::new(),
    };
    let plan = steps::plan_steps(images, &inputs);
    if json {
        print_json(&plan::to_json(&loaded, &target, &plan))?;
    } else {
        print!("{}", plan::render(&loaded, &plan));
    }
    Ok(0)
}

fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Inputs for a plan whose steps are not shown (`cip status`): no node, so no steps.
fn step_inputs_without_builder<'a>(loaded: &'a Loaded, project: &ProjectArgs) -> steps::Inputs<'a> {
    steps::Inputs {
        project: &loaded.project,
        destination: steps::Destination::Registry {
            name: String::new(),
        },
        builder: None,
        slots: 1,
        log_dir: project.project_dir.join(".cip/logs"),
        run_id: String::new(),
        builder_args: Vec::new(),
    }
}

fn destination_of(target: &Target, store: bool) -> steps::Destination {
    let name = target.registry_name().to_string();
    if store {
        steps::Destination::Store { name }
    } else {
        steps::Destination::Registry { name }
    }
}

/// `cip bump --changed`: bump every drifted image and cascade.
pub fn bump_changed(project: &ProjectArgs, t: &TargetArgs, edit: &EditArgs) -> anyhow::Result<i32> {
    let loaded = load_valid(project)?;
    let (_, plans) = plan_only(&loaded, project, t, &[])?;
    let drifted: Vec<usize> = plans
        .iter()
        .filter(|p| p.drift.is_some())
        .map(|p| p.ctx)
        .collect();
    if drifted.is_empty() {
        eprintln!("no published version differs from its context: nothing to bump");
        return Ok(0);
    }
    super::cascade::apply(&loaded, &drifted, edit.level, edit)
}

pub fn run(args: &BuildArgs, mode: Mode) -> anyhow::Result<i32> {
    let loaded = load_valid(&args.project)?;
    let ep = endpoint(mode.registry(), &args.connect)?;
    // Only `build` plans with the builder (its local store); the others find one when they must build.
    let store_builder = match mode {
        Mode::Store { .. } => Some(detect_builder(args)?),
        _ => None,
    };
    let rt = runtime()?;
    let (target, plain_http, auth_dir) = match (&mode, &store_builder) {
        (Mode::Store { .. }, Some(builder)) => {
            let target = Target::LocalStore {
                builder: builder.clone(),
                registry: ep.address(),
            };
            (target, ep.plain_http(), None)
        }
        _ => {
            let (reg, auth_dir) =
                rt.block_on(connect_for_builds(mode.registry(), &args.connect))?;
            let plain = reg.plain_http();
            (Target::Registry(Arc::new(reg)), plain, auth_dir)
        }
    };
    let images = rt.block_on(plan::make(
        &loaded,
        &target,
        &mode.scope(&args.project),
        &args.force,
    ))?;
    let builder = match store_builder {
        Some(b) => Some(b),
        None if images.iter().any(ImagePlan::needs_build) => Some(detect_builder(args)?),
        None => None,
    };
    let log_dir = args
        .log_dir
        .clone()
        .unwrap_or_else(|| args.project.project_dir.join(".cip/logs"));
    let inputs = steps::Inputs {
        project: &loaded.project,
        destination: destination_of(&target, matches!(mode, Mode::Store { .. })),
        builder: builder.as_deref(),
        slots: args.jobs(),
        log_dir: log_dir.clone(),
        run_id: crate::execute::new_run_id(),
        builder_args: args.builder_args.clone(),
    };
    let plan = steps::plan_steps(images, &inputs);
    if args.dry_run {
        print!("{}", plan::render(&loaded, &plan));
        return Ok(0);
    }
    // A forced image is rebuilt from its current context, so its drift does not matter.
    if plan.images.iter().any(|p| p.drift.is_some() && !p.forced) {
        eprint!("{}", plan::drift_report(&plan.images));
        if !args.allow_drift {
            bail!(
                "published versions differ from their contexts: bump them, or pass --allow-drift"
            );
        }
        eprintln!("--allow-drift: going on; drifted versions keep the context digest they were published with");
    }
    let Some(builder) = builder.filter(|_| !plan.steps.is_empty()) else {
        report(args, &target, &nothing_to_build(&plan), &[]);
        return Ok(0);
    };
    // Features the builder lacks (heredocs) fail here, before any build, not midway.
    let building = plan
        .images
        .iter()
        .filter(|p| p.needs_build())
        .map(|p| p.ctx);
    crate::build::capabilities::refuse_unsupported(&loaded.project, building, builder.as_ref())?;
    emulation::check(&plan.platforms_built(), &builder.native_platforms())
        .map_err(anyhow::Error::msg)?;

    let certs = cert_dir(&args.connect.ca_cert)?;
    let executor = Executor {
        nodes: vec![builder],
        registry: match &target {
            Target::Registry(reg) => Some(reg.clone()),
            Target::LocalStore { .. } => None,
        },
        access: RegistryAccess {
            insecure: plain_http,
            cert_dir: certs.as_ref().map(|d| d.path().to_path_buf()),
            auth_dir: auth_dir.as_ref().map(|d| d.path().to_path_buf()),
        },
        keep_going: args.keep_going,
    };
    let run = rt.block_on(executor.run(&plan))?;
    // The run handles SIGINT/SIGTERM from now on: another one skips the grace period of the builders
    // being cancelled (after a failure or a first signal).
    rt.spawn(async {
        crate::interrupt::requested().await;
        crate::build::hurry_cancelled();
    });
    // Cancelled builders get SIGKILL from a helper thread after a grace period: let that happen.
    crate::build::wait_for_cancelled(std::time::Duration::from_secs(10));
    report(args, &target, &run.results, &run.steps);
    if !run.ok {
        eprintln!("logs: {}", log_dir.display());
    }
    Ok(match run.interrupted {
        Some(signal) => signal.exit_code(),
        None if run.ok => 0,
        None => 1,
    })
}

fn detect_builder(args: &BuildArgs) -> anyhow::Result<Arc<dyn Backend>> {
    detect(args.builder)
}

fn detect(kind: BuilderKind) -> anyhow::Result<Arc<dyn Backend>> {
    let started = std::time::Instant::now();
    let builder = crate::build::detect(kind)?;
    crate::output::timing("builder detection", started);
    Ok(builder)
}

/// How many builds run at once by default: the number of CPUs, at least 2.
fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2)
}

/// The summary table, and the JSON summary with `--json`.
fn report(args: &BuildArgs, target: &Target, results: &[ImageResult], steps: &[StepRecord]) {
    if args.json {
        let json = summary_json(target.registry_name(), results, steps);
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string())
        );
    }
    eprint!("{}", render_summary(results));
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
