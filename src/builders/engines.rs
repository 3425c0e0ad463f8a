//! The engines cip drives, registered in one place. Each engine is described once, in its own file,
//! by one [`Engine`] value: the name cip.toml and `--builder` spell it, the keys of a
//! `[nodes.NAME]` table that say where it runs (checked when cip.toml is read, turned into the
//! engine's environment when the node is probed), what it can build ([`Features`]), and how it is
//! found and made into a [`Backend`]. Everything else asks the registry ([`ENGINES`], through
//! [`BuilderKind`]); adding an engine is its file plus one line in [`ENGINES`].
use std::fmt;
use std::sync::Arc;

use super::{Backend, NodeEnv, NotUsable};

/// One engine cip can build with.
pub struct Engine {
    /// How cip.toml (`builder = `, `kind = `) and `--builder` name it.
    pub name: &'static str,
    /// Tried by `--builder auto`, in the registry's order.
    pub auto: bool,
    /// The address keys of a node of this kind, checked when cip.toml is read.
    pub check_keys: fn(&NodeKeys) -> Result<(), AddressProblem>,
    /// Where cip reaches a node of this kind (as `cip farm` shows it), and the environment its
    /// engine runs with; why not, for keys that do not say.
    pub reach: fn(&NodeKeys) -> Result<(String, NodeEnv), String>,
    /// Finds the engine's program for a node configured by the environment, and asks it what it
    /// is (version, native platforms).
    pub detect: fn(NodeEnv) -> Result<Arc<dyn Backend>, NotUsable>,
    pub features: Features,
}

/// What an engine can build, known before building (see [`super::capabilities`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    pub heredocs: Heredocs,
}

/// Since when an engine parses Dockerfile heredocs (`RUN <<EOF`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heredocs {
    /// From this (major, minor) version on; `# syntax=` lines are ignored.
    Since(u64, u64),
    /// Its built-in dockerfile frontend parses them from this version on; older versions only
    /// through a frontend a `# syntax=` line names, pulled at build time (BuildKit).
    FrontendSince(u64, u64),
}

/// The keys of a `[nodes.NAME]` table that say where its engine runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeKeys<'a> {
    /// `host`: a daemon address.
    pub host: Option<&'a str>,
    /// `context`: a docker context.
    pub context: Option<&'a str>,
    /// `url`: a service URL.
    pub url: Option<&'a str>,
    /// `connection`: a system connection.
    pub connection: Option<&'a str>,
}

impl<'a> NodeKeys<'a> {
    /// Every key, in the order cip.toml's messages check them.
    pub const NAMES: [&'static str; 4] = ["host", "context", "url", "connection"];

    /// The value of `key` (one of [`NodeKeys::NAMES`]).
    pub fn get(&self, key: &str) -> Option<&'a str> {
        match key {
            "host" => self.host,
            "context" => self.context,
            "url" => self.url,
            "connection" => self.connection,
            _ => None,
        }
    }

    /// [`AddressProblem::Misplaced`] for the first of `keys` that is given.
    pub fn refuse(&self, keys: &[&'static str], hint: &'static str) -> Result<(), AddressProblem> {
        match keys.iter().find(|k| self.get(k).is_some()) {
            Some(&key) => Err(AddressProblem::Misplaced { key, hint }),
            None => Ok(()),
        }
    }

    /// [`AddressProblem::Both`] when `first` and `second` are both given.
    pub fn one_of(&self, first: &'static str, second: &'static str) -> Result<(), AddressProblem> {
        match (self.get(first), self.get(second)) {
            (Some(_), Some(_)) => Err(AddressProblem::Both { first, second }),
            _ => Ok(()),
        }
    }

    /// [`AddressProblem::NoScheme`] when `key` is given without one of `schemes`.
    pub fn scheme(
        &self,
        key: &'static str,
        schemes: &[&str],
        hint: &'static str,
    ) -> Result<(), AddressProblem> {
        match self.get(key) {
            Some(v) if !schemes.iter().any(|s| v.starts_with(s)) => {
                Err(AddressProblem::NoScheme { key, hint })
            }
            _ => Ok(()),
        }
    }
}

/// What is wrong with the address keys of a node; cip.toml's reader says it with the file, line
/// and node name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressProblem {
    /// The engine takes no `key`.
    Misplaced {
        key: &'static str,
        hint: &'static str,
    },
    /// Both keys are given; one says where.
    Both {
        first: &'static str,
        second: &'static str,
    },
    /// `key`'s value names no scheme the engine knows.
    NoScheme {
        key: &'static str,
        hint: &'static str,
    },
}

/// The registry, in the order `--builder auto` tries its engines (and lists names).
pub static ENGINES: &[&Engine] = &[
    &super::buildah::ENGINE,
    &super::podman::ENGINE,
    &super::docker::ENGINE,
    #[cfg(test)]
    &super::in_process::ENGINE,
];

/// What `auto` says in `--help`.
const AUTO_HELP: &str =
    "The first of buildah, podman, docker found on PATH (docker only if its daemon answers)";

/// Which engine builds: one of the registry's, or `auto` (`--builder`, `builder =`: the first
/// engine found). A node's kind (`[nodes.NAME] kind =`) is never `auto`.
#[derive(Clone, Copy)]
pub struct BuilderKind(Option<&'static Engine>);

impl BuilderKind {
    /// The first engine found (see [`super::detect`]).
    pub const AUTO: BuilderKind = BuilderKind(None);

    /// The registered engine named `name` (any case); None for `auto` and unknown names.
    pub fn engine_named(name: &str) -> Option<BuilderKind> {
        ENGINES
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
            .map(|e| BuilderKind(Some(e)))
    }

    /// The kind of `engine`, what its backends answer to [`Backend::kind`].
    pub fn of(engine: &'static Engine) -> BuilderKind {
        BuilderKind(Some(engine))
    }

    /// The engine, None for `auto`.
    pub fn engine(self) -> Option<&'static Engine> {
        self.0
    }

    pub fn name(self) -> &'static str {
        self.0.map_or("auto", |e| e.name)
    }

    /// Every name `--builder` and `builder =` take, with what `--help` says of it.
    pub fn names() -> impl Iterator<Item = (&'static str, Option<&'static str>)> {
        std::iter::once(("auto", Some(AUTO_HELP))).chain(ENGINES.iter().map(|e| (e.name, None)))
    }

    /// Every name `[nodes.NAME] kind =` takes.
    pub fn node_names() -> impl Iterator<Item = &'static str> {
        ENGINES.iter().map(|e| e.name)
    }
}

impl PartialEq for BuilderKind {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for BuilderKind {}

impl fmt::Debug for BuilderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for BuilderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BuilderKind {
    type Err = String;

    /// `auto` or a registered engine's name, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(BuilderKind::AUTO);
        }
        BuilderKind::engine_named(s).ok_or_else(|| {
            let names: Vec<&str> = BuilderKind::names().map(|(n, _)| n).collect();
            format!("{s:?} is not one of {}", names.join(", "))
        })
    }
}

impl serde::Serialize for BuilderKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_in_any_case_and_auto_is_no_engine() {
        let names: Vec<&str> = BuilderKind::names().map(|(n, _)| n).collect();
        assert_eq!(names[..4], ["auto", "buildah", "podman", "docker"]);
        for name in &names {
            let kind: BuilderKind = name.to_uppercase().parse().unwrap();
            assert_eq!(kind.name(), *name);
            assert_eq!(kind.to_string(), *name);
        }
        assert_eq!(
            "auto"
                .parse::<BuilderKind>()
                .unwrap()
                .engine()
                .map(|e| e.name),
            None
        );
        assert!(BuilderKind::engine_named("auto").is_none());
        let e = "kaniko".parse::<BuilderKind>().unwrap_err();
        assert!(
            e.starts_with("\"kaniko\" is not one of auto, buildah, podman, docker"),
            "{e}"
        );
    }

    #[test]
    fn each_engine_is_registered_once() {
        let mut names: Vec<&str> = BuilderKind::node_names().collect();
        let all = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all);
        assert!(!names.contains(&"auto"));
    }

    #[test]
    fn address_rules() {
        let keys = NodeKeys {
            host: Some("amd-1:2375"),
            context: Some("x"),
            ..NodeKeys::default()
        };
        assert_eq!(
            keys.refuse(&["url", "context"], "h"),
            Err(AddressProblem::Misplaced {
                key: "context",
                hint: "h"
            })
        );
        assert!(keys.refuse(&["url"], "h").is_ok());
        assert!(keys.one_of("host", "context").is_err());
        assert!(keys.one_of("host", "url").is_ok());
        assert!(keys.scheme("host", &["ssh://"], "h").is_err());
        assert!(keys.scheme("url", &["ssh://"], "h").is_ok());
    }
}
