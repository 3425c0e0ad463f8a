//! `cip pull-latest-from-remote-registry`: pull each context's current version from a remote
//! registry into the builder's local store and tag it latest.
use crate::builders::BuilderKind;
use crate::options::{MirrorOptions, ProjectOptions};

pub fn run(
    project: &ProjectOptions,
    remote_registry: &str,
    builder: BuilderKind,
    m: &MirrorOptions,
) -> anyhow::Result<i32> {
    super::pulling(
        project,
        remote_registry,
        builder,
        m,
        "pull-latest-from-remote-registry",
    )
}
