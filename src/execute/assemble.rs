//! The index steps: an image's index assembled from the platforms the run pushed (over what is
//! published), and a stage's link of a platform published in final form. Both are written by the
//! one index writer.
use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;

use super::index_writer::{
    Annotations, Guard, ImageAnnotations, IndexWrite, IndexWriter, NewImage,
};
use super::{RecordIndex, StepRunner};
use crate::plan::steps::{Assemble, ImageId, Link};
use crate::plan::ImagePlan;
use crate::platform::Platform;

/// The annotations cip publishes an image's version with (see `index_writer`): its version, its
/// context digest now, and whether a drifted version keeps the one it was published with.
pub fn image_annotations(image: &ImagePlan) -> Annotations {
    Annotations::Image(ImageAnnotations {
        version: image.version.clone(),
        context_digest: image.context_digest.clone(),
        // A drifted version not forced keeps the digest it was published with: adding a
        // platform under `--allow-drift` never hides the drift from later runs.
        keep_recorded_digest: image.drift.is_some() && !image.forced,
    })
}

impl StepRunner {
    /// Writes the index of all platforms under the plan's tags, the version tag last. The
    /// platforms this run did not build stay as published, even in a forced rebuild of some
    /// platforms.
    pub(super) async fn assemble(&self, id: ImageId, a: &Assemble) -> anyhow::Result<()> {
        let reg = self
            .registry
            .as_ref()
            .context("an assemble step needs a registry")?;
        let image = self.plan.image(id);
        let write = IndexWrite {
            repository: a.name.clone(),
            label: format!("{}:{}", image.name, image.version),
            new: self.shared().entries.get(&id).cloned().unwrap_or_default(),
            // Refuse to replace a tag that moved since the plan was made (another publisher raced us).
            guard: Guard::Unchanged(image.published.as_ref().map(|p| p.digest.clone())),
            keep_published: true,
            annotations: image_annotations(image),
            arch_tags: a.arch_tags.clone(),
            tags: a.tags.clone(),
        };
        let record = Arc::new(RecordIndex {
            shared: self.shared.clone(),
            image: id,
        });
        let writer = self
            .after_index
            .iter()
            .fold(IndexWriter::new(reg).after_index_written(record), |w, h| {
                w.after_index_written(h.clone())
            });
        let written = writer.write(&write).await?;
        if !written.replaced.is_empty() {
            self.progress.println(&format!(
                "{}: replaced the published {} entry; kept {}",
                written.label,
                list(&written.replaced),
                list(&written.kept),
            ));
        }
        Ok(())
    }

    /// Makes the final repository's image of one platform available in the stage: its blobs
    /// mounted, its manifest put, and the stage's index for the version (with the final index's
    /// annotations) written to hold it.
    pub(super) async fn link(&self, l: &Link) -> anyhow::Result<()> {
        let reg = self
            .registry
            .as_ref()
            .context("a link step needs a registry")?;
        let published = reg
            .published(&l.from_name, &l.tag)
            .await?
            .with_context(|| format!("{}:{} is no longer published", l.from, l.tag))?;
        let entry = published
            .entries
            .iter()
            .find(|e| e.platform.as_ref() == Some(&l.platform))
            .cloned()
            .with_context(|| format!("{}:{} no longer holds {}", l.from, l.tag, l.platform))?;
        let staged = reg.published(&l.name, &l.tag).await?;
        let write = IndexWrite {
            repository: l.name.clone(),
            label: format!("{}:{}", l.repository, l.tag),
            new: vec![NewImage {
                entry,
                from: l.from_name.clone(),
                node: None,
            }],
            // A stage is this pipeline's scratch space: only a concurrent change of it is refused.
            guard: Guard::Unchanged(staged.map(|s| s.digest)),
            keep_published: true,
            annotations: Annotations::Fixed(published.annotations),
            arch_tags: BTreeMap::new(),
            tags: vec![l.tag.clone()],
        };
        IndexWriter::new(reg).write(&write).await.map(|_| ())
    }
}

/// Platforms as a note lists them: `linux/amd64,linux/arm64`, or `-`.
fn list(ps: &[Platform]) -> String {
    if ps.is_empty() {
        "-".into()
    } else {
        ps.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}
