//! `cip cascade-version-updates` and `cip bump`: compute the cascade, show it, write it all or nothing.
use anyhow::bail;

use super::load;
use crate::cascade::{self, Level};
use crate::cli::{EditArgs, ProjectArgs};
use crate::output::style_problem;

/// `bump`: Some((name, part)) bumps that image by `part` first; descendants get `edit.level`.
pub fn run(
    args: &ProjectArgs,
    bump: Option<(&str, Level)>,
    edit: &EditArgs,
) -> anyhow::Result<i32> {
    let loaded = load(args)?;
    let errors: Vec<_> = loaded.problems.iter().filter(|p| p.is_error()).collect();
    if !errors.is_empty() {
        for p in &errors {
            eprintln!("{}", style_problem(p));
        }
        bail!(
            "{} error(s) in the project: fix them before rewriting versions",
            errors.len()
        );
    }
    let mut requested = Vec::new();
    if let Some((name, _)) = bump {
        let Some(node) = loaded.graph.node(name) else {
            bail!("no context produces an image named {name:?} (see `cip graph`)");
        };
        requested.push(loaded.graph.dag[node]);
    }
    let computed = match bump {
        // The named image moves by `part`; its descendants by `--level`.
        Some((_, part)) => {
            cascade::compute_with(&loaded.project, &loaded.graph, &requested, part, edit.level)
        }
        None => cascade::compute_with(&loaded.project, &loaded.graph, &[], edit.level, edit.level),
    };
    let plan = match computed {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems {
                eprintln!("{}", style_problem(p));
            }
            bail!(
                "{} reference(s) cannot be rewritten; no file was changed",
                problems.len()
            );
        }
    };
    if plan.is_empty() {
        eprintln!("every reference already names its parent's current version: nothing to change");
        return Ok(0);
    }
    if edit.dry_run {
        print!("{}", cascade::diff(&plan));
        eprint!("{}", cascade::summary(&plan));
        eprintln!("dry run: {} file(s) would change", plan.files.len());
        return Ok(0);
    }
    cascade::write(&plan, edit.backup)?;
    print!("{}", cascade::summary(&plan));
    for path in plan.files.keys() {
        println!("  rewrote {}", path.display());
    }
    Ok(0)
}
