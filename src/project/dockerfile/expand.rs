//! Expansion of ARG values in image strings: expands `$VAR`, `${VAR}`, `${VAR:-default}` and
//! `${VAR:+alt}`, quotes and escapes of one word the way a builder's shell lexer does, with the ARGs
//! of a `Scope` (the global ARGs for FROM, the stage's for COPY --from / RUN --mount), within bounded
//! size and depth. Hands the scanner (`scan`) a list of `Piece`s: each character with its source
//! byte, its written word, and whether it is literal, unexpanded or `${REGISTRY}`.
use std::collections::HashMap;
use std::ops::Range;

/// Longest expansion of one word, in characters: image strings are short, and `ARG B=$A$A` chains
/// must not grow exponentially.
pub(super) const MAX_WORD: usize = 4096;
/// Characters all expansions of one file may produce, so that a hostile file stays cheap to scan.
pub(super) const MAX_TOTAL: usize = 1 << 22;
/// Nesting of `${A:-${B:-...}}` defaults we follow; deeper text is kept as written.
const MAX_DEPTH: u8 = 8;

/// One character of an expanded word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Piece {
    pub(super) ch: char,
    /// Byte offset of the character in the file (of the `$` for a variable).
    pub(super) src: usize,
    /// Which written word the character physically belongs to (a FROM argument, an ARG default...).
    pub(super) word: u32,
    pub(super) kind: PieceKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PieceKind {
    /// Written in the file, possibly via an ARG default.
    Literal,
    /// Part of a variable reference whose value is unknown, kept as written.
    Unexpanded,
    /// `${REGISTRY}`: what cip passes as a build argument.
    Registry { in_scope: bool },
}

impl Piece {
    pub(super) fn is(&self, c: char) -> bool {
        self.kind == PieceKind::Literal && self.ch == c
    }
}

/// Renders pieces as text, a registry piece as `${REGISTRY}`.
pub(super) fn render(pieces: &[Piece]) -> String {
    let mut s = String::new();
    for p in pieces {
        match p.kind {
            PieceKind::Registry { .. } => s.push_str("${REGISTRY}"),
            _ => s.push(p.ch),
        }
    }
    s
}

/// ARGs visible at some point: name -> expanded default (None: declared without a known value).
#[derive(Debug, Default, Clone)]
pub(super) struct Scope(pub(super) HashMap<String, Option<Vec<Piece>>>);

impl Scope {
    fn declares(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// `${NAME<op>word}` operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `-`: default if unset; `:-`: default if unset or empty.
    Default { colon: bool },
    /// `+`: alternative if set; `:+`: alternative if set and not empty.
    Alternative { colon: bool },
}

type Chars = [(char, usize)];

/// Expands variables, quotes and escapes of one word the way a builder's shell lexer does, keeping
/// the origin of each character.
pub(super) struct Expander<'a> {
    pub(super) scope: &'a Scope,
    pub(super) escape: char,
    pub(super) word: u32,
    pub(super) out: Vec<Piece>,
    /// Shared budget of pieces left for the whole scan.
    pub(super) budget: &'a mut usize,
    /// Whether a `${` without its `}` was met.
    pub(super) unclosed: bool,
}

impl Expander<'_> {
    fn push(&mut self, piece: Piece) -> bool {
        if self.out.len() >= MAX_WORD || *self.budget == 0 {
            return false;
        }
        *self.budget -= 1;
        self.out.push(piece);
        true
    }

    fn push_as(&mut self, chars: &Chars, kind: PieceKind) {
        for &(ch, src) in chars {
            let word = self.word;
            if !self.push(Piece {
                ch,
                src,
                word,
                kind,
            }) {
                return;
            }
        }
    }

    fn push_value(&mut self, value: &[Piece]) {
        for &p in value {
            if !self.push(p) {
                return;
            }
        }
    }

    pub(super) fn expand(&mut self, input: &Chars, depth: u8) {
        let mut in_double = false;
        let mut i = 0;
        while let Some(&(c, _)) = input.get(i) {
            let next = input.get(i + 1).map(|&(n, _)| n);
            i = match c {
                '\'' if !in_double => {
                    let body = &input[i + 1..];
                    let close = body
                        .iter()
                        .position(|&(q, _)| q == '\'')
                        .unwrap_or(body.len());
                    self.push_as(&body[..close], PieceKind::Literal);
                    i + close + 2
                }
                '"' => {
                    in_double = !in_double;
                    i + 1
                }
                _ if c == self.escape => {
                    // Outside quotes the escape protects anything; inside, only `$`, `"` and itself.
                    let protects =
                        next.is_some_and(|n| !in_double || n == '$' || n == '"' || n == c);
                    if protects {
                        self.push_as(&input[i + 1..i + 2], PieceKind::Literal);
                        i + 2
                    } else {
                        self.push_as(&input[i..i + 1], PieceKind::Literal);
                        i + 1
                    }
                }
                '$' => self.dollar(input, i, depth),
                _ => {
                    self.push_as(&input[i..i + 1], PieceKind::Literal);
                    i + 1
                }
            };
        }
    }

    /// Expands the variable at `input[i] == '$'`; returns the index after it.
    fn dollar(&mut self, input: &Chars, i: usize, depth: u8) -> usize {
        match input.get(i + 1).map(|&(c, _)| c) {
            Some('{') => {
                let Some(close) = matching_brace(input, i + 2) else {
                    // Unterminated `${`: builders reject it; keep the rest as written.
                    self.unclosed = true;
                    self.push_as(&input[i..], PieceKind::Literal);
                    return input.len();
                };
                self.braced(&input[i + 2..close], &input[i..=close], depth);
                close + 1
            }
            Some(c) if c == '_' || c.is_ascii_alphabetic() => {
                let len = input[i + 1..]
                    .iter()
                    .take_while(|&&(c, _)| is_name_char(c))
                    .count();
                let name: String = input[i + 1..i + 1 + len].iter().map(|&(c, _)| c).collect();
                self.substitute(&name, None, &input[i..i + 1 + len], depth);
                i + 1 + len
            }
            _ => {
                // A lone `$` is literal.
                self.push_as(&input[i..i + 1], PieceKind::Literal);
                i + 1
            }
        }
    }

    /// `inner` is the text between `${` and `}`; `raw` the whole reference.
    fn braced(&mut self, inner: &Chars, raw: &Chars, depth: u8) {
        let len = inner.iter().take_while(|&&(c, _)| is_name_char(c)).count();
        let name: String = inner[..len].iter().map(|&(c, _)| c).collect();
        let rest = &inner[len..];
        let starts = |s: &str| rest.iter().map(|&(c, _)| c).take(s.len()).eq(s.chars());
        let op = if rest.is_empty() {
            None
        } else if starts(":-") {
            Some((Op::Default { colon: true }, &rest[2..]))
        } else if starts("-") {
            Some((Op::Default { colon: false }, &rest[1..]))
        } else if starts(":+") {
            Some((Op::Alternative { colon: true }, &rest[2..]))
        } else if starts("+") {
            Some((Op::Alternative { colon: false }, &rest[1..]))
        } else {
            // `${A:?msg}`, `${A#pattern}`...: not followed.
            self.push_as(raw, PieceKind::Unexpanded);
            return;
        };
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            self.push_as(raw, PieceKind::Unexpanded);
        } else {
            self.substitute(&name, op, raw, depth);
        }
    }

    fn substitute(&mut self, name: &str, op: Option<(Op, &Chars)>, raw: &Chars, depth: u8) {
        let src = raw.first().map_or(0, |&(_, s)| s);
        if name == "REGISTRY" {
            // cip always passes REGISTRY, so a default never applies; `+` forms are not references.
            if matches!(op, None | Some((Op::Default { .. }, _))) {
                let in_scope = self.scope.declares("REGISTRY");
                let word = self.word;
                self.push(Piece {
                    ch: '$',
                    src,
                    word,
                    kind: PieceKind::Registry { in_scope },
                });
            } else {
                self.push_as(raw, PieceKind::Unexpanded);
            }
            return;
        }
        let value = match self.scope.0.get(name) {
            Some(Some(v)) => Some(v),
            // Declared, value unknown (a build argument): keep the reference as written.
            Some(None) => {
                self.push_as(raw, PieceKind::Unexpanded);
                return;
            }
            // Undeclared: the builder sees it unset.
            None => None,
        };
        let empty = value.is_none_or(|v| v.is_empty());
        match op {
            None => match value {
                Some(v) => self.push_value(v),
                None => self.push_as(raw, PieceKind::Unexpanded),
            },
            Some((Op::Default { colon }, word)) => match value {
                Some(v) if !(colon && empty) => self.push_value(v),
                _ => self.nested(word, raw, depth),
            },
            Some((Op::Alternative { colon }, word)) => {
                if value.is_some() && !(colon && empty) {
                    self.nested(word, raw, depth);
                }
            }
        }
    }

    /// Expands a default/alternative word, unless nesting is too deep.
    fn nested(&mut self, word: &Chars, raw: &Chars, depth: u8) {
        if depth >= MAX_DEPTH {
            self.push_as(raw, PieceKind::Unexpanded);
        } else {
            self.expand(word, depth + 1);
        }
    }
}

/// Whether the expanded image `pieces` (starting with the `${REGISTRY}` piece) are exactly the text
/// `written` of `text`: the `${REGISTRY}` reference at its start, then every other character at the
/// byte following the previous one, up to its end. Quotes, escapes, `${A:-default}` and values of
/// other ARGs all break that chain.
pub(super) fn image_written_as(text: &str, written: &Range<usize>, pieces: &[Piece]) -> bool {
    let [registry, rest @ ..] = pieces else {
        return false;
    };
    let (Some(first), Some(last)) = (rest.first(), rest.last()) else {
        return false;
    };
    let contiguous = rest
        .windows(2)
        .all(|w| w[1].src == w[0].src + w[0].ch.len_utf8());
    registry.src == written.start
        && variable_end(text, registry.src) == Some(first.src)
        && contiguous
        && rest.iter().all(|p| p.word == registry.word)
        && last.src + last.ch.len_utf8() == written.end
}

/// The end of the variable reference (`$NAME`, `${...}` with nested braces) starting at `start`.
fn variable_end(text: &str, start: usize) -> Option<usize> {
    let rest = text.get(start..)?.strip_prefix('$')?;
    if let Some(body) = rest.strip_prefix('{') {
        let mut depth = 1usize;
        for (i, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(start + 2 + i + 1);
                    }
                }
                _ => {}
            }
        }
        return None;
    }
    let len = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
    (len > 0).then_some(start + 1 + len)
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// Index of the `}` closing a `${` whose body starts at `from`.
fn matching_brace(input: &Chars, from: usize) -> Option<usize> {
    let mut depth = 1usize;
    for (i, &(c, _)) in input.iter().enumerate().skip(from) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}
