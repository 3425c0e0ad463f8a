//! How a node's images reach the registry: pushed by the node itself (`direct`), so image data
//! does not travel through cip's machine, or brought back to cip, which pushes them
//! (`through-cip`). Decided per node when the plan is made; cip.toml's `push` overrides the
//! default.
use super::spec::Route;

/// What the decision knows of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeReach {
    /// The node is this machine's engine (a unix socket, the local buildah or podman).
    pub local: bool,
    /// cip.toml's `push`, if the node has one.
    pub declared: Option<Route>,
}

/// The route of a node's images to a registry at `registry_host` (`HOST[:PORT]`): the declared
/// one, else direct when the node is this machine's engine (it reaches what cip reaches) or the
/// registry is not on a loopback address (a node elsewhere cannot reach this machine's
/// localhost), else through cip.
pub fn decide(node: NodeReach, registry_host: &str) -> Route {
    match node.declared {
        Some(route) => route,
        None if node.local || !crate::registry::is_loopback(registry_host) => Route::Direct,
        None => Route::ThroughCip,
    }
}

/// Why: what `cip farm` says of the route. `registry_host` None: no registry is known (no
/// `--remote-registry`, `CIP_REMOTE_REGISTRY` or `[registry] remote`).
pub fn describe(node: NodeReach, registry_host: Option<&str>) -> String {
    let direct = "direct: the node pushes to a staging name in the registry, cip copies it \
                  registry-side (image data does not pass through this machine)";
    let through = "through cip: the image comes back to this machine and cip pushes it";
    match (node.declared, registry_host) {
        (Some(Route::Direct), _) => format!("{direct}; push = \"direct\" in cip.toml"),
        (Some(Route::ThroughCip), _) => format!("{through}; push = \"through-cip\" in cip.toml"),
        (None, _) if node.local => format!("{direct}; the node is this machine's engine"),
        (None, Some(host)) => match decide(node, host) {
            Route::Direct => format!("{direct}; the registry {host} is not on loopback"),
            Route::ThroughCip => format!(
                "{through}; the registry {host} is on this machine's loopback, which the node \
                 cannot reach"
            ),
        },
        (None, None) => "direct for a registry it can reach; through cip for one on this \
                         machine's loopback (give --remote-registry to know)"
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(local: bool, declared: Option<Route>) -> NodeReach {
        NodeReach { local, declared }
    }

    #[test]
    fn local_engines_and_reachable_registries_go_direct_unless_declared() {
        assert_eq!(decide(node(true, None), "127.0.0.1:5000"), Route::Direct);
        assert_eq!(
            decide(node(false, None), "127.0.0.1:5000"),
            Route::ThroughCip
        );
        assert_eq!(
            decide(node(false, None), "localhost:5000"),
            Route::ThroughCip
        );
        assert_eq!(decide(node(false, None), "reg.example"), Route::Direct);
        let through = node(true, Some(Route::ThroughCip));
        assert_eq!(decide(through, "reg.example"), Route::ThroughCip);
        let direct = node(false, Some(Route::Direct));
        assert_eq!(decide(direct, "127.0.0.1:5000"), Route::Direct);
    }

    #[test]
    fn the_listing_says_why() {
        let far = node(false, None);
        assert!(describe(far, Some("127.0.0.1:5000")).starts_with("through cip"));
        assert!(describe(far, Some("reg.example")).starts_with("direct"));
        assert!(describe(far, None).contains("--remote-registry"));
        let s = describe(node(false, Some(Route::ThroughCip)), Some("reg.example"));
        assert!(s.ends_with("push = \"through-cip\" in cip.toml"), "{s}");
        assert!(describe(node(true, None), None).ends_with("this machine's engine"));
    }
}
