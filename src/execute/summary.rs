//! What a run prints and writes at its end, from its results: the summary table, the one-line
//! result of `--progress quiet`, and the `--json` document (docs/json.md).
use std::time::Duration;

use serde_json::{json, Value};

use super::outcome::{step_outcome_name, ImageResult, Outcome, StepRecord};
use crate::platform::Platform;

/// Platforms as the summary shows them: `amd64,arm64` for Linux ones.
fn short_list(ps: &[Platform]) -> String {
    if ps.is_empty() {
        return "-".into();
    }
    ps.iter()
        .map(|p| match p.os.as_str() {
            "linux" => p.to_string()["linux/".len()..].to_string(),
            _ => p.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The BUILT column: the platforms, each with its node on a farm (`amd64@amd-1,arm64@arm-1`).
fn built_column(r: &ImageResult) -> String {
    if r.built_on.is_empty() {
        return short_list(&r.built);
    }
    r.built_on
        .iter()
        .map(|(p, node)| format!("{}@{node}", short_list(std::slice::from_ref(p))))
        .collect::<Vec<_>>()
        .join(",")
}

/// A digest as the summary shows it: the first 12 hex digits, as docker shows image ids.
fn short_digest(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.chars().take(12).collect()
}

/// The rows without the columns whose cells below the header are all `-`.
fn without_empty_columns<const N: usize>(rows: Vec<[String; N]>) -> Vec<Vec<String>> {
    let keep: Vec<bool> = (0..N)
        .map(|c| rows.iter().skip(1).any(|r| r[c] != "-"))
        .collect();
    rows.into_iter()
        .map(|r| {
            r.into_iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(cell, _)| cell)
                .collect()
        })
        .collect()
}

/// The summary printed at the end of a run: a row per image the run did something with (all rows
/// with `verbose`), one line for the images that were up to date, the failures, and the run's
/// wall time. Fits 80 columns for usual names.
pub fn render_summary(results: &[ImageResult], total: Duration, verbose: bool) -> String {
    let up_to_date = results
        .iter()
        .filter(|r| r.result == Outcome::UpToDate)
        .count();
    let shown: Vec<&ImageResult> = results
        .iter()
        .filter(|r| verbose || r.result != Outcome::UpToDate)
        .collect();
    let mut out = String::new();
    if !shown.is_empty() {
        let mut rows = vec![[
            "IMAGE".to_string(),
            "BUILT".into(),
            "KEPT".into(),
            "RESULT".into(),
            "TIME".into(),
            "DIGEST".into(),
        ]];
        for r in &shown {
            rows.push([
                format!("{}:{}", r.name, r.version),
                built_column(r),
                short_list(&r.kept),
                r.result.to_string(),
                format!("{:.1}s", r.duration.as_secs_f64()),
                r.digest.as_deref().map_or_else(|| "-".into(), short_digest),
            ]);
        }
        // Columns with nothing to say (no platform kept) make room for the others.
        let rows: Vec<Vec<String>> = without_empty_columns(rows);
        out.push_str(&crate::output::table_of(&rows));
    }
    if up_to_date > 0 && !verbose {
        let others = if shown.is_empty() { "" } else { "other " };
        out.push_str(&format!(
            "{} up to date\n",
            crate::output::count(up_to_date, &format!("{others}image"))
        ));
    }
    for f in results.iter().filter(|r| r.error.is_some()) {
        out.push_str(&format!(
            "\nFAILED {}:{}: {}\n",
            f.name,
            f.version,
            f.error.as_deref().unwrap_or("")
        ));
    }
    out.push_str(&format!("total {:.1}s\n", total.as_secs_f64()));
    out
}

/// What `--progress quiet` prints at the end: each failure, then one line that counts the images
/// by result, with the run's wall time.
pub fn result_line(results: &[ImageResult], total: Duration) -> String {
    let mut out = String::new();
    for f in results.iter().filter(|r| r.error.is_some()) {
        out.push_str(&format!(
            "FAILED {}:{}: {}\n",
            f.name,
            f.version,
            f.error.as_deref().unwrap_or("")
        ));
    }
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for r in results {
        let what = r.result.counted_as();
        match counts.iter_mut().find(|(w, _)| *w == what) {
            Some((_, n)) => *n += 1,
            None => counts.push((what, 1)),
        }
    }
    let counts: Vec<String> = counts.iter().map(|(w, n)| format!("{n} {w}")).collect();
    out.push_str(&format!(
        "{}: {} in {:.1}s\n",
        crate::output::count(results.len(), "image"),
        if counts.is_empty() {
            "none".to_string()
        } else {
            counts.join(", ")
        },
        total.as_secs_f64()
    ));
    out
}

/// The run summary document (docs/json.md): one entry per image, and one per step of the plan
/// with its outcome and when it ran.
pub fn summary_json(registry: &str, results: &[ImageResult], steps: &[StepRecord]) -> Value {
    json!({
        "schema_version": 1,
        "registry": registry,
        "images": results.iter().map(|r| json!({
            "name": r.name,
            "version": r.version,
            "built": r.built,
            "already_published": r.kept,
            "replaced": r.replaced,
            "result": r.result.name(),
            "code": r.result.code(),
            "digest": r.digest,
            "error": r.error,
            "failed": r.failed_steps.iter().map(|(platform, log)| json!({
                "platform": platform,
                "log": log,
            })).collect::<Vec<_>>(),
            "duration_seconds": millis(r.duration),
            "built_on": r.built_on.iter().map(|(p, n)| json!({
                "platform": p,
                "node": n,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "steps": steps.iter().map(|s| json!({
            "id": s.id,
            "outcome": step_outcome_name(&s.outcome),
            "started_seconds": s.ran.map(|r| millis(r.0)),
            "finished_seconds": s.ran.map(|r| millis(r.1)),
            "node": s.node,
        })).collect::<Vec<_>>(),
    })
}

/// Seconds, rounded to milliseconds.
fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}
