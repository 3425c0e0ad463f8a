//! Drawing the dependency graph for `cip graph`: build batches and critical path (text), DOT,
//! Mermaid and JSON (docs/json.md).
//!
//! A graph with a cycle is drawn too (that is when one needs to see it): the edges on a cycle are
//! marked in every format, and the batches, the order and the critical path are those of the graph
//! without the edges that close each cycle ([`Graph::back_edges`]).
use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::{json, Value};

use super::Graph;
use crate::platform::Platform;
use crate::project::dockerfile::RefKind;
use crate::project::{Context, Project};

/// The base image that is no image: never drawn.
const SCRATCH: &str = "scratch";

/// What the formats draw from: the project, its graph, and the graph without its cycle edges.
pub struct Drawing<'a> {
    contexts: &'a [Context],
    graph: &'a Graph,
    defaults: &'a [Platform],
    /// `(parent, child)` context indexes of the edges on a cycle.
    cycle_edges: BTreeSet<(usize, usize)>,
    /// The graph without the edges that close a cycle: a DAG, whatever the project.
    acyclic: Graph,
}

/// One line between two nodes of a drawing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Line {
    parent: Node,
    child: usize,
    /// COPY --from / RUN --mount from=: the child uses files of the parent, not its filesystem.
    dashed: bool,
    in_cycle: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Node {
    Context(usize),
    /// An image from outside the project (`debian:bookworm`).
    External(String),
}

impl<'a> Drawing<'a> {
    pub fn new(project: &'a Project, graph: &'a Graph, defaults: &'a [Platform]) -> Self {
        let cycle_edges = graph.cycle_edges();
        let acyclic = graph.without(&graph.back_edges());
        Drawing {
            contexts: &project.contexts,
            graph,
            defaults,
            cycle_edges,
            acyclic,
        }
    }

    /// Each cycle as names, the first repeated at the end: `a -> b -> a`.
    pub fn cycles(&self) -> Vec<String> {
        self.graph
            .cycles()
            .iter()
            .map(|cycle| {
                let mut names: Vec<&str> = cycle.iter().map(|&c| self.name(c)).collect();
                names.push(names[0]);
                names.join(" -> ")
            })
            .collect()
    }

    fn name(&self, c: usize) -> &str {
        &self.contexts[c].name
    }

    fn in_cycle(&self, parent: usize, child: usize) -> bool {
        self.cycle_edges.contains(&(parent, child))
    }

    fn platforms(&self, ctx: &Context) -> String {
        let list: Vec<String> = ctx
            .platforms_or(self.defaults)
            .iter()
            .map(|p| p.to_string())
            .collect();
        list.join(", ")
    }

    /// Every line to draw, one per parent and kind (solid FROM, dashed file use), in drawing order.
    fn lines(&self) -> Vec<Line> {
        let mut lines = BTreeSet::new();
        for c in self.acyclic.order() {
            let refs = &self.contexts[c].refs;
            for r in &refs.registry_refs {
                if let Some(p) = self.graph.node(&r.name).map(|n| self.graph.dag[n]) {
                    lines.insert(Line {
                        parent: Node::Context(p),
                        child: c,
                        dashed: r.kind != RefKind::From,
                        in_cycle: self.in_cycle(p, c),
                    });
                }
            }
            for e in refs.external.iter().filter(|e| e.image != SCRATCH) {
                lines.insert(Line {
                    parent: Node::External(e.image.clone()),
                    child: c,
                    dashed: e.kind != RefKind::From,
                    in_cycle: false,
                });
            }
        }
        let rank = self.rank();
        let mut lines: Vec<Line> = lines.into_iter().collect();
        lines.sort_by_key(|l| (rank[l.child], l.parent.clone(), l.dashed));
        lines
    }

    /// Each context's position in the drawing order.
    fn rank(&self) -> Vec<usize> {
        let mut rank = vec![0; self.contexts.len()];
        for (i, c) in self.acyclic.order().into_iter().enumerate() {
            rank[c] = i;
        }
        rank
    }

    /// External images, each once, in the order they are first used.
    fn externals(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for l in self.lines() {
            if let Node::External(image) = l.parent {
                if !seen.contains(&image) {
                    seen.push(image);
                }
            }
        }
        seen
    }

    /// Build batches, parents after each image, the cycles, and the critical path.
    pub fn text(&self) -> String {
        let layers = self.acyclic.layers();
        let mut out = String::new();
        let _ = write!(
            out,
            "{} images in {} build batches",
            self.contexts.len(),
            layers.len()
        );
        if !self.cycle_edges.is_empty() {
            out.push_str(" (as if the edge closing each cycle were not there)");
        }
        out.push('\n');
        for (i, layer) in layers.iter().enumerate() {
            let _ = writeln!(out, "batch {i}:");
            for &c in layer {
                let ctx = &self.contexts[c];
                let parents: Vec<String> = self
                    .graph
                    .parents(c)
                    .iter()
                    .map(|&p| match self.in_cycle(p, c) {
                        true => format!("{} (cycle)", self.name(p)),
                        false => self.name(p).to_string(),
                    })
                    .collect();
                let from = if parents.is_empty() {
                    String::new()
                } else {
                    format!("  <- {}", parents.join(", "))
                };
                let _ = writeln!(
                    out,
                    "  {} {} [{}]{from}",
                    ctx.name,
                    ctx.version,
                    self.platforms(ctx)
                );
            }
        }
        for cycle in self.cycles() {
            let _ = writeln!(out, "cycle: {cycle}");
        }
        let (path, _) = self.acyclic.critical_path(|_| 1.0);
        let names: Vec<&str> = path.iter().map(|&c| self.name(c)).collect();
        let _ = writeln!(
            out,
            "critical path ({} images): {}",
            names.len(),
            names.join(" -> ")
        );
        out
    }

    /// Graphviz: images as boxes, external images as plain text, FROM solid, COPY --from and
    /// RUN --mount from= dashed, cycle edges red, and a legend.
    pub fn dot(&self) -> String {
        let mut out = String::from("digraph cip {\n  rankdir=LR;\n  node [shape=box];\n");
        for c in self.acyclic.order() {
            let ctx = &self.contexts[c];
            let label = format!("{}\n{}\n{}", ctx.name, ctx.version, self.platforms(ctx));
            let _ = writeln!(out, "  {} [label={}];", dot_id(&ctx.name), dot_id(&label));
        }
        for image in self.externals() {
            let _ = writeln!(out, "  {} [shape=plaintext];", dot_id(&image));
        }
        for l in self.lines() {
            let parent = match &l.parent {
                Node::Context(p) => self.name(*p),
                Node::External(image) => image,
            };
            let mut attrs = Vec::new();
            if l.dashed {
                attrs.push("style=dashed");
            }
            if l.in_cycle {
                attrs.push("color=red, fontcolor=red, penwidth=2, label=\"cycle\"");
            }
            let attrs = match attrs.is_empty() {
                true => String::new(),
                false => format!(" [{}]", attrs.join(", ")),
            };
            let _ = writeln!(
                out,
                "  {} -> {}{attrs};",
                dot_id(parent),
                dot_id(self.name(l.child))
            );
        }
        out.push_str(&self.dot_legend());
        out.push_str("}\n");
        out
    }

    /// The legend: one sample of each node and line style the drawing uses.
    fn dot_legend(&self) -> String {
        let mut out = String::from(
            "  subgraph cluster_legend {\n    label=\"legend\";\n    fontsize=10;\n    \
             node [fontsize=10];\n    edge [fontsize=10];\n    \
             legend_image [label=\"image\\nversion\\nplatforms\"];\n    \
             legend_external [label=\"external image\", shape=plaintext];\n",
        );
        let mut samples = vec![
            ("from", "FROM", ""),
            ("uses", "COPY --from, RUN --mount from=", ", style=dashed"),
        ];
        if !self.cycle_edges.is_empty() {
            samples.push((
                "cycle",
                "on a cycle",
                ", color=red, fontcolor=red, penwidth=2",
            ));
        }
        for (id, label, style) in samples {
            let _ = writeln!(
                out,
                "    legend_{id}_a [label=\"\", shape=point];\n    \
                 legend_{id}_b [label=\"\", shape=point];\n    \
                 legend_{id}_a -> legend_{id}_b [label=\"{label}\"{style}];"
            );
        }
        out.push_str("  }\n");
        out
    }

    /// Mermaid: as DOT, with external images as rounded nodes and cycle edges labelled and red.
    pub fn mermaid(&self) -> String {
        let mut out = String::from("graph LR\n");
        for c in self.acyclic.order() {
            let ctx = &self.contexts[c];
            let _ = writeln!(out, "  n{c}[\"{} {}\"]", ctx.name, ctx.version);
        }
        let externals = self.externals();
        for (i, image) in externals.iter().enumerate() {
            let _ = writeln!(out, "  x{i}([\"{}\"])", image.replace('"', "#quot;"));
        }
        let mut red = Vec::new();
        for (i, l) in self.lines().iter().enumerate() {
            let parent = match &l.parent {
                Node::Context(p) => format!("n{p}"),
                Node::External(image) => {
                    let x = externals.iter().position(|e| e == image).unwrap_or(0);
                    format!("x{x}")
                }
            };
            let arrow = match (l.dashed, l.in_cycle) {
                (false, false) => "-->",
                (true, false) => "-.->",
                (false, true) => "-->|cycle|",
                (true, true) => "-.->|cycle|",
            };
            if l.in_cycle {
                red.push(i.to_string());
            }
            let _ = writeln!(out, "  {parent} {arrow} n{}", l.child);
        }
        if !red.is_empty() {
            let _ = writeln!(
                out,
                "  linkStyle {} stroke:red,stroke-width:2px",
                red.join(",")
            );
        }
        out
    }

    /// The stable JSON document described in docs/json.md.
    pub fn to_json(&self) -> Value {
        let cs = self.contexts;
        let layers = self.acyclic.layers();
        let mut layer_of = vec![0; cs.len()];
        for (i, layer) in layers.iter().enumerate() {
            for &c in layer {
                layer_of[c] = i;
            }
        }
        let images: Vec<Value> = self
            .acyclic
            .order()
            .into_iter()
            .map(|c| self.image_json(c, layer_of[c]))
            .collect();
        let names =
            |v: &[usize]| -> Vec<String> { v.iter().map(|&c| cs[c].name.clone()).collect() };
        let (critical, _) = self.acyclic.critical_path(|_| 1.0);
        let cycles: Vec<Vec<String>> = self
            .graph
            .cycles()
            .iter()
            .map(|cycle| {
                let mut names = names(cycle);
                names.push(names[0].clone());
                names
            })
            .collect();
        json!({
            "schema_version": 1,
            "images": images,
            "layers": layers.iter().map(|layer| names(layer)).collect::<Vec<_>>(),
            "critical_path": names(&critical),
            "cycles": cycles,
        })
    }

    fn image_json(&self, c: usize, layer: usize) -> Value {
        let ctx = &self.contexts[c];
        let parents: Vec<Value> = ctx
            .refs
            .registry_refs
            .iter()
            .filter_map(|r| {
                let p = self.graph.dag[self.graph.node(&r.name)?];
                let mut entry =
                    json!({"name": r.name, "tag": r.tag, "kind": r.kind, "line": r.line});
                if self.in_cycle(p, c) {
                    entry["in_cycle"] = json!(true);
                }
                Some(entry)
            })
            .collect();
        let children: Vec<&str> = self
            .graph
            .children(c)
            .iter()
            .map(|&k| self.name(k))
            .collect();
        let external: Vec<&str> = ctx.refs.external.iter().map(|e| e.image.as_str()).collect();
        json!({
            "name": ctx.name,
            "dir": ctx.dir_name,
            "order": ctx.order,
            "version": ctx.version.to_string(),
            "platforms": ctx.platforms_or(self.defaults),
            "platforms_declared": ctx.platforms.is_some(),
            "layer": layer,
            "parents": parents,
            "children": children,
            "external": external,
        })
    }
}

/// A DOT identifier: quoted, with quotes and backslashes escaped and newlines as `\n`.
fn dot_id(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}
