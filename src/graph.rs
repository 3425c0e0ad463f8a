//! The dependency DAG of a project (edges parent -> child) and everything derived from it: validation,
//! build order, layers, descendants and the critical path. [`render`] draws it.
pub mod render;

use std::collections::{BTreeSet, HashMap};

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::diagnostics::{edit_distance, short, Problem};
use crate::platform::Platform;
use crate::project::dockerfile::{kind_label, RefKind, RegistryRef};
use crate::project::{Context, Project};

/// Why a child depends on a parent: the first reference to it in the child's Dockerfile.
#[derive(Debug, Clone)]
pub struct Edge {
    pub kind: RefKind,
    pub line: usize,
    pub tag: Option<String>,
}

/// The dependency graph. Node weights are indexes into `Project::contexts`.
#[derive(Debug, Clone)]
pub struct Graph {
    pub dag: DiGraph<usize, Edge>,
    by_name: HashMap<String, NodeIndex>,
    /// Topological order (parents first, ties by directory name); None if there is a cycle.
    topo: Option<Vec<NodeIndex>>,
}

impl Graph {
    /// Builds the graph from the references between contexts. References to unknown images are left out
    /// (`validate` reports them).
    pub fn build(project: &Project) -> Graph {
        let mut dag = DiGraph::new();
        let mut by_name = HashMap::new();
        for (i, ctx) in project.contexts.iter().enumerate() {
            by_name.insert(ctx.name.clone(), dag.add_node(i));
        }
        for (i, ctx) in project.contexts.iter().enumerate() {
            let child = NodeIndex::new(i);
            let mut seen = BTreeSet::new();
            for r in &ctx.refs.registry_refs {
                if let Some(&parent) = by_name.get(&r.name) {
                    if seen.insert(parent) {
                        let edge = Edge {
                            kind: r.kind,
                            line: r.line,
                            tag: r.tag.clone(),
                        };
                        dag.add_edge(parent, child, edge);
                    }
                }
            }
        }
        let topo = stable_toposort(&dag);
        Graph { dag, by_name, topo }
    }

    pub fn node(&self, name: &str) -> Option<NodeIndex> {
        self.by_name.get(name).copied()
    }

    pub fn has_cycle(&self) -> bool {
        self.topo.is_none()
    }

    /// Context indexes, parents before children. Empty if the graph has a cycle.
    pub fn order(&self) -> Vec<usize> {
        self.topo.iter().flatten().map(|&n| self.dag[n]).collect()
    }

    pub fn parents(&self, ctx: usize) -> Vec<usize> {
        self.neighbors(ctx, Direction::Incoming)
    }

    pub fn children(&self, ctx: usize) -> Vec<usize> {
        self.neighbors(ctx, Direction::Outgoing)
    }

    fn neighbors(&self, ctx: usize, dir: Direction) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .dag
            .neighbors_directed(NodeIndex::new(ctx), dir)
            .map(|n| self.dag[n])
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Every context `ctx` builds on, through parents, in topological order.
    pub fn ancestors(&self, ctx: usize) -> Vec<usize> {
        let mut reach = BTreeSet::new();
        let mut stack = vec![ctx];
        while let Some(n) = stack.pop() {
            for p in self.parents(n) {
                if reach.insert(p) {
                    stack.push(p);
                }
            }
        }
        self.order()
            .into_iter()
            .filter(|c| reach.contains(c))
            .collect()
    }

    /// Every context reachable from `ctx` through children, in topological order.
    pub fn descendants(&self, ctx: usize) -> Vec<usize> {
        let mut reach = BTreeSet::new();
        let mut stack = vec![ctx];
        while let Some(n) = stack.pop() {
            for c in self.children(n) {
                if reach.insert(c) {
                    stack.push(c);
                }
            }
        }
        self.order()
            .into_iter()
            .filter(|c| reach.contains(c))
            .collect()
    }

    /// Build batches: layer 0 has no parents, layer k's deepest parent is in layer k-1.
    pub fn layers(&self) -> Vec<Vec<usize>> {
        let mut depth = vec![0usize; self.dag.node_count()];
        for n in self.topo.iter().flatten() {
            let d = self
                .dag
                .neighbors_directed(*n, Direction::Incoming)
                .map(|p| depth[p.index()] + 1)
                .max()
                .unwrap_or(0);
            depth[n.index()] = d;
        }
        let mut layers: Vec<Vec<usize>> = Vec::new();
        for n in self.topo.iter().flatten() {
            let d = depth[n.index()];
            if layers.len() <= d {
                layers.resize(d + 1, Vec::new());
            }
            layers[d].push(self.dag[*n]);
        }
        layers
    }

    /// The heaviest chain of dependencies with the given cost per context (1.0 each: the longest chain).
    /// No schedule can finish faster than the sum of its costs. Returns the chain and its cost.
    pub fn critical_path(&self, cost: impl Fn(usize) -> f64) -> (Vec<usize>, f64) {
        let n = self.dag.node_count();
        let mut best = vec![0.0f64; n];
        let mut prev: Vec<Option<NodeIndex>> = vec![None; n];
        for node in self.topo.iter().flatten() {
            let from = self
                .dag
                .neighbors_directed(*node, Direction::Incoming)
                .max_by(|a, b| best[a.index()].total_cmp(&best[b.index()]));
            let base = from.map_or(0.0, |p| best[p.index()]);
            best[node.index()] = base + cost(self.dag[*node]);
            prev[node.index()] = from;
        }
        let Some(end) = (0..n).max_by(|&a, &b| best[a].total_cmp(&best[b])) else {
            return (Vec::new(), 0.0);
        };
        let mut path = vec![self.dag[NodeIndex::new(end)]];
        let mut cur = NodeIndex::new(end);
        while let Some(p) = prev[cur.index()] {
            path.push(self.dag[p]);
            cur = p;
        }
        path.reverse();
        (path, best[end])
    }

    /// The edges that lie on a cycle, as `(parent, child)` context indexes: both ends are in one
    /// strongly connected component (the child reaches the parent again), or the edge is a loop.
    pub fn cycle_edges(&self) -> BTreeSet<(usize, usize)> {
        let mut component = vec![0; self.dag.node_count()];
        for (i, scc) in tarjan_scc(&self.dag).into_iter().enumerate() {
            for n in scc {
                component[n.index()] = i;
            }
        }
        self.dag
            .edge_references()
            .filter(|e| component[e.source().index()] == component[e.target().index()])
            .map(|e| (self.dag[e.source()], self.dag[e.target()]))
            .collect()
    }

    /// The edges that close a cycle: those a depth-first walk (from the contexts in directory
    /// order) finds pointing back to a context it is still inside of, as `(parent, child)` context
    /// indexes. Without them any graph is a DAG again, and one that keeps every other edge: the
    /// order and layers of a graph with a cycle, to draw it by. Empty when there is no cycle.
    pub fn back_edges(&self) -> BTreeSet<(usize, usize)> {
        #[derive(Clone, Copy, PartialEq)]
        enum State {
            New,
            Open,
            Done,
        }
        let mut state = vec![State::New; self.dag.node_count()];
        let mut back = BTreeSet::new();
        for root in self.dag.node_indices() {
            if state[root.index()] != State::New {
                continue;
            }
            state[root.index()] = State::Open;
            // Each open node with the children it has yet to visit.
            let mut stack = vec![(root, self.sorted_children(root))];
            while let Some((node, pending)) = stack.last_mut() {
                let node = *node;
                match pending.pop() {
                    Some(child) => match state[child.index()] {
                        State::Open => {
                            back.insert((self.dag[node], self.dag[child]));
                        }
                        State::New => {
                            state[child.index()] = State::Open;
                            let next = self.sorted_children(child);
                            stack.push((child, next));
                        }
                        State::Done => {}
                    },
                    None => {
                        state[node.index()] = State::Done;
                        stack.pop();
                    }
                }
            }
        }
        back
    }

    /// The children of `n`, the first (in directory order) last, to be popped first.
    fn sorted_children(&self, n: NodeIndex) -> Vec<NodeIndex> {
        let mut v: Vec<NodeIndex> = self.dag.neighbors(n).collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v.dedup();
        v
    }

    /// This graph without `edges` (`(parent, child)` context indexes), e.g. its
    /// [`Self::back_edges`].
    pub fn without(&self, edges: &BTreeSet<(usize, usize)>) -> Graph {
        let mut dag = self.dag.clone();
        dag.retain_edges(|g, e| {
            let (parent, child) = g.edge_endpoints(e).expect("an edge of this graph");
            !edges.contains(&(g[parent], g[child]))
        });
        let topo = stable_toposort(&dag);
        Graph {
            dag,
            by_name: self.by_name.clone(),
            topo,
        }
    }

    /// Each cycle as the list of context indexes along it (first repeated at the end implicitly).
    pub fn cycles(&self) -> Vec<Vec<usize>> {
        tarjan_scc(&self.dag)
            .into_iter()
            .filter(|scc| scc.len() > 1 || self.dag.contains_edge(scc[0], scc[0]))
            .map(|scc| self.cycle_path(&scc))
            .collect()
    }

    /// A concrete cycle through the strongly connected component, starting at its smallest member.
    fn cycle_path(&self, scc: &[NodeIndex]) -> Vec<usize> {
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        let start = *members.iter().min().expect("non-empty component");
        // Depth-first walk inside the component until we get back to start.
        let mut path = vec![start];
        let mut visited = BTreeSet::from([start]);
        fn walk(
            g: &Graph,
            members: &BTreeSet<NodeIndex>,
            start: NodeIndex,
            path: &mut Vec<NodeIndex>,
            visited: &mut BTreeSet<NodeIndex>,
        ) -> bool {
            let cur = *path.last().expect("path starts non-empty");
            let mut next: Vec<NodeIndex> = g
                .dag
                .neighbors(cur)
                .filter(|n| members.contains(n))
                .collect();
            next.sort();
            for n in next {
                if n == start {
                    return true;
                }
                if visited.insert(n) {
                    path.push(n);
                    if walk(g, members, start, path, visited) {
                        return true;
                    }
                    path.pop();
                }
            }
            false
        }
        walk(self, &members, start, &mut path, &mut visited);
        path.into_iter().map(|n| self.dag[n]).collect()
    }
}

/// Kahn's algorithm with a sorted ready set, so the order is deterministic (by directory name).
fn stable_toposort(dag: &DiGraph<usize, Edge>) -> Option<Vec<NodeIndex>> {
    toposort(dag, None).ok()?;
    let mut indegree: Vec<usize> = dag
        .node_indices()
        .map(|n| dag.neighbors_directed(n, Direction::Incoming).count())
        .collect();
    let mut ready: BTreeSet<NodeIndex> = dag
        .node_indices()
        .filter(|n| indegree[n.index()] == 0)
        .collect();
    let mut out = Vec::with_capacity(dag.node_count());
    while let Some(n) = ready.pop_first() {
        out.push(n);
        for e in dag.edges_directed(n, Direction::Outgoing) {
            let c = e.target();
            indegree[c.index()] -= 1;
            if indegree[c.index()] == 0 {
                ready.insert(c);
            }
        }
    }
    Some(out)
}

/// Every problem of the project's graph, besides those found while scanning.
pub fn validate(project: &Project, graph: &Graph, default_platforms: &[Platform]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for ctx in &project.contexts {
        for r in &ctx.refs.registry_refs {
            problems.extend(check_reference(project, graph, ctx, r));
        }
    }
    for cycle in graph.cycles() {
        problems.push(cycle_problem(project, &cycle));
    }
    for e in graph.dag.edge_references() {
        let parent = &project.contexts[graph.dag[e.source()]];
        let child = &project.contexts[graph.dag[e.target()]];
        problems.extend(order_problem(parent, child, e.weight()));
        problems.extend(platform_problem(
            parent,
            child,
            e.weight(),
            default_platforms,
        ));
    }
    problems
}

fn check_reference(
    project: &Project,
    graph: &Graph,
    ctx: &Context,
    r: &RegistryRef,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let here = |p: Problem| p.at(&ctx.dockerfile, Some(r.line));
    if !r.registry_in_scope {
        out.push(here(Problem::warning(
            "registry-out-of-scope",
            format!(
                "${{REGISTRY}} in this {} is not declared in its stage: builders expand it to an empty string",
                kind_label(r.kind)
            ),
        ))
        .hint(match r.kind {
            RefKind::From => "declare `ARG REGISTRY` before the first FROM",
            _ => "add `ARG REGISTRY` after the FROM line of this stage",
        }));
    }
    let Some(node) = graph.node(&r.name) else {
        if !project.unreadable.contains(&r.name) {
            out.push(
                here(Problem::error(
                    "unknown-image",
                    format!(
                        "${{REGISTRY}}/{} is not a context of this project",
                        short(&r.name)
                    ),
                ))
                .hint(unknown_hint(project, &r.name)),
            );
        }
        return out;
    };
    let parent = &project.contexts[graph.dag[node]];
    if parent.name == ctx.name {
        return out; // reported as a cycle
    }
    let current = parent.version.to_string();
    match (&r.tag, &r.digest) {
        (None, None) => out.push(
            here(Problem::warning(
                "untagged-reference",
                format!("{} is referenced without a tag (it means `latest`)", r.name),
            ))
            .hint(format!("pin it: ${{REGISTRY}}/{}:{current}", r.name)),
        ),
        (Some(tag), _) if *tag != current => out.push(
            here(Problem::warning(
                "stale-reference",
                format!(
                    "refers to {}:{} but {} is at version {current}",
                    r.name,
                    short(tag),
                    parent.dir_name
                ),
            ))
            .hint(
                "run `cip cascade-version-updates` to move every reference to the current versions",
            ),
        ),
        _ => {}
    }
    out
}

fn unknown_hint(project: &Project, name: &str) -> String {
    let closest = project
        .contexts
        .iter()
        .map(|c| (edit_distance(&c.name, name), &c.name))
        .filter(|(d, _)| *d <= 3)
        .min();
    match closest {
        Some((_, n)) => format!("did you mean {n:?}? (a context directory NN-{n} exists)"),
        None => format!(
            "add a context directory contexts/NN-{}, or refer to an external image without ${{REGISTRY}}",
            short(name)
        ),
    }
}

fn cycle_problem(project: &Project, cycle: &[usize]) -> Problem {
    let mut names: Vec<&str> = cycle
        .iter()
        .map(|&i| project.contexts[i].dir_name.as_str())
        .collect();
    names.push(names[0]);
    let first = &project.contexts[cycle[0]];
    Problem::error(
        "cycle",
        format!("dependency cycle (parent -> child): {}", names.join(" -> ")),
    )
    .at(&first.dockerfile, None)
    .hint("an image cannot be built from itself: remove one of these references")
}

fn order_problem(parent: &Context, child: &Context, edge: &Edge) -> Option<Problem> {
    let (Some(po), Some(co)) = (parent.order, child.order) else {
        return None;
    };
    (co <= po && parent.name != child.name).then(|| {
        Problem::error(
            "order",
            format!(
                "{} depends on {} but its prefix is not greater ({co} <= {po})",
                child.dir_name, parent.dir_name
            ),
        )
        .at(&child.dockerfile, Some(edge.line))
        .hint(format!(
            "renumber {} to a prefix above {po}, so the declared order matches the dependencies",
            child.dir_name
        ))
    })
}

fn platform_problem(
    parent: &Context,
    child: &Context,
    edge: &Edge,
    defaults: &[Platform],
) -> Option<Problem> {
    let available = parent.platforms_or(defaults);
    let missing: Vec<String> = child
        .platforms_or(defaults)
        .iter()
        .filter(|p| !available.contains(p))
        .map(|p| p.to_string())
        .collect();
    (!missing.is_empty() && parent.name != child.name).then(|| {
        Problem::error(
            "platform-missing-in-parent",
            format!(
                "{} is built for {} but its parent {} is not",
                child.dir_name,
                missing.join(", "),
                parent.dir_name
            ),
        )
        .at(&child.dockerfile, Some(edge.line))
        .hint(format!(
            "add {} to :platforms of {}, or remove it from {}",
            missing.join(", "),
            parent.dir_name,
            child.dir_name
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A project of contexts `NN-name` whose Dockerfiles are FROM `${REGISTRY}/parent` each.
    fn project(dir: &Path, from: &[(&str, &str)]) -> Project {
        for (ctx, parent) in from {
            let d = dir.join("contexts").join(ctx);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("Dockerfile"),
                format!("ARG REGISTRY\nFROM ${{REGISTRY}}/{parent}:1.0.0\n"),
            )
            .unwrap();
            std::fs::write(d.join("info.edn"), "{:version \"1.0.0\"}\n").unwrap();
        }
        crate::project::scan(dir).unwrap()
    }

    #[test]
    fn without_the_edges_closing_cycles_a_graph_keeps_its_other_edges_in_order() {
        let dir = tempfile::tempdir().unwrap();
        // a -> b -> c -> a, and d on b, outside the cycle; e on itself.
        let p = project(
            dir.path(),
            &[
                ("00-a", "c"),
                ("01-b", "a"),
                ("02-c", "b"),
                ("03-d", "b"),
                ("04-e", "e"),
            ],
        );
        let g = Graph::build(&p);
        assert!(g.has_cycle());
        let (a, b, c, d, e) = (0, 1, 2, 3, 4);
        assert_eq!(
            g.cycle_edges(),
            BTreeSet::from([(a, b), (b, c), (c, a), (e, e)])
        );
        // The walk from a finds c -> a pointing back, then e -> e.
        assert_eq!(g.back_edges(), BTreeSet::from([(c, a), (e, e)]));
        let acyclic = g.without(&g.back_edges());
        assert!(!acyclic.has_cycle());
        assert_eq!(acyclic.layers(), vec![vec![a, e], vec![b], vec![c, d]]);
        assert_eq!(acyclic.parents(d), vec![b]);
    }

    #[test]
    fn a_graph_without_a_cycle_has_no_cycle_edges() {
        let dir = tempfile::tempdir().unwrap();
        let p = project(dir.path(), &[("00-a", "debian"), ("01-b", "a")]);
        let g = Graph::build(&p);
        assert!(g.cycle_edges().is_empty() && g.back_edges().is_empty());
    }
}
