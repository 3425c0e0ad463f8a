//! `cip check`: every problem of the project at once; exit 1 if any is an error.
use serde_json::json;

use super::load;
use crate::cli::ProjectArgs;
use crate::output::style_problem;

pub fn run(args: &ProjectArgs, as_json: bool) -> anyhow::Result<i32> {
    let loaded = load(args)?;
    let errors = loaded.errors();
    let warnings = loaded.problems.len() - errors;
    if as_json {
        let doc = json!({
            "schema_version": 1,
            "contexts": loaded.project.contexts.len() + loaded.project.unreadable.len(),
            "errors": errors,
            "warnings": warnings,
            "problems": loaded.problems,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for p in &loaded.problems {
            eprintln!("{}", style_problem(p));
        }
        let total = loaded.project.contexts.len() + loaded.project.unreadable.len();
        let verdict = match (errors, warnings) {
            (0, 0) => "ok".to_string(),
            (0, w) => format!("ok with {w} warning(s)"),
            (e, w) => format!("{e} error(s), {w} warning(s)"),
        };
        eprintln!(
            "checked {total} context(s) in {}: {verdict}",
            args.project_dir.display()
        );
    }
    Ok(if errors > 0 { 1 } else { 0 })
}
