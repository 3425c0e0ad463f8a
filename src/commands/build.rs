//! `cip build`: build every missing image for this machine's platform into the builder's local
//! store, tagged `REGISTRY/name:VERSION` and `latest` (no push).
use crate::options::RunOptions;
use crate::run::Mode;

pub fn run(args: &RunOptions, local_registry: &str) -> anyhow::Result<i32> {
    let mode = Mode::Store {
        registry: local_registry.to_string(),
    };
    super::building(args, mode)
}
