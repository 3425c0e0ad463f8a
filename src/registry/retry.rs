//! Retrying idempotent registry requests with exponential backoff and full jitter.
//!
//! A request is tried again when it failed in a way that may go away by itself: the connection could
//! not be made, broke or timed out, or the registry answered 429 (Too Many Requests, or an error
//! envelope with the `TOOMANYREQUESTS` code) or any 5xx. Answers that will not change when asked
//! again (400, 401, 403, 404, other 4xx, malformed answers, digest mismatches, local I/O errors, TLS
//! certificates that are not trusted and TLS handshakes that fail, a host name that does not
//! resolve, a registry out of space) are returned at once.
//!
//! Retries are bounded both in count and in time: at most [`RetryPolicy::attempts`] attempts (the
//! first one included), and no retry is started once its delay would end after
//! [`RetryPolicy::max_total`] from the first attempt. An attempt already running is never cut
//! short: a large upload may legitimately take longer than the whole retry budget.
//!
//! The delay before retry `n` (1-based) is drawn uniformly from `0 ..= min(max_delay,
//! base_delay * 2^(n-1))` ("full jitter"), so that many clients failing together do not come back
//! together.
//!
//! Each retry is reported ([`Event::Retry`] to [`RetryPolicy::events`]; the progress display shows it)
//! as one line, such as
//! `retry: GET manifest localhost:5000/app:1.0.0 failed (503 Service Unavailable), attempt 2/5 in 0.3s`.
//! The line names the request, never credentials. When the attempts are used up, the error says what
//! was tried: `after 5 attempts over 12.3s: <last error>` (see [`Exhausted`]).
//!
//! Environment overrides, read once by the run configuration (the `config` module):
//! - `CIP_RETRY_ATTEMPTS`: number of attempts, the first included (default 5; `1` disables retries).
//! - `CIP_RETRY_MAX_SECONDS`: time budget in seconds, may be fractional (default 60).
//! - `CIP_RETRY_BASE_MS`: first backoff ceiling in milliseconds, doubled on each retry (default 500;
//!   tests use e.g. 50 to stay fast).
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use super::error::{ErrorCode, ErrorKind, RegistryError};
use crate::events::{Event, Events};
use anyhow::{bail, Context as _};

/// Environment variable overriding [`RetryPolicy::attempts`].
pub const ATTEMPTS_ENV: &str = "CIP_RETRY_ATTEMPTS";
/// Environment variable overriding [`RetryPolicy::max_total`], in seconds.
pub const MAX_SECONDS_ENV: &str = "CIP_RETRY_MAX_SECONDS";
/// Environment variable overriding [`RetryPolicy::base_delay`], in milliseconds.
pub const BASE_MS_ENV: &str = "CIP_RETRY_BASE_MS";

/// How often and how long to retry.
#[derive(Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; at least 1.
    pub attempts: u32,
    /// No retry starts after this much time since the first attempt.
    pub max_total: Duration,
    /// Ceiling of the first delay; doubled for each further retry.
    pub base_delay: Duration,
    /// Ceiling of any single delay.
    pub max_delay: Duration,
    /// Where each retry is reported (by default nowhere: whoever connects hands the display's).
    pub events: Events,
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("attempts", &self.attempts)
            .field("max_total", &self.max_total)
            .field("base_delay", &self.base_delay)
            .field("max_delay", &self.max_delay)
            .finish()
    }
}

impl Default for RetryPolicy {
    /// 5 attempts within 60 s, delays starting below 0.5 s and never above 10 s.
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            max_total: Duration::from_secs(60),
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            events: Events::discard(),
        }
    }
}

impl RetryPolicy {
    /// A single attempt: nothing is retried.
    pub fn no_retry() -> Self {
        RetryPolicy {
            attempts: 1,
            ..Default::default()
        }
    }

    /// The default policy with overrides looked up through `var` (testable without the process
    /// environment). Empty values are ignored; invalid ones are an error naming the variable.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut policy = RetryPolicy::default();
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if let Some(v) = get(ATTEMPTS_ENV) {
            let n: u32 = v
                .parse()
                .with_context(|| format!("{ATTEMPTS_ENV}={v:?} is not a whole number"))?;
            if n == 0 {
                bail!("{ATTEMPTS_ENV} must be at least 1 (1 disables retries)");
            }
            policy.attempts = n;
        }
        if let Some(v) = get(MAX_SECONDS_ENV) {
            let secs: f64 = v
                .parse()
                .ok()
                // Above 1e9 s, a Duration cannot hold it (and no retry waits that long).
                .filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s < 1e9)
                .with_context(|| format!("{MAX_SECONDS_ENV}={v:?} is not a number of seconds"))?;
            policy.max_total = Duration::from_secs_f64(secs);
        }
        if let Some(v) = get(BASE_MS_ENV) {
            let ms: u64 = v
                .parse()
                .with_context(|| format!("{BASE_MS_ENV}={v:?} is not a number of milliseconds"))?;
            policy.base_delay = Duration::from_millis(ms);
        }
        Ok(policy)
    }

    /// This policy reporting its retries to `events`.
    pub fn reporting_to(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    /// This policy with each retry line handed to `sink` (tests, collectors).
    pub fn with_log(self, sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.reporting_to(Events::from_fn(move |e| {
            if let Event::Retry(line) = e {
                sink(line)
            }
        }))
    }

    /// The ceiling of the delay before retry `n` (1-based): `base_delay * 2^(n-1)`, at most
    /// `max_delay`. The actual delay is drawn uniformly below it.
    pub fn delay_ceiling(&self, n: u32) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(20);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// Runs `f` until it succeeds, fails with an error `transient` does not accept, or the attempts
    /// or the time are used up. `what` names the request in retry lines; `reason` gives a short,
    /// credential-free description of an error for them.
    pub async fn run<T, E, F, Fut>(
        &self,
        what: &str,
        transient: impl Fn(&E) -> bool,
        reason: impl Fn(&E) -> String,
        mut f: F,
    ) -> Result<T, Failure<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let attempts = self.attempts.max(1);
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let error = match f().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let retryable = transient(&error);
            let give_up = |error| Failure {
                error,
                attempts: attempt,
                elapsed: started.elapsed(),
                transient: retryable,
            };
            if !retryable || attempt >= attempts {
                return Err(give_up(error));
            }
            let delay = jitter(self.delay_ceiling(attempt));
            if started.elapsed() + delay > self.max_total {
                return Err(give_up(error));
            }
            attempt += 1;
            let line = format!(
                "retry: {what} failed ({}), attempt {attempt}/{attempts} in {:.1}s",
                reason(&error),
                delay.as_secs_f64()
            );
            self.events.report(Event::Retry(&line));
            tokio::time::sleep(delay).await;
        }
    }
}

/// The error of the last attempt of a [`RetryPolicy::run`] that did not succeed.
#[derive(Debug)]
pub struct Failure<E> {
    pub error: E,
    /// Attempts made, the first included.
    pub attempts: u32,
    /// Time from the start of the first attempt to the end of the last.
    pub elapsed: Duration,
    /// Whether the last error was one worth retrying (the attempts or the time ran out).
    pub transient: bool,
}

impl<E> Failure<E> {
    /// Whether the error should say that it was retried: more than one attempt was made, or the
    /// error was transient and retries were not allowed (count or time).
    pub fn worth_mentioning(&self) -> bool {
        self.attempts > 1 || self.transient
    }

    pub fn exhausted(&self) -> Exhausted {
        Exhausted {
            attempts: self.attempts,
            elapsed: self.elapsed,
        }
    }
}

/// Context of an error that went through retries: `after 5 attempts over 12.3s`. An error carrying
/// it is never retried again by an outer retry loop (see [`is_transient_anyhow`]).
#[derive(Debug, Clone, Copy)]
pub struct Exhausted {
    pub attempts: u32,
    pub elapsed: Duration,
}

impl fmt::Display for Exhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.attempts == 1 { "" } else { "s" };
        write!(
            f,
            "after {} attempt{s} over {:.1}s",
            self.attempts,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Whether an HTTP status is worth asking again: 429 and 5xx.
pub fn transient_status(code: u16) -> bool {
    code == 429 || (500..=599).contains(&code)
}

/// Whether a registry error may go away when the request is repeated.
pub fn is_transient(e: &RegistryError) -> bool {
    match &e.kind {
        // A full disk stays full for longer than the retries last.
        _ if super::space::is_out_of_space(e) => false,
        ErrorKind::Status { status, .. } => {
            transient_status(*status) || e.has_code(&ErrorCode::TooManyRequests)
        }
        ErrorKind::Request(re) => match re.status() {
            Some(status) => transient_status(status.as_u16()),
            // A certificate that is not trusted, or a handshake that failed, fails the same way again.
            None if super::tls::is_tls_failure(re) => false,
            // A name that does not resolve keeps not resolving (no such host, a typo): retrying
            // only delays the message.
            None if re.is_dns() => false,
            None => {
                re.is_connect()
                    || re.is_timeout()
                    || re.is_request()
                    || re.is_body()
                    || re.is_decode()
            }
        },
        ErrorKind::TooLarge(_)
        | ErrorKind::Protocol(_)
        | ErrorKind::DigestMismatch { .. }
        | ErrorKind::Io(_)
        | ErrorKind::Stalled(_) => false,
    }
}

/// Whether an error (typically from a [`super::Registry`] method) may go away when repeated: it
/// holds a transient registry error and has not been retried already.
pub fn is_transient_anyhow(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Exhausted>().is_none()
        && e.downcast_ref::<RegistryError>().is_some_and(is_transient)
}

/// A short description of a registry error for a retry line: the status, or what happened to the
/// connection. Never contains credentials (it is built from status codes and transport errors).
pub fn reason(e: &RegistryError) -> String {
    match &e.kind {
        ErrorKind::Status { status, errors, .. } if errors.is_empty() => status_text(*status),
        ErrorKind::Status { errors, .. } => {
            let codes: Vec<&str> = errors.iter().map(|er| er.code.as_str()).collect();
            format!("registry error {}", codes.join(", "))
        }
        ErrorKind::Request(re) => {
            if let Some(status) = re.status() {
                return status_text(status.as_u16());
            }
            if re.is_timeout() {
                return "timed out".into();
            }
            let mut innermost: Option<&(dyn std::error::Error + 'static)> = None;
            let mut source = std::error::Error::source(re);
            while let Some(s) = source {
                if let Some(io) = s.downcast_ref::<std::io::Error>() {
                    if let Some(text) = io_kind_text(io.kind()) {
                        return text.into();
                    }
                }
                innermost = Some(s);
                source = s.source();
            }
            let kind = if re.is_connect() {
                "cannot connect"
            } else {
                "connection failed"
            };
            match innermost {
                Some(s) => format!("{kind}: {s}"),
                None => kind.into(),
            }
        }
        _ => e.to_string(),
    }
}

fn io_kind_text(kind: std::io::ErrorKind) -> Option<&'static str> {
    use std::io::ErrorKind::*;
    Some(match kind {
        ConnectionRefused => "connection refused",
        ConnectionReset => "connection reset",
        ConnectionAborted => "connection aborted",
        BrokenPipe => "connection closed while sending",
        UnexpectedEof => "connection closed early",
        TimedOut => "timed out",
        NotConnected => "not connected",
        _ => return None,
    })
}

/// `503 Service Unavailable`, or just the number for statuses without a well-known name here.
pub fn status_text(code: u16) -> String {
    let name = match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        507 => "Insufficient Storage",
        _ => return format!("HTTP {code}"),
    };
    format!("{code} {name}")
}

/// A random duration in `0 ..= max`. The standard library's randomly keyed hasher is the random
/// source: jitter needs spread, not cryptographic quality.
fn jitter(max: Duration) -> Duration {
    let nanos = max.as_nanos().min(u64::MAX as u128) as u64;
    if nanos == 0 {
        return Duration::ZERO;
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    Duration::from_nanos(h.finish() % (nanos + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn fast(attempts: u32) -> (RetryPolicy, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let policy = RetryPolicy {
            attempts,
            max_total: Duration::from_secs(10),
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            events: Events::discard(),
        }
        .with_log(move |l| sink.lock().unwrap().push(l.to_string()));
        (policy, lines)
    }

    fn server(code: u16) -> RegistryError {
        status(code, "")
    }

    fn status(code: u16, body: &str) -> RegistryError {
        RegistryError::new(
            "r",
            "GET manifest r/a:1",
            ErrorKind::Status {
                status: code,
                errors: crate::registry::error::parse_envelope(body.as_bytes()),
                body: body.into(),
            },
        )
    }

    fn kind(kind: ErrorKind) -> RegistryError {
        RegistryError::new("r", "x", kind)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn classification() {
        for code in [429, 500, 502, 503, 504] {
            assert!(is_transient(&server(code)), "{code}");
        }
        for code in [400, 401, 403, 404, 405, 409] {
            assert!(!is_transient(&server(code)), "{code}");
        }
        let envelope = |code: &str| {
            status(
                400,
                &format!(r#"{{"errors":[{{"code":"{code}","message":"m"}}]}}"#),
            )
        };
        assert!(is_transient(&envelope("TOOMANYREQUESTS")));
        assert!(!is_transient(&envelope("MANIFEST_UNKNOWN")));
        assert!(!is_transient(&envelope("DENIED")));
        assert_eq!(
            reason(&envelope("TOOMANYREQUESTS")),
            "registry error TOOMANYREQUESTS"
        );
        assert!(!is_transient(&kind(ErrorKind::Protocol("x".into()))));
        assert!(!is_transient(&kind(ErrorKind::Io(std::io::Error::other(
            "disk"
        )))));
        assert!(!is_transient(&kind(ErrorKind::DigestMismatch {
            expected: "a".into(),
            actual: "b".into()
        })));
        assert!(!is_transient(&kind(ErrorKind::TooLarge(
            crate::registry::error::TooLarge {
                what: "a manifest",
                limit: 1,
                announced: Some(2),
                read: 0
            }
        ))));
        assert_eq!(reason(&server(503)), "503 Service Unavailable");
        assert_eq!(reason(&server(599)), "HTTP 599");
    }

    #[test]
    fn anyhow_errors_are_classified_through_context_and_not_retried_twice() {
        let e = anyhow::Error::new(server(503)).context("registry r: x");
        assert!(is_transient_anyhow(&e));
        let done = e.context(Exhausted {
            attempts: 5,
            elapsed: Duration::from_millis(1234),
        });
        assert!(!is_transient_anyhow(&done));
        assert!(format!("{done:#}").starts_with("after 5 attempts over 1.2s: registry r: x"));
        assert!(!is_transient_anyhow(&anyhow::anyhow!("plain")));
    }

    #[test]
    fn retries_transient_errors_up_to_the_attempt_count() {
        let (policy, lines) = fast(4);
        let mut calls = 0;
        let r: Result<(), _> =
            rt().block_on(policy.run("GET manifest r/a:1", is_transient, reason, || {
                calls += 1;
                async { Err(server(503)) }
            }));
        let failure = r.unwrap_err();
        assert_eq!(calls, 4);
        assert_eq!(failure.attempts, 4);
        assert!(failure.worth_mentioning());
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[0].starts_with(
                "retry: GET manifest r/a:1 failed (503 Service Unavailable), attempt 2/4 in 0.0"
            ),
            "{lines:?}"
        );
        assert!(lines[2].contains("attempt 4/4"), "{lines:?}");
    }

    #[test]
    fn stops_at_the_first_permanent_error_and_on_success() {
        let (policy, lines) = fast(5);
        let mut calls = 0;
        let r: Result<(), _> = rt().block_on(policy.run("x", is_transient, reason, || {
            calls += 1;
            let e = if calls == 1 { server(502) } else { server(404) };
            async move { Err(e) }
        }));
        let failure = r.unwrap_err();
        assert_eq!((calls, failure.attempts), (2, 2));
        assert!(!failure.transient);
        assert_eq!(lines.lock().unwrap().len(), 1);

        let (policy, lines) = fast(5);
        let mut calls = 0;
        let r = rt().block_on(policy.run("x", is_transient, reason, || {
            calls += 1;
            let ok = calls == 3;
            async move {
                if ok {
                    Ok(7)
                } else {
                    Err(server(500))
                }
            }
        }));
        assert_eq!(r.unwrap(), 7);
        assert_eq!(lines.lock().unwrap().len(), 2);

        let (policy, lines) = fast(5);
        let r: Result<(), _> =
            rt().block_on(policy.run("x", is_transient, reason, || async { Err(server(401)) }));
        let failure = r.unwrap_err();
        assert_eq!(failure.attempts, 1);
        assert!(!failure.worth_mentioning());
        assert!(lines.lock().unwrap().is_empty());
    }

    #[test]
    fn time_budget_bounds_the_retries() {
        let (mut policy, lines) = fast(1000);
        policy.base_delay = Duration::from_millis(25);
        policy.max_delay = Duration::from_millis(25);
        policy.max_total = Duration::from_millis(500);
        let test_started = Instant::now();
        let mut starts = Vec::new();
        let r: Result<(), _> = rt().block_on(policy.run("x", is_transient, reason, || {
            starts.push(Instant::now());
            async { Err(server(503)) }
        }));
        let failure = r.unwrap_err();
        // The time ran out, not the attempts; each one was reported, the first excepted.
        assert!(failure.transient);
        assert!(
            failure.attempts > 1 && failure.attempts < 1000,
            "{failure:?}"
        );
        assert_eq!(starts.len(), failure.attempts as usize);
        assert_eq!(lines.lock().unwrap().len(), starts.len() - 1);
        // The budget was respected whatever the machine's load: an attempt that another follows
        // started within it (a sleep that ends late only makes the next decision to give up).
        let first = starts[0];
        for start in &starts[..starts.len() - 1] {
            assert!(
                start.duration_since(first) <= policy.max_total,
                "{starts:?}"
            );
        }
        // And it was used: retries stop only once the next delay (at most 25 ms) would end after it.
        assert!(
            failure.elapsed > policy.max_total - policy.max_delay,
            "{failure:?}"
        );
        // Liveness only: the speed of the retry loop is not this test's business.
        assert!(test_started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn delays_grow_and_are_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay_ceiling(1), Duration::from_millis(500));
        assert_eq!(p.delay_ceiling(2), Duration::from_secs(1));
        assert_eq!(p.delay_ceiling(4), Duration::from_secs(4));
        assert_eq!(p.delay_ceiling(6), Duration::from_secs(10));
        assert_eq!(p.delay_ceiling(400), Duration::from_secs(10));
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(3)) <= Duration::from_millis(3));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn environment_overrides() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let p = RetryPolicy::from_vars(vars(&[])).unwrap();
        assert_eq!((p.attempts, p.max_total), (5, Duration::from_secs(60)));
        let p = RetryPolicy::from_vars(vars(&[
            (ATTEMPTS_ENV, "3"),
            (MAX_SECONDS_ENV, "1.5"),
            (BASE_MS_ENV, "50"),
        ]))
        .unwrap();
        assert_eq!(p.attempts, 3);
        assert_eq!(p.max_total, Duration::from_millis(1500));
        assert_eq!(p.base_delay, Duration::from_millis(50));
        assert!(RetryPolicy::from_vars(vars(&[(ATTEMPTS_ENV, "0")])).is_err());
        let e = RetryPolicy::from_vars(vars(&[(MAX_SECONDS_ENV, "soon")])).unwrap_err();
        assert!(e.to_string().contains(MAX_SECONDS_ENV), "{e}");
        assert_eq!(
            RetryPolicy::from_vars(vars(&[(ATTEMPTS_ENV, " ")]))
                .unwrap()
                .attempts,
            5
        );
    }
}
