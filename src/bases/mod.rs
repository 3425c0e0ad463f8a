//! External bases: the images of other projects a tree builds on (`FROM debian:bookworm-slim`,
//! `COPY --from=golang:1.22`, `RUN --mount=from=...`). A context digest covers a Dockerfile's text,
//! not what `debian:bookworm-slim` pointed to when a version was built; so cip resolves each
//! external base to the manifest digest its registry names now ([`resolve`]), once per distinct
//! reference per run, to record it and to notice when an upstream base moved.
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::project::dockerfile::RefKind;
use crate::project::Project;

pub mod reference;
pub mod report;
pub mod resolve;

pub use reference::BaseRef;

/// `FROM scratch` is no image: builders start from nothing.
const SCRATCH: &str = "scratch";

/// Where a context refers to an external base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    /// The image (context) name.
    pub image: String,
    pub dockerfile: PathBuf,
    pub line: usize,
    pub kind: RefKind,
    /// The reference as written, ARG defaults expanded.
    pub written: String,
}

/// The external bases of a tree.
#[derive(Debug, Default)]
pub struct Bases {
    /// Each distinct base (normalised; a pinned and an unpinned spelling are two bases) with where
    /// it is used, in context order.
    pub bases: BTreeMap<BaseRef, Vec<Use>>,
    /// References that are no image name cip can ask a registry for, with why.
    pub unreadable: Vec<(Use, String)>,
}

impl Bases {
    /// The images (context names) that build on `base`, each once.
    pub fn images_on(&self, base: &BaseRef) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .bases
            .get(base)
            .into_iter()
            .flatten()
            .map(|u| u.image.as_str())
            .collect();
        names.dedup();
        names
    }

    /// The distinct references whose current digest a run asks for: each base without its pin
    /// (a digest written without a tag names one image for ever: nothing to ask).
    pub fn to_resolve(&self) -> Vec<BaseRef> {
        let mut refs: Vec<BaseRef> = self.bases.keys().filter_map(BaseRef::unpinned).collect();
        refs.sort();
        refs.dedup();
        refs
    }
}

/// The external bases of every context of `project`.
pub fn collect(project: &Project) -> Bases {
    let mut out = Bases::default();
    for ctx in &project.contexts {
        for e in ctx.refs.external.iter().filter(|e| e.image != SCRATCH) {
            let used = Use {
                image: ctx.name.clone(),
                dockerfile: ctx.dockerfile.clone(),
                line: e.line,
                kind: e.kind,
                written: e.image.clone(),
            };
            match BaseRef::parse(&e.image) {
                Ok(base) => out.bases.entry(base).or_default().push(used),
                Err(why) => out.unreadable.push((used, why)),
            }
        }
    }
    out
}
