//! `cip.toml` at the project root: the defaults a team shares (registries, platforms, jobs, builder,
//! progress), the build nodes and farms, and the CI runners. Read once; every mistake is reported
//! with the file, line and column and what to write instead, like `check` does for `info.edn`.
//!
//! ```toml
//! [registry]
//! remote = "registry.example.com/team"
//! local = "localhost:5000"
//! [build]
//! platforms = ["linux/amd64", "linux/arm64"]
//! jobs = 4
//! builder = "auto"
//! progress = "auto"
//! [nodes.amd-1]
//! kind = "docker"
//! host = "ssh://builder@amd-1.example"
//! [farms.ci]
//! nodes = ["amd-1"]
//! [ci.runners]
//! "linux/arm64" = "ubuntu-24.04-arm"
//! ```
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::builders::engines::{AddressProblem, NodeKeys};
use crate::builders::BuilderKind;
use crate::diagnostics::edit_distance;
use crate::platform::Platform;
use crate::project::files;
use crate::registry::address::Address;

/// The file's name, in the project directory.
pub const FILE_NAME: &str = "cip.toml";
/// More than any real configuration; a bigger file is a mistake (or not a file).
const MAX_BYTES: u64 = 1 << 20;
/// The progress modes a run can take (`--progress`).
pub const PROGRESS_MODES: &[&str] = &["auto", "tty", "plain", "quiet"];

/// A value with the line of the file it was read from (for `cip config` and for errors found later,
/// e.g. a farm naming a node that cannot be reached).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    pub value: T,
    pub line: usize,
}

#[derive(Debug, Clone, Default)]
pub struct ProjectFile {
    pub path: PathBuf,
    pub registry: RegistrySection,
    pub build: BuildSection,
    pub nodes: BTreeMap<String, NodeSpec>,
    pub farms: BTreeMap<String, FarmSpec>,
    pub ci: CiSection,
}

#[derive(Debug, Clone, Default)]
pub struct RegistrySection {
    /// Where `publish` and the remote mirror commands go, `HOST[:PORT][/PATH]`.
    pub remote: Option<Located<String>>,
    /// Where `publish-locally`, `build` and the local mirror commands go.
    pub local: Option<Located<String>>,
    /// How long after it began a run of another machine may still be alive: its staging tags are
    /// swept only after that (see `builders::leftovers`).
    pub stage_lease_hours: Option<Located<u64>>,
    /// `[registry.mirrors]`: the registry asked instead of a host for external bases
    /// (`"docker.io" = "HOST[:PORT]"`), the mirror the builders pull through.
    pub mirrors: BTreeMap<String, Located<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct BuildSection {
    /// The platforms of contexts whose info.edn names none (`--default-platforms`).
    pub platforms: Option<Located<Vec<Platform>>>,
    pub jobs: Option<Located<usize>>,
    pub builder: Option<Located<BuilderKind>>,
    /// One of [`PROGRESS_MODES`].
    pub progress: Option<Located<String>>,
}

/// Which engine a node is: one of the registry's, never `auto`.
pub type NodeKind = BuilderKind;

/// How a node's images reach the registry (`push` of a node in cip.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Route {
    /// The node pushes to the registry itself (to a staging name; cip copies it registry-side).
    Direct,
    /// The image comes back to cip's machine, and cip pushes it.
    ThroughCip,
}

impl Route {
    pub fn name(self) -> &'static str {
        match self {
            Route::Direct => "direct",
            Route::ThroughCip => "through-cip",
        }
    }
}

/// A build node: an existing engine cip sends builds to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub kind: NodeKind,
    /// docker: `unix://`, `tcp://` or `ssh://` daemon address.
    pub host: Option<String>,
    /// docker: a docker context name instead of `host`.
    pub context: Option<String>,
    /// podman: a service URL (`unix://`, `ssh://`, `tcp://`).
    pub url: Option<String>,
    /// podman: a system connection name instead of `url`.
    pub connection: Option<String>,
    /// Builds at once on this node [default: its CPU count].
    pub jobs: Option<usize>,
    /// Declared native platforms: take priority over what the node reports.
    pub platforms: Option<Vec<Platform>>,
    /// `push = "direct" | "through-cip"`: the route of its images, instead of the default.
    pub push: Option<Route>,
    /// The line of the node's table.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FarmSpec {
    pub nodes: Vec<String>,
    pub line: usize,
}

#[derive(Debug, Clone, Default)]
pub struct CiSection {
    /// The CI runner label of each platform (`cip ci matrix`).
    pub runners: BTreeMap<Platform, Located<String>>,
}

/// A mistake in the file: where, what, and what to write instead.
#[derive(Debug)]
pub struct FileError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FileError {}

impl ProjectFile {
    /// The project's `cip.toml`, or `None` when there is none.
    pub fn load(project_dir: &Path) -> anyhow::Result<Option<ProjectFile>> {
        let path = project_dir.join(FILE_NAME);
        let allowed = files::Allowed::project(project_dir);
        let bytes = match files::read_bounded(&path, &allowed, MAX_BYTES) {
            Ok(bytes) => bytes,
            Err(files::ReadError::Missing) => return Ok(None),
            Err(files::ReadError::Problem(p)) => anyhow::bail!("{p}"),
        };
        let text = String::from_utf8(bytes).map_err(|e| {
            anyhow::anyhow!(
                "{}: not UTF-8 text (byte {})",
                path.display(),
                e.utf8_error().valid_up_to()
            )
        })?;
        Ok(Some(ProjectFile::parse(&path, &text)?))
    }

    /// Parses the text of `path`; every error names a line.
    pub fn parse(path: &Path, text: &str) -> Result<ProjectFile, FileError> {
        let lines = LineIndex::new(text);
        let at = |span: Range<usize>, message: String, hint: Option<String>| {
            let (line, column) = lines.locate(span.start);
            FileError {
                path: path.to_path_buf(),
                line,
                column,
                message,
                hint,
            }
        };
        let raw: raw::File = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let (message, hint) = explain_toml_error(e.message());
            at(span, message, hint)
        })?;
        let mut file = ProjectFile {
            path: path.to_path_buf(),
            ..ProjectFile::default()
        };
        let line_of = |s: &Range<usize>| lines.locate(s.start).0;
        file.registry = registry_section(raw.registry, &at, &line_of)?;
        file.build = build_section(raw.build, &at, &line_of)?;
        for (name, node) in raw.nodes {
            let spec = node_spec(&name, node, &at, &line_of)?;
            file.nodes.insert(name.into_inner(), spec);
        }
        for (name, farm) in raw.farms {
            let spec = farm_spec(&name, farm, &file.nodes, &at, &line_of)?;
            file.farms.insert(name.into_inner(), spec);
        }
        for (platform, label) in raw.ci.runners {
            let p = parse_platform(&platform, &at)?;
            let label = non_empty(label, "a runner label", &at)?;
            let line = line_of(&platform.span());
            file.ci.runners.insert(p, Located { value: label, line });
        }
        Ok(file)
    }
}

type At<'a> = dyn Fn(Range<usize>, String, Option<String>) -> FileError + 'a;
type LineOf<'a> = dyn Fn(&Range<usize>) -> usize + 'a;

fn registry_section(
    raw: raw::Registry,
    at: &At,
    line_of: &LineOf,
) -> Result<RegistrySection, FileError> {
    let address = |v: Option<Spanned<String>>| -> Result<_, FileError> {
        v.map(|v| {
            Address::parse(v.get_ref()).map_err(|e| {
                at(
                    v.span(),
                    format!("{e:#}"),
                    Some("a registry address is HOST[:PORT][/PATH], e.g. \"ghcr.io/org\"".into()),
                )
            })?;
            Ok(Located {
                line: line_of(&v.span()),
                value: v.into_inner(),
            })
        })
        .transpose()
    };
    let stage_lease_hours = raw
        .stage_lease_hours
        .map(|h| {
            let hours = u64::try_from(*h.get_ref())
                .ok()
                .filter(|n| (1..=MAX_LEASE_HOURS).contains(n))
                .ok_or_else(|| {
                    at(
                        h.span(),
                        format!("stage_lease_hours = {} is out of range", h.get_ref()),
                        Some(format!(
                            "stage_lease_hours is how long a run of another machine may last, in \
                             hours: a number from 1 to {MAX_LEASE_HOURS}"
                        )),
                    )
                })?;
            Ok::<_, FileError>(Located {
                value: hours,
                line: line_of(&h.span()),
            })
        })
        .transpose()?;
    let mut mirrors = BTreeMap::new();
    for (host, mirror) in raw.mirrors {
        let hint = || {
            Some(
                "[registry.mirrors] maps a registry host to the mirror asked instead, e.g.                  \"docker.io\" = \"mirror.example:5000\""
                    .to_string(),
            )
        };
        for v in [&host, &mirror] {
            if let Some(why) = option_like(v.get_ref()) {
                return Err(at(v.span(), format!("{:?} {why}", v.get_ref()), hint()));
            }
        }
        let host_text = host.get_ref().trim();
        if host_text.is_empty() || host_text.contains(['/', ' ']) {
            return Err(at(
                host.span(),
                format!("{host_text:?} is not a registry host"),
                hint(),
            ));
        }
        Address::parse(mirror.get_ref())
            .map_err(|e| at(mirror.span(), format!("{e:#}"), hint()))?;
        mirrors.insert(
            host_text.to_string(),
            Located {
                line: line_of(&mirror.span()),
                value: mirror.into_inner(),
            },
        );
    }
    Ok(RegistrySection {
        remote: address(raw.remote)?,
        local: address(raw.local)?,
        stage_lease_hours,
        mirrors,
    })
}

fn build_section(raw: raw::Build, at: &At, line_of: &LineOf) -> Result<BuildSection, FileError> {
    let platforms = match raw.platforms {
        Some(list) => {
            let line = line_of(&list.span());
            let value = platform_list(list, at)?;
            Some(Located { value, line })
        }
        None => None,
    };
    let jobs = raw.jobs.map(|j| positive(j, at)).transpose()?;
    let jobs = jobs.map(|(value, span)| Located {
        value,
        line: line_of(&span),
    });
    let builder = match raw.builder {
        Some(b) => {
            let kind = b.get_ref().parse::<BuilderKind>().map_err(|_| {
                let names: Vec<&str> = BuilderKind::names().map(|(n, _)| n).collect();
                at(
                    b.span(),
                    format!("unknown builder {:?}", b.get_ref()),
                    Some(format!("builder is one of {}", quoted(&names))),
                )
            })?;
            Some(Located {
                value: kind,
                line: line_of(&b.span()),
            })
        }
        None => None,
    };
    let progress = match raw.progress {
        Some(p) if PROGRESS_MODES.contains(&p.get_ref().as_str()) => Some(Located {
            line: line_of(&p.span()),
            value: p.into_inner(),
        }),
        Some(p) => {
            return Err(at(
                p.span(),
                format!("unknown progress mode {:?}", p.get_ref()),
                Some(format!("progress is one of {}", quoted(PROGRESS_MODES))),
            ))
        }
        None => None,
    };
    Ok(BuildSection {
        platforms,
        jobs,
        builder,
        progress,
    })
}

fn node_spec(
    name: &Spanned<String>,
    raw: Spanned<raw::Node>,
    at: &At,
    line_of: &LineOf,
) -> Result<NodeSpec, FileError> {
    check_name(name, "node", at)?;
    let span = raw.span();
    let raw = raw.into_inner();
    let kind = match &raw.kind {
        Some(k) => BuilderKind::engine_named(k.get_ref()).ok_or_else(|| {
            at(
                k.span(),
                format!("node {:?}: unknown kind {:?}", name.get_ref(), k.get_ref()),
                Some(format!("kind is one of {}", quoted(&node_kinds()))),
            )
        })?,
        None => {
            return Err(at(
                name.span(),
                format!("node {:?} has no kind", name.get_ref()),
                Some("add kind = \"docker\" (or \"podman\", \"buildah\")".into()),
            ))
        }
    };
    check_address(name, kind, &raw, at)?;
    let jobs = raw.jobs.map(|j| positive(j, at)).transpose()?;
    let platforms = raw.platforms.map(|p| platform_list(p, at)).transpose()?;
    let push = raw.push.map(|p| route(name, p, at)).transpose()?;
    let text = |v: Option<Spanned<String>>, what: &str| -> Result<_, FileError> {
        v.map(|v| non_empty(v, what, at)).transpose()
    };
    let spec = NodeSpec {
        kind,
        host: text(raw.host, "a daemon address")?,
        context: text(raw.context, "a context name")?,
        url: text(raw.url, "a service URL")?,
        connection: text(raw.connection, "a connection name")?,
        jobs: jobs.map(|(n, _)| n),
        platforms,
        push,
        line: line_of(&span),
    };
    Ok(spec)
}

/// `push = "direct" | "through-cip"`.
fn route(name: &Spanned<String>, v: Spanned<String>, at: &At) -> Result<Route, FileError> {
    match v.get_ref().as_str() {
        "direct" => Ok(Route::Direct),
        "through-cip" => Ok(Route::ThroughCip),
        other => Err(at(
            v.span(),
            format!("node {:?}: unknown push route {other:?}", name.get_ref()),
            Some(
                "push is \"direct\" (the node pushes to the registry) or \"through-cip\" (cip \
                 pushes what the node built); leave it out for the default"
                    .into(),
            ),
        )),
    }
}

/// Each kind of node is reached in its own way: its engine says which keys it takes.
fn check_address(
    name: &Spanned<String>,
    kind: NodeKind,
    raw: &raw::Node,
    at: &At,
) -> Result<(), FileError> {
    let spanned = [
        ("host", &raw.host),
        ("context", &raw.context),
        ("url", &raw.url),
        ("connection", &raw.connection),
    ];
    for (key, v) in spanned {
        if let Some(v) = v {
            check_value(name, key, v, at)?;
        }
    }
    let Some(engine) = kind.engine() else {
        return Ok(());
    };
    let value = |key: &str| {
        spanned
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.as_ref())
    };
    let keys = NodeKeys {
        host: raw.host.as_ref().map(|v| v.get_ref().as_str()),
        context: raw.context.as_ref().map(|v| v.get_ref().as_str()),
        url: raw.url.as_ref().map(|v| v.get_ref().as_str()),
        connection: raw.connection.as_ref().map(|v| v.get_ref().as_str()),
    };
    let Err(problem) = (engine.check_keys)(&keys) else {
        return Ok(());
    };
    let node = name.get_ref();
    let (key, message, hint) = match problem {
        AddressProblem::Misplaced { key, hint } => (
            key,
            format!("node {node:?} ({:?}) takes no {key}", engine.name),
            hint.to_string(),
        ),
        AddressProblem::Both { first, second } => (
            second,
            format!("node {node:?} has both {first} and {second}"),
            "keep one of them".to_string(),
        ),
        AddressProblem::NoScheme { key, hint } => (
            key,
            format!(
                "node {node:?}: {key} {:?} has no scheme",
                value(key).map_or("", |v| v.get_ref().as_str())
            ),
            hint.to_string(),
        ),
    };
    let span = value(key).map_or_else(|| name.span(), |v| v.span());
    Err(at(span, message, Some(hint)))
}

/// The kinds a node may be, for messages.
fn node_kinds() -> Vec<&'static str> {
    BuilderKind::node_names().collect()
}

/// An address or name that reaches an engine's command line (`--url=VALUE`, `DOCKER_HOST`, ssh's
/// host) is one argument: nothing in it may read as an option, there or in ssh.
fn check_value(
    name: &Spanned<String>,
    key: &str,
    v: &Spanned<String>,
    at: &At,
) -> Result<(), FileError> {
    let value = v.get_ref();
    let refuse = |why: String, fix: &str| {
        Err(at(
            v.span(),
            format!("node {:?}: {key} {value:?} {why}", name.get_ref()),
            Some(fix.to_string()),
        ))
    };
    if let Some(bad) = option_like(value) {
        return refuse(
            bad,
            "write the address or name itself; options of the engine are not \
                            configured here",
        );
    }
    if value.chars().any(char::is_control) {
        return refuse(
            "holds a control character (a newline, a tab)".into(),
            "write it on one line, without control characters",
        );
    }
    Ok(())
}

/// Why `value` (an engine address or name from configuration) could be taken for an option: it
/// begins with '-', or it is an `ssh://` address whose user or host does (ssh would read
/// `-oProxyCommand=...` as an option). None when it cannot.
pub fn option_like(value: &str) -> Option<String> {
    if value.starts_with('-') {
        return Some("begins with '-', which the engine would read as an option".into());
    }
    let rest = value.strip_prefix("ssh://")?;
    let authority = rest.split('/').next().unwrap_or("");
    let (user, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if user.is_some_and(|u| u.starts_with('-')) || host.starts_with('-') {
        return Some(
            "has a user or host beginning with '-', which ssh would read as an option".into(),
        );
    }
    None
}

fn farm_spec(
    name: &Spanned<String>,
    raw: Spanned<raw::Farm>,
    nodes: &BTreeMap<String, NodeSpec>,
    at: &At,
    line_of: &LineOf,
) -> Result<FarmSpec, FileError> {
    check_name(name, "farm", at)?;
    let line = line_of(&raw.span());
    let raw = raw.into_inner();
    let Some(members) = raw.nodes else {
        return Err(at(
            name.span(),
            format!("farm {:?} lists no nodes", name.get_ref()),
            Some("add nodes = [\"NODE\", ...]".into()),
        ));
    };
    if members.get_ref().is_empty() {
        return Err(at(
            members.span(),
            format!("farm {:?} lists no nodes", name.get_ref()),
            Some("name at least one node of a [nodes.NAME] table".into()),
        ));
    }
    let mut out = Vec::new();
    for member in members.into_inner() {
        if !nodes.contains_key(member.get_ref()) {
            return Err(at(
                member.span(),
                format!("farm {:?}: no node {:?}", name.get_ref(), member.get_ref()),
                Some(unknown_node_hint(member.get_ref(), nodes)),
            ));
        }
        if !out.contains(member.get_ref()) {
            out.push(member.into_inner());
        }
    }
    Ok(FarmSpec { nodes: out, line })
}

/// "did you mean" for a node name, else the nodes there are.
pub fn unknown_node_hint(name: &str, nodes: &BTreeMap<String, NodeSpec>) -> String {
    let closest = nodes
        .keys()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= 2)
        .min();
    match closest {
        Some((_, k)) => format!("did you mean {k:?}?"),
        None if nodes.is_empty() => "declare it in a [nodes.NAME] table".into(),
        None => format!(
            "the nodes are {}",
            nodes
                .keys()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn check_name(name: &Spanned<String>, what: &str, at: &At) -> Result<(), FileError> {
    let ok = !name.get_ref().is_empty()
        && name
            .get_ref()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(at(
            name.span(),
            format!("{what} name {:?} is not a plain name", name.get_ref()),
            Some("use letters, digits, '-', '_' and '.'".into()),
        ))
    }
}

fn platform_list(list: Spanned<Vec<Spanned<String>>>, at: &At) -> Result<Vec<Platform>, FileError> {
    if list.get_ref().is_empty() {
        return Err(at(
            list.span(),
            "an empty platform list".into(),
            Some("name at least one platform, e.g. [\"linux/amd64\"]".into()),
        ));
    }
    let mut out = Vec::new();
    for item in list.into_inner() {
        let p = parse_platform(&item, at)?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn parse_platform(item: &Spanned<String>, at: &At) -> Result<Platform, FileError> {
    item.get_ref().parse().map_err(|e: String| {
        at(
            item.span(),
            e,
            Some("a platform is OS/ARCH[/VARIANT], e.g. \"linux/arm64\"".into()),
        )
    })
}

/// The most builds a run (or a node) runs at once: far above any machine's CPU count, far below
/// what would exhaust the scheduler's slots.
pub const MAX_JOBS: usize = 1024;

/// The longest stage lease: a year.
pub const MAX_LEASE_HOURS: u64 = 24 * 366;

/// A `jobs` value: 1 to [`MAX_JOBS`].
fn positive(v: Spanned<i64>, at: &At) -> Result<(usize, Range<usize>), FileError> {
    match usize::try_from(*v.get_ref()) {
        Ok(n) if (1..=MAX_JOBS).contains(&n) => Ok((n, v.span())),
        _ => Err(at(
            v.span(),
            format!("jobs = {} is out of range", v.get_ref()),
            Some(format!(
                "jobs is how many builds run at once: a number from 1 to {MAX_JOBS}"
            )),
        )),
    }
}

fn non_empty(v: Spanned<String>, what: &str, at: &At) -> Result<String, FileError> {
    if v.get_ref().trim().is_empty() {
        Err(at(v.span(), format!("{what} is empty"), None))
    } else {
        Ok(v.into_inner())
    }
}

fn quoted(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("{i:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The toml crate's message, with a hint for the mistakes people make most.
fn explain_toml_error(message: &str) -> (String, Option<String>) {
    let message = message.trim().to_string();
    let hint = if message.starts_with("unknown field") {
        Some(
            "the keys are: [registry] remote, local, stage_lease_hours, mirrors; [build] platforms, jobs, builder, progress; \
             [nodes.NAME] kind, host, context, url, connection, jobs, platforms, push; [farms.NAME] nodes; \
             [ci.runners] \"OS/ARCH\" = \"LABEL\""
                .into(),
        )
    } else if message.contains("duplicate key") {
        Some("each key and table may appear once".into())
    } else if message.contains("invalid type") {
        Some(
            "strings are quoted (\"linux/amd64\"), lists are [\"a\", \"b\"], jobs is a number"
                .into(),
        )
    } else {
        None
    };
    (message, hint)
}

/// Byte offsets to 1-based line and column.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { starts }
    }

    fn locate(&self, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        (line, offset - self.starts[line - 1] + 1)
    }
}

/// The file as written, before its values are checked.
mod raw {
    use super::*;

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct File {
        #[serde(default)]
        pub registry: Registry,
        #[serde(default)]
        pub build: Build,
        #[serde(default)]
        pub nodes: BTreeMap<Spanned<String>, Spanned<Node>>,
        #[serde(default)]
        pub farms: BTreeMap<Spanned<String>, Spanned<Farm>>,
        #[serde(default)]
        pub ci: Ci,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Registry {
        pub remote: Option<Spanned<String>>,
        pub local: Option<Spanned<String>>,
        pub stage_lease_hours: Option<Spanned<i64>>,
        #[serde(default)]
        pub mirrors: BTreeMap<Spanned<String>, Spanned<String>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Build {
        pub platforms: Option<Spanned<Vec<Spanned<String>>>>,
        pub jobs: Option<Spanned<i64>>,
        pub builder: Option<Spanned<String>>,
        pub progress: Option<Spanned<String>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Node {
        pub kind: Option<Spanned<String>>,
        pub host: Option<Spanned<String>>,
        pub context: Option<Spanned<String>>,
        pub url: Option<Spanned<String>>,
        pub connection: Option<Spanned<String>>,
        pub jobs: Option<Spanned<i64>>,
        pub platforms: Option<Spanned<Vec<Spanned<String>>>>,
        pub push: Option<Spanned<String>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Farm {
        pub nodes: Option<Spanned<Vec<Spanned<String>>>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Ci {
        #[serde(default)]
        pub runners: BTreeMap<Spanned<String>, Spanned<String>>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ProjectFile, FileError> {
        ProjectFile::parse(Path::new("/p/cip.toml"), text)
    }

    const FULL: &str = r#"
[registry]
remote = "registry.example.com/team"
local = "localhost:5000"

[build]
platforms = ["linux/arm64", "linux/amd64"]
jobs = 4
builder = "buildah"
progress = "plain"

[nodes.amd-1]
kind = "docker"
host = "ssh://builder@amd-1.example"
jobs = 4

[nodes.arm-1]
kind = "docker"
host = "unix:///run/arm-1/docker.sock"
platforms = ["linux/arm64"]

[nodes.pod]
kind = "podman"
connection = "remote"

[farms.ci]
nodes = ["amd-1", "arm-1"]

[ci.runners]
"linux/arm64" = "ubuntu-24.04-arm"
"#;

    #[test]
    fn reads_every_section_with_lines() {
        let f = parse(FULL).unwrap();
        assert_eq!(
            f.registry.remote.as_ref().unwrap().value,
            "registry.example.com/team"
        );
        assert_eq!(f.registry.remote.as_ref().unwrap().line, 3);
        let platforms = &f.build.platforms.as_ref().unwrap().value;
        assert_eq!(platforms[0].to_string(), "linux/amd64");
        assert_eq!(f.build.jobs.as_ref().unwrap().value, 4);
        assert_eq!(
            f.build.builder.as_ref().unwrap().value,
            BuilderKind::engine_named("buildah").unwrap()
        );
        assert_eq!(f.build.progress.as_ref().unwrap().value, "plain");
        let arm = &f.nodes["arm-1"];
        assert_eq!(arm.kind.name(), "docker");
        assert_eq!(
            arm.platforms.as_ref().unwrap()[0].to_string(),
            "linux/arm64"
        );
        assert_eq!(f.nodes["amd-1"].jobs, Some(4));
        assert_eq!(f.nodes["pod"].connection.as_deref(), Some("remote"));
        assert_eq!(f.farms["ci"].nodes, ["amd-1", "arm-1"]);
        let arm64: Platform = "linux/arm64".parse().unwrap();
        assert_eq!(f.ci.runners[&arm64].value, "ubuntu-24.04-arm");
        assert_eq!(f.ci.runners[&arm64].line, 30);
    }

    #[test]
    fn an_empty_file_is_all_defaults() {
        let f = parse("# nothing yet\n").unwrap();
        assert!(f.registry.remote.is_none() && f.build.jobs.is_none() && f.nodes.is_empty());
    }

    fn error(text: &str) -> FileError {
        parse(text).expect_err(text)
    }

    #[test]
    fn mistakes_name_line_column_and_fix() {
        let e = error("[build]\njobz = 4\n");
        assert_eq!((e.line, e.column), (2, 1), "{e}");
        assert!(e.message.contains("jobz"), "{e}");
        assert!(e.hint.as_deref().unwrap().contains("jobs"), "{e}");

        let e = error("[build]\njobs = 0\n");
        assert_eq!(e.line, 2, "{e}");
        assert!(e.to_string().contains("/p/cip.toml:2:8: jobs = 0"), "{e}");

        let e = error("[build]\nplatforms = [\"linux/amd64\", \"linux/amd46\"]\n");
        assert_eq!((e.line, e.column), (2, 29), "{e}");

        let e = error("[build]\nbuilder = \"kaniko\"\n");
        assert!(e.hint.as_deref().unwrap().contains("buildah"), "{e}");

        let e = error("[build]\nprogress = \"fancy\"\n");
        assert!(e.hint.as_deref().unwrap().contains("\"plain\""), "{e}");

        let e = error("[registry]\nremote = \"user:pw@reg.example\"\n");
        assert_eq!(e.line, 2, "{e}");
        assert!(!e.to_string().contains("pw"), "never echo credentials: {e}");

        let e = error("[build\n");
        assert_eq!(e.line, 1, "{e}");
    }

    #[test]
    fn nodes_are_checked_by_kind() {
        let e = error("[nodes.a]\nhost = \"unix:///s\"\n");
        assert!(e.message.contains("no kind"), "{e}");
        let e = error("[nodes.a]\nkind = \"dokcer\"\n");
        assert_eq!(e.line, 2, "{e}");
        let e = error("[nodes.a]\nkind = \"docker\"\nhost = \"amd-1:2375\"\n");
        assert!(e.hint.as_deref().unwrap().contains("tcp://"), "{e}");
        let e = error("[nodes.a]\nkind = \"docker\"\nurl = \"unix:///s\"\n");
        assert!(e.message.contains("takes no url"), "{e}");
        let e = error("[nodes.a]\nkind = \"buildah\"\nhost = \"unix:///s\"\n");
        assert!(e.message.contains("takes no host"), "{e}");
        let e = error("[nodes.a]\nkind = \"podman\"\nurl = \"unix:///s\"\nconnection = \"c\"\n");
        assert_eq!(e.line, 4, "{e}");
        let e = error("[nodes.\"a b\"]\nkind = \"docker\"\n");
        assert!(e.message.contains("not a plain name"), "{e}");
    }

    /// Every address message of the three engines, word for word, at the key it is about: they
    /// come from each engine's file in the registry now.
    #[test]
    fn address_messages_name_the_node_the_key_and_the_fix() {
        let docker_hint =
            "a docker node has host = \"unix://...\" | \"tcp://...\" | \"ssh://...\" or context = \"NAME\"";
        let podman_hint = "a podman node has url = \"unix://...\" | \"ssh://...\" or connection = \
                           \"NAME\", or neither for the local podman";
        let table: &[(&str, usize, &str, &str)] = &[
            (
                "kind = \"docker\"\nurl = \"unix:///s\"",
                3,
                "node \"n\" (\"docker\") takes no url",
                docker_hint,
            ),
            (
                "kind = \"docker\"\nconnection = \"c\"",
                3,
                "node \"n\" (\"docker\") takes no connection",
                docker_hint,
            ),
            (
                "kind = \"docker\"\nhost = \"unix:///s\"\ncontext = \"c\"",
                4,
                "node \"n\" has both host and context",
                "keep one of them",
            ),
            (
                "kind = \"docker\"\nhost = \"amd-1:2375\"",
                3,
                "node \"n\": host \"amd-1:2375\" has no scheme",
                "write unix:///path/docker.sock, tcp://HOST:PORT or ssh://USER@HOST",
            ),
            (
                "kind = \"podman\"\ncontext = \"c\"",
                3,
                "node \"n\" (\"podman\") takes no context",
                podman_hint,
            ),
            (
                "kind = \"podman\"\nurl = \"far\"",
                3,
                "node \"n\": url \"far\" has no scheme",
                "write unix:///path/podman.sock, ssh://USER@HOST[:PORT]/path/podman.sock or \
                 tcp://HOST:PORT",
            ),
            (
                "kind = \"podman\"\nurl = \"ssh://far\"\nconnection = \"c\"",
                4,
                "node \"n\" has both url and connection",
                "keep one of them",
            ),
            (
                "kind = \"buildah\"\nconnection = \"c\"",
                3,
                "node \"n\" (\"buildah\") takes no connection",
                "a buildah node is this machine's buildah: it takes no address",
            ),
        ];
        for (keys, line, message, hint) in table {
            let e = error(&format!("[nodes.n]\n{keys}\n"));
            assert_eq!(
                (e.line, e.message.as_str(), e.hint.as_deref()),
                (*line, *message, Some(*hint)),
                "{keys}"
            );
        }
        for ok in [
            "kind = \"docker\"\nhost = \"ssh://b@amd-1\"",
            "kind = \"docker\"\ncontext = \"c\"",
            "kind = \"podman\"\nurl = \"unix:///run/p.sock\"",
            "kind = \"podman\"",
            "kind = \"buildah\"",
        ] {
            let text = format!("[nodes.n]\n{ok}\n");
            assert!(
                ProjectFile::parse(Path::new("cip.toml"), &text).is_ok(),
                "{ok}"
            );
        }
    }

    #[test]
    fn the_stage_lease_is_a_number_of_hours_from_one_to_a_year() {
        for text in [
            "[registry]\nstage_lease_hours = 0\n",
            "[registry]\nstage_lease_hours = -3\n",
            "[registry]\nstage_lease_hours = 9000\n",
        ] {
            let e = error(text);
            assert!(e.message.contains("stage_lease_hours"), "{e}");
            assert!(e.hint.as_deref().unwrap().contains("1 to 8784"), "{e}");
        }
        let f = parse("[registry]\nstage_lease_hours = 48\n").unwrap();
        let lease = f.registry.stage_lease_hours.unwrap();
        assert_eq!((lease.value, lease.line), (48, 2));
    }

    #[test]
    fn jobs_are_bounded_wherever_they_are() {
        for text in [
            "[build]\njobs = 9223372036854775807\n",
            "[build]\njobs = 1025\n",
            "[nodes.a]\nkind = \"docker\"\njobs = 2305843009213693952\n",
        ] {
            let e = error(text);
            assert!(e.message.contains("out of range"), "{e}");
            assert!(e.hint.as_deref().unwrap().contains("1 to 1024"), "{e}");
        }
        assert_eq!(
            parse("[build]\njobs = 1024\n")
                .unwrap()
                .build
                .jobs
                .unwrap()
                .value,
            MAX_JOBS
        );
    }

    #[test]
    fn addresses_and_names_cannot_read_as_options() {
        let cases = [
            ("podman", "url", "--url=unix:///evil.sock"),
            ("podman", "connection", "-c evil"),
            ("docker", "context", "--host=tcp://evil:2375"),
            ("docker", "host", "ssh://-oProxyCommand=touch /tmp/x@h"),
            ("docker", "host", "ssh://u@-oProxyCommand=x"),
            ("podman", "url", "ssh://-F/tmp/cfg@host/run/podman.sock"),
        ];
        for (kind, key, value) in cases {
            let text = format!("[nodes.a]\nkind = \"{kind}\"\n{key} = {value:?}\n");
            let e = error(&text);
            assert_eq!((e.line, e.column), (3, key.len() + 4), "{text}: {e}");
            assert!(e.message.contains("'-'"), "{e}");
        }
        let e = error("[nodes.a]\nkind = \"podman\"\nurl = \"unix:///a\\nb\"\n");
        assert!(e.message.contains("control character"), "{e}");
        let e = error("[nodes.a]\nkind = \"podman\"\nurl = \"/run/podman.sock\"\n");
        assert!(e.message.contains("no scheme"), "{e}");
        // A socket path with a space, or an option after it, is one value: allowed, never split.
        let text = "[nodes.a]\nkind = \"podman\"\nurl = \"unix:///x.sock --hooks-dir=/tmp/evil\"\n";
        assert_eq!(
            parse(text).unwrap().nodes["a"].url.as_deref(),
            Some("unix:///x.sock --hooks-dir=/tmp/evil")
        );
    }

    #[test]
    fn a_nodes_push_route_is_checked() {
        let f = parse("[nodes.a]\nkind = \"docker\"\npush = \"through-cip\"\n").unwrap();
        assert_eq!(f.nodes["a"].push, Some(Route::ThroughCip));
        let f = parse("[nodes.a]\nkind = \"buildah\"\npush = \"direct\"\n").unwrap();
        assert_eq!(f.nodes["a"].push, Some(Route::Direct));
        assert_eq!(
            parse("[nodes.a]\nkind = \"docker\"\n").unwrap().nodes["a"].push,
            None
        );
        let e = error("[nodes.a]\nkind = \"docker\"\n\npush = \"by-digest\"\n");
        assert_eq!((e.line, e.column), (4, 8), "{e}");
        assert!(
            e.message.contains("unknown push route \"by-digest\""),
            "{e}"
        );
        assert!(
            e.hint.as_deref().unwrap().contains("\"through-cip\""),
            "{e}"
        );
    }

    #[test]
    fn farms_name_declared_nodes() {
        let text = "[nodes.amd-1]\nkind = \"docker\"\nhost = \"unix:///s\"\n[farms.ci]\nnodes = [\"amd-2\"]\n";
        let e = error(text);
        assert_eq!((e.line, e.column), (5, 10), "{e}");
        assert_eq!(e.hint.as_deref(), Some("did you mean \"amd-1\"?"));
        let e = error("[farms.ci]\nnodes = []\n");
        assert!(e.message.contains("lists no nodes"), "{e}");
    }

    #[test]
    fn ci_runner_platforms_are_checked() {
        let e = error("[ci.runners]\n\"linux/arm65\" = \"x\"\n");
        assert_eq!(e.line, 2, "{e}");
        let e = error("[ci.runners]\n\"linux/arm64\" = \"\"\n");
        assert!(e.message.contains("empty"), "{e}");
    }
}
