//! `cip status`: per image, its version, what the registry holds, and whether its context drifted
//! since that version was published.
use futures_util::FutureExt as _;

use super::{load_valid, print_json};
use crate::bases::resolve::{resolve, Connect, Mirrors};
use crate::options::{ConnectOptions, ProjectOptions, TargetOptions, Targets};
use crate::plan;
use crate::session::{runtime, Session};

pub fn run(
    project: &ProjectOptions,
    target: &TargetOptions,
    json: bool,
    targets: &Targets,
) -> anyhow::Result<i32> {
    let loaded = load_valid(project)?;
    let (destination, planned) = crate::run::status(&loaded, project, target, targets)?;
    if json {
        print_json(&plan::to_json(&loaded, &destination, &planned))?;
    } else {
        print!("{}", plan::render_status(&planned.images));
        print!("{}", plan::drift_report(&planned.images));
    }
    Ok(0)
}

/// `cip status --bases`: every external base of the tree with the digest its registry (or the
/// mirror cip.toml names for its host) gives now, and the images on it. Each registry is asked
/// with the credentials cip has for its host.
pub fn bases(
    project: &ProjectOptions,
    connect: &ConnectOptions,
    mirrors: &Mirrors,
    concurrency: usize,
    json: bool,
) -> anyhow::Result<i32> {
    let loaded = load_valid(project)?;
    let found = crate::bases::collect(&loaded.project);
    let open: &Connect = &|address: String| {
        let c = connect.clone();
        async move { Ok(Session::open(&address, &c, &c.events).await?.registry) }.boxed()
    };
    let resolved = runtime()?.block_on(resolve(&found.to_resolve(), mirrors, open, concurrency));
    if json {
        print_json(&crate::bases::report::to_json(&found, &resolved, mirrors))?;
    } else {
        print!("{}", crate::bases::report::render(&found, &resolved));
    }
    Ok(0)
}
