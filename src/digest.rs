//! Context digests: a hash of what the builder would see of a context (its files, minus what
//! `.dockerignore` leaves out, plus the Dockerfile) and of its parents' digests. Published indexes carry
//! it, so a context changed without a version bump ("drift") can be told from one that did not change.
use std::fs;
use std::io::Read;
use std::path::Path;

use anyhow::Context as _;
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};

use crate::graph::Graph;
use crate::project::dockerignore::DockerIgnore;
use crate::project::{Context, Project};

/// The index annotation that records the context digest of a published version.
pub const ANNOTATION: &str = "dev.cip.context-digest";

/// Metadata files of cip itself: they describe the image, they are not its content.
const METADATA: &[&str] = &["info.edn", "VERSION", "PLATFORMS_OVERRIDE"];

/// One digest per context (same order as `project.contexts`), computed in parallel.
pub fn context_digests(project: &Project, graph: &Graph) -> anyhow::Result<Vec<String>> {
    let own: Vec<String> = project
        .contexts
        .par_iter()
        .map(own_digest)
        .collect::<anyhow::Result<_>>()?;
    let mut full: Vec<Option<String>> = vec![None; own.len()];
    for c in graph.order() {
        let mut h = Sha256::new();
        h.update(own[c].as_bytes());
        let mut parents: Vec<(&str, &str)> = graph
            .parents(c)
            .into_iter()
            .map(|p| {
                (
                    project.contexts[p].name.as_str(),
                    full[p].as_deref().unwrap_or(""),
                )
            })
            .collect();
        parents.sort();
        for (name, digest) in parents {
            h.update(format!("\nparent {name} {digest}").as_bytes());
        }
        full[c] = Some(format!("sha256:{}", hex::encode(h.finalize())));
    }
    Ok(full.into_iter().map(Option::unwrap_or_default).collect())
}

/// The digest of one context's own files and Dockerfile.
fn own_digest(ctx: &Context) -> anyhow::Result<String> {
    let ignore = match fs::read_to_string(ctx.dir.join(".dockerignore")) {
        Ok(text) => DockerIgnore::parse(&text),
        Err(_) => DockerIgnore::default(),
    };
    let mut entries: Vec<String> = Vec::new();
    for entry in walkdir::WalkDir::new(&ctx.dir)
        .min_depth(1)
        .sort_by_file_name()
    {
        let entry = entry.with_context(|| format!("cannot read {}", ctx.dir.display()))?;
        let rel = entry
            .path()
            .strip_prefix(&ctx.dir)
            .expect("below the context")
            .to_string_lossy();
        let rel = rel.replace(std::path::MAIN_SEPARATOR, "/");
        if entry.file_type().is_dir() || METADATA.contains(&rel.as_str()) || ignore.excluded(&rel) {
            continue;
        }
        entries.push(format!("{rel}\0{}", file_fingerprint(entry.path())?));
    }
    let mut h = Sha256::new();
    h.update(b"cip-context-v1\n");
    // The Dockerfile counts even when .dockerignore lists it: builders always read it.
    h.update(
        fs::read(&ctx.dockerfile)
            .with_context(|| format!("cannot read {}", ctx.dockerfile.display()))?,
    );
    for e in entries {
        h.update(b"\n");
        h.update(e.as_bytes());
    }
    Ok(hex::encode(h.finalize()))
}

/// Content hash and executable bit of a file, or the target of a symlink.
fn file_fingerprint(path: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(format!("link:{}", fs::read_link(path)?.display()));
    }
    let mut h = Sha256::new();
    let mut f = fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let exec = meta.permissions().mode() & 0o111 != 0;
    Ok(format!(
        "{}:{}",
        if exec { "x" } else { "-" },
        hex::encode(h.finalize())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let p = tmp.path().join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
        tmp
    }

    fn digests(dir: &Path) -> Vec<String> {
        let p = crate::project::scan(dir).unwrap();
        context_digests(&p, &Graph::build(&p)).unwrap()
    }

    const BASE: &[(&str, &str)] = &[
        ("contexts/00-base/Dockerfile", "FROM scratch\nCOPY . /\n"),
        ("contexts/00-base/info.edn", "{:version \"1.0.0\"}"),
        ("contexts/00-base/data.txt", "one"),
        ("contexts/00-base/notes.md", "ignored"),
        ("contexts/00-base/.dockerignore", "*.md\n"),
        (
            "contexts/01-child/Dockerfile",
            "ARG REGISTRY\nFROM ${REGISTRY}/base:1.0.0\n",
        ),
        ("contexts/01-child/info.edn", "{:version \"1.0.0\"}"),
    ];

    #[test]
    fn content_changes_move_the_digest_and_its_descendants() {
        let tmp = project(BASE);
        let before = digests(tmp.path());
        fs::write(tmp.path().join("contexts/00-base/data.txt"), "two").unwrap();
        let after = digests(tmp.path());
        assert_ne!(before[0], after[0]);
        assert_ne!(
            before[1], after[1],
            "a child depends on its parent's content"
        );
    }

    #[test]
    fn ignored_files_and_metadata_do_not_count() {
        let tmp = project(BASE);
        let before = digests(tmp.path());
        fs::write(tmp.path().join("contexts/00-base/notes.md"), "edited").unwrap();
        fs::write(
            tmp.path().join("contexts/00-base/info.edn"),
            "{:version \"1.0.0\" :x 1}",
        )
        .unwrap();
        assert_eq!(before, digests(tmp.path()));
        fs::write(tmp.path().join("contexts/00-base/new.txt"), "new").unwrap();
        assert_ne!(before[0], digests(tmp.path())[0], "a new file counts");
    }
}
