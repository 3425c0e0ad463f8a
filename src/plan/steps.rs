//! The step graph: every decision a run makes, taken before it runs. Each step builds one platform
//! of one image on one node, or assembles one image's index; it says where its output goes, which
//! log it writes, which build arguments it passes and which steps it waits for. `cip plan --json`
//! prints this value and the executor (`src/execute/`) runs it as it is.
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::ImagePlan;
use crate::builders::{Backend, StoreRoots};
use crate::farm::place::{Placement, Placer, Seat};
use crate::farm::route::{self, NodeReach};
pub use crate::farm::Route;
use crate::platform::Platform;
use crate::project::Project;

/// An image of the plan: an index into [`Plan::images`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ImageId(pub usize);

/// A step of the plan: an index into [`Plan::steps`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct StepId(pub usize);

/// A build node of the plan: an index into [`Plan::nodes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct NodeId(pub usize);

/// What a run does, in full.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Every image of the project in build order, built or not.
    #[serde(skip)]
    pub images: Vec<ImagePlan>,
    /// The registry, or the registry name of the local store's tags, the images go to.
    #[serde(skip)]
    pub destination: String,
    /// The nodes that build (none when nothing is built).
    pub nodes: Vec<Node>,
    pub steps: Vec<Step>,
    /// What the placement of steps on a farm warns about: a platform no node runs natively,
    /// built under emulation (once per platform and node).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Builds no node can take (no node runs or emulates the platform): the run refuses to start.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unplaced: Vec<String>,
    /// Every reason the run refuses to start, in the order it checks them: images that cannot be
    /// built (see [`ImagePlan::blocked`]), then what [`super::refusals`] adds (drift, unplaced
    /// builds, `--native-only`, what a node's builder lacks).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<Blocked>,
    /// What a node's builder warns about the Dockerfiles it builds (not refusals), shown before
    /// the builds start.
    #[serde(skip)]
    pub builder_warnings: Vec<String>,
}

/// Why a run refuses to start: what the plan shows, and what the run says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub by: BlockedBy,
    /// What the plan shows (text and JSON).
    pub reason: String,
    /// The run's error; the reason itself but for a builder's problems, shown before it.
    pub refusal: String,
    /// What the run prints before it refuses (the drift report, the builder's problems).
    pub said_before: String,
}

impl Blocked {
    /// A refusal that is its own reason, with nothing said before it.
    pub fn new(by: BlockedBy, reason: String) -> Blocked {
        Blocked {
            by,
            refusal: reason.clone(),
            reason,
            said_before: String::new(),
        }
    }
}

/// The JSON of a plan lists the reasons (see docs/json.md).
impl Serialize for Blocked {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.reason)
    }
}

/// What blocks a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockedBy {
    /// An image refers to a parent version neither in the destination nor built by the run.
    Parent,
    /// A published version's context changed without a version bump (unless `--allow-drift`).
    Drift,
    /// No node of the farm builds a platform, natively or under emulation.
    Unplaced,
    /// `--native-only` and a build placed on a node that emulates its platform.
    NativeOnly,
    /// A node's builder cannot build a Dockerfile feature (heredocs).
    Builder,
    /// A node cannot emulate a platform placed on it.
    Emulation,
}

impl BlockedBy {
    /// Whether the run checks it once it knows it builds something (after the warnings of the
    /// placement are shown), not before anything.
    pub fn once_building(self) -> bool {
        matches!(self, BlockedBy::Builder | BlockedBy::Emulation)
    }
}

/// A builder the steps run on.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub id: NodeId,
    pub name: String,
    /// The engine and how it is configured, e.g. `buildah 1.28.2 (isolation chroot)`.
    pub builder: String,
    /// The platforms it builds without emulation.
    pub native_platforms: Vec<Platform>,
    /// How many of its steps run at once.
    pub slots: usize,
    /// Where it is reached, for a node not on this machine's default engine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// How the images it builds reach the registry (`direct`: the node pushes them).
    pub route: Route,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub id: StepId,
    pub image: ImageId,
    /// The steps that must succeed before this one starts.
    pub waits_for: Vec<StepId>,
    /// Why this step cannot run (its image is blocked): the run refuses to start.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<String>,
    #[serde(flatten)]
    pub action: Action,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    Build(Box<Build>),
    Assemble(Assemble),
    Link(Link),
}

/// In a stage run, makes a platform the final repository holds available in the stage (blobs
/// mounted, manifest put, the version tagged), so children built in the stage find their parent
/// there without rebuilding it.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub platform: Platform,
    /// The final repository, `REG/NAME`.
    pub from: String,
    /// The stage repository, `REG/NS/<os>-<arch>/NAME`.
    pub repository: String,
    /// The names of both within the registry.
    #[serde(skip)]
    pub from_name: String,
    #[serde(skip)]
    pub name: String,
    pub tag: String,
}

/// Build one platform of one image on one node.
#[derive(Debug, Clone, Serialize)]
pub struct Build {
    pub platform: Platform,
    pub node: NodeId,
    /// Whether the node builds this platform under emulation.
    pub emulated: bool,
    /// The other nodes able to build it, best first: where it is retried when its node is lost
    /// in the middle of the run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fallback_nodes: Vec<NodeId>,
    pub context_dir: PathBuf,
    pub dockerfile: PathBuf,
    /// `--build-arg` values, `REGISTRY` among them.
    pub build_args: BTreeMap<String, String>,
    /// Arguments given after `--`, passed to the builder as they are.
    pub builder_args: Vec<String>,
    /// `--no-cache`, `--pull`, labels, secrets, and the image's `:target`.
    pub options: crate::builders::BuildOptions,
    /// The tag the image gets in the node's store.
    pub tag: String,
    /// A store of its own for this platform (buildah/podman; see `Backend::platform_store`).
    pub store: Option<StoreRoots>,
    pub output: Output,
    pub log: PathBuf,
}

/// Where a build's image goes.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "to", rename_all = "kebab-case")]
pub enum Output {
    /// Pushed by digest to this repository; the builder's tag is removed afterwards.
    Push {
        repository: String,
        /// The repository's name within the registry (`NAME`, or `NS/<os>-<arch>/NAME` in a stage).
        #[serde(skip)]
        name: String,
        /// `through-cip`: cip pushes the image the node built; `direct`: the node pushes it to
        /// `staging`, and cip copies it registry-side into `repository` by digest.
        route: Route,
        /// Where a node that pushes directly pushes (for the step's node or a fallback node that
        /// does); None when no node of the step pushes directly.
        #[serde(skip_serializing_if = "Option::is_none")]
        staging: Option<Staging>,
    },
    /// Kept in the node's store, also tagged with these names.
    Store { also_tagged: Vec<String> },
}

/// The name a node that pushes directly pushes a build to: a per-platform name of this run, in
/// the staging namespace of the fan-out (`REG/cip-stage/<os>-<arch>/NAME:VERSION-RUN`), never a
/// tag of the final repository.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Staging {
    /// `REG/cip-stage/linux-amd64/app:1.0.0-RUN`.
    pub reference: String,
    /// The repository's name within the registry.
    #[serde(skip)]
    pub name: String,
    #[serde(skip)]
    pub tag: String,
    /// Whether the staged manifest is removed from the registry afterwards (best effort): not when
    /// the staging repository is the destination itself (a `--stage` run).
    #[serde(skip)]
    pub remove: bool,
}

/// Write one image's index: the platforms built in this run plus those published before.
#[derive(Debug, Clone, Serialize)]
pub struct Assemble {
    pub repository: String,
    /// The repository's name within the registry (see [`Output::Push`]).
    #[serde(skip)]
    pub name: String,
    /// In the order written: the version tag last, so its presence proves the others were written.
    pub tags: Vec<String>,
    /// `--arch-tags`: each platform's manifest also tagged `VERSION-ARCH[-VARIANT]`, written
    /// before the index's tags.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub arch_tags: BTreeMap<String, Platform>,
}

/// The per-platform tags of `--arch-tags`: `VERSION-amd64`, `VERSION-arm64`, `VERSION-arm-v7`
/// (and the OS first for other systems than Linux: `VERSION-windows-amd64`).
pub fn arch_tags(version: &str, platforms: &[Platform]) -> BTreeMap<String, Platform> {
    platforms
        .iter()
        .map(|p| {
            let mut tag = format!("{version}-");
            if p.os != "linux" {
                tag.push_str(&format!("{}-", p.os));
            }
            tag.push_str(&p.arch);
            if let Some(v) = &p.variant {
                tag.push_str(&format!("-{v}"));
            }
            (tag, p.clone())
        })
        .collect()
}

/// Where a run's images go: the one type of it, from the command (`run::Mode` resolves into it) to
/// the plan's steps. `plan::Target` adds what holds the images.
#[derive(Debug, Clone)]
pub enum Destination {
    /// A registry: `REGISTRY` for builds, and the prefix of repositories.
    Registry { name: String },
    /// A staging namespace of a registry (`publish --stage`): `name` is `REG/NS/<os>-<arch>`,
    /// `REGISTRY` for builds; `namespace` is `NS/<os>-<arch>`, the prefix of repository names
    /// within the registry. Indexes get their version tag only.
    Stage { name: String, namespace: String },
    /// The node's local store, images tagged `NAME/image:VERSION`.
    Store { name: String },
}

impl Destination {
    /// `REGISTRY` of the builds: the registry, the stage's `REG/NS/<os>-<arch>`, or the name the
    /// store's images are tagged with.
    pub fn name(&self) -> &str {
        match self {
            Destination::Registry { name }
            | Destination::Stage { name, .. }
            | Destination::Store { name } => name,
        }
    }

    /// Image `image`'s repository: its full name, and its name within the registry. None for a
    /// store.
    fn repository(&self, image: &str) -> Option<(String, String)> {
        match self {
            Destination::Registry { name } => Some((format!("{name}/{image}"), image.to_string())),
            Destination::Stage { name, namespace } => {
                Some((format!("{name}/{image}"), format!("{namespace}/{image}")))
            }
            Destination::Store { .. } => None,
        }
    }

    /// The registry's host (`HOST[:PORT]`), for a destination in a registry.
    fn host(&self) -> Option<&str> {
        match self {
            Destination::Registry { name } | Destination::Stage { name, .. } => {
                Some(crate::registry::address::split(name).0)
            }
            Destination::Store { .. } => None,
        }
    }

    /// Where a direct push of `image:version` for `platform` is staged (see [`Staging`]).
    fn staging(
        &self,
        image: &str,
        version: &str,
        platform: &Platform,
        run: &str,
    ) -> Option<Staging> {
        let tag = format!("{version}-{run}");
        let (name, remove) = match self {
            Destination::Registry { .. } => (
                format!(
                    "{}/{image}",
                    crate::plan::stage_namespace(STAGING_ROOT, platform)
                ),
                true,
            ),
            // A stage is per platform already: its repository holds the staged image.
            Destination::Stage { namespace, .. } => (format!("{namespace}/{image}"), false),
            Destination::Store { .. } => return None,
        };
        let registry = match self {
            Destination::Stage { .. } => self.final_name()?,
            _ => self.name().to_string(),
        };
        Some(Staging {
            reference: format!("{registry}/{name}:{tag}"),
            name,
            tag,
            remove,
        })
    }

    /// The final registry's address, for a stage (its name without the namespace).
    fn final_name(&self) -> Option<String> {
        match self {
            Destination::Stage { name, namespace } => {
                Some(name.strip_suffix(&format!("/{namespace}"))?.to_string())
            }
            _ => None,
        }
    }
}

/// The staging namespace of direct pushes: the fan-out's (`cip publish --stage`).
const STAGING_ROOT: &str = "cip-stage";

/// A node steps may be placed on.
pub struct NodeInput<'a> {
    pub name: String,
    pub backend: &'a dyn Backend,
    pub slots: usize,
    /// The platforms it can emulate (None: unknown, assumed able).
    pub emulates: Option<Vec<Platform>>,
    /// What the route of its images is decided from: a farm's node. None: cip pushes (the local
    /// builder of a run without a farm, as always).
    pub reach: Option<NodeReach>,
}

impl<'a> NodeInput<'a> {
    /// The local builder, the only node of a run without a farm.
    pub fn local(backend: &'a dyn Backend, slots: usize) -> NodeInput<'a> {
        NodeInput {
            name: "local".into(),
            backend,
            slots,
            emulates: None,
            reach: None,
        }
    }
}

/// What a run is given to plan its steps.
pub struct Inputs<'a> {
    pub project: &'a Project,
    pub destination: Destination,
    /// The nodes, when something is to be built: the local builder, or a farm's.
    pub nodes: Vec<NodeInput<'a>>,
    /// Whether the nodes are a farm's (`--farm`, `--node`): falling back to emulation is warned
    /// about.
    pub farm: bool,
    pub log_dir: PathBuf,
    /// Makes the builder tags of a run private to it (pushed images only).
    pub run_id: String,
    pub builder_args: Vec<String>,
    /// `--no-latest`: indexes get their version tag only.
    pub no_latest: bool,
    /// `--arch-tags`: each platform's image is also tagged `VERSION-ARCH[-VARIANT]`.
    pub arch_tags: bool,
    /// `--build-arg K=V` for every image (REGISTRY is set by cip).
    pub build_args: Vec<(String, String)>,
    /// Builder options for every image; each image adds its `:target`.
    pub options: crate::builders::BuildOptions,
}

/// How node `n`'s images reach the destination's registry: through cip unless the node is a
/// farm's and [`route::decide`] says it pushes directly.
fn node_route(n: &NodeInput, inputs: &Inputs) -> Route {
    match (inputs.farm, n.reach, inputs.destination.host()) {
        (true, Some(reach), Some(host)) => route::decide(reach, host),
        _ => Route::ThroughCip,
    }
}

/// The nodes of the plan, when something is to be built.
fn plan_nodes(images: &[ImagePlan], inputs: &Inputs) -> Vec<Node> {
    if !images.iter().any(ImagePlan::needs_build) {
        return Vec::new();
    }
    inputs
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Node {
            id: NodeId(i),
            name: n.name.clone(),
            builder: n.backend.describe(),
            native_platforms: n.backend.native_platforms(),
            slots: n.slots.max(1),
            address: n.backend.address(),
            route: node_route(n, inputs),
        })
        .collect()
}

/// The steps that build every image of `images` that needs it, parents first.
pub fn plan_steps(images: Vec<ImagePlan>, inputs: &Inputs) -> Plan {
    let nodes = plan_nodes(&images, inputs);
    let mut placer = Placer::new(
        inputs
            .nodes
            .iter()
            .map(|n| Seat {
                native: n.backend.native_platforms(),
                emulates: n.emulates.clone(),
                slots: n.slots,
            })
            .collect(),
    );
    let mut warnings = Vec::new();
    let mut unplaced = Vec::new();
    // Per (context index, platform): the node that built it, for its children's placement.
    let mut built_on: BTreeMap<(usize, Platform), usize> = BTreeMap::new();
    let mut steps: Vec<Step> = Vec::new();
    // Per context index: the steps its children wait for.
    let mut done_by: BTreeMap<usize, Vec<StepId>> = BTreeMap::new();
    let linked = needed_links(&images);
    for (i, image) in images.iter().enumerate() {
        if linked.contains(&image.ctx) {
            let links = link_steps(ImageId(i), image, inputs, &mut steps);
            done_by.insert(image.ctx, links);
        }
        if !image.needs_build() || nodes.is_empty() {
            continue;
        }
        let after: Vec<StepId> = image
            .waits_for
            .iter()
            .flat_map(|c| done_by.get(c).cloned().unwrap_or_default())
            .collect();
        let mut builds = Vec::new();
        for platform in image.to_build() {
            let id = StepId(steps.len());
            let parents: Vec<usize> = image
                .waits_for
                .iter()
                .filter_map(|c| built_on.get(&(*c, platform.clone())).copied())
                .collect();
            let Some(placed) = placer.place(&platform, &parents) else {
                unplaced.push(format!(
                    "no node of the farm builds {platform}, natively or under emulation: {}:{} \
                     is not built for it",
                    image.name, image.version
                ));
                continue;
            };
            built_on.insert((image.ctx, platform.clone()), placed.node);
            if placed.emulated && inputs.farm {
                let warning = format!(
                    "no native node for {platform}: built under emulation on node {}",
                    inputs.nodes[placed.node].name
                );
                if !warnings.contains(&warning) {
                    warnings.push(warning);
                }
            }
            let build = build_step(image, &platform, inputs, &placed, &nodes);
            steps.push(Step {
                id,
                image: ImageId(i),
                waits_for: after.clone(),
                blocked: image.blocked.clone(),
                action: Action::Build(Box::new(build)),
            });
            builds.push(id);
        }
        let finished = match inputs.destination.repository(&image.name) {
            Some((repository, name)) => {
                let id = StepId(steps.len());
                let (tags, arch) = match inputs.destination {
                    // A stage's index is found by its version; latest and :tags are the merge's.
                    Destination::Stage { .. } => (vec![image.version.clone()], BTreeMap::new()),
                    _ => (
                        index_tags(
                            image,
                            &inputs.project.contexts[image.ctx].tags,
                            inputs.no_latest,
                        ),
                        if inputs.arch_tags {
                            arch_tags(&image.version, &image.wanted)
                        } else {
                            BTreeMap::new()
                        },
                    ),
                };
                steps.push(Step {
                    id,
                    image: ImageId(i),
                    waits_for: builds,
                    blocked: Vec::new(),
                    action: Action::Assemble(Assemble {
                        repository,
                        name,
                        tags,
                        arch_tags: arch,
                    }),
                });
                vec![id]
            }
            None => builds,
        };
        done_by.insert(image.ctx, finished);
    }
    let blocked = images
        .iter()
        .filter(|i| i.needs_build())
        .flat_map(|i| i.blocked.iter().cloned())
        .map(|reason| Blocked::new(BlockedBy::Parent, reason))
        .collect();
    Plan {
        images,
        destination: inputs.destination.name().to_string(),
        nodes,
        steps,
        warnings,
        unplaced,
        blocked,
        builder_warnings: Vec::new(),
    }
}

/// The images (context indexes) whose final platforms a stage run links into the stage: those a
/// child built in this run waits for.
fn needed_links(images: &[ImagePlan]) -> std::collections::BTreeSet<usize> {
    let linkable: std::collections::BTreeSet<usize> = images
        .iter()
        .filter(|i| !i.to_link().is_empty())
        .map(|i| i.ctx)
        .collect();
    images
        .iter()
        .filter(|i| i.needs_build())
        .flat_map(|i| i.waits_for.iter().copied())
        .filter(|c| linkable.contains(c))
        .collect()
}

/// One link step per platform the final repository holds and the stage lacks.
fn link_steps(
    id: ImageId,
    image: &ImagePlan,
    inputs: &Inputs,
    steps: &mut Vec<Step>,
) -> Vec<StepId> {
    let (Some((repository, name)), Some(fin)) = (
        inputs.destination.repository(&image.name),
        inputs.destination.final_name(),
    ) else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    for platform in image.to_link() {
        let step = StepId(steps.len());
        steps.push(Step {
            id: step,
            image: id,
            waits_for: Vec::new(),
            blocked: Vec::new(),
            action: Action::Link(Link {
                platform,
                from: format!("{fin}/{}", image.name),
                repository: repository.clone(),
                from_name: image.name.clone(),
                name: name.clone(),
                tag: image.version.clone(),
            }),
        });
        ids.push(step);
    }
    ids
}

/// The tags an image's index gets, in the order written: `latest` (unless it names a higher
/// version, or `--no-latest`), the context's `:tags`, then the version tag, last, so that its
/// presence proves the others were written.
pub fn index_tags(image: &ImagePlan, extra: &[String], no_latest: bool) -> Vec<String> {
    let mut tags = Vec::new();
    if !no_latest && image.moves_latest() {
        tags.push("latest".to_string());
    }
    tags.extend(extra.iter().filter(|t| **t != image.version).cloned());
    tags.push(image.version.clone());
    tags
}

fn build_step(
    image: &ImagePlan,
    platform: &Platform,
    inputs: &Inputs,
    placed: &Placement,
    nodes: &[Node],
) -> Build {
    let ctx = &inputs.project.contexts[image.ctx];
    let builder = inputs.nodes[placed.node].backend;
    let registry = inputs.destination.name().to_string();
    let slug = platform.to_string().replace('/', "-");
    let (tag, output, store) = match &inputs.destination {
        // Private to this run: two runs building one version at once must not swap images.
        Destination::Registry { .. } | Destination::Stage { .. } => {
            let (repository, name) = inputs
                .destination
                .repository(&image.name)
                .expect("a registry has repositories");
            let route = nodes[placed.node].route;
            let any_direct = std::iter::once(placed.node)
                .chain(placed.fallbacks.iter().copied())
                .any(|n| nodes[n].route == Route::Direct);
            let staging = any_direct
                .then(|| {
                    inputs.destination.staging(
                        &image.name,
                        &image.version,
                        platform,
                        &inputs.run_id,
                    )
                })
                .flatten();
            (
                format!(
                    "cip.local/run-{}/{}:{}-{slug}",
                    inputs.run_id, image.name, image.version
                ),
                Output::Push {
                    repository,
                    name,
                    route,
                    staging,
                },
                builder.platform_store(platform),
            )
        }
        Destination::Store { name } => (
            format!("{name}/{}:{}", image.name, image.version),
            Output::Store {
                also_tagged: vec![format!("{name}/{}:latest", image.name)],
            },
            None,
        ),
    };
    Build {
        platform: platform.clone(),
        node: NodeId(placed.node),
        emulated: placed.emulated,
        fallback_nodes: placed.fallbacks.iter().map(|&n| NodeId(n)).collect(),
        context_dir: ctx.dir.clone(),
        dockerfile: ctx.dockerfile.clone(),
        build_args: inputs
            .build_args
            .iter()
            .cloned()
            .chain([("REGISTRY".to_string(), registry)])
            .collect(),
        builder_args: inputs.builder_args.clone(),
        options: crate::builders::BuildOptions {
            target: ctx.target.clone(),
            ..inputs.options.clone()
        },
        tag,
        store,
        output,
        log: inputs
            .log_dir
            .join(format!("{}-{}-{slug}.log", image.name, image.version)),
    }
}

impl Plan {
    pub fn image(&self, id: ImageId) -> &ImagePlan {
        &self.images[id.0]
    }

    pub fn step(&self, id: StepId) -> &Step {
        &self.steps[id.0]
    }

    /// The build steps of the plan.
    pub fn builds(&self) -> impl Iterator<Item = (&Step, &Build)> {
        self.steps.iter().filter_map(|s| match &s.action {
            Action::Build(b) => Some((s, b.as_ref())),
            Action::Assemble(_) | Action::Link(_) => None,
        })
    }

    /// The platforms the plan builds, each once.
    pub fn platforms_built(&self) -> Vec<Platform> {
        let mut v: Vec<Platform> = self.builds().map(|(_, b)| b.platform.clone()).collect();
        v.sort();
        v.dedup();
        v
    }
}
