//! Build backends: buildah, podman and docker, each building one platform of one image into its local
//! store and exporting it as an OCI image layout that cip pushes itself.
//!
//! A [`Builder`] is one resolved backend instance (a "node"): the program, its version, the global
//! options and environment it runs with, and the platforms it runs natively. Several can exist at once
//! (a local buildah, docker daemons reached through different `DOCKER_HOST`s), each configured by a
//! [`NodeEnv`] that overrides the process environment.
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
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};

use crate::platform::Platform;

mod buildah;
pub mod buildkit;
pub mod capabilities;
mod docker;
pub mod emulation;
pub mod process;

pub use docker::DOCKER_PROGRAM_ENV;
pub use process::{hurry_cancelled, wait_for_cancelled};

/// Which program builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BuilderKind {
    /// The first of buildah, podman, docker found on PATH (docker only if its daemon answers)
    Auto,
    Buildah,
    Podman,
    Docker,
}

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

/// A failed build's error with the [`MACHINE_FAILURES`] hint appended, if one applies.
fn with_machine_hint(error: anyhow::Error) -> anyhow::Error {
    let hint = error
        .downcast_ref::<process::LoggedFailure>()
        .and_then(|f| machine_failure_hint(&f.tail));
    match hint {
        Some(hint) => anyhow!("{error:#}\n  hint: {hint}"),
        None => error,
    }
}

/// Tries of a build whose failure is in [`TRANSIENT_FAILURES`].
const BUILD_ATTEMPTS: u32 = 2;
/// Pause before such a retry, for the load behind it to ease.
const TRANSIENT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// The [`TRANSIENT_FAILURES`] line the last lines of a failed build show, if any.
fn transient_failure(error: &anyhow::Error) -> Option<&'static str> {
    let failure = error.downcast_ref::<process::LoggedFailure>()?;
    TRANSIENT_FAILURES
        .iter()
        .copied()
        .find(|line| failure.tail.contains(line))
}

/// Environment variable with extra global options for buildah.
pub const BUILDAH_GLOBAL_ARGS_ENV: &str = "CIP_BUILDAH_GLOBAL_ARGS";
/// Environment variable with extra global options for podman.
pub const PODMAN_GLOBAL_ARGS_ENV: &str = "CIP_PODMAN_GLOBAL_ARGS";
/// How long `docker version` may take to answer during detection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// Settings of one build node: variables that override the process environment, both for what
/// [`Builder::detect_with`] reads (`STORAGE_DRIVER`, `CIP_BUILDAH_GLOBAL_ARGS`, `DOCKER_HOST`, ..) and
/// for every process the builder starts (`BUILDAH_ISOLATION`, `TMPDIR`, ..).
#[derive(Debug, Clone, Default)]
pub struct NodeEnv {
    vars: Vec<(String, String)>,
}

impl NodeEnv {
    /// No overrides: the process environment as it is.
    pub fn new() -> Self {
        NodeEnv::default()
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
            .or_else(|| std::env::var(key).ok())
            .filter(|v| !v.trim().is_empty())
    }

    /// The overrides, given to every process of the node.
    pub fn overrides(&self) -> &[(String, String)] {
        &self.vars
    }
}

/// The program behind a [`Builder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Buildah,
    Podman,
    Docker,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Buildah => "buildah",
            Engine::Podman => "podman",
            Engine::Docker => "docker",
        }
    }
}

/// A resolved build backend: one program on one node.
#[derive(Debug, Clone)]
pub struct Builder {
    engine: Engine,
    /// The program as found on PATH.
    program: PathBuf,
    version: String,
    /// Options before the subcommand (buildah/podman).
    global_args: Vec<String>,
    env: NodeEnv,
    native: Vec<Platform>,
    /// docker: whether `docker buildx` is available (else `DOCKER_BUILDKIT=1 docker build`).
    buildx: bool,
    /// docker: the daemon address when not the default socket.
    docker_host: Option<String>,
    /// docker: the daemon has no bridge network, builds get `--network=host`.
    host_network: bool,
    /// buildah/podman: the store's graph root and run root, from which private per-platform stores
    /// are derived (see [`Builder::for_platform`]).
    store: Option<StoreRoots>,
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

impl Builder {
    /// Finds the builder `kind` asks for, configured from the process environment.
    /// `Auto` tries buildah, then podman, then docker (only if its daemon answers).
    pub fn detect(kind: BuilderKind) -> anyhow::Result<Builder> {
        Builder::detect_with(kind, NodeEnv::new())
    }

    /// [`detect`](Self::detect) for a node configured by `env` (e.g. a `DOCKER_HOST`, a private
    /// buildah store through `CIP_BUILDAH_GLOBAL_ARGS`).
    pub fn detect_with(kind: BuilderKind, env: NodeEnv) -> anyhow::Result<Builder> {
        match kind {
            BuilderKind::Buildah => {
                buildah::detect(Engine::Buildah, env).map_err(|e| e.into_error())
            }
            BuilderKind::Podman => buildah::detect(Engine::Podman, env).map_err(|e| e.into_error()),
            BuilderKind::Docker => docker::detect(env).map_err(|e| e.into_error()),
            BuilderKind::Auto => {
                let mut tried = Vec::new();
                for engine in [Engine::Buildah, Engine::Podman] {
                    match buildah::detect(engine, env.clone()) {
                        Ok(b) => return Ok(b),
                        Err(e) => tried.push(e),
                    }
                }
                match docker::detect(env) {
                    Ok(b) => return Ok(b),
                    Err(e) => tried.push(e),
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
        }
    }

    /// Which program this is.
    pub fn kind(&self) -> BuilderKind {
        match self.engine {
            Engine::Buildah => BuilderKind::Buildah,
            Engine::Podman => BuilderKind::Podman,
            Engine::Docker => BuilderKind::Docker,
        }
    }

    /// The version the program reports, e.g. `1.28.2`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// What the user is told builds, e.g. `buildah 1.28.2` or
    /// `docker 20.10.24 (BuildKit, unix:///run/x.sock)`.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {}", self.engine.name(), self.version);
        let mut notes = Vec::new();
        match self.engine {
            Engine::Buildah | Engine::Podman => {
                if !self.global_args.is_empty() {
                    notes.push(self.global_args.join(" "));
                }
                if let Some(iso) = self.env.get("BUILDAH_ISOLATION") {
                    notes.push(format!("isolation {iso}"));
                }
            }
            Engine::Docker => {
                notes.push(if self.buildx { "buildx" } else { "BuildKit" }.to_string());
                if self.host_network {
                    notes.push("--network=host: the daemon has no bridge network".to_string());
                }
                if let Some(host) = &self.docker_host {
                    notes.push(host.clone());
                }
            }
        }
        if !notes.is_empty() {
            s.push_str(&format!(" ({})", notes.join(", ")));
        }
        s
    }

    /// This builder working in `store` (buildah/podman; docker is returned unchanged).
    ///
    /// buildah and podman keep one image per name in a store: two builds for different platforms
    /// that pull the same parent (`FROM reg/base:1.0.0`) in one store move that name between the
    /// platforms' images under each other's feet ("image not known"). So every pushed platform but
    /// the node's native one builds in a store of its own ([`Builder::platform_store`]).
    pub fn with_store(&self, store: &StoreRoots) -> Builder {
        let mut b = self.clone();
        if matches!(self.engine, Engine::Buildah | Engine::Podman) {
            // The last `--root`/`--runroot` wins, so these override the user's global options.
            b.global_args.extend([
                "--root".to_string(),
                store.graph_root.display().to_string(),
                "--runroot".to_string(),
                store.run_root.display().to_string(),
            ]);
        }
        b
    }

    /// The store of its own a pushed build of `platform` uses (see [`Builder::with_store`]): none
    /// for the node's native platform, nor for docker (BuildKit resolves parents per platform).
    pub fn platform_store(&self, platform: &Platform) -> Option<StoreRoots> {
        let store = self.store.as_ref()?;
        (!self.native.contains(platform)).then(|| store.for_platform(platform))
    }

    /// The platforms this builder runs without emulation.
    pub fn native_platforms(&self) -> Vec<Platform> {
        self.native.clone()
    }

    /// Builds one platform of one image into the local store as `job.tag`. The builder's output is
    /// appended to `job.log`; a failure quotes the command and the log's last lines.
    ///
    /// A build that fails for a reason of the machine, not of the Dockerfile ([`TRANSIENT_FAILURES`]),
    /// is run once more, after a retry line; the log keeps both attempts.
    pub async fn build(&self, job: &BuildJob) -> anyhow::Result<()> {
        let inv = match self.engine {
            Engine::Buildah | Engine::Podman => buildah::build(self, job),
            Engine::Docker => docker::build(self, job),
        };
        let mut attempt = 1;
        loop {
            let result = inv.run_logged(&job.log).await;
            let transient = result.as_ref().err().and_then(transient_failure);
            match transient {
                Some(why) if attempt < BUILD_ATTEMPTS => {
                    attempt += 1;
                    crate::progress::eprint_line(&format!(
                        "retry: building {} for {} failed ({why}: the machine, not the \
                         Dockerfile), attempt {attempt}/{BUILD_ATTEMPTS} in {:.1}s",
                        job.tag,
                        job.platform,
                        TRANSIENT_RETRY_DELAY.as_secs_f64()
                    ));
                    tokio::time::sleep(TRANSIENT_RETRY_DELAY).await;
                }
                _ => {
                    return result
                        .map_err(with_machine_hint)
                        .with_context(|| format!("building {} for {}", job.tag, job.platform))
                }
            }
        }
    }

    /// Writes the single-platform image `tag` of the local store as an OCI image layout (`oci-layout`,
    /// `index.json` listing its manifest, `blobs/sha256/..`) into `dir`, which must not exist or be
    /// empty.
    pub async fn export_oci_layout(&self, tag: &str, dir: &Path) -> anyhow::Result<()> {
        prepare_layout_dir(dir)?;
        let inv = match self.engine {
            Engine::Buildah | Engine::Podman => buildah::export(self, tag, dir),
            Engine::Docker => docker::export(self, tag, dir)?,
        };
        inv.run_ok()
            .await
            .with_context(|| format!("exporting {tag} as an OCI layout"))?;
        check_layout(dir)
    }

    /// Every `name:tag` in the local store, from one listing: one process instead of one per image.
    /// Names are as the builder prints them, which may be normalised differently from how cip spells
    /// a tag (`docker.io/library/...`): a listed tag exists, an unlisted one is asked about with
    /// [`Self::image_exists`].
    pub async fn local_tags(&self) -> anyhow::Result<std::collections::HashSet<String>> {
        let inv = match self.engine {
            Engine::Buildah | Engine::Podman => buildah::list_tags(self),
            Engine::Docker => docker::list_tags(self),
        };
        let out = inv.run_ok().await?;
        Ok(out
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.ends_with(":<none>"))
            .map(str::to_string)
            .collect())
    }

    /// Whether `tag` is in the local store.
    pub async fn image_exists(&self, tag: &str) -> anyhow::Result<bool> {
        let inv = match self.engine {
            Engine::Buildah | Engine::Podman => buildah::image_exists(self, tag),
            Engine::Docker => docker::image_exists(self, tag),
        };
        let out = inv.run_captured().await?;
        if out.success() {
            return Ok(true);
        }
        if self.engine == Engine::Podman
            && out.status.code() == Some(1)
            && out.stderr.trim().is_empty()
        {
            return Ok(false); // `podman image exists`: 1 = absent
        }
        if is_not_found(&out.stderr) {
            return Ok(false);
        }
        out.check()?;
        Ok(true)
    }

    /// Removes the tag `tag` from the local store (the image itself once no tag is left). A tag that
    /// is not there is not an error.
    pub async fn remove_image(&self, tag: &str) -> anyhow::Result<()> {
        let inv = match self.engine {
            Engine::Buildah | Engine::Podman => buildah::remove(self, tag),
            Engine::Docker => docker::remove(self, tag),
        };
        let out = inv.run_captured().await?;
        if out.success() || is_not_found(&out.stderr) {
            return Ok(());
        }
        out.check()
    }

    /// Gives the image `src` of the local store the additional tag `dst`.
    pub async fn tag_image(&self, src: &str, dst: &str) -> anyhow::Result<()> {
        let inv = match self.engine {
            Engine::Buildah | Engine::Podman => buildah::tag(self, src, dst),
            Engine::Docker => docker::tag(self, src, dst),
        };
        inv.run_ok().await.map(|_| ())
    }

    /// Pulls `reference` (of `platform` if given) into the local store. For docker, plain-HTTP and
    /// private-CA registries are daemon settings (`insecure-registries`, `/etc/docker/certs.d`), so
    /// `access` is not used there.
    pub async fn pull(
        &self,
        reference: &str,
        platform: Option<&Platform>,
        access: &RegistryAccess,
    ) -> anyhow::Result<()> {
        let inv = match self.engine {
            Engine::Buildah | Engine::Podman => buildah::pull(self, reference, platform, access),
            Engine::Docker => docker::pull(self, reference, platform).envs_owned(access.env()),
        };
        inv.run_ok()
            .await
            .map(|_| ())
            .with_context(|| format!("pulling {reference}"))
    }

    /// A call of this builder's program: its global options and node environment applied.
    fn invocation(&self) -> process::Invocation {
        process::Invocation::new(&self.program)
            .args(&self.global_args)
            .envs(self.env.overrides())
    }
}

/// Why a program could not be used (for the detection message).
struct NotUsable {
    program: &'static str,
    reason: String,
    hint: &'static str,
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

/// Runs a short probe (`buildah --version`, `docker version`), giving up after `timeout`.
fn probe(
    program: &Path,
    args: &[&str],
    env: &NodeEnv,
    timeout: Duration,
) -> Result<std::process::Output, String> {
    use std::io::Read;
    let mut cmd = std::process::Command::new(program);
    for secret in process::SECRET_VARS {
        cmd.env_remove(secret);
    }
    let mut child = cmd
        .args(args)
        .envs(env.overrides().iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
                if let Some(mut o) = child.stdout.take() {
                    let _ = o.read_to_end(&mut stdout);
                }
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_end(&mut stderr);
                }
                return Ok(std::process::Output {
                    status,
                    stdout,
                    stderr,
                });
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{} {}` did not answer within {}s",
                    program.display(),
                    args.join(" "),
                    timeout.as_secs()
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
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
        let shown = format!("{:#}", with_machine_hint(failure(tail)));
        assert!(shown.starts_with("`buildah bud` failed"), "{shown}");
        assert!(shown.ends_with(&format!("\n  hint: {hint}")), "{shown}");
        let shown = format!("{:#}", with_machine_hint(failure("no such file")));
        assert!(!shown.contains("hint"), "{shown}");
    }
}
