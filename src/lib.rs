//! cip: build, publish and version a monorepo of co-dependent container images.
pub mod cli;
pub mod commands;
pub mod diagnostics;
pub mod graph;
pub mod output;
pub mod platform;
pub mod project;
