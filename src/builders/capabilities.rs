//! What each builder can build, known before building: Dockerfile features (heredocs) that older
//! builders lack would otherwise fail a run midway (`Unknown instruction: "ECHO"`, after its
//! parents were built). `check --builder` and the building commands ask [`problems`] first.
//!
//! Each engine's rule is its [`Features`](super::engines::Features) in the registry (versions where
//! the feature arrived):
//! - buildah parses heredocs from 1.35 on, podman from 5.0 on (earlier versions, 1.33 included, read
//!   the heredoc body as instructions); both ignore `# syntax=`.
//! - docker's BuildKit has heredocs in the dockerfile frontend 1.4+, built into docker 23.0+. Older
//!   daemons (20.10) get it only by pulling the frontend named in a `# syntax=` line, which needs
//!   the daemon to reach that image's registry.
use std::path::Path;

use crate::diagnostics::Problem;
use crate::project::dockerfile::Features;
use crate::project::Project;

use super::engines::Heredocs;
use super::{Backend, BuilderKind};

/// First `docker/dockerfile` frontend with heredocs outside the labs channel.
const FRONTEND_HEREDOCS: (u64, u64) = (1, 4);

/// Who can build heredocs, for hints.
const ALTERNATIVES: &str = "buildah 1.35+ / podman 5.0+ / docker 23.0+";
/// Every way out of a builder without heredocs.
const WAYS_OUT: &str = "build with a docker daemon 23.0+ (its BuildKit parses heredocs; \
                        --builder docker), with buildah 1.35+ / podman 5.0+ (--builder), or \
                        rewrite the heredocs as plain RUN lines (or COPY files of the context)";

/// The problems of building a Dockerfile with `features` with the builder `kind` at `version`
/// (as the builder reports it, e.g. `1.28.2`, `20.10.24+dfsg1`). An unknown version is trusted.
pub fn problems(
    kind: BuilderKind,
    version: &str,
    dockerfile: &Path,
    features: &Features,
) -> Vec<Problem> {
    let Some(&line) = features.heredoc_lines.first() else {
        return Vec::new();
    };
    let Some(v) = major_minor(version) else {
        return Vec::new();
    };
    let at = |p: Problem| p.at(dockerfile, Some(line));
    let marker = heredoc_marker(dockerfile, line);
    let too_old = |name: &str, first: (u64, u64)| {
        at(Problem::error(
            "builder-lacks-heredocs",
            format!(
                "this Dockerfile uses heredocs (`{marker}`), which {name} {version} cannot build \
                 (they need {name} {}.{}+)",
                first.0, first.1
            ),
        ))
        .hint(format!("upgrade {name}, or {WAYS_OUT}"))
    };
    let Some(engine) = kind.engine() else {
        return Vec::new();
    };
    match engine.features.heredocs {
        Heredocs::Since(major, minor) if v < (major, minor) => {
            vec![too_old(engine.name, (major, minor))]
        }
        Heredocs::FrontendSince(major, minor) if v < (major, minor) => {
            docker_frontend(version, features, &marker)
                .into_iter()
                .map(at)
                .collect()
        }
        _ => Vec::new(),
    }
}

/// docker before 23.0 (an engine with [`Heredocs::FrontendSince`]): heredocs only through a `# syntax=` frontend that has them, pulled at build
/// time.
fn docker_frontend(version: &str, features: &Features, marker: &str) -> Option<Problem> {
    let Some(syntax) = &features.syntax else {
        return Some(
            Problem::error(
                "builder-lacks-heredocs",
                format!(
                    "this Dockerfile uses heredocs (`{marker}`), which the dockerfile frontend \
                     built into docker {version} cannot build"
                ),
            )
            .hint(format!(
                "add `# syntax=docker/dockerfile:1.4` as the first line (docker then pulls that \
                 frontend: the daemon must reach Docker Hub), or {WAYS_OUT}"
            )),
        );
    };
    match frontend_has_heredocs(&syntax.image) {
        Some(false) => Some(
            Problem::error(
                "builder-lacks-heredocs",
                format!(
                    "this Dockerfile uses heredocs (`{marker}`), which its frontend {} (line {}) \
                     cannot build",
                    crate::diagnostics::quote(&syntax.image),
                    syntax.line
                ),
            )
            .hint(format!(
                "use `# syntax=docker/dockerfile:1.4` or later, or build with {ALTERNATIVES}"
            )),
        ),
        // A frontend with heredocs, or one cip does not know: it works if docker can pull it.
        _ => Some(
            Problem::warning(
                "frontend-pull",
                format!(
                    "docker {version} builds the heredocs of this Dockerfile only with the frontend \
                     of its `# syntax={}` line, which it pulls before building",
                    syntax.image
                ),
            )
            .hint(format!(
                "the daemon must reach that image's registry; offline, build with {ALTERNATIVES}"
            )),
        ),
    }
}

/// Whether a `# syntax=` frontend parses heredocs: Some for `docker/dockerfile` tags cip knows
/// (`1`, `1.4`, `1.4.1`, `1.3-labs`, `labs`, `latest`...), None for other images.
fn frontend_has_heredocs(image: &str) -> Option<bool> {
    let image = image.split('@').next().unwrap_or(image);
    let (repo, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
    let repo = repo.trim_start_matches("docker.io/");
    if repo != "docker/dockerfile" && repo != "docker/dockerfile-upstream" {
        return None;
    }
    let (number, labs) = match tag.strip_suffix("labs") {
        Some(rest) => (rest.trim_end_matches('-'), true),
        None => (tag, false),
    };
    if number.is_empty() || number == "latest" || number == "master" {
        return Some(true);
    }
    let mut parts = number.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten();
    Some(match minor {
        None => major >= 1,
        Some(minor) => (major, minor) >= FRONTEND_HEREDOCS || (labs && (major, minor) >= (1, 3)),
    })
}

/// The heredoc opener as line `line` of `dockerfile` has it (`<<EOF`, `<<-EOT`, `<<"EOF"`), for
/// messages that quote the file; `<<EOF` if the line cannot be read.
fn heredoc_marker(dockerfile: &Path, line: usize) -> String {
    let text = std::fs::metadata(dockerfile)
        .ok()
        .filter(|m| m.is_file() && m.len() <= crate::project::files::DOCKERFILE_LIMIT)
        .and_then(|_| std::fs::read_to_string(dockerfile).ok());
    let found = text.as_deref().and_then(|t| {
        let l = t.lines().nth(line.checked_sub(1)?)?;
        let at = l.find("<<")?;
        let word = l[at..].split_whitespace().next()?;
        Some(word.chars().take(40).collect::<String>())
    });
    found.unwrap_or_else(|| "<<EOF".to_string())
}

/// `1.28.2` -> (1, 28); `20.10.24+dfsg1` -> (20, 10); `5.0` -> (5, 0).
fn major_minor(version: &str) -> Option<(u64, u64)> {
    let mut parts = version
        .trim()
        .trim_start_matches('v')
        .split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

/// The problems of building the contexts `ctxs` (indexes into `project.contexts`) with `builder`.
pub fn problems_for(
    project: &Project,
    ctxs: impl IntoIterator<Item = usize>,
    builder: &dyn Backend,
) -> Vec<Problem> {
    ctxs.into_iter()
        .filter_map(|i| project.contexts.get(i))
        .flat_map(|c| {
            problems(
                builder.kind(),
                builder.version(),
                &c.dockerfile,
                &c.refs.features,
            )
        })
        .collect()
}

/// What building `ctxs` with `builder` shows before any build (its problems, one for all the
/// heredocs it cannot build, last), and the error that stops the run when one is an error.
pub fn judge_build(
    project: &Project,
    ctxs: impl IntoIterator<Item = usize>,
    builder: &dyn Backend,
) -> (Vec<Problem>, Option<String>) {
    let problems = problems_for(project, ctxs, builder);
    let (heredocs, others): (Vec<&Problem>, Vec<&Problem>) = problems
        .iter()
        .partition(|p| p.is_error() && p.code == "builder-lacks-heredocs");
    let mut shown: Vec<Problem> = others.into_iter().cloned().collect();
    shown.extend(heredoc_summary(&heredocs, builder));
    let errors = problems.iter().filter(|p| p.is_error()).count();
    let refusal = (errors > 0).then(|| {
        format!(
            "{errors} context(s) use Dockerfile features that {} cannot build (see above); \
             nothing was built",
            builder.describe()
        )
    });
    (shown, refusal)
}

/// Before any build starts: shows the problems of building `ctxs` with `builder`, and refuses to
/// go on if one is an error.
pub fn refuse_unsupported(
    project: &Project,
    ctxs: impl IntoIterator<Item = usize>,
    builder: &dyn Backend,
    events: &crate::events::Events,
) -> anyhow::Result<()> {
    let (shown, refusal) = judge_build(project, ctxs, builder);
    for p in &shown {
        let severity = match p.is_error() {
            true => crate::events::Severity::Error,
            false => crate::events::Severity::Warning,
        };
        events.report(crate::events::Event::Problem {
            severity,
            text: &p.to_string(),
        });
    }
    match refusal {
        Some(refusal) => anyhow::bail!("{refusal}"),
        None => Ok(()),
    }
}

/// One problem for every Dockerfile whose heredocs `builder` cannot build: the files, with what
/// each has, then every way out, once.
fn heredoc_summary(heredocs: &[&Problem], builder: &dyn Backend) -> Option<Problem> {
    let first = heredocs.first()?;
    let files: Vec<String> = heredocs
        .iter()
        .map(|p| {
            let file = p
                .file
                .as_deref()
                .map_or_else(String::new, |f| f.display().to_string());
            let line = p.line.unwrap_or(1);
            let marker = p
                .file
                .as_deref()
                .map_or_else(|| "<<EOF".to_string(), |f| heredoc_marker(f, line));
            format!("\n  {file}:{line}: `{marker}`")
        })
        .collect();
    let kind = builder.kind();
    let engine = format!("{} {}", kind.name(), builder.version());
    let through_frontend = kind
        .engine()
        .is_some_and(|e| matches!(e.features.heredocs, Heredocs::FrontendSince(..)));
    let hint = match through_frontend {
        true => first.hint.clone().unwrap_or_else(|| WAYS_OUT.to_string()),
        false => format!("upgrade {engine}, or {WAYS_OUT}"),
    };
    Some(
        Problem::error(
            "builder-lacks-heredocs",
            format!(
                "{} use heredocs, which {engine} cannot build:{}",
                crate::output::count(heredocs.len(), "Dockerfile"),
                files.concat()
            ),
        )
        .hint(hint),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::dockerfile::SyntaxDirective;

    fn features(heredoc: bool, syntax: Option<&str>) -> Features {
        Features {
            heredoc_lines: if heredoc { vec![4, 9] } else { Vec::new() },
            syntax: syntax.map(|s| SyntaxDirective {
                image: s.into(),
                line: 1,
            }),
        }
    }

    /// (severity, code) of the problems, and the whole text of the first.
    fn judge(kind: BuilderKind, version: &str, f: &Features) -> (Vec<String>, String) {
        let ps = problems(kind, version, Path::new("contexts/01-x/Dockerfile"), f);
        let codes = ps
            .iter()
            .map(|p| format!("{:?} {}", p.severity, p.code))
            .collect();
        (codes, ps.first().map(|p| p.to_string()).unwrap_or_default())
    }

    #[test]
    fn version_rules() {
        let [buildah, podman, docker] =
            ["buildah", "podman", "docker"].map(|n| BuilderKind::engine_named(n).unwrap());
        let err = "Error builder-lacks-heredocs";
        let warn = "Warning frontend-pull";
        let heredoc = features(true, None);
        let heredoc_14 = features(true, Some("docker/dockerfile:1.4.1"));
        let heredoc_13 = features(true, Some("docker/dockerfile:1.3"));
        let heredoc_labs = features(true, Some("docker/dockerfile:1.3-labs"));
        let heredoc_custom = features(true, Some("example.com/frontend:7"));
        let plain = features(false, Some("docker/dockerfile:1.4.1"));
        let table: &[(BuilderKind, &str, &Features, &[&str])] = &[
            (buildah, "1.28.2", &heredoc, &[err]),
            (buildah, "1.33.7", &heredoc, &[err]),
            // buildah ignores `# syntax=`.
            (buildah, "1.28.2", &heredoc_14, &[err]),
            (buildah, "1.35.0", &heredoc, &[]),
            (buildah, "1.40", &heredoc, &[]),
            (buildah, "1.28.2", &plain, &[]),
            (podman, "4.3.1", &heredoc, &[err]),
            (podman, "4.9.9", &heredoc_14, &[err]),
            (podman, "5.0.0", &heredoc, &[]),
            (docker, "20.10.24+dfsg1", &heredoc, &[err]),
            (docker, "20.10.24+dfsg1", &heredoc_13, &[err]),
            (docker, "20.10.24+dfsg1", &heredoc_14, &[warn]),
            (docker, "20.10.24+dfsg1", &heredoc_labs, &[warn]),
            (docker, "20.10.24+dfsg1", &heredoc_custom, &[warn]),
            (docker, "20.10.24", &plain, &[]),
            (docker, "23.0.0", &heredoc, &[]),
            (docker, "28.2.2", &heredoc, &[]),
            // A version cip cannot read is trusted.
            (buildah, "unknown", &heredoc, &[]),
        ];
        for (kind, version, f, want) in table {
            let (got, text) = judge(*kind, version, f);
            assert_eq!(got, *want, "{kind:?} {version} {f:?}: {text}");
        }
    }

    #[test]
    fn messages_name_the_line_the_version_and_who_can_build_it() {
        let (_, text) = judge(
            BuilderKind::engine_named("buildah").unwrap(),
            "1.28.2",
            &features(true, None),
        );
        assert!(text.contains("contexts/01-x/Dockerfile:4:"), "{text}");
        assert!(text.contains("buildah 1.28.2"), "{text}");
        assert!(text.contains("buildah 1.35+ / podman 5.0+"), "{text}");
        let (_, text) = judge(
            BuilderKind::engine_named("docker").unwrap(),
            "20.10.24",
            &features(true, None),
        );
        assert!(text.contains("# syntax=docker/dockerfile:1.4"), "{text}");
    }

    #[test]
    fn messages_quote_the_heredoc_as_the_file_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Dockerfile");
        std::fs::write(&path, "FROM scratch\nRUN <<-EOT\n\techo x\n\tEOT\n").unwrap();
        let f = Features {
            heredoc_lines: vec![2],
            syntax: None,
        };
        for (kind, version) in [
            (BuilderKind::engine_named("buildah").unwrap(), "1.28.2"),
            (BuilderKind::engine_named("docker").unwrap(), "20.10.24"),
        ] {
            let p = &problems(kind, version, &path, &f)[0];
            assert!(p.message.contains("(`<<-EOT`)"), "{p}");
            let hint = p.hint.as_deref().unwrap();
            for way in [
                "docker daemon 23.0+",
                "buildah 1.35+ / podman 5.0+",
                "rewrite the heredocs",
            ] {
                assert!(hint.contains(way), "{hint}");
            }
        }
        assert_eq!(heredoc_marker(&dir.path().join("absent"), 2), "<<EOF");
    }

    #[test]
    fn frontends() {
        let table = [
            ("docker/dockerfile:1", Some(true)),
            ("docker/dockerfile:1.4", Some(true)),
            ("docker/dockerfile:1.4.1", Some(true)),
            ("docker.io/docker/dockerfile:1.7", Some(true)),
            ("docker/dockerfile:1.3", Some(false)),
            ("docker/dockerfile:1.2.1", Some(false)),
            ("docker/dockerfile:1.3-labs", Some(true)),
            ("docker/dockerfile:1.2-labs", Some(false)),
            ("docker/dockerfile:labs", Some(true)),
            ("docker/dockerfile", Some(true)),
            ("docker/dockerfile:1@sha256:ab", Some(true)),
            ("docker/dockerfile:0.5", Some(false)),
            ("example.com/frontend:1", None),
        ];
        for (image, want) in table {
            assert_eq!(frontend_has_heredocs(image), want, "{image}");
        }
    }

    #[test]
    fn versions() {
        assert_eq!(major_minor("1.28.2"), Some((1, 28)));
        assert_eq!(major_minor("20.10.24+dfsg1"), Some((20, 10)));
        assert_eq!(major_minor("v5"), Some((5, 0)));
        assert_eq!(major_minor("5.0-rc1"), Some((5, 0)));
        assert_eq!(major_minor("x"), None);
    }
}
