//! The one place an image index is written. A publish's assemble step, a stage run's links,
//! `publish --merge` and `cip merge` each describe what they want as an [`IndexWrite`] and get a
//! [`Written`] back. In order, for every index:
//! 1. each new platform image is checked against its config (`os`/`architecture`/`variant`): an
//!    entry never holds an image of another platform, whoever built it;
//! 2. its manifest and blobs are mounted into the index's repository when they are elsewhere;
//! 3. the race guard: the version tag still holds what the caller saw (or no index cip published);
//! 4. the entries are merged with what is published (a platform is never dropped; the replaced
//!    ones are reported), annotated, and serialised once;
//! 5. the arch tags, then each tag, the version tag (the last) last;
//! 6. the hooks ([`AfterIndexWritten`]): what signing and attestations will use.
//!
//! A write that loses a race against another job writing the very same index (two fan-in jobs on
//! the same staged state) is no failure: the writer sees the identical index and says so.
//! [`IndexWriter::settle`] reads the version tags again after a run wrote them.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde_json::{json, Map, Value};

use crate::platform::Platform;
use crate::registry::index::{self, Entry, Published};
use crate::registry::{merge, Registry};

/// How long after tagging a run looks again at the version tags it wrote. Another run that checked a
/// tag before this run wrote it writes its own within moments; waiting this long lets the later
/// writer's tag show, so at most one of two racing runs reports success.
pub const TAG_SETTLE: Duration = Duration::from_millis(500);

/// How often a write that failed on a registry error is tried again, after looking whether another
/// job wrote the same index meanwhile. Two jobs mounting the same blobs into one repository make a
/// distribution registry answer `MANIFEST_BLOB_UNKNOWN` / `DIGEST_INVALID` for a moment.
const ATTEMPTS: u32 = 4;

/// A platform image that enters the index.
#[derive(Debug, Clone)]
pub struct NewImage {
    /// Its index entry (with its platform).
    pub entry: Entry,
    /// The repository (name within the registry) that holds its manifest; mounted into the
    /// index's repository when it is another.
    pub from: String,
    /// The build node that made it, where known (named when its config says another platform).
    pub node: Option<String>,
}

/// What the version tag must hold for the write to go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// What the caller planned from: this index digest, or no tag (None). Another digest means
    /// another publisher wrote it meanwhile.
    Unchanged(Option<String>),
    /// `cip merge --tag`: anything but an index cip published (it records a context digest),
    /// unless forced.
    NotPublishedByCip { force: bool },
}

/// The index's annotations.
#[derive(Debug, Clone)]
pub enum Annotations {
    /// As given.
    Fixed(BTreeMap<String, String>),
    /// Those cip publishes an image's version with: its version and its context digest (see
    /// [`image_annotations`]).
    Image(ImageAnnotations),
}

/// What the annotations of an image's version say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageAnnotations {
    pub version: String,
    /// The digest of its context now.
    pub context_digest: String,
    /// Keep the context digest the published index records, if it records one (a drifted
    /// version, not forced).
    pub keep_recorded_digest: bool,
}

/// One index to write.
#[derive(Debug, Clone)]
pub struct IndexWrite {
    /// The repository (name within the registry).
    pub repository: String,
    /// How messages name it: `busybox:1.0.0`.
    pub label: String,
    pub new: Vec<NewImage>,
    pub guard: Guard,
    /// Keep the platforms the version tag holds that `new` does not replace (every write but
    /// `cip merge`, which writes exactly its sources).
    pub keep_published: bool,
    pub annotations: Annotations,
    /// `--arch-tags`: each platform's manifest tagged, before the index's tags.
    pub arch_tags: BTreeMap<String, Platform>,
    /// In the order written: the version tag last, so its presence proves the others were written.
    pub tags: Vec<String>,
}

impl IndexWrite {
    fn version_tag(&self) -> anyhow::Result<&str> {
        self.tags
            .last()
            .map(String::as_str)
            .with_context(|| format!("{}: an index write without a tag", self.label))
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    pub repository: String,
    pub label: String,
    /// The index's digest (what every tag of `tags` points at).
    pub digest: String,
    /// The exact bytes pushed.
    pub bytes: Bytes,
    pub entries: Vec<Entry>,
    pub tags: Vec<String>,
    /// Published platforms whose entries the new images replaced (a forced rebuild).
    pub replaced: Vec<Platform>,
    /// Published platforms kept beside the replaced ones.
    pub kept: Vec<Platform>,
    /// Another job had written this very index (same bytes) by the time this one would have:
    /// nothing of it was written by this job.
    pub by_another_job: bool,
}

/// Called after an index is written (and after one found written identically by another job),
/// in the order the hooks were added; an error fails the write. What signing and attestations
/// plug into.
pub trait AfterIndexWritten: Send + Sync {
    fn after_index_written<'a>(
        &'a self,
        reg: &'a Registry,
        written: &'a Written,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// An error that no retry changes: a refused write.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refused(message: String) -> anyhow::Error {
    anyhow::Error::new(Refused(message))
}

/// Writes indexes into one registry.
pub struct IndexWriter<'a> {
    reg: &'a Registry,
    hooks: Vec<Arc<dyn AfterIndexWritten>>,
}

impl<'a> IndexWriter<'a> {
    pub fn new(reg: &'a Registry) -> Self {
        IndexWriter {
            reg,
            hooks: Vec::new(),
        }
    }

    /// Adds a hook called after each index this writer writes.
    pub fn after_index_written(mut self, hook: Arc<dyn AfterIndexWritten>) -> Self {
        self.hooks.push(hook);
        self
    }

    /// The index `w` would write, without writing anything (`cip merge --dry-run`): its bytes and
    /// digest. The new images are checked as a write checks them.
    pub async fn preview(&self, w: &IndexWrite) -> anyhow::Result<(Bytes, String)> {
        self.check_platforms(w).await?;
        let now = self.now(w).await?;
        let (_, bytes, digest) = compose(w, now.as_ref());
        Ok((bytes, digest))
    }

    /// Writes one index (see the module's steps); an error leaves its version tag unwritten.
    pub async fn write(&self, w: &IndexWrite) -> anyhow::Result<Written> {
        self.check_platforms(w).await?;
        let mut attempt = 1;
        let written = loop {
            let error = match self.attempt(w).await {
                Ok(written) => break written,
                Err(e) => e,
            };
            if error.downcast_ref::<Refused>().is_some() {
                return Err(error);
            }
            // Another job may have been writing the same index: what it left decides.
            tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
            // A failed look is no answer: the write's own error is the one to tell.
            if let Ok(Some(same)) = self.written_by_another_job(w).await {
                break same;
            }
            if attempt >= ATTEMPTS {
                return Err(error.context(format!(
                    "writing the index of {} failed {ATTEMPTS} times ({} does not hold it, so no \
                     other job wrote the same index meanwhile)",
                    w.label,
                    self.reg.host()
                )));
            }
            attempt += 1;
        };
        for hook in &self.hooks {
            hook.after_index_written(self.reg, &written)
                .await
                .with_context(|| format!("after writing the index of {}", w.label))?;
        }
        Ok(written)
    }

    /// Reads again, after [`TAG_SETTLE`], the version tag of each index written: one that now
    /// points elsewhere was overwritten by a concurrent run. Returns, per index of `written` (by
    /// position), the sentence that says what happened to it.
    pub async fn settle(&self, written: &[Written]) -> Vec<(usize, String)> {
        if written.is_empty() {
            return Vec::new();
        }
        tokio::time::sleep(TAG_SETTLE).await;
        let mut conflicts = Vec::new();
        for (i, w) in written.iter().enumerate() {
            let Some(tag) = w.tags.last() else {
                continue;
            };
            let found = self
                .reg
                .manifest_raw(&self.reg.tag_ref(&w.repository, tag))
                .await;
            let conflict = match found {
                Ok(Some((_, digest))) if digest == w.digest => continue,
                Ok(Some((_, digest))) => format!(
                    "{} now points at {digest}, not at what this run published ({}): another \
                     publish of the same version ran at the same time; check which content you want and \
                     republish it with --force {}",
                    w.label,
                    w.digest,
                    w.label.split(':').next().unwrap_or_default()
                ),
                Ok(None) => format!(
                    "{} disappeared after this run tagged it ({})",
                    w.label, w.digest
                ),
                Err(e) => format!("cannot verify {}: {e:#}", w.label),
            };
            conflicts.push((i, conflict));
        }
        conflicts
    }

    /// Every new image is of its entry's platform, by its config.
    async fn check_platforms(&self, w: &IndexWrite) -> anyhow::Result<()> {
        for n in &w.new {
            let Some(platform) = &n.entry.platform else {
                continue;
            };
            let what = format!(
                "the {platform} image of {} ({}@{})",
                w.label, n.from, n.entry.digest
            );
            check_platform(
                self.reg,
                &n.from,
                &n.entry.digest,
                platform,
                n.node.as_deref(),
                &what,
            )
            .await?;
        }
        Ok(())
    }

    /// What the version tag holds now.
    async fn now(&self, w: &IndexWrite) -> anyhow::Result<Option<Published>> {
        self.reg.published(&w.repository, w.version_tag()?).await
    }

    async fn attempt(&self, w: &IndexWrite) -> anyhow::Result<Written> {
        for n in w.new.iter().filter(|n| n.from != w.repository) {
            merge::mount_image(self.reg, &n.from, &w.repository, &n.entry.digest).await?;
        }
        let now = self.now(w).await?;
        if let Some(why) = self.guard_refuses(w, now.as_ref()) {
            // Another job may have written exactly this index: then there is nothing to do.
            if let Some(same) = identical(w, now.as_ref()) {
                return Ok(same);
            }
            return Err(refused(why));
        }
        let (entries, bytes, digest) = compose(w, now.as_ref());
        merge::tag_platforms(self.reg, &w.repository, &entries, &w.arch_tags).await?;
        for tag in &w.tags {
            self.reg
                .put_manifest(
                    &self.reg.tag_ref(&w.repository, tag),
                    bytes.clone(),
                    index::OCI_INDEX,
                )
                .await?;
        }
        Ok(written(w, now.as_ref(), entries, bytes, digest, false))
    }

    /// Why the guard refuses to write over `now`, if it does.
    fn guard_refuses(&self, w: &IndexWrite, now: Option<&Published>) -> Option<String> {
        match &w.guard {
            Guard::Unchanged(before) => {
                let found = now.map(|p| p.digest.as_str());
                (found != before.as_deref()).then(|| {
                    format!(
                        "{} changed on {} since this run looked (another publish at the same time?); \
                         not overwriting it (rerun to see what it holds now)",
                        w.label,
                        self.reg.host()
                    )
                })
            }
            Guard::NotPublishedByCip { force: false } => now
                .filter(|p| p.annotations.contains_key(crate::digest::ANNOTATION))
                .map(|p| {
                    format!(
                        "{}/{}:{} is an index cip published (it records the context digest of \
                         its version, {}); cip merge does not overwrite it: pass --force to \
                         replace it anyway",
                        self.reg.address(),
                        w.repository,
                        w.tags.last().map(String::as_str).unwrap_or_default(),
                        p.digest
                    )
                }),
            Guard::NotPublishedByCip { force: true } => None,
        }
    }

    /// After a failed attempt: whether the version tag now holds exactly the index this write
    /// would have written (another job wrote it).
    async fn written_by_another_job(&self, w: &IndexWrite) -> anyhow::Result<Option<Written>> {
        let now = self.now(w).await?;
        Ok(identical(w, now.as_ref()))
    }
}

/// The entries, bytes and digest of the index `w` writes over `now`.
fn compose(w: &IndexWrite, now: Option<&Published>) -> (Vec<Entry>, Bytes, String) {
    let base = now.filter(|_| w.keep_published);
    let entries = index::merge(base, w.new.iter().map(|n| n.entry.clone()).collect());
    let annotations = match &w.annotations {
        Annotations::Fixed(a) => a.clone(),
        Annotations::Image(image) => image_annotations(image, now),
    };
    let (bytes, digest) = build_index(&entries, &annotations);
    (entries, bytes, digest)
}

/// Serialises an OCI image index once: the bytes to push and their digest. Only the writer
/// serialises an index, so every index cip writes is composed the same way.
fn build_index(entries: &[Entry], annotations: &BTreeMap<String, String>) -> (Bytes, String) {
    let mut doc = Map::new();
    doc.insert("schemaVersion".into(), 2.into());
    doc.insert("mediaType".into(), index::OCI_INDEX.into());
    doc.insert(
        "manifests".into(),
        Value::Array(entries.iter().map(|e| e.descriptor.clone()).collect()),
    );
    if !annotations.is_empty() {
        doc.insert("annotations".into(), json!(annotations));
    }
    let bytes = serde_json::to_vec_pretty(&Value::Object(doc)).expect("JSON values serialise");
    let digest = index::sha256_digest(&bytes);
    (Bytes::from(bytes), digest)
}

/// `now`, when it is the very index `w` would write over it.
fn identical(w: &IndexWrite, now: Option<&Published>) -> Option<Written> {
    let now = now?;
    let (entries, bytes, digest) = compose(w, Some(now));
    (digest == now.digest).then(|| written(w, Some(now), entries, bytes, digest, true))
}

fn written(
    w: &IndexWrite,
    now: Option<&Published>,
    entries: Vec<Entry>,
    bytes: Bytes,
    digest: String,
    by_another_job: bool,
) -> Written {
    let replaced = match now.filter(|_| w.keep_published && !by_another_job) {
        Some(now) => replaced_platforms(now, &w.new),
        None => Vec::new(),
    };
    let kept = entries
        .iter()
        .filter_map(|e| e.platform.clone())
        .filter(|p| {
            !replaced.contains(p) && !w.new.iter().any(|n| n.entry.platform.as_ref() == Some(p))
        })
        .collect();
    Written {
        repository: w.repository.clone(),
        label: w.label.clone(),
        digest,
        bytes,
        entries,
        tags: w.tags.clone(),
        replaced,
        kept,
        by_another_job,
    }
}

/// The published platforms that new images replace.
fn replaced_platforms(published: &Published, new: &[NewImage]) -> Vec<Platform> {
    let have = published.platforms();
    let mut out: Vec<Platform> = new
        .iter()
        .filter_map(|n| n.entry.platform.clone())
        .filter(|p| have.contains(p))
        .collect();
    out.sort();
    out
}

/// The annotations of an index cip publishes: the version, and the context digest. A drifted
/// version (published from other content, version not bumped) keeps the digest it was published
/// with unless forced, so adding a platform under `--allow-drift` never hides the drift from
/// later runs.
fn image_annotations(
    image: &ImageAnnotations,
    published: Option<&Published>,
) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::new();
    annotations.insert(index::VERSION_ANNOTATION.to_string(), image.version.clone());
    let recorded = published.and_then(|p| p.annotations.get(crate::digest::ANNOTATION));
    let context_digest = match recorded {
        Some(recorded) if image.keep_recorded_digest => recorded.clone(),
        _ => image.context_digest.clone(),
    };
    // Lets later runs tell a context changed without a version bump (see `digest`).
    annotations.insert(crate::digest::ANNOTATION.to_string(), context_digest);
    annotations
}

/// Checks that manifest `digest` of `repo` is a single image of `platform`, by its config.
/// `what` names it in the error, `node` the node that built it, where known.
pub async fn check_platform(
    reg: &Registry,
    repo: &str,
    digest: &str,
    platform: &Platform,
    node: Option<&str>,
    what: &str,
) -> anyhow::Result<()> {
    let (raw, _) = reg
        .manifest_raw(&reg.digest_ref(repo, digest))
        .await?
        .with_context(|| format!("{what}: {} has no such manifest", reg.host()))?;
    check_manifest(reg, repo, &raw, digest, platform, node, what).await
}

/// [`check_platform`] of a manifest already read (`raw`).
pub async fn check_manifest(
    reg: &Registry,
    repo: &str,
    raw: &[u8],
    digest: &str,
    platform: &Platform,
    node: Option<&str>,
    what: &str,
) -> anyhow::Result<()> {
    let config_digest = match index::parse(raw, digest)? {
        index::Parsed::Manifest { config_digest, .. } => config_digest,
        index::Parsed::Index(_) => {
            return Err(refused(format!(
                "{what} is an index, not the single image of {platform} an index entry holds"
            )))
        }
    };
    let config = reg
        .blob_bytes(repo, &config_digest)
        .await
        .with_context(|| format!("reading the config of {what}"))?;
    let found = index::config_platform(&config).with_context(|| format!("the config of {what}"))?;
    if same_platform(found.as_ref(), platform) {
        return Ok(());
    }
    let built = node.map_or_else(String::new, |n| format!(", built on node {n},"));
    Err(refused(format!(
        "{what}{built} is an image for {}, not {platform} (its config says so): its builder did \
         not build the platform asked; nothing of it was tagged",
        found.map_or_else(|| "no platform".to_string(), |f| f.to_string()),
    )))
}

/// Whether a config's platform is `wanted`, as containerd compares them: `arm64` without a
/// variant is `arm64/v8`, `arm` without one is `arm/v7`.
pub fn same_platform(found: Option<&Platform>, wanted: &Platform) -> bool {
    found.is_some_and(|f| normalised(f) == normalised(wanted))
}

fn normalised(p: &Platform) -> Platform {
    let variant = match (p.arch.as_str(), p.variant.as_deref()) {
        ("arm64", Some("v8")) => None,
        ("arm", None) => Some("v7"),
        (_, v) => v,
    };
    Platform::new(&p.os, &p.arch, variant)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn platforms_compare_as_containerd_normalises_them() {
        assert!(same_platform(Some(&p("linux/arm64")), &p("linux/arm64/v8")));
        assert!(same_platform(Some(&p("linux/arm64/v8")), &p("linux/arm64")));
        assert!(same_platform(Some(&p("linux/arm")), &p("linux/arm/v7")));
        assert!(!same_platform(Some(&p("linux/arm/v6")), &p("linux/arm/v7")));
        assert!(!same_platform(Some(&p("linux/amd64")), &p("linux/arm64")));
        assert!(!same_platform(Some(&p("windows/amd64")), &p("linux/amd64")));
        assert!(!same_platform(None, &p("linux/amd64")));
    }

    fn write_of(new: &[(&str, &str)], keep: bool) -> IndexWrite {
        IndexWrite {
            repository: "app".into(),
            label: "app:1.0".into(),
            new: new
                .iter()
                .map(|(platform, digest)| NewImage {
                    entry: index::new_entry(&p(platform), digest, 1, "m"),
                    from: "app".into(),
                    node: None,
                })
                .collect(),
            guard: Guard::Unchanged(None),
            keep_published: keep,
            annotations: Annotations::Fixed(BTreeMap::from([("k".into(), "v".into())])),
            arch_tags: BTreeMap::new(),
            tags: vec!["latest".into(), "1.0".into()],
        }
    }

    fn published(entries: &[(&str, &str)], digest: &str) -> Published {
        Published {
            digest: digest.into(),
            is_index: true,
            entries: entries
                .iter()
                .map(|(pl, d)| index::new_entry(&p(pl), d, 1, "m"))
                .collect(),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn a_write_keeps_published_platforms_and_reports_the_replaced_ones() {
        let w = write_of(&[("linux/arm64", "sha256:b2")], true);
        let now = published(
            &[("linux/amd64", "sha256:a1"), ("linux/arm64", "sha256:b1")],
            "sha256:old",
        );
        let (entries, bytes, digest) = compose(&w, Some(&now));
        assert_eq!(index::sha256_digest(&bytes), digest);
        let done = written(&w, Some(&now), entries, bytes, digest, false);
        let digests: Vec<&str> = done.entries.iter().map(|e| e.digest.as_str()).collect();
        assert_eq!(digests, ["sha256:a1", "sha256:b2"]);
        assert_eq!(done.replaced, [p("linux/arm64")]);
        assert_eq!(done.kept, [p("linux/amd64")]);
    }

    #[test]
    fn cip_merge_writes_exactly_its_sources() {
        let w = write_of(&[("linux/arm64", "sha256:b2")], false);
        let now = published(&[("linux/amd64", "sha256:a1")], "sha256:old");
        let (entries, _, _) = compose(&w, Some(&now));
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn the_index_another_job_wrote_is_recognised_as_this_one() {
        let w = write_of(&[("linux/amd64", "sha256:a1")], true);
        let (entries, bytes, digest) = compose(&w, None);
        assert!(identical(&w, None).is_none());
        let theirs = Published {
            digest: digest.clone(),
            is_index: true,
            entries,
            annotations: BTreeMap::from([("k".into(), "v".into())]),
        };
        let same = identical(&w, Some(&theirs)).expect("the same index");
        assert!(same.by_another_job);
        assert_eq!(same.bytes, bytes);
        let other = Published {
            digest: "sha256:other".into(),
            ..theirs
        };
        assert!(identical(&w, Some(&other)).is_none());
    }

    #[test]
    fn index_bytes_and_digest_agree() {
        let entries = vec![index::new_entry(&p("linux/amd64"), "sha256:a1", 1, "m")];
        let (bytes, digest) = build_index(&entries, &BTreeMap::new());
        assert_eq!(index::sha256_digest(&bytes), digest);
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["mediaType"], index::OCI_INDEX);
        assert_eq!(doc["manifests"][0]["platform"]["architecture"], "amd64");
        assert!(doc.get("annotations").is_none(), "no annotations, no key");
    }

    /// A drifted version not forced keeps the context digest it was published with; any other
    /// takes its context's digest now.
    #[test]
    fn a_drifted_version_keeps_its_recorded_context_digest() {
        let mut now = published(&[("linux/amd64", "sha256:a1")], "sha256:old");
        now.annotations
            .insert(crate::digest::ANNOTATION.into(), "sha256:then".into());
        let image = |keep| ImageAnnotations {
            version: "1.0".into(),
            context_digest: "sha256:now".into(),
            keep_recorded_digest: keep,
        };
        let of = |keep, published| image_annotations(&image(keep), published);
        let digest = crate::digest::ANNOTATION;
        assert_eq!(of(true, Some(&now))[digest], "sha256:then");
        assert_eq!(of(false, Some(&now))[digest], "sha256:now");
        assert_eq!(of(true, None)[digest], "sha256:now");
        assert_eq!(of(false, None)[index::VERSION_ANNOTATION], "1.0");
    }
}
