//! `cip ci matrix`: the platforms a CI fan-out must start a runner for (those with something to
//! build against the registry), each with its runner label from cip.toml's `[ci.runners]`, in the
//! form a pipeline consumes: GitHub Actions step outputs, a GitLab dotenv report, or JSON. No
//! platform means the registry holds everything: the pipeline starts no runner.
use std::collections::BTreeMap;

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
    /// The runner label from cip.toml; absent when none is configured (the pipeline's default).
    #[serde(skip_serializing_if = "Option::is_none")]
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
}
