//! `cip publish`, `cip publish-locally`, `cip build` and `cip plan`: plan against the target, then build
//! what is missing.
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _};

use super::{load_valid, Loaded};
use crate::build::{emulation, Builder, RegistryAccess};
use crate::cli::{BuildArgs, ConnectArgs, EditArgs, ProjectArgs, TargetArgs};
use crate::plan::{self, ImagePlan, PlatformScope, Target};
use crate::platform::Platform;
use crate::publish::{nothing_to_build, render_summary, summary_json, ImageResult, Runner};
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
            _ => PlatformScope::Only(Platform::host()),
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
    let dir = tempfile::Builder::new().prefix("cip-auth-").tempdir()?;
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
    let dir = tempfile::Builder::new().prefix("cip-certs-").tempdir()?;
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

/// Plans against the target without building.
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

/// `cip plan` (what would be built and why) and `cip status` (per image state and drift).
pub fn plan(
    project: &ProjectArgs,
    t: &TargetArgs,
    force: &[String],
    json: bool,
    status: bool,
) -> anyhow::Result<i32> {
    let loaded = load_valid(project)?;
    let (target, plans) = plan_only(&loaded, project, t, force)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan::to_json(&loaded, &target, &plans))?
        );
    } else if status {
        print!("{}", plan::render_status(&plans));
        print!("{}", plan::drift_report(&plans));
    } else {
        print!("{}", plan::render(&loaded, &plans));
    }
    Ok(0)
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
    let plans = rt.block_on(plan::make(
        &loaded,
        &target,
        &mode.scope(&args.project),
        &args.force,
    ))?;
    if args.dry_run {
        print!("{}", plan::render(&loaded, &plans));
        return Ok(0);
    }
    // A forced image is rebuilt from its current context, so its drift does not matter.
    if !args.allow_drift && plans.iter().any(|p| p.drift.is_some() && !p.forced) {
        eprint!("{}", plan::drift_report(&plans));
        bail!("published versions differ from their contexts: bump them, or pass --allow-drift");
    }
    let needed: Vec<Platform> = plans.iter().flat_map(|p| p.to_build()).collect();
    if needed.is_empty() {
        report(args, &target, &nothing_to_build(&plans));
        return Ok(0);
    }
    let builder = match store_builder {
        Some(b) => b,
        None => detect_builder(args)?,
    };
    emulation::check(&needed, &builder.native_platforms()).map_err(anyhow::Error::msg)?;

    let certs = cert_dir(&args.connect.ca_cert)?;
    let runner = Runner {
        builder,
        target: target.clone(),
        access: RegistryAccess {
            insecure: plain_http,
            cert_dir: certs.as_ref().map(|d| d.path().to_path_buf()),
            auth_dir: auth_dir.as_ref().map(|d| d.path().to_path_buf()),
        },
        jobs: args.jobs(),
        keep_going: args.keep_going,
        log_dir: args
            .log_dir
            .clone()
            .unwrap_or_else(|| args.project.project_dir.join(".cip/logs")),
        builder_args: args.builder_args.clone(),
    };
    let run = rt.block_on(runner.run(&loaded, &plans))?;
    // The run handles SIGINT/SIGTERM from now on: another one skips the grace period of the builders
    // being cancelled (after a failure or a first signal).
    rt.spawn(async {
        crate::interrupt::requested().await;
        crate::build::hurry_cancelled();
    });
    // Cancelled builders get SIGKILL from a helper thread after a grace period: let that happen.
    crate::build::wait_for_cancelled(std::time::Duration::from_secs(10));
    report(args, &target, &run.results);
    if !run.ok {
        eprintln!("logs: {}", runner.log_dir.display());
    }
    Ok(match run.interrupted {
        Some(signal) => signal.exit_code(),
        None if run.ok => 0,
        None => 1,
    })
}

fn detect_builder(args: &BuildArgs) -> anyhow::Result<Arc<Builder>> {
    let started = std::time::Instant::now();
    let builder = Builder::detect(args.builder)?;
    crate::output::timing("builder detection", started);
    Ok(Arc::new(builder))
}

/// The summary table, and the JSON summary with `--json`.
fn report(args: &BuildArgs, target: &Target, results: &[ImageResult]) {
    if args.json {
        let json = summary_json(target.registry_name(), results);
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
