//! Command-line interface: subcommands and their flags, with the original tool's names.
use std::path::{Path, PathBuf};

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::builders::BuilderKind;
use crate::cascade::Level;
use crate::platform::{self, Platform};
use crate::progress::Progress;

pub mod resolve;
mod settings;

pub use crate::options::default_jobs;

#[derive(Debug, Parser)]
#[command(
    name = "cip",
    version,
    about = "Build, publish and version a monorepo of co-dependent, multi-architecture container images",
    long_about = "cip reads PROJECT/contexts/NN-name/ directories (a Dockerfile and an info.edn each), \
                  derives the dependency graph from `FROM ${REGISTRY}/name:tag` references, and builds, \
                  publishes and versions the images in dependency order.",
    after_help = "Run `cip <COMMAND> --help` for the flags of one command. Docs: README.md and docs/."
)]
pub struct Cli {
    /// The project directory (the one that holds contexts/) [default: the current directory or
    /// the nearest parent that holds contexts/]. Before or after the subcommand.
    #[arg(long, short = 'C', value_name = "DIR", global = true)]
    pub project_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The project directory: `-C DIR`, else the current directory or the nearest parent that
    /// holds `contexts/` (as git finds its repository), else the current directory (whose missing
    /// `contexts/` is then reported).
    pub fn project_dir(&self) -> PathBuf {
        if let Some(dir) = &self.project_dir {
            return dir.clone();
        }
        let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        here.ancestors()
            .find(|d| d.join("contexts").is_dir())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }
}

#[derive(Debug, Args, Clone)]
pub struct ProjectArgs {
    /// Platforms of contexts whose info.edn has no :platforms
    #[arg(long, value_name = "P,P", default_value = "linux/amd64,linux/arm64", value_parser = parse_platforms)]
    pub default_platforms: PlatformList,
}

/// A comma-separated platform list given as one flag value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformList(pub Vec<Platform>);

impl std::ops::Deref for PlatformList {
    type Target = [Platform];
    fn deref(&self) -> &[Platform] {
        &self.0
    }
}

/// `--build-arg` / `--label`: `K=V`, K a name (no whitespace, not starting with '-'), V anything.
/// `--builder`: `auto` and the engines of the registry, as `--help` and completions list them.
fn builder_parser() -> impl clap::builder::TypedValueParser<Value = BuilderKind> {
    use clap::builder::TypedValueParser as _;
    let values = BuilderKind::names().map(|(name, help)| match help {
        Some(help) => clap::builder::PossibleValue::new(name).help(help),
        None => clap::builder::PossibleValue::new(name),
    });
    clap::builder::PossibleValuesParser::new(values).try_map(|s| s.parse::<BuilderKind>())
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, _)) if k.starts_with('-') || k.chars().any(|c| c.is_whitespace()) => Err(format!(
            "{s:?}: the key {k:?} is not a name (it must not start with '-' or hold spaces)"
        )),
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// `--secret id=ID,src=PATH` (also `type=`, `env=`): each field K=V with a known key, an id given.
fn parse_secret(s: &str) -> Result<String, String> {
    let fields: Vec<Option<(&str, &str)>> = s.split(',').map(|f| f.split_once('=')).collect();
    let known = ["id", "src", "source", "type", "env", "required"];
    let ok = fields
        .iter()
        .all(|f| f.is_some_and(|(k, v)| known.contains(&k) && !v.is_empty()));
    let has_id = fields.iter().flatten().any(|(k, _)| *k == "id");
    if ok && has_id {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a secret: write id=ID,src=PATH (fields {})",
            known.join(", ")
        ))
    }
}

/// A library enum as clap parses it: its names are the possible values (`--help`, completions,
/// the error for another value), each then read with the enum's own `FromStr`.
fn named<T>(values: impl IntoIterator<Item = PossibleValue>) -> impl TypedValueParser<Value = T>
where
    T: std::str::FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(values).try_map(|name| name.parse::<T>())
}

/// `--progress`: the display modes, each with what it shows.
fn progress_modes() -> impl TypedValueParser<Value = Progress> {
    named(
        Progress::ALL
            .iter()
            .map(|(_, name, help)| PossibleValue::new(*name).help(*help)),
    )
}

/// `cip bump NAME PART`, `--level`: the parts of a version.
fn levels() -> impl TypedValueParser<Value = Level> {
    named(Level::ALL.iter().map(|(_, name)| PossibleValue::new(*name)))
}

fn parse_platforms(s: &str) -> Result<PlatformList, String> {
    platform::parse_list(s).map(PlatformList)
}

/// `--jobs`: 1 to [`MAX_JOBS`](crate::config::file::MAX_JOBS) (a larger number exhausts the
/// scheduler's slots).
fn parse_jobs(s: &str) -> Result<usize, String> {
    let max = crate::config::file::MAX_JOBS;
    s.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| format!("{s:?} is not a number from 1 to {max}"))
}

/// `--stage-namespace`: a repository path under the registry, as the distribution spec has it.
fn parse_namespace(s: &str) -> Result<String, String> {
    let ok = !s.is_empty() && s.split('/').all(crate::project::context::valid_image_name);
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a repository path: one or more components separated by '/', each of \
             lower-case letters and digits joined by single '.', single or double '_', or dashes \
             (e.g. cip-stage or ci/stage)"
        ))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the project: info files, Dockerfile references, cycles, order, stale tags (all problems at once)
    Check {
        #[command(flatten)]
        project: ProjectArgs,
        /// Print the problems as JSON (see docs/json.md)
        #[arg(long)]
        json: bool,
        /// Also check that this builder can build every context (e.g. heredocs need buildah 1.35+);
        /// `auto` detects it as the building commands do. Without it, check is builder-agnostic
        #[arg(long, value_parser = builder_parser(), value_name = "BUILDER")]
        builder: Option<BuilderKind>,
    },
    /// Print the dependency graph: build batches and critical path, or DOT, Mermaid, JSON
    Graph {
        #[command(flatten)]
        project: ProjectArgs,
        /// Output format
        #[arg(long, short, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
        /// The same as --format json
        #[arg(long, conflicts_with = "format")]
        json: bool,
    },
    /// Show what publish / publish-locally would build and why, per image and platform (no builds)
    Plan {
        #[command(flatten)]
        project: ProjectArgs,
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        force: ForceArgs,
        /// Plan what `cip build` would do: the builder's local store, tagged with the local registry
        #[arg(long, conflicts_with = "remote_registry")]
        store: bool,
        /// The builder the steps would run on (found only when something is to be built)
        #[arg(long, value_parser = builder_parser(), default_value_t = BuilderKind::AUTO)]
        builder: BuilderKind,
        /// Print the plan as JSON, with every step (see docs/json.md)
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        farm: FarmArgs,
        #[command(flatten)]
        choices: PlanChoices,
        #[command(flatten)]
        targets: Targets,
    },
    /// List the build nodes of cip.toml: reachable or why not, engine, platforms, job limit, route
    #[command(
        after_help = "Nodes are probed at once, each within CIP_FARM_PROBE_SECONDS (default 10).                       See docs/farm.md."
    )]
    Farm {
        #[command(flatten)]
        project: ProjectArgs,
        /// Only the nodes of this farm of cip.toml
        #[arg(long, value_name = "NAME", conflicts_with = "node")]
        farm: Option<String>,
        /// Only these nodes of cip.toml
        #[arg(long, value_name = "N,N", value_delimiter = ',')]
        node: Vec<String>,
        /// The registry the route is shown for (default: CIP_REMOTE_REGISTRY, cip.toml's [registry]
        /// remote): a node elsewhere cannot push to this machine's loopback, so its images come
        /// back through cip
        #[arg(long, value_name = "HOST[:PORT][/PATH]")]
        remote_registry: Option<String>,
        /// Print the nodes as JSON (see docs/farm.md)
        #[arg(long)]
        json: bool,
    },
    /// Per image: version, what the registry holds, and whether the context drifted since it was published
    Status {
        #[command(flatten)]
        project: ProjectArgs,
        #[command(flatten)]
        target: TargetArgs,
        /// Print as JSON (the plan document, see docs/json.md)
        #[arg(long)]
        json: bool,
        /// List the external bases instead (FROM debian:bookworm, COPY --from=golang:1.22, ...):
        /// each with the digest its registry names now (through [registry.mirrors] of cip.toml)
        /// and the images on it
        #[arg(long)]
        bases: bool,
        #[command(flatten)]
        targets: Targets,
    },
    /// Move every reference to its parent's current version and bump each image whose references moved
    CascadeVersionUpdates {
        #[command(flatten)]
        project: ProjectArgs,
        #[command(flatten)]
        edit: EditArgs,
    },
    /// Bump one image's version and cascade the bump to all its descendants
    Bump {
        #[command(flatten)]
        project: ProjectArgs,
        /// The image to bump
        #[arg(required_unless_present = "changed", conflicts_with = "changed")]
        name: Option<String>,
        /// Which part of the version to bump
        #[arg(value_parser = levels(), default_value = "patch")]
        part: Level,
        /// Bump every image whose context changed since its version was published (asks the registry)
        #[arg(long)]
        changed: bool,
        #[command(flatten)]
        registry: DriftRegistryArgs,
        #[command(flatten)]
        edit: EditArgs,
    },
    /// Build every missing image for all its platforms and push it to a remote registry (CD)
    Publish {
        #[command(flatten)]
        build: BuildArgs,
        /// The registry to publish to, HOST[:PORT][/PATH] (HTTPS; see docs/registry.md)
        /// [default: CIP_REMOTE_REGISTRY, else `remote` under [registry] in cip.toml]
        #[arg(long, value_name = "REG")]
        remote_registry: Option<String>,
        /// Only build the platform of this machine (the same as --platform with it)
        #[arg(long, conflicts_with = "platform")]
        only_local_platform: bool,
        #[command(flatten)]
        stage: StageArgs,
        /// Fan-in (CI): assemble the final index REG/NAME:VERSION (and latest, :tags) of every image
        /// whose declared platforms are all staged (by `--stage` runs) or already published,
        /// mounting the blobs; builds nothing. Images with a platform missing are named and make
        /// the exit code 1
        #[arg(long, conflicts_with_all = ["stage", "platform", "only_local_platform", "force", "force_all"])]
        merge: bool,
        /// With --merge: exit 0 even when some images lack a platform (their index is still not
        /// published: an index never lacks a declared platform)
        #[arg(long, requires = "merge")]
        allow_incomplete: bool,
        /// With --merge: once the merge wrote its indexes, delete the staging tags of every image
        /// published in full (merged now, or before; DELETE of each stage index by digest; a
        /// registry that refuses deletes is said once and the exit code stays as the merge
        /// decided). Incomplete images keep theirs
        #[arg(long, requires = "merge")]
        prune_stage: bool,
    },
    /// Build every missing image for this machine's platform and push it to the local registry
    PublishLocally {
        #[command(flatten)]
        build: BuildArgs,
        /// The local registry, HOST[:PORT][/PATH] (plain HTTP on loopback)
        #[arg(long, value_name = "REG", default_value = "localhost:5000")]
        local_registry: String,
    },
    /// Copy every context's current version (all platforms) from a remote registry to the local one
    UploadAllToLocalRegistry {
        #[command(flatten)]
        project: ProjectArgs,
        /// The registry to copy from, HOST[:PORT][/PATH] [default: CIP_REMOTE_REGISTRY, else
        /// `remote` under [registry] in cip.toml]
        #[arg(long, value_name = "REG")]
        remote_registry: Option<String>,
        /// The registry to copy to
        #[arg(long, value_name = "REG", default_value = "localhost:5000")]
        local_registry: String,
        #[command(flatten)]
        mirror: MirrorArgs,
    },
    /// Pull each context's current version from the local registry into the builder's store, tag it latest
    PullLatestFromLocalRegistry {
        #[command(flatten)]
        project: ProjectArgs,
        #[arg(long, value_name = "REG", default_value = "localhost:5000")]
        local_registry: String,
        /// Whose local store receives the images
        #[arg(long, value_parser = builder_parser(), default_value_t = BuilderKind::AUTO)]
        builder: BuilderKind,
        #[command(flatten)]
        mirror: MirrorArgs,
    },
    /// Pull each context's current version from a remote registry into the builder's store, tag it latest
    PullLatestFromRemoteRegistry {
        #[command(flatten)]
        project: ProjectArgs,
        /// The registry to pull from [default: CIP_REMOTE_REGISTRY, else `remote` under [registry]
        /// in cip.toml]
        #[arg(long, value_name = "REG")]
        remote_registry: Option<String>,
        /// Whose local store receives the images
        #[arg(long, value_parser = builder_parser(), default_value_t = BuilderKind::AUTO)]
        builder: BuilderKind,
        #[command(flatten)]
        mirror: MirrorArgs,
    },
    /// Push an image index made of existing images (per-arch images, other indexes) of one
    /// registry, their blobs mounted into the target repository: `cip merge --tag
    /// REG/app:1.2 REG/app-amd64:1.2 REG/app-arm64:1.2`
    Merge {
        /// The index to write, HOST[:PORT]/REPOSITORY:TAG
        #[arg(long, value_name = "REG/REPO:TAG")]
        tag: String,
        /// The images to take platforms from, HOST[:PORT]/REPO:TAG or REPO@sha256:...; each a
        /// single-platform image (its platform read from its config) or an index
        #[arg(required = true, value_name = "SRC")]
        sources: Vec<String>,
        /// When two sources hold one platform, take it from this one (repeatable)
        #[arg(long, value_name = "SRC")]
        prefer: Vec<String>,
        /// An annotation of the index, KEY=VALUE (repeatable)
        #[arg(long, value_name = "K=V", value_parser = parse_key_value)]
        annotation: Vec<(String, String)>,
        /// Print the index (stdout) and where each platform comes from, write nothing
        #[arg(long)]
        dry_run: bool,
        /// Overwrite --tag even when it holds an index cip published (one that records a context
        /// digest), which cip merge otherwise refuses
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// CI pipelines: what a per-platform fan-out must run (see docs/ci.md)
    Ci {
        #[command(subcommand)]
        command: CiCommand,
    },
    /// Print a shell completion script: `cip completions bash > /etc/bash_completion.d/cip`
    Completions {
        /// The shell to complete in
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print cip's manual page (roff): `cip man > /usr/local/share/man/man1/cip.1`
    Man,
    /// Print the resolved settings (registries, platforms, jobs, builder, progress) and where each
    /// comes from (flag > environment > cip.toml > default), and the nodes, farms and CI runners
    /// of cip.toml
    Config {
        #[command(flatten)]
        project: ProjectArgs,
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Build missing images for this machine's platform into the builder's local store (no push)
    Build {
        #[command(flatten)]
        build: BuildArgs,
        /// Registry name the images are tagged with (REGISTRY/name:VERSION); children find parents by it
        #[arg(long, value_name = "REG", default_value = "localhost:5000")]
        local_registry: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CiCommand {
    /// The platforms with something to build against --remote-registry (leaving out those whose
    /// images are staged already from the current contexts), each with its runner label from
    /// cip.toml's [ci.runners]: `matrix=` and `any=` lines for $GITHUB_OUTPUT, a GitLab dotenv
    /// report (CIP_PLATFORMS, CIP_ANY, CIP_RUNNER_<SLUG>), a GitLab child pipeline (one stage job
    /// per platform and the merge job, extending the jobs of --job-template), or JSON. None:
    /// start no runner
    Matrix {
        #[command(flatten)]
        project: ProjectArgs,
        #[command(flatten)]
        target: MatrixArgs,
        /// What the pipeline reads
        #[arg(long, value_enum, default_value_t = CiFormat::Json)]
        format: CiFormat,
        #[command(flatten)]
        targets: Targets,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CiFormat {
    Github,
    Gitlab,
    /// A GitLab child pipeline (YAML) for `trigger: include: - artifact:`
    GitlabPipeline,
    Json,
}

/// Flags shared by the commands that build.
#[derive(Debug, Args, Clone)]
pub struct BuildArgs {
    #[command(flatten)]
    pub project: ProjectArgs,

    /// Which builder runs the builds
    #[arg(long, value_parser = builder_parser(), default_value_t = BuilderKind::AUTO)]
    pub builder: BuilderKind,

    /// Build only these platforms, of the images that declare them (`publish`: instead of every
    /// declared platform; `publish-locally`, `build`: instead of this machine's)
    #[arg(long, value_name = "P,P", value_parser = parse_platforms)]
    pub platform: Option<PlatformList>,

    /// How many builds run at once, 1 to 1024 [default: number of CPUs, at least 2]
    #[arg(long, short = 'j', value_name = "N", value_parser = parse_jobs)]
    pub jobs: Option<usize>,

    /// Stop at the first failed build and cancel the running ones (the default)
    #[arg(long, overrides_with = "keep_going")]
    pub stop_on_first_error: bool,

    /// Finish every image that does not depend on a failure, then list all failures. Ctrl-C or
    /// SIGTERM still stops the run (exit 130 / 143), cancelling the running builds
    #[arg(long, overrides_with = "stop_on_first_error")]
    pub keep_going: bool,

    #[command(flatten)]
    pub forcing: ForceArgs,

    /// Print what would be built and why, then stop
    #[arg(long)]
    pub dry_run: bool,

    /// Publish even if a published version's context changed without a version bump
    #[arg(long)]
    pub allow_drift: bool,

    /// Tag each index with its version only, leaving `latest` where it is (`latest` never moves
    /// back to an older version anyway)
    #[arg(long)]
    pub no_latest: bool,

    /// Also tag each platform's image NAME:VERSION-ARCH[-VARIANT] in the final repository
    /// (e.g. 1.2.0-amd64, 1.2.0-arm64, 1.2.0-arm-v7), as per-arch tooling expects (not in a
    /// --stage run: `publish --merge --arch-tags` writes them)
    #[arg(long)]
    pub arch_tags: bool,

    /// Build every step anew, without the builder's cache
    #[arg(long)]
    pub no_cache: bool,

    /// Pull base images even if the builder's store has them
    #[arg(long)]
    pub pull: bool,

    /// A build argument for every image, K=V (repeatable; REGISTRY is cip's)
    #[arg(long, value_name = "K=V", value_parser = parse_key_value)]
    pub build_arg: Vec<(String, String)>,

    /// A label for every image, K=V (repeatable)
    #[arg(long, value_name = "K=V", value_parser = parse_key_value)]
    pub label: Vec<(String, String)>,

    /// A build secret, id=ID,src=PATH (repeatable), for `RUN --mount=type=secret,id=ID`
    #[arg(long, value_name = "SPEC", value_parser = parse_secret)]
    pub secret: Vec<String>,

    #[command(flatten)]
    pub connect: ConnectArgs,

    #[command(flatten)]
    pub farm: FarmArgs,

    /// Where builder logs go, one file per image and platform [default: PROJECT/.cip/logs]
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,

    /// Print the final summary as JSON on stdout
    #[arg(long)]
    pub json: bool,

    /// List every image in the summary, the up-to-date ones too (and where credentials were
    /// looked for)
    #[arg(long, short = 'v')]
    pub verbose: bool,

    /// How the run shows its progress (the logs are written in every mode)
    /// [env: CIP_PROGRESS] [default: auto]
    #[arg(long, value_name = "MODE", value_parser = progress_modes())]
    pub progress: Option<Progress>,

    /// The same as --progress quiet
    #[arg(long, short = 'q', conflicts_with = "progress")]
    pub quiet: bool,

    /// Write every image's digests (index, per platform), tags and result as JSON to FILE
    /// (see docs/json.md)
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,

    #[command(flatten)]
    pub targets: Targets,

    /// Extra arguments passed to every builder invocation (after `--`)
    #[arg(last = true, value_name = "BUILDER_ARGS")]
    pub builder_args: Vec<String>,
}

/// The flags of a building run (see [`BuildArgs`]) that change its plan, for `cip plan`: it shows
/// the plan the run with them executes (its tags, build arguments, slots, logs, refusals).
#[derive(Debug, Args, Clone, Default)]
pub struct PlanChoices {
    /// Plan as publish --allow-drift: a drifted published version does not block the run
    #[arg(long)]
    pub allow_drift: bool,
    /// Plan as publish --no-latest: indexes tagged with their version only
    #[arg(long)]
    pub no_latest: bool,
    /// Plan as publish --arch-tags: each platform also tagged NAME:VERSION-ARCH[-VARIANT]
    #[arg(long)]
    pub arch_tags: bool,
    /// A build argument for every image, K=V (repeatable; REGISTRY is cip's)
    #[arg(long, value_name = "K=V", value_parser = parse_key_value)]
    pub build_arg: Vec<(String, String)>,
    /// A label for every image, K=V (repeatable)
    #[arg(long, value_name = "K=V", value_parser = parse_key_value)]
    pub label: Vec<(String, String)>,
    /// A build secret, id=ID,src=PATH (repeatable)
    #[arg(long, value_name = "SPEC", value_parser = parse_secret)]
    pub secret: Vec<String>,
    /// Plan as publish --no-cache
    #[arg(long)]
    pub no_cache: bool,
    /// Plan as publish --pull
    #[arg(long)]
    pub pull: bool,
    /// How many builds would run at once, 1 to 1024 [default: number of CPUs, at least 2]
    #[arg(long, short = 'j', value_name = "N", value_parser = parse_jobs)]
    pub jobs: Option<usize>,
    /// Where builder logs would go [default: PROJECT/.cip/logs]
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
}

/// What a run rebuilds although its version is published.
#[derive(Debug, Args, Clone, Default)]
pub struct ForceArgs {
    /// Rebuild and republish this image even if its version is published (repeatable); with
    /// --with-descendants, every image below it too. Without it, a published version tag is
    /// never overwritten
    #[arg(long, value_name = "NAME")]
    pub force: Vec<String>,
    /// Rebuild and republish every image of the run (the ones named, with --with-descendants
    /// those below them; none named: all), published or not: for builds that differ by what the
    /// Dockerfiles do not say, e.g. another `--build-arg USER_UID_GID=1001` or CA certificate
    #[arg(long, conflicts_with = "force")]
    pub force_all: bool,
}

/// Which build nodes a run uses: a farm of cip.toml, some of its nodes, or (without these flags)
/// the local builder. See docs/farm.md.
#[derive(Debug, Args, Clone, Default)]
pub struct FarmArgs {
    /// Build on the nodes of this farm of cip.toml ([farms.NAME]): each step on a node native for
    /// its platform, the one with the most free slots, else (with a warning) one that emulates it
    #[arg(long, value_name = "NAME", conflicts_with = "node")]
    pub farm: Option<String>,
    /// Build on these nodes of cip.toml ([nodes.NAME]), an ad-hoc farm
    #[arg(long, value_name = "N,N", value_delimiter = ',')]
    pub node: Vec<String>,
    /// Refuse, before any build starts, to build a platform that no node runs natively
    #[arg(long)]
    pub native_only: bool,
}

/// Which images a run is about: all of them, or the ones named.
#[derive(Debug, Args, Clone, Default)]
pub struct Targets {
    /// Only these images (names or context directories), plus the parents they need that are not
    /// published yet [default: every image]
    #[arg(value_name = "IMAGE")]
    pub images: Vec<String>,
    /// With the images named, every image below them too
    #[arg(long, requires = "images")]
    pub with_descendants: bool,
}

/// Which registry a read-only command asks, as `publish` (remote) or `publish-locally` would.
#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// Ask this registry, as `publish` would (all platforms); without it (and --remote), the
    /// local registry
    #[arg(long, value_name = "REG")]
    pub remote_registry: Option<String>,
    /// Ask the remote registry of the configuration (CIP_REMOTE_REGISTRY, cip.toml), as `publish`
    /// would
    #[arg(long, conflicts_with = "remote_registry")]
    pub remote: bool,
    /// The local registry of `publish-locally`
    #[arg(long, value_name = "REG", default_value = "localhost:5000")]
    pub local_registry: String,
    /// Only the platform of this machine (the same as --platform with it)
    #[arg(long, conflicts_with = "platform")]
    pub only_local_platform: bool,
    /// Only these platforms, of the images that declare them
    #[arg(long, value_name = "P,P", value_parser = parse_platforms)]
    pub platform: Option<PlatformList>,
    #[command(flatten)]
    pub stage: StageArgs,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// The registry `cip bump --changed` asks for drift: only which registry and how to reach it
/// (platforms and staging do not change what drifted; bump builds nothing). A bump of one NAME
/// asks no registry, so these conflict with NAME (`requires = "changed"` would not do: clap counts
/// a flag's `false` default as present).
#[derive(Debug, Args, Clone)]
pub struct DriftRegistryArgs {
    /// With --changed: ask this registry, as `publish` would; without it (and --remote), the
    /// local registry
    #[arg(long, value_name = "REG", conflicts_with = "name")]
    pub remote_registry: Option<String>,
    /// With --changed: ask the remote registry of the configuration (CIP_REMOTE_REGISTRY,
    /// cip.toml)
    #[arg(long, conflicts_with_all = ["remote_registry", "name"])]
    pub remote: bool,
    /// With --changed: the local registry of `publish-locally`
    #[arg(
        long,
        value_name = "REG",
        default_value = "localhost:5000",
        conflicts_with = "name"
    )]
    pub local_registry: String,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

impl DriftRegistryArgs {
    /// The read-only target drift is looked up in: every platform, the final repositories.
    pub fn target(&self) -> TargetArgs {
        TargetArgs {
            remote_registry: self.remote_registry.clone(),
            remote: self.remote,
            local_registry: self.local_registry.clone(),
            only_local_platform: false,
            platform: None,
            stage: StageArgs {
                stage: false,
                stage_namespace: String::new(),
            },
            connect: self.connect.clone(),
        }
    }
}

/// The registry `cip ci matrix` asks: the one `publish` publishes to, with the platforms the
/// pipeline has runners for.
#[derive(Debug, Args, Clone)]
pub struct MatrixArgs {
    /// The registry the pipeline publishes to, HOST[:PORT][/PATH] [default: CIP_REMOTE_REGISTRY,
    /// else `remote` under [registry] in cip.toml]
    #[arg(long, value_name = "REG")]
    pub remote_registry: Option<String>,
    /// Only these platforms, of the images that declare them (those the pipeline has runners for)
    #[arg(long, value_name = "P,P", value_parser = parse_platforms)]
    pub platform: Option<PlatformList>,
    /// The staging namespace the stage jobs use: a platform whose images are all staged there
    /// from the current contexts has nothing left to build
    #[arg(long, value_name = "NS", default_value = "cip-stage")]
    pub stage_namespace: String,
    /// With --format gitlab-pipeline: the YAML file of the hidden jobs `.cip-stage` and
    /// `.cip-merge` that the generated jobs extend (copied into the child pipeline)
    #[arg(long, value_name = "FILE")]
    pub job_template: Option<PathBuf>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Per-platform fan-out (CI): each runner stages its platform, a last job merges.
#[derive(Debug, Args, Clone)]
pub struct StageArgs {
    /// Build one platform (--platform P, or --only-local-platform) into the staging namespace
    /// REG/NS/<os>-<arch>[-<variant>]/NAME:VERSION, with REGISTRY pointing there so children find
    /// the same platform's parents; parents already published in final form are linked there, not
    /// rebuilt. Tags nothing in the final repositories: `publish --merge` does
    #[arg(long)]
    pub stage: bool,
    /// The staging namespace under the registry (with --stage)
    #[arg(long, value_name = "NS", default_value = "cip-stage", value_parser = parse_namespace)]
    pub stage_namespace: String,
}

impl StageArgs {
    /// The namespace root NS, when staging.
    pub fn namespace(&self) -> Option<String> {
        self.stage.then(|| self.stage_namespace.clone())
    }
}

/// How to reach registries: TLS trust, plain HTTP, credentials.
#[derive(Debug, Args, Clone)]
pub struct ConnectArgs {
    /// Allow plain HTTP to this registry host[:port] (loopback addresses always may)
    #[arg(long, value_name = "HOST")]
    pub insecure_registry: Vec<String>,
    /// Trust this CA certificate (PEM), in addition to the system roots and SSL_CERT_FILE
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
    /// Access registries anonymously (ignore configured credentials)
    #[arg(long)]
    pub no_login: bool,
}

/// Flags of the mirroring commands.
#[derive(Debug, Args, Clone)]
pub struct MirrorArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Fail (exit 1) when an image version is missing on the source registry
    #[arg(long)]
    pub strict: bool,
    /// Print a JSON document on stdout: per image its result code, digest, platforms, what was
    /// copied and how long it took (see docs/json.md); the table goes to stderr
    #[arg(long)]
    pub json: bool,
}

/// Flags of the commands that edit the project's files.
#[derive(Debug, Args, Clone)]
pub struct EditArgs {
    /// How descendants are bumped
    #[arg(long, value_parser = levels(), default_value = "patch")]
    pub level: Level,
    /// Print a unified diff of every planned edit and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Keep the original of each rewritten file as FILE.bk (FILE.bk.1, .bk.2, ... if that exists)
    #[arg(long)]
    pub backup: bool,
    /// Print what was (or, with --dry-run, would be) bumped and rewritten as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Text,
    Dot,
    Mermaid,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_enums_parse_by_their_names_and_list_them_when_wrong() {
        use clap::Parser as _;
        let cli = Cli::try_parse_from(["cip", "bump", "app", "minor", "--level", "major"]).unwrap();
        let Command::Bump { part, edit, .. } = cli.command else {
            panic!("bump")
        };
        assert_eq!((part, edit.level), (Level::Minor, Level::Major));
        let cli = Cli::try_parse_from(["cip", "build", "--progress", "plain"]).unwrap();
        let Command::Build { build, .. } = cli.command else {
            panic!("build")
        };
        assert_eq!(build.progress, Some(Progress::Plain));
        let e = Cli::try_parse_from(["cip", "build", "--progress", "PLAIN"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[possible values: auto, tty, plain, quiet]"),
            "{e}"
        );
        let e = Cli::try_parse_from(["cip", "bump", "app", "huge"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("[possible values: patch, minor, major]"), "{e}");
    }

    #[test]
    fn jobs_are_from_1_to_the_maximum() {
        assert_eq!(parse_jobs("4"), Ok(4));
        for bad in ["0", "1025", "2305843009213693952", "-1", "x", ""] {
            let e = parse_jobs(bad).unwrap_err();
            assert!(e.contains("from 1 to 1024"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_stage_namespace_is_a_repository_path() {
        for good in ["cip-stage", "ci/stage", "a.b__c", "x1/y-2"] {
            assert_eq!(parse_namespace(good).as_deref(), Ok(good));
        }
        for bad in [
            "", "/", "a/", "/a", "a//b", "Stage", "a b", "-a", "a..b", "../x",
        ] {
            let e = parse_namespace(bad).unwrap_err();
            assert!(e.contains("separated by '/'"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn build_args_labels_and_secrets_are_checked() {
        assert_eq!(
            parse_key_value("A=b c=d"),
            Ok(("A".to_string(), "b c=d".to_string()))
        );
        assert!(parse_key_value("-x=1").unwrap_err().contains("'-'"));
        assert!(parse_key_value("a b=1").is_err());
        assert!(parse_key_value("=1").is_err());
        assert!(parse_secret("id=npm,src=/tmp/npmrc").is_ok());
        assert!(parse_secret("id=tok,env=TOKEN").is_ok());
        for bad in ["src=/x", "id=", "--output=/x", "id=a,--x", "id=a,evil=1"] {
            assert!(parse_secret(bad).is_err(), "{bad}");
        }
    }
}
