//! What a building run shows while it runs, in the mode `--progress` chose ([`Progress`]):
//! - `tty`: one live line per running step (indicatif) with the Dockerfile step its builder is on
//!   (or its last output line), cut to the terminal's width, and a total bar with the queued count;
//! - `plain`: cip's lines with a timestamp, and the builders' output as it comes, each line
//!   prefixed `[image platform] `, as BuildKit's plain progress; nothing redraws;
//! - `quiet`: nothing; the command prints errors and its one-line result.
//!
//! The [`Reporter`] is made once per command with its mode; it is the sink of the events the
//! lower layers report ([`crate::events`]), and a run's [`Display`] draws through it.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::events::{Event, Events, Severity, Sink};

pub mod mode;
mod step_line;

pub use mode::{resolve, Progress};

/// Where a command's lines go: one value per command, made once with its mode, the sink of every
/// event the lower layers report ([`Reporter::events`]) and the maker of a run's [`Display`].
pub struct Reporter {
    /// Resolved (`tty`, `plain` or `quiet`).
    mode: Progress,
    /// `--verbose`: the longer form of cip's notes (where credentials were looked for).
    verbose: bool,
    /// The live display, while one runs: lines from elsewhere (retries) go above it, so they do
    /// not tear the progress bars.
    live: Mutex<Option<MultiProgress>>,
    /// Serialises plain lines so they never interleave.
    plain: Mutex<()>,
}

impl Reporter {
    /// The reporter of a command whose display mode is `mode` (resolved, see [`resolve`]).
    pub fn new(mode: Progress, verbose: bool) -> Arc<Reporter> {
        Arc::new(Reporter {
            mode,
            verbose,
            live: Mutex::new(None),
            plain: Mutex::new(()),
        })
    }

    pub fn mode(&self) -> Progress {
        self.mode
    }

    pub fn verbose(&self) -> bool {
        self.verbose
    }

    /// The handle lower layers report through.
    pub fn events(self: &Arc<Self>) -> Events {
        Events::new(self.clone())
    }

    /// Prints one of cip's informational lines (a retry, which credentials are used) to stderr,
    /// above the live display if there is one; nothing in quiet mode.
    pub fn eprint_line(&self, msg: &str) {
        if self.mode != Progress::Quiet {
            self.above_live(msg);
        }
    }

    /// `msg` on stderr, above the live display if there is one.
    fn above_live(&self, msg: &str) {
        let live = lock(&self.live).clone();
        match live {
            Some(m) => m.suspend(|| eprintln!("{msg}")),
            None => eprintln!("{msg}"),
        }
    }

    /// `msg` with the time since `since`, as plain mode shows cip's lines.
    fn plain_line(&self, since: Instant, msg: &str) {
        let _g = lock(&self.plain);
        let t = since.elapsed().as_secs();
        eprintln!("[{:02}:{:02}:{:02}] {msg}", t / 3600, t / 60 % 60, t % 60);
    }

    /// The display of a run: `builds` is the number of tasks counted in the total bar, `steps`
    /// the number of steps that start (the queued count).
    pub fn display(self: &Arc<Self>, builds: u64, steps: usize) -> Display {
        Display::new(self, builds, steps)
    }
}

impl Sink for Reporter {
    fn report(&self, event: Event<'_>) {
        match event {
            Event::Retry(line) | Event::Note(line) => self.eprint_line(line),
            Event::Detail(line) if self.verbose => self.eprint_line(line),
            Event::Detail(_) => {}
            Event::Problem { severity, text } => self.above_live(&crate::output::style_severity(
                severity == Severity::Error,
                text,
            )),
            // Output belongs to a task's line ([`Line::events`]); none is shown without one.
            Event::Output(_) => {}
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The display of one run's steps.
pub struct Display {
    reporter: Arc<Reporter>,
    started: Instant,
    live: Option<Live>,
    /// Steps not started yet.
    queued: AtomicUsize,
}

struct Live {
    multi: MultiProgress,
    total: ProgressBar,
}

/// One running task's line. Dropped unfinished (its task was cancelled), it says so and leaves the
/// screen.
pub struct Line {
    reporter: Arc<Reporter>,
    bar: Option<ProgressBar>,
    label: String,
    started: Instant,
    /// When the run started, for plain lines' timestamps; None on a terminal and when quiet.
    plain_since: Option<Instant>,
    finished: bool,
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let msg = format!(
            "{}: cancelled after {:.1}s",
            self.label,
            self.started.elapsed().as_secs_f64()
        );
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            self.reporter.eprint_line(&msg);
        } else if let Some(since) = self.plain_since {
            self.reporter.plain_line(since, &msg);
        }
    }
}

impl Line {
    /// What the task is doing now, on its live line (nothing in plain and quiet modes, which do
    /// not redraw).
    pub fn set_message(&self, msg: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(msg.to_string());
        }
    }

    /// The events of this task: its builder's output lines show on the live line as the
    /// Dockerfile step (or the last line), are printed prefixed `[prefix] ` in plain mode, and
    /// are not read when quiet; every other event goes to the reporter.
    pub fn events(&self, prefix: &str) -> Events {
        Events::new(Arc::new(TaskSink {
            reporter: self.reporter.clone(),
            bar: self.bar.clone(),
            on_step: AtomicBool::new(false),
            plain_prefix: self.plain_since.map(|_| format!("[{prefix}] ")),
        }))
    }
}

/// The sink of one task's events ([`Line::events`]).
struct TaskSink {
    reporter: Arc<Reporter>,
    bar: Option<ProgressBar>,
    /// Whether a Dockerfile step line was seen: from then on, only step lines replace it.
    on_step: AtomicBool,
    plain_prefix: Option<String>,
}

impl TaskSink {
    fn output(&self, line: &str) {
        if let Some(bar) = &self.bar {
            let line = console::strip_ansi_codes(line.trim_end());
            if line.trim().is_empty() {
                return;
            }
            if step_line::is_step_line(&line) {
                self.on_step.store(true, Ordering::Relaxed);
                bar.set_message(line.into_owned());
            } else if !self.on_step.load(Ordering::Relaxed) {
                bar.set_message(line.into_owned());
            }
        } else if let Some(prefix) = &self.plain_prefix {
            let _g = lock(&self.reporter.plain);
            eprintln!("{prefix}{}", line.trim_end());
        }
    }
}

impl Sink for TaskSink {
    fn report(&self, event: Event<'_>) {
        match event {
            Event::Output(line) => self.output(line),
            other => self.reporter.report(other),
        }
    }

    fn takes_output(&self) -> bool {
        self.bar.is_some() || self.plain_prefix.is_some()
    }
}

impl Display {
    fn new(reporter: &Arc<Reporter>, builds: u64, steps: usize) -> Display {
        let live = (reporter.mode == Progress::Tty).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let total_bar = multi.add(ProgressBar::new(builds));
            total_bar.set_style(
                ProgressStyle::with_template(
                    "[{elapsed_precise}] {bar:30} {pos}/{len} builds, {msg}",
                )
                .expect("valid template"),
            );
            total_bar.set_message(format!("{steps} queued"));
            total_bar.enable_steady_tick(Duration::from_millis(200));
            *lock(&reporter.live) = Some(multi.clone());
            Live {
                multi,
                total: total_bar,
            }
        });
        Display {
            reporter: reporter.clone(),
            started: Instant::now(),
            live,
            queued: AtomicUsize::new(steps),
        }
    }

    /// A message that is not tied to a task (which builder is used, warnings).
    pub fn println(&self, msg: &str) {
        match (&self.live, self.reporter.mode) {
            (Some(l), _) => l.multi.suspend(|| eprintln!("{msg}")),
            (None, Progress::Quiet) => {}
            (None, _) => self.reporter.plain_line(self.started, msg),
        }
    }

    /// One more step left the queue.
    pub fn step_started(&self) {
        let left = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            })
            .map_or(0, |n| n.saturating_sub(1));
        if let Some(l) = &self.live {
            l.total.set_message(format!("{left} queued"));
        }
    }

    pub fn start(&self, label: &str) -> Line {
        let bar = self.live.as_ref().map(|l| {
            let bar = l.multi.insert_before(&l.total, ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner} {prefix} ({elapsed}) {wide_msg}")
                    .expect("valid template"),
            );
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        let plain = bar.is_none() && self.reporter.mode != Progress::Quiet;
        if plain {
            self.reporter
                .plain_line(self.started, &format!("{label}: started"));
        }
        Line {
            reporter: self.reporter.clone(),
            plain_since: plain.then_some(self.started),
            bar,
            label: label.to_string(),
            started: Instant::now(),
            finished: false,
        }
    }

    /// Ends a task's line; `counts` says whether it is one of the `total` builds.
    pub fn finish(&self, mut line: Line, result: &str, counts: bool) {
        line.finished = true;
        let secs = line.started.elapsed().as_secs_f64();
        let msg = format!("{}: {result} in {secs:.1}s", line.label);
        if let Some(bar) = line.bar.take() {
            bar.finish_and_clear();
        }
        if let Some(l) = &self.live {
            if counts {
                l.total.inc(1);
            }
        }
        self.println(&msg);
    }

    pub fn done(&self) {
        if let Some(l) = &self.live {
            l.total.finish_and_clear();
            *lock(&self.reporter.live) = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_reads_its_builders_output_unless_the_display_is_quiet() {
        for (mode, takes) in [(Progress::Plain, true), (Progress::Quiet, false)] {
            let reporter = Reporter::new(mode, false);
            let display = reporter.display(1, 1);
            let line = display.start("build a linux/amd64");
            let events = line.events("a linux/amd64");
            assert_eq!(events.takes_output(), takes, "{mode:?}");
            // The reporter alone shows no output: it belongs to a task.
            assert!(!reporter.events().takes_output());
            events.report(Event::Output("STEP 1/2: FROM scratch"));
            display.finish(line, "done", true);
            display.done();
        }
    }
}
