//! Manifests and image indexes as JSON: reading which platforms a tag holds, and the entries of the
//! indexes cip assembles (serialised once, by the index writer alone: `execute::index_writer`).
use std::collections::BTreeMap;

use anyhow::{bail, Context as _};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

use crate::platform::Platform;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The index annotation that names the version an index was published as.
pub const VERSION_ANNOTATION: &str = "org.opencontainers.image.version";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// One platform's manifest within an index.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// None for entries that are not images of a platform (attestations: `unknown/unknown`).
    pub platform: Option<Platform>,
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    /// The descriptor as the registry had it, so merging keeps fields cip does not know.
    pub descriptor: Value,
}

/// What a tag holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// Digest of the tag's manifest or index.
    pub digest: String,
    pub is_index: bool,
    pub entries: Vec<Entry>,
    pub annotations: BTreeMap<String, String>,
}

impl Published {
    pub fn platforms(&self) -> Vec<Platform> {
        let mut v: Vec<Platform> = self
            .entries
            .iter()
            .filter_map(|e| e.platform.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The wanted platforms this tag lacks.
    pub fn missing<'a>(&self, wanted: &'a [Platform]) -> Vec<&'a Platform> {
        let have = self.platforms();
        wanted.iter().filter(|p| !have.contains(p)).collect()
    }
}

pub enum Parsed {
    Index(Published),
    /// A single-platform manifest; the platform is in its config blob.
    Manifest {
        config_digest: String,
        entry: Entry,
    },
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn platform_of(v: &Value) -> Option<Platform> {
    let os = v.get("os")?.as_str()?;
    let arch = v.get("architecture")?.as_str()?;
    if os == "unknown" || arch == "unknown" {
        return None;
    }
    let variant = v
        .get("variant")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    Some(Platform::new(os, arch, variant))
}

fn annotations_of(v: &Value) -> BTreeMap<String, String> {
    v.get("annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a manifest or index as returned for a tag.
pub fn parse(raw: &[u8], digest: &str) -> anyhow::Result<Parsed> {
    let doc: Value =
        serde_json::from_slice(raw).context("the registry returned a manifest that is not JSON")?;
    let media_type = doc.get("mediaType").and_then(Value::as_str).unwrap_or("");
    if let Some(manifests) = doc.get("manifests").and_then(Value::as_array) {
        let entries = manifests
            .iter()
            .map(entry_of)
            .collect::<anyhow::Result<Vec<_>>>()?;
        return Ok(Parsed::Index(Published {
            digest: digest.to_string(),
            is_index: true,
            entries,
            annotations: annotations_of(&doc),
        }));
    }
    let Some(config_digest) = doc.pointer("/config/digest").and_then(Value::as_str) else {
        bail!("manifest {digest} has neither manifests nor a config (media type {media_type:?})");
    };
    let media_type = if media_type.is_empty() {
        "application/vnd.oci.image.manifest.v1+json"
    } else {
        media_type
    };
    let entry = Entry {
        platform: None,
        digest: digest.to_string(),
        size: raw.len() as u64,
        media_type: media_type.to_string(),
        descriptor: json!({"mediaType": media_type, "digest": digest, "size": raw.len()}),
    };
    Ok(Parsed::Manifest {
        config_digest: config_digest.to_string(),
        entry,
    })
}

fn entry_of(d: &Value) -> anyhow::Result<Entry> {
    let digest = d
        .get("digest")
        .and_then(Value::as_str)
        .context("index entry without digest")?;
    Ok(Entry {
        platform: d.get("platform").and_then(platform_of),
        digest: digest.to_string(),
        size: d.get("size").and_then(Value::as_u64).unwrap_or(0),
        media_type: d
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        descriptor: d.clone(),
    })
}

/// A tag that points at one manifest, described as a one-entry `Published` with the config's platform.
pub fn single(entry: Entry, config: &[u8], digest: &str) -> anyhow::Result<Published> {
    Ok(single_of(entry, config_platform(config)?, digest))
}

/// The platform an image config names (`os`, `architecture`, `variant`), if it names one.
pub fn config_platform(config: &[u8]) -> anyhow::Result<Option<Platform>> {
    let config: Value = serde_json::from_slice(config).context("image config is not JSON")?;
    Ok(platform_of(&config))
}

/// [`single`] with the config's platform already known.
pub fn single_of(mut entry: Entry, platform: Option<Platform>, digest: &str) -> Published {
    entry.platform = platform;
    if let (Some(p), Some(obj)) = (&entry.platform, entry.descriptor.as_object_mut()) {
        obj.insert("platform".into(), platform_json(p));
    }
    Published {
        digest: digest.to_string(),
        is_index: false,
        entries: vec![entry],
        annotations: BTreeMap::new(),
    }
}

pub fn platform_json(p: &Platform) -> Value {
    let mut m = Map::new();
    m.insert("architecture".into(), p.arch.clone().into());
    m.insert("os".into(), p.os.clone().into());
    if let Some(v) = &p.variant {
        m.insert("variant".into(), v.clone().into());
    }
    Value::Object(m)
}

/// A descriptor for a freshly pushed platform manifest.
pub fn new_entry(platform: &Platform, digest: &str, size: u64, media_type: &str) -> Entry {
    Entry {
        platform: Some(platform.clone()),
        digest: digest.to_string(),
        size,
        media_type: media_type.to_string(),
        descriptor: json!({
            "mediaType": media_type,
            "digest": digest,
            "size": size,
            "platform": platform_json(platform),
        }),
    }
}

/// Entries of `old` whose platform is not replaced by `new`, then `new`: a published platform is never
/// dropped by adding another one.
pub fn merge(old: Option<&Published>, new: Vec<Entry>) -> Vec<Entry> {
    let replaced: Vec<&Platform> = new.iter().filter_map(|e| e.platform.as_ref()).collect();
    let mut out: Vec<Entry> = old
        .map(|o| {
            o.entries
                .iter()
                .filter(|e| e.platform.as_ref().is_some_and(|p| !replaced.contains(&p)))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    out.extend(new);
    out.sort_by(|a, b| a.platform.cmp(&b.platform));
    out
}

/// Whether a media type is an index (OCI) or a manifest list (Docker).
pub fn is_index_type(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn parses_an_index_and_skips_attestations() {
        let raw = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":10,"platform":{"architecture":"amd64","os":"linux"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","size":11,"platform":{"architecture":"arm","os":"linux","variant":"v7"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:cc","size":12,"platform":{"architecture":"unknown","os":"unknown"}}]}"#;
        let Parsed::Index(pb) = parse(raw, "sha256:ix").unwrap() else {
            panic!("index")
        };
        assert_eq!(pb.platforms(), [p("linux/amd64"), p("linux/arm/v7")]);
        assert_eq!(
            pb.missing(&[p("linux/amd64"), p("linux/arm64")]),
            [&p("linux/arm64")]
        );
    }

    #[test]
    fn merge_keeps_published_platforms_and_replaces_rebuilt_ones() {
        let old = Published {
            digest: "sha256:old".into(),
            is_index: true,
            entries: vec![
                new_entry(&p("linux/amd64"), "sha256:a1", 1, "m"),
                new_entry(&p("linux/arm64"), "sha256:b1", 1, "m"),
            ],
            annotations: BTreeMap::new(),
        };
        let merged = merge(
            Some(&old),
            vec![new_entry(&p("linux/arm64"), "sha256:b2", 2, "m")],
        );
        let digests: Vec<&str> = merged.iter().map(|e| e.digest.as_str()).collect();
        assert_eq!(digests, ["sha256:a1", "sha256:b2"]);
    }
}
