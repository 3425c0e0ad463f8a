//! `cip publish`: build every missing image for all its platforms (or only this machine's) and push
//! it to a remote registry, with its multi-platform index tagged VERSION and latest.
use crate::cli::BuildArgs;
use crate::run::Mode;

pub fn run(
    args: &BuildArgs,
    remote_registry: &str,
    only_local_platform: bool,
) -> anyhow::Result<i32> {
    let mode = Mode::Remote {
        registry: remote_registry.to_string(),
        only_local_platform,
    };
    super::building(args, mode)
}
