//! `cip check`: every problem of the project at once; exit 1 if any is an error. With `--builder`,
//! also what that builder cannot build.
use serde_json::json;

use super::load;
use crate::builders::{capabilities, BuilderKind, NodeEnv};
use crate::options::ProjectOptions;
use crate::output::style_problem;

/// `env`: the environment the builder `--builder` names is found in.
pub fn run(
    args: &ProjectOptions,
    as_json: bool,
    builder: Option<BuilderKind>,
    env: NodeEnv,
) -> anyhow::Result<i32> {
    let mut loaded = load(args)?;
    let builder = builder
        .map(|kind| crate::builders::detect_with(kind, env))
        .transpose()?;
    if let Some(b) = &builder {
        let all = 0..loaded.project.contexts.len();
        let found = capabilities::problems_for(&loaded.project, all, b.as_ref());
        loaded.problems.extend(found);
        crate::diagnostics::sort(&mut loaded.problems);
    }
    let errors = loaded.errors();
    let warnings = loaded.problems.len() - errors;
    let total = loaded.project.contexts.len() + loaded.project.unreadable.len();
    if as_json {
        let mut doc = json!({
            "schema_version": 1,
            "contexts": total,
            "errors": errors,
            "warnings": warnings,
            "problems": loaded.problems,
        });
        if let Some(b) = &builder {
            doc["builder"] = json!(b.describe());
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for p in &loaded.problems {
            eprintln!("{}", style_problem(p));
        }
        let verdict = match (errors, warnings) {
            (0, 0) => "ok".to_string(),
            (0, w) => format!("ok with {w} warning(s)"),
            (e, w) => format!("{e} error(s), {w} warning(s)"),
        };
        let with = builder
            .map(|b| format!(" for {}", b.describe()))
            .unwrap_or_default();
        eprintln!(
            "checked {total} context(s) in {}{with}: {verdict}",
            args.dir.display()
        );
    }
    Ok(if errors > 0 { 1 } else { 0 })
}
