//! Which file each edit lands in. A Dockerfile or info file may be a symlink: the edit goes to its
//! target (replacing the link with a copy would leave the shared target, and every other context
//! linking to it, on the old version), once, however many contexts link to it. A target outside the
//! project is refused, and so is a target that two contexts need with different contents.
use std::collections::BTreeMap;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::diagnostics::Problem;

/// A replacement of a byte range.
pub type Edit = (Range<usize>, String);

/// The contexts' files, grouped by the file they really are.
pub struct Files {
    /// The project root as given (paths shown to the user start with it) and resolved.
    root: PathBuf,
    real_root: PathBuf,
    targets: BTreeMap<PathBuf, Target>,
    pub problems: Vec<Problem>,
}

#[derive(Default)]
struct Target {
    /// The file's text, once some context has edits for it.
    text: Option<String>,
    /// Each path a context reaches this file by, and that context's edits (none: it needs the file
    /// as it is).
    needs: Vec<(PathBuf, Vec<Edit>)>,
}

/// The outcome: per file (its target path), the original and new contents, and for a target reached
/// through symlinks, the links.
pub type Resolved = (
    BTreeMap<PathBuf, (String, String)>,
    BTreeMap<PathBuf, Vec<PathBuf>>,
);

impl Files {
    pub fn new(root: &Path) -> Result<Files, Problem> {
        let real_root = fs::canonicalize(root).map_err(|e| {
            Problem::error(
                "unreadable",
                format!("cannot resolve the project directory: {e}"),
            )
            .at(root, None)
        })?;
        Ok(Files {
            root: root.to_path_buf(),
            real_root,
            targets: BTreeMap::new(),
            problems: Vec::new(),
        })
    }

    /// `path` (as a context reaches it) holds `text` and needs `edits`.
    pub fn edit(&mut self, path: &Path, text: String, edits: Vec<Edit>) {
        if let Some(target) = self.resolve(path) {
            let t = self.targets.entry(target).or_default();
            t.text.get_or_insert(text);
            t.needs.push((path.to_path_buf(), edits));
        }
    }

    /// `path` stays as it is for its context (it matters if another context shares its target).
    pub fn keep(&mut self, path: &Path) {
        if let Some(target) = self.resolve(path) {
            self.targets
                .entry(target)
                .or_default()
                .needs
                .push((path.to_path_buf(), Vec::new()));
        }
    }

    /// The file `path` really is, shown under the project root as given; None (and a problem) when it
    /// resolves outside the project.
    fn resolve(&mut self, path: &Path) -> Option<PathBuf> {
        let real = match fs::canonicalize(path) {
            Ok(real) => real,
            Err(e) => {
                self.problems.push(
                    Problem::error("unreadable", format!("cannot resolve: {e}")).at(path, None),
                );
                return None;
            }
        };
        match real.strip_prefix(&self.real_root) {
            Ok(rel) => Some(self.root.join(rel)),
            Err(_) => {
                self.problems.push(
                    Problem::error(
                        "outside-project",
                        format!(
                            "links to {}, outside the project {}; cip edits only files inside it",
                            real.display(),
                            self.real_root.display()
                        ),
                    )
                    .at(path, None)
                    .hint("copy the file into the project (a link to a file inside it is fine), then run again"),
                );
                None
            }
        }
    }

    /// Every file whose content changes, with its new content; or every problem.
    pub fn resolve_all(mut self) -> Result<Resolved, Vec<Problem>> {
        let mut files = BTreeMap::new();
        let mut links = BTreeMap::new();
        for (target, t) in std::mem::take(&mut self.targets) {
            let Some(original) = &t.text else {
                continue; // no context edits it
            };
            match agreed_content(&target, original, &t.needs) {
                Ok(new) if new == *original => {}
                Ok(new) => {
                    let via: Vec<PathBuf> = t
                        .needs
                        .into_iter()
                        .map(|(p, _)| p)
                        .filter(|p| *p != target)
                        .collect();
                    if !via.is_empty() {
                        links.insert(target.clone(), via);
                    }
                    files.insert(target, (original.clone(), new));
                }
                Err(p) => self.problems.push(p),
            }
        }
        if self.problems.is_empty() {
            Ok((files, links))
        } else {
            Err(self.problems)
        }
    }
}

/// The one content every context reaching `target` needs, or the first two that disagree.
fn agreed_content(
    target: &Path,
    original: &str,
    needs: &[(PathBuf, Vec<Edit>)],
) -> Result<String, Problem> {
    let (first_path, first_edits) = &needs[0];
    let first = apply(original, first_edits);
    for (path, edits) in &needs[1..] {
        if apply(original, edits) != first {
            return Err(conflict(target, first_path, path));
        }
    }
    Ok(first)
}

fn conflict(target: &Path, a: &Path, b: &Path) -> Problem {
    Problem::error(
        "shared-file",
        format!(
            "{} and {} are the same file ({}), but the cascade needs different contents in it \
             (e.g. one image's version moves and the other's does not)",
            a.display(),
            b.display(),
            target.display()
        ),
    )
    .at(target, None)
    .hint("give each context its own file, or bump the images that share it together")
}

/// `text` with `edits` (disjoint ranges) applied.
fn apply(text: &str, edits: &[Edit]) -> String {
    let mut edits: Vec<&Edit> = edits.iter().collect();
    edits.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
    let mut out = text.to_string();
    for (span, replacement) in edits {
        out.replace_range(span.clone(), replacement);
    }
    out
}
