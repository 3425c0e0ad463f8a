//! What a mirroring command did, image by image: the table a person reads, and the JSON document a
//! script reads (`--json`, docs/json.md). Both come from the same [`Record`]s.
use std::time::Duration;

use serde_json::{json, Value};

use crate::platform::Platform;
use crate::registry::copy::CopyStats;

/// How one image's copy or pull ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Copied to the target registry (some blobs may have been there or mounted).
    Copied,
    /// The target had the version already, by the same digest (tags were checked and fixed).
    UpToDate,
    /// Pulled into the builder's store and tagged latest.
    Pulled,
    /// The source registry does not have this version.
    MissingOnSource,
    Failed,
    /// Not finished: SIGINT or SIGTERM stopped the run first.
    Cancelled,
}

impl Outcome {
    /// The machine-readable code of the JSON document.
    pub fn code(self) -> &'static str {
        match self {
            Outcome::Copied => "copied",
            Outcome::UpToDate => "up_to_date",
            Outcome::Pulled => "pulled",
            Outcome::MissingOnSource => "missing_on_source",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// One image's result.
#[derive(Debug, Clone)]
pub struct Record {
    pub name: String,
    pub version: String,
    pub outcome: Outcome,
    /// The digest of the version's index or manifest on the source (known unless it is missing or
    /// the run failed before reading it).
    pub digest: Option<String>,
    /// The platforms copied (all of the source's), or the one pulled.
    pub platforms: Vec<Platform>,
    /// What moved, for copies that were made or found done.
    pub stats: Option<CopyStats>,
    /// The reference tagged latest in the builder's store (pulls).
    pub tagged: Option<String>,
    pub duration: Duration,
    pub error: Option<String>,
}

impl Record {
    /// A record of `name:version` with nothing known yet but how it ended.
    pub fn new(name: &str, version: &str, outcome: Outcome, duration: Duration) -> Record {
        Record {
            name: name.to_string(),
            version: version.to_string(),
            outcome,
            digest: None,
            platforms: Vec::new(),
            stats: None,
            tagged: None,
            duration,
            error: None,
        }
    }

    /// The RESULT cell of the table; `source` names the source registry.
    fn text(&self, source: &str) -> String {
        match self.outcome {
            Outcome::UpToDate => "already there".to_string(),
            Outcome::MissingOnSource => format!("missing on {source}"),
            Outcome::Copied => match &self.stats {
                Some(s) => format!(
                    "copied: {} blob(s), {}; {} skipped, {} mounted",
                    s.blobs_copied,
                    mib(s.bytes_copied),
                    s.blobs_skipped,
                    s.blobs_mounted
                ),
                None => "copied".to_string(),
            },
            Outcome::Pulled => match &self.tagged {
                Some(t) => format!("pulled, tagged {t}"),
                None => "pulled".to_string(),
            },
            Outcome::Failed => format!("FAILED: {}", self.error.as_deref().unwrap_or("")),
            Outcome::Cancelled => "cancelled".to_string(),
        }
    }

    fn to_json(&self) -> Value {
        let stat = |f: fn(&CopyStats) -> u64| self.stats.as_ref().map(f);
        json!({
            "name": self.name,
            "version": self.version,
            "result": self.outcome.code(),
            "digest": self.digest,
            "platforms": self.platforms,
            "blobs_copied": stat(|s| s.blobs_copied as u64),
            "bytes_copied": stat(|s| s.bytes_copied),
            "blobs_mounted": stat(|s| s.blobs_mounted as u64),
            "blobs_skipped": stat(|s| s.blobs_skipped as u64),
            "manifests_copied": stat(|s| s.manifests as u64),
            "tagged": self.tagged,
            "duration_ms": millis(self.duration),
            "error": self.error,
        })
    }
}

/// A whole run of one mirroring command.
pub struct Report<'a> {
    /// The subcommand, e.g. `upload-all-to-local-registry`.
    pub command: &'a str,
    /// The source registry (`HOST[:PORT][/PATH]`).
    pub source: &'a str,
    /// The target: a registry, or the builder whose store received the pulls.
    pub target: String,
    /// In the order of the project's contexts.
    pub records: Vec<Record>,
    pub duration: Duration,
}

impl Report<'_> {
    pub fn count(&self, outcome: Outcome) -> usize {
        self.records.iter().filter(|r| r.outcome == outcome).count()
    }

    /// IMAGE, VERSION, RESULT: one row per image.
    pub fn table(&self) -> String {
        let mut rows = vec![["IMAGE".to_string(), "VERSION".into(), "RESULT".into()]];
        for r in &self.records {
            rows.push([r.name.clone(), r.version.clone(), r.text(self.source)]);
        }
        crate::output::table(&rows)
    }

    /// The `--json` document; `exit_code` is the command's.
    pub fn to_json(&self, exit_code: i32) -> Value {
        let summary: serde_json::Map<String, Value> = [
            Outcome::Copied,
            Outcome::UpToDate,
            Outcome::Pulled,
            Outcome::MissingOnSource,
            Outcome::Failed,
            Outcome::Cancelled,
        ]
        .into_iter()
        .map(|o| (o.code().to_string(), json!(self.count(o))))
        .collect();
        json!({
            "schema_version": 1,
            "command": self.command,
            "source": self.source,
            "target": self.target,
            "images": self.records.iter().map(Record::to_json).collect::<Vec<_>>(),
            "summary": summary,
            "duration_ms": millis(self.duration),
            "exit_code": exit_code,
        })
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_of_a_copy_and_a_failure() {
        let mut copied = Record::new(
            "app",
            "1.0.0",
            Outcome::Copied,
            Duration::from_micros(1_500),
        );
        copied.digest = Some("sha256:ab".into());
        copied.platforms = vec![Platform::new("linux", "amd64", None)];
        copied.stats = Some(CopyStats {
            blobs_copied: 2,
            bytes_copied: 300,
            blobs_skipped: 1,
            blobs_mounted: 0,
            manifests: 2,
        });
        let mut failed = Record::new("base", "2.0.0", Outcome::Failed, Duration::ZERO);
        failed.error = Some("registry x: boom".into());
        let report = Report {
            command: "upload-all-to-local-registry",
            source: "r/team",
            target: "localhost:5000".into(),
            records: vec![copied, failed],
            duration: Duration::from_millis(7),
        };
        let doc = report.to_json(1);
        assert_eq!(doc["images"][0]["result"], "copied");
        assert_eq!(doc["images"][0]["platforms"], json!(["linux/amd64"]));
        assert_eq!(doc["images"][0]["bytes_copied"], 300);
        assert_eq!(doc["images"][0]["duration_ms"], 1);
        assert_eq!(doc["images"][1]["result"], "failed");
        assert_eq!(doc["images"][1]["blobs_copied"], Value::Null);
        assert_eq!(doc["images"][1]["error"], "registry x: boom");
        assert_eq!(doc["summary"]["failed"], 1);
        assert_eq!(doc["summary"]["up_to_date"], 0);
        assert_eq!(doc["exit_code"], 1);
        let table = report.table();
        assert!(
            table.contains("copied: 2 blob(s), 0.0 MiB; 1 skipped, 0 mounted"),
            "{table}"
        );
        assert!(table.contains("FAILED: registry x: boom"), "{table}");
    }
}
