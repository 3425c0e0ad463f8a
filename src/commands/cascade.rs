//! `cip cascade-version-updates` and `cip bump`: compute the cascade, show it, write it all or nothing.
use std::path::Path;

use anyhow::bail;

use super::{load_valid, Loaded};
use crate::cascade::{self, signals, Interrupted, Level};
use crate::cli::EditArgs;
use crate::options::ProjectOptions;
use crate::output::style_problem;

/// `bump`: Some((name, part)) bumps that image by `part` first; descendants get `edit.level`.
pub fn run(
    args: &ProjectOptions,
    bump: Option<(&str, Level)>,
    edit: &EditArgs,
) -> anyhow::Result<i32> {
    if !edit.dry_run {
        prepare(&args.dir)?;
    }
    let loaded = load_valid(args)?;
    let (requested, part) = match bump {
        Some((name, part)) => (vec![loaded.context_named(name)?], part),
        None => (Vec::new(), edit.level),
    };
    apply(&loaded, &requested, part, edit)
}

/// Before a cascade writes: signals are noted rather than fatal (see `cascade::signals`), and what
/// a killed cascade left is cleaned up. Returns whether files were restored.
fn prepare(root: &Path) -> anyhow::Result<bool> {
    signals::catch()?;
    let mut restored = false;
    for (line, files) in cascade::recover(root)? {
        eprintln!("{line}");
        restored |= files;
    }
    Ok(restored)
}

/// Bumps `requested` (context indexes) by `part`, cascades with `edit.level`, and shows or writes it.
pub fn apply(
    loaded: &Loaded,
    requested: &[usize],
    part: Level,
    edit: &EditArgs,
) -> anyhow::Result<i32> {
    if !edit.dry_run && prepare(&loaded.project.root)? {
        bail!("files were restored after the project was read: run the command again");
    }
    if let Some(sig) = signals::received() {
        eprintln!("{}", Interrupted(sig));
        return Ok(sig.exit_code());
    }
    let started = std::time::Instant::now();
    let computed =
        cascade::compute_with(&loaded.project, &loaded.graph, requested, part, edit.level);
    crate::output::timing("cascade: compute", started);
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
        if edit.json {
            print_json(
                &plan,
                &loaded.project.root,
                edit.dry_run,
                &Default::default(),
            );
        }
        return Ok(0);
    }
    if edit.dry_run && edit.json {
        print_json(&plan, &loaded.project.root, true, &Default::default());
        eprint!("{}", cascade::summary(&plan));
        return Ok(0);
    }
    if edit.dry_run {
        print!("{}", cascade::diff(&plan, &loaded.project.root));
        eprint!("{}", cascade::summary(&plan));
        eprintln!("dry run: {} file(s) would change", plan.files.len());
        return Ok(0);
    }
    let written = match cascade::write(&plan, &loaded.project.root, edit.backup) {
        Ok(w) => w,
        Err(e) => match e.downcast_ref::<Interrupted>() {
            Some(Interrupted(sig)) => {
                eprintln!("{e}");
                return Ok(sig.exit_code());
            }
            None => return Err(e),
        },
    };
    if edit.json {
        print_json(&plan, &loaded.project.root, false, &written.backups);
    } else {
        print_written(&plan, &written.backups);
    }
    if let Some(sig) = written.deferred {
        eprintln!(
            "{} received while files were being replaced: cip replaced every file first",
            sig.name()
        );
        return Ok(sig.exit_code());
    }
    Ok(0)
}

/// The bumps and the files rewritten, as text.
fn print_written(
    plan: &cascade::Cascade,
    backups: &std::collections::BTreeMap<std::path::PathBuf, std::path::PathBuf>,
) {
    print!("{}", cascade::summary(plan));
    for path in plan.files.keys() {
        let backup = match backups.get(path) {
            Some(bk) => format!(", original kept as {}", bk.display()),
            None => String::new(),
        };
        println!(
            "  rewrote {}{}{backup}",
            path.display(),
            linked_from(plan, path)
        );
    }
}

/// The cascade as JSON (docs/json.md): each bump with its reason, each file relative to the
/// project with its backup.
fn print_json(
    plan: &cascade::Cascade,
    root: &Path,
    dry_run: bool,
    backups: &std::collections::BTreeMap<std::path::PathBuf, std::path::PathBuf>,
) {
    let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    let doc = serde_json::json!({
        "schema_version": 1,
        "dry_run": dry_run,
        "bumps": plan.bumps.iter().map(|b| serde_json::json!({
            "name": b.name,
            "from": b.from.to_string(),
            "to": b.to.to_string(),
            "because": match &b.why {
                cascade::Why::Requested => serde_json::json!("requested"),
                cascade::Why::ParentsMoved(ps) => serde_json::json!(ps
                    .iter()
                    .map(|(n, v)| serde_json::json!({"parent": n, "to": v}))
                    .collect::<Vec<_>>()),
            },
        })).collect::<Vec<_>>(),
        "files": plan.files.keys().map(|p| serde_json::json!({
            "path": rel(p),
            "backup": backups.get(p).map(|b| rel(b)),
        })).collect::<Vec<_>>(),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string())
    );
}

/// ` (linked from A, B)` for a file reached through symlinks.
fn linked_from(plan: &cascade::Cascade, path: &Path) -> String {
    match plan.links.get(path) {
        Some(links) => {
            let links: Vec<String> = links.iter().map(|l| l.display().to_string()).collect();
            format!(" (linked from {})", links.join(", "))
        }
        None => String::new(),
    }
}
