//! Probing the nodes of a farm: each node's engine is found and asked, all nodes at once, each
//! within the probe timeout, so one dead node costs the listing (and a run) that timeout at most,
//! not the sum of every node's.
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::node::Declared;
use super::route::{self, NodeReach};
use super::spec::{NodeKind, NodeSpec, Route};
use crate::builders::engines::NodeKeys;
use crate::builders::{self, emulation, Backend, NodeEnv};
use crate::platform::Platform;

pub use crate::config::{DEFAULT_PROBE, PROBE_SECONDS_ENV};

/// How a run probes its nodes: each within `timeout`, its engine found from the run's environment
/// `env`, what the kernel emulates read from `binfmt_dir` (see [`Probing::of`]).
#[derive(Debug, Clone)]
pub struct Probing {
    pub timeout: Duration,
    pub env: NodeEnv,
    pub binfmt_dir: PathBuf,
}

impl Probing {
    /// How the run's environment says to probe: within its probe timeout, each node from the
    /// environment the run started with.
    pub fn of(env: &crate::config::RunConfig) -> Probing {
        Probing {
            timeout: env.probe_timeout,
            env: env.local_node(),
            binfmt_dir: env.binfmt_dir.clone(),
        }
    }
}

impl Default for Probing {
    /// The defaults over the process environment as it is (a library user, a test).
    fn default() -> Self {
        Probing {
            timeout: DEFAULT_PROBE,
            env: NodeEnv::new(),
            binfmt_dir: emulation::BINFMT_DIR.into(),
        }
    }
}

/// Platforms a node may emulate, asked of the kernel's binfmt_misc.
const EMULATION_CANDIDATES: &[&str] = &[
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/386",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
];

/// A node as probed: what cip.toml says of it and what its engine answered.
#[derive(Debug, Clone, Serialize)]
pub struct FarmNode {
    pub name: String,
    pub kind: NodeKind,
    /// How cip reaches it: `unix:///...`, `ssh://...`, `context NAME`, `--url ...`, `local`.
    pub address: String,
    /// The line of cip.toml that declares it.
    pub line: usize,
    /// The engine, when the node answered.
    #[serde(skip)]
    pub backend: Option<Arc<dyn Backend>>,
    pub reachable: bool,
    /// Why it cannot be used, when it cannot.
    pub reason: Option<String>,
    /// The engine and its version, e.g. `docker 20.10.24 (BuildKit, unix:///run/a.sock)`.
    pub engine: Option<String>,
    pub version: Option<String>,
    pub cpus: Option<usize>,
    /// The platforms it builds without emulation: declared in cip.toml, else reported.
    pub native_platforms: Vec<Platform>,
    /// `declared` (cip.toml) or `reported` (by the engine).
    pub native_source: &'static str,
    /// What the engine itself reports.
    pub reported_platforms: Vec<Platform>,
    /// The platforms its kernel emulates (None: cip cannot tell for a node on another machine).
    pub emulates: Option<Vec<Platform>>,
    /// How many of its builds run at once: cip.toml's `jobs`, else its CPU count.
    pub jobs: usize,
    /// How its images reach the registry, and why.
    pub route: String,
    /// The route itself (`direct`, `through-cip`; null: it depends on the registry, unknown).
    pub push_route: Option<Route>,
    /// What the route is decided from.
    #[serde(skip)]
    pub reach: NodeReach,
}

impl FarmNode {
    /// Says the route its images take to a registry at `registry_host` (None: not known).
    pub fn set_route(&mut self, registry_host: Option<&str>) {
        if !self.reachable {
            return;
        }
        self.route = route::describe(self.reach, registry_host);
        self.push_route = match (self.reach, registry_host) {
            (r, _) if r.local || r.declared.is_some() => Some(route::decide(r, "")),
            (r, Some(host)) => Some(route::decide(r, host)),
            (_, None) => None,
        };
    }

    /// Whether the node can build `platform`, and whether natively.
    pub fn builds(&self, platform: &Platform) -> Option<bool> {
        if !self.reachable {
            return None;
        }
        if emulation::runs_natively(platform, &self.native_platforms) {
            return Some(true);
        }
        match &self.emulates {
            Some(e) if !e.contains(platform) => None,
            _ => Some(false),
        }
    }
}

/// Probes every node at once; each gets `timeout`, and one that does not answer within it is
/// listed as unreachable with that reason. The result keeps the nodes' order.
pub fn probe_all(nodes: &[(String, NodeSpec)], probing: &Probing) -> Vec<FarmNode> {
    let timeout = probing.timeout;
    let (tx, rx) = mpsc::channel();
    for (i, (name, spec)) in nodes.iter().enumerate() {
        let (tx, name, spec, probing) = (tx.clone(), name.clone(), spec.clone(), probing.clone());
        // A thread each: detection blocks on the engine's client, and a hung one is left behind.
        std::thread::spawn(move || {
            let _ = tx.send((i, probe_one(&name, &spec, &probing)));
        });
    }
    drop(tx);
    let deadline = Instant::now() + timeout;
    let mut found: Vec<Option<FarmNode>> = vec![None; nodes.len()];
    while found.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, node)) => found[i] = Some(node),
            Err(_) => break,
        }
    }
    found
        .into_iter()
        .zip(nodes)
        .map(|(node, (name, spec))| {
            node.unwrap_or_else(|| {
                unreachable(
                    name,
                    spec,
                    format!(
                        "no answer within {:.0}s (the probe timeout, {PROBE_SECONDS_ENV})",
                        timeout.as_secs_f64()
                    ),
                )
            })
        })
        .collect()
}

/// Where cip reaches the node, as shown; and the environment its engine runs with.
fn address_and_env(
    kind: NodeKind,
    spec: &NodeSpec,
    env: NodeEnv,
) -> Result<(String, NodeEnv), String> {
    let values = [&spec.host, &spec.context, &spec.url, &spec.connection];
    if let Some((v, why)) = values
        .into_iter()
        .flatten()
        .find_map(|v| Some((v, crate::config::file::option_like(v)?)))
    {
        return Err(format!("{v:?} {why}"));
    }
    let Some(engine) = kind.engine() else {
        return Err("auto is not a node kind: name the node's engine".into());
    };
    let (address, reached) = (engine.reach)(&NodeKeys {
        host: spec.host.as_deref(),
        context: spec.context.as_deref(),
        url: spec.url.as_deref(),
        connection: spec.connection.as_deref(),
    })?;
    // What the engine's keys set goes over the environment the run was given.
    let mut env = reached
        .overrides()
        .iter()
        .fold(env, |env, (k, v)| env.set(k.clone(), v.clone()));
    if let Some(args) = reached.global_args() {
        env = env.with_global_args(args.to_vec());
    }
    Ok((address, env))
}

fn unreachable(name: &str, spec: &NodeSpec, reason: String) -> FarmNode {
    let kind = spec.kind;
    let address =
        address_and_env(kind, spec, NodeEnv::default()).map_or_else(|_| "-".into(), |(a, _)| a);
    FarmNode {
        name: name.to_string(),
        kind,
        address,
        line: spec.line,
        backend: None,
        reachable: false,
        reason: Some(reason),
        engine: None,
        version: None,
        cpus: None,
        native_platforms: spec.platforms.clone().unwrap_or_default(),
        native_source: if spec.platforms.is_some() {
            "declared"
        } else {
            "reported"
        },
        reported_platforms: Vec::new(),
        emulates: None,
        jobs: spec.jobs.unwrap_or(0),
        route: "-".into(),
        push_route: None,
        reach: NodeReach {
            local: false,
            declared: spec.push,
        },
    }
}

fn probe_one(name: &str, spec: &NodeSpec, probing: &Probing) -> FarmNode {
    let kind = spec.kind;
    let found = address_and_env(kind, spec, probing.env.clone()).and_then(|(address, env)| {
        let backend = builders::detect_node(kind, env)?;
        Ok((address, backend))
    });
    let (address, backend) = match found {
        Ok(f) => f,
        Err(reason) => return unreachable(name, spec, reason),
    };
    let cpus = ask_cpus(backend.as_ref(), probing.timeout);
    let reported = backend.native_platforms();
    let native = spec.platforms.clone().unwrap_or_else(|| reported.clone());
    let is_local = is_local(&address);
    let emulates = is_local.then(|| emulated(&reported, &probing.binfmt_dir));
    let engine: Arc<dyn Backend> = match &spec.platforms {
        Some(declared) => Arc::new(Declared {
            inner: backend,
            native: declared.clone(),
        }),
        None => backend,
    };
    let reach = NodeReach {
        local: is_local,
        declared: spec.push,
    };
    let mut node = FarmNode {
        name: name.to_string(),
        kind,
        route: String::new(),
        push_route: None,
        reach,
        address,
        line: spec.line,
        reachable: true,
        reason: None,
        engine: Some(engine.describe()),
        version: Some(engine.version().to_string()),
        cpus,
        native_platforms: native,
        native_source: if spec.platforms.is_some() {
            "declared"
        } else {
            "reported"
        },
        reported_platforms: reported,
        emulates,
        // An engine's CPU count is its say, not a bound the scheduler can take as it is.
        jobs: spec
            .jobs
            .or(cpus)
            .unwrap_or(1)
            .clamp(1, crate::config::file::MAX_JOBS),
        backend: Some(engine),
    };
    node.set_route(None);
    node
}

/// Whether cip reaches the node's engine on this machine: the local buildah or podman, or a
/// daemon on a unix socket.
fn is_local(address: &str) -> bool {
    address == "local" || address.starts_with("unix://")
}

fn ask_cpus(backend: &dyn Backend, timeout: Duration) -> Option<usize> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    // Dropped at the timeout, the question's process group is ended.
    rt.block_on(async { tokio::time::timeout(timeout, backend.cpus()).await })
        .ok()?
        .ok()
        .flatten()
}

/// The platforms this machine's kernel emulates for an engine running `native`.
fn emulated(native: &[Platform], binfmt_dir: &std::path::Path) -> Vec<Platform> {
    EMULATION_CANDIDATES
        .iter()
        .filter_map(|p| p.parse::<Platform>().ok())
        .filter(|p| !emulation::runs_natively(p, native))
        .filter(|p| emulation::check_in(binfmt_dir, std::slice::from_ref(p), native).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::builders::BuilderKind;

    fn kind(name: &str) -> NodeKind {
        BuilderKind::engine_named(name).unwrap()
    }

    fn spec(kind: NodeKind) -> NodeSpec {
        NodeSpec {
            kind,
            host: None,
            context: None,
            url: None,
            connection: None,
            jobs: None,
            platforms: None,
            push: None,
            line: 1,
        }
    }

    #[test]
    fn addresses_and_their_mistakes() {
        let mut s = spec(kind("docker"));
        s.host = Some("ssh://b@amd-1".into());
        let (a, env) = address_and_env(kind("docker"), &s, NodeEnv::new()).unwrap();
        assert_eq!(a, "ssh://b@amd-1");
        assert_eq!(env.get("DOCKER_HOST").as_deref(), Some("ssh://b@amd-1"));
        s.host = Some("amd-1:2375".into());
        let e = address_and_env(kind("docker"), &s, NodeEnv::new()).unwrap_err();
        assert!(e.contains("not a docker address"), "{e}");
        s.context = Some("x".into());
        assert!(address_and_env(kind("docker"), &s, NodeEnv::new()).is_err());
        let mut p = spec(kind("podman"));
        p.url = Some("unix:///run/p.sock".into());
        let (_, env) = address_and_env(kind("podman"), &p, NodeEnv::new()).unwrap();
        assert_eq!(
            env.global_args(),
            Some(&["--url=unix:///run/p.sock".to_string()][..])
        );
        p.url = Some("unix:///run/a b.sock --hooks-dir=/tmp/evil".into());
        let (_, env) = address_and_env(kind("podman"), &p, NodeEnv::new()).unwrap();
        assert_eq!(env.global_args().map(<[String]>::len), Some(1));
        p.url = Some("--remote".into());
        assert!(address_and_env(kind("podman"), &p, NodeEnv::new())
            .unwrap_err()
            .contains("'-'"));
        let mut b = spec(kind("buildah"));
        b.url = Some("x".into());
        assert!(address_and_env(kind("buildah"), &b, NodeEnv::new()).is_err());
    }

    #[test]
    fn a_misdeclared_node_is_unreachable_with_the_fix() {
        let mut s = spec(kind("buildah"));
        s.connection = Some("far".into());
        let probed = probe_all(
            &[("n".to_string(), s)],
            &Probing {
                timeout: Duration::from_secs(5),
                ..Probing::default()
            },
        );
        assert!(!probed[0].reachable);
        assert!(probed[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("kind = \"podman\""));
    }
}
