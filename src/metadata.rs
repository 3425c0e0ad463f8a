//! `--metadata-file FILE` of the building commands: every image of the run with its digests and
//! tags, as scripts and later pipeline stages read them (bake's `--metadata-file`, podman's
//! `--digestfile`). See docs/json.md.
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::execute::ImageResult;

/// The metadata document of a run's results.
pub fn document(results: &[ImageResult]) -> Value {
    json!({
        "schema_version": 1,
        "images": results.iter().map(|r| json!({
            "image": r.repository,
            "name": r.name,
            "version": r.version,
            "digest": r.digest,
            "tags": r.tags,
            "platforms": r.platform_digests.iter().map(|(platform, digest)| json!({
                "platform": platform,
                "digest": digest,
            })).collect::<Vec<_>>(),
            "result": r.result.code(),
        })).collect::<Vec<_>>(),
    })
}

/// Writes the document to `path` whole or not at all: a temporary file beside it, renamed over it.
pub fn write(path: &Path, results: &[ImageResult]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let what = || format!("cannot write the metadata file {}", path.display());
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(what)?;
    let text = serde_json::to_string_pretty(&document(results))?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.write_all(b"\n"))
        .with_context(what)?;
    tmp.persist(path).map_err(|e| e.error).with_context(what)?;
    Ok(())
}
