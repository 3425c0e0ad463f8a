//! The run configuration: every setting cip takes from its environment, read once, when the run
//! starts ([`RunConfig::from_env`] in `main`, so that a bad value stops the run before anything
//! happens). Nothing else in cip reads the environment, except credential lookup, which follows
//! docker's and podman's own rules (`registry::auth`); builder processes inherit it as it is.
//!
//! There is no global copy: the command line's `resolve` turns it, with the flags and cip.toml,
//! into the plain option values of `options`, and the stages get what they need as fields
//! of those (the retry policy, timeouts, CA file and `TMPDIR` in `ConnectOptions`, the planning
//! concurrency and the binfmt directory in `RunOptions`, the local node's variables and the
//! farm's probe settings in `FarmOptions`). Two process-wide switches are set from it where the
//! run starts: the display mode (`progress::set_mode`) and the timing lines
//! (`output::show_timings`).
//!
//! | variable | setting |
//! |---|---|
//! | `CIP_RETRY_ATTEMPTS`, `CIP_RETRY_MAX_SECONDS`, `CIP_RETRY_BASE_MS` | [`RunConfig::retry`] |
//! | `CIP_REQUEST_TIMEOUT_SECONDS`, `CIP_READ_TIMEOUT_SECONDS` | [`RunConfig::timeouts`] |
//! | `CIP_QUERY_CONCURRENCY` | [`RunConfig::query_concurrency`] (registry lookups at once, 32) |
//! | `CIP_TIMINGS=1` | [`RunConfig::timings`] (how long each phase took) |
//! | `SSL_CERT_FILE` | [`RunConfig::ssl_cert_file`] (a CA trusted beside `--ca-cert`) |
//! | `CIP_BINFMT_DIR` | [`RunConfig::binfmt_dir`] (where emulators are registered) |
//! | `CIP_PROGRESS`, `CI` | [`RunConfig::progress`], [`RunConfig::ci`] (the display mode, below `--progress`) |
//! | `CIP_FARM_PROBE_SECONDS` | [`RunConfig::probe_timeout`] (how long a build node may take to answer) |
//! | `TMPDIR` | [`RunConfig::temp_dir`] (where the private directories builders get live) |
//! | `PATH`, `STORAGE_DRIVER`, `BUILDAH_ISOLATION`, `CIP_BUILDAH_GLOBAL_ARGS`, `CIP_PODMAN_GLOBAL_ARGS`, `DOCKER_HOST`, `CIP_DOCKER` | the local build node ([`RunConfig::local_node`], a `builders::NodeEnv`) |
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub mod file;
pub mod settings;

use anyhow::Context as _;

use crate::registry::retry::RetryPolicy;
use crate::registry::timeouts::Timeouts;

/// Registry lookups at once by default: enough to keep a registry busy, few enough not to exhaust
/// its connections.
const QUERY_CONCURRENCY: usize = 32;
/// More lookups at once than any registry serves.
const MAX_QUERY_CONCURRENCY: usize = 1024;
/// Where binfmt_misc registers emulators.
const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

#[derive(Debug, Clone)]
pub struct RunConfig {
    /// How registry requests are retried.
    pub retry: RetryPolicy,
    /// How long a registry may stay silent.
    pub timeouts: Timeouts,
    /// How many registry lookups run at once while planning.
    pub query_concurrency: usize,
    /// Print how long each phase took.
    pub timings: bool,
    /// A CA certificate trusted beside `--ca-cert`.
    pub ssl_cert_file: Option<PathBuf>,
    /// Where binfmt_misc registers emulators.
    pub binfmt_dir: PathBuf,
    /// Where temporary directories go (`TMPDIR`, else `/tmp`).
    pub temp_dir: PathBuf,
    /// The display mode `CIP_PROGRESS` names (`--progress` wins over it).
    pub progress: Option<crate::progress::Progress>,
    /// Running in CI (`CI` set): `--progress auto` is plain there.
    pub ci: bool,
    /// How long a build node may take to answer its probe (`CIP_FARM_PROBE_SECONDS`).
    pub probe_timeout: Duration,
    /// The environment as the run started, for the settings of the local build node.
    vars: Arc<HashMap<String, String>>,
}

impl RunConfig {
    /// The configuration the process environment gives.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_vars(std::env::vars().collect())
    }

    /// The reporter of a command: the display mode `flag` (`--progress`, `-q`) or else
    /// `CIP_PROGRESS` names, `auto` made `tty` on a terminal outside CI and `plain` elsewhere.
    pub fn reporter(
        &self,
        flag: Option<crate::progress::Progress>,
        verbose: bool,
    ) -> std::sync::Arc<crate::progress::Reporter> {
        let is_term = console::Term::stderr().is_term();
        let mode = crate::progress::resolve(&[flag, self.progress], is_term, self.ci);
        crate::progress::Reporter::new(mode, verbose)
    }

    /// The configuration `vars` give; a bad value is an error naming its variable.
    pub fn from_vars(vars: HashMap<String, String>) -> anyhow::Result<Self> {
        let get = |k: &str| {
            vars.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let query_concurrency = match get("CIP_QUERY_CONCURRENCY") {
            Some(v) => v
                .parse()
                .ok()
                .filter(|n: &usize| (1..=MAX_QUERY_CONCURRENCY).contains(n))
                .with_context(|| {
                    format!(
                        "CIP_QUERY_CONCURRENCY={v:?} is not a number from 1 to \
                         {MAX_QUERY_CONCURRENCY}"
                    )
                })?,
            None => QUERY_CONCURRENCY,
        };
        let probe_timeout = match get(PROBE_SECONDS_ENV) {
            Some(v) => {
                parse_seconds(&v).map_err(|e| anyhow::anyhow!("{PROBE_SECONDS_ENV}={v:?} {e}"))?
            }
            None => DEFAULT_PROBE,
        };
        Ok(RunConfig {
            retry: RetryPolicy::from_vars(get)?,
            timeouts: Timeouts::from_vars(get)?,
            query_concurrency,
            timings: get("CIP_TIMINGS").as_deref() == Some("1"),
            ssl_cert_file: get("SSL_CERT_FILE").map(PathBuf::from),
            binfmt_dir: get("CIP_BINFMT_DIR").map_or_else(|| BINFMT_DIR.into(), PathBuf::from),
            temp_dir: get("TMPDIR").map_or_else(|| "/tmp".into(), PathBuf::from),
            // A bad value is reported where the mode is resolved (`settings`, the building commands).
            progress: get("CIP_PROGRESS").and_then(|v| crate::progress::Progress::parse(&v).ok()),
            ci: get("CI").is_some(),
            probe_timeout,
            vars: Arc::new(vars),
        })
    }

    /// A variable of the environment the run started with; empty counts as unset.
    pub fn var(&self, key: &str) -> Option<String> {
        self.vars.get(key).filter(|v| !v.trim().is_empty()).cloned()
    }

    /// The local build node's environment: the one the run started with, no overrides.
    pub fn local_node(&self) -> crate::builders::NodeEnv {
        crate::builders::NodeEnv::over(self.vars.clone())
    }
}

/// Environment variable: seconds a farm node may take to answer its probe (default 10).
pub const PROBE_SECONDS_ENV: &str = "CIP_FARM_PROBE_SECONDS";
pub const DEFAULT_PROBE: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest probe timeout: a day.
const MAX_PROBE_SECONDS: f64 = 86_400.0;

/// A probe timeout in seconds (fractions allowed), more than 0 and at most a day.
pub fn parse_seconds(v: &str) -> Result<std::time::Duration, String> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= MAX_PROBE_SECONDS)
        .map(std::time::Duration::from_secs_f64)
        .ok_or_else(|| {
            format!("is not a number of seconds above 0 and at most {MAX_PROBE_SECONDS}")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_overrides() {
        let d = RunConfig::from_vars(HashMap::new()).unwrap();
        assert_eq!(d.query_concurrency, 32);
        assert!(!d.timings);
        assert_eq!(d.binfmt_dir, PathBuf::from("/proc/sys/fs/binfmt_misc"));
        let c = RunConfig::from_vars(vars(&[
            ("CIP_QUERY_CONCURRENCY", "4"),
            ("CIP_TIMINGS", "1"),
            ("CIP_RETRY_ATTEMPTS", "2"),
            ("CIP_REQUEST_TIMEOUT_SECONDS", "3"),
            ("SSL_CERT_FILE", "/ca.pem"),
            ("STORAGE_DRIVER", " "),
        ]))
        .unwrap();
        assert_eq!(c.query_concurrency, 4);
        assert!(c.timings);
        assert_eq!(c.retry.attempts, 2);
        assert_eq!(c.timeouts.request.as_secs(), 3);
        assert_eq!(c.ssl_cert_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(c.var("STORAGE_DRIVER"), None, "empty counts as unset");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (k, v) in [
            ("CIP_QUERY_CONCURRENCY", "0"),
            ("CIP_RETRY_ATTEMPTS", "many"),
            ("CIP_READ_TIMEOUT_SECONDS", "-1"),
        ] {
            let e = RunConfig::from_vars(vars(&[(k, v)])).unwrap_err();
            assert!(format!("{e:#}").contains(k), "{e:#}");
        }
    }
}
