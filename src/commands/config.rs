//! `cip config`: the resolved settings and where each came from, then the nodes, farms and CI
//! runners cip.toml declares.
use std::path::Path;

use serde_json::json;

use crate::cli::default_jobs;
use crate::config::file::{NodeSpec, ProjectFile, FILE_NAME};
use crate::config::settings::{Setting, Settings, Source};
use crate::platform::Platform;

pub fn run(
    settings: &Settings,
    file: Option<&ProjectFile>,
    project_dir: &Path,
    json: bool,
) -> anyhow::Result<i32> {
    if json {
        super::print_json(&document(settings, file))?;
    } else {
        print!("{}", render(settings, file, project_dir));
    }
    Ok(0)
}

fn document(settings: &Settings, file: Option<&ProjectFile>) -> serde_json::Value {
    let nodes: serde_json::Map<String, serde_json::Value> = file
        .map(|f| &f.nodes)
        .into_iter()
        .flatten()
        .map(|(name, n)| (name.clone(), node_json(n)))
        .collect();
    let farms: serde_json::Map<String, serde_json::Value> = file
        .map(|f| &f.farms)
        .into_iter()
        .flatten()
        .map(|(name, f)| (name.clone(), json!({ "nodes": f.nodes, "line": f.line })))
        .collect();
    let runners: serde_json::Map<String, serde_json::Value> = file
        .map(|f| &f.ci.runners)
        .into_iter()
        .flatten()
        .map(|(p, r)| (p.to_string(), json!(r.value)))
        .collect();
    json!({
        "file": file.map(|f| f.path.display().to_string()),
        "settings": settings,
        "nodes": nodes,
        "farms": farms,
        "ci": { "runners": runners },
    })
}

fn node_json(n: &NodeSpec) -> serde_json::Value {
    json!({
        "kind": n.kind,
        "host": n.host,
        "context": n.context,
        "url": n.url,
        "connection": n.connection,
        "jobs": n.jobs,
        "platforms": n.platforms,
        "push": n.push,
        "line": n.line,
    })
}

fn render(settings: &Settings, file: Option<&ProjectFile>, project_dir: &Path) -> String {
    let mut out = match file {
        Some(f) => format!("{}\n", f.path.display()),
        None => format!(
            "no {FILE_NAME} in {}: the environment and cip's defaults\n",
            project_dir.display()
        ),
    };
    let row = |name: &str, value: String, source: &Source| {
        vec![name.to_string(), value, source.to_string()]
    };
    let mut rows = vec![match &settings.remote_registry {
        Some(s) => row("remote registry", s.value.clone(), &s.source),
        None => row("remote registry", "(none)".into(), &Source::Default),
    }];
    let s = &settings.local_registry;
    rows.push(row("local registry", s.value.clone(), &s.source));
    let s = &settings.default_platforms;
    rows.push(row("default platforms", platforms(&s.value), &s.source));
    rows.push(row("jobs", jobs(&settings.jobs), &settings.jobs.source));
    let s = &settings.builder;
    let builder = format!("{:?}", s.value).to_lowercase();
    rows.push(row("builder", builder, &s.source));
    let s = &settings.progress;
    rows.push(row("progress", s.value.clone(), &s.source));
    out.push_str(&table(&rows));
    if let Some(f) = file {
        out.push_str(&declared(f));
    }
    out
}

/// Rows as aligned columns, each as wide as its widest cell (a long registry path or node
/// address pushes the next column right instead of into it), indented by two spaces.
fn table(rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let w = console::measure_text_width(cell);
            match widths.get_mut(i) {
                Some(max) => *max = (*max).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::from(" ");
        for (cell, width) in row.iter().zip(&widths) {
            line.push(' ');
            line.push_str(cell);
            let pad = width - console::measure_text_width(cell);
            line.extend(std::iter::repeat_n(' ', pad + 1));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn jobs(s: &Setting<Option<usize>>) -> String {
    match s.value {
        Some(n) => n.to_string(),
        None => format!("{} (one per CPU, at least 2)", default_jobs()),
    }
}

fn platforms(list: &[Platform]) -> String {
    list.iter()
        .map(Platform::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The nodes, farms and runners of the file, one line each, a table per kind.
fn declared(f: &ProjectFile) -> String {
    let mut out = String::new();
    if !f.nodes.is_empty() {
        out.push_str("nodes:\n");
        let rows: Vec<Vec<String>> = f.nodes.iter().map(|(name, n)| node_row(name, n)).collect();
        out.push_str(&table(&rows));
    }
    if !f.farms.is_empty() {
        out.push_str("farms:\n");
        let rows: Vec<Vec<String>> = f
            .farms
            .iter()
            .map(|(name, farm)| vec![name.clone(), farm.nodes.join(", ")])
            .collect();
        out.push_str(&table(&rows));
    }
    if !f.ci.runners.is_empty() {
        out.push_str("ci runners:\n");
        let rows: Vec<Vec<String>> =
            f.ci.runners
                .iter()
                .map(|(platform, label)| vec![platform.to_string(), label.value.clone()])
                .collect();
        out.push_str(&table(&rows));
    }
    out
}

/// A node's name, engine, address, and what cip.toml sets beyond them.
fn node_row(name: &str, n: &NodeSpec) -> Vec<String> {
    let address = [&n.host, &n.context, &n.url, &n.connection]
        .into_iter()
        .flatten()
        .next()
        .map_or("(this machine)", String::as_str);
    let mut extra = Vec::new();
    if let Some(j) = n.jobs {
        extra.push(format!("jobs {j}"));
    }
    if let Some(p) = &n.platforms {
        extra.push(format!("platforms {}", platforms(p)));
    }
    if let Some(route) = n.push {
        extra.push(format!("push {}", route.name()));
    }
    let kind = format!("{:?}", n.kind).to_lowercase();
    vec![name.to_string(), kind, address.to_string(), extra.join(" ")]
}

#[cfg(test)]
mod tests {
    use super::table;

    fn rows(cells: &[&[&str]]) -> Vec<Vec<String>> {
        cells
            .iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect()
    }

    #[test]
    fn columns_are_as_wide_as_their_longest_value() {
        let long = "registry.example.com:5443/a/very/long/namespace/for/the/team";
        let shown = table(&rows(&[
            &["remote registry", long, "cip.toml:2"],
            &["jobs", "4", "default"],
        ]));
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines[0], format!("  remote registry  {long}  cip.toml:2"));
        let column = lines[0].find("cip.toml:2").unwrap();
        assert_eq!(lines[1].find("default"), Some(column), "{shown}");
        assert!(lines[1].starts_with("  jobs             4 "), "{shown}");
    }

    #[test]
    fn an_empty_last_cell_leaves_no_trailing_blanks() {
        let shown = table(&rows(&[&["a", "docker", ""], &["bb", "podman", "jobs 2"]]));
        assert_eq!(shown, "  a   docker\n  bb  podman  jobs 2\n");
    }
}
