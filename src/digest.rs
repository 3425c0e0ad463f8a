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

/// The context digests recorded in published indexes of parent versions that children still
/// reference though the parent moved on, keyed by `(name, tag)`. See [`context_digests`].
pub type PublishedDigests = std::collections::HashMap<(String, String), String>;

/// The digests of a project's contexts (same order as `project.contexts`).
#[derive(Debug, Clone, Default)]
pub struct Digests {
    /// Of each context's own files and Dockerfile.
    pub own: Vec<String>,
    /// Of each context with its parents (see [`context_digests`]): what indexes record.
    pub full: Vec<String>,
}

/// One digest per context (same order as `project.contexts`), computed in parallel.
///
/// A child covers each parent as it references it: the parent's digest when the reference names
/// the parent's current version (or no tag, or `latest`). A reference to another version covers
/// what that published version recorded (`published`, from its index annotation) or else the tag
/// itself, since a published version does not change. So bumping only a base leaves the children
/// that still name its old version as they were: they recorded that version's digest when it was
/// current.
pub fn context_digests(
    project: &Project,
    graph: &Graph,
    published: &PublishedDigests,
) -> anyhow::Result<Digests> {
    let own: Vec<String> = project
        .contexts
        .par_iter()
        .map(own_digest)
        .collect::<anyhow::Result<_>>()?;
    let mut full: Vec<Option<String>> = vec![None; own.len()];
    for c in graph.order() {
        let parent = |p: usize| full[p].clone().unwrap_or_default();
        full[c] = Some(with_parents(project, graph, published, c, &own[c], &parent));
    }
    Ok(Digests {
        own,
        full: full.into_iter().map(Option::unwrap_or_default).collect(),
    })
}

/// The full digest of context `c` from its own digest and each parent's (`parent`, by context):
/// with the parents' digests of another time, what `c`'s digest was then.
pub fn with_parents(
    project: &Project,
    graph: &Graph,
    published: &PublishedDigests,
    c: usize,
    own: &str,
    parent: &dyn Fn(usize) -> String,
) -> String {
    let mut h = Sha256::new();
    h.update(own.as_bytes());
    let mut parents: Vec<String> = graph
        .parents(c)
        .into_iter()
        .flat_map(|p| parent_lines(project, c, p, &parent(p), published))
        .collect();
    parents.sort();
    parents.dedup();
    for line in parents {
        h.update(line.as_bytes());
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// The `(parent name, tag)` of every reference to a version of a parent other than its current
/// one: what [`context_digests`] wants to find in the registry.
pub fn older_parent_versions(project: &Project, graph: &Graph) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for c in 0..project.contexts.len() {
        for p in graph.parents(c) {
            let parent = &project.contexts[p];
            for r in refs_to(project, c, parent) {
                if let (None, Some(tag)) = (&r.digest, r.tag.as_deref()) {
                    if !tag_is_current(Some(tag), parent) {
                        out.push((parent.name.clone(), tag.to_string()));
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether `child` references `parent` at the parent's current version (or without a tag, which
/// follows `latest`): then the parent's content, not only its name and tag, is part of the child's.
pub fn follows_current(project: &Project, child: usize, parent: usize) -> bool {
    let p = &project.contexts[parent];
    refs_to(project, child, p).any(|r| r.digest.is_none() && tag_is_current(r.tag.as_deref(), p))
}

fn refs_to<'a>(
    project: &'a Project,
    child: usize,
    parent: &'a Context,
) -> impl Iterator<Item = &'a crate::project::dockerfile::RegistryRef> {
    project.contexts[child]
        .refs
        .registry_refs
        .iter()
        .filter(move |r| r.name == parent.name)
}

fn tag_is_current(tag: Option<&str>, parent: &Context) -> bool {
    tag.is_none_or(|t| t == "latest" || t == parent.version.to_string())
}

/// What `child`'s digest records of `parent`, one line per distinct reference.
fn parent_lines(
    project: &Project,
    child: usize,
    parent: usize,
    digest: &str,
    published: &PublishedDigests,
) -> Vec<String> {
    let p = &project.contexts[parent];
    refs_to(project, child, p)
        .map(|r| match (&r.digest, r.tag.as_deref()) {
            (Some(pinned), _) => format!("\nparent {} @{pinned}", p.name),
            (None, tag) if tag_is_current(tag, p) => format!("\nparent {} {digest}", p.name),
            (None, tag) => {
                let tag = tag.unwrap_or_default();
                match published.get(&(p.name.clone(), tag.to_string())) {
                    Some(recorded) => format!("\nparent {} {recorded}", p.name),
                    None => format!("\nparent {} tag {tag}", p.name),
                }
            }
        })
        .collect()
}

/// The digest of one context's own files and Dockerfile.
fn own_digest(ctx: &Context) -> anyhow::Result<String> {
    let ignore_file = ctx.dir.join(".dockerignore");
    // Only a regular file: a FIFO there would block the read.
    let regular = fs::metadata(&ignore_file).is_ok_and(|m| m.is_file());
    let ignore = match regular.then(|| fs::read_to_string(&ignore_file)) {
        Some(Ok(text)) => DockerIgnore::parse(&text),
        _ => DockerIgnore::default(),
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
    // A FIFO or device would block the read or never end: its kind stands for it.
    if !meta.is_file() {
        return Ok(format!(
            "special:{:o}",
            meta.permissions().mode() & 0o170000
        ));
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
        context_digests(&p, &Graph::build(&p), &Default::default())
            .unwrap()
            .full
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
    fn a_childs_digest_with_its_parents_old_digest_is_the_childs_old_digest() {
        let tmp = project(BASE);
        let before = digests(tmp.path());
        fs::write(tmp.path().join("contexts/00-base/data.txt"), "two").unwrap();
        let p = crate::project::scan(tmp.path()).unwrap();
        let g = Graph::build(&p);
        let now = context_digests(&p, &g, &Default::default()).unwrap();
        assert_ne!(now.full[1], before[1]);
        // Only the parent moved: with the parent's old digest, the child is as it was.
        let old_parent = |_: usize| before[0].clone();
        let then = with_parents(&p, &g, &Default::default(), 1, &now.own[1], &old_parent);
        assert_eq!(then, before[1]);
    }

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
    fn a_child_naming_an_older_parent_version_covers_what_that_version_recorded() {
        let tmp = project(BASE);
        let before = digests(tmp.path());
        // The base moves to 2.0.0 with new content; the child still names base:1.0.0.
        fs::write(tmp.path().join("contexts/00-base/data.txt"), "two").unwrap();
        fs::write(
            tmp.path().join("contexts/00-base/info.edn"),
            "{:version \"2.0.0\"}",
        )
        .unwrap();
        let p = crate::project::scan(tmp.path()).unwrap();
        let g = Graph::build(&p);
        assert_eq!(
            older_parent_versions(&p, &g),
            [("base".to_string(), "1.0.0".to_string())]
        );
        // base:1.0.0 as published records the digest base had then.
        let recorded: PublishedDigests =
            [(("base".into(), "1.0.0".into()), before[0].clone())].into();
        let after = context_digests(&p, &g, &recorded).unwrap().full;
        assert_ne!(before[0], after[0]);
        assert_eq!(
            before[1], after[1],
            "the child's reference and files did not change"
        );
        // Without the registry's record, the tag stands for the version: stable, but not the same.
        let by_tag = context_digests(&p, &g, &Default::default()).unwrap().full;
        assert_eq!(by_tag[1], digests(tmp.path())[1]);
        fs::write(tmp.path().join("contexts/00-base/data.txt"), "three").unwrap();
        assert_eq!(
            by_tag[1],
            digests(tmp.path())[1],
            "base's new content is not base:1.0.0"
        );
        // Once the child follows the new version, the parent's content counts again.
        fs::write(
            tmp.path().join("contexts/01-child/Dockerfile"),
            "ARG REGISTRY\nFROM ${REGISTRY}/base:2.0.0\n",
        )
        .unwrap();
        let followed = digests(tmp.path());
        fs::write(tmp.path().join("contexts/00-base/data.txt"), "four").unwrap();
        assert_ne!(followed[1], digests(tmp.path())[1]);
    }

    #[test]
    fn a_fifo_in_a_context_is_not_read() {
        let tmp = project(BASE);
        let fifo = tmp.path().join("contexts/00-base/pipe");
        let ok = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(ok.success());
        // Would block forever if the FIFO were opened for reading.
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = tmp.path().to_path_buf();
        std::thread::spawn(move || tx.send(digests(&dir)).unwrap());
        let d = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("digests of a context holding a FIFO finish");
        assert_eq!(d.len(), 2);
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
