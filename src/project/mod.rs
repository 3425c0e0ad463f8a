//! Reading a project directory: its contexts, their info.edn / VERSION files and Dockerfile references.
pub mod context;
pub mod dockerfile;
pub mod dockerignore;
pub mod info;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use rayon::prelude::*;
use semver::Version;

use crate::diagnostics::Problem;
use crate::platform::Platform;
use dockerfile::DockerfileRefs;
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
            "{} is not a directory: a project keeps one directory per image under contexts/ \
             (use --project-dir to point at the project)",
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

    let results: Vec<Scanned> = dirs
        .into_par_iter()
        .map(|(dir_name, dir)| {
            let (name, result, warnings) = read_context(&dir_name, &dir);
            (name, result, warnings)
        })
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

/// One context as read: its image name, the context or its errors, and warnings.
type Scanned = (String, Result<Context, Vec<Problem>>, Vec<Problem>);

/// Reads one context directory.
fn read_context(dir_name: &str, dir: &Path) -> Scanned {
    let (order, name) = context::split_dir_name(dir_name);
    let name = name.to_string();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    if !context::valid_image_name(&name) {
        errors.push(
            Problem::error(
                "bad-name",
                format!("image name {name:?} (from directory {dir_name}) is not a valid repository name"),
            )
            .at(dir, None)
            .hint("rename the directory to NN-name with lower-case letters, digits, '-', '_' or '.'"),
        );
    }
    let dockerfile = dir.join("Dockerfile");
    let refs = match fs::read(&dockerfile) {
        Ok(bytes) => Some(dockerfile::scan(&String::from_utf8_lossy(&bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            errors.push(
                Problem::error(
                    "missing-dockerfile",
                    format!("context {dir_name} has no Dockerfile"),
                )
                .at(&dockerfile, None)
                .hint("add a Dockerfile, or move the directory out of contexts/"),
            );
            None
        }
        Err(e) => {
            errors.push(
                Problem::error("unreadable", format!("cannot read: {e}")).at(&dockerfile, None),
            );
            None
        }
    };
    let info = read_info(dir, dir_name, &mut warnings);
    let (info, format, info_file) = match info {
        Ok(x) => x,
        Err(mut p) => {
            errors.append(&mut p);
            return (name, Err(errors), warnings);
        }
    };
    match refs {
        Some(refs) if errors.is_empty() => {
            let ctx = Context {
                dir: dir.to_path_buf(),
                dir_name: dir_name.to_string(),
                name: name.clone(),
                order,
                version: info.version,
                platforms: info.platforms,
                info_format: format,
                info_file,
                dockerfile,
                refs,
            };
            (name, Ok(ctx), warnings)
        }
        _ => (name, Err(errors), warnings),
    }
}

type InfoResult = Result<(Info, InfoFormat, PathBuf), Vec<Problem>>;

fn read_info(dir: &Path, dir_name: &str, warnings: &mut Vec<Problem>) -> InfoResult {
    let edn_path = dir.join("info.edn");
    let version_path = dir.join("VERSION");
    if edn_path.exists() {
        if version_path.exists() {
            warnings.push(
                Problem::warning(
                    "both-info-files",
                    "both info.edn and VERSION exist; VERSION is ignored",
                )
                .at(&version_path, None)
                .hint("delete VERSION (and PLATFORMS_OVERRIDE): info.edn is the current layout"),
            );
        }
        let text = read_text(&edn_path)?;
        let info = info::parse_edn(&text, &edn_path)?;
        return Ok((info, InfoFormat::Edn, edn_path));
    }
    if version_path.exists() {
        let text = read_text(&version_path)?;
        let override_path = dir.join("PLATFORMS_OVERRIDE");
        let platforms = if override_path.exists() {
            Some(read_text(&override_path)?)
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

fn read_text(path: &Path) -> Result<String, Vec<Problem>> {
    let bytes = fs::read(path).map_err(|e| {
        vec![Problem::error("unreadable", format!("cannot read: {e}")).at(path, None)]
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
