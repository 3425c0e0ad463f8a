//! `cip farm`: the build nodes of cip.toml, each probed: reachable or why not, engine, native
//! platforms (declared or reported), what it emulates, job limit, and how its images reach the
//! registry.
use super::print_json;
use crate::farm::{self, Selection};
use crate::options::ProjectOptions;

pub fn run(
    project: &ProjectOptions,
    farm_name: Option<String>,
    nodes: Vec<String>,
    json: bool,
    registry: Option<&str>,
    probing: &farm::probe::Probing,
) -> anyhow::Result<i32> {
    let selection = match (farm_name, nodes.is_empty()) {
        (Some(f), _) => Selection::Farm(f),
        (None, false) => Selection::Nodes(nodes),
        (None, true) => Selection::All,
    };
    let host = match registry {
        Some(r) => Some(crate::registry::Endpoint::parse(r)?.host),
        None => None,
    };
    let probed = farm::probe_selection(&project.dir, &selection, host.as_deref(), probing)?;
    if probed.is_empty() {
        eprintln!("cip.toml declares no build nodes: add a [nodes.NAME] table (see docs/farm.md)");
        return Ok(0);
    }
    if json {
        print_json(&serde_json::json!({ "schema_version": 1, "nodes": probed }))?;
    } else {
        print!("{}", farm::render(&probed));
    }
    // Every node unreachable is a failure of the listing; some are the listing's news.
    Ok(
        if !probed.is_empty() && probed.iter().all(|n| !n.reachable) {
            1
        } else {
            0
        },
    )
}
