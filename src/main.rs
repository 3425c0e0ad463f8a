use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use cip::cli::{Cli, Command};
use cip::commands;
use cip::config::file::ProjectFile;
use cip::config::settings::Settings;

/// Filled by `Cli::apply`, which fails first when no remote registry is configured.
const RESOLVED: &str = "the remote registry is resolved before commands run";

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

fn run(mut cli: Cli, matches: &ArgMatches) -> anyhow::Result<i32> {
    // Every setting the environment gives, read once: a bad value stops here.
    cip::config::init(cip::config::RunConfig::from_env()?);
    let project_dir = cli.project_dir();
    let resolved = match cli.project_args_mut() {
        Some(project) => {
            project.project_dir = project_dir.clone();
            // The shared settings, flag > environment > cip.toml > default, resolved once.
            let file = ProjectFile::load(&project_dir)?;
            let flags = Cli::given_flags(matches);
            let settings = Settings::resolve(&flags, cip::config::get(), file.as_ref())?;
            cli.apply(&settings)?;
            Some((file, settings))
        }
        None => None,
    };
    match cli.command {
        Command::Check {
            project,
            json,
            builder,
        } => commands::check::run(&project, json, builder),
        Command::Graph {
            project,
            format,
            json,
        } => {
            let format = if json {
                cip::cli::GraphFormat::Json
            } else {
                format
            };
            commands::graph::run(&project, format)
        }
        Command::CascadeVersionUpdates { project, edit } => {
            commands::cascade::run(&project, None, &edit)
        }
        Command::Bump {
            project,
            name,
            part,
            changed,
            registry,
            edit,
        } => commands::bump::run(
            &project,
            name.as_deref(),
            part,
            changed,
            &registry.target(),
            &edit,
        ),
        Command::Plan {
            project,
            target,
            force,
            store,
            builder,
            json,
            farm,
            choices,
            targets,
        } => commands::plan::run(
            &project, &target, &force, store, builder, json, &farm, &choices, &targets,
        ),
        Command::Farm {
            project,
            farm,
            node,
            json,
            ..
        } => {
            let registry = resolved
                .as_ref()
                .and_then(|(_, s)| s.remote_registry.as_ref())
                .map(|r| r.value.clone());
            commands::farm::run(&project, farm, node, json, registry.as_deref())
        }
        Command::Status {
            project,
            target,
            json,
            targets,
        } => commands::status::run(&project, &target, json, &targets),
        Command::Publish {
            build,
            remote_registry,
            only_local_platform,
            stage,
            merge,
            allow_incomplete,
            prune_stage,
        } => commands::publish::run(
            &build,
            remote_registry.as_deref().expect(RESOLVED),
            only_local_platform,
            &stage,
            commands::publish::Merge {
                merge,
                allow_incomplete,
                prune_stage,
            },
        ),
        Command::Ci {
            command:
                cip::cli::CiCommand::Matrix {
                    project,
                    target,
                    format,
                    targets,
                },
        } => commands::ci::matrix(&project, &target, format, &targets),
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
            connect: &connect,
        }),
        Command::PublishLocally {
            build,
            local_registry,
        } => commands::publish_locally::run(&build, &local_registry),
        Command::UploadAllToLocalRegistry {
            project,
            remote_registry,
            local_registry,
            mirror,
        } => commands::upload_all_to_local_registry::run(
            &project,
            remote_registry.as_deref().expect(RESOLVED),
            &local_registry,
            &mirror,
        ),
        Command::PullLatestFromLocalRegistry {
            project,
            local_registry,
            builder,
            mirror,
        } => commands::pull_latest_from_local_registry::run(
            &project,
            &local_registry,
            builder,
            &mirror,
        ),
        Command::PullLatestFromRemoteRegistry {
            project,
            remote_registry,
            builder,
            mirror,
        } => commands::pull_latest_from_remote_registry::run(
            &project,
            remote_registry.as_deref().expect(RESOLVED),
            builder,
            &mirror,
        ),
        Command::Build {
            build,
            local_registry,
        } => commands::build::run(&build, &local_registry),
        Command::Completions { shell } => commands::completions::run(shell),
        Command::Man => commands::man::run(),
        Command::Config { project, json } => {
            let (file, settings) = resolved.expect("config acts on a project");
            commands::config::run(&settings, file.as_ref(), &project.project_dir, json)
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
