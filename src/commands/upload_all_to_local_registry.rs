//! `cip upload-all-to-local-registry`: copy every context's current version (all platforms) from a
//! remote registry to the local one, registry to registry.
use super::load_valid;
use crate::cli::{MirrorArgs, ProjectArgs};

pub fn run(
    project: &ProjectArgs,
    remote: &str,
    local: &str,
    m: &MirrorArgs,
) -> anyhow::Result<i32> {
    // Both addresses are checked before anything else (they may carry a password to refuse).
    crate::registry::validate_host(remote)?;
    crate::registry::validate_host(local)?;
    let loaded = load_valid(project)?;
    crate::mirror::upload_all(&loaded, remote, local, m)
}
