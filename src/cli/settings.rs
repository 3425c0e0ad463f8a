//! The shared settings on the command line: which of them the user typed (clap's defaults do not
//! count), for `config::settings` to resolve flag > environment > cip.toml > default once, before
//! any command runs (`resolve` turns the result into the commands' options).
use clap::parser::ValueSource;
use clap::ArgMatches;

use super::{Cli, PlatformList};
use crate::builders::BuilderKind;
use crate::config::settings::Flags;
use crate::progress::Progress;

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
}

/// `--progress MODE`, or `-q` (quiet), if typed.
fn given_progress(m: &ArgMatches) -> Option<String> {
    let quiet = given::<bool>(m, "quiet")
        .filter(|q| *q)
        .map(|_| Progress::Quiet);
    let mode = given::<Progress>(m, "progress").or(quiet)?;
    Some(mode.name().to_string())
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
