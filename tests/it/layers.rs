//! The layers of `src/` as the code reads them (lib.rs describes them): which top-level modules use
//! which, and the borders that keep the command line, the configuration and index writing each in one
//! place. These read the source, so a change that crosses a border fails here with the line that
//! crosses it, not later in review.
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The top-level module a file of `src/` belongs to (`src/plan/steps.rs` -> `plan`), None for the
/// crate roots.
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_string())
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source with comments and `#[cfg(test)]` items removed: what the library itself uses.
fn library_code(text: &str) -> String {
    let without_comments: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = String::new();
    let mut rest = without_comments.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        rest = skip_item(&rest[at + "#[cfg(test)]".len()..]);
    }
    out.push_str(rest);
    out
}

/// What follows the item at the start of `s`: up to its first `;` outside braces, or its balanced
/// `{...}` block.
fn skip_item(s: &str) -> &str {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            ';' if depth == 0 => return &s[i + 1..],
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return &s[i + 1..];
                }
            }
            _ => {}
        }
    }
    ""
}

/// The top-level modules `code` names through `crate::` paths, including grouped imports
/// (`use crate::{plan, registry::Registry}`).
fn used_modules(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let after = &code[at + "crate::".len()..];
        let names: Vec<&str> = if let Some(group) = after.strip_prefix('{') {
            let end = group.find(';').unwrap_or(group.len());
            group[..end]
                .split([',', '{', '}'])
                .map(|p| p.trim().split("::").next().unwrap_or("").trim())
                .collect()
        } else {
            vec![after
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
                .unwrap_or("")]
        };
        used.extend(
            names
                .into_iter()
                .filter(|n| modules.contains(*n))
                .map(str::to_string),
        );
    }
    used
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Each file of `src/` with its path relative to `src/` and its library code.
fn sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(&p).unwrap();
            (
                p.strip_prefix(src()).unwrap().to_path_buf(),
                library_code(&text),
            )
        })
        .collect()
}

/// Which top-level module uses which.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = sources();
    let modules: BTreeSet<String> = files.iter().filter_map(|(p, _)| module_of(p)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, code) in &files {
        let Some(me) = module_of(path) else { continue };
        let mut used = used_modules(code, &modules);
        used.remove(&me);
        graph.entry(me).or_default().extend(used);
    }
    graph
}

/// The strongly connected components with more than one module (Tarjan's algorithm).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                s.low.entry(v).and_modify(|l| *l = (*l).min(lw));
            } else if s.stack.contains(&w) {
                let iw = s.index[w];
                s.low.entry(v).and_modify(|l| *l = (*l).min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let at = s.stack.iter().rposition(|&x| x == v).unwrap();
            let component: Vec<String> = s.stack.drain(at..).map(str::to_string).collect();
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn no_top_level_module_of_src_takes_part_in_an_import_circle() {
    let graph = module_graph();
    assert!(
        graph.contains_key("plan") && graph.contains_key("registry"),
        "{graph:?}"
    );
    let found = circles(&graph);
    let explained: Vec<String> = found
        .iter()
        .map(|c| {
            let edges: Vec<String> = c
                .iter()
                .map(|m| {
                    let inner: Vec<&str> = graph[m]
                        .iter()
                        .filter(|d| c.contains(d))
                        .map(String::as_str)
                        .collect();
                    format!("{m} -> {}", inner.join(", "))
                })
                .collect();
            edges.join("; ")
        })
        .collect();
    assert!(
        found.is_empty(),
        "import circles in src/:\n  {}",
        explained.join("\n  ")
    );
}

#[test]
fn the_circle_finder_finds_a_circle_and_reads_grouped_imports() {
    let modules: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
    let code = library_code(
        "use crate::{a::X, b};\n// crate::c in a comment\n#[cfg(test)]\nmod tests { use crate::c; }\n",
    );
    assert_eq!(
        used_modules(&code, &modules),
        ["a", "b"].map(String::from).into()
    );
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), ["b".to_string()].into()),
        ("b".to_string(), ["a".to_string()].into()),
        ("c".to_string(), ["a".to_string()].into()),
    ]
    .into();
    let found = circles(&graph);
    let mut sorted: Vec<Vec<String>> = found
        .into_iter()
        .map(|mut c| {
            c.sort();
            c
        })
        .collect();
    sorted.sort();
    assert_eq!(sorted, [["a", "b"].map(String::from).to_vec()]);
}

/// The lines of library code outside `allowed` (paths relative to src/) that contain `needle`.
fn lines_with(needle: &str, allowed: &[&str]) -> Vec<String> {
    sources()
        .into_iter()
        .filter(|(p, _)| !allowed.iter().any(|a| p.starts_with(a)))
        .flat_map(|(p, code)| {
            code.lines()
                .filter(|l| l.contains(needle))
                .map(|l| format!("src/{}: {}", p.display(), l.trim()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn clap_stops_at_the_command_line() {
    let found = lines_with("clap", &["cli", "cli.rs", "commands", "main.rs"]);
    assert!(
        found.is_empty(),
        "clap below cli/ and commands/:\n  {}",
        found.join("\n  ")
    );
    let found = lines_with("crate::cli", &["cli", "cli.rs", "commands", "main.rs"]);
    assert!(
        found.is_empty(),
        "cli types below cli/ and commands/:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_configuration_is_read_once_at_the_entry_point() {
    let found = lines_with("config::get()", &["main.rs"]);
    assert!(
        found.is_empty(),
        "config::get() below the entry point:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn one_function_builds_every_index() {
    let found: Vec<String> = lines_with("build_index(", &[])
        .into_iter()
        .filter(|l| !l.contains("index_writer"))
        .collect();
    assert!(
        found.is_empty(),
        "indexes built outside the index writer:\n  {}",
        found.join("\n  ")
    );
}
