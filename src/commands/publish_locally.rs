//! `cip publish-locally`: build every missing image for this machine's platform and push it to the
//! local registry.
use crate::options::RunOptions;
use crate::run::Mode;

pub fn run(args: &RunOptions, local_registry: &str) -> anyhow::Result<i32> {
    let mode = Mode::Local {
        registry: local_registry.to_string(),
    };
    super::building(args, mode)
}
