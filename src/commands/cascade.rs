//! `cip cascade-version-updates` and `cip bump`: compute the cascade, show it, write it all or nothing.
use anyhow::bail;

use super::{load_valid, Loaded};
use crate::cascade::{self, Level};
use crate::cli::{EditArgs, ProjectArgs};
use crate::output::style_problem;

/// `bump`: Some((name, part)) bumps that image by `part` first; descendants get `edit.level`.
pub fn run(
    args: &ProjectArgs,
    bump: Option<(&str, Level)>,
    edit: &EditArgs,
) -> anyhow::Result<i32> {
    let loaded = load_valid(args)?;
    let (requested, part) = match bump {
        Some((name, part)) => {
            let Some(node) = loaded.graph.node(name) else {
                bail!("no context produces an image named {name:?} (see `cip graph`)");
            };
            (vec![loaded.graph.dag[node]], part)
        }
        None => (Vec::new(), edit.level),
    };
    apply(&loaded, &requested, part, edit)
}

/// Bumps `requested` (context indexes) by `part`, cascades with `edit.level`, and shows or writes it.
pub fn apply(
    loaded: &Loaded,
    requested: &[usize],
    part: Level,
    edit: &EditArgs,
) -> anyhow::Result<i32> {
    let computed =
        cascade::compute_with(&loaded.project, &loaded.graph, requested, part, edit.level);
    let plan = match computed {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems {
                eprintln!("{}", style_problem(p));
            }
            bail!(
                "{} problem(s) prevent the cascade; no file was changed",
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
        println!("  rewrote {}{}", path.display(), linked_from(&plan, path));
    }
    Ok(0)
}

/// ` (linked from A, B)` for a file reached through symlinks.
fn linked_from(plan: &cascade::Cascade, path: &std::path::Path) -> String {
    match plan.links.get(path) {
        Some(links) => {
            let links: Vec<String> = links.iter().map(|l| l.display().to_string()).collect();
            format!(" (linked from {})", links.join(", "))
        }
        None => String::new(),
    }
}
