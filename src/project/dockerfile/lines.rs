//! Physical lines and logical instructions: splits the text into lines (without `\r\n`, after a
//! byte-order mark), reads the parser directives at the top (escape character, `# syntax=`), and
//! joins an instruction's continued lines into one `Logical` text that maps every byte back to its
//! offset in the file. Hands `Logical` instructions to the lexer (`lex`) and the scanner (`scan`).
use std::ops::Range;

use super::SyntaxDirective;

/// One physical line: the byte range of its content, without `\n` or `\r\n`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Line {
    pub(super) start: usize,
    end: usize,
}

impl Line {
    pub(super) fn text(self, text: &str) -> &str {
        text.get(self.start..self.end).unwrap_or("")
    }
}

pub(super) fn split_lines(text: &str) -> Vec<Line> {
    // A byte-order mark is not part of the first instruction (or directive).
    let mut start = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let mut lines = Vec::new();
    let bytes = text.as_bytes();
    let mut push = |start: usize, end: usize| {
        let end = if end > start && bytes[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        lines.push(Line { start, end });
    };
    // `\n` and `\r` are ASCII, so every index used here is a char boundary.
    for (i, &b) in bytes.iter().enumerate().skip(start) {
        if b == b'\n' {
            push(start, i);
            start = i + 1;
        }
    }
    if start < bytes.len() {
        push(start, bytes.len());
    }
    lines
}

/// An instruction joined from its physical lines (continuations removed, comment lines dropped),
/// remembering where each joined piece came from in the file.
#[derive(Debug, Default)]
pub(super) struct Logical {
    pub(super) text: String,
    /// (offset in `text`, offset in the file) of each joined piece, in order.
    segments: Vec<(usize, usize)>,
}

impl Logical {
    pub(super) fn push(&mut self, piece: &str, file_offset: usize) {
        self.segments.push((self.text.len(), file_offset));
        self.text.push_str(piece);
    }

    /// File offset of the byte at `offset` in the joined text.
    pub(super) fn file_offset(&self, offset: usize) -> usize {
        let i = self
            .segments
            .partition_point(|&(start, _)| start <= offset)
            .saturating_sub(1);
        self.segments
            .get(i)
            .map_or(offset, |&(start, file)| file + (offset - start.min(offset)))
    }

    /// The characters of `range` with the file offset of each.
    pub(super) fn chars(&self, range: Range<usize>) -> Vec<(char, usize)> {
        let base = range.start;
        let word = self.text.get(range).unwrap_or("");
        word.char_indices()
            .map(|(i, c)| (c, self.file_offset(base + i)))
            .collect()
    }

    pub(super) fn word(&self, range: &Range<usize>) -> &str {
        self.text.get(range.clone()).unwrap_or("")
    }

    /// The file range of `range` of the joined text, if it is not empty and lies in one piece.
    fn file_range(&self, range: &Range<usize>) -> Option<Range<usize>> {
        if range.is_empty() || range.end > self.text.len() {
            return None;
        }
        let segment = |offset: usize| {
            self.segments
                .partition_point(|&(start, _)| start <= offset)
                .saturating_sub(1)
        };
        if segment(range.start) != segment(range.end - 1) {
            return None;
        }
        let start = self.file_offset(range.start);
        Some(start..start + range.len())
    }

    /// The file range of a written value (a flag value, a mount field value, a FROM image), without
    /// the double quotes around it if it is quoted as a whole.
    pub(super) fn value_range(&self, range: &Range<usize>) -> Option<Range<usize>> {
        let w = self.word(range);
        let range = if w.len() >= 2 && w.starts_with('"') && w.ends_with('"') {
            range.start + 1..range.end - 1
        } else {
            range.clone()
        };
        self.file_range(&range)
    }
}

/// A line's content without its continuation escape, and whether the instruction continues:
/// the escape character as the last non-blank character.
pub(super) fn strip_continuation(content: &str, escape: char) -> (&str, bool) {
    match content.trim_end_matches([' ', '\t']).strip_suffix(escape) {
        Some(body) => (body, true),
        None => (content, false),
    }
}

pub(super) fn is_blank_or_comment(line: &str) -> bool {
    let line = line.trim_start();
    line.is_empty() || line.starts_with('#')
}

/// The parser directives at the very top of a Dockerfile.
#[derive(Debug)]
pub(super) struct Directives {
    pub(super) escape: char,
    pub(super) syntax: Option<SyntaxDirective>,
    /// Index of the first line that is not a directive.
    pub(super) body: usize,
}

/// Reads the parser directives at the very top. The first comment, blank line, instruction, unknown
/// or repeated directive ends them, as in BuildKit.
pub(super) fn parse_directives(text: &str, lines: &[Line]) -> Directives {
    let mut d = Directives {
        escape: '\\',
        syntax: None,
        body: lines.len(),
    };
    let mut seen: Vec<String> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((key, value)) = directive(line.text(text)) else {
            d.body = i;
            return d;
        };
        if seen.contains(&key) {
            d.body = i;
            return d;
        }
        match (key.as_str(), value) {
            ("escape", "\\") => d.escape = '\\',
            ("escape", "`") => d.escape = '`',
            ("syntax", image) => {
                d.syntax = Some(SyntaxDirective {
                    image: image.to_string(),
                    line: i + 1,
                })
            }
            _ => {}
        }
        seen.push(key);
    }
    d
}

/// `# key = value` with a known key (lower-cased).
fn directive(line: &str) -> Option<(String, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let key_len = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let key = rest[..key_len].to_ascii_lowercase();
    let value = rest[key_len..].trim_start().strip_prefix('=')?.trim();
    let known = matches!(key.as_str(), "syntax" | "escape" | "check");
    (known && !value.is_empty()).then_some((key, value))
}
