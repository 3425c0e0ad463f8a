//! The farm: build nodes declared in cip.toml (`[nodes.NAME]`, `[farms.NAME]`), each an existing
//! engine (a docker daemon, a podman service, the local buildah or podman), probed concurrently
//! ([`probe`]); the plan places each step on one of them ([`place`]). See docs/farm.md.
pub mod node;
pub mod place;
pub mod probe;
pub mod route;
pub mod spec;

pub use probe::FarmNode;
pub use spec::{FarmSpec, NodeKind, NodeSpec, Route, Selection};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::bail;

/// What cip.toml declares for the farm: its nodes and farms, and the file's path for messages.
pub struct Declared {
    pub nodes: BTreeMap<String, NodeSpec>,
    pub farms: BTreeMap<String, FarmSpec>,
    pub path: PathBuf,
}

/// The nodes and farms of the project's cip.toml; an error naming the file when there is none.
pub fn declared(project_dir: &Path) -> anyhow::Result<Declared> {
    match project_file(project_dir)? {
        Some(d) => Ok(d),
        None => bail!(
            "{} does not exist: declare build nodes there ([nodes.NAME] with kind = \"docker\" and \
             host = \"unix:///...\"; see docs/farm.md)",
            project_dir.join("cip.toml").display()
        ),
    }
}

/// The farm's part of the project's cip.toml, if there is one.
fn project_file(project_dir: &Path) -> anyhow::Result<Option<Declared>> {
    let file = crate::config::file::ProjectFile::load(project_dir)?;
    Ok(file.map(|f| Declared {
        nodes: f.nodes,
        farms: f.farms,
        path: f.path,
    }))
}

/// The nodes `selection` names, probed (all at once, each within the probe timeout), each with
/// the route its images take to a registry at `registry_host` (None: not known).
pub fn probe_selection(
    project_dir: &Path,
    selection: &Selection,
    registry_host: Option<&str>,
    probing: &probe::Probing,
) -> anyhow::Result<Vec<FarmNode>> {
    let d = declared(project_dir)?;
    let file = d.path.display().to_string();
    let chosen = spec::select(&d.nodes, &d.farms, selection, &file)?;
    let mut nodes = probe::probe_all(&chosen, probing);
    for n in &mut nodes {
        n.set_route(registry_host);
    }
    Ok(nodes)
}

/// The listing of `cip farm`: a block per node.
pub fn render(nodes: &[FarmNode]) -> String {
    let mut out = String::new();
    for n in nodes {
        out.push_str(&format!("{}  {}  {}\n", n.name, n.kind.name(), n.address));
        if !n.reachable {
            let why = n.reason.as_deref().unwrap_or("unknown");
            out.push_str(&format!("  unreachable: {why}\n"));
            continue;
        }
        out.push_str(&format!(
            "  reachable: {}\n",
            n.engine.as_deref().unwrap_or("-")
        ));
        out.push_str(&format!(
            "  native: {} ({}); emulates: {}\n",
            platforms(&n.native_platforms),
            match n.native_source {
                "declared" => format!(
                    "declared in cip.toml; the node reports {}",
                    platforms(&n.reported_platforms)
                ),
                _ => "reported by the node".to_string(),
            },
            n.emulates.as_ref().map_or_else(
                || "unknown (a node on another machine)".into(),
                |e| platforms(e)
            ),
        ));
        let cpus = n.cpus.map_or_else(|| "?".into(), |c| c.to_string());
        out.push_str(&format!("  jobs: {} ({cpus} CPUs)\n", n.jobs));
        out.push_str(&format!("  route: {}\n", n.route));
    }
    out
}

fn platforms(ps: &[crate::platform::Platform]) -> String {
    if ps.is_empty() {
        return "-".into();
    }
    ps.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
