//! `cip pull-latest-from-remote-registry`: pull each context's current version from the remote
//! registry into the builder's local store and tag it latest.
use super::load_valid;
use crate::build::BuilderKind;
use crate::cli::{MirrorArgs, ProjectArgs};

pub fn run(
    project: &ProjectArgs,
    registry: &str,
    builder: BuilderKind,
    m: &MirrorArgs,
) -> anyhow::Result<i32> {
    let loaded = load_valid(project)?;
    crate::mirror::pull_latest(&loaded, registry, builder, m)
}
