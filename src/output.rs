//! Terminal output helpers: colours only on a terminal (console honours NO_COLOR / CLICOLOR).
use console::style;

use crate::diagnostics::{Problem, Severity};

pub fn style_problem(p: &Problem) -> String {
    style_severity(p.severity == Severity::Error, &p.to_string())
}

/// A diagnostic's text (`error: ...: ...`) with its head in red (an error) or yellow.
pub fn style_severity(error: bool, text: &str) -> String {
    let (head, rest) = text.split_once(": ").unwrap_or((text, ""));
    let head = match error {
        true => style(head).red().bold(),
        false => style(head).yellow().bold(),
    };
    format!("{head}: {rest}")
}

/// Left-aligned columns separated by two spaces; the first row is the header.
/// `1 image`, `4 images`: counts in messages read as English.
pub fn count(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        _ => format!("{n} {noun}s"),
    }
}

pub fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.to_vec()).collect();
    table_of(&rows)
}

/// [`table`] of rows whose length is known only when running (all of the same length).
pub fn table_of(rows: &[Vec<String>]) -> String {
    let mut width = vec![0usize; rows.first().map_or(0, Vec::len)];
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(console::measure_text_width(cell));
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&width)
            .map(|(c, w)| console::pad_str(c, *w, console::Alignment::Left, None).into_owned())
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Whether [`timing`] prints (`CIP_TIMINGS=1`): set once where the run starts, from the run's
/// configuration (a switch until timings are events of the run's sink).
static TIMINGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns the timing lines on or off for this process's run.
pub fn show_timings(on: bool) {
    TIMINGS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// With `CIP_TIMINGS=1`, prints how long a phase took (for profiling large projects).
pub fn timing(phase: &str, since: std::time::Instant) {
    if TIMINGS.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!(
            "timing: {phase}: {:.1} ms",
            since.elapsed().as_secs_f64() * 1000.0
        );
    }
}
