//! cip: build, publish and version a monorepo of co-dependent container images.
//!
//! # The stages of a run, in order
//! 1. **Command line** ([`cli`], [`commands`]): the flags are parsed, then resolved once with the
//!    environment ([`config::RunConfig`]) and cip.toml ([`config::settings`]) into the plain values
//!    of [`options`] (`cli::resolve`); each subcommand's module is a thin layer that hands them to
//!    the stages below and prints their results. Nothing below `commands` imports either, nor
//!    the parser's types.
//! 2. **Load** ([`load`], [`project`], [`graph`]): `contexts/NN-name/` directories are scanned in
//!    parallel into contexts (name, version, platforms, the references of their Dockerfiles), the
//!    references become a DAG, and both are validated; every problem carries a file, line and hint
//!    ([`diagnostics`]).
//! 3. **Connect** ([`registry`]): one connection per registry and credential (TLS or plain HTTP,
//!    retries, authentication), made once per run.
//! 4. **Plan** ([`plan`], [`digest`]): per image, what the destination holds, what is missing, forced
//!    or drifted (context digests); then [`plan::steps`] turns that into the [`plan::steps::Plan`]:
//!    every build and index step with its node, platform, destination, builder tag, log, build
//!    arguments and dependencies. `cip plan --json` prints it; nothing is decided after this.
//! 5. **Execute** ([`execute`], [`schedule`], [`builders`]): the scheduler starts each step once the steps
//!    it waits for succeeded and its node's pool has a free slot; build steps run on a
//!    [`builders::Backend`] (buildah, podman, docker) and are pushed by digest ([`registry::push`]);
//!    assemble steps write the multi-platform index, the version tag last.
//! 6. **Report** ([`progress`], [`output`], [`metadata`]): live progress (`--progress tty|plain|quiet`),
//!    the summary table, `--json` and `--metadata-file`. The lower layers (registry, builders,
//!    farm) print nothing: they report [`events`] to a sink, the command's [`progress::Reporter`].
//!
//! Beside the run: [`bases`] resolves the external bases of a tree (`FROM debian:bookworm`) to the
//! digests their registries name now (`cip status --bases`), [`signing`] reads cosign and openssl
//! keys and makes cosign's signature manifests (not yet called by a run: issue 20), [`cleanup`]
//! sweeps what cancelled runs left, [`cascade`] rewrites versions and references (staged, all or nothing),
//! [`registry::copy`] mirrors images between registries, [`interrupt`] turns SIGINT and SIGTERM into
//! a stop of the run, and [`scratch`] keeps the private directories builders are handed.
//!
//! CI fan-out and fan-in: a `--stage` run is a run whose target ([`plan::Target::stage`]) is one
//! platform's staging namespace; [`fan_in`] assembles the final indexes from the stages
//! (`publish --merge`), [`registry::merge`] mounts images across repositories and chooses the sources
//! of `cip merge`, [`execute::index_writer`] writes every index (publish, stage links, fan-in, `cip
//! merge`), and [`ci_matrix`] tells a pipeline which platforms to start runners for.
// `Problem` is a large value, but it only travels on cold error paths where clarity beats boxing.
#![allow(clippy::result_large_err)]
pub mod bases;
pub mod builders;
pub mod cascade;
pub mod ci_matrix;
pub mod cip_dir;
pub mod cleanup;
pub mod cli;
pub mod commands;
pub mod config;
pub mod diagnostics;
pub mod digest;
pub mod events;
pub mod execute;
pub mod fan_in;
pub mod farm;
pub mod graph;
pub mod interrupt;
pub mod inventory;
pub mod load;
pub mod metadata;
pub mod mirror;
pub mod options;
pub mod output;
pub mod plan;
pub mod platform;
pub mod progress;
pub mod project;
pub mod registry;
pub mod run;
pub mod schedule;
pub mod scratch;
pub mod session;
pub mod signing;
