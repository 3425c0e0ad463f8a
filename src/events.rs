//! What the lower layers (registry, builders, farm) have to say while cip runs, as events: they
//! report, they never print. Whoever shows them implements [`Sink`]: the progress display
//! (the progress module's `Reporter`, in its tty, plain or quiet mode), a test that collects them.
//!
//! A leaf: nothing here imports the rest of cip, so every layer may depend on it.
use std::fmt;
use std::sync::Arc;

/// One thing a lower layer reports. Lines are complete sentences, ready to be shown as they are;
/// they never carry credentials (the layers that report build them from names and statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A request or a build failed in a way that may pass and is tried again:
    /// `retry: GET manifest r/a:1 failed (503 Service Unavailable), attempt 2/5 in 0.3s`.
    Retry(&'a str),
    /// An informational line (which credentials a registry is used with).
    Note(&'a str),
    /// The longer form of a note, for `--verbose` (where credentials were looked for).
    Detail(&'a str),
    /// A diagnostic about the project or the builder, shown in every mode, even quiet.
    Problem {
        severity: Severity,
        /// The diagnostic as its `Display` writes it (`error: ...: ...`), unstyled.
        text: &'a str,
    },
    /// One line of a builder's output, for the task whose events these are (a `\r`-redrawn line
    /// as its last state).
    Output(&'a str),
}

/// How bad a [`Event::Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// Receives events; shared between tasks and threads.
pub trait Sink: Send + Sync {
    fn report(&self, event: Event<'_>);

    /// Whether [`Event::Output`] lines are wanted: reading a builder's output line by line costs
    /// a pipe and a task, so a sink that drops them lets the output go straight to its log.
    fn takes_output(&self) -> bool {
        false
    }
}

/// The handle a lower layer keeps to report through: cheap to clone, and by default a sink that
/// drops everything (a layer used without a display says nothing).
#[derive(Clone)]
pub struct Events(Arc<dyn Sink>);

impl Events {
    pub fn new(sink: Arc<dyn Sink>) -> Events {
        Events(sink)
    }

    /// Events for a closure (tests, small adapters); it takes no builder output.
    pub fn from_fn(f: impl Fn(Event<'_>) + Send + Sync + 'static) -> Events {
        Events(Arc::new(FnSink(f)))
    }

    /// Events nobody receives.
    pub fn discard() -> Events {
        Events(Arc::new(Discard))
    }

    pub fn report(&self, event: Event<'_>) {
        self.0.report(event)
    }

    pub fn takes_output(&self) -> bool {
        self.0.takes_output()
    }
}

impl Default for Events {
    fn default() -> Self {
        Events::discard()
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Events")
    }
}

struct Discard;

impl Sink for Discard {
    fn report(&self, _: Event<'_>) {}
}

struct FnSink<F>(F);

impl<F: Fn(Event<'_>) + Send + Sync> Sink for FnSink<F> {
    fn report(&self, event: Event<'_>) {
        (self.0)(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn a_closure_sink_receives_events_and_the_default_drops_them() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        let events = Events::from_fn(move |e| into.lock().unwrap().push(format!("{e:?}")));
        events.report(Event::Retry("retry: x"));
        events.clone().report(Event::Note("n"));
        assert_eq!(
            *seen.lock().unwrap(),
            [r#"Retry("retry: x")"#, r#"Note("n")"#]
        );
        assert!(!events.takes_output());
        let quiet = Events::default();
        quiet.report(Event::Output("line"));
        assert!(!quiet.takes_output());
    }
}
