//! `cip publish --merge`, the fan-in of a CI fan-out: after one `publish --stage` run per platform,
//! each image whose declared platforms are all staged (in `REG/NS/<os>-<arch>/NAME:VERSION`) or
//! already published gets its final index at `REG/NAME:VERSION`, tagged as `publish` tags it
//! (latest, :tags, the version last), with the same annotations; the staged manifests' blobs are
//! mounted into the final repository, never downloaded. An image that lacks a platform is named,
//! and its index is not written: a published index never lacks a declared platform. A second
//! run finds everything published and changes nothing.
use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt};
use serde::Serialize;

use crate::execute::index_writer::{Guard, IndexWrite, IndexWriter, NewImage};
use crate::load::Loaded;
use crate::plan::{self, ImagePlan, PlatformScope, Target};
use crate::platform::Platform;
use crate::registry::index::Entry;
use crate::registry::{Deleted, Registry};

/// Where a platform's image comes from.
#[derive(Debug, Clone, Serialize)]
pub struct Staged {
    pub platform: Platform,
    /// The staging repository within the registry, `NS/<os>-<arch>/NAME`.
    pub repository: String,
    #[serde(skip)]
    pub entry: Entry,
    /// The digest of the stage's index (what `--prune-stage` deletes).
    #[serde(skip)]
    pub index_digest: String,
}

/// What the merge does with one image: the decision, made before anything is written.
#[derive(Debug, Clone, Serialize)]
pub struct MergeImage {
    pub name: String,
    pub version: String,
    /// The platforms the final index holds already.
    pub published: Vec<Platform>,
    /// The platforms taken from the stage.
    pub staged: Vec<Staged>,
    /// Declared platforms neither published nor staged (with the current context).
    pub missing: Vec<Platform>,
    /// Staged images left out because their context digest is not the context's now.
    pub stale: Vec<Platform>,
    /// The final index records another context digest than the context's now (changed without
    /// a version bump): the merge refuses it unless `--allow-drift`.
    pub drift: bool,
    /// The tags the index gets, in the order written (the version last); empty when nothing is
    /// written.
    pub tags: Vec<String>,
    #[serde(skip)]
    pub arch_tags: BTreeMap<String, Platform>,
    #[serde(skip)]
    image: ImagePlan,
}

/// What a merge does with an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its index is written from the staged platforms (and the published ones).
    Merged,
    /// The final index holds every declared platform already.
    UpToDate,
    /// A declared platform is neither staged nor published: no index is written.
    Incomplete,
}

impl MergeImage {
    /// The image's plan against the final repository (its drift, among others).
    pub fn plan(&self) -> &ImagePlan {
        &self.image
    }

    pub fn result(&self) -> Outcome {
        if !self.missing.is_empty() {
            Outcome::Incomplete
        } else if self.staged.is_empty() {
            Outcome::UpToDate
        } else {
            Outcome::Merged
        }
    }
}

/// The options of a merge.
pub struct Options {
    /// The staging namespace root (`cip-stage`).
    pub namespace: String,
    pub no_latest: bool,
    pub arch_tags: bool,
    pub concurrency: usize,
}

/// Decides, per image of the project, what its final index is made of.
pub async fn plan(
    loaded: &Loaded,
    reg: &std::sync::Arc<Registry>,
    defaults: &[Platform],
    opts: &Options,
) -> anyhow::Result<Vec<MergeImage>> {
    let target = Target::registry(reg.clone());
    let scope = PlatformScope::Declared(defaults.to_vec());
    let images = plan::make(loaded, &target, &scope, &[], opts.concurrency).await?;
    // The stage lookups of all images at once, yielded in build order.
    stream::iter(
        images
            .into_iter()
            .map(|image| plan_image(loaded, reg, image, opts)),
    )
    .buffered(opts.concurrency.max(1))
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect()
}

async fn plan_image(
    loaded: &Loaded,
    reg: &Registry,
    image: ImagePlan,
    opts: &Options,
) -> anyhow::Result<MergeImage> {
    let mut staged = Vec::new();
    let mut missing = Vec::new();
    let mut stale = Vec::new();
    for platform in image.to_build() {
        let repository = format!(
            "{}/{}",
            plan::stage_namespace(&opts.namespace, &platform),
            image.name
        );
        let found = reg.published(&repository, &image.version).await?;
        let entry = found.as_ref().and_then(|f| {
            f.entries
                .iter()
                .find(|e| e.platform.as_ref() == Some(&platform))
                .cloned()
        });
        let fresh = found
            .as_ref()
            .and_then(|f| f.annotations.get(crate::digest::ANNOTATION))
            == Some(&image.context_digest);
        match (entry, found) {
            // Staged from other content (the context changed since, version not bumped), or from
            // content nothing records: never merged beside the other platforms.
            (Some(_), _) if !fresh => {
                stale.push(platform.clone());
                missing.push(platform);
            }
            (Some(entry), Some(found)) => staged.push(Staged {
                platform,
                repository,
                entry,
                index_digest: found.digest,
            }),
            _ => missing.push(platform),
        }
    }
    let complete = missing.is_empty() && !staged.is_empty();
    let ctx = &loaded.project.contexts[image.ctx];
    let tags = if complete {
        crate::plan::steps::index_tags(&image, &ctx.tags, opts.no_latest)
    } else {
        Vec::new()
    };
    let arch_tags = if complete && opts.arch_tags {
        crate::plan::steps::arch_tags(&image.version, &image.wanted)
    } else {
        BTreeMap::new()
    };
    Ok(MergeImage {
        name: image.name.clone(),
        version: image.version.clone(),
        published: image
            .published
            .as_ref()
            .map(|p| p.platforms())
            .unwrap_or_default(),
        staged,
        missing,
        stale,
        drift: image.drift.is_some(),
        tags,
        arch_tags,
        image,
    })
}

/// Writes the index of every complete image: the staged manifests mounted into the final
/// repository, then the platform tags, then the index under its tags, the version last. A job
/// that finds the very index it would write already written (another merge of the same staged
/// state ran at the same time) says so and goes on.
pub async fn execute(reg: &Registry, images: &[MergeImage]) -> anyhow::Result<()> {
    let writer = IndexWriter::new(reg);
    let mut written = Vec::new();
    for m in images.iter().filter(|m| m.result() == Outcome::Merged) {
        let w = writer.write(&index_write(m)).await.map_err(|e| {
            e.context(format!(
                "merging {}:{} (nothing of it was tagged)",
                m.name, m.version
            ))
        })?;
        let from_stage = m
            .staged
            .iter()
            .map(|s| s.platform.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        if w.by_another_job {
            eprintln!(
                "merged {}:{}: another job merged the same staged images at the same time and \
                 wrote this very index ({}); nothing to do",
                m.name, m.version, w.digest
            );
        } else {
            eprintln!(
                "merged {}:{}: {from_stage} from the stage",
                m.name, m.version
            );
            written.push(w);
        }
    }
    if let Some((_, conflict)) = writer.settle(&written).await.into_iter().next() {
        anyhow::bail!(conflict);
    }
    Ok(())
}

/// The index write of a complete image: its staged platforms over what is published.
fn index_write(m: &MergeImage) -> IndexWrite {
    IndexWrite {
        repository: m.name.clone(),
        label: format!("{}:{}", m.name, m.version),
        new: m
            .staged
            .iter()
            .map(|s| NewImage {
                entry: s.entry.clone(),
                from: s.repository.clone(),
                node: None,
            })
            .collect(),
        guard: Guard::Unchanged(m.image.published.as_ref().map(|p| p.digest.clone())),
        keep_published: true,
        annotations: crate::execute::image_annotations(&m.image),
        arch_tags: m.arch_tags.clone(),
        tags: m.tags.clone(),
    }
}

/// `--prune-stage`, after the merge wrote its indexes: deletes the staging tags (each stage index
/// by digest) of every image whose final index is complete and whose descendants' are too: the
/// ones this merge wrote, and the ones published already, whose stage holds links a stage run
/// made or a merge that did not prune left. A stage job of a descendant still to be published
/// pulls its parents from the stage (`FROM REG/cip-stage/<os>-<arch>/NAME:VERSION`), so an image
/// with such a descendant keeps its stage until a later merge finds them all published; a later
/// stage run links published parents from their final indexes. Incomplete images keep theirs.
/// `all` are every image of the project (`images` may be the targets only), for the descendants.
/// A registry that refuses deletes is said once; that is no failure: the staging tags stay, as
/// without the flag.
pub async fn prune_stage(
    reg: &Registry,
    loaded: &Loaded,
    all: &[MergeImage],
    images: &[MergeImage],
    namespace: &str,
) -> anyhow::Result<()> {
    let mut deleted = 0;
    for m in images.iter().filter(|m| m.result() != Outcome::Incomplete) {
        let waiting = descendants_not_published(loaded, all, m);
        if !waiting.is_empty() {
            eprintln!(
                "kept the stage of {}:{}: {} below it {} not published in full yet, and {} stage \
                 jobs pull it from there",
                m.name,
                m.version,
                waiting.join(", "),
                if waiting.len() == 1 { "is" } else { "are" },
                if waiting.len() == 1 { "its" } else { "their" },
            );
            continue;
        }
        for (repository, digest) in stage_indexes(reg, m, namespace).await? {
            match reg.delete_manifest(&repository, &digest).await? {
                Deleted::Deleted => {
                    deleted += 1;
                    eprintln!(
                        "pruned {}/{repository}:{} ({}:{} is published in full)",
                        reg.address(),
                        m.version,
                        m.name,
                        m.version
                    );
                }
                Deleted::Absent => {}
                Deleted::Unsupported => {
                    eprintln!(
                        "--prune-stage: registry {} does not delete manifests (405 UNSUPPORTED): \
                         the staging tags stay (a distribution registry deletes with \
                         storage.delete.enabled: true)",
                        reg.host()
                    );
                    return Ok(());
                }
            }
        }
    }
    if deleted > 0 {
        eprintln!("{deleted} staging tag(s) pruned");
    }
    Ok(())
}

/// The descendants of `m` (as `NAME:VERSION`) whose final index is not complete: their stage
/// jobs may still need `m`'s stage. A descendant the merge did not look at counts as such.
fn descendants_not_published(loaded: &Loaded, all: &[MergeImage], m: &MergeImage) -> Vec<String> {
    loaded
        .graph
        .descendants(m.image.ctx)
        .into_iter()
        .filter_map(|d| match all.iter().find(|o| o.image.ctx == d) {
            Some(o) if o.result() != Outcome::Incomplete => None,
            Some(o) => Some(format!("{}:{}", o.name, o.version)),
            None => {
                let ctx = &loaded.project.contexts[d];
                Some(format!("{}:{}", ctx.name, ctx.version))
            }
        })
        .collect()
}

/// The stage indexes of a complete image, as `(repository, digest)`: those the merge took, or
/// for an image published already, whatever its platforms' stages hold for the version.
async fn stage_indexes(
    reg: &Registry,
    m: &MergeImage,
    namespace: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    if m.result() == Outcome::Merged {
        return Ok(m
            .staged
            .iter()
            .map(|s| (s.repository.clone(), s.index_digest.clone()))
            .collect());
    }
    let mut found = Vec::new();
    for platform in &m.image.wanted {
        let repository = format!("{}/{}", plan::stage_namespace(namespace, platform), m.name);
        if let Some(p) = reg.published(&repository, &m.version).await? {
            found.push((repository, p.digest));
        }
    }
    Ok(found)
}

/// One row per image the merge did something with, or could not; the incomplete ones say what
/// they lack and where it was looked for.
pub fn render(images: &[MergeImage], registry: &str, namespace: &str) -> String {
    let mut rows = vec![[
        "IMAGE".to_string(),
        "VERSION".into(),
        "PUBLISHED".into(),
        "STAGED".into(),
        "RESULT".into(),
    ]];
    let list = |ps: &mut dyn Iterator<Item = &Platform>| {
        let v: Vec<String> = ps.map(Platform::to_string).collect();
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(",")
        }
    };
    let mut notes = String::new();
    let up_to_date = images
        .iter()
        .filter(|m| m.result() == Outcome::UpToDate)
        .count();
    for m in images.iter().filter(|m| m.result() != Outcome::UpToDate) {
        let result = match m.result() {
            Outcome::Incomplete => format!("incomplete: lacks {}", list(&mut m.missing.iter())),
            _ => "merged".to_string(),
        };
        rows.push([
            m.name.clone(),
            m.version.clone(),
            list(&mut m.published.iter()),
            list(&mut m.staged.iter().map(|s| &s.platform)),
            result,
        ]);
        for p in &m.missing {
            let why = if m.stale.contains(p) {
                "staged from an older context (rerun that platform's --stage job)"
            } else {
                "not staged"
            };
            notes.push_str(&format!(
                "{}:{} {p}: {why}: {registry}/{}/{}:{}\n",
                m.name,
                m.version,
                plan::stage_namespace(namespace, p),
                m.name,
                m.version
            ));
        }
    }
    let mut out = if rows.len() > 1 {
        crate::output::table(&rows)
    } else {
        String::new()
    };
    out.push_str(&notes);
    if up_to_date > 0 {
        out.push_str(&format!(
            "{} already published in full\n",
            crate::output::count(up_to_date, "image")
        ));
    }
    out
}

/// The images a merge with `targets` is about: the ones named (and their descendants with
/// `--with-descendants`), plus every parent they build on that is not published in full yet (as
/// every run's targets bring the parents they need); no target: every image.
pub fn select(
    loaded: &Loaded,
    images: Vec<MergeImage>,
    targets: &crate::options::Targets,
) -> anyhow::Result<Vec<MergeImage>> {
    let Some(mut chosen) = loaded.targeted(targets)? else {
        return Ok(images);
    };
    let unpublished: std::collections::HashSet<usize> = images
        .iter()
        .filter(|m| m.result() != Outcome::UpToDate)
        .map(|m| m.image.ctx)
        .collect();
    let needed: Vec<usize> = chosen
        .iter()
        .flat_map(|&c| loaded.graph.ancestors(c))
        .filter(|a| unpublished.contains(a))
        .collect();
    chosen.extend(needed);
    Ok(images
        .into_iter()
        .filter(|m| chosen.contains(&m.image.ctx))
        .collect())
}
