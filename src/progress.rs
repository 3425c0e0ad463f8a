//! Progress of long runs: on a terminal one live line per running build and a total bar (indicatif);
//! elsewhere (CI, pipes) plain timestamped lines.
use std::sync::Mutex;
use std::time::{Duration, Instant};

use console::Term;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The live display, if one is running: messages from elsewhere (retry lines) go through it, so
/// they do not tear the progress bars.
static LIVE: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Prints a line to stderr above the live progress bars, or plainly when there are none.
pub fn eprint_line(msg: &str) {
    let live = LIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match live {
        Some(m) => m.suspend(|| eprintln!("{msg}")),
        None => eprintln!("{msg}"),
    }
}

pub struct Progress {
    started: Instant,
    live: Option<Live>,
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
    /// When the run started, for plain lines' timestamps; None on a terminal.
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

/// Serialises plain lines so they never interleave.
static PLAIN: Mutex<()> = Mutex::new(());

fn plain_line(since: Instant, msg: &str) {
    let _g = PLAIN.lock().unwrap_or_else(|e| e.into_inner());
    let t = since.elapsed().as_secs();
    eprintln!("[{:02}:{:02}:{:02}] {msg}", t / 3600, t / 60 % 60, t % 60);
}

impl Progress {
    /// `total` is the number of tasks counted in the total bar.
    pub fn new(total: u64) -> Progress {
        let live = Term::stderr().is_term().then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let total_bar = multi.add(ProgressBar::new(total));
            total_bar.set_style(
                ProgressStyle::with_template(
                    "[{elapsed_precise}] {bar:30} {pos}/{len} builds {msg}",
                )
                .expect("valid template"),
            );
            total_bar.enable_steady_tick(Duration::from_millis(200));
            *LIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(multi.clone());
            Live {
                multi,
                total: total_bar,
            }
        });
        Progress {
            started: Instant::now(),
            live,
        }
    }

    /// A message that is not tied to a task (which builder is used, warnings).
    pub fn println(&self, msg: &str) {
        match &self.live {
            Some(l) => l.multi.suspend(|| eprintln!("{msg}")),
            None => self.plain(msg),
        }
    }

    fn plain(&self, msg: &str) {
        plain_line(self.started, msg);
    }

    pub fn start(&self, label: &str) -> Line {
        let bar = self.live.as_ref().map(|l| {
            let bar = l.multi.insert_before(&l.total, ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner} {msg} ({elapsed})")
                    .expect("valid template"),
            );
            bar.set_message(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        if bar.is_none() {
            self.plain(&format!("{label}: started"));
        }
        Line {
            plain_since: bar.is_none().then_some(self.started),
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
