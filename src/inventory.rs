//! What a destination already holds, asked once per image: a registry's tags, or a node's local
//! store. Facts addressed by content are cached on disk: the platform an image config names never
//! changes, so a repeated lookup of a single-platform image costs one request (its manifest) instead
//! of two (manifest, then config). What a tag points to may change, and is never cached.
use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use futures_util::future::BoxFuture;

use crate::builders::Backend;
use crate::platform::Platform;
use crate::registry::index::{self, new_entry, Parsed};
use crate::registry::{Published, Registry};

/// A destination that can say what a tag holds.
pub trait Inventory: Send + Sync {
    /// What `name:tag` holds, or None if the tag does not exist. `wanted` are the platforms the run
    /// needs (a local store holds one platform per tag: the one it was built for).
    fn published<'a>(
        &'a self,
        name: &'a str,
        tag: &'a str,
        wanted: &'a [Platform],
    ) -> BoxFuture<'a, anyhow::Result<Option<Published>>>;
}

/// A registry, with the platforms of the configs it was asked about cached.
pub struct RegistryInventory {
    pub registry: Arc<Registry>,
    pub platforms: Arc<PlatformCache>,
}

impl Inventory for RegistryInventory {
    fn published<'a>(
        &'a self,
        name: &'a str,
        tag: &'a str,
        _wanted: &'a [Platform],
    ) -> BoxFuture<'a, anyhow::Result<Option<Published>>> {
        Box::pin(async move {
            let reg = &self.registry;
            let Some((raw, digest)) = reg.manifest_raw(&reg.tag_ref(name, tag)).await? else {
                return Ok(None);
            };
            let (config_digest, entry) = match index::parse(&raw, &digest)? {
                Parsed::Index(published) => return Ok(Some(published)),
                Parsed::Manifest {
                    config_digest,
                    entry,
                } => (config_digest, entry),
            };
            let platform = match self.platforms.get(&config_digest) {
                Some(known) => known,
                None => {
                    let config = reg.blob_bytes(name, &config_digest).await?;
                    let platform = index::config_platform(&config)?;
                    self.platforms.put(&config_digest, platform.clone());
                    platform
                }
            };
            Ok(Some(index::single_of(entry, platform, &digest)))
        })
    }
}

/// A node's local store, images tagged `REGISTRY/name:tag`; listed once, then asked per tag only
/// about what the listing did not show.
pub struct StoreInventory {
    pub builder: Arc<dyn Backend>,
    pub registry: String,
    listed: tokio::sync::OnceCell<HashSet<String>>,
}

impl StoreInventory {
    pub fn new(builder: Arc<dyn Backend>, registry: String) -> Self {
        StoreInventory {
            builder,
            registry,
            listed: tokio::sync::OnceCell::new(),
        }
    }
}

impl Inventory for StoreInventory {
    fn published<'a>(
        &'a self,
        name: &'a str,
        tag: &'a str,
        wanted: &'a [Platform],
    ) -> BoxFuture<'a, anyhow::Result<Option<Published>>> {
        Box::pin(async move {
            // Without a listing every image is asked about on its own.
            let listed = self
                .listed
                .get_or_init(|| async { self.builder.local_tags().await.unwrap_or_default() })
                .await;
            let full = format!("{}/{name}:{tag}", self.registry);
            let exists = listed.contains(&full) || self.builder.image_exists(&full).await?;
            Ok(exists.then(|| Published {
                digest: String::new(),
                is_index: false,
                entries: wanted.iter().map(|p| new_entry(p, "", 0, "")).collect(),
                annotations: Default::default(),
            }))
        })
    }
}

/// Image config digest -> the platform it names, kept in a file between runs (one
/// `DIGEST<TAB>PLATFORM` line each, `-` for a config that names none).
pub struct PlatformCache {
    path: Option<PathBuf>,
    known: Mutex<HashMap<String, Option<Platform>>>,
    added: Mutex<bool>,
}

impl PlatformCache {
    /// A cache that is not kept between runs.
    pub fn in_memory() -> Self {
        PlatformCache {
            path: None,
            known: Mutex::new(HashMap::new()),
            added: Mutex::new(false),
        }
    }

    /// The cache kept in `path`; a missing or unreadable file is an empty cache, and a line that
    /// does not parse is left out.
    pub fn load(path: PathBuf) -> Self {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let known = text.lines().filter_map(parse_line).collect();
        PlatformCache {
            path: Some(path),
            known: Mutex::new(known),
            added: Mutex::new(false),
        }
    }

    pub fn get(&self, config_digest: &str) -> Option<Option<Platform>> {
        lock(&self.known).get(config_digest).cloned()
    }

    pub fn put(&self, config_digest: &str, platform: Option<Platform>) {
        lock(&self.known).insert(config_digest.to_string(), platform);
        *lock(&self.added) = true;
    }

    /// Writes the cache back when something was learnt (a temporary file renamed over it, so a
    /// concurrent reader sees the old or the new file, never half of one).
    pub fn save(&self) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !*lock(&self.added) {
            return Ok(());
        }
        let dir = path.parent().context("cache file without a directory")?;
        crate::cip_dir::create_dir_all(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut lines: Vec<String> = lock(&self.known)
            .iter()
            .map(|(d, p)| {
                let p = p.as_ref().map_or("-".to_string(), Platform::to_string);
                format!("{d}\t{p}\n")
            })
            .collect();
        lines.sort();
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        tmp.write_all(lines.concat().as_bytes())?;
        tmp.persist(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

fn parse_line(line: &str) -> Option<(String, Option<Platform>)> {
    let (digest, platform) = line.split_once('\t')?;
    let digest_ok = digest
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if !digest_ok {
        return None;
    }
    let platform = match platform.trim() {
        "-" => None,
        p => Some(p.parse().ok()?),
    };
    Some((digest.to_string(), platform))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_survives_a_save_and_load_and_skips_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache/config-platforms");
        let d1 = format!("sha256:{}", "a".repeat(64));
        let d2 = format!("sha256:{}", "b".repeat(64));
        let cache = PlatformCache::load(path.clone());
        assert_eq!(cache.get(&d1), None);
        cache.put(&d1, Some("linux/arm64/v8".parse().unwrap()));
        cache.put(&d2, None);
        cache.save().unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("garbage\nsha256:short\tlinux/amd64\n");
        std::fs::write(&path, text).unwrap();
        let again = PlatformCache::load(path);
        assert_eq!(
            again.get(&d1),
            Some(Some("linux/arm64/v8".parse().unwrap()))
        );
        assert_eq!(again.get(&d2), Some(None));
        assert_eq!(lock(&again.known).len(), 2);
    }

    #[test]
    fn nothing_learnt_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config-platforms");
        PlatformCache::load(path.clone()).save().unwrap();
        assert!(!path.exists());
    }
}
