//! The nodes and farms a project declares (`[nodes.NAME]`, `[farms.NAME]` in cip.toml), as the
//! farm needs them, and the choice of nodes a run makes (`--farm NAME` or `--node A,B`).
use std::collections::BTreeMap;

use anyhow::bail;

pub use crate::config::file::{FarmSpec, NodeKind, NodeSpec, Route};

/// Which nodes a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// `--farm NAME`.
    Farm(String),
    /// `--node A,B`.
    Nodes(Vec<String>),
    /// Every node cip.toml declares (`cip farm` without flags).
    All,
}

/// The declared nodes a selection names, in its order, each with its name.
pub fn select(
    nodes: &BTreeMap<String, NodeSpec>,
    farms: &BTreeMap<String, FarmSpec>,
    selection: &Selection,
    file: &str,
) -> anyhow::Result<Vec<(String, NodeSpec)>> {
    let names: Vec<String> = match selection {
        Selection::All => nodes.keys().cloned().collect(),
        Selection::Nodes(names) => names.clone(),
        Selection::Farm(farm) => match farms.get(farm) {
            Some(f) => f.nodes.clone(),
            None => bail!(
                "no farm {farm:?} in {file}; {}",
                known("farms", farms.keys(), "[farms.NAME] with nodes = [...]")
            ),
        },
    };
    let mut out = Vec::new();
    for name in names {
        match nodes.get(&name) {
            Some(spec) if !out.iter().any(|(n, _)| *n == name) => out.push((name, spec.clone())),
            Some(_) => {}
            None => bail!(
                "no node {name:?} in {file}; {}",
                crate::config::file::unknown_node_hint(&name, nodes)
            ),
        }
    }
    if out.is_empty() && *selection != Selection::All {
        bail!("no nodes selected: name at least one node of {file}");
    }
    Ok(out)
}

fn known<'a>(what: &str, names: impl Iterator<Item = &'a String>, how: &str) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        format!("it declares no {what} (add a {how} table)")
    } else {
        format!("it declares {what} {}", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> (BTreeMap<String, NodeSpec>, BTreeMap<String, FarmSpec>) {
        let node = |line| NodeSpec {
            kind: NodeKind::engine_named("docker").unwrap(),
            host: None,
            context: None,
            url: None,
            connection: None,
            jobs: None,
            platforms: None,
            push: None,
            line,
        };
        let nodes = BTreeMap::from([("a".to_string(), node(1)), ("b".to_string(), node(5))]);
        let farms = BTreeMap::from([(
            "ci".to_string(),
            FarmSpec {
                nodes: vec!["b".into(), "a".into()],
                line: 9,
            },
        )]);
        (nodes, farms)
    }

    #[test]
    fn a_farm_names_its_nodes_in_its_order() {
        let (nodes, farms) = specs();
        let picked = select(&nodes, &farms, &Selection::Farm("ci".into()), "cip.toml").unwrap();
        let names: Vec<&str> = picked.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        let picked = select(
            &nodes,
            &farms,
            &Selection::Nodes(vec!["a".into(), "a".into()]),
            "cip.toml",
        )
        .unwrap();
        assert_eq!(picked.len(), 1);
    }

    #[test]
    fn unknown_names_list_what_is_declared() {
        let (nodes, farms) = specs();
        let e = select(&nodes, &farms, &Selection::Farm("x".into()), "p/cip.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no farm \"x\" in p/cip.toml; it declares farms ci"
        );
        let e = select(
            &nodes,
            &farms,
            &Selection::Nodes(vec!["c".into()]),
            "p/cip.toml",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "no node \"c\" in p/cip.toml; did you mean \"a\"?"
        );
    }
}
