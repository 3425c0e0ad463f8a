//! How long cip waits for a registry that accepted a connection but does not answer.
//!
//! Without a bound, a hung registry stalls a run for the HTTP client's read timeout on every
//! request, with nothing on screen. Two bounds, each overridable in the environment (read once by
//! the run configuration (the `config` module), like the `CIP_RETRY_*` settings):
//! - `CIP_REQUEST_TIMEOUT_SECONDS` (default 30): a whole request that moves no blob (manifests, blob
//!   lookups and mounts, the connect probes). A request that runs out is reported as `no answer from
//!   HOST in N s` and retried like a dropped connection.
//! - `CIP_READ_TIMEOUT_SECONDS` (default 120): a blob transfer (upload or download) that moves no
//!   byte for this long, including the registry's answer after the last byte of an upload (when it
//!   checks the digest of what it received, which takes time for a large blob). Never a bound on the
//!   whole blob: a large layer may take as long as it takes while it makes progress ([`super::pace`];
//!   the HTTP client's own read timeout is off, since it runs from a request's start to its answer,
//!   an upload's body included).
use std::time::Duration;

use anyhow::Context as _;

/// Environment variable overriding [`Timeouts::request`], in seconds.
pub const REQUEST_ENV: &str = "CIP_REQUEST_TIMEOUT_SECONDS";
/// Environment variable overriding [`Timeouts::read`], in seconds.
pub const READ_ENV: &str = "CIP_READ_TIMEOUT_SECONDS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Bound of one attempt of a request that moves no blob.
    pub request: Duration,
    /// Bound of a pause in a blob transfer.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            request: Duration::from_secs(30),
            read: Duration::from_secs(120),
        }
    }
}

impl Timeouts {
    /// The defaults with overrides looked up through `var`. Empty values are ignored; invalid ones
    /// are an error naming the variable.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut t = Timeouts::default();
        if let Some(d) = seconds(&var, REQUEST_ENV)? {
            t.request = d;
        }
        if let Some(d) = seconds(&var, READ_ENV)? {
            t.read = d;
        }
        Ok(t)
    }
}

/// A positive number of seconds (fractions allowed) from `name`, if set.
fn seconds(var: &impl Fn(&str) -> Option<String>, name: &str) -> anyhow::Result<Option<Duration>> {
    let Some(v) = var(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    let secs: f64 = v
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s < 1e9)
        .with_context(|| format!("{name}={v:?} is not a positive number of seconds"))?;
    Ok(Some(Duration::from_secs_f64(secs)))
}

/// `30 s`, `1.5 s`: a duration as the user set it.
pub fn show(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(Timeouts::from_vars(|_| None).unwrap(), Timeouts::default());
        let t = Timeouts::from_vars(|n| match n {
            REQUEST_ENV => Some("1.5".into()),
            READ_ENV => Some(" 7 ".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(t.request, Duration::from_millis(1500));
        assert_eq!(t.read, Duration::from_secs(7));
        assert_eq!(show(t.request), "1.5 s");
        assert_eq!(show(t.read), "7 s");
        let empty = Timeouts::from_vars(|_| Some(String::new())).unwrap();
        assert_eq!(empty, Timeouts::default());
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for bad in ["0", "-1", "soon", "inf", "NaN"] {
            let e = Timeouts::from_vars(|n| (n == READ_ENV).then(|| bad.to_string()))
                .unwrap_err()
                .to_string();
            assert!(e.contains(READ_ENV) && e.contains(bad), "{e}");
        }
    }
}
