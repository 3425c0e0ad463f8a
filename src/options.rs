//! The resolved values of a command line, as the stages below `cli/` and `commands/` take them:
//! plain data, no parser types. The command line's `resolve` builds them once, from the flags,
//! the environment (`config::RunConfig`) and cip.toml (`config::settings`), so every value here is
//! final: a default is filled in, and a value a command needs (its registry) is there by type.
use std::path::PathBuf;

use crate::builders::{BuilderKind, NodeEnv};
use crate::farm::probe::Probing;
use crate::farm::Selection;
use crate::platform::Platform;
use crate::progress::Progress;
use crate::registry::retry::RetryPolicy;
use crate::registry::timeouts::Timeouts;

/// How many builds run at once by default: the number of CPUs, at least 2.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2)
}

/// The project a command acts on.
#[derive(Debug, Clone)]
pub struct ProjectOptions {
    /// The directory that holds `contexts/`.
    pub dir: PathBuf,
    /// The platforms of contexts whose info.edn declares none.
    pub default_platforms: Vec<Platform>,
}

/// Which images a run is about: all of them, or the ones named.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// Names or context directories; empty: every image.
    pub images: Vec<String>,
    /// With the images named, every image below them too.
    pub with_descendants: bool,
}

/// The flags of a building run that change its plan, as `cip plan` is given them: it shows the plan
/// the run with them executes.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub allow_drift: bool,
    pub no_latest: bool,
    pub arch_tags: bool,
    /// `--build-arg K=V`.
    pub build_args: Vec<(String, String)>,
    /// `--label K=V`.
    pub labels: Vec<(String, String)>,
    /// `--secret id=ID,src=PATH`.
    pub secrets: Vec<String>,
    pub no_cache: bool,
    pub pull: bool,
    /// The local builder's slots.
    pub jobs: usize,
    /// Where builder logs would go.
    pub log_dir: PathBuf,
    /// Where this machine's kernel keeps its binfmt handlers (`CIP_BINFMT_DIR`).
    pub binfmt_dir: PathBuf,
}

/// How to reach registries: what the command line says (TLS trust, plain HTTP, credentials) and
/// what the environment says (retries, timeouts, `SSL_CERT_FILE`, where private files go).
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Hosts that may be reached over plain HTTP (`--insecure-registry`).
    pub insecure_registries: Vec<String>,
    /// CA certificates trusted beside the system roots (`--ca-cert`); builders get these.
    pub ca_certs: Vec<PathBuf>,
    /// Access registries anonymously (`--no-login`).
    pub no_login: bool,
    /// A CA certificate cip trusts too (`SSL_CERT_FILE`).
    pub ssl_cert_file: Option<PathBuf>,
    pub retry: RetryPolicy,
    pub timeouts: Timeouts,
    /// Where the private directories handed to builders go (`TMPDIR`, see `scratch`).
    pub temp_dir: PathBuf,
    /// Where connecting reports (retries, which credentials are used) for a command that has no
    /// display of its own; a building run reports to its run's display instead.
    pub events: crate::events::Events,
}

impl Default for ConnectOptions {
    /// No flags and cip's defaults (a library user, a test).
    fn default() -> Self {
        ConnectOptions {
            insecure_registries: Vec::new(),
            ca_certs: Vec::new(),
            no_login: false,
            ssl_cert_file: None,
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
            temp_dir: std::env::temp_dir(),
            events: crate::events::Events::default(),
        }
    }
}

/// What a run rebuilds although its version is published.
#[derive(Debug, Clone, Default)]
pub struct Forcing {
    /// `--force NAME`: these images (with `--with-descendants`, the ones below them too).
    pub images: Vec<String>,
    /// `--force-all`: every image of the run.
    pub all: bool,
}

/// Which build nodes a run uses: a farm of cip.toml, some of its nodes, or (without these) the
/// local builder, and how either is found.
#[derive(Debug, Clone)]
pub struct FarmOptions {
    /// `--farm NAME`.
    pub farm: Option<String>,
    /// `--node N,N`: an ad-hoc farm.
    pub nodes: Vec<String>,
    /// Refuse a platform that no node runs natively.
    pub native_only: bool,
    /// The local builder's environment (the run's).
    pub local: NodeEnv,
    /// How a farm's nodes are probed.
    pub probing: Probing,
}

impl FarmOptions {
    /// The nodes these options choose, None for the local builder.
    pub fn selection(&self) -> Option<Selection> {
        match (&self.farm, self.nodes.is_empty()) {
            (Some(f), _) => Some(Selection::Farm(f.clone())),
            (None, false) => Some(Selection::Nodes(self.nodes.clone())),
            (None, true) => None,
        }
    }
}

/// The registry a read-only command (`plan`, `status`, `bump --changed`, `ci matrix`) plans
/// against, as `publish` (remote) or `publish-locally` (local) would.
#[derive(Debug, Clone)]
pub struct TargetOptions {
    /// The remote registry asked; None: the local one.
    pub remote_registry: Option<String>,
    pub local_registry: String,
    /// Only the platform of this machine.
    pub only_local_platform: bool,
    /// Only these platforms, of the images that declare them.
    pub platforms: Option<Vec<Platform>>,
    /// `--stage`: the staging namespace root asked (`cip-stage`).
    pub stage: Option<String>,
    pub connect: ConnectOptions,
    /// Registry lookups at once while planning.
    pub query_concurrency: usize,
}

/// A building run (`publish`, `publish-locally`, `build`): everything but where it publishes
/// (`run::Mode`).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub project: ProjectOptions,
    /// Which builder runs the builds (without a farm).
    pub builder: BuilderKind,
    /// Only these platforms, of the images that declare them.
    pub platforms: Option<Vec<Platform>>,
    /// Builds at once, at least 1.
    pub jobs: usize,
    /// Finish what does not depend on a failure (`--keep-going`), else stop at the first.
    pub keep_going: bool,
    pub forcing: Forcing,
    /// Show the plan, build nothing.
    pub dry_run: bool,
    pub allow_drift: bool,
    pub no_latest: bool,
    pub arch_tags: bool,
    pub no_cache: bool,
    pub pull: bool,
    /// `--build-arg K=V` for every image.
    pub build_args: Vec<(String, String)>,
    /// `--label K=V` for every image.
    pub labels: Vec<(String, String)>,
    /// `--secret id=ID,src=PATH` specs.
    pub secrets: Vec<String>,
    pub connect: ConnectOptions,
    pub farm: FarmOptions,
    /// Where builder logs go.
    pub log_dir: PathBuf,
    /// Print the summary as JSON on stdout.
    pub json: bool,
    /// List every image in the summary.
    pub verbose: bool,
    /// The display mode, resolved (never `auto`).
    pub progress: Progress,
    pub metadata_file: Option<PathBuf>,
    pub targets: Targets,
    /// Extra arguments for every builder invocation.
    pub builder_args: Vec<String>,
    /// Registry lookups at once while planning.
    pub query_concurrency: usize,
    /// Where this machine's kernel registers emulators (`CIP_BINFMT_DIR`).
    pub binfmt_dir: PathBuf,
}

/// The mirroring commands (`upload-all-to-local-registry`, `pull-latest-from-*-registry`).
#[derive(Debug, Clone)]
pub struct MirrorOptions {
    pub connect: ConnectOptions,
    /// Exit 1 when an image version is missing on the source registry.
    pub strict: bool,
    /// Print a JSON document on stdout (the table on stderr then).
    pub json: bool,
    /// The environment of the builder that receives pulled images.
    pub builder_env: NodeEnv,
}
