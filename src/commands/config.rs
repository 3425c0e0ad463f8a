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
    let remote = match &settings.remote_registry {
        Some(s) => row("remote registry", &s.value, &s.source),
        None => row("remote registry", "(none)", &Source::Default),
    };
    out.push_str(&remote);
    let s = &settings.local_registry;
    out.push_str(&row("local registry", &s.value, &s.source));
    let s = &settings.default_platforms;
    out.push_str(&row("default platforms", &platforms(&s.value), &s.source));
    out.push_str(&row("jobs", &jobs(&settings.jobs), &settings.jobs.source));
    let s = &settings.builder;
    out.push_str(&row(
        "builder",
        &format!("{:?}", s.value).to_lowercase(),
        &s.source,
    ));
    let s = &settings.progress;
    out.push_str(&row("progress", &s.value, &s.source));
    if let Some(f) = file {
        out.push_str(&declared(f));
    }
    out
}

fn row(name: &str, value: &str, source: &Source) -> String {
    format!("  {name:<18} {value:<32} {source}\n")
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

/// The nodes, farms and runners of the file, one line each.
fn declared(f: &ProjectFile) -> String {
    let mut out = String::new();
    if !f.nodes.is_empty() {
        out.push_str("nodes:\n");
        for (name, n) in &f.nodes {
            let address = [&n.host, &n.context, &n.url, &n.connection]
                .into_iter()
                .flatten()
                .next()
                .map_or("(this machine)", String::as_str);
            let mut extra = String::new();
            if let Some(j) = n.jobs {
                extra.push_str(&format!(" jobs {j}"));
            }
            if let Some(p) = &n.platforms {
                extra.push_str(&format!(" platforms {}", platforms(p)));
            }
            if let Some(route) = n.push {
                extra.push_str(&format!(" push {}", route.name()));
            }
            let kind = format!("{:?}", n.kind).to_lowercase();
            out.push_str(&format!("  {name:<12} {kind:<8} {address}{extra}\n"));
        }
    }
    if !f.farms.is_empty() {
        out.push_str("farms:\n");
        for (name, farm) in &f.farms {
            out.push_str(&format!("  {name:<12} {}\n", farm.nodes.join(", ")));
        }
    }
    if !f.ci.runners.is_empty() {
        out.push_str("ci runners:\n");
        for (platform, label) in &f.ci.runners {
            out.push_str(&format!("  {:<12} {}\n", platform.to_string(), label.value));
        }
    }
    out
}
