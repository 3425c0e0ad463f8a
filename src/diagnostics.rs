//! Problems found in a project, reported all at once with file, line and a hint on how to fix them.
use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem: where it is, what is wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    /// A short stable identifier (`bad-edn`, `cycle`, ...) for scripts and tests.
    pub code: &'static str,
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            code,
            file: None,
            line: None,
            column: None,
            message: message.into(),
            hint: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(code, message)
        }
    }

    pub fn at(mut self, file: impl AsRef<Path>, line: Option<usize>) -> Self {
        self.file = Some(file.as_ref().to_path_buf());
        self.line = line;
        self
    }

    pub fn column(mut self, column: Option<usize>) -> Self {
        self.column = column;
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:column` as far as known, the way compilers print locations.
    pub fn location(&self) -> Option<String> {
        let file = self.file.as_ref()?.display().to_string();
        Some(match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
            (Some(l), None) => format!("{file}:{l}"),
            _ => file,
        })
    }
}

impl fmt::Display for Problem {
    /// Control characters are shown escaped: a Dockerfile or a file name can hold terminal escape
    /// sequences, which must not reach the terminal raw.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{label}[{}]: ", self.code)?;
        if let Some(loc) = self.location() {
            write!(f, "{}: ", escape_controls(&loc))?;
        }
        write!(f, "{}", escape_controls(&self.message))?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {}", escape_controls(hint))?;
        }
        Ok(())
    }
}

/// Sorts problems by file and line, errors first at the same place.
pub fn sort(problems: &mut [Problem]) {
    problems.sort_by(|a, b| (&a.file, a.line, a.severity).cmp(&(&b.file, b.line, b.severity)));
}

/// Longest prefix of a bad value that messages quote: enough to recognise it, too little to leak a
/// file of secrets.
pub const QUOTE_LIMIT: usize = 40;

/// A value for a message: quoted, escaped, at most [`QUOTE_LIMIT`] characters of it (then `...`).
pub fn quote(value: &str) -> String {
    format!("\"{}\"", short(value))
}

/// [`quote`] without the quotes, for values inside a larger text (`${REGISTRY}/NAME`).
pub fn short(value: &str) -> String {
    let mut chars = value.chars();
    let prefix: String = chars.by_ref().take(QUOTE_LIMIT).collect();
    let more = chars.next().is_some();
    format!("{}{}", prefix.escape_debug(), if more { "..." } else { "" })
}

/// Characters that change what a terminal shows: C0/C1 controls (but newline and tab) and the
/// bidirectional overrides.
fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every [`is_unsafe`] character written as `\u{..}` escape.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if is_unsafe(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Levenshtein distance, for "did you mean" hints.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != b[j]))
                .min(row[j] + 1)
                .min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_is_short_and_escaped() {
        assert_eq!(quote("1.2"), "\"1.2\"");
        let long = format!("CIP_PASSWORD={}", "x".repeat(100));
        let q = quote(&long);
        assert_eq!(q, format!("\"CIP_PASSWORD={}...\"", "x".repeat(27)));
        assert_eq!(quote("a\0b\u{1b}"), "\"a\\0b\\u{1b}\"");
    }

    #[test]
    fn display_escapes_control_characters() {
        let p = Problem::error("x", "FROM \u{1b}]0;title\u{7} here\u{202e}")
            .at("contexts/a\u{1b}/Dockerfile", Some(1))
            .hint("\u{9b}31m");
        let shown = p.to_string();
        assert!(!shown.chars().any(is_unsafe), "{shown:?}");
        assert!(
            shown.contains("\\u{1b}]0;title\\u{7} here\\u{202e}"),
            "{shown}"
        );
        assert!(shown.contains("a\\u{1b}/Dockerfile:1"), "{shown}");
        assert!(shown.contains("hint: \\u{9b}31m"), "{shown}");
        assert_eq!(escape_controls("plain\ttext\n"), "plain\ttext\n");
    }

    #[test]
    fn edit_distance_works() {
        assert_eq!(edit_distance("base-dev", "base-dev"), 0);
        assert_eq!(edit_distance("base-dev", "bse-dev"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
