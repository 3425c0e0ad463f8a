//! `cip ci matrix`: the platforms a CI fan-out must start a runner for (those with something to
//! build against the registry, and not staged already from the current contexts), each with its
//! runner label from cip.toml's `[ci.runners]`, in the form a pipeline consumes: GitHub Actions
//! step outputs, a GitLab dotenv report, a GitLab child pipeline, or JSON. No platform means the
//! registry holds everything: the pipeline starts no runner.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

use crate::plan::ImagePlan;
use crate::platform::Platform;

/// One runner of the fan-out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub platform: Platform,
    /// `linux-arm64`: the platform's staging namespace and a name for artifacts and job names.
    pub slug: String,
    /// The runner label from cip.toml; null when none is configured (the pipeline's default).
    pub runner: Option<String>,
    /// The images this platform builds.
    pub images: Vec<String>,
}

/// The platforms the plan builds, in order, each with its runner and images.
pub fn entries(plans: &[ImagePlan], runners: &BTreeMap<Platform, String>) -> Vec<Entry> {
    let mut by_platform: BTreeMap<Platform, Vec<String>> = BTreeMap::new();
    for image in plans {
        for p in image.to_build() {
            by_platform.entry(p).or_default().push(image.name.clone());
        }
    }
    by_platform
        .into_iter()
        .map(|(platform, images)| Entry {
            slug: platform.to_string().replace('/', "-"),
            runner: runners.get(&platform).cloned(),
            platform,
            images,
        })
        .collect()
}

/// Keeps, of `entries`, the platforms whose stage job would build something, each with the
/// images it would build (`stage_images`: what a `publish --stage` run of that platform plans;
/// images staged from the current contexts are built already). A re-run after a failed platform
/// thus starts only that platform.
pub fn unstaged(
    entries: Vec<Entry>,
    mut stage_images: impl FnMut(&Platform) -> anyhow::Result<Vec<String>>,
) -> anyhow::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for mut e in entries {
        let images = stage_images(&e.platform)?;
        if !images.is_empty() {
            e.images = images;
            out.push(e);
        }
    }
    Ok(out)
}

/// `{"any": bool, "include": [...]}`: the document of `--format json`, and GitHub's matrix.
pub fn to_json(entries: &[Entry]) -> serde_json::Value {
    json!({"any": !entries.is_empty(), "include": entries})
}

/// Lines for `$GITHUB_OUTPUT`: `matrix=` (for `strategy.matrix: ${{ fromJSON(...) }}`, entries
/// `platform`, `slug`, `runner`) and `any=true|false` (an empty matrix is an error in GitHub
/// Actions, so the fan-out job is skipped on `any == 'false'`).
pub fn github(entries: &[Entry]) -> String {
    let include: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| json!({"platform": e.platform, "slug": e.slug, "runner": e.runner}))
        .collect();
    format!(
        "matrix={}\nany={}\n",
        json!({ "include": include }),
        !entries.is_empty()
    )
}

/// A GitLab dotenv report: `CIP_PLATFORMS` (comma-separated, empty for none), `CIP_ANY`, and
/// `CIP_RUNNER_<SLUG>` per platform with a runner label.
pub fn gitlab(entries: &[Entry]) -> String {
    let platforms: Vec<String> = entries.iter().map(|e| e.platform.to_string()).collect();
    let mut out = format!(
        "CIP_PLATFORMS={}\nCIP_ANY={}\n",
        platforms.join(","),
        !entries.is_empty()
    );
    for e in entries {
        if let Some(r) = &e.runner {
            let var = e.slug.to_uppercase().replace(['-', '.'], "_");
            out.push_str(&format!("CIP_RUNNER_{var}={r}\n"));
        }
    }
    out
}

/// The hidden jobs the generated child pipeline's jobs extend (`--job-template`), checked.
#[derive(Debug, Clone)]
pub struct JobTemplate {
    pub path: PathBuf,
    text: String,
}

/// The hidden job a stage job extends, and the merge job's.
pub const STAGE_JOB: &str = ".cip-stage";
pub const MERGE_JOB: &str = ".cip-merge";

impl JobTemplate {
    /// Reads `path`: its top-level keys must all be hidden jobs (`.name:`), so copying it into the
    /// child pipeline starts no job of its own, and `.cip-stage` and `.cip-merge` must be there.
    pub fn read(path: &Path) -> anyhow::Result<JobTemplate> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the job template {}: {e}", path.display()))?;
        JobTemplate::parse(path, text)
    }

    pub fn parse(path: &Path, text: String) -> anyhow::Result<JobTemplate> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let top = !line.starts_with([' ', '\t', '#', '-']) && !line.trim().is_empty();
            if !top {
                continue;
            }
            let key = line
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"');
            if !key.starts_with('.') {
                anyhow::bail!(
                    "{}:{}: `{key}` is not a hidden job: the job template may only define hidden \
                     jobs (names starting with `.`, like `{STAGE_JOB}:` and `{MERGE_JOB}:`), since it \
                     is copied into every child pipeline cip writes",
                    path.display(),
                    n + 1
                );
            }
            keys.push(key.to_string());
        }
        for wanted in [STAGE_JOB, MERGE_JOB] {
            if !keys.iter().any(|k| k == wanted) {
                anyhow::bail!(
                    "{}: no `{wanted}:` job: the child pipeline's jobs extend `{STAGE_JOB}` (one per \
                     platform, with PLATFORM and SLUG set) and `{MERGE_JOB}`",
                    path.display()
                );
            }
        }
        Ok(JobTemplate {
            path: path.to_path_buf(),
            text,
        })
    }
}

/// A YAML scalar: JSON's double-quoted strings are YAML's.
fn quoted(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The name of a platform's stage job in the child pipeline.
pub fn stage_job_name(e: &Entry) -> String {
    format!("stage {}", e.platform)
}

/// A GitLab child pipeline: the template's hidden jobs, then one stage job per platform (with
/// `PLATFORM`, `SLUG` and the runner label as its tag) and the merge job after them. Nothing to
/// build: a single job that says so (GitLab refuses a child pipeline without jobs).
pub fn gitlab_pipeline(entries: &[Entry], template: &JobTemplate) -> String {
    if entries.is_empty() {
        return concat!(
            "stages: [merge]\n\n",
            "\"nothing to build\":\n  stage: merge\n  script:\n",
            // Quoted: a plain scalar with `: ` in it would be read as a mapping.
            "    - \"echo 'nothing to build: the registry holds every platform of every image'\"\n",
        )
        .to_string();
    }
    let mut out = format!(
        "# Written by `cip ci matrix --format gitlab-pipeline`; the hidden jobs are {}'s.\n",
        template.path.display()
    );
    out.push_str("stages: [stage, merge]\n\n");
    out.push_str(template.text.trim_end());
    out.push_str("\n\n");
    for e in entries {
        out.push_str(&format!(
            "{}:\n  extends: {STAGE_JOB}\n  stage: stage\n  variables:\n    PLATFORM: {}\n    SLUG: {}\n",
            quoted(&stage_job_name(e)),
            quoted(&e.platform.to_string()),
            quoted(&e.slug)
        ));
        if let Some(r) = &e.runner {
            out.push_str(&format!("  tags: [{}]\n", quoted(r)));
        }
        out.push('\n');
    }
    let needs: Vec<String> = entries.iter().map(|e| quoted(&stage_job_name(e))).collect();
    out.push_str(&format!(
        "merge:\n  extends: {MERGE_JOB}\n  stage: merge\n  needs: [{}]\n",
        needs.join(", ")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(p: &str, runner: Option<&str>) -> Entry {
        Entry {
            platform: p.parse().unwrap(),
            slug: p.replace('/', "-"),
            runner: runner.map(str::to_string),
            images: vec!["app".into()],
        }
    }

    #[test]
    fn formats() {
        let e = [
            entry("linux/amd64", None),
            entry("linux/arm/v7", Some("pi")),
        ];
        assert_eq!(
            github(&e),
            "matrix={\"include\":[{\"platform\":\"linux/amd64\",\"runner\":null,\"slug\":\"linux-amd64\"},\
             {\"platform\":\"linux/arm/v7\",\"runner\":\"pi\",\"slug\":\"linux-arm-v7\"}]}\nany=true\n"
        );
        assert_eq!(
            gitlab(&e),
            "CIP_PLATFORMS=linux/amd64,linux/arm/v7\nCIP_ANY=true\nCIP_RUNNER_LINUX_ARM_V7=pi\n"
        );
        assert_eq!(github(&[]), "matrix={\"include\":[]}\nany=false\n");
        assert_eq!(gitlab(&[]), "CIP_PLATFORMS=\nCIP_ANY=false\n");
    }

    #[test]
    fn json_names_a_missing_runner_null_as_github_does() {
        let doc = to_json(&[entry("linux/amd64", None)]);
        assert!(doc["include"][0]["runner"].is_null());
        assert!(doc["include"][0]
            .as_object()
            .unwrap()
            .contains_key("runner"));
    }

    #[test]
    fn unstaged_keeps_platforms_whose_stage_job_builds_something() {
        let e = vec![entry("linux/amd64", None), entry("linux/arm64", None)];
        let left = unstaged(e, |p| {
            Ok(if p.to_string() == "linux/arm64" {
                vec!["lib".to_string()]
            } else {
                vec![]
            })
        })
        .unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].platform.to_string(), "linux/arm64");
        assert_eq!(left[0].images, ["lib"]);
    }

    fn template() -> JobTemplate {
        JobTemplate::parse(
            Path::new("jobs.yml"),
            "# hidden jobs\n.cip-stage:\n  script:\n    - cip publish --stage\n\".cip-merge\":\n  script: [cip publish --merge]\n".into(),
        )
        .unwrap()
    }

    #[test]
    fn gitlab_pipeline_has_a_job_per_platform_and_the_merge_after_them() {
        let e = [
            entry("linux/amd64", None),
            entry("linux/arm64", Some("arm")),
        ];
        let yaml = gitlab_pipeline(&e, &template());
        assert!(yaml.contains("stages: [stage, merge]\n"), "{yaml}");
        assert!(
            yaml.contains(".cip-stage:\n  script:\n    - cip publish --stage\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains(
                "\"stage linux/arm64\":\n  extends: .cip-stage\n  stage: stage\n  variables:\n    \
             PLATFORM: \"linux/arm64\"\n    SLUG: \"linux-arm64\"\n  tags: [\"arm\"]\n"
            ),
            "{yaml}"
        );
        assert!(!yaml.contains("\"stage linux/amd64\":\n  extends: .cip-stage\n  stage: stage\n  variables:\n    PLATFORM: \"linux/amd64\"\n    SLUG: \"linux-amd64\"\n  tags"), "{yaml}");
        assert!(yaml.ends_with(
            "merge:\n  extends: .cip-merge\n  stage: merge\n  needs: [\"stage linux/amd64\", \"stage linux/arm64\"]\n"
        ), "{yaml}");
        // Nothing to build: one job, no stage job, no template.
        let none = gitlab_pipeline(&[], &template());
        assert!(!none.contains("cip-stage"), "{none}");
        // The script line is quoted: plain, its `: ` would make it a mapping.
        assert!(
            none.ends_with(
                "\"nothing to build\":\n  stage: merge\n  script:\n    - \"echo 'nothing to \
                 build: the registry holds every platform of every image'\"\n"
            ),
            "{none}"
        );
    }

    #[test]
    fn a_job_template_defines_hidden_jobs_only() {
        let err = JobTemplate::parse(
            Path::new("t.yml"),
            ".cip-stage:\n  script: [a]\n.cip-merge:\n  script: [b]\nbuild:\n  script: [c]\n"
                .into(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("t.yml:5: `build` is not a hidden job"),
            "{err}"
        );
        let err = JobTemplate::parse(Path::new("t.yml"), ".cip-stage:\n  script: [a]\n".into())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("t.yml: no `.cip-merge:` job"), "{err}");
    }
}
