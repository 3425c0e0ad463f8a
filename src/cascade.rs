//! Version cascade: move every reference to its parent's current (or newly bumped) version and bump each
//! image whose references moved, once, parents first. Edits touch only version tokens; all edits are
//! computed first and written all-or-nothing (`transaction`), even when cip is interrupted.
use std::collections::BTreeMap;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use semver::Version;

mod files;
pub mod signals;
mod transaction;

pub use transaction::{recover, write, Interrupted, Written};

use crate::diagnostics::Problem;
use crate::graph::Graph;
use crate::project::dockerfile;
use crate::project::info::{self, InfoFormat};
use crate::project::{Context, Project};
use files::Files;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Patch,
    Minor,
    Major,
}

impl Level {
    /// Every level with its name, in the order `--help` lists them.
    pub const ALL: [(Level, &'static str); 3] = [
        (Level::Patch, "patch"),
        (Level::Minor, "minor"),
        (Level::Major, "major"),
    ];
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Level, String> {
        Level::ALL
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(l, _)| *l)
            .ok_or_else(|| format!("{s:?} is not one of patch, minor, major"))
    }
}

/// The next version at `level`; Err names the part that is already at its maximum (u64::MAX).
pub fn bump(v: &Version, level: Level) -> Result<Version, &'static str> {
    let next = |n: u64, part| n.checked_add(1).ok_or(part);
    Ok(match level {
        Level::Patch => Version::new(v.major, v.minor, next(v.patch, "PATCH")?),
        Level::Minor => Version::new(v.major, next(v.minor, "MINOR")?, 0),
        Level::Major => Version::new(next(v.major, "MAJOR")?, 0, 0),
    })
}

/// Why an image's version moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// Asked for (`cip bump NAME`, `cip bump --changed`).
    Requested,
    /// These parents moved to these versions.
    ParentsMoved(Vec<(String, String)>),
}

#[derive(Debug, Clone)]
pub struct Bump {
    pub ctx: usize,
    pub name: String,
    pub from: Version,
    pub to: Version,
    pub why: Why,
}

/// Every file to rewrite, with its old and new content, and every version bump.
#[derive(Debug, Default)]
pub struct Cascade {
    pub bumps: Vec<Bump>,
    /// Path -> (original, rewritten). Ordered for stable output. A symlinked file appears once, by
    /// its target's path.
    pub files: BTreeMap<PathBuf, (String, String)>,
    /// For a file in `files` reached through symlinks: the links.
    pub links: BTreeMap<PathBuf, Vec<PathBuf>>,
}

impl Cascade {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// Computes the cascade. `requested` bumps these contexts first (by index). Returns every problem that
/// prevents an edit; then nothing may be written.
pub fn compute(
    project: &Project,
    graph: &Graph,
    requested: &[usize],
    level: Level,
) -> Result<Cascade, Vec<Problem>> {
    compute_with(project, graph, requested, level, level)
}

/// As `compute`, with the requested images bumped by `requested_level` and their descendants by `level`.
pub fn compute_with(
    project: &Project,
    graph: &Graph,
    requested: &[usize],
    requested_level: Level,
    level: Level,
) -> Result<Cascade, Vec<Problem>> {
    let mut new_version: Vec<Version> =
        project.contexts.iter().map(|c| c.version.clone()).collect();
    let mut files = Files::new(&project.root).map_err(|p| vec![p])?;
    let mut bumps = Vec::new();
    let mut problems = Vec::new();

    for c in graph.order() {
        let ctx = &project.contexts[c];
        let mut moved = Vec::new();
        match reference_edits(project, graph, ctx, &new_version) {
            Ok((text, ref_edits)) => {
                let mut edits = Vec::new();
                for (span, to, parent) in ref_edits {
                    moved.push((parent, to.clone()));
                    edits.push((span, to));
                }
                files.edit(&ctx.dockerfile, text, edits);
            }
            Err(mut p) => problems.append(&mut p),
        }
        moved.sort();
        moved.dedup();
        let why = if requested.contains(&c) {
            Why::Requested
        } else if !moved.is_empty() {
            Why::ParentsMoved(moved)
        } else {
            files.keep(&ctx.info_file);
            continue;
        };
        let part = if why == Why::Requested {
            requested_level
        } else {
            level
        };
        let edit = version_edit(ctx);
        let to = match bump(&ctx.version, part) {
            Ok(to) => to,
            Err(what) => {
                let line = edit
                    .ok()
                    .map(|(text, span)| info::line_of(&text, span.start));
                problems.push(overflow(ctx, what, line));
                continue;
            }
        };
        match edit {
            Ok((text, span)) => files.edit(&ctx.info_file, text, vec![(span, to.to_string())]),
            Err(p) => problems.push(p),
        }
        new_version[c] = to.clone();
        bumps.push(Bump {
            ctx: c,
            name: ctx.name.clone(),
            from: ctx.version.clone(),
            to,
            why,
        });
    }
    let resolved = files.resolve_all();
    match resolved {
        Ok((files, links)) if problems.is_empty() => Ok(Cascade {
            bumps,
            files,
            links,
        }),
        Ok(_) => Err(problems),
        Err(more) => {
            problems.extend(more);
            Err(problems)
        }
    }
}

/// The version already has the highest value of `part`.
fn overflow(ctx: &Context, part: &str, line: Option<usize>) -> Problem {
    Problem::error(
        "cannot-bump",
        format!(
            "version {} cannot be bumped: {part} would overflow",
            ctx.version
        ),
    )
    .at(&ctx.info_file, line)
    .hint("set a smaller version by hand (each part is at most 18446744073709551615)")
}

type RefEdit = (Range<usize>, String, String);

/// The edits moving `ctx`'s references to their parents' new versions, and the Dockerfile text they
/// apply to (read afresh, so the spans match the bytes on disk).
fn reference_edits(
    project: &Project,
    graph: &Graph,
    ctx: &Context,
    new_version: &[Version],
) -> Result<(String, Vec<RefEdit>), Vec<Problem>> {
    let text = read_utf8(&ctx.dockerfile).map_err(|p| vec![p])?;
    let refs = dockerfile::scan(&text);
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for r in &refs.registry_refs {
        let Some(node) = graph.node(&r.name) else {
            continue;
        };
        let parent = graph.dag[node];
        if project.contexts[parent].name == ctx.name {
            continue; // a self-reference is a cycle, reported by check
        }
        let want = new_version[parent].to_string();
        if r.tag.as_deref() == Some(want.as_str()) && r.digest.is_none() {
            continue;
        }
        let here = |msg: String, hint: &str| {
            Problem::error("cannot-rewrite", msg)
                .at(&ctx.dockerfile, Some(r.line))
                .hint(hint.to_string())
        };
        let written = r.tag.as_deref().unwrap_or("");
        if let Some(d) = &r.digest {
            problems.push(here(
                format!(
                    "{} is pinned by digest ({d}); cip cannot move it to {want}",
                    r.name
                ),
                "remove the @digest (or update it by hand), then run the cascade again",
            ));
        } else if r
            .tag
            .as_deref()
            .map(info::parse_version)
            .is_some_and(|v| v.is_err())
        {
            problems.push(here(
                format!(
                    "tag {written:?} of {} is not a version; cip cannot move it to {want}",
                    r.name
                ),
                "pin the reference to a semantic version, e.g. ${REGISTRY}/NAME:1.0.0",
            ));
        } else if let (Some(span), Some(_)) = (r.tag_span.clone(), &r.tag) {
            out.push((span, want, r.name.clone()));
        } else {
            problems.push(here(
                format!("the reference to {} has no literal tag to rewrite", r.name),
                "write the tag in the Dockerfile: ${REGISTRY}/NAME:VERSION",
            ));
        }
    }
    if problems.is_empty() {
        Ok((text, out))
    } else {
        Err(problems)
    }
}

/// The span of the version in the context's info file, and that file's text.
fn version_edit(ctx: &Context) -> Result<(String, Range<usize>), Problem> {
    let text = read_utf8(&ctx.info_file)?;
    let span = match ctx.info_format {
        InfoFormat::Edn => info::version_span(&text),
        InfoFormat::VersionFile => {
            let first = text.lines().next().unwrap_or("");
            let start = first.len() - first.trim_start().len();
            Some(start..start + first.trim().len())
        }
    };
    match span {
        Some(span) if !span.is_empty() || ctx.info_format == InfoFormat::VersionFile => {
            Ok((text, span))
        }
        _ => Err(
            Problem::error("cannot-rewrite", "no :version string to rewrite")
                .at(&ctx.info_file, None)
                .hint("write the version as :version \"1.0.0\""),
        ),
    }
}

fn read_utf8(path: &Path) -> Result<String, Problem> {
    let bytes = fs::read(path)
        .map_err(|e| Problem::error("unreadable", format!("cannot read: {e}")).at(path, None))?;
    String::from_utf8(bytes).map_err(|_| {
        Problem::error(
            "bad-encoding",
            "file is not valid UTF-8; cip will not rewrite it",
        )
        .at(path, None)
        .hint("save it as UTF-8")
    })
}

/// A unified diff of every planned edit, paths as given.
/// A unified diff of every planned edit, with paths relative to the project `root` (`a/contexts/..`),
/// so that `git apply` in the project takes it.
pub fn diff(cascade: &Cascade, root: &Path) -> String {
    let mut out = String::new();
    for (path, (old, new)) in &cascade.files {
        let p = path
            .strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string();
        let d = similar::TextDiff::from_lines(old, new);
        out.push_str(
            &d.unified_diff()
                .context_radius(2)
                .header(&format!("a/{p}"), &format!("b/{p}"))
                .to_string(),
        );
    }
    out
}

/// One line per bump: `name 1.0.0 -> 1.0.1 (busybox -> 1.1.0)`.
pub fn summary(cascade: &Cascade) -> String {
    let mut out = String::new();
    for b in &cascade.bumps {
        let why = match &b.why {
            Why::Requested => "requested".to_string(),
            Why::ParentsMoved(ps) => ps
                .iter()
                .map(|(n, v)| format!("{n} -> {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        out.push_str(&format!("{} {} -> {} ({why})\n", b.name, b.from, b.to));
    }
    out
}
