//! What happened to each image and each step of a run: typed, named once. The names are those
//! of docs/json.md (the summary's RESULT column, `--json`'s `result`/`code` and `outcome`,
//! `--metadata-file`'s `result`).
use std::fmt;
use std::time::Duration;

use crate::plan::steps::StepId;
use crate::platform::Platform;

/// What happened to one step: its task's outcome in the scheduler.
pub use crate::schedule::Outcome as StepOutcome;

/// What happened to one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do: every platform it needs is published (or in the store).
    UpToDate,
    Built,
    /// A step failed (or another run overwrote its version tag meanwhile).
    Failed,
    /// Its builds succeeded, but pushing one of them failed (the registry's fault).
    PushFailed,
    /// Not built because a step it waits for failed.
    SkippedParentFailed,
    /// Not built, or stopped, because the run stopped (a first failure, a signal).
    Cancelled,
}

impl Outcome {
    /// The name table: as the summary and `--json`'s `result` say it, as scripts read it
    /// (`code`), and as the result line counts it.
    const fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Outcome::UpToDate => ("up to date", "up_to_date", "up to date"),
            Outcome::Built => ("built", "built", "built"),
            Outcome::Failed => ("failed", "failed", "failed"),
            Outcome::PushFailed => ("push failed", "push_failed", "push failed"),
            Outcome::SkippedParentFailed => (
                "skipped: a parent failed",
                "skipped_parent_failed",
                "skipped",
            ),
            Outcome::Cancelled => ("cancelled", "cancelled", "cancelled"),
        }
    }

    /// `built`, `push failed`, `skipped: a parent failed`...: the summary's and `result`'s.
    pub const fn name(self) -> &'static str {
        self.names().0
    }

    /// The machine-friendly form: `up_to_date`, `built`, `failed`, `push_failed`,
    /// `skipped_parent_failed`, `cancelled`.
    pub const fn code(self) -> &'static str {
        self.names().1
    }

    /// How the result line of `--progress quiet` counts it (`2 built, 1 skipped`).
    pub const fn counted_as(self) -> &'static str {
        self.names().2
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name of a step's outcome in `--json`: `succeeded`, `failed`, `skipped`, `cancelled`.
pub fn step_outcome_name(o: &StepOutcome) -> &'static str {
    match o {
        StepOutcome::Succeeded => "succeeded",
        StepOutcome::Failed(_) => "failed",
        StepOutcome::Skipped { .. } => "skipped",
        StepOutcome::Cancelled => "cancelled",
    }
}

/// What happened to one image.
#[derive(Debug, Clone)]
pub struct ImageResult {
    pub name: String,
    pub version: String,
    pub built: Vec<Platform>,
    pub kept: Vec<Platform>,
    /// Platforms whose published entry this run replaced (a forced rebuild).
    pub replaced: Vec<Platform>,
    /// The steps of this image that failed: the platform built (None for the index) and its log.
    pub failed_steps: Vec<(Option<Platform>, Option<std::path::PathBuf>)>,
    pub result: Outcome,
    pub error: Option<String>,
    pub duration: Duration,
    /// Where it is: `REGISTRY/name` (a repository, or the local store's name).
    pub repository: String,
    /// The digest of its index (registry), or its image id (local store); None if it has none.
    pub digest: Option<String>,
    /// The manifest digest (image id in a store) of each platform.
    pub platform_digests: Vec<(Platform, String)>,
    /// The tags this run wrote, or the version tag of an image it left as it was.
    pub tags: Vec<String>,
    /// The node that built each platform built, for a run on a farm (empty on the local builder).
    pub built_on: Vec<(Platform, String)>,
}

/// What happened to one step, in the order the steps finished.
#[derive(Debug, Clone)]
pub struct StepRecord {
    pub id: StepId,
    pub outcome: StepOutcome,
    /// When it started and finished, from the start of the run (None if it never ran).
    pub ran: Option<(Duration, Duration)>,
    /// The node a build step ran on (the plan's, or the one it was retried on).
    pub node: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Outcome; 6] = [
        Outcome::UpToDate,
        Outcome::Built,
        Outcome::Failed,
        Outcome::PushFailed,
        Outcome::SkippedParentFailed,
        Outcome::Cancelled,
    ];

    /// The names docs/json.md documents, one per outcome: what `result`, `code` and the result
    /// line print.
    #[test]
    fn each_outcome_has_the_names_docs_json_md_gives_it() {
        let names: Vec<(String, &str, &str)> = ALL
            .iter()
            .map(|o| (o.to_string(), o.code(), o.counted_as()))
            .collect();
        let want = [
            ("up to date", "up_to_date", "up to date"),
            ("built", "built", "built"),
            ("failed", "failed", "failed"),
            ("push failed", "push_failed", "push failed"),
            (
                "skipped: a parent failed",
                "skipped_parent_failed",
                "skipped",
            ),
            ("cancelled", "cancelled", "cancelled"),
        ];
        let found: Vec<(&str, &str, &str)> =
            names.iter().map(|(n, c, w)| (n.as_str(), *c, *w)).collect();
        assert_eq!(found, want);
        let docs = include_str!("../../docs/json.md");
        for o in ALL {
            assert!(docs.contains(&format!("`{}`", o.name())), "{o}");
            assert!(docs.contains(&format!("`{}`", o.code())), "{o}");
        }
    }
}
