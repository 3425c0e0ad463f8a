//! `cip upload-all-to-local-registry`: copy every context's current version (all platforms) from a
//! remote registry to the local one, registry to registry.
use super::load_valid;
use crate::options::{MirrorOptions, ProjectOptions};

pub fn run(
    project: &ProjectOptions,
    remote: &str,
    local: &str,
    m: &MirrorOptions,
) -> anyhow::Result<i32> {
    // Both addresses are checked before anything else (they may carry a password to refuse).
    crate::registry::validate_host(remote)?;
    crate::registry::validate_host(local)?;
    let loaded = load_valid(project)?;
    crate::mirror::upload_all(&loaded, remote, local, m)
}
