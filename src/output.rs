//! Terminal output helpers: colours only on a terminal (console honours NO_COLOR / CLICOLOR).
use console::style;

use crate::diagnostics::{Problem, Severity};

pub fn style_problem(p: &Problem) -> String {
    let text = p.to_string();
    let (head, rest) = text.split_once(": ").unwrap_or((&text, ""));
    let head = match p.severity {
        Severity::Error => style(head).red().bold(),
        Severity::Warning => style(head).yellow().bold(),
    };
    format!("{head}: {rest}")
}
