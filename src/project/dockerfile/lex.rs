//! Lexing of one logical instruction: splits it into words (quotes and the escape character
//! respected), picks out its leading `--flag[=value]` words, the fields of a `--mount` value and the
//! heredoc markers (`<<EOF`, `<<-EOF`) it opens. Hands byte ranges of the `Logical` text to the
//! scanner (`scan`), which expands the image strings among them (`expand`).
use std::ops::Range;

use super::lines::Logical;

/// Splits on whitespace outside quotes; the escape character protects the next character.
pub(super) fn split_words(s: &str, escape: char) -> Vec<Range<usize>> {
    let mut words = Vec::new();
    let mut start = None;
    let mut quote: Option<char> = None;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        if quote.is_none() && c.is_whitespace() {
            if let Some(s0) = start.take() {
                words.push(s0..i);
            }
            continue;
        }
        start.get_or_insert(i);
        match quote {
            Some(q) if c == q => quote = None,
            Some('\'') => {}
            _ if c == escape => {
                chars.next();
            }
            None if c == '\'' || c == '"' => quote = Some(c),
            _ => {}
        }
    }
    if let Some(s0) = start {
        words.push(s0..s.len());
    }
    words
}

/// The leading `--flag[=value]` words of an instruction's arguments.
pub(super) fn flags<'a>(
    ins: &'a Logical,
    args: &'a [Range<usize>],
) -> impl Iterator<Item = &'a Range<usize>> + 'a {
    args.iter().take_while(|w| {
        let word = ins.word(w);
        word.starts_with("--") && word != "--"
    })
}

/// The value range of a `--name=value` flag word.
pub(super) fn flag_value(ins: &Logical, word: &Range<usize>, name: &str) -> Option<Range<usize>> {
    let w = ins.word(word);
    let eq = w.find('=')?;
    (&w[..eq] == name).then(|| word.start + eq + 1..word.end)
}

/// Heredocs opened by a RUN/COPY/ADD: (delimiter, strip leading tabs) in order.
pub(super) fn heredocs(ins: &Logical, args: &[Range<usize>]) -> Vec<(String, bool)> {
    let rest = &args[flags(ins, args).count()..];
    // The JSON (exec) form has no heredocs.
    if rest.first().is_some_and(|w| ins.word(w).starts_with('[')) {
        return Vec::new();
    }
    rest.iter().filter_map(|w| heredoc(ins.word(w))).collect()
}

/// `[n]<<[-]WORD`, with WORD possibly quoted; `<<<` is a here-string, not a heredoc.
fn heredoc(word: &str) -> Option<(String, bool)> {
    let word = word
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .strip_prefix("<<")?;
    let (strip_tabs, word) = match word.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, word),
    };
    let end = word
        .find([';', '&', '|', '<', '>', '(', ')'])
        .unwrap_or(word.len());
    let delimiter: String = word[..end]
        .chars()
        .filter(|c| !matches!(c, '"' | '\'' | '\\'))
        .collect();
    (!delimiter.is_empty()).then_some((delimiter, strip_tabs))
}

/// Splits a `--mount` value into its comma-separated fields (commas inside quotes do not split).
pub(super) fn mount_fields(s: &str) -> Vec<Range<usize>> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == ',' => {
                fields.push(start..i);
                start = i + 1;
            }
            None => {}
        }
    }
    fields.push(start..s.len());
    fields
}
