//! Where the top-level map's `:version` value sits in `info.edn` text, for in-place edits.
//!
//! clojure-reader gives values, not their byte positions, so this walks the text form by form with
//! the reader's own lexical rules: it tracks nesting and skips strings, characters, `;` comments,
//! tagged literals and `#_` discarded forms, so that a nested `:version`, a discarded one or one inside
//! a string is never taken for the live key. The text was read by the reader before (it is valid
//! EDN); on anything unexpected this answers None, never a wrong span.
use std::ops::Range;

/// Byte range of the string content (between the quotes) of the top-level map's live `:version`.
pub fn version_value(text: &str) -> Option<Range<usize>> {
    let mut i = skip_blank(text, 0)?;
    if text[i..].chars().next()? != '{' {
        return None;
    }
    i += 1;
    loop {
        let key_start = skip_blank(text, i)?;
        if closes(text, key_start)? {
            return None;
        }
        let key = key_start..form_end(text, key_start)?;
        let value_start = skip_blank(text, key.end)?;
        if closes(text, value_start)? {
            return None;
        }
        let value = value_start..form_end(text, value_start)?;
        if &text[key] == ":version" {
            return text[value.clone()]
                .starts_with('"')
                .then(|| value.start + 1..value.end - 1);
        }
        i = value.end;
    }
}

/// Whether the form at `i` is a closing delimiter (None at the end of the text).
fn closes(text: &str, i: usize) -> Option<bool> {
    Some(matches!(text[i..].chars().next()?, '}' | ']' | ')'))
}

/// Whitespace and commas, as the reader counts them.
fn is_blank(c: char) -> bool {
    c == ',' || c.is_whitespace()
}

/// Where a symbol, keyword, number or tag ends (the reader's token boundaries).
fn is_boundary(c: char) -> bool {
    is_blank(c) || matches!(c, ',' | ']' | '}' | ')' | ';' | '(' | '[' | '{' | '"')
}

/// Ends a character literal after its first character (a `"` does not).
fn ends_char(c: char) -> bool {
    is_blank(c) || matches!(c, ']' | '}' | ')' | ';' | '(' | '[' | '{')
}

/// The offset of the next form at or after `i`, past blanks, comments and `#_` discarded forms
/// (a discard's own form may be preceded by more discards: `#_ #_ a b` drops both).
fn skip_blank(text: &str, mut i: usize) -> Option<usize> {
    loop {
        let rest = &text[i..];
        let Some(c) = rest.chars().next() else {
            return Some(i);
        };
        if is_blank(c) {
            i += c.len_utf8();
        } else if c == ';' {
            i += rest.find(['\n', '\r']).unwrap_or(rest.len());
        } else if rest.starts_with("#_") {
            let form = skip_blank(text, i + 2)?;
            if closes(text, form)? {
                return None;
            }
            i = form_end(text, form)?;
        } else {
            return Some(i);
        }
    }
}

/// The end (exclusive) of the form starting at `i` (which is not blank).
fn form_end(text: &str, i: usize) -> Option<usize> {
    let rest = &text[i..];
    match rest.chars().next()? {
        '"' => string_end(text, i),
        '\\' => {
            let first = rest[1..].chars().next()?;
            let after = i + 1 + first.len_utf8();
            Some(after + text[after..].find(ends_char).unwrap_or(text.len() - after))
        }
        '{' | '[' | '(' => collection_end(text, i + 1),
        '#' if rest[1..].starts_with('{') => collection_end(text, i + 2),
        '#' => {
            // A tagged literal: `#tag`, then the form it tags.
            let tag_end = token_end(text, i + 1);
            if tag_end == i + 1 {
                return None;
            }
            let form = skip_blank(text, tag_end)?;
            if closes(text, form)? {
                return None;
            }
            form_end(text, form)
        }
        '}' | ']' | ')' => None,
        _ => Some(token_end(text, i)),
    }
}

fn token_end(text: &str, i: usize) -> usize {
    i + text[i..].find(is_boundary).unwrap_or(text.len() - i)
}

/// End of the string literal opening at `i`, past its closing quote.
fn string_end(text: &str, i: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// End of a collection whose items start at `i`, past its closing delimiter.
fn collection_end(text: &str, mut i: usize) -> Option<usize> {
    loop {
        i = skip_blank(text, i)?;
        if closes(text, i)? {
            return Some(i + 1);
        }
        i = form_end(text, i)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> Option<&str> {
        version_value(text).map(|r| &text[r])
    }

    #[test]
    fn the_live_top_level_key_only() {
        assert_eq!(
            value("{:base {:version \"12\"} :version \"3.0.0\"}"),
            Some("3.0.0")
        );
        assert_eq!(
            value("{#_ :version #_ \"0.1.0\" :version \"3.0.0\"}"),
            Some("3.0.0")
        );
        assert_eq!(
            value("{#_{:version \"1\"} :version \"3.0.0\"}"),
            Some("3.0.0")
        );
        assert_eq!(
            value("{#_ #_ :version \"1\" :version \"3.0.0\"}"),
            Some("3.0.0")
        );
        assert_eq!(
            value("#_{:version \"1\"} {:version \"3.0.0\"}"),
            Some("3.0.0")
        );
        assert_eq!(
            value("{:a [:version \"1\"] :version \"2.0.0\"}"),
            Some("2.0.0")
        );
        assert_eq!(value("{:a #{:version} :version \"2.0.0\"}"), Some("2.0.0"));
        assert_eq!(value("{:version #_\"1\" \"2.0.0\"}"), Some("2.0.0"));
    }

    #[test]
    fn strings_chars_comments_and_tags_are_skipped() {
        assert_eq!(
            value("{:a \":version \\\"1\\\"\" :version \"2.0.0\"}"),
            Some("2.0.0")
        );
        assert_eq!(value("{:a \\: :b \\\" :version \"2.0.0\"}"), Some("2.0.0"));
        assert_eq!(value("{:a \\newline :version \"2.0.0\"}"), Some("2.0.0"));
        assert_eq!(
            value("{; :version \"1\"\n :version \"2.0.0\"}"),
            Some("2.0.0")
        );
        assert_eq!(
            value("{:t #my/tag {:version \"1\"} :version \"2.0.0\"}"),
            Some("2.0.0")
        );
        assert_eq!(
            value("{:old-version \"1\" :version \"2.0.0\"}"),
            Some("2.0.0")
        );
        assert_eq!(
            value("{:x/version \"1\" :version \"2.0.0\"}"),
            Some("2.0.0")
        );
    }

    #[test]
    fn no_live_string_version_is_none() {
        assert_eq!(value("{:base {:version \"12\"}}"), None);
        assert_eq!(value("{#_ :version \"1\"}"), None);
        assert_eq!(value("{:version 1}"), None);
        assert_eq!(value("[:version \"1\"]"), None);
        assert_eq!(value("{:version"), None);
    }
}
