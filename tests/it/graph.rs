//! `cip graph` through the binary: a tree with a cycle is still drawn in every format, its cycle
//! marked, then the command fails naming it; DOT shows external bases, dashed file-use edges and a
//! legend, and graphviz's `dot` accepts it.
use crate::common;

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// `contexts/DIR/{Dockerfile, info.edn}` under `root`, version 1.0.0, amd64.
fn context(root: &Path, dir: &str, dockerfile: &str) {
    let d = root.join("contexts").join(dir);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("Dockerfile"), dockerfile).unwrap();
    fs::write(
        d.join("info.edn"),
        "{:version \"1.0.0\" :platforms #{\"linux/amd64\"}}\n",
    )
    .unwrap();
}

/// base (FROM debian:bookworm), tools (FROM scratch), app (FROM base, COPY --from tools,
/// RUN --mount from golang:1.22): no cycle, every kind of edge.
fn every_kind_of_edge(root: &Path) {
    context(root, "00-base", "FROM debian:bookworm\nRUN true\n");
    context(root, "00-tools", "FROM scratch\nCOPY x /x\n");
    context(
        root,
        "01-app",
        "ARG REGISTRY\nFROM ${REGISTRY}/base:1.0.0\nARG REGISTRY\n\
         COPY --from=${REGISTRY}/tools:1.0.0 /x /x\n\
         RUN --mount=type=bind,from=golang:1.22,target=/go true\n",
    );
}

/// a -> b -> c -> a (FROM), and d built on a, outside the cycle, using c's files.
fn a_cycle(root: &Path) {
    context(root, "00-a", "ARG REGISTRY\nFROM ${REGISTRY}/c:1.0.0\n");
    context(root, "01-b", "ARG REGISTRY\nFROM ${REGISTRY}/a:1.0.0\n");
    context(root, "02-c", "ARG REGISTRY\nFROM ${REGISTRY}/b:1.0.0\n");
    context(
        root,
        "03-d",
        "ARG REGISTRY\nFROM ${REGISTRY}/a:1.0.0\nARG REGISTRY\nCOPY --from=${REGISTRY}/c:1.0.0 /x /x\n",
    );
}

fn graph(root: &Path, format: &str) -> (i32, String, String) {
    common::cip(&["graph", "-f", format, "-C", root.to_str().unwrap()])
}

/// Whether graphviz renders `dot` to SVG without a complaint.
fn assert_dot_renders(dot: &str) {
    assert!(
        common::have_program("dot"),
        "graphviz's `dot` is not installed: run scripts/setup-env"
    );
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run dot");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dot.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "{err}\n{dot}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));
}

#[test]
fn dot_shows_external_bases_dashed_file_use_and_a_legend() {
    let dir = tempfile::tempdir().unwrap();
    every_kind_of_edge(dir.path());
    let (code, dot, err) = graph(dir.path(), "dot");
    assert_eq!(code, 0, "{err}");
    assert!(
        dot.contains("\"debian:bookworm\" [shape=plaintext];")
            && dot.contains("\"golang:1.22\" [shape=plaintext];"),
        "external bases are plain nodes: {dot}"
    );
    assert!(!dot.contains("scratch"), "scratch is no image: {dot}");
    assert!(dot.contains("\"debian:bookworm\" -> \"base\";"), "{dot}");
    assert!(dot.contains("\"base\" -> \"app\";"), "FROM is solid: {dot}");
    assert!(
        dot.contains("\"tools\" -> \"app\" [style=dashed];")
            && dot.contains("\"golang:1.22\" -> \"app\" [style=dashed];"),
        "COPY --from and RUN --mount from= are dashed: {dot}"
    );
    assert!(
        dot.contains("subgraph cluster_legend {") && dot.contains("label=\"legend\";"),
        "{dot}"
    );
    assert!(
        !dot.contains("cycle"),
        "no cycle, none in the legend: {dot}"
    );
    assert_dot_renders(&dot);

    // Mermaid draws the same lines.
    let (_, mm, _) = graph(dir.path(), "mermaid");
    assert!(mm.contains("x0([\"debian:bookworm\"])"), "{mm}");
    assert!(mm.contains(" -.-> n"), "{mm}");
}

#[test]
fn a_cycle_is_drawn_and_marked_in_every_format_then_named_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    a_cycle(dir.path());
    let cycle = "a -> b -> c -> a";
    let failed = |format: &str| {
        let (code, out, err) = graph(dir.path(), format);
        assert_eq!(code, 1, "{format}: {err}");
        assert!(
            err.contains(&format!("error: the dependency graph has a cycle: {cycle}")),
            "{format}: {err}"
        );
        out
    };

    let text = failed("text");
    assert!(
        text.contains("4 images in 4 build batches"),
        "batches without the edge closing the cycle: {text}"
    );
    assert!(
        text.contains("  a 1.0.0 [linux/amd64]  <- c (cycle)\n"),
        "{text}"
    );
    assert!(
        text.contains("  d 1.0.0 [linux/amd64]  <- a, c\n"),
        "edges off the cycle are not marked: {text}"
    );
    assert!(text.contains(&format!("cycle: {cycle}\n")), "{text}");

    let dot = failed("dot");
    let red = "[color=red, fontcolor=red, penwidth=2, label=\"cycle\"];";
    for edge in ["\"c\" -> \"a\"", "\"a\" -> \"b\"", "\"b\" -> \"c\""] {
        assert!(dot.contains(&format!("{edge} {red}")), "{edge}: {dot}");
    }
    assert!(dot.contains("\"a\" -> \"d\";"), "{dot}");
    assert!(dot.contains("\"c\" -> \"d\" [style=dashed];"), "{dot}");
    assert!(
        dot.contains("label=\"on a cycle\""),
        "the legend says so: {dot}"
    );
    assert_dot_renders(&dot);

    let mm = failed("mermaid");
    assert!(
        mm.contains("n2 -->|cycle| n0") && mm.contains("n0 -->|cycle| n1"),
        "{mm}"
    );
    assert!(mm.contains("n0 --> n3"), "{mm}");
    assert!(mm.contains("stroke:red"), "{mm}");

    let doc: Value = serde_json::from_str(&failed("json")).unwrap();
    assert_eq!(doc["cycles"], serde_json::json!([["a", "b", "c", "a"]]));
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), 4, "{doc}");
    let a = images.iter().find(|i| i["name"] == "a").unwrap();
    assert_eq!(a["parents"][0]["in_cycle"], true, "{a}");
    let d = images.iter().find(|i| i["name"] == "d").unwrap();
    assert!(
        d["parents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p.get("in_cycle").is_none()),
        "{d}"
    );
    assert_eq!(
        doc["layers"],
        serde_json::json!([["a"], ["b"], ["c"], ["d"]])
    );
}
