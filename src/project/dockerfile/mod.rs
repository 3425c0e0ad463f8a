//! Finding references to other contexts' images (`${REGISTRY}/NAME:TAG`) in a Dockerfile.
//!
//! The scanner follows the BuildKit front end closely enough to know which text is an instruction
//! (parser directives, the escape character, continuations, comments, heredoc bodies) and which values a
//! builder would see in an image string (ARG defaults, the scope of `ARG REGISTRY`). Every character of
//! an expanded image string remembers the byte it came from, so a tag can be rewritten in place.
//!
//! The work is done in four layers, each handing its result to the next:
//! - `lines`: physical lines, parser directives (escape character, `# syntax=`) and logical
//!   instructions joined from continued lines, each byte remembering its place in the file;
//! - `lex`: an instruction's words, its `--flags`, `--mount` fields and heredoc markers;
//! - `expand`: ARG expansion of an image string (`${VAR}`, `${VAR:-default}`) into pieces that
//!   each remember their source byte, within the scope of global or stage ARGs;
//! - `scan`: walks the instructions (skipping heredoc bodies) and records FROM / COPY --from /
//!   RUN --mount references, features and unknown instructions into `DockerfileRefs`.
use std::ops::Range;

use serde::Serialize;

mod expand;
mod lex;
mod lines;
mod scan;
#[cfg(test)]
mod tests;

use scan::Scanner;

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

/// How messages name a reference's instruction.
pub fn kind_label(kind: RefKind) -> &'static str {
    match kind {
        RefKind::From => "FROM",
        RefKind::CopyFrom => "COPY --from",
        RefKind::MountFrom => "RUN --mount from=",
    }
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
    /// Byte range of the whole image text as written in the file, from the `$` of `${REGISTRY}` to the
    /// end of the tag or digest (e.g. `${REGISTRY}/tools:1.0.0` of `--from=${REGISTRY}/tools:1.0.0`;
    /// without the quotes of a quoted value), so that the reference can be replaced as a whole. None
    /// when that text is not written there in one piece: the value comes from an ARG, a continuation
    /// splits it, or quotes, escapes or `${VAR:-default}` forms sit inside it.
    pub image_span: Option<Range<usize>>,
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
    /// Byte offset of the start of the line where the first `FROM` instruction begins: stages can be
    /// declared before all the others there (after the parser directives and the global ARGs).
    pub first_from: Option<usize>,
    /// Byte ranges of the stage indexes written as `COPY --from=N` / `ADD --from=N` /
    /// `RUN --mount=...,from=N` (digits only, without quotes, in one piece).
    pub stage_indexes: Vec<Range<usize>>,
    /// What builders differ on: heredocs and the `# syntax=` directive.
    pub features: Features,
    /// Instructions no builder knows (`RUNN`), with their line.
    pub unknown_instructions: Vec<UnknownInstruction>,
    /// Image strings (FROM, COPY --from, RUN --mount from=) with a `${` that is never closed: builders
    /// reject them, and no reference can be read from them.
    pub unclosed: Vec<Unclosed>,
}

/// Dockerfile features not every builder supports (see `builders::capabilities`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Features {
    /// 1-based lines of the instructions that open a heredoc (`RUN <<EOF`, `COPY <<EOF /dst`).
    pub heredoc_lines: Vec<usize>,
    /// The `# syntax=` parser directive: the BuildKit frontend image to build with.
    pub syntax: Option<SyntaxDirective>,
}

/// `# syntax=IMAGE` at the top of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyntaxDirective {
    /// As written, e.g. `docker/dockerfile:1.4.1`.
    pub image: String,
    pub line: usize,
}

/// A line that starts an instruction with a word no builder knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownInstruction {
    pub line: usize,
    /// The word as written (at most 40 characters of it).
    pub word: String,
}

/// An image string with an unclosed `${`: where it is and in which instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unclosed {
    pub kind: RefKind,
    pub line: usize,
}

/// Every instruction a Dockerfile may hold (BuildKit's list; matched case-insensitively).
pub const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Scan Dockerfile text. Never panics, whatever the input; unparseable lines are skipped.
pub fn scan(text: &str) -> DockerfileRefs {
    Scanner::new(text).run()
}
