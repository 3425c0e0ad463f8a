//! Finding references to other contexts' images (`${REGISTRY}/NAME:TAG`) in a Dockerfile.
//! STUB: the real scanner replaces this file; the public API below is the contract.
use std::ops::Range;

use serde::Serialize;

/// Where in the Dockerfile an image is referenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefKind {
    /// `FROM image`
    From,
    /// `COPY --from=image` (also `ADD --from=`)
    CopyFrom,
    /// `RUN --mount=...,from=image`
    MountFrom,
}

/// A reference to `${REGISTRY}/name[:tag][@digest]`: an image of this project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryRef {
    pub kind: RefKind,
    /// 1-based line of the instruction (for a value coming from a global `ARG` default, the line of that ARG).
    pub line: usize,
    /// Repository name after `${REGISTRY}/`, e.g. `base-dev` (may contain `/`).
    pub name: String,
    /// The tag as written, e.g. `1.2.3`; None if absent.
    pub tag: Option<String>,
    /// `sha256:...` if pinned by digest.
    pub digest: Option<String>,
    /// Byte range of the tag text in the whole file (for in-place rewrites); None if no tag is written
    /// literally in the file (absent, or produced by another ARG).
    pub tag_span: Option<Range<usize>>,
    /// False when `${REGISTRY}` is used in a stage (COPY --from / RUN --mount after FROM) that did not
    /// redeclare `ARG REGISTRY`, or in a FROM with no global `ARG REGISTRY` before it: builders expand it
    /// to an empty string there.
    pub registry_in_scope: bool,
}

/// Any other image reference (`debian:bookworm`, `scratch`), recorded for information.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExternalRef {
    pub kind: RefKind,
    pub line: usize,
    /// The image as written after expanding known ARG defaults.
    pub image: String,
}

/// What a Dockerfile says about images.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DockerfileRefs {
    pub registry_refs: Vec<RegistryRef>,
    pub external: Vec<ExternalRef>,
    /// Number of `FROM` instructions (stages).
    pub stages: usize,
}

/// Scan Dockerfile text. Never panics, whatever the input; unparseable lines are skipped.
pub fn scan(_text: &str) -> DockerfileRefs {
    DockerfileRefs::default()
}
