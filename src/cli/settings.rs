//! The shared settings on the command line: which of them the user typed (clap's defaults do not
//! count), and the parsed command filled with the values resolved from flag > environment >
//! cip.toml > default, once, before any command runs. The commands then read their arguments as
//! if the user had typed every value.
use clap::parser::ValueSource;
use clap::ArgMatches;

use super::{Cli, Command, PlatformList, ProjectArgs, TargetArgs};
use crate::builders::BuilderKind;
use crate::config::settings::{Flags, Settings};
use crate::progress::Progress;
use clap::ValueEnum as _;

impl Cli {
    /// The settings typed on the command line of the subcommand `matches` holds.
    pub fn given_flags(matches: &ArgMatches) -> Flags {
        let sub = innermost(matches);
        Flags {
            remote_registry: given::<String>(sub, "remote_registry"),
            local_registry: given::<String>(sub, "local_registry"),
            default_platforms: given::<PlatformList>(sub, "default_platforms").map(|l| l.0),
            jobs: given::<usize>(sub, "jobs"),
            builder: given::<BuilderKind>(sub, "builder"),
            progress: given_progress(sub),
        }
    }

    /// Fills the subcommand's arguments with the resolved settings. A command that needs a remote
    /// registry and has none fails here, saying how to give one.
    pub fn apply(&mut self, s: &Settings) -> anyhow::Result<()> {
        if let Some(project) = self.project_args_mut() {
            apply_project(project, s);
        }
        let local = || s.local_registry.value.clone();
        let remote = || s.remote_registry().map(str::to_string);
        match &mut self.command {
            Command::Publish {
                build,
                remote_registry,
                ..
            } => {
                *remote_registry = Some(remote()?);
                build.builder = s.builder.value;
                build.jobs = s.jobs.value;
                build.progress =
                    Some(Progress::parse(&s.progress.value).map_err(anyhow::Error::msg)?);
            }
            Command::PublishLocally {
                build,
                local_registry,
            }
            | Command::Build {
                build,
                local_registry,
            } => {
                *local_registry = local();
                build.builder = s.builder.value;
                build.jobs = s.jobs.value;
                build.progress =
                    Some(Progress::parse(&s.progress.value).map_err(anyhow::Error::msg)?);
            }
            Command::UploadAllToLocalRegistry {
                remote_registry,
                local_registry,
                ..
            } => {
                *remote_registry = Some(remote()?);
                *local_registry = local();
            }
            Command::PullLatestFromLocalRegistry {
                local_registry,
                builder,
                ..
            } => {
                *local_registry = local();
                *builder = s.builder.value;
            }
            Command::PullLatestFromRemoteRegistry {
                remote_registry,
                builder,
                ..
            } => {
                *remote_registry = Some(remote()?);
                *builder = s.builder.value;
            }
            Command::Plan {
                target,
                builder,
                choices,
                ..
            } => {
                apply_target(target, s)?;
                *builder = s.builder.value;
                choices.jobs = s.jobs.value;
            }
            Command::Status { target, .. } => {
                apply_target(target, s)?;
            }
            Command::Bump { registry, .. } => {
                registry.local_registry = local();
                if registry.remote {
                    registry.remote_registry = Some(remote()?);
                }
            }
            // The matrix is about the registry the pipeline publishes to: always the remote one.
            Command::Ci {
                command: super::CiCommand::Matrix { target, .. },
            } => {
                target.remote_registry = Some(remote()?);
            }
            // `check --builder` stays opt-in: without it, check is builder-agnostic.
            Command::Check { .. }
            | Command::Graph { .. }
            | Command::CascadeVersionUpdates { .. }
            | Command::Farm { .. }
            | Command::Config { .. }
            | Command::Merge { .. }
            | Command::Completions { .. }
            | Command::Man => {}
        }
        Ok(())
    }
}

fn apply_project(project: &mut ProjectArgs, s: &Settings) {
    project.default_platforms = PlatformList(s.default_platforms.value.clone());
}

/// A read-only command asks the local registry unless told `--remote-registry REG` or `--remote`
/// (the configured one): a remote registry in cip.toml alone does not change what it asks.
fn apply_target(t: &mut TargetArgs, s: &Settings) -> anyhow::Result<()> {
    t.local_registry = s.local_registry.value.clone();
    if t.remote {
        t.remote_registry = Some(s.remote_registry()?.to_string());
    }
    Ok(())
}

/// `--progress MODE`, or `-q` (quiet), if typed.
fn given_progress(m: &ArgMatches) -> Option<String> {
    let quiet = given::<bool>(m, "quiet")
        .filter(|q| *q)
        .map(|_| Progress::Quiet);
    let mode = given::<Progress>(m, "progress").or(quiet)?;
    Some(mode.to_possible_value()?.get_name().to_string())
}

/// The matches of the last subcommand (`cip ci matrix` has two levels).
fn innermost(matches: &ArgMatches) -> &ArgMatches {
    match matches.subcommand() {
        Some((_, sub)) => innermost(sub),
        None => matches,
    }
}

/// The value of `id` if the user typed it (not clap's default); `None` for an argument the
/// subcommand does not have.
fn given<T: Clone + Send + Sync + 'static>(m: &ArgMatches, id: &str) -> Option<T> {
    if !matches!(m.try_contains_id(id), Ok(true)) {
        return None;
    }
    if m.value_source(id) != Some(ValueSource::CommandLine) {
        return None;
    }
    m.try_get_one::<T>(id).ok().flatten().cloned()
}
