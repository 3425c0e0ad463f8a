//! Build backends: buildah, podman and docker, each building one platform of one image into its local
//! store and exporting it as an OCI image layout that cip pushes itself.
//!
//! A [`Backend`] is one resolved engine instance (a "node"): the program, its version, the global
//! options and environment it runs with, and the platforms it runs natively. Several can exist at once
//! (a local buildah, docker daemons reached through different `DOCKER_HOST`s), each configured by a
//! [`NodeEnv`] that overrides the process environment.
//!
//! A node may be elsewhere: a docker daemon over `ssh://`, `tcp://` or a context, a podman service
//! (`--url`, `--connection` in `CIP_PODMAN_GLOBAL_ARGS`). Its images come back through an archive
//! the client saves here (`docker save`, `podman save`), converted to an OCI layout by skopeo, or
//! the node pushes them to the registry itself ([`Backend::push_to`], a farm's `direct` route).
//!
//! Every builder process runs in its own process group with its output appended to the job's log; when
//! the future of an operation is dropped (the scheduler cancelling builds), the whole group is
//! terminated (see [`process`]).
//!
//! # Environment
//! - `BUILDAH_ISOLATION` (e.g. `chroot`), `BUILDAH_LAYERS`, `CONTAINERS_STORAGE_CONF`,
//!   `REGISTRY_AUTH_FILE`: read by buildah/podman themselves. cip does not pass `--layers`: buildah's
//!   default (no cache of intermediate layers) is kept, since with the vfs driver every cached layer
//!   is a full copy of the root filesystem; `BUILDAH_LAYERS=true` turns the cache on.
//! - `STORAGE_DRIVER`: buildah documents it, but 1.28 ignores it unless a `storage.conf` exists (there
//!   is none on a plain Debian 12), so cip passes it as `--storage-driver` itself.
//! - `CIP_BUILDAH_GLOBAL_ARGS` / `CIP_PODMAN_GLOBAL_ARGS`: whitespace-separated options inserted before
//!   the subcommand of every buildah/podman call, e.g.
//!   `--storage-driver vfs --root /srv/cip/storage --runroot /run/cip/storage`.
//! - `DOCKER_HOST`: the daemon the docker backend talks to (also handed to skopeo for exports).
//! - `CIP_DOCKER`: the docker client to use (default: the first on PATH that can build with BuildKit).
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use futures_util::future::BoxFuture;

use crate::platform::Platform;

mod buildah;
pub mod buildkit;
pub mod capabilities;
mod docker;
pub mod emulation;
pub mod engines;
#[cfg(test)]
mod in_process;
pub mod leftovers;
mod podman;
pub mod process;
pub mod service_cancel;

pub use docker::DOCKER_PROGRAM_ENV;
pub use engines::BuilderKind;
pub use process::Supervisor;

/// How the builder reaches the registry its parents are pulled from.
#[derive(Debug, Clone, Default)]
pub struct RegistryAccess {
    /// Plain HTTP or unverified TLS (`--tls-verify=false` for buildah/podman).
    pub insecure: bool,
    /// A directory with `*.crt` CA files (buildah/podman `--cert-dir`).
    pub cert_dir: Option<PathBuf>,
    /// A directory holding a `config.json` with the run's credentials (when they came from the
    /// environment, where builders cannot see them): buildah/podman read it as `REGISTRY_AUTH_FILE`,
    /// docker as `DOCKER_CONFIG`. Keeps secrets off command lines and out of logs.
    pub auth_dir: Option<PathBuf>,
}

impl RegistryAccess {
    /// Environment for a builder process that pulls from the registry.
    pub fn env(&self) -> Vec<(&'static str, PathBuf)> {
        match &self.auth_dir {
            Some(d) => vec![
                ("REGISTRY_AUTH_FILE", d.join("config.json")),
                ("DOCKER_CONFIG", d.clone()),
            ],
            None => Vec::new(),
        }
    }
}

/// One platform of one image.
#[derive(Debug, Clone)]
pub struct BuildJob {
    pub context_dir: PathBuf,
    pub dockerfile: PathBuf,
    pub platform: Platform,
    /// `--build-arg K=V`, REGISTRY among them.
    pub build_args: Vec<(String, String)>,
    /// Tag in the builder's local store, e.g. `localhost:5000/app:1.0.0` or a cip-private tag.
    pub tag: String,
    /// Extra builder arguments given after `--`.
    pub extra_args: Vec<String>,
    /// Builder output (stdout and stderr) goes here.
    pub log: PathBuf,
    pub registry: RegistryAccess,
    pub options: BuildOptions,
    /// Where the build reports: its output lines (if the sink takes them) and its retries.
    pub events: crate::events::Events,
}

/// What users pass to builders every day, each engine told in its own words.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BuildOptions {
    /// Build every step anew (`--no-cache`).
    pub no_cache: bool,
    /// Pull base images even if the store has them (`--pull`; buildah says `--pull-always`).
    pub pull: bool,
    /// `--label K=V`.
    pub labels: Vec<(String, String)>,
    /// `--secret id=ID,src=PATH`.
    pub secrets: Vec<String>,
    /// The stage to build (`--target`), from info.edn's `:target`.
    pub target: Option<String>,
}

impl BuildOptions {
    /// The flags; `pull_flag` is the engine's word for "always pull".
    fn flags(&self, pull_flag: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.no_cache {
            out.push("--no-cache".to_string());
        }
        if self.pull {
            out.push(pull_flag.to_string());
        }
        for (k, v) in &self.labels {
            out.extend(["--label".to_string(), format!("{k}={v}")]);
        }
        for s in &self.secrets {
            out.extend(["--secret".to_string(), s.clone()]);
        }
        if let Some(t) = &self.target {
            out.extend(["--target".to_string(), t.clone()]);
        }
        out
    }
}

/// Lines a builder prints when it fails for a reason of the machine, not of the Dockerfile, and
/// that pass on a second try. Each is quoted in the retry line.
pub const TRANSIENT_FAILURES: &[&str] = &[
    // buildah and podman copy themselves into a sealed memfd before each RUN step; the kernel
    // refuses the seal (EBUSY) while pages of the fresh copy are still pinned, which a loaded
    // machine shows now and then.
    "sealing memfd copy: Device or resource busy",
];
/// Lines a builder prints when this machine's setup, not the Dockerfile, stops every build, with
/// how to fix that; the hint is appended to the failure.
pub const MACHINE_FAILURES: &[(&str, &str)] = &[
    // The default OCI runtime cannot create containers on hosts (or in containers) with hybrid
    // cgroups v1/v2; chroot isolation needs no cgroups.
    (
        "cgroups in hybrid mode not supported",
        "set BUILDAH_ISOLATION=chroot (or pass --isolation chroot after --)",
    ),
];

/// The hint of the first [`MACHINE_FAILURES`] line in a builder's last output lines.
pub fn machine_failure_hint(tail: &str) -> Option<&'static str> {
    MACHINE_FAILURES
        .iter()
        .find(|(line, _)| tail.contains(line))
        .map(|&(_, hint)| hint)
}

/// Tries of a build whose failure is in [`TRANSIENT_FAILURES`].
const BUILD_ATTEMPTS: u32 = 2;
/// Pause before such a retry, for the load behind it to ease.
const TRANSIENT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Environment variable with extra global options for buildah.
pub const BUILDAH_GLOBAL_ARGS_ENV: &str = "CIP_BUILDAH_GLOBAL_ARGS";
/// Environment variable with extra global options for podman.
pub const PODMAN_GLOBAL_ARGS_ENV: &str = "CIP_PODMAN_GLOBAL_ARGS";
/// How long `docker version` may take to answer during detection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// Settings of one build node: variables that override the process environment, both for what
/// [`detect_with`] reads (`STORAGE_DRIVER`, `CIP_BUILDAH_GLOBAL_ARGS`, `DOCKER_HOST`, ..) and
/// for every process the builder starts (`BUILDAH_ISOLATION`, `TMPDIR`, ..).
#[derive(Debug, Clone, Default)]
pub struct NodeEnv {
    /// The environment the run started with (what a variable without an override reads), shared
    /// by every node of the run.
    base: Arc<HashMap<String, String>>,
    vars: Vec<(String, String)>,
    /// Global options of the engine's program, each one argument (a node's `--url=...`), in
    /// place of the ones `CIP_BUILDAH_GLOBAL_ARGS` / `CIP_PODMAN_GLOBAL_ARGS` give.
    global_args: Option<Vec<String>>,
}

impl NodeEnv {
    /// No overrides: the process environment as it is now (a library user, a test; a run of cip
    /// passes the environment it started with, [`NodeEnv::over`]).
    pub fn new() -> Self {
        NodeEnv::over(Arc::new(std::env::vars().collect()))
    }

    /// No overrides over `base`, the environment a run started with.
    pub fn over(base: Arc<HashMap<String, String>>) -> Self {
        NodeEnv {
            base,
            ..NodeEnv::default()
        }
    }

    /// Sets `key` for this node (replacing an earlier value).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.vars.retain(|(k, _)| *k != key);
        self.vars.push((key, value.into()));
        self
    }

    /// The node's value of `key`: its override, else the process environment; empty counts as unset.
    pub fn get(&self, key: &str) -> Option<String> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .or_else(|| self.base.get(key).cloned())
            .filter(|v| !v.trim().is_empty())
    }

    /// The overrides, given to every process of the node.
    pub fn overrides(&self) -> &[(String, String)] {
        &self.vars
    }

    /// The node's global options of buildah/podman, each one argument, never split.
    pub fn with_global_args(mut self, args: Vec<String>) -> Self {
        self.global_args = Some(args);
        self
    }

    /// The global options given with [`NodeEnv::with_global_args`], if any.
    pub fn global_args(&self) -> Option<&[String]> {
        self.global_args.as_deref()
    }
}

/// Where a containers/storage store lives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoreRoots {
    pub graph_root: PathBuf,
    pub run_root: PathBuf,
}

impl StoreRoots {
    /// The sibling store that holds only `platform`'s images, e.g.
    /// `/var/lib/containers/storage-linux-arm64`.
    fn for_platform(&self, platform: &Platform) -> StoreRoots {
        let slug = platform.to_string().replace('/', "-");
        let sibling = |p: &Path| {
            let mut s = p.as_os_str().to_owned();
            s.push("-");
            s.push(&slug);
            PathBuf::from(s)
        };
        StoreRoots {
            graph_root: sibling(&self.graph_root),
            run_root: sibling(&self.run_root),
        }
    }
}

/// The result of a backend operation.
pub type Op<'a, T> = BoxFuture<'a, Result<T, BackendError>>;

/// Why a backend operation failed, in the terms a caller acts on: the machine (worth trying again,
/// on this node or another), an image that is not there, or the engine's own failure with its log.
#[derive(Debug)]
pub enum BackendError {
    /// A failure of the machine, not of the input ([`TRANSIENT_FAILURES`]), that outlasted the
    /// retry.
    Transient {
        what: String,
        why: &'static str,
        failure: process::LoggedFailure,
    },
    /// The engine failed; its log says why, and `hint` how to fix the machine when a
    /// [`MACHINE_FAILURES`] line shows that it is the cause.
    Failed {
        what: String,
        failure: process::LoggedFailure,
        hint: Option<&'static str>,
    },
    /// An image that is not in the node's store.
    NotFound { image: String, detail: String },
    /// Anything else: the program could not be run, a file could not be written.
    Other(anyhow::Error),
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendError::Transient { what, failure, .. } => write!(f, "{what}: {failure}"),
            BackendError::Failed {
                what,
                failure,
                hint,
            } => {
                write!(f, "{what}: {failure}")?;
                match hint {
                    Some(hint) => write!(f, "\n  hint: {hint}"),
                    None => Ok(()),
                }
            }
            BackendError::NotFound { image, detail } => {
                write!(f, "{image} is not in the local store ({detail})")
            }
            BackendError::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for BackendError {}

impl From<anyhow::Error> for BackendError {
    fn from(e: anyhow::Error) -> Self {
        BackendError::Other(e)
    }
}

impl BackendError {
    /// The failure of a logged command doing `what`, classified by the lines it printed last.
    fn of_command(what: String, error: anyhow::Error) -> BackendError {
        let failure = match error.downcast::<process::LoggedFailure>() {
            Ok(failure) => failure,
            Err(other) => return BackendError::Other(other.context(what)),
        };
        let transient = TRANSIENT_FAILURES
            .iter()
            .copied()
            .find(|line| failure.tail.contains(line));
        match transient {
            Some(why) => BackendError::Transient { what, why, failure },
            None => BackendError::Failed {
                what,
                hint: machine_failure_hint(&failure.tail),
                failure,
            },
        }
    }
}

/// One build engine on one node (buildah, podman, docker): what the run asks of it. Dropping an
/// operation's future cancels it: the engine's processes are ended (see [`process`]).
///
/// Every engine says what it is and works its own store: it builds, exports, lists, pulls, tags
/// and removes images there, and names the [`Supervisor`] of its processes (the first group of
/// methods). What some engines can do and others need not (push from the node, per-platform
/// stores, a remote machine's CPUs and liveness) has a default (the second group). Ending
/// cancelled operations is the supervisor's, through [`cancel`](#method.cancel) and
/// [`wait_cancelled`](#method.wait_cancelled) on any backend.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Which engine of the registry this is.
    fn kind(&self) -> BuilderKind;

    /// The engine's version as it reports it, e.g. `1.28.2`.
    fn version(&self) -> &str;

    /// The platforms this node runs without emulation.
    fn native_platforms(&self) -> Vec<Platform>;

    /// Builds one platform of one image into the local store as `job.tag`. The engine's output is
    /// appended to `job.log`; a failure quotes the command and the log's last lines. A build that
    /// fails for a reason of the machine, not of the Dockerfile ([`TRANSIENT_FAILURES`]), is run
    /// once more, after a retry line; the log keeps both attempts.
    fn build<'a>(&'a self, job: &'a BuildJob) -> Op<'a, ()>;

    /// Writes the single-platform image `tag` of the local store as an OCI image layout
    /// (`oci-layout`, `index.json` listing its manifest, `blobs/sha256/..`) into `dir`, which must
    /// not exist or be empty.
    fn export_oci_layout<'a>(&'a self, tag: &'a str, dir: &'a Path) -> Op<'a, ()>;

    /// Every `name:tag` in the local store, from one listing. Names are as the engine prints them,
    /// which may be normalised differently from how cip spells a tag (`docker.io/library/...`): a
    /// listed tag exists, an unlisted one is asked about with [`Backend::image_exists`].
    fn local_tags(&self) -> Op<'_, HashSet<String>>;

    /// Whether `tag` is in the local store.
    fn image_exists<'a>(&'a self, tag: &'a str) -> Op<'a, bool>;

    /// Removes the tag `tag` from the local store (the image itself once no tag is left). A tag
    /// that is not there is not an error.
    fn remove_image<'a>(&'a self, tag: &'a str) -> Op<'a, ()>;

    /// Gives the image `src` of the local store the additional tag `dst`.
    fn tag_image<'a>(&'a self, src: &'a str, dst: &'a str) -> Op<'a, ()>;

    /// Pulls `reference` (of `platform` if given) into the local store.
    fn pull<'a>(
        &'a self,
        reference: &'a str,
        platform: Option<&'a Platform>,
        access: &'a RegistryAccess,
    ) -> Op<'a, ()>;

    /// Who ends this node's cancelled operations (their futures dropped).
    fn supervisor(&self) -> &Supervisor;

    // What has a default.

    /// What the user is told builds, e.g. `buildah 1.28.2` or
    /// `docker 20.10.24 (BuildKit, unix:///run/x.sock)`.
    fn describe(&self) -> String {
        format!("{} {}", self.kind(), self.version())
    }

    /// Where the engine runs when not on this machine's default socket or store, e.g.
    /// `ssh://builder@amd-1` or `--url unix:///run/podman.sock` (None: the local engine).
    fn address(&self) -> Option<String> {
        None
    }

    /// The store of its own a pushed build of `platform` uses, if the engine needs one (see
    /// [`Backend::with_store`]).
    fn platform_store(&self, _platform: &Platform) -> Option<StoreRoots> {
        None
    }

    /// This backend working in `store` (one [`Backend::platform_store`] gave); None for an engine
    /// without stores of its own.
    fn with_store(&self, _store: &StoreRoots) -> Option<Arc<dyn Backend>> {
        None
    }

    /// Pushes the image `tag` of the node's store to `destination` (`REG/REPO:TAG`) from the
    /// node itself, so its data goes from the node's machine to the registry, not through cip's
    /// (the `direct` route of a farm's node). The engine's output is appended to `log`. The
    /// node keeps no tag of `destination` afterwards.
    fn push_to<'a>(
        &'a self,
        _tag: &'a str,
        destination: &'a str,
        _access: &'a RegistryAccess,
        _log: &'a Path,
    ) -> Op<'a, ()> {
        Box::pin(async move { Err(anyhow!("this engine cannot push {destination} itself").into()) })
    }

    /// The id (`sha256:...`) of the image `tag` names in the local store; None if it is not
    /// there (or the engine cannot tell).
    fn image_id<'a>(&'a self, _tag: &'a str) -> Op<'a, Option<String>> {
        Box::pin(async { Ok(None) })
    }

    /// How many CPUs the engine's machine has, as the engine reports it (None: it does not say).
    fn cpus(&self) -> Op<'_, Option<usize>> {
        Box::pin(async { Ok(std::thread::available_parallelism().ok().map(|n| n.get())) })
    }

    /// Whether the engine still answers: a node lost in the middle of a run does not, which makes
    /// its failed builds worth trying on another node.
    fn answers(&self) -> Op<'_, bool> {
        Box::pin(async { Ok(true) })
    }
}

/// Cancellation, the same for every engine: its [`Supervisor`]'s.
impl dyn Backend {
    /// Ends the operations of this node that were cancelled at once, without the grace period
    /// their processes get to clean up (a second Ctrl-C).
    pub fn cancel(&self) {
        self.supervisor().hurry();
    }

    /// Waits up to `timeout` until the processes of this node's cancelled operations are gone;
    /// whether they were. A run calls it before it ends, so no builder outlives cip.
    pub fn wait_cancelled(&self, timeout: Duration) -> bool {
        self.supervisor().wait_for_cancelled(timeout)
    }
}

/// The platform the local node builds natively, known without asking its engine: this machine's.
/// A run that builds only "the local platform" (`publish-locally`, `build`) plans with it before
/// (and without, when nothing is missing) detecting the engine.
pub fn local_platform() -> Platform {
    Platform::host()
}

/// Finds the builder `kind` asks for, configured from the process environment.
/// `Auto` tries buildah, then podman, then docker (only if its daemon answers).
pub fn detect(kind: BuilderKind) -> anyhow::Result<Arc<dyn Backend>> {
    detect_with(kind, NodeEnv::new())
}

/// [`detect`] for a node configured by `env` (e.g. a `DOCKER_HOST`, a private buildah store
/// through `CIP_BUILDAH_GLOBAL_ARGS`).
pub fn detect_with(kind: BuilderKind, env: NodeEnv) -> anyhow::Result<Arc<dyn Backend>> {
    if let Some(engine) = kind.engine() {
        return (engine.detect)(env).map_err(NotUsable::into_error);
    }
    let mut tried = Vec::new();
    for engine in engines::ENGINES.iter().filter(|e| e.auto) {
        match (engine.detect)(env.clone()) {
            Ok(b) => return Ok(b),
            Err(e) => tried.push(e),
        }
    }
    let lines = tried
        .iter()
        .map(|e| format!("  {}: {}", e.program, e.reason))
        .collect::<Vec<_>>()
        .join("\n");
    bail!(
        "no container image builder found; cip looked for buildah, podman and docker (with a \
         daemon that answers), in that order:\n{lines}\n\
         Install one, e.g. `apt-get install -y buildah` (Debian/Ubuntu; `dnf install -y buildah` \
         on Fedora/RHEL) or podman, or start the Docker daemon (`systemctl start docker`, or set \
         DOCKER_HOST); choose one explicitly with --builder"
    )
}

/// [`detect_with`] for a build node of a farm: why it cannot be used is the reason alone (installing
/// or starting an engine on this machine is no fix for a node elsewhere). `Auto` is not a node
/// kind; it stands for the registry's first engine.
pub fn detect_node(kind: BuilderKind, env: NodeEnv) -> Result<Arc<dyn Backend>, String> {
    let engine = kind.engine().unwrap_or(engines::ENGINES[0]);
    (engine.detect)(env).map_err(|e| format!("{} cannot be used: {}", e.program, e.reason))
}

/// Runs a build command, once more after a [`TRANSIENT_FAILURES`] line (see [`Backend::build`]).
async fn run_build(inv: process::Invocation, job: &BuildJob) -> Result<(), BackendError> {
    let what = || format!("building {} for {}", job.tag, job.platform);
    let mut attempt = 1;
    loop {
        let error = match inv.run_logged(&job.log, &job.events).await {
            Ok(()) => return Ok(()),
            Err(e) => BackendError::of_command(what(), e),
        };
        match error {
            BackendError::Transient { why, .. } if attempt < BUILD_ATTEMPTS => {
                attempt += 1;
                job.events.report(crate::events::Event::Retry(&format!(
                    "retry: building {} for {} failed ({why}: the machine, not the \
                     Dockerfile), attempt {attempt}/{BUILD_ATTEMPTS} in {:.1}s",
                    job.tag,
                    job.platform,
                    TRANSIENT_RETRY_DELAY.as_secs_f64()
                )));
                tokio::time::sleep(TRANSIENT_RETRY_DELAY).await;
            }
            error => return Err(error),
        }
    }
}

/// Runs a push command of the node, its output appended to `log`.
async fn run_push(
    inv: process::Invocation,
    destination: &str,
    log: &Path,
) -> Result<(), BackendError> {
    inv.run_logged(log, &crate::events::Events::discard())
        .await
        .map_err(|e| BackendError::of_command(format!("pushing {destination} from the node"), e))
}

/// Runs a command about `image`: an engine that says the image is not there gives
/// [`BackendError::NotFound`].
async fn run_on_image(inv: process::Invocation, image: &str) -> Result<(), BackendError> {
    let out = inv.run_captured().await?;
    if !out.success() && is_not_found(&out.stderr) {
        return Err(BackendError::NotFound {
            image: image.to_string(),
            detail: process::last_lines(&out.stderr, 1).trim().to_string(),
        });
    }
    out.check()?;
    Ok(())
}

/// Runs an export command into a fresh `dir` and checks the layout it wrote.
async fn run_export(inv: process::Invocation, tag: &str, dir: &Path) -> Result<(), BackendError> {
    run_on_image(inv, tag).await.map_err(|e| match e {
        BackendError::Other(e) => {
            BackendError::Other(e.context(format!("exporting {tag} as an OCI layout")))
        }
        e => e,
    })?;
    Ok(check_layout(dir)?)
}

/// Exports through an archive the client writes on this machine (`docker save`, `podman save`):
/// for an engine on another machine, whose own export would write the layout over there. The
/// archive is converted into the OCI layout `dir` by skopeo, layers compressed as a registry push
/// would have them; `source` is skopeo's transport for the archive (`docker-archive`,
/// `oci-archive`).
async fn run_export_archive(
    save: process::Invocation,
    skopeo_env: &NodeEnv,
    source: &str,
    archive: &Path,
    tag: &str,
    dir: &Path,
) -> Result<(), BackendError> {
    let saved = run_on_image(save, tag).await;
    let result = match saved {
        Ok(()) => {
            let Some(skopeo) = process::find_program("skopeo", skopeo_env.get("PATH").as_deref())
            else {
                let _ = std::fs::remove_file(archive);
                return Err(anyhow!(
                    "exporting images from a remote engine needs skopeo, which is not on PATH: \
                     install it with `apt-get install -y skopeo`"
                )
                .into());
            };
            let mut src = std::ffi::OsString::from(format!("{source}:"));
            src.push(archive);
            let mut dest = std::ffi::OsString::from("oci:");
            dest.push(dir);
            let copy = process::Invocation::new(skopeo)
                .args(["copy", "--quiet", "--dest-compress", "--format=v2s2"])
                .arg(src)
                .arg(dest);
            run_export(copy, tag, dir).await
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_file(archive);
    result
}

/// Where an archive for the layout `dir` is written: next to it (a private directory).
fn archive_path(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(".tar");
    PathBuf::from(name)
}

/// The `name:tag` lines a listing command prints, without untagged images.
async fn run_listing(inv: process::Invocation) -> Result<HashSet<String>, BackendError> {
    let out = inv.run_ok().await?;
    Ok(out
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.ends_with(":<none>"))
        .map(str::to_string)
        .collect())
}

/// Whether an inspect-like command found its image: a "not found" answer means no.
async fn run_exists(inv: process::Invocation) -> Result<bool, BackendError> {
    let out = inv.run_captured().await?;
    if out.success() {
        return Ok(true);
    }
    if is_not_found(&out.stderr) {
        return Ok(false);
    }
    out.check()?;
    Ok(true)
}

/// The image id an inspect command prints (`sha256:` added where the engine leaves it out); None
/// for an image that is not there.
async fn run_image_id(inv: process::Invocation) -> Result<Option<String>, BackendError> {
    let out = inv.run_captured().await?;
    if !out.success() && is_not_found(&out.stderr) {
        return Ok(None);
    }
    out.check()?;
    let id = out.stdout.trim();
    Ok((!id.is_empty()).then(|| match id.starts_with("sha256:") {
        true => id.to_string(),
        false => format!("sha256:{id}"),
    }))
}

/// Runs a pull of `reference`.
async fn run_pull(inv: process::Invocation, reference: &str) -> Result<(), BackendError> {
    run_on_image(inv, reference).await.map_err(|e| match e {
        BackendError::Other(e) => BackendError::Other(e.context(format!("pulling {reference}"))),
        e => e,
    })
}

/// `NAME VERSION (NOTE, NOTE)`, what the user is told builds.
fn describe(name: &str, version: &str, notes: &[String]) -> String {
    let mut s = format!("{name} {version}");
    if !notes.is_empty() {
        s.push_str(&format!(" ({})", notes.join(", ")));
    }
    s
}

/// Runs a removal; an image that is not there is no error.
async fn run_remove(inv: process::Invocation) -> Result<(), BackendError> {
    let out = inv.run_captured().await?;
    if out.success() || is_not_found(&out.stderr) {
        return Ok(());
    }
    Ok(out.check()?)
}

/// Why a program could not be used (for the detection message).
#[derive(Debug)]
pub struct NotUsable {
    pub program: &'static str,
    pub reason: String,
    /// How to install or start it, for the local machine.
    pub hint: &'static str,
}

impl NotUsable {
    fn into_error(self) -> anyhow::Error {
        anyhow!(
            "{} cannot be used: {}. {}",
            self.program,
            self.reason,
            self.hint
        )
    }
}

/// Runs a short probe (`buildah --version`, `docker version`), giving up after `timeout`. The
/// probe runs in a process group of its own, ended when it exits (nothing it started may hold its
/// pipes), when it times out, and when cip exits ([`process::end_children`]); it dies with the
/// thread that started it, should cip die before.
fn probe(
    program: &Path,
    args: &[&str],
    env: &NodeEnv,
    timeout: Duration,
) -> Result<std::process::Output, String> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(program);
    for secret in process::SECRET_VARS {
        cmd.env_remove(secret);
    }
    cmd.args(args)
        .envs(env.overrides().iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the closure only calls prctl(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let group = process::ProbeGroup::new(child.id());
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (out, err) = (read_all(stdout), read_all(stderr));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                group.kill();
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "`{} {}` did not answer within {}s",
                    program.display(),
                    args.join(" "),
                    timeout.as_secs()
                ));
            }
            Err(e) => {
                group.kill();
                let _ = child.kill();
                let _ = child.wait();
                break Err(e.to_string());
            }
        }
    };
    // What the probe left behind is ended with it, so the pipes close.
    group.kill();
    drop(group);
    let (stdout, stderr) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    Ok(std::process::Output {
        status: status?,
        stdout,
        stderr,
    })
}

/// Reads `pipe` to its end on a thread of its own (a probe's output, while the probe is watched).
fn read_all<R: std::io::Read + Send + 'static>(
    pipe: Option<R>,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// Whether an error message says the image is not in the store.
fn is_not_found(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("image not known")
        || s.contains("no such image")
        || s.contains("no such object")
        || s.contains("image not found")
}

fn prepare_layout_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.to_string_lossy().contains(':') {
        bail!(
            "cannot export an image layout to {}: the path must not contain ':' (it separates the \
             reference in `oci:PATH:REF`)",
            dir.display()
        );
    }
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "cannot export an image layout to {}: the directory is not empty",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            Ok(())
        }
        Err(e) => Err(anyhow!(e).context(format!("cannot read {}", dir.display()))),
    }
}

/// The export wrote an OCI layout with exactly one manifest in its index.
fn check_layout(dir: &Path) -> anyhow::Result<()> {
    let index = dir.join("index.json");
    let text = std::fs::read_to_string(&index)
        .with_context(|| format!("the export wrote no {}", index.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", index.display()))?;
    let n = json["manifests"].as_array().map(Vec::len).unwrap_or(0);
    if n != 1 || !dir.join("oci-layout").is_file() {
        bail!(
            "the export to {} is not a single-image OCI layout ({n} manifests in index.json)",
            dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_env_overrides_the_process() {
        let env = NodeEnv::new()
            .set("CIP_TEST_NODE_ENV_X", "1")
            .set("CIP_TEST_NODE_ENV_X", "2")
            .set("CIP_TEST_NODE_ENV_EMPTY", " ");
        assert_eq!(env.get("CIP_TEST_NODE_ENV_X").as_deref(), Some("2"));
        assert_eq!(env.get("CIP_TEST_NODE_ENV_EMPTY"), None);
        assert_eq!(env.overrides().len(), 2);
        assert!(env.get("PATH").is_some());
    }

    #[test]
    fn layout_dir_must_be_empty_or_absent() {
        let dir = tempfile::tempdir().unwrap();
        assert!(prepare_layout_dir(&dir.path().join("a/b/c")).is_ok());
        assert!(dir.path().join("a/b").is_dir());
        assert!(prepare_layout_dir(dir.path()).is_err());
        assert!(prepare_layout_dir(&dir.path().join("a")).is_err());
        assert!(prepare_layout_dir(&dir.path().join("a/b")).is_ok());
        assert!(prepare_layout_dir(Path::new("/tmp/x:y")).is_err());
    }

    #[test]
    fn machine_failures_get_their_hint() {
        let tail =
            "STEP 2/2: RUN true\nerror running container: cgroups in hybrid mode not supported\n";
        let hint = "set BUILDAH_ISOLATION=chroot (or pass --isolation chroot after --)";
        assert_eq!(machine_failure_hint(tail), Some(hint));
        assert_eq!(machine_failure_hint("Unknown instruction: \"ECHO\""), None);
        let failure = |tail: &str| {
            anyhow::Error::new(process::LoggedFailure {
                command: "buildah bud".into(),
                status: "exit status: 1".into(),
                log: "x.log".into(),
                tail: tail.into(),
            })
        };
        let what = || "building x for linux/amd64".to_string();
        let e = BackendError::of_command(what(), failure(tail));
        assert!(matches!(e, BackendError::Failed { hint: Some(h), .. } if h == hint));
        let shown = e.to_string();
        assert!(
            shown.starts_with("building x for linux/amd64: `buildah bud` failed"),
            "{shown}"
        );
        assert!(shown.ends_with(&format!("\n  hint: {hint}")), "{shown}");
        let e = BackendError::of_command(what(), failure("no such file"));
        assert!(matches!(e, BackendError::Failed { hint: None, .. }), "{e}");
        assert!(!e.to_string().contains("hint"));
    }

    #[test]
    fn failures_are_classified_by_what_the_command_printed_last() {
        let logged = |tail: &str| {
            anyhow::Error::new(process::LoggedFailure {
                command: "buildah bud".into(),
                status: "exit status: 1".into(),
                log: "x.log".into(),
                tail: tail.into(),
            })
        };
        let transient = BackendError::of_command(
            "building".into(),
            logged("error: Close_Fd sealing memfd copy: Device or resource busy"),
        );
        assert!(
            matches!(transient, BackendError::Transient { why, .. } if why == TRANSIENT_FAILURES[0])
        );
        let other = BackendError::of_command("building".into(), anyhow!("cannot run buildah"));
        assert!(matches!(other, BackendError::Other(_)));
        assert_eq!(other.to_string(), "building: cannot run buildah");
    }
}
