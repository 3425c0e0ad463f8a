//! cip: build, publish and version a monorepo of co-dependent container images.
pub mod diagnostics;
pub mod graph;
pub mod project;
