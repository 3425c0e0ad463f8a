//! Reading a project directory: its contexts, their info.edn / VERSION files and Dockerfile references.
pub mod context;
pub mod dockerfile;
pub mod dockerignore;
pub mod dockerma;
pub mod files;
pub mod info;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use rayon::prelude::*;
use semver::Version;

use crate::diagnostics::Problem;
use crate::platform::Platform;
use dockerfile::DockerfileRefs;
use files::{Allowed, ReadError};
use info::{Info, InfoFormat};

/// One image to build: a directory under `contexts/`.
#[derive(Debug, Clone)]
pub struct Context {
    pub dir: PathBuf,
    pub dir_name: String,
    /// Image name: the directory name without its `NN-` prefix.
    pub name: String,
    /// The numeric prefix, the author's declared build order.
    pub order: Option<u32>,
    pub version: Version,
    /// Declared platforms; None means the run's default platforms.
    pub platforms: Option<Vec<Platform>>,
    pub info_format: InfoFormat,
    /// `info.edn` or `VERSION`: the file holding the version.
    pub info_file: PathBuf,
    pub dockerfile: PathBuf,
    /// The stage to build (`:target`), None for the last.
    pub target: Option<String>,
    /// More tags for each published index (`:tags`).
    pub tags: Vec<String>,
    pub refs: DockerfileRefs,
}

impl Context {
    /// The platforms to build, given the run's defaults.
    pub fn platforms_or<'a>(&'a self, defaults: &'a [Platform]) -> &'a [Platform] {
        self.platforms.as_deref().unwrap_or(defaults)
    }
}

/// A scanned project: usable contexts, plus every problem found while reading them.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    /// Contexts that could be read, sorted by directory name.
    pub contexts: Vec<Context>,
    /// Names of contexts that exist but could not be read (their problems are in `problems`);
    /// references to them are not reported again as unknown.
    pub unreadable: BTreeSet<String>,
    pub problems: Vec<Problem>,
}

/// Scans `root/contexts/*` in parallel. Fails only if the tree itself cannot be listed; problems in
/// individual contexts are collected in `Project::problems`.
pub fn scan(root: &Path) -> anyhow::Result<Project> {
    let contexts_dir = root.join("contexts");
    if !contexts_dir.is_dir() {
        bail!(
            "{} is not a directory: a project keeps one directory per image under contexts/; run \
             cip in the project or below it, or point at it with -C DIR",
            contexts_dir.display()
        );
    }
    let mut dirs = Vec::new();
    for entry in walkdir::WalkDir::new(&contexts_dir)
        .min_depth(1)
        .max_depth(1)
    {
        let entry = entry.with_context(|| format!("cannot list {}", contexts_dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Files (a README) and hidden entries are not contexts; symlinked directories are.
        if name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        dirs.push((name, entry.into_path()));
    }
    dirs.sort();

    let project_files = Allowed::project(root);
    let results: Vec<Scanned> = dirs
        .into_par_iter()
        .map(|(dir_name, dir)| read_context(&project_files, &dir_name, &dir))
        .collect();

    let mut project = Project {
        root: root.to_path_buf(),
        contexts: Vec::new(),
        unreadable: BTreeSet::new(),
        problems: Vec::new(),
    };
    for (name, result, warnings) in results {
        project.problems.extend(warnings);
        match result {
            Ok(ctx) => project.contexts.push(ctx),
            Err(problems) => {
                project.problems.extend(problems);
                project.unreadable.insert(name);
            }
        }
    }
    report_duplicate_names(&mut project);
    Ok(project)
}

/// One context as read: its image name, the context or its errors, and the problems that leave it
/// usable (warnings, and errors in its Dockerfile that do not hide its references).
type Scanned = (String, Result<Context, Vec<Problem>>, Vec<Problem>);

/// Reads one context directory.
fn read_context(project_files: &Allowed, dir_name: &str, dir: &Path) -> Scanned {
    let (order, name) = context::split_dir_name(dir_name);
    let name = name.to_string();
    let allowed = project_files.and(dir);
    let mut errors = Vec::new();
    let mut usable = Vec::new();
    if !context::valid_image_name(&name) {
        errors.push(
            Problem::error(
                "bad-name",
                format!(
                    "image name {} (from directory {}) is not a valid repository name",
                    crate::diagnostics::quote(&name),
                    crate::diagnostics::quote(dir_name)
                ),
            )
            .at(dir, None)
            .hint(
                "rename the directory to NN-name: lower-case letters and digits, separated by \
                 single '.', single or double '_', or dashes (e.g. 01-base-dev)",
            ),
        );
    }
    let info = read_info(dir, dir_name, &allowed, &mut usable);
    let named = info
        .as_ref()
        .ok()
        .and_then(|(i, _, _)| i.dockerfile.clone());
    let dockerfile = dockerfile_path(dir, named.as_deref());
    let mut own_ignore = dockerfile.clone().into_os_string();
    own_ignore.push(".dockerignore");
    for ignore in [dir.join(".dockerignore"), PathBuf::from(own_ignore)] {
        errors.extend(files::ignore_file_problem(&ignore, &allowed));
    }
    let mut directive = None;
    let refs = match read_dockerfile(&dockerfile, &allowed, dir_name) {
        Ok((refs, mut problems, found)) => {
            usable.append(&mut problems);
            directive = found;
            Some(refs)
        }
        Err(p) => {
            errors.push(p);
            None
        }
    };
    let (info, format, info_file) = match info {
        Ok(x) => x,
        Err(mut p) => {
            errors.append(&mut p);
            return (name, Err(errors), usable);
        }
    };
    let platforms = dockerma_platforms(info.platforms, directive, &dockerfile, &mut usable);
    match refs {
        Some(refs) if errors.is_empty() => {
            let ctx = Context {
                dir: dir.to_path_buf(),
                dir_name: dir_name.to_string(),
                name: name.clone(),
                order,
                version: info.version,
                platforms,
                info_format: format,
                info_file,
                dockerfile,
                target: info.target,
                tags: info.tags,
                refs,
            };
            (name, Ok(ctx), usable)
        }
        _ => (name, Err(errors), usable),
    }
}

/// The context's platforms: info.edn's, else the dockerma directive's. A directive that
/// disagrees with info.edn is a warning (info.edn wins); one cip cannot read is a warning too.
fn dockerma_platforms(
    declared: Option<Vec<Platform>>,
    directive: Option<dockerma::Directive>,
    dockerfile: &Path,
    problems: &mut Vec<Problem>,
) -> Option<Vec<Platform>> {
    let Some((line, found)) = directive else {
        return declared;
    };
    let found = match found {
        Ok(found) => found,
        Err(e) => {
            problems.push(
                Problem::warning("dockerma-directive", e)
                    .at(dockerfile, Some(line))
                    .hint("use dockerma's names (amd64, arm64, arm, ...), or declare :platforms in info.edn"),
            );
            return declared;
        }
    };
    let Some(declared) = declared else {
        return Some(found);
    };
    let set = |v: &[Platform]| v.iter().cloned().collect::<BTreeSet<_>>();
    if set(&declared) != set(&found) {
        let list = |v: &[Platform]| {
            v.iter()
                .map(Platform::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        problems.push(
            Problem::warning(
                "dockerma-disagrees",
                format!(
                    "the dockerma directive names {} but info.edn's :platforms are {}; cip builds info.edn's",
                    list(&found),
                    list(&declared)
                ),
            )
            .at(dockerfile, Some(line))
            .hint("make them agree, or remove the directive (info.edn's :platforms is what cip builds)"),
        );
    }
    Some(declared)
}

/// The file a context builds: the one `info.edn` names (`:dockerfile`), else `Dockerfile`, else
/// `Containerfile` (podman's name), else `Dockerfile` (reported missing).
fn dockerfile_path(dir: &Path, named: Option<&str>) -> PathBuf {
    if let Some(name) = named {
        return dir.join(name);
    }
    let dockerfile = dir.join("Dockerfile");
    let containerfile = dir.join("Containerfile");
    if !files::present(&dockerfile) && files::present(&containerfile) {
        containerfile
    } else {
        dockerfile
    }
}

/// Reads and scans a Dockerfile: its references, and the problems in it that still leave them
/// usable. A Dockerfile that cannot be read or is not text is an error of the whole context.
fn read_dockerfile(
    path: &Path,
    allowed: &Allowed,
    dir_name: &str,
) -> Result<(DockerfileRefs, Vec<Problem>, Option<dockerma::Directive>), Problem> {
    let bytes = match files::read_bounded(path, allowed, files::DOCKERFILE_LIMIT) {
        Ok(b) => b,
        Err(ReadError::Missing) => {
            let file = path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let what = if file == "Dockerfile" {
                "no Dockerfile (nor Containerfile)".to_string()
            } else {
                format!("no {file}, which its info.edn names with :dockerfile")
            };
            return Err(Problem::error(
                "missing-dockerfile",
                format!("context {dir_name} has {what}"),
            )
            .at(path, None)
            .hint("add a Dockerfile, or move the directory out of contexts/"));
        }
        Err(ReadError::Problem(p)) => return Err(p),
    };
    let text = dockerfile_text(bytes, path)?;
    let refs = dockerfile::scan(&text);
    let problems = dockerfile_problems(&text, &refs, path);
    Ok((refs, problems, dockerma::directive(&text)))
}

/// The Dockerfile as text; NUL bytes or invalid UTF-8 mean it is not a Dockerfile at all.
fn dockerfile_text(bytes: Vec<u8>, path: &Path) -> Result<String, Problem> {
    let binary = |at: usize, bytes: &[u8]| {
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        Problem::error(
            "bad-dockerfile",
            "the Dockerfile is not text (a NUL byte or invalid UTF-8)",
        )
        .at(path, Some(line))
        .hint("a Dockerfile is UTF-8 text: is this the right file?")
    };
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(binary(at, &bytes));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        binary(at, e.as_bytes())
    })
}

/// Errors of a readable Dockerfile: empty, no FROM, unknown instructions, unclosed `${`.
fn dockerfile_problems(text: &str, refs: &DockerfileRefs, path: &Path) -> Vec<Problem> {
    let mut out = Vec::new();
    let blank = text
        .trim_start_matches('\u{feff}')
        .lines()
        .all(|l| l.trim().is_empty());
    if blank {
        out.push(
            Problem::error("empty-dockerfile", "the Dockerfile is empty")
                .at(path, None)
                .hint("write the image's instructions, starting with FROM"),
        );
    } else if refs.stages == 0 {
        out.push(
            Problem::error("no-from", "the Dockerfile has no FROM instruction")
                .at(path, None)
                .hint(
                    "start the build with FROM (e.g. FROM ${REGISTRY}/base:1.0.0 or FROM scratch)",
                ),
        );
    }
    for u in &refs.unknown_instructions {
        out.push(
            Problem::error(
                "unknown-instruction",
                format!(
                    "unknown instruction {}: builders stop here",
                    crate::diagnostics::quote(&u.word)
                ),
            )
            .at(path, Some(u.line))
            .hint(instruction_hint(&u.word)),
        );
    }
    for u in &refs.unclosed {
        out.push(
            Problem::error(
                "unclosed-variable",
                format!(
                    "unclosed ${{ in the image of this {}: builders reject it, and cip cannot \
                     tell which image it names",
                    dockerfile::kind_label(u.kind)
                ),
            )
            .at(path, Some(u.line))
            .hint("close the variable: ${REGISTRY}/NAME:TAG"),
        );
    }
    out
}

/// "did you mean" for an unknown instruction, else the list of instructions.
fn instruction_hint(word: &str) -> String {
    let upper = word.to_ascii_uppercase();
    let closest = dockerfile::INSTRUCTIONS
        .iter()
        .map(|i| (crate::diagnostics::edit_distance(i, &upper), *i))
        .filter(|(d, _)| *d <= 2)
        .min();
    match closest {
        Some((_, i)) => format!("did you mean {i}?"),
        None => format!(
            "instructions are {}; a line continuing the previous one needs a `\\` at the end of that line",
            dockerfile::INSTRUCTIONS.join(", ")
        ),
    }
}

type InfoResult = Result<(Info, InfoFormat, PathBuf), Vec<Problem>>;

fn read_info(
    dir: &Path,
    dir_name: &str,
    allowed: &Allowed,
    warnings: &mut Vec<Problem>,
) -> InfoResult {
    let edn_path = dir.join("info.edn");
    let version_path = dir.join("VERSION");
    if files::present(&edn_path) {
        if files::present(&version_path) {
            warnings.push(
                Problem::warning(
                    "both-info-files",
                    "both info.edn and VERSION exist; VERSION is ignored",
                )
                .at(&version_path, None)
                .hint("delete VERSION (and PLATFORMS_OVERRIDE): info.edn is the current layout"),
            );
        }
        let text = read_text(&edn_path, allowed)?;
        let info = info::parse_edn(&text, &edn_path)?;
        return Ok((info, InfoFormat::Edn, edn_path));
    }
    if files::present(&version_path) {
        let text = read_text(&version_path, allowed)?;
        let override_path = dir.join("PLATFORMS_OVERRIDE");
        let platforms = if files::present(&override_path) {
            Some(read_text(&override_path, allowed)?)
        } else {
            None
        };
        let platforms = platforms.as_deref().map(|t| (t, override_path.as_path()));
        let info = info::parse_version_file(&text, &version_path, platforms)?;
        return Ok((info, InfoFormat::VersionFile, version_path));
    }
    Err(vec![Problem::error(
        "missing-info",
        format!("context {dir_name} has neither info.edn nor VERSION"),
    )
    .at(&edn_path, None)
    .hint("add info.edn, e.g. {:version \"0.1.0\"}")])
}

fn read_text(path: &Path, allowed: &Allowed) -> Result<String, Vec<Problem>> {
    let bytes = files::read_bounded(path, allowed, files::METADATA_LIMIT).map_err(|e| match e {
        ReadError::Problem(p) => vec![p],
        ReadError::Missing => {
            vec![
                Problem::error("unreadable", "the file disappeared while cip read it")
                    .at(path, None),
            ]
        }
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let line = info::line_of(
            &String::from_utf8_lossy(e.as_bytes()),
            e.utf8_error().valid_up_to(),
        );
        vec![Problem::error("bad-encoding", "file is not valid UTF-8")
            .at(path, Some(line))
            .hint("save the file as UTF-8")]
    })
}

/// Two directories that yield the same image name would publish over each other.
fn report_duplicate_names(project: &mut Project) {
    let mut dirs_by_name: BTreeMap<&str, Vec<&Context>> = BTreeMap::new();
    for ctx in &project.contexts {
        dirs_by_name.entry(&ctx.name).or_default().push(ctx);
    }
    for (name, ctxs) in dirs_by_name.iter().filter(|(_, c)| c.len() > 1) {
        let dirs: Vec<&str> = ctxs.iter().map(|c| c.dir_name.as_str()).collect();
        project.problems.push(
            Problem::error(
                "duplicate-name",
                format!("directories {} all produce the image {name:?}", dirs.join(", ")),
            )
            .at(&ctxs[1].dir, None)
            .hint("rename all but one of them: the image name is the directory name without its NN- prefix"),
        );
    }
    // Keep the first of each duplicated name so the graph can still be checked.
    let mut seen = BTreeSet::new();
    project.contexts.retain(|c| seen.insert(c.name.clone()));
}
