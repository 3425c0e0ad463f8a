//! One module per subcommand, each a thin layer: parse, call the library, print. Each returns the
//! process exit code.
pub mod build;
pub mod bump;
pub mod cascade;
pub mod check;
pub mod ci;
pub mod completions;
pub mod config;
pub mod farm;
pub mod graph;
pub mod man;
pub mod merge;
pub mod plan;
pub mod publish;
pub mod publish_locally;
pub mod pull_latest_from_local_registry;
pub mod pull_latest_from_remote_registry;
pub mod status;
pub mod upload_all_to_local_registry;

use crate::execute::{render_summary, result_line, summary_json};
use crate::options::{MirrorOptions, ProjectOptions, RunOptions};
use crate::output::style_problem;
use crate::progress::Progress;
use crate::run::{Ended, Mode};

pub use crate::load::{load, Loaded};

/// Loads the project for a command that acts on it: shows every problem, and refuses to go on if one
/// is an error (warnings only inform).
pub fn load_valid(args: &ProjectOptions) -> anyhow::Result<Loaded> {
    let loaded = load(args)?;
    for p in &loaded.problems {
        eprintln!("{}", style_problem(p));
    }
    if loaded.errors() > 0 {
        anyhow::bail!(
            "{} error(s) in the project (see above; `cip check` lists them)",
            loaded.errors()
        );
    }
    Ok(loaded)
}

fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `build`, `publish` and `publish-locally`: run, then print the summary table (and the JSON
/// summary with `--json`), or the plan with `--dry-run`.
fn building(args: &RunOptions, mode: Mode) -> anyhow::Result<i32> {
    let started = std::time::Instant::now();
    let reporter = crate::progress::Reporter::new(args.progress, args.verbose);
    let display = reporter.mode();
    let loaded = load_valid(&args.project)?;
    let finished = match crate::run::build(&loaded, args, mode, &reporter)? {
        Ended::DryRun(plan) => {
            print!("{}", crate::plan::render(&loaded, &plan));
            return Ok(0);
        }
        Ended::Ran(finished) => finished,
    };
    if args.json {
        print_json(&summary_json(
            &finished.destination,
            &finished.results,
            &finished.steps,
        ))?;
    }
    let written = args
        .metadata_file
        .as_ref()
        .map(|path| crate::metadata::write(path, &finished.results));
    if display == Progress::Quiet {
        eprint!("{}", result_line(&finished.results, started.elapsed()));
    } else {
        eprint!(
            "{}",
            render_summary(&finished.results, started.elapsed(), args.verbose)
        );
        if !finished.ok {
            eprintln!("logs: {}", finished.log_dir.display());
        }
    }
    written.transpose()?;
    Ok(finished.exit_code())
}

/// `pull-latest-from-local-registry` and `pull-latest-from-remote-registry`.
fn pulling(
    project: &ProjectOptions,
    registry: &str,
    builder: crate::builders::BuilderKind,
    m: &MirrorOptions,
    command: &str,
) -> anyhow::Result<i32> {
    let loaded = load_valid(project)?;
    crate::mirror::pull_latest(&loaded, registry, builder, m, command)
}
