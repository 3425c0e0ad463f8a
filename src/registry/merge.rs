//! Images moved between repositories of one registry without moving data: each blob is mounted
//! from the source repository (uploaded only when the registry refuses the mount), then the
//! manifest is put by digest with its exact bytes. Used by the stage links, `publish --merge` and
//! `cip merge`, which assemble indexes from images in other repositories.
use anyhow::Context as _;
use serde_json::Value;

use super::index::{Entry, Published};
use super::Registry;

/// What [`mount_image`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Mounted {
    pub blobs_mounted: usize,
    pub blobs_there: usize,
    pub blobs_copied: usize,
}

/// Makes manifest `digest` of repository `from` (names within the registry) available in `to`:
/// every blob it names (and, for an index, every manifest it lists) first, then the manifest.
pub async fn mount_image(
    reg: &Registry,
    from: &str,
    to: &str,
    digest: &str,
) -> anyhow::Result<Mounted> {
    let mut done = Mounted::default();
    mount_manifest(reg, from, to, digest, &mut done, 0).await?;
    Ok(done)
}

async fn mount_manifest(
    reg: &Registry,
    from: &str,
    to: &str,
    digest: &str,
    done: &mut Mounted,
    depth: usize,
) -> anyhow::Result<()> {
    anyhow::ensure!(depth < 3, "{from}@{digest}: indexes nested too deep");
    let (raw, _) = reg
        .manifest_raw(&reg.digest_ref(from, digest))
        .await?
        .with_context(|| format!("{}: no manifest {digest} in {from}", reg.host()))?;
    let doc: Value = serde_json::from_slice(&raw).context("manifest is not JSON")?;
    let media_type = doc
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or("application/vnd.oci.image.manifest.v1+json")
        .to_string();
    if let Some(children) = doc.get("manifests").and_then(Value::as_array) {
        for child in children {
            let d = child["digest"]
                .as_str()
                .context("index entry without digest")?;
            Box::pin(mount_manifest(reg, from, to, d, done, depth + 1)).await?;
        }
    } else {
        let blobs = std::iter::once(&doc["config"])
            .chain(doc["layers"].as_array().into_iter().flatten())
            .filter_map(|d| Some((d["digest"].as_str()?.to_string(), d["size"].as_u64()?)));
        for (blob, size) in blobs {
            mount_blob(reg, from, to, &blob, size, done).await?;
        }
    }
    reg.put_manifest(&reg.digest_ref(to, digest), raw, &media_type)
        .await
}

async fn mount_blob(
    reg: &Registry,
    from: &str,
    to: &str,
    digest: &str,
    size: u64,
    done: &mut Mounted,
) -> anyhow::Result<()> {
    let lock = reg.upload_lock(to, digest);
    let _held = lock.lock().await;
    if reg.blob_exists(to, digest).await? {
        done.blobs_there += 1;
    } else if reg.mount_blob(to, from, digest).await? {
        done.blobs_mounted += 1;
    } else {
        copy_blob(reg, from, to, digest, size).await?;
        done.blobs_copied += 1;
    }
    Ok(())
}

/// Streams a blob from one repository to another, for a registry that refuses a mount.
async fn copy_blob(
    reg: &Registry,
    from: &str,
    to: &str,
    digest: &str,
    size: u64,
) -> anyhow::Result<()> {
    let (src, dst) = (reg.digest_ref(from, digest), reg.digest_ref(to, digest));
    let what = format!("copy blob {digest} from {from} to {to}");
    reg.transfer(&what, &what, |pace| {
        let (src, dst) = (src.clone(), dst.clone());
        async move {
            let body = reg.transport().get_blob(src.repository(), digest).await?;
            let stream = pace.track(body.stream);
            reg.transport()
                .push_blob(dst.repository(), digest, stream, Some(size))
                .await
        }
    })
    .await
}

/// The platform entries of a source: an index's own, or the manifest's with its config's platform.
pub fn platform_entries(published: &Published) -> Vec<Entry> {
    published
        .entries
        .iter()
        .filter(|e| e.platform.is_some())
        .cloned()
        .collect()
}

/// Tags each platform's manifest of `entries` in `repo` with its tag of `tags` (`--arch-tags`),
/// the exact bytes of the manifest, so the tag's digest is the entry's.
pub async fn tag_platforms(
    reg: &Registry,
    repo: &str,
    entries: &[Entry],
    tags: &std::collections::BTreeMap<String, crate::platform::Platform>,
) -> anyhow::Result<()> {
    for (tag, platform) in tags {
        let Some(entry) = entries
            .iter()
            .find(|e| e.platform.as_ref() == Some(platform))
        else {
            continue;
        };
        let (raw, _) = reg
            .manifest_raw(&reg.digest_ref(repo, &entry.digest))
            .await?
            .with_context(|| {
                format!(
                    "{repo}@{} is in the index but not in the repository",
                    entry.digest
                )
            })?;
        reg.put_manifest(&reg.tag_ref(repo, tag), raw, &entry.media_type)
            .await?;
    }
    Ok(())
}

/// An image named on the command line, `HOST[:PORT]/REPO:TAG` or `HOST[:PORT]/REPO@DIGEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub host: String,
    pub repository: String,
    /// The tag, or the digest (`sha256:...`).
    pub reference: String,
}

impl ImageRef {
    pub fn parse(s: &str) -> anyhow::Result<ImageRef> {
        let bad = |why: &str| {
            anyhow::anyhow!("{s:?} is not an image reference: {why} (expected HOST[:PORT]/REPOSITORY:TAG or HOST[:PORT]/REPOSITORY@sha256:DIGEST)")
        };
        let (host, rest) = s.split_once('/').ok_or_else(|| bad("no registry host"))?;
        let (repository, reference) = match rest.split_once('@') {
            Some((repo, digest)) => (repo, digest),
            None => match rest.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => (repo, tag),
                _ => return Err(bad("no :TAG or @DIGEST")),
            },
        };
        if repository.is_empty() || reference.is_empty() {
            return Err(bad("empty repository or tag"));
        }
        let address = super::address::Address::parse(&format!("{host}/{repository}"))?;
        Ok(ImageRef {
            host: address.host,
            repository: address.path,
            reference: reference.to_string(),
        })
    }

    fn is_digest(&self) -> bool {
        self.reference.starts_with("sha256:")
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if self.is_digest() { '@' } else { ':' };
        write!(
            f,
            "{}/{}{sep}{}",
            self.host, self.repository, self.reference
        )
    }
}

/// What `cip merge` found in its sources: per platform, the entry and the source it comes from.
#[derive(Debug, Clone)]
pub struct MergeSource {
    pub source: ImageRef,
    pub entry: Entry,
}

/// The platform entries of one source: an index's, or a single manifest's with its config's
/// platform. A source without a platform is refused.
pub async fn source_entries(reg: &Registry, src: &ImageRef) -> anyhow::Result<Vec<Entry>> {
    let reference = if src.is_digest() {
        reg.digest_ref(&src.repository, &src.reference)
    } else {
        reg.tag_ref(&src.repository, &src.reference)
    };
    let (raw, digest) = reg
        .manifest_raw(&reference)
        .await?
        .with_context(|| format!("{src}: no such image on {}", reg.host()))?;
    let published = match super::index::parse(&raw, &digest)? {
        super::index::Parsed::Index(p) => p,
        super::index::Parsed::Manifest {
            config_digest,
            entry,
        } => {
            let config = reg.blob_bytes(&src.repository, &config_digest).await?;
            super::index::single(entry, &config, &digest)?
        }
    };
    let entries = platform_entries(&published);
    if entries.is_empty() {
        anyhow::bail!("{src}: its config names no platform (os and architecture), so it cannot go in an index");
    }
    Ok(entries)
}

/// One entry per platform: two sources of one platform are refused unless `prefer` is one of
/// them.
pub fn choose(found: Vec<MergeSource>, prefer: &[ImageRef]) -> anyhow::Result<Vec<MergeSource>> {
    let mut by_platform: std::collections::BTreeMap<crate::platform::Platform, Vec<MergeSource>> =
        Default::default();
    for f in found {
        let p = f.entry.platform.clone().expect("platform entries");
        by_platform.entry(p).or_default().push(f);
    }
    let mut out = Vec::new();
    for (platform, mut candidates) in by_platform {
        // The same manifest from two sources is one image.
        let mut seen = std::collections::HashSet::new();
        candidates.retain(|c| seen.insert(c.entry.digest.clone()));
        if candidates.len() == 1 {
            out.extend(candidates);
            continue;
        }
        let preferred: Vec<MergeSource> = candidates
            .iter()
            .filter(|c| prefer.contains(&c.source))
            .cloned()
            .collect();
        match preferred.as_slice() {
            [one] => out.push(one.clone()),
            _ => anyhow::bail!(
                "{platform} comes from {}: name the one to use with --prefer SRC",
                candidates
                    .iter()
                    .map(|c| c.source.to_string())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        }
    }
    Ok(out)
}
