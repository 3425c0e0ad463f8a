//! `cip merge --tag REG/REPO:TAG SRC...`: an image index pushed from existing images (each source a
//! single-platform image or an index, in any repository of the same registry), their blobs mounted
//! into the target repository. See `crate::registry::merge`.
use std::collections::BTreeMap;

use anyhow::bail;

use crate::execute::index_writer::{Annotations, Guard, IndexWrite, IndexWriter, NewImage};
use crate::options::ConnectOptions;
use crate::registry::merge::{self, ImageRef, MergeSource};
use crate::session::{runtime, Session};

pub struct MergeArgs<'a> {
    pub tag: &'a str,
    pub sources: &'a [String],
    pub prefer: &'a [String],
    pub annotations: &'a [(String, String)],
    pub dry_run: bool,
    /// Overwrite an index cip published.
    pub force: bool,
    pub connect: &'a ConnectOptions,
}

pub fn run(a: &MergeArgs) -> anyhow::Result<i32> {
    let target = ImageRef::parse(a.tag)?;
    if target.reference.starts_with("sha256:") {
        bail!("--tag {}: name a tag to write, not a digest", a.tag);
    }
    let sources = parse_all(a.sources)?;
    let prefer = parse_all(a.prefer)?;
    for s in sources.iter().chain(&prefer) {
        if s.host != target.host {
            bail!(
                "{s}: not in {}, the registry of --tag (cip merge mounts blobs within one registry; copy it there first, e.g. with skopeo copy)",
                target.host
            );
        }
    }
    if let Some(p) = prefer.iter().find(|p| !sources.contains(p)) {
        bail!("--prefer {p}: not one of the sources");
    }
    let rt = runtime()?;
    let events = a.connect.events.clone();
    let session = rt.block_on(Session::open(&target.host, a.connect, &events))?;
    let reg = session.registry.clone();
    let chosen = rt.block_on(async {
        let mut found = Vec::new();
        for src in &sources {
            for entry in merge::source_entries(&reg, src).await? {
                found.push(MergeSource {
                    source: src.clone(),
                    entry,
                });
            }
        }
        merge::choose(found, &prefer)
    })?;
    let write = IndexWrite {
        repository: target.repository.clone(),
        label: target.to_string(),
        new: chosen
            .iter()
            .map(|c| NewImage {
                entry: c.entry.clone(),
                from: c.source.repository.clone(),
                node: None,
            })
            .collect(),
        guard: Guard::NotPublishedByCip { force: a.force },
        keep_published: false,
        annotations: Annotations::Fixed(a.annotations.iter().cloned().collect()),
        arch_tags: BTreeMap::new(),
        tags: vec![target.reference.clone()],
    };
    for c in &chosen {
        eprintln!(
            "{}: {} ({})",
            c.entry
                .platform
                .as_ref()
                .map_or("-".into(), |p| p.to_string()),
            c.source,
            c.entry.digest
        );
    }
    let writer = IndexWriter::new(&reg);
    if a.dry_run {
        let (bytes, digest) = rt.block_on(writer.preview(&write))?;
        println!("{}", String::from_utf8_lossy(&bytes));
        eprintln!("--dry-run: {target} would be this index ({digest}); nothing written");
        return Ok(0);
    }
    let written = rt.block_on(writer.write(&write))?;
    eprintln!("{target}: index {}", written.digest);
    Ok(0)
}

fn parse_all(refs: &[String]) -> anyhow::Result<Vec<ImageRef>> {
    refs.iter().map(|r| ImageRef::parse(r)).collect()
}
