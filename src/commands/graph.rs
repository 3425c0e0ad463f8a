//! `cip graph`: the DAG as build batches and critical path (text), DOT, Mermaid or JSON.
use std::fmt::Write as _;

use anyhow::bail;
use serde_json::{json, Value};

use super::{load, Loaded};
use crate::cli::{GraphFormat, ProjectArgs};
use crate::output::style_problem;
use crate::platform::Platform;
use crate::project::Context;

pub fn run(args: &ProjectArgs, format: GraphFormat) -> anyhow::Result<i32> {
    let loaded = load(args)?;
    // The graph is still useful with other errors (that is how one finds them), but not with a cycle.
    for p in loaded.problems.iter().filter(|p| p.is_error()) {
        eprintln!("{}", style_problem(p));
    }
    if loaded.graph.has_cycle() {
        bail!("the dependency graph has a cycle (see above); run `cip check` for every problem");
    }
    let defaults = &args.default_platforms;
    let out = match format {
        GraphFormat::Text => text(&loaded, defaults),
        GraphFormat::Dot => dot(&loaded, defaults),
        GraphFormat::Mermaid => mermaid(&loaded),
        GraphFormat::Json => serde_json::to_string_pretty(&to_json(&loaded, defaults))? + "\n",
    };
    print!("{out}");
    Ok(if loaded.errors() > 0 { 1 } else { 0 })
}

fn platforms(ctx: &Context, defaults: &[Platform]) -> String {
    let list: Vec<String> = ctx
        .platforms_or(defaults)
        .iter()
        .map(|p| p.to_string())
        .collect();
    list.join(", ")
}

fn text(l: &Loaded, defaults: &[Platform]) -> String {
    let cs = &l.project.contexts;
    let layers = l.graph.layers();
    let mut out = String::new();
    let _ = writeln!(out, "{} images in {} build batches", cs.len(), layers.len());
    for (i, layer) in layers.iter().enumerate() {
        let _ = writeln!(out, "batch {i}:");
        for &c in layer {
            let ctx = &cs[c];
            let parents: Vec<&str> = l
                .graph
                .parents(c)
                .iter()
                .map(|&p| cs[p].name.as_str())
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
                platforms(ctx, defaults)
            );
        }
    }
    let (path, _) = l.graph.critical_path(|_| 1.0);
    let names: Vec<&str> = path.iter().map(|&c| cs[c].name.as_str()).collect();
    let _ = writeln!(
        out,
        "critical path ({} images): {}",
        names.len(),
        names.join(" -> ")
    );
    out
}

fn dot(l: &Loaded, defaults: &[Platform]) -> String {
    let cs = &l.project.contexts;
    let mut out = String::from("digraph cip {\n  rankdir=LR;\n  node [shape=box];\n");
    for c in l.graph.order() {
        let ctx = &cs[c];
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\\n{}\\n{}\"];",
            ctx.name,
            ctx.name,
            ctx.version,
            platforms(ctx, defaults)
        );
    }
    for c in l.graph.order() {
        for p in l.graph.parents(c) {
            let _ = writeln!(out, "  \"{}\" -> \"{}\";", cs[p].name, cs[c].name);
        }
    }
    out.push_str("}\n");
    out
}

fn mermaid(l: &Loaded) -> String {
    let cs = &l.project.contexts;
    let mut out = String::from("graph LR\n");
    for c in l.graph.order() {
        let _ = writeln!(out, "  n{c}[\"{} {}\"]", cs[c].name, cs[c].version);
    }
    for c in l.graph.order() {
        for p in l.graph.parents(c) {
            let _ = writeln!(out, "  n{p} --> n{c}");
        }
    }
    out
}

/// The stable JSON document described in docs/json.md.
pub fn to_json(l: &Loaded, defaults: &[Platform]) -> Value {
    let cs = &l.project.contexts;
    let layers = l.graph.layers();
    let mut layer_of = vec![0; cs.len()];
    for (i, layer) in layers.iter().enumerate() {
        for &c in layer {
            layer_of[c] = i;
        }
    }
    let images: Vec<Value> = l
        .graph
        .order()
        .into_iter()
        .map(|c| {
            let ctx = &cs[c];
            let parents: Vec<Value> = ctx
                .refs
                .registry_refs
                .iter()
                .filter(|r| l.graph.node(&r.name).is_some())
                .map(|r| json!({"name": r.name, "tag": r.tag, "kind": r.kind, "line": r.line}))
                .collect();
            let children: Vec<&str> = l
                .graph
                .children(c)
                .iter()
                .map(|&k| cs[k].name.as_str())
                .collect();
            let external: Vec<&str> = ctx.refs.external.iter().map(|e| e.image.as_str()).collect();
            json!({
                "name": ctx.name,
                "dir": ctx.dir_name,
                "order": ctx.order,
                "version": ctx.version.to_string(),
                "platforms": ctx.platforms_or(defaults),
                "platforms_declared": ctx.platforms.is_some(),
                "layer": layer_of[c],
                "parents": parents,
                "children": children,
                "external": external,
            })
        })
        .collect();
    let names = |v: &[usize]| -> Vec<String> { v.iter().map(|&c| cs[c].name.clone()).collect() };
    let (critical, _) = l.graph.critical_path(|_| 1.0);
    json!({
        "schema_version": 1,
        "images": images,
        "layers": layers.iter().map(|layer| names(layer)).collect::<Vec<_>>(),
        "critical_path": names(&critical),
    })
}
