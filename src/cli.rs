//! Command-line interface: subcommands and their flags, with the original tool's names.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::platform::{self, Platform};

#[derive(Debug, Parser)]
#[command(
    name = "cip",
    version,
    about = "Build, publish and version a monorepo of co-dependent, multi-architecture container images",
    long_about = "cip reads PROJECT/contexts/NN-name/ directories (a Dockerfile and an info.edn each), \
                  derives the dependency graph from `FROM ${REGISTRY}/name:tag` references, and builds, \
                  publishes and versions the images in dependency order.",
    after_help = "Run `cip <COMMAND> --help` for the flags of one command. Docs: README.md and docs/."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct ProjectArgs {
    /// The project directory (the one that holds contexts/)
    #[arg(long, short = 'C', default_value = ".", value_name = "DIR")]
    pub project_dir: PathBuf,

    /// Platforms of contexts whose info.edn has no :platforms
    #[arg(long, value_name = "P,P", default_value = "linux/amd64,linux/arm64", value_parser = parse_platforms)]
    pub default_platforms: PlatformList,
}

/// A comma-separated platform list given as one flag value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformList(pub Vec<Platform>);

impl std::ops::Deref for PlatformList {
    type Target = [Platform];
    fn deref(&self) -> &[Platform] {
        &self.0
    }
}

fn parse_platforms(s: &str) -> Result<PlatformList, String> {
    platform::parse_list(s).map(PlatformList)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the project: info files, Dockerfile references, cycles, order, stale tags (all problems at once)
    Check {
        #[command(flatten)]
        project: ProjectArgs,
        /// Print the problems as JSON (see docs/json.md)
        #[arg(long)]
        json: bool,
    },
    /// Print the dependency graph: build batches and critical path, or DOT, Mermaid, JSON
    Graph {
        #[command(flatten)]
        project: ProjectArgs,
        /// Output format
        #[arg(long, short, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Text,
    Dot,
    Mermaid,
    Json,
}
