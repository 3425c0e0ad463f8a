//! `cip pull-latest-from-local-registry`: pull each context's current version from the local
//! registry into the builder's local store and tag it latest.
use crate::builders::BuilderKind;
use crate::cli::{MirrorArgs, ProjectArgs};

pub fn run(
    project: &ProjectArgs,
    local_registry: &str,
    builder: BuilderKind,
    m: &MirrorArgs,
) -> anyhow::Result<i32> {
    super::pulling(
        project,
        local_registry,
        builder,
        m,
        "pull-latest-from-local-registry",
    )
}
