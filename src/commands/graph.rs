//! `cip graph`: the DAG as build batches and critical path (text), DOT, Mermaid or JSON
//! ([`crate::graph::render`]). A graph with a cycle is still printed, its cycle marked, and then
//! the command fails naming the cycle.
use super::load;
use crate::cli::GraphFormat;
use crate::graph::render::Drawing;
use crate::options::ProjectOptions;
use crate::output::style_problem;

pub fn run(args: &ProjectOptions, format: GraphFormat) -> anyhow::Result<i32> {
    let loaded = load(args)?;
    // The graph is still useful with other errors (that is how one finds them).
    for p in loaded.problems.iter().filter(|p| p.is_error()) {
        eprintln!("{}", style_problem(p));
    }
    let drawing = Drawing::new(&loaded.project, &loaded.graph, &args.default_platforms);
    let out = match format {
        GraphFormat::Text => drawing.text(),
        GraphFormat::Dot => drawing.dot(),
        GraphFormat::Mermaid => drawing.mermaid(),
        GraphFormat::Json => serde_json::to_string_pretty(&drawing.to_json())? + "\n",
    };
    print!("{out}");
    let cycles = drawing.cycles();
    if !cycles.is_empty() {
        anyhow::bail!(
            "the dependency graph has a cycle: {} (its edges are marked in the graph above); an \
             image cannot be built from itself: remove one of these references",
            cycles.join("; ")
        );
    }
    Ok(if loaded.errors() > 0 { 1 } else { 0 })
}
