//! Ctrl-C and termination requests (SIGINT, SIGTERM). Builders run in process groups of their own,
//! so a terminal's Ctrl-C reaches only cip: without this, cip would die and leave its builds running.
//! Instead a run that is asked to stop cancels its builds the way `--stop-on-first-error` does
//! (builders terminated, nothing half-published tagged), prints its summary, and exits with the
//! status a shell expects of that signal. A second request makes the cancellation skip its grace
//! period.
use tokio::signal::unix::{signal, SignalKind};

/// Which request stopped the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    /// 128 + the signal's number, as a shell reports a process the signal ended.
    pub fn exit_code(self) -> i32 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }
}

/// Resolves at the next SIGINT or SIGTERM. From the first call on, these signals no longer end the
/// process by themselves: the caller decides what to do. If the handlers cannot be installed, it
/// never resolves (and the signals keep their default effect).
pub async fn requested() -> Signal {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => Signal::Interrupt,
        _ = term.recv() => Signal::Terminate,
    }
}
