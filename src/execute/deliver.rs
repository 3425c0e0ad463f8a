//! Delivering a built image where its step's output says, by one [`Deliver`]: into the registry
//! by the node's route (pushed by cip from an exported OCI layout, or pushed by the node itself
//! to a staging name and adopted into the final repository registry-side), or kept in the
//! builder's store under the plan's extra tags. Each push is announced to the run's
//! [`AfterImagePushed`] hooks (what records the run; signing and attestations later).
use std::sync::Arc;

use anyhow::{bail, Context as _};
use futures_util::future::BoxFuture;

use super::index_writer;
use crate::builders::{Backend, RegistryAccess};
use crate::plan::steps::{Build, ImageId, NodeId, Output, Plan, Route, Staging};
use crate::plan::ImagePlan;
use crate::platform::Platform;
use crate::progress::Display;
use crate::registry::index::{self, Entry};
use crate::registry::merge;
use crate::registry::push::{push_layout_from, PushedImage};
use crate::registry::Registry;

/// A platform image pushed into its final repository (not yet in an index).
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The plan's image it is a platform of.
    pub image: ImageId,
    /// The repository (name within the registry) that holds it now.
    pub repository: String,
    pub platform: Platform,
    /// Its index entry: its manifest digest, size and media type, and `platform`.
    pub entry: Entry,
    /// The build node that made it (None for the local builder).
    pub node: Option<String>,
}

impl Pushed {
    /// Its manifest digest.
    pub fn digest(&self) -> &str {
        &self.entry.digest
    }
}

/// Called after each platform image is pushed, in the order the hooks were added; an error
/// fails the push (the image is reported `push failed`). What signing and attestations of
/// single images plug into.
pub trait AfterImagePushed: Send + Sync {
    fn after_image_pushed<'a>(
        &'a self,
        reg: &'a Registry,
        pushed: &'a Pushed,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// Delivers built images: what every route needs from the run.
pub(super) struct Deliver<'a> {
    pub plan: &'a Plan,
    pub registry: Option<&'a Registry>,
    /// How a node reaches the registry (the direct route).
    pub access: &'a RegistryAccess,
    pub progress: &'a Display,
    pub after_push: &'a [Arc<dyn AfterImagePushed>],
    /// Where the private directories of pushes go (`TMPDIR`, see `scratch`).
    pub temp_dir: &'a std::path::Path,
}

impl Deliver<'_> {
    /// Pushes the image `builder` built for `b` (tagged `b.tag`) into its final repository, by
    /// the route of node `on`, and calls the hooks. The builder's private tag is removed
    /// whatever happened: it is only a hand-over to the push.
    pub async fn push(
        &self,
        builder: &dyn Backend,
        image: ImageId,
        b: &Build,
        on: NodeId,
    ) -> anyhow::Result<()> {
        let Output::Push { name, .. } = &b.output else {
            bail!("a build kept in the store is not pushed");
        };
        let entry = match self.plan.nodes[on.0].route {
            Route::Direct => self.push_direct(builder, image, b, on).await,
            Route::ThroughCip => self.export_and_push(builder, image, b).await,
        };
        let _ = builder.remove_image(&b.tag).await;
        let node = &self.plan.nodes[on.0].name;
        let pushed = Pushed {
            image,
            repository: name.clone(),
            platform: b.platform.clone(),
            entry: entry?,
            node: (node != "local").then(|| node.clone()),
        };
        let reg = self.registry.context("a push step needs a registry")?;
        for hook in self.after_push {
            hook.after_image_pushed(reg, &pushed)
                .await
                .with_context(|| format!("after pushing {}@{}", name, pushed.digest()))?;
        }
        Ok(())
    }

    /// Keeps the image `builder` built for `b` in its store, tagged with the plan's other tags.
    pub async fn keep(
        &self,
        builder: &dyn Backend,
        b: &Build,
        also_tagged: &[String],
    ) -> anyhow::Result<()> {
        for tag in also_tagged {
            builder.tag_image(&b.tag, tag).await?;
        }
        Ok(())
    }

    /// The route through cip: the image exported from the builder's store as an OCI layout, and
    /// pushed by digest from there (its blobs mounted from its parents' repositories where they
    /// are).
    async fn export_and_push(
        &self,
        builder: &dyn Backend,
        image: ImageId,
        b: &Build,
    ) -> anyhow::Result<Entry> {
        let reg = self.registry.context("a push step needs a registry")?;
        // Where a killed run's layout is found and removed by the next run (see `scratch`).
        let dir = crate::scratch::private_dir(self.temp_dir, "layout")
            .context("cannot create a temporary directory for the image layout")?;
        let layout = dir.path().join("image");
        builder.export_oci_layout(&b.tag, &layout).await?;
        let img = self.plan.image(image);
        let line = self
            .progress
            .start(&format!("push {}:{} {}", img.name, img.version, b.platform));
        let Output::Push { name, .. } = &b.output else {
            bail!("a build kept in the store is not pushed");
        };
        let parents = self.parent_names(image, name);
        let report = |p: &PushedImage, total: usize| line.set_message(&push_counts(p, Some(total)));
        let pushed = push_layout_from(reg, name, &layout, &b.platform, &parents, &report)
            .await
            .with_context(|| {
                format!(
                    "pushing {}:{} for {} (the build succeeded)",
                    img.name, img.version, b.platform
                )
            });
        let done = match &pushed {
            Ok(p) => push_counts(p, None),
            Err(e) => format!("FAILED: {e:#}"),
        };
        self.progress.finish(line, &done, false);
        let pushed = pushed?;
        Ok(pushed.entry)
    }

    /// The direct route: node `on` pushes the image to its staging name, then cip copies it
    /// registry-side into the final repository by digest (blobs mounted, manifest put), and the
    /// staging name is removed (best effort). Nothing is tagged in the final repository.
    async fn push_direct(
        &self,
        builder: &dyn Backend,
        image: ImageId,
        b: &Build,
        on: NodeId,
    ) -> anyhow::Result<Entry> {
        let reg = self.registry.context("a push step needs a registry")?;
        let Output::Push {
            name,
            staging: Some(staging),
            ..
        } = &b.output
        else {
            bail!("a direct push needs the staging name the plan gives it");
        };
        let img = self.plan.image(image);
        let node = &self.plan.nodes[on.0].name;
        let line = self.progress.start(&format!(
            "push {}:{} {} from node {node}",
            img.name, img.version, b.platform
        ));
        let what = || {
            format!(
                "pushing {}:{} for {} from node {node} (the build succeeded)",
                img.name, img.version, b.platform
            )
        };
        let pushed = builder
            .push_to(&b.tag, &staging.reference, self.access, &b.log)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "{e}\n  hint: a node that cannot reach the registry takes push = \
                     \"through-cip\" in [nodes.{node}] of cip.toml"
                )
            })
            .with_context(what);
        let adopted = match pushed {
            Ok(()) => adopt_staged(reg, staging, name, &b.platform, node)
                .await
                .with_context(what),
            Err(e) => Err(e),
        };
        let done = match &adopted {
            Ok((_, m)) => format!(
                "pushed by the node to {}; {} blob(s) mounted into {name}, {} already there, {} copied",
                staging.reference, m.blobs_mounted, m.blobs_there, m.blobs_copied
            ),
            Err(e) => format!("FAILED: {e:#}"),
        };
        self.progress.finish(line, &done, false);
        if staging.remove {
            let known = adopted.as_ref().ok().map(|(e, _)| e.digest.as_str());
            self.remove_staged(reg, staging, img, known).await;
        }
        Ok(adopted?.0)
    }

    /// Removes the staged manifest from the registry, unless the fan-out's own tag of the version
    /// in that repository names the same manifest (a delete goes by digest). Best effort: a
    /// registry that refuses deletes keeps it, with a note in the progress output. `known`: its
    /// digest, when adopting it read it already.
    async fn remove_staged(
        &self,
        reg: &Registry,
        staging: &Staging,
        img: &ImagePlan,
        known: Option<&str>,
    ) {
        let digest = match known {
            Some(d) => d.to_string(),
            None => match reg
                .manifest_raw(&reg.tag_ref(&staging.name, &staging.tag))
                .await
            {
                Ok(Some((_, d))) => d,
                _ => return,
            },
        };
        let fan_out = reg
            .manifest_raw(&reg.tag_ref(&staging.name, &img.version))
            .await;
        if matches!(&fan_out, Ok(Some((_, d))) if *d == digest) || fan_out.is_err() {
            return;
        }
        let kept = match reg.delete_manifest(&staging.name, &digest).await {
            Ok(crate::registry::Deleted::Deleted | crate::registry::Deleted::Absent) => return,
            Ok(crate::registry::Deleted::Unsupported) => "it does not allow deletes".to_string(),
            Err(e) => format!("{e:#}"),
        };
        self.progress.println(&format!(
            "note: {} stays in the registry ({kept})",
            staging.reference
        ));
    }

    /// The repositories of an image's parents beside its own `repository` (under the same path:
    /// the stage's in a stage run), which hold its base layers.
    fn parent_names(&self, image: ImageId, repository: &str) -> Vec<String> {
        let img = self.plan.image(image);
        let prefix = repository.strip_suffix(img.name.as_str()).unwrap_or("");
        self.plan
            .images
            .iter()
            .filter(|p| img.waits_for.contains(&p.ctx))
            .map(|p| format!("{prefix}{}", p.name))
            .collect()
    }
}

/// Makes the image a node pushed to `staging` part of repository `name` (both within the
/// registry): its manifest read by the staging tag, checked to be of `platform`, its blobs mounted
/// and the manifest put by digest; its index entry.
async fn adopt_staged(
    reg: &Registry,
    staging: &Staging,
    name: &str,
    platform: &Platform,
    node: &str,
) -> anyhow::Result<(Entry, merge::Mounted)> {
    let (raw, digest) = reg
        .manifest_raw(&reg.tag_ref(&staging.name, &staging.tag))
        .await?
        .with_context(|| {
            format!(
                "the node pushed {}, but the registry has no such tag",
                staging.reference
            )
        })?;
    let what = format!("{} (pushed by the node)", staging.reference);
    index_writer::check_manifest(
        reg,
        &staging.name,
        &raw,
        &digest,
        platform,
        Some(node),
        &what,
    )
    .await?;
    let index::Parsed::Manifest { entry, .. } = index::parse(&raw, &digest)? else {
        bail!("{what} is an index");
    };
    let mounted = if staging.name == name {
        merge::Mounted::default()
    } else {
        merge::mount_image(reg, &staging.name, name, &digest).await?
    };
    let entry = index::new_entry(platform, &digest, entry.size, &entry.media_type);
    Ok((entry, mounted))
}

/// What a push did (so far, out of `total` blobs): `2 blob(s) uploaded (1.2 MiB), 1 mounted, 0
/// already there`.
fn push_counts(p: &PushedImage, total: Option<usize>) -> String {
    let done = p.blobs_uploaded + p.blobs_mounted + p.blobs_skipped;
    let progress = total.map_or_else(String::new, |t| format!("{done}/{t} blobs: "));
    format!(
        "{progress}{} blob(s) uploaded ({:.1} MiB), {} mounted, {} already there",
        p.blobs_uploaded,
        p.bytes_uploaded as f64 / (1024.0 * 1024.0),
        p.blobs_mounted,
        p.blobs_skipped
    )
}
