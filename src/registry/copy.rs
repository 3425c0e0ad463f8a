//! Registry-to-registry copy of a whole image (index and every platform): blobs stream from source to
//! target without touching the disk or being held in memory, blobs the target has are skipped, blobs
//! already copied to another repository of the target are mounted, and manifests keep their exact bytes
//! (so digests match).
use anyhow::Context as _;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;

use super::index::is_index_type;
use super::locks::KeyedLocks;
use super::Registry;
use crate::platform::Platform;

/// Blobs per manifest copied at once.
const BLOB_CONCURRENCY: usize = 4;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopyStats {
    pub blobs_copied: usize,
    pub blobs_skipped: usize,
    pub blobs_mounted: usize,
    pub bytes_copied: u64,
    pub manifests: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copied {
    /// The target had this digest under the tag already.
    AlreadyThere(Source),
    MissingOnSource,
    Copied(Source, CopyStats),
}

/// What the source's tag held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The digest of the tag's index or manifest (the same on the target: bytes are kept).
    pub digest: String,
    pub platforms: Vec<Platform>,
}

/// Where in the target each blob is, so other repositories mount it instead of copying it again.
/// Each digest has its own lock: when several images share a layer, one copies it while the others
/// wait, then mount it.
#[derive(Default)]
pub struct MountIndex(KeyedLocks<Option<String>>);

fn media_type_of(raw: &[u8]) -> anyhow::Result<String> {
    let doc: Value = serde_json::from_slice(raw).context("manifest is not JSON")?;
    Ok(doc
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or("application/vnd.oci.image.manifest.v1+json")
        .to_string())
}

/// Copies `repo:tag` from `src` to `dst` and tags it `tag` and each of `also_tag` there.
pub async fn copy_image(
    src: &Registry,
    dst: &Registry,
    repo: &str,
    tag: &str,
    also_tag: &[&str],
    mounts: &MountIndex,
) -> anyhow::Result<Copied> {
    let Some((top, digest)) = src.manifest_raw(&src.tag_ref(repo, tag)).await? else {
        return Ok(Copied::MissingOnSource);
    };
    let top_type = media_type_of(&top)?;
    let source = Source {
        platforms: src.described(repo, &top, &digest).await?.platforms(),
        digest: digest.clone(),
    };
    let already = dst.manifest_raw(&dst.tag_ref(repo, tag)).await?;
    let mut stats = CopyStats::default();
    let result = if already.as_ref().is_some_and(|(_, d)| *d == digest) {
        Copied::AlreadyThere(source)
    } else {
        if is_index_type(&top_type) {
            let doc: Value = serde_json::from_slice(&top)?;
            for m in doc["manifests"].as_array().into_iter().flatten() {
                let child = m["digest"].as_str().context("index entry without digest")?;
                copy_manifest(src, dst, repo, child, mounts, &mut stats).await?;
            }
            dst.put_manifest(&dst.digest_ref(repo, &digest), top.clone(), &top_type)
                .await?;
        } else {
            copy_manifest(src, dst, repo, &digest, mounts, &mut stats).await?;
        }
        stats.manifests += 1;
        Copied::Copied(source, stats)
    };
    for t in std::iter::once(tag).chain(also_tag.iter().copied()) {
        let current = dst.manifest_raw(&dst.tag_ref(repo, t)).await?;
        if current.is_none_or(|(_, d)| d != digest) {
            dst.put_manifest(&dst.tag_ref(repo, t), top.clone(), &top_type)
                .await?;
        }
    }
    Ok(result)
}

/// Copies one image manifest and its blobs, by digest.
async fn copy_manifest(
    src: &Registry,
    dst: &Registry,
    repo: &str,
    digest: &str,
    mounts: &MountIndex,
    stats: &mut CopyStats,
) -> anyhow::Result<()> {
    let (raw, _) = src
        .manifest_raw(&src.digest_ref(repo, digest))
        .await?
        .with_context(|| {
            format!(
                "{repo}@{digest} is listed in the index but missing on {}",
                src.address()
            )
        })?;
    let doc: Value = serde_json::from_slice(&raw)?;
    let mut blobs: Vec<(String, u64)> = Vec::new();
    for d in std::iter::once(&doc["config"]).chain(doc["layers"].as_array().into_iter().flatten()) {
        if let Some(dg) = d["digest"].as_str() {
            blobs.push((dg.to_string(), d["size"].as_u64().unwrap_or(0)));
        }
    }
    let results: Vec<anyhow::Result<BlobCopy>> = futures_util::stream::iter(blobs)
        .map(|(d, size)| async move { copy_blob(src, dst, repo, &d, size, mounts).await })
        .buffer_unordered(BLOB_CONCURRENCY)
        .collect()
        .await;
    for r in results {
        match r? {
            BlobCopy::Skipped => stats.blobs_skipped += 1,
            BlobCopy::Mounted => stats.blobs_mounted += 1,
            BlobCopy::Copied(n) => {
                stats.blobs_copied += 1;
                stats.bytes_copied += n;
            }
        }
    }
    dst.put_manifest(
        &dst.digest_ref(repo, digest),
        Bytes::from(raw.to_vec()),
        &media_type_of(&raw)?,
    )
    .await?;
    stats.manifests += 1;
    Ok(())
}

enum BlobCopy {
    Skipped,
    Mounted,
    Copied(u64),
}

async fn copy_blob(
    src: &Registry,
    dst: &Registry,
    repo: &str,
    digest: &str,
    size: u64,
    mounts: &MountIndex,
) -> anyhow::Result<BlobCopy> {
    let slot = mounts.0.of(digest);
    // Held while this blob is copied, so a concurrent copy of the same blob waits and then mounts.
    let mut known = slot.lock().await;
    if dst.blob_exists(repo, digest).await? {
        known.get_or_insert_with(|| repo.to_string());
        return Ok(BlobCopy::Skipped);
    }
    if let Some(from) = known.clone() {
        if dst.mount_blob(repo, &from, digest).await? {
            return Ok(BlobCopy::Mounted);
        }
    }
    let (src_ref, dst_ref) = (src.digest_ref(repo, digest), dst.digest_ref(repo, digest));
    // One attempt = a fresh download streamed into a fresh upload, so a failure midway restarts cleanly.
    let what = format!("copy blob {digest} to {}/{repo}", dst.address());
    dst.transfer(&what, &what, |pace| {
        let (src_ref, dst_ref) = (src_ref.clone(), dst_ref.clone());
        async move {
            let body = src
                .transport()
                .get_blob(src_ref.repository(), digest)
                .await?;
            // A chunk moves when the source sends it and the target takes it: a stall of either
            // side stops the pace.
            let stream = pace.track(body.stream);
            dst.transport()
                .push_blob(dst_ref.repository(), digest, stream, Some(size))
                .await
        }
    })
    .await?;
    *known = Some(repo.to_string());
    Ok(BlobCopy::Copied(size))
}
