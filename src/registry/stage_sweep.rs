//! Removing staging tags from a repository: the `VERSION-RUN` tags nodes that push directly push
//! to (see `plan::steps::Staging`), left behind by runs that were cancelled or killed between the
//! push and cip's removal of them. Which runs are over is the caller's to say (`pick`); this
//! module knows what a delete may take with it. A registry deletes manifests by digest, and with
//! one every tag of the repository naming it: so a tag is removed only when no tag that stays
//! names the same manifest or an index that lists it (a stage run's `VERSION` tag and the index
//! of its stage hold the very manifest its node pushed under `VERSION-RUN`).
use std::collections::{BTreeMap, BTreeSet};

use futures_util::stream::{self, StreamExt};

use super::{Deleted, Registry};

/// The most tags of one repository a sweep reads: far above what a staging repository holds; a
/// repository with more is left as it is, with a note.
pub const MAX_TAGS: usize = 2000;
/// Manifests read at once while finding what the tags that stay hold.
const READS_AT_ONCE: usize = 8;

/// What a sweep of one repository did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// The tags removed, sorted.
    pub removed: Vec<String>,
    /// Tags picked but kept: a tag that stays names their manifest.
    pub shared: Vec<String>,
    /// Why nothing could be removed (the registry refuses deletes, or the repository has more
    /// than [`MAX_TAGS`] tags).
    pub note: Option<String>,
}

/// Removes the tags of repository `name` (within `reg`) that `pick` chooses, keeping every
/// manifest a tag it does not choose still names.
pub async fn sweep(
    reg: &Registry,
    name: &str,
    pick: &dyn Fn(&str) -> bool,
) -> anyhow::Result<Swept> {
    let tags = reg.tags(name).await?;
    let (chosen, staying): (Vec<String>, Vec<String>) = tags.into_iter().partition(|t| pick(t));
    if chosen.is_empty() {
        return Ok(Swept::default());
    }
    if chosen.len() + staying.len() > MAX_TAGS {
        return Ok(Swept {
            note: Some(format!(
                "{}/{name} has more than {MAX_TAGS} tags: its staging tags were not swept",
                reg.address()
            )),
            ..Swept::default()
        });
    }
    let held = held_by(reg, name, &staying).await?;
    let mut by_digest: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut swept = Swept::default();
    for tag in chosen {
        match reg.manifest_digest(&reg.tag_ref(name, &tag)).await? {
            Some(d) if held.contains(&d) => swept.shared.push(tag),
            Some(d) => by_digest.entry(d).or_default().push(tag),
            // Gone since the listing (its run removed it).
            None => {}
        }
    }
    for (digest, tags) in by_digest {
        match reg.delete_manifest(name, &digest).await? {
            Deleted::Deleted | Deleted::Absent => swept.removed.extend(tags),
            Deleted::Unsupported => {
                swept.note = Some(format!(
                    "registry {} does not delete manifests (405 UNSUPPORTED): staging tags stay in \
                     {name} (a distribution registry deletes with storage.delete.enabled: true)",
                    reg.address()
                ));
                break;
            }
        }
    }
    swept.removed.sort();
    swept.shared.sort();
    Ok(swept)
}

/// The digests the tags `staying` of repository `name` hold: each tag's manifest, and the
/// manifests an index among them lists.
async fn held_by(
    reg: &Registry,
    name: &str,
    staying: &[String],
) -> anyhow::Result<BTreeSet<String>> {
    let read = stream::iter(staying)
        .map(|tag| async move { reg.manifest_raw(&reg.tag_ref(name, tag)).await })
        .buffer_unordered(READS_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    let mut held = BTreeSet::new();
    for found in read {
        let Some((bytes, digest)) = found? else {
            continue;
        };
        held.extend(listed(&bytes));
        held.insert(digest);
    }
    Ok(held)
}

/// The digests an index lists (none for an image manifest or what does not parse).
fn listed(bytes: &[u8]) -> Vec<String> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Vec::new();
    };
    value
        .get("manifests")
        .and_then(|m| m.as_array())
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("digest")?.as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_lists_its_manifests_and_an_image_lists_none() {
        let index =
            br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:a"},{"digest":"sha256:b"}]}"#;
        assert_eq!(listed(index), vec!["sha256:a", "sha256:b"]);
        let image = br#"{"schemaVersion":2,"config":{"digest":"sha256:c"},"layers":[]}"#;
        assert!(listed(image).is_empty());
        assert!(listed(b"not json").is_empty());
        assert!(listed(br#"{"manifests":"x"}"#).is_empty());
    }
}
