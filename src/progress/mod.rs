//! What a building run shows while it runs, in the mode `--progress` chose ([`Progress`]):
//! - `tty`: one live line per running step (indicatif) with the Dockerfile step its builder is on
//!   (or its last output line), cut to the terminal's width, and a total bar with the queued count;
//! - `plain`: cip's lines with a timestamp, and the builders' output as it comes, each line
//!   prefixed `[image platform] `, as BuildKit's plain progress; nothing redraws;
//! - `quiet`: nothing; the command prints errors and its one-line result.
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use console::Term;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::builders::process::LineSink;

pub mod mode;
mod step_line;

pub use mode::{resolve, Progress};

/// The run's mode, once a command set it (0: not set, then `Progress as u8 + 1`).
static MODE: AtomicU8 = AtomicU8::new(0);
/// `--verbose`: the longer form of cip's notes (where credentials were looked for).
static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Sets the display mode (resolved, never `auto`) and verbosity of this process's run.
pub fn set_mode(mode: Progress, verbose: bool) {
    MODE.store(mode as u8 + 1, Ordering::Relaxed);
    VERBOSE.store(verbose, Ordering::Relaxed);
}

/// The display mode: what the run set where it started (`main`, from `--progress`,
/// `CIP_PROGRESS`, cip.toml, `CI`), else (a library user) what the terminal gives.
pub fn mode() -> Progress {
    match MODE.load(Ordering::Relaxed) {
        1 => Progress::Auto,
        2 => Progress::Tty,
        3 => Progress::Plain,
        4 => Progress::Quiet,
        _ => resolve(&[], Term::stderr().is_term(), false),
    }
}

pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// The live display, if one is running: messages from elsewhere (retry lines) go through it, so
/// they do not tear the progress bars.
static LIVE: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Prints one of cip's informational lines (a retry, which credentials are used) to stderr, above
/// the live display if there is one; nothing in quiet mode.
pub fn eprint_line(msg: &str) {
    if mode() == Progress::Quiet {
        return;
    }
    let live = LIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match live {
        Some(m) => m.suspend(|| eprintln!("{msg}")),
        None => eprintln!("{msg}"),
    }
}

/// The display of one run's steps.
pub struct Display {
    started: Instant,
    mode: Progress,
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
            eprint_line(&msg);
        } else if let Some(since) = self.plain_since {
            plain_line(since, &msg);
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

    /// Where the builder's output lines for this task go: the live line shows the Dockerfile step
    /// (or the last line), plain mode prints each prefixed `[prefix] `, quiet mode takes none.
    pub fn output_sink(&self, prefix: &str) -> Option<LineSink> {
        if let Some(bar) = &self.bar {
            let bar = bar.clone();
            let on_step = AtomicBool::new(false);
            return Some(Arc::new(move |line: &str| {
                let line = console::strip_ansi_codes(line.trim_end());
                if line.trim().is_empty() {
                    return;
                }
                if step_line::is_step_line(&line) {
                    on_step.store(true, Ordering::Relaxed);
                    bar.set_message(line.into_owned());
                } else if !on_step.load(Ordering::Relaxed) {
                    bar.set_message(line.into_owned());
                }
            }));
        }
        self.plain_since?;
        let prefix = format!("[{prefix}] ");
        Some(Arc::new(move |line: &str| {
            let _g = PLAIN.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!("{prefix}{}", line.trim_end());
        }))
    }
}

/// Serialises plain lines so they never interleave.
static PLAIN: Mutex<()> = Mutex::new(());

fn plain_line(since: Instant, msg: &str) {
    let _g = PLAIN.lock().unwrap_or_else(|e| e.into_inner());
    let t = since.elapsed().as_secs();
    eprintln!("[{:02}:{:02}:{:02}] {msg}", t / 3600, t / 60 % 60, t % 60);
}

impl Display {
    /// `builds` is the number of tasks counted in the total bar, `steps` the number of steps
    /// that start (the queued count).
    pub fn new(builds: u64, steps: usize) -> Display {
        let mode = mode();
        let live = (mode == Progress::Tty).then(|| {
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
            *LIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(multi.clone());
            Live {
                multi,
                total: total_bar,
            }
        });
        Display {
            started: Instant::now(),
            mode,
            live,
            queued: AtomicUsize::new(steps),
        }
    }

    /// A message that is not tied to a task (which builder is used, warnings).
    pub fn println(&self, msg: &str) {
        match (&self.live, self.mode) {
            (Some(l), _) => l.multi.suspend(|| eprintln!("{msg}")),
            (None, Progress::Quiet) => {}
            (None, _) => plain_line(self.started, msg),
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
        let plain = bar.is_none() && self.mode != Progress::Quiet;
        if plain {
            plain_line(self.started, &format!("{label}: started"));
        }
        Line {
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
            *LIVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}
