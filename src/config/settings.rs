//! The settings a team may share, resolved once with one precedence: a flag on the command line,
//! else the environment (`CIP_*`), else `cip.toml`, else cip's default. Each value remembers where it
//! came from, for `cip config` and for error messages.
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::file::{Located, ProjectFile, PROGRESS_MODES};
use super::RunConfig;
use crate::builders::BuilderKind;
use crate::platform::{self, Platform};
use crate::registry::address::Address;

/// The local registry when nothing names one.
pub const LOCAL_REGISTRY: &str = "localhost:5000";
/// The platforms of contexts that declare none, when nothing else says.
pub const DEFAULT_PLATFORMS: &str = "linux/amd64,linux/arm64";

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag(&'static str),
    Env(&'static str),
    File { path: PathBuf, line: usize },
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Env(var) => write!(f, "environment {var}"),
            Source::File { path, line } => write!(f, "{}:{line}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting<T> {
    pub value: T,
    pub source: Source,
}

/// The values given on the command line (`None`: not given, whatever the parser's default).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub remote_registry: Option<String>,
    pub local_registry: Option<String>,
    pub default_platforms: Option<Vec<Platform>>,
    pub jobs: Option<usize>,
    pub builder: Option<BuilderKind>,
    pub progress: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// `None`: nothing names a remote registry (the commands that need one say how to give it).
    pub remote_registry: Option<Setting<String>>,
    pub local_registry: Setting<String>,
    #[serde(serialize_with = "platform_list")]
    pub default_platforms: Setting<Vec<Platform>>,
    /// `None` in the value: one build per CPU (at least 2), decided where the run starts.
    pub jobs: Setting<Option<usize>>,
    #[serde(serialize_with = "builder")]
    pub builder: Setting<BuilderKind>,
    pub progress: Setting<String>,
}

impl Settings {
    /// Resolves every setting; a bad environment value is an error naming its variable (the file's
    /// values were checked when it was read).
    pub fn resolve(
        flags: &Flags,
        env: &RunConfig,
        file: Option<&ProjectFile>,
    ) -> anyhow::Result<Settings> {
        let remote_registry = pick(
            flags.remote_registry.clone(),
            "--remote-registry",
            env_value(env, "CIP_REMOTE_REGISTRY", parse_address)?,
            file.and_then(|f| located(f, &f.registry.remote)),
        );
        let local_registry = pick(
            flags.local_registry.clone(),
            "--local-registry",
            env_value(env, "CIP_LOCAL_REGISTRY", parse_address)?,
            file.and_then(|f| located(f, &f.registry.local)),
        )
        .unwrap_or_else(|| default(LOCAL_REGISTRY.to_string()));
        let default_platforms = pick(
            flags.default_platforms.clone(),
            "--default-platforms",
            env_value(env, "CIP_DEFAULT_PLATFORMS", platform::parse_list)?,
            file.and_then(|f| located(f, &f.build.platforms)),
        )
        .unwrap_or_else(|| {
            default(platform::parse_list(DEFAULT_PLATFORMS).expect("the default parses"))
        });
        let jobs = pick(
            flags.jobs,
            "--jobs",
            env_value(env, "CIP_JOBS", parse_jobs)?,
            file.and_then(|f| located(f, &f.build.jobs)),
        );
        let jobs = match jobs {
            Some(s) => Setting {
                value: Some(s.value),
                source: s.source,
            },
            None => default(None),
        };
        let builder = pick(
            flags.builder,
            "--builder",
            env_value(env, "CIP_BUILDER", parse_builder)?,
            file.and_then(|f| located(f, &f.build.builder)),
        )
        .unwrap_or_else(|| default(BuilderKind::AUTO));
        let progress = pick(
            flags.progress.clone(),
            "--progress",
            env_value(env, "CIP_PROGRESS", parse_progress)?,
            file.and_then(|f| located(f, &f.build.progress)),
        )
        .unwrap_or_else(|| default("auto".to_string()));
        Ok(Settings {
            remote_registry,
            local_registry,
            default_platforms,
            jobs,
            builder,
            progress,
        })
    }

    /// The remote registry, or an error saying the three ways to give one.
    pub fn remote_registry(&self) -> anyhow::Result<&str> {
        match &self.remote_registry {
            Some(s) => Ok(&s.value),
            None => anyhow::bail!(
                "no remote registry given\n  hint: pass --remote-registry HOST[:PORT][/PATH], set \
                 CIP_REMOTE_REGISTRY, or write remote = \"HOST/PATH\" under [registry] in cip.toml"
            ),
        }
    }
}

/// The first of flag, environment and file that gives a value.
fn pick<T>(
    flag: Option<T>,
    flag_name: &'static str,
    env: Option<Setting<T>>,
    file: Option<Setting<T>>,
) -> Option<Setting<T>> {
    flag.map(|value| Setting {
        value,
        source: Source::Flag(flag_name),
    })
    .or(env)
    .or(file)
}

fn default<T>(value: T) -> Setting<T> {
    Setting {
        value,
        source: Source::Default,
    }
}

fn located<T: Clone>(file: &ProjectFile, v: &Option<Located<T>>) -> Option<Setting<T>> {
    v.as_ref().map(|l| Setting {
        value: l.value.clone(),
        source: Source::File {
            path: file.path.clone(),
            line: l.line,
        },
    })
}

fn env_value<T>(
    env: &RunConfig,
    var: &'static str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> anyhow::Result<Option<Setting<T>>> {
    let Some(raw) = env.var(var) else {
        return Ok(None);
    };
    let value = parse(raw.trim()).map_err(|e| anyhow::anyhow!("{var}: {e}"))?;
    Ok(Some(Setting {
        value,
        source: Source::Env(var),
    }))
}

fn parse_address(s: &str) -> Result<String, String> {
    // The address's own error never repeats a credential it found.
    Address::parse(s).map_err(|e| format!("{e:#}"))?;
    Ok(s.to_string())
}

fn parse_jobs(s: &str) -> Result<usize, String> {
    let max = crate::config::file::MAX_JOBS;
    s.parse()
        .ok()
        .filter(|n: &usize| (1..=max).contains(n))
        .ok_or_else(|| format!("{s:?} is not a number from 1 to {max}"))
}

fn parse_builder(s: &str) -> Result<BuilderKind, String> {
    s.parse()
}

fn parse_progress(s: &str) -> Result<String, String> {
    if PROGRESS_MODES.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not one of {}", PROGRESS_MODES.join(", ")))
    }
}

fn platform_list<S: serde::Serializer>(
    v: &Setting<Vec<Platform>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let text: Vec<String> = v.value.iter().map(Platform::to_string).collect();
    Setting {
        value: text.join(","),
        source: v.source.clone(),
    }
    .serialize(s)
}

fn builder<S: serde::Serializer>(v: &Setting<BuilderKind>, s: S) -> Result<S::Ok, S::Error> {
    Setting {
        value: v.value.name(),
        source: v.source.clone(),
    }
    .serialize(s)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> RunConfig {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RunConfig::from_vars(vars).unwrap()
    }

    fn file(text: &str) -> ProjectFile {
        ProjectFile::parse(Path::new("/p/cip.toml"), text).unwrap()
    }

    const FILE: &str = "[registry]\nremote = \"file.example/team\"\nlocal = \"127.0.0.1:5999\"\n\
                        [build]\njobs = 3\nbuilder = \"podman\"\nprogress = \"plain\"\n\
                        platforms = [\"linux/arm64\"]\n";

    #[test]
    fn flag_beats_environment_beats_file_beats_default() {
        let f = file(FILE);
        let all_env = env(&[
            ("CIP_REMOTE_REGISTRY", "env.example"),
            ("CIP_JOBS", "7"),
            ("CIP_PROGRESS", "quiet"),
        ]);
        let flags = Flags {
            jobs: Some(9),
            ..Flags::default()
        };
        let s = Settings::resolve(&flags, &all_env, Some(&f)).unwrap();
        assert_eq!(s.jobs.value, Some(9));
        assert_eq!(s.jobs.source, Source::Flag("--jobs"));
        assert_eq!(s.remote_registry.as_ref().unwrap().value, "env.example");
        assert_eq!(s.progress.source, Source::Env("CIP_PROGRESS"));
        assert_eq!(s.local_registry.value, "127.0.0.1:5999");
        let at_line = |line| Source::File {
            path: "/p/cip.toml".into(),
            line,
        };
        assert_eq!(s.local_registry.source, at_line(3));
        assert_eq!(
            s.builder.value,
            BuilderKind::engine_named("podman").unwrap()
        );
        assert_eq!(s.default_platforms.value[0].to_string(), "linux/arm64");

        let s = Settings::resolve(&Flags::default(), &env(&[]), None).unwrap();
        assert_eq!(s.local_registry, default(LOCAL_REGISTRY.to_string()));
        assert_eq!(s.jobs, default(None));
        assert_eq!(s.builder.value, BuilderKind::AUTO);
        assert_eq!(s.progress.value, "auto");
        assert!(s.remote_registry.is_none());
        let e = s.remote_registry().unwrap_err().to_string();
        assert!(
            e.contains("--remote-registry") && e.contains("cip.toml"),
            "{e}"
        );
    }

    #[test]
    fn bad_environment_values_name_their_variable() {
        for (var, value) in [
            ("CIP_JOBS", "0"),
            ("CIP_BUILDER", "kaniko"),
            ("CIP_PROGRESS", "fancy"),
            ("CIP_DEFAULT_PLATFORMS", "linux/amd46"),
            ("CIP_REMOTE_REGISTRY", "user:secret@reg.example"),
        ] {
            let e = Settings::resolve(&Flags::default(), &env(&[(var, value)]), None)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(var), "{e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }
}
