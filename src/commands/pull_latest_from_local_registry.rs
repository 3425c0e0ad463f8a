//! `cip pull-latest-from-local-registry`: pull each context's current version from the local
//! registry into the builder's local store and tag it latest.
use crate::builders::BuilderKind;
use crate::options::{MirrorOptions, ProjectOptions};

pub fn run(
    project: &ProjectOptions,
    local_registry: &str,
    builder: BuilderKind,
    m: &MirrorOptions,
) -> anyhow::Result<i32> {
    super::pulling(
        project,
        local_registry,
        builder,
        m,
        "pull-latest-from-local-registry",
    )
}
