//! Pushing a single-platform image from an OCI image layout (what the builders export) by digest:
//! blobs the registry already has are skipped, and no tag is moved.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use futures_util::stream;
use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::index::{new_entry, sha256_digest, Entry};
use super::{ErrorKind, Registry, RegistryError};
use crate::platform::Platform;

/// Read size per request body chunk: large enough to keep the request count low, small enough to
/// never hold a whole layer in memory.
const CHUNK: usize = 4 << 20;

/// What was pushed.
#[derive(Debug, Clone)]
pub struct PushedImage {
    pub entry: Entry,
    pub blobs_uploaded: usize,
    /// Blobs mounted from another repository of the registry (a parent's): no data moved.
    pub blobs_mounted: usize,
    pub blobs_skipped: usize,
    pub bytes_uploaded: u64,
}

fn blob_path(layout: &Path, digest: &str) -> anyhow::Result<PathBuf> {
    let (algo, hex) = digest.split_once(':').context("malformed digest")?;
    if algo != "sha256" || hex.contains('/') || hex.contains("..") {
        bail!("unsupported digest {digest}");
    }
    Ok(layout.join("blobs").join(algo).join(hex))
}

/// The single image manifest of an OCI layout: its bytes and media type.
pub fn layout_manifest(layout: &Path) -> anyhow::Result<(Bytes, String)> {
    let index_path = layout.join("index.json");
    let index: Value = serde_json::from_slice(
        &std::fs::read(&index_path)
            .with_context(|| format!("cannot read {}", index_path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", index_path.display()))?;
    let desc = index
        .pointer("/manifests/0")
        .with_context(|| format!("{} lists no manifest", index_path.display()))?;
    let digest = desc["digest"]
        .as_str()
        .context("manifest descriptor without digest")?;
    let bytes = std::fs::read(blob_path(layout, digest)?)
        .context("manifest blob missing from the layout")?;
    if sha256_digest(&bytes) != digest {
        bail!("manifest blob {digest} in {} is corrupt", layout.display());
    }
    let media_type = serde_json::from_slice::<Value>(&bytes)?
        .get("mediaType")
        .and_then(Value::as_str)
        .or(desc["mediaType"].as_str())
        .unwrap_or("application/vnd.oci.image.manifest.v1+json")
        .to_string();
    Ok((Bytes::from(bytes), media_type))
}

/// Pushes the image in `layout` to `repo` by digest and returns its index entry for `platform`.
pub async fn push_layout(
    registry: &Registry,
    repo: &str,
    layout: &Path,
    platform: &Platform,
) -> anyhow::Result<PushedImage> {
    push_layout_from(registry, repo, layout, platform, &[], &|_, _| {}).await
}

/// What a push has done so far (after each blob), and how many blobs it has in all.
pub type PushReport<'a> = &'a (dyn Fn(&PushedImage, usize) + Sync);

/// [`push_layout`], mounting the blobs `repo` lacks from the repositories `mount_from` (the
/// image's parents, which hold its base layers) before uploading them, and telling `report`
/// about each blob done.
pub async fn push_layout_from(
    registry: &Registry,
    repo: &str,
    layout: &Path,
    platform: &Platform,
    mount_from: &[String],
    report: PushReport<'_>,
) -> anyhow::Result<PushedImage> {
    let (manifest, media_type) = layout_manifest(layout)?;
    let doc: Value = serde_json::from_slice(&manifest)?;
    let mut blobs: Vec<(String, u64)> = Vec::new();
    for d in std::iter::once(&doc["config"]).chain(doc["layers"].as_array().into_iter().flatten()) {
        let digest = d["digest"].as_str().context("descriptor without digest")?;
        blobs.push((digest.to_string(), d["size"].as_u64().unwrap_or(0)));
    }
    let mut pushed = PushedImage {
        entry: new_entry(
            platform,
            &sha256_digest(&manifest),
            manifest.len() as u64,
            &media_type,
        ),
        blobs_uploaded: 0,
        blobs_mounted: 0,
        blobs_skipped: 0,
        bytes_uploaded: 0,
    };
    let total = blobs.len();
    for (digest, size) in blobs {
        let lock = registry.upload_lock(repo, &digest);
        let _uploading = lock.lock().await;
        if registry.blob_exists(repo, &digest).await? {
            pushed.blobs_skipped += 1;
        } else if mount(registry, repo, &digest, mount_from).await? {
            pushed.blobs_mounted += 1;
        } else {
            upload_blob(registry, repo, &blob_path(layout, &digest)?, &digest, size).await?;
            pushed.blobs_uploaded += 1;
            pushed.bytes_uploaded += size;
        }
        report(&pushed, total);
    }
    let reference = registry.digest_ref(repo, &pushed.entry.digest);
    registry
        .put_manifest(&reference, manifest, &media_type)
        .await?;
    Ok(pushed)
}

/// Whether one of the repositories `from` let `repo` mount blob `digest`.
async fn mount(
    registry: &Registry,
    repo: &str,
    digest: &str,
    from: &[String],
) -> anyhow::Result<bool> {
    for source in from.iter().filter(|f| *f != repo) {
        if registry.mount_blob(repo, source, digest).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Streams one blob file to the registry, chunk by chunk. Each attempt (see [`Registry::retrying`])
/// reopens the file and uploads it from its first byte in a new upload session, so an upload that
/// failed midway restarts cleanly.
pub async fn upload_blob(
    registry: &Registry,
    repo: &str,
    path: &Path,
    digest: &str,
    size: u64,
) -> anyhow::Result<()> {
    // Fail early, with the path, when the file cannot be read at all (a local error, never retried).
    drop(
        tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot open blob {}", path.display()))?,
    );
    let reference = registry.digest_ref(repo, digest);
    registry
        .transfer(
            &format!("PUT blob {reference}"),
            &reference.to_string(),
            |pace| {
                let reference = reference.clone();
                let path = path.to_path_buf();
                async move {
                    let file = tokio::fs::File::open(&path).await.map_err(|e| {
                        RegistryError::new(
                            registry.host(),
                            &reference.to_string(),
                            ErrorKind::Io(e),
                        )
                    })?;
                    // Each chunk the upload takes is progress (see `Registry::transfer`).
                    let chunks = pace.track(file_chunks(file));
                    registry
                        .transport()
                        .push_blob(reference.repository(), digest, chunks, Some(size))
                        .await
                }
            },
        )
        .await
}

/// The contents of `file` from its current position, [`CHUNK`] bytes at a time.
fn file_chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    stream::unfold(file, |mut file| async move {
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    })
}
