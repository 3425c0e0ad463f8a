use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use cip::cli::resolve::{self, Resolver};
use cip::cli::{Cli, Command};
use cip::commands;
use cip::config::RunConfig;

fn main() -> ExitCode {
    // The version with the commit it was built from (build.rs); only the binary sees it, so a
    // commit recompiles main.rs, not the library.
    let command = Cli::command().version(env!("CIP_VERSION"));
    let matches = match command.try_get_matches() {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::InvalidSubcommand => {
            eprint!("{e}");
            eprintln!("\nValid subcommands:\n{}", subcommand_list());
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = run(cli, &matches);
    // No child outlives cip: probes left waiting for a node that does not answer end here.
    cip::builders::process::end_children();
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("{} {e:#}", console::style("error:").red().bold());
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli, matches: &ArgMatches) -> anyhow::Result<i32> {
    // Every setting the environment gives, read once: a bad value stops here. Only this function
    // reads it; the commands get what they need as plain values (`cip::options`).
    let env = RunConfig::from_env()?;
    cip::output::show_timings(env.timings);
    let dir = cli.project_dir();
    // The shared settings of a project's command, flag > environment > cip.toml > default,
    // resolved once, before the command runs.
    let project = || Resolver::new(&env, &dir, matches);
    match cli.command {
        Command::Check { json, builder, .. } => {
            let r = project()?;
            commands::check::run(&r.project(), json, builder, env.local_node())
        }
        Command::Graph { format, json, .. } => {
            let format = if json {
                cip::cli::GraphFormat::Json
            } else {
                format
            };
            commands::graph::run(&project()?.project(), format)
        }
        Command::CascadeVersionUpdates { edit, .. } => {
            commands::cascade::run(&project()?.project(), None, &edit)
        }
        Command::Bump {
            name,
            part,
            changed,
            registry,
            edit,
            ..
        } => {
            let r = project()?;
            commands::bump::run(
                &r.project(),
                name.as_deref(),
                part,
                changed,
                &r.target(&registry.target())?,
                &edit,
            )
        }
        Command::Plan {
            target,
            force,
            store,
            json,
            farm,
            choices,
            targets,
            ..
        } => {
            let r = project()?;
            commands::plan::run(
                &r.project(),
                &r.target(&target)?,
                &resolve::forcing(&force),
                store,
                r.builder(),
                json,
                &r.farm(&farm),
                &r.plan(&choices),
                &resolve::targets(&targets),
            )
        }
        Command::Farm {
            farm, node, json, ..
        } => {
            let r = project()?;
            let registry = r.settings().remote_registry.as_ref().map(|s| &s.value);
            commands::farm::run(
                &r.project(),
                farm,
                node,
                json,
                registry.map(String::as_str),
                &cip::farm::probe::Probing::of(&env),
            )
        }
        Command::Status {
            target,
            json,
            bases: true,
            ..
        } => {
            let r = project()?;
            let t = r.target(&target)?;
            commands::status::bases(
                &r.project(),
                &t.connect,
                &r.mirrors(),
                t.query_concurrency,
                json,
            )
        }
        Command::Status {
            target,
            json,
            targets,
            ..
        } => {
            let r = project()?;
            commands::status::run(
                &r.project(),
                &r.target(&target)?,
                json,
                &resolve::targets(&targets),
            )
        }
        Command::Publish {
            build,
            only_local_platform,
            stage,
            merge,
            allow_incomplete,
            prune_stage,
            ..
        } => {
            let r = project()?;
            let remote_registry = r.remote_registry()?;
            commands::publish::run(
                &r.run(&build)?,
                &remote_registry,
                only_local_platform,
                &stage,
                commands::publish::Merge {
                    merge,
                    allow_incomplete,
                    prune_stage,
                },
            )
        }
        Command::Ci {
            command:
                cip::cli::CiCommand::Matrix {
                    target,
                    format,
                    targets,
                    ..
                },
        } => {
            let r = project()?;
            commands::ci::matrix(
                &r.project(),
                &target,
                &r.matrix_target(&target)?,
                format,
                &resolve::targets(&targets),
            )
        }
        Command::Merge {
            tag,
            sources,
            prefer,
            annotation,
            dry_run,
            force,
            connect,
        } => commands::merge::run(&commands::merge::MergeArgs {
            tag: &tag,
            sources: &sources,
            prefer: &prefer,
            annotations: &annotation,
            dry_run,
            force,
            connect: &resolve::connect(&connect, &env),
        }),
        Command::PublishLocally { build, .. } => {
            let r = project()?;
            commands::publish_locally::run(&r.run(&build)?, &r.local_registry())
        }
        Command::UploadAllToLocalRegistry { mirror, .. } => {
            let r = project()?;
            let remote_registry = r.remote_registry()?;
            commands::upload_all_to_local_registry::run(
                &r.project(),
                &remote_registry,
                &r.local_registry(),
                &r.mirror(&mirror),
            )
        }
        Command::PullLatestFromLocalRegistry { mirror, .. } => {
            let r = project()?;
            commands::pull_latest_from_local_registry::run(
                &r.project(),
                &r.local_registry(),
                r.builder(),
                &r.mirror(&mirror),
            )
        }
        Command::PullLatestFromRemoteRegistry { mirror, .. } => {
            let r = project()?;
            let remote_registry = r.remote_registry()?;
            commands::pull_latest_from_remote_registry::run(
                &r.project(),
                &remote_registry,
                r.builder(),
                &r.mirror(&mirror),
            )
        }
        Command::Build { build, .. } => {
            let r = project()?;
            commands::build::run(&r.run(&build)?, &r.local_registry())
        }
        Command::Completions { shell } => commands::completions::run(shell),
        Command::Man => commands::man::run(),
        Command::Config { json, .. } => {
            let r = project()?;
            commands::config::run(r.settings(), r.file(), &dir, json)
        }
    }
}

/// One line per subcommand, as the original tool printed for an unknown one.
fn subcommand_list() -> String {
    let cmd = Cli::command();
    cmd.get_subcommands()
        .map(|s| {
            let about = s.get_about().map(|a| a.to_string()).unwrap_or_default();
            format!("  {:<34} {about}", s.get_name())
        })
        .collect::<Vec<_>>()
        .join("\n")
}
