//! What a run must build and why: per image and platform, published, missing, forced, or waiting for a
//! parent that is rebuilt in the same run.
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};

use crate::builders::Backend;
use crate::inventory::{Inventory, PlatformCache, RegistryInventory, StoreInventory};
use crate::load::Loaded;
use crate::platform::Platform;
use crate::registry::{Published, Registry};

pub mod refusals;
pub mod steps;

/// Where the platforms of image configs seen in registries are kept between runs (see
/// `inventory::PlatformCache`), relative to the project.
pub const PLATFORM_CACHE: &str = ".cip/cache/config-platforms";

/// Where a run's images go: the destination the plan names ([`steps::Destination`], the one type
/// of it) and what holds the images, which the plan asks what is there already.
#[derive(Clone)]
pub struct Target {
    pub destination: steps::Destination,
    pub holder: Holder,
}

/// What holds a run's images.
#[derive(Clone)]
pub enum Holder {
    /// A registry: the final repositories, or a stage run's namespace in it.
    Registry(Arc<Registry>),
    /// The builder's local store (`cip build`), images tagged `REGISTRY/name:VERSION`.
    Store(Arc<dyn Backend>),
}

/// What a plan asks the target about, and the cache it keeps.
struct Lookup {
    inventory: Box<dyn Inventory>,
    platforms: Arc<PlatformCache>,
}

impl Lookup {
    async fn published(
        &self,
        name: &str,
        tag: &str,
        wanted: &[Platform],
    ) -> anyhow::Result<Option<Published>> {
        self.inventory.published(name, tag, wanted).await
    }
}

impl Target {
    /// The final repositories of `registry`.
    pub fn registry(registry: Arc<Registry>) -> Target {
        Target {
            destination: steps::Destination::Registry {
                name: registry.address().to_string(),
            },
            holder: Holder::Registry(registry),
        }
    }

    /// A stage run (`publish --stage`): one platform's images go to `namespace/NAME` of the
    /// registry (e.g. `cip-stage/linux-arm64/base`), single-platform, and what the final
    /// repositories (`NAME`) hold already counts as built. `namespace` is
    /// `NS/<os>-<arch>[-<variant>]`, inside the registry's own path.
    pub fn stage(registry: Arc<Registry>, namespace: String) -> Target {
        Target {
            destination: steps::Destination::Stage {
                name: format!("{}/{namespace}", registry.address()),
                namespace,
            },
            holder: Holder::Registry(registry),
        }
    }

    /// The builder's local store, its images named after `registry`.
    pub fn store(builder: Arc<dyn Backend>, registry: String) -> Target {
        Target {
            destination: steps::Destination::Store { name: registry },
            holder: Holder::Store(builder),
        }
    }

    /// The target's inventory, with the platform cache of the project at `root`.
    fn inventory(&self, root: &std::path::Path) -> Lookup {
        let platforms = Arc::new(PlatformCache::load(root.join(PLATFORM_CACHE)));
        let inventory: Box<dyn Inventory> = match &self.holder {
            Holder::Registry(reg) => Box::new(RegistryInventory {
                registry: reg.clone(),
                platforms: platforms.clone(),
            }),
            Holder::Store(builder) => {
                Box::new(StoreInventory::new(builder.clone(), self.registry_name()))
            }
        };
        Lookup {
            inventory,
            platforms,
        }
    }

    /// What images are named from: `REGISTRY` of the builds (`REG/NS/linux-arm64` in a stage).
    pub fn registry_name(&self) -> String {
        self.destination.name().to_string()
    }

    /// The name within the registry that holds image `name` for this target.
    pub fn repository_of(&self, name: &str) -> String {
        match &self.destination {
            steps::Destination::Stage { namespace, .. } => format!("{namespace}/{name}"),
            _ => name.to_string(),
        }
    }

    /// Whether the target is a stage run's.
    fn is_stage(&self) -> bool {
        matches!(self.destination, steps::Destination::Stage { .. })
    }

    /// Whether the target is a registry (stage or final), whose indexes carry annotations.
    fn is_registry(&self) -> bool {
        matches!(self.holder, Holder::Registry(_))
    }
}

/// The staging namespace of `platform` under `ns`: `ns/<os>-<arch>[-<variant>]`.
pub fn stage_namespace(ns: &str, platform: &Platform) -> String {
    format!(
        "{}/{}",
        ns.trim_matches('/'),
        platform.to_string().replace('/', "-")
    )
}

/// Which platforms a run builds.
#[derive(Debug, Clone)]
pub enum PlatformScope {
    /// Each image's declared platforms (or the defaults).
    Declared(Vec<Platform>),
    /// Only these platforms, of the images that declare them; an image that declares none has
    /// `defaults`.
    Only {
        platforms: Vec<Platform>,
        defaults: Vec<Platform>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Published,
    Missing,
    Forced,
    /// To build, but the run cannot: see [`ImagePlan::blocked`].
    Blocked,
}

#[derive(Debug, Clone)]
pub struct ImagePlan {
    /// Index into `Project::contexts`.
    pub ctx: usize,
    pub name: String,
    pub version: String,
    /// The platforms this run is responsible for.
    pub wanted: Vec<Platform>,
    /// Declared platforms left out by the scope (e.g. arm64 in a publish-locally on amd64).
    pub out_of_scope: Vec<Platform>,
    /// What the version tag holds now.
    pub published: Option<Published>,
    pub forced: bool,
    /// Parents (context indexes) rebuilt in this run: this image's builds wait for them.
    pub waits_for: Vec<usize>,
    /// What the context looks like now (see `digest`).
    pub context_digest: String,
    /// The context digest recorded when this version was published, if it differs from the current one:
    /// the context changed without a version bump.
    pub drift: Option<String>,
    /// Parents that drifted too and whose content this image covers (it references their current
    /// version): the likely cause of this image's drift.
    pub drifted_parents: Vec<String>,
    /// The drift is only its drifted parents': with the digests they were published with, this
    /// image's context digest is the one its version records.
    pub drift_only_parents: bool,
    /// The published version records no context digest (an index cip did not write, or one
    /// rewritten without it): whether it is what the context holds cannot be told.
    pub unknown_provenance: bool,
    /// Images below this one (parents, or what their drift may be) of unknown provenance whose
    /// content this image covers: its drift may be theirs.
    pub unknown_parents: Vec<String>,
    /// The version `latest` points at now, for an image this run builds (None: no `latest`, or
    /// one that names no version). `latest` only moves forward (see [`ImagePlan::moves_latest`]).
    pub latest: Option<String>,
    /// In a stage run: what the final repository's version tag holds. Its platforms count as
    /// built: they are linked into the stage for the children that need them, never rebuilt.
    pub in_final: Option<Published>,
    /// Why this image cannot be built in this run (a parent version it refers to is neither in
    /// the destination nor built by the run): the run refuses before building anything.
    pub blocked: Vec<String>,
}

impl ImagePlan {
    pub fn status(&self, p: &Platform) -> Status {
        let holds =
            |pb: &Option<Published>| pb.as_ref().is_some_and(|pb| pb.platforms().contains(p));
        let status = if self.forced {
            Status::Forced
        } else if holds(&self.published) || holds(&self.in_final) {
            Status::Published
        } else {
            Status::Missing
        };
        if status != Status::Published && !self.blocked.is_empty() {
            Status::Blocked
        } else {
            status
        }
    }

    /// The platforms to build in this run.
    pub fn to_build(&self) -> Vec<Platform> {
        self.wanted
            .iter()
            .filter(|p| self.status(p) != Status::Published)
            .cloned()
            .collect()
    }

    pub fn needs_build(&self) -> bool {
        !self.to_build().is_empty()
    }

    /// In a stage run, the platforms the final repository holds and the stage does not: a child
    /// built in the stage finds them there once they are linked.
    pub fn to_link(&self) -> Vec<Platform> {
        let Some(fin) = &self.in_final else {
            return Vec::new();
        };
        let staged = self
            .published
            .as_ref()
            .map(Published::platforms)
            .unwrap_or_default();
        let have = fin.platforms();
        self.wanted
            .iter()
            .filter(|p| have.contains(p) && !staged.contains(p) && !self.forced)
            .cloned()
            .collect()
    }

    /// Whether this image's drift stops a run (unless `--allow-drift`): a forced rebuild replaces
    /// the drifted version, but a stage run's rebuild goes to the stage, never to the final
    /// version that drifted (in a stage run, `drift` is the final version's).
    pub fn drift_stands(&self) -> bool {
        self.drift.is_some() && (!self.forced || self.in_final.is_some())
    }

    /// Whether this image's drift may be only that of an image below it that records no context
    /// digest: then whether it changed cannot be told.
    pub fn drift_unknown(&self) -> bool {
        self.drift.is_some() && self.drifted_parents.is_empty() && !self.unknown_parents.is_empty()
    }

    /// Whether publishing this version moves `latest`: not when `latest` names a higher version
    /// (publishing an older one, e.g. a patch of an old line, leaves it where it is).
    pub fn moves_latest(&self) -> bool {
        let newer = |v: &str| crate::project::info::parse_version(v).ok();
        match (self.latest.as_deref().and_then(newer), newer(&self.version)) {
            (Some(latest), Some(this)) => this >= latest,
            _ => true,
        }
    }
}

/// Asks the target, for all images at once (at most `concurrency` lookups at a time), what is
/// there already.
pub async fn make(
    loaded: &Loaded,
    target: &Target,
    scope: &PlatformScope,
    force: &[String],
    concurrency: usize,
) -> anyhow::Result<Vec<ImagePlan>> {
    make_with(loaded, target, scope, force, concurrency, &|| {}).await
}

/// [`make`], calling `to_build` as soon as a lookup finds an image to build, while the others
/// are still asked about (a run starts finding its builder then, instead of after the queries).
pub async fn make_with(
    loaded: &Loaded,
    target: &Target,
    scope: &PlatformScope,
    force: &[String],
    concurrency: usize,
    to_build: &(dyn Fn() + Sync),
) -> anyhow::Result<Vec<ImagePlan>> {
    for name in force {
        if loaded.graph.node(name).is_none() {
            anyhow::bail!("--force {name}: no context produces an image named {name:?}");
        }
    }
    // Every question about what a tag holds goes through the inventory (and its cache).
    let inventory = target.inventory(&loaded.project.root);
    let older = older_parents(loaded, target, &inventory, concurrency).await?;
    let started = std::time::Instant::now();
    let all = crate::digest::context_digests(&loaded.project, &loaded.graph, &older.digests)?;
    let digests = &all.full;
    crate::output::timing("context digests", started);
    let order = loaded.graph.order();
    let lookups = order.iter().enumerate().map(|(position, &c)| {
        let ctx = &loaded.project.contexts[c];
        let (wanted, out_of_scope) = scope_platforms(scope, ctx);
        let forced = force.contains(&ctx.name);
        let look = lookup_image(target, &inventory, ctx, &digests[c], wanted, forced);
        async move {
            let found = look.await?;
            if forced || found.builds() {
                to_build();
            }
            anyhow::Ok((position, c, out_of_scope, found))
        }
    });
    let started = std::time::Instant::now();
    // Unordered: a slow answer never holds back the lookups behind it; sorted back afterwards.
    let mut found: Vec<_> = stream::iter(lookups)
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    found.sort_by_key(|(position, ..)| *position);
    crate::output::timing("registry queries", started);
    let mut plans: Vec<ImagePlan> = Vec::with_capacity(found.len());
    for (_, c, out_of_scope, found) in found {
        let Found {
            wanted,
            mut published,
            in_final,
            stale,
            latest,
        } = found;
        let staged = target.is_stage();
        let ctx = &loaded.project.contexts[c];
        // A stage never drifts (a stale stage is rebuilt or linked again); the final version a
        // stage run links, or that a merge completes, does.
        let version_is = if staged {
            in_final.as_ref()
        } else {
            published.as_ref()
        };
        let drift = recorded_digest(version_is)
            .filter(|r| **r != digests[c])
            .cloned();
        // A local store keeps no annotations: its images are compared by tag only.
        let unknown_provenance =
            target.is_registry() && version_is.is_some() && recorded_digest(version_is).is_none();
        // A stale stage is rebuilt (forced, so its index is replaced), or, when the final
        // repository holds every platform, linked again from there.
        let final_holds = in_final
            .as_ref()
            .is_some_and(|f| f.missing(&wanted).is_empty());
        if stale && final_holds {
            published = None;
        }
        plans.push(ImagePlan {
            ctx: c,
            name: ctx.name.clone(),
            version: ctx.version.to_string(),
            wanted,
            out_of_scope,
            published,
            forced: force.contains(&ctx.name) || (stale && !final_holds),
            waits_for: Vec::new(),
            context_digest: digests[c].clone(),
            drift,
            drifted_parents: Vec::new(),
            drift_only_parents: false,
            unknown_provenance,
            unknown_parents: Vec::new(),
            latest,
            in_final,
            blocked: Vec::new(),
        });
    }
    explain_drift(loaded, &all, &older.digests, &mut plans);
    block_on_absent_parents(loaded, target, &older.absent, &mut plans);
    if let Err(e) = inventory.platforms.save() {
        // Only a cache: the next run asks the registry again.
        eprintln!("warning: {e:#}");
    }
    // Parents come first in `order`, so their needs are known when a child is looked at.
    for i in 0..plans.len() {
        let waits: Vec<usize> = loaded
            .graph
            .parents(plans[i].ctx)
            .into_iter()
            .filter(|p| {
                plans
                    .iter()
                    .any(|pl| pl.ctx == *p && (pl.needs_build() || !pl.to_link().is_empty()))
            })
            .collect();
        plans[i].waits_for = waits;
    }
    Ok(plans)
}

/// What the target holds of one image.
struct Found {
    wanted: Vec<Platform>,
    published: Option<Published>,
    in_final: Option<Published>,
    /// A stage holding the image from another context (or an unknown one).
    stale: bool,
    /// See [`ImagePlan::latest`].
    latest: Option<String>,
}

impl Found {
    /// Whether the image has a platform to build (or, in a stage, one to link or rebuild).
    fn builds(&self) -> bool {
        let lacks = |p: &Option<Published>| {
            p.as_ref()
                .is_none_or(|p| !p.missing(&self.wanted).is_empty())
        };
        !self.wanted.is_empty() && (self.stale || (lacks(&self.published) && lacks(&self.in_final)))
    }
}

/// Asks the target about one image: its version tag, in a stage the final repository's too, and
/// for an image to be built into a registry, right after, what `latest` names (so a first plan,
/// where every image is missing, sends both questions of an image back to back, not in a second
/// round after all the first ones).
async fn lookup_image(
    target: &Target,
    inventory: &Lookup,
    ctx: &crate::project::Context,
    current: &str,
    wanted: Vec<Platform>,
    forced: bool,
) -> anyhow::Result<Found> {
    let mut found = Found {
        wanted,
        published: None,
        in_final: None,
        stale: false,
        latest: None,
    };
    if found.wanted.is_empty() {
        return Ok(found);
    }
    let (name, version) = (ctx.name.as_str(), ctx.version.to_string());
    let repository = target.repository_of(name);
    found.published = inventory
        .published(&repository, &version, &found.wanted)
        .await?;
    match &target.destination {
        // A stage is scratch space: what it holds from another context (or from an unknown one:
        // no context digest) is replaced. It asks the final repository what it holds: platforms to
        // link, and whether that version drifted (a merge would complete or keep it).
        steps::Destination::Stage { .. } => {
            found.stale = found.published.is_some()
                && recorded_digest(found.published.as_ref()).map(String::as_str) != Some(current);
            found.in_final = inventory.published(name, &version, &found.wanted).await?;
        }
        // A local store's latest is tagged by its build, whatever it named before.
        steps::Destination::Store { .. } => {}
        steps::Destination::Registry { .. } => {
            let builds = forced
                || found
                    .published
                    .as_ref()
                    .is_none_or(|p| !p.missing(&found.wanted).is_empty());
            if builds {
                let latest = inventory.published(name, "latest", &[]).await?;
                found.latest = latest.and_then(|p| p.annotations.get(VERSION_ANNOTATION).cloned());
            }
        }
    }
    Ok(found)
}

/// The context digest an index records.
fn recorded_digest(published: Option<&Published>) -> Option<&String> {
    published.and_then(|p| p.annotations.get(crate::digest::ANNOTATION))
}

/// What the target holds of the parent versions children refer to other than the parents'
/// current ones.
#[derive(Default)]
struct OlderParents {
    /// The context digest each published one records (see `digest::context_digests`). Versions
    /// that are not published, or carry no digest, are left out: their tag stands for them.
    digests: crate::digest::PublishedDigests,
    /// `(name, tag)` of those the builds cannot pull: absent from where `REGISTRY` points.
    absent: std::collections::BTreeSet<(String, String)>,
}

/// For every reference to a parent version other than the parent's current one, what the
/// target holds of it: the recorded context digest (from the final repository, where older
/// versions are published), and whether the builds find it (a stage run's builds pull from the
/// stage).
async fn older_parents(
    loaded: &Loaded,
    target: &Target,
    inventory: &Lookup,
    concurrency: usize,
) -> anyhow::Result<OlderParents> {
    // A local store keeps no annotations: the tags stand for those versions (and its builder may
    // pull them from the registry its tags name: nothing is known to be absent).
    if !target.is_registry() {
        return Ok(Default::default());
    }
    let wanted = crate::digest::older_parent_versions(&loaded.project, &loaded.graph);
    let staged = target.is_stage();
    let found: Vec<_> = stream::iter(wanted.into_iter().map(|(name, tag)| async move {
        let published = inventory.published(&name, &tag, &[]).await?;
        let pullable = if staged {
            inventory
                .published(&target.repository_of(&name), &tag, &[])
                .await?
                .is_some()
        } else {
            published.is_some()
        };
        let recorded =
            published.and_then(|p| p.annotations.get(crate::digest::ANNOTATION).cloned());
        anyhow::Ok(((name, tag), recorded, pullable))
    }))
    .buffer_unordered(concurrency.max(1))
    .collect()
    .await;
    let mut out = OlderParents::default();
    for r in found {
        let (key, recorded, pullable) = r?;
        if !pullable {
            out.absent.insert(key.clone());
        }
        if let Some(d) = recorded {
            out.digests.insert(key, d);
        }
    }
    Ok(out)
}

/// Marks blocked every image to build that refers to a parent version in `absent`: the
/// destination lacks it, and the run builds only the parent's current version.
fn block_on_absent_parents(
    loaded: &Loaded,
    target: &Target,
    absent: &std::collections::BTreeSet<(String, String)>,
    plans: &mut [ImagePlan],
) {
    if absent.is_empty() {
        return;
    }
    let registry = target.registry_name();
    for plan in plans.iter_mut().filter(|p| p.needs_build()) {
        let ctx = &loaded.project.contexts[plan.ctx];
        for p in loaded.graph.parents(plan.ctx) {
            let parent = &loaded.project.contexts[p];
            let tags = ctx
                .refs
                .registry_refs
                .iter()
                .filter(|r| r.name == parent.name && r.digest.is_none())
                .filter_map(|r| r.tag.as_deref());
            for tag in tags {
                let key = (parent.name.clone(), tag.to_string());
                let reason = blocked_reason(&plan.name, parent, tag, &registry);
                if absent.contains(&key) && !plan.blocked.contains(&reason) {
                    plan.blocked.push(reason);
                }
            }
        }
    }
}

/// Why a child that refers to `parent:tag` cannot be built, and the ways out.
fn blocked_reason(
    child: &str,
    parent: &crate::project::Context,
    tag: &str,
    registry: &str,
) -> String {
    format!(
        "{child} refers to {name}:{tag}, which {registry} does not have and this run cannot \
         build: {dir} is at {version}; run `cip cascade-version-updates` or publish {name} {tag} \
         first",
        name = parent.name,
        dir = parent.dir_name,
        version = parent.version,
    )
}

/// The names of the images a run rebuilds although published: those `--force` names (with
/// `--with-descendants`, every image below them too), or with `--force-all` every image the run
/// is about (see [`select`]; every image when none is named).
pub fn forced(
    loaded: &Loaded,
    names: &[String],
    all: bool,
    targets: &crate::options::Targets,
) -> anyhow::Result<Vec<String>> {
    let mut chosen = std::collections::BTreeSet::new();
    if all {
        match loaded.targeted(targets)? {
            Some(targeted) => chosen.extend(targeted),
            None => chosen.extend(0..loaded.project.contexts.len()),
        }
    }
    for name in names {
        let ctx = loaded
            .context_named(name)
            .map_err(|e| anyhow::anyhow!("--force {name}: {e:#}"))?;
        chosen.insert(ctx);
        if targets.with_descendants {
            chosen.extend(loaded.graph.descendants(ctx));
        }
    }
    Ok(chosen
        .into_iter()
        .map(|c| loaded.project.contexts[c].name.clone())
        .collect())
}

/// The images of `plans` a run with `targets` is about: the ones named (and their descendants with
/// `--with-descendants`), plus every parent they build on that is not published yet, so a child is
/// never built on a missing parent. No target: every image.
pub fn select(
    loaded: &Loaded,
    plans: Vec<ImagePlan>,
    targets: &crate::options::Targets,
) -> anyhow::Result<Vec<ImagePlan>> {
    let Some(mut chosen) = loaded.targeted(targets)? else {
        return Ok(plans);
    };
    // A parent only linked into a stage is needed as much as one to build.
    let missing: std::collections::HashSet<usize> = plans
        .iter()
        .filter(|p| p.needs_build() || !p.to_link().is_empty())
        .map(|p| p.ctx)
        .collect();
    let needed: Vec<usize> = chosen
        .iter()
        .flat_map(|&c| loaded.graph.ancestors(c))
        .filter(|a| missing.contains(a))
        .collect();
    chosen.extend(needed);
    Ok(plans
        .into_iter()
        .filter(|p| chosen.contains(&p.ctx))
        .collect())
}

pub use crate::registry::index::VERSION_ANNOTATION;

/// Fills, for each drifted image, the parents that may have caused it: `drifted_parents` (the
/// drifted parents whose current version it follows), `unknown_parents` (the followed parents
/// whose published version records no digest), and `drift_only_parents` (whether, with its
/// drifted parents as they were published, it is as its version records).
fn explain_drift(
    loaded: &Loaded,
    digests: &crate::digest::Digests,
    older: &crate::digest::PublishedDigests,
    plans: &mut [ImagePlan],
) {
    let by_ctx: std::collections::HashMap<usize, usize> =
        plans.iter().enumerate().map(|(i, p)| (p.ctx, i)).collect();
    for i in 0..plans.len() {
        let Some(recorded) = plans[i].drift.clone() else {
            continue;
        };
        let ctx = plans[i].ctx;
        let followed: Vec<usize> = loaded
            .graph
            .parents(ctx)
            .into_iter()
            .filter(|&p| crate::digest::follows_current(&loaded.project, ctx, p))
            .collect();
        let plan_of = |p: usize| by_ctx.get(&p).map(|&j| &plans[j]);
        let drifted: Vec<usize> = followed
            .iter()
            .copied()
            .filter(|&p| plan_of(p).is_some_and(|pl| pl.drift.is_some() && !pl.drift_unknown()))
            .collect();
        // What nothing records, below this image: a parent, or what a parent's drift may be.
        let mut unknown: Vec<String> = followed
            .iter()
            .filter_map(|&p| plan_of(p))
            .flat_map(|pl| match pl {
                pl if pl.unknown_provenance => vec![pl.name.clone()],
                pl if pl.drift_unknown() => pl.unknown_parents.clone(),
                _ => Vec::new(),
            })
            .collect();
        unknown.sort();
        unknown.dedup();
        let then = |p: usize| match plan_of(p).and_then(|pl| pl.drift.clone()) {
            Some(published_with) if drifted.contains(&p) => published_with,
            _ => digests.full[p].clone(),
        };
        let only_parents = !drifted.is_empty()
            && crate::digest::with_parents(
                &loaded.project,
                &loaded.graph,
                older,
                ctx,
                &digests.own[ctx],
                &then,
            ) == recorded;
        let names = drifted
            .iter()
            .map(|&p| loaded.project.contexts[p].name.clone())
            .collect();
        let plan = &mut plans[i];
        plan.drifted_parents = names;
        plan.unknown_parents = unknown;
        plan.drift_only_parents = only_parents;
    }
}

fn scope_platforms(
    scope: &PlatformScope,
    ctx: &crate::project::Context,
) -> (Vec<Platform>, Vec<Platform>) {
    match scope {
        PlatformScope::Declared(defaults) => (ctx.platforms_or(defaults).to_vec(), Vec::new()),
        PlatformScope::Only {
            platforms,
            defaults,
        } => {
            let declared = ctx.platforms_or(defaults).to_vec();
            declared.into_iter().partition(|d| platforms.contains(d))
        }
    }
}

/// Human-readable plan: one line per image and platform, then the steps.
pub fn render(loaded: &Loaded, plan: &steps::Plan) -> String {
    let plans = &plan.images;
    let mut rows = vec![[
        "IMAGE".to_string(),
        "VERSION".into(),
        "PLATFORM".into(),
        "STATUS".into(),
    ]];
    for plan in plans {
        for p in &plan.wanted {
            rows.push([
                plan.name.clone(),
                plan.version.clone(),
                p.to_string(),
                reason(loaded, plan, p),
            ]);
        }
        for p in &plan.out_of_scope {
            rows.push([
                plan.name.clone(),
                plan.version.clone(),
                p.to_string(),
                "not in this run's platforms".into(),
            ]);
        }
        if plan.wanted.is_empty() && plan.out_of_scope.is_empty() {
            rows.push([
                plan.name.clone(),
                plan.version.clone(),
                "-".into(),
                "no platform".into(),
            ]);
        }
    }
    let build = plans.iter().map(|p| p.to_build().len()).sum::<usize>();
    let images = plans.iter().filter(|p| p.needs_build()).count();
    let mut out = crate::output::table(&rows);
    out.push_str(&drift_report(plans));
    out.push_str(&render_steps(plan));
    out.push_str(&render_blocked(plan));
    out.push_str(&format!(
        "{} of {} needed\n",
        crate::output::count(build, "build"),
        crate::output::count(images, "image")
    ));
    out
}

/// The steps of a plan, one line each, with what each waits for.
fn render_steps(plan: &steps::Plan) -> String {
    if plan.steps.is_empty() {
        return String::new();
    }
    let mut rows = vec![[
        "STEP".to_string(),
        "IMAGE".into(),
        "ACTION".into(),
        "NODE".into(),
        "AFTER".into(),
    ]];
    for s in &plan.steps {
        let image = plan.image(s.image);
        let (action, node) = match &s.action {
            steps::Action::Build(b) => {
                let how = if b.emulated { " (emulated)" } else { "" };
                let to = match &b.output {
                    steps::Output::Push {
                        route: steps::Route::Direct,
                        staging: Some(s),
                        ..
                    } => format!("push direct (the node pushes, via {})", s.reference),
                    steps::Output::Push { .. } => "push through cip".to_string(),
                    steps::Output::Store { .. } => "keep in store".to_string(),
                };
                (
                    format!("build {}{how}, {to}", b.platform),
                    node_names(plan, b),
                )
            }
            steps::Action::Assemble(a) => (
                format!("tag {} in {}", a.tags.join(", "), a.repository),
                "-".into(),
            ),
            steps::Action::Link(l) => (
                format!(
                    "link {} from {} (published, not rebuilt)",
                    l.platform, l.from
                ),
                "-".into(),
            ),
        };
        let action = if s.blocked.is_empty() {
            action
        } else {
            format!("blocked: {action}")
        };
        let after: Vec<String> = s.waits_for.iter().map(|d| d.0.to_string()).collect();
        rows.push([
            s.id.0.to_string(),
            format!("{}:{}", image.name, image.version),
            action,
            node,
            if after.is_empty() {
                "-".into()
            } else {
                after.join(",")
            },
        ]);
    }
    let mut out = format!("\n{}", crate::output::table(&rows));
    for w in &plan.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

/// The node a build is placed on, then the fallback nodes it moves to, in order, if it is lost.
fn node_names(plan: &steps::Plan, b: &steps::Build) -> String {
    let name = |n: &steps::NodeId| plan.nodes[n.0].name.clone();
    let mut out = name(&b.node);
    if !b.fallback_nodes.is_empty() {
        let then: Vec<String> = b.fallback_nodes.iter().map(name).collect();
        out.push_str(&format!(" (then {})", then.join(", ")));
    }
    out
}

/// One line per reason the run refuses to start: what a run would refuse with.
fn render_blocked(plan: &steps::Plan) -> String {
    plan.blocked
        .iter()
        .map(|b| format!("blocked: {}\n", b.reason))
        .collect()
}

fn reason(loaded: &Loaded, plan: &ImagePlan, p: &Platform) -> String {
    let waits: Vec<&str> = plan
        .waits_for
        .iter()
        .map(|&c| loaded.project.contexts[c].name.as_str())
        .collect();
    let after = if waits.is_empty() {
        String::new()
    } else {
        format!(", after {}", waits.join(", "))
    };
    let latest = if plan.moves_latest() {
        String::new()
    } else {
        format!(
            "; latest stays at {}",
            plan.latest.as_deref().unwrap_or_default()
        )
    };
    match plan.status(p) {
        Status::Published if plan.unknown_provenance => {
            format!("published; {UNKNOWN_PROVENANCE}")
        }
        Status::Published => "published".into(),
        Status::Blocked => format!("blocked: {}", plan.blocked.join("; ")),
        Status::Forced => format!("forced rebuild{after}{latest}"),
        Status::Missing if plan.published.is_some() => {
            format!("missing from the published index: build{after}{latest}")
        }
        Status::Missing => format!("missing: build{after}{latest}"),
    }
}

/// What plan and status say of a version whose index records no context digest.
pub const UNKNOWN_PROVENANCE: &str = "unknown: no context digest";

/// One line per drifted image, with the way out; empty if none drifted.
pub fn drift_report(plans: &[ImagePlan]) -> String {
    let drifted: Vec<&ImagePlan> = plans.iter().filter(|p| p.drift_stands()).collect();
    if drifted.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    let mut unknown = false;
    for p in &drifted {
        out.push_str(&format!("drift: {}\n", drift_line(p)));
        unknown |= p.drift_unknown();
    }
    out.push_str("  fix: `cip bump --changed` bumps them and their descendants (or publish with --allow-drift)\n");
    if unknown {
        out.push_str("  (a parent whose index records no context digest gets one from `cip publish --force NAME`)\n");
    }
    out
}

/// Why a drifted image drifted: its own files, its parents', or a parent nothing records.
fn drift_line(p: &ImagePlan) -> String {
    let since = format!(
        "since {} {} was published, version not bumped",
        p.name, p.version
    );
    match (p.drifted_parents.as_slice(), p.unknown_parents.as_slice()) {
        (parents @ [_, ..], _) if p.drift_only_parents => format!(
            "{}'s {} {} changed {since}",
            p.name,
            plural("parent", parents.len()),
            parents.join(", ")
        ),
        (parents @ [_, ..], _) => format!(
            "{} changed since {} was published, version not bumped (its {} {} changed too)",
            p.name,
            p.version,
            plural("parent", parents.len()),
            parents.join(", ")
        ),
        ([], unknown @ [_, ..]) => {
            format!(
            "{} or {} below it changed {since} ({} {} no context digest, so which cannot be told)",
            p.name,
            unknown.join(", "),
            unknown.join(", "),
            if unknown.len() == 1 { "records" } else { "record" }
        )
        }
        ([], []) => format!(
            "{} changed since {} was published, version not bumped",
            p.name, p.version
        ),
    }
}

fn plural(word: &str, n: usize) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

/// Per image: version, published platforms, drift (`cip status`).
pub fn render_status(plans: &[ImagePlan]) -> String {
    let mut rows = vec![[
        "IMAGE".to_string(),
        "VERSION".into(),
        "PUBLISHED".into(),
        "STATE".into(),
    ]];
    for p in plans {
        let published = p.published.as_ref().map(|pb| {
            let list: Vec<String> = pb.platforms().iter().map(|x| x.to_string()).collect();
            list.join(",")
        });
        let missing = p.to_build().len();
        let state = match (&p.drift, missing) {
            _ if p.unknown_provenance && missing == 0 => UNKNOWN_PROVENANCE.to_string(),
            _ if p.unknown_provenance => {
                format!("{missing} platform(s) to build; {UNKNOWN_PROVENANCE}")
            }
            (Some(_), _) if p.drift_unknown() => format!(
                "unknown: builds on {}, which {} no context digest",
                p.unknown_parents.join(", "),
                if p.unknown_parents.len() == 1 {
                    "records"
                } else {
                    "record"
                }
            ),
            (Some(_), _) if p.drift_only_parents => format!(
                "parent {} changed since published, version not bumped",
                p.drifted_parents.join(", ")
            ),
            (Some(_), _) => "changed since published, version not bumped".to_string(),
            (None, 0) => "up to date".to_string(),
            (None, _) if !p.blocked.is_empty() => format!("blocked: {}", p.blocked.join("; ")),
            (None, _) => format!("{missing} platform(s) to build"),
        };
        rows.push([
            p.name.clone(),
            p.version.clone(),
            published.unwrap_or_else(|| "-".into()),
            state,
        ]);
    }
    crate::output::table(&rows)
}

/// The plan as the JSON documented in docs/json.md: the images, then the nodes and steps the run
/// executes.
pub fn to_json(loaded: &Loaded, target: &Target, run: &steps::Plan) -> Value {
    let plans = &run.images;
    let images: Vec<Value> = plans
        .iter()
        .enumerate()
        .map(|(id, plan)| {
            let ctx = &loaded.project.contexts[plan.ctx];
            let warnings: Vec<&str> = loaded
                .problems
                .iter()
                .filter(|pr| pr.file.as_deref() == Some(ctx.dockerfile.as_path()) && !pr.is_error())
                .map(|pr| pr.message.as_str())
                .collect();
            let platforms: Vec<Value> = plan
                .wanted
                .iter()
                .map(|p| json!({"platform": p, "status": plan.status(p), "reason": reason(loaded, plan, p)}))
                .collect();
            json!({
                "id": id,
                "name": plan.name,
                "version": plan.version,
                "published_digest": plan.published.as_ref().map(|p| p.digest.clone()),
                "platforms": platforms,
                "out_of_scope": plan.out_of_scope,
                "waits_for": plan.waits_for.iter().map(|&c| &loaded.project.contexts[c].name).collect::<Vec<_>>(),
                "context_digest": plan.context_digest,
                "drift": plan.drift.is_some(),
                "drifted_parents": plan.drifted_parents,
                "drift_only_parents": plan.drift_only_parents,
                "unknown_provenance": plan.unknown_provenance,
                "unknown_parents": plan.unknown_parents,
                "blocked": plan.blocked,
                "published_context_digest": plan.published.as_ref().and_then(|p| p.annotations.get(crate::digest::ANNOTATION)),
                "warnings": warnings,
            })
        })
        .collect();
    json!({
        "schema_version": 2,
        "registry": target.registry_name(),
        "images": images,
        "builds_needed": plans.iter().map(|p| p.to_build().len()).sum::<usize>(),
        "nodes": run.nodes,
        "steps": run.steps,
        "placement_warnings": run.warnings,
        "unplaced": run.unplaced,
        "blocked": run.blocked,
    })
}
