//! cip: build, publish and version a monorepo of co-dependent container images.
// `Problem` is a large value, but it only travels on cold error paths where clarity beats boxing.
#![allow(clippy::result_large_err)]
pub mod build;
pub mod cascade;
pub mod cli;
pub mod commands;
pub mod diagnostics;
pub mod digest;
pub mod execute;
pub mod graph;
pub mod interrupt;
pub mod load;
pub mod output;
pub mod plan;
pub mod platform;
pub mod progress;
pub mod project;
pub mod registry;
pub mod schedule;
pub mod scratch;
