//! Finding references to other contexts' images (`${REGISTRY}/NAME:TAG`) in a Dockerfile.
//!
//! The scanner follows the BuildKit front end closely enough to know which text is an instruction
//! (parser directives, the escape character, continuations, comments, heredoc bodies) and which values a
//! builder would see in an image string (ARG defaults, the scope of `ARG REGISTRY`). Every character of
//! an expanded image string remembers the byte it came from, so a tag can be rewritten in place.
use std::collections::HashMap;
use std::ops::Range;

use serde::Serialize;

/// Where in the Dockerfile an image is referenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefKind {
    /// `FROM image`
    From,
    /// `COPY --from=image` (also `ADD --from=`)
    CopyFrom,
    /// `RUN --mount=...,from=image`
    MountFrom,
}

/// How messages name a reference's instruction.
pub fn kind_label(kind: RefKind) -> &'static str {
    match kind {
        RefKind::From => "FROM",
        RefKind::CopyFrom => "COPY --from",
        RefKind::MountFrom => "RUN --mount from=",
    }
}

/// A reference to `${REGISTRY}/name[:tag][@digest]`: an image of this project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryRef {
    pub kind: RefKind,
    /// 1-based line of the instruction (for a value coming from a global `ARG` default, the line of that ARG).
    pub line: usize,
    /// Repository name after `${REGISTRY}/`, e.g. `base-dev` (may contain `/`).
    pub name: String,
    /// The tag as written, e.g. `1.2.3`; None if absent.
    pub tag: Option<String>,
    /// `sha256:...` if pinned by digest.
    pub digest: Option<String>,
    /// Byte range of the tag text in the whole file (for in-place rewrites); None if no tag is written
    /// literally in the file (absent, or produced by another ARG).
    pub tag_span: Option<Range<usize>>,
    /// Byte range of the whole image text as written in the file, from the `$` of `${REGISTRY}` to the
    /// end of the tag or digest (e.g. `${REGISTRY}/tools:1.0.0` of `--from=${REGISTRY}/tools:1.0.0`;
    /// without the quotes of a quoted value), so that the reference can be replaced as a whole. None
    /// when that text is not written there in one piece: the value comes from an ARG, a continuation
    /// splits it, or quotes, escapes or `${VAR:-default}` forms sit inside it.
    pub image_span: Option<Range<usize>>,
    /// False when `${REGISTRY}` is used in a stage (COPY --from / RUN --mount after FROM) that did not
    /// redeclare `ARG REGISTRY`, or in a FROM with no global `ARG REGISTRY` before it: builders expand it
    /// to an empty string there.
    pub registry_in_scope: bool,
}

/// Any other image reference (`debian:bookworm`, `scratch`), recorded for information.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExternalRef {
    pub kind: RefKind,
    pub line: usize,
    /// The image as written after expanding known ARG defaults.
    pub image: String,
}

/// What a Dockerfile says about images.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DockerfileRefs {
    pub registry_refs: Vec<RegistryRef>,
    pub external: Vec<ExternalRef>,
    /// Number of `FROM` instructions (stages).
    pub stages: usize,
    /// Byte offset of the start of the line where the first `FROM` instruction begins: stages can be
    /// declared before all the others there (after the parser directives and the global ARGs).
    pub first_from: Option<usize>,
    /// Byte ranges of the stage indexes written as `COPY --from=N` / `ADD --from=N` /
    /// `RUN --mount=...,from=N` (digits only, without quotes, in one piece).
    pub stage_indexes: Vec<Range<usize>>,
    /// What builders differ on: heredocs and the `# syntax=` directive.
    pub features: Features,
    /// Instructions no builder knows (`RUNN`), with their line.
    pub unknown_instructions: Vec<UnknownInstruction>,
    /// Image strings (FROM, COPY --from, RUN --mount from=) with a `${` that is never closed: builders
    /// reject them, and no reference can be read from them.
    pub unclosed: Vec<Unclosed>,
}

/// Dockerfile features not every builder supports (see `build::capabilities`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Features {
    /// 1-based lines of the instructions that open a heredoc (`RUN <<EOF`, `COPY <<EOF /dst`).
    pub heredoc_lines: Vec<usize>,
    /// The `# syntax=` parser directive: the BuildKit frontend image to build with.
    pub syntax: Option<SyntaxDirective>,
}

/// `# syntax=IMAGE` at the top of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyntaxDirective {
    /// As written, e.g. `docker/dockerfile:1.4.1`.
    pub image: String,
    pub line: usize,
}

/// A line that starts an instruction with a word no builder knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownInstruction {
    pub line: usize,
    /// The word as written (at most 40 characters of it).
    pub word: String,
}

/// An image string with an unclosed `${`: where it is and in which instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unclosed {
    pub kind: RefKind,
    pub line: usize,
}

/// Every instruction a Dockerfile may hold (BuildKit's list; matched case-insensitively).
pub const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Scan Dockerfile text. Never panics, whatever the input; unparseable lines are skipped.
pub fn scan(text: &str) -> DockerfileRefs {
    Scanner::new(text).run()
}

/// Longest expansion of one word, in characters: image strings are short, and `ARG B=$A$A` chains
/// must not grow exponentially.
const MAX_WORD: usize = 4096;
/// Characters all expansions of one file may produce, so that a hostile file stays cheap to scan.
const MAX_TOTAL: usize = 1 << 22;
/// Nesting of `${A:-${B:-...}}` defaults we follow; deeper text is kept as written.
const MAX_DEPTH: u8 = 8;

// ---------------------------------------------------------------------------------------------
// Physical lines and logical instructions
// ---------------------------------------------------------------------------------------------

/// One physical line: the byte range of its content, without `\n` or `\r\n`.
#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    end: usize,
}

impl Line {
    fn text(self, text: &str) -> &str {
        text.get(self.start..self.end).unwrap_or("")
    }
}

fn split_lines(text: &str) -> Vec<Line> {
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
struct Logical {
    text: String,
    /// (offset in `text`, offset in the file) of each joined piece, in order.
    segments: Vec<(usize, usize)>,
}

impl Logical {
    fn push(&mut self, piece: &str, file_offset: usize) {
        self.segments.push((self.text.len(), file_offset));
        self.text.push_str(piece);
    }

    /// File offset of the byte at `offset` in the joined text.
    fn file_offset(&self, offset: usize) -> usize {
        let i = self
            .segments
            .partition_point(|&(start, _)| start <= offset)
            .saturating_sub(1);
        self.segments
            .get(i)
            .map_or(offset, |&(start, file)| file + (offset - start.min(offset)))
    }

    /// The characters of `range` with the file offset of each.
    fn chars(&self, range: Range<usize>) -> Vec<(char, usize)> {
        let base = range.start;
        let word = self.text.get(range).unwrap_or("");
        word.char_indices()
            .map(|(i, c)| (c, self.file_offset(base + i)))
            .collect()
    }

    fn word(&self, range: &Range<usize>) -> &str {
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
    fn value_range(&self, range: &Range<usize>) -> Option<Range<usize>> {
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
fn strip_continuation(content: &str, escape: char) -> (&str, bool) {
    match content.trim_end_matches([' ', '\t']).strip_suffix(escape) {
        Some(body) => (body, true),
        None => (content, false),
    }
}

fn is_blank_or_comment(line: &str) -> bool {
    let line = line.trim_start();
    line.is_empty() || line.starts_with('#')
}

/// The parser directives at the very top of a Dockerfile.
#[derive(Debug)]
struct Directives {
    escape: char,
    syntax: Option<SyntaxDirective>,
    /// Index of the first line that is not a directive.
    body: usize,
}

/// Reads the parser directives at the very top. The first comment, blank line, instruction, unknown
/// or repeated directive ends them, as in BuildKit.
fn parse_directives(text: &str, lines: &[Line]) -> Directives {
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

// ---------------------------------------------------------------------------------------------
// Words, flags, heredocs
// ---------------------------------------------------------------------------------------------

/// Splits on whitespace outside quotes; the escape character protects the next character.
fn split_words(s: &str, escape: char) -> Vec<Range<usize>> {
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
fn flags<'a>(
    ins: &'a Logical,
    args: &'a [Range<usize>],
) -> impl Iterator<Item = &'a Range<usize>> + 'a {
    args.iter().take_while(|w| {
        let word = ins.word(w);
        word.starts_with("--") && word != "--"
    })
}

/// The value range of a `--name=value` flag word.
fn flag_value(ins: &Logical, word: &Range<usize>, name: &str) -> Option<Range<usize>> {
    let w = ins.word(word);
    let eq = w.find('=')?;
    (&w[..eq] == name).then(|| word.start + eq + 1..word.end)
}

/// Heredocs opened by a RUN/COPY/ADD: (delimiter, strip leading tabs) in order.
fn heredocs(ins: &Logical, args: &[Range<usize>]) -> Vec<(String, bool)> {
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
fn mount_fields(s: &str) -> Vec<Range<usize>> {
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

// ---------------------------------------------------------------------------------------------
// Expansion of ARG values in image strings
// ---------------------------------------------------------------------------------------------

/// One character of an expanded word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    ch: char,
    /// Byte offset of the character in the file (of the `$` for a variable).
    src: usize,
    /// Which written word the character physically belongs to (a FROM argument, an ARG default...).
    word: u32,
    kind: PieceKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PieceKind {
    /// Written in the file, possibly via an ARG default.
    Literal,
    /// Part of a variable reference whose value is unknown, kept as written.
    Unexpanded,
    /// `${REGISTRY}`: what cip passes as a build argument.
    Registry { in_scope: bool },
}

impl Piece {
    fn is(&self, c: char) -> bool {
        self.kind == PieceKind::Literal && self.ch == c
    }
}

/// Renders pieces as text, a registry piece as `${REGISTRY}`.
fn render(pieces: &[Piece]) -> String {
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
struct Scope(HashMap<String, Option<Vec<Piece>>>);

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
struct Expander<'a> {
    scope: &'a Scope,
    escape: char,
    word: u32,
    out: Vec<Piece>,
    /// Shared budget of pieces left for the whole scan.
    budget: &'a mut usize,
    /// Whether a `${` without its `}` was met.
    unclosed: bool,
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

    fn expand(&mut self, input: &Chars, depth: u8) {
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
fn image_written_as(text: &str, written: &Range<usize>, pieces: &[Piece]) -> bool {
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

// ---------------------------------------------------------------------------------------------
// The scanner
// ---------------------------------------------------------------------------------------------

struct Scanner<'a> {
    text: &'a str,
    lines: Vec<Line>,
    escape: char,
    /// First line after the parser directives.
    body: usize,
    /// ARGs declared before the first FROM: what FROM lines see.
    global: Scope,
    /// ARGs declared in the current stage: what COPY --from and RUN --mount see.
    stage: Scope,
    in_stage: bool,
    /// Lower-cased names of the stages seen so far.
    stage_names: Vec<String>,
    words: u32,
    budget: usize,
    /// Whether the last expanded word had an unclosed `${`.
    last_unclosed: bool,
    out: DockerfileRefs,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        let lines = split_lines(text);
        let directives = parse_directives(text, &lines);
        let out = DockerfileRefs {
            features: Features {
                syntax: directives.syntax,
                ..Features::default()
            },
            ..DockerfileRefs::default()
        };
        Scanner {
            text,
            lines,
            escape: directives.escape,
            body: directives.body,
            global: Scope::default(),
            stage: Scope::default(),
            in_stage: false,
            stage_names: Vec::new(),
            words: 0,
            budget: MAX_TOTAL,
            last_unclosed: false,
            out,
        }
    }

    fn run(mut self) -> DockerfileRefs {
        let mut i = self.body;
        while let Some(&line) = self.lines.get(i) {
            if is_blank_or_comment(line.text(self.text)) {
                i += 1;
                continue;
            }
            let (ins, next) = self.read_instruction(i);
            let stages = self.out.stages;
            let delimiters = self.instruction(&ins);
            if stages == 0 && self.out.stages == 1 {
                self.out.first_from = Some(line.start);
            }
            if !delimiters.is_empty() {
                self.out.features.heredoc_lines.push(i + 1);
            }
            i = self.skip_heredoc_bodies(next, &delimiters);
        }
        self.out
    }

    /// Joins the instruction starting at line `first`; returns it and the index of the next line.
    fn read_instruction(&self, first: usize) -> (Logical, usize) {
        let mut ins = Logical::default();
        let line = self.lines[first];
        let content = line.text(self.text);
        let lead = content.len() - content.trim_start().len();
        let (piece, mut more) = strip_continuation(&content[lead..], self.escape);
        ins.push(piece, line.start + lead);
        let mut i = first + 1;
        while more {
            let Some(&line) = self.lines.get(i) else {
                break;
            };
            i += 1;
            let content = line.text(self.text);
            // Comment and empty lines inside a continued instruction are dropped.
            if is_blank_or_comment(content) {
                continue;
            }
            let (piece, cont) = strip_continuation(content, self.escape);
            ins.push(piece, line.start);
            more = cont;
        }
        (ins, i)
    }

    /// Skips the bodies of `delimiters`, which start at line `i`; returns the line after the last one.
    fn skip_heredoc_bodies(&self, mut i: usize, delimiters: &[(String, bool)]) -> usize {
        for (delimiter, strip_tabs) in delimiters {
            while let Some(&line) = self.lines.get(i) {
                i += 1;
                let content = line.text(self.text);
                let content = if *strip_tabs {
                    content.trim_start_matches('\t')
                } else {
                    content
                };
                if content == delimiter {
                    break;
                }
            }
        }
        i
    }

    /// Handles one instruction; returns the heredocs it opens.
    fn instruction(&mut self, ins: &Logical) -> Vec<(String, bool)> {
        let words = split_words(&ins.text, self.escape);
        let Some((keyword, args)) = words.split_first() else {
            return Vec::new();
        };
        let written = ins.word(keyword);
        let keyword = written.to_ascii_uppercase();
        if !INSTRUCTIONS.contains(&keyword.as_str()) {
            self.out.unknown_instructions.push(UnknownInstruction {
                line: self.line_of(ins.file_offset(0)),
                word: written.chars().take(40).collect(),
            });
        }
        match keyword.as_str() {
            "ARG" => self.arg(ins, args),
            "FROM" => self.from(ins, args),
            "COPY" | "ADD" => {
                self.copy(ins, args);
                return heredocs(ins, args);
            }
            "RUN" => {
                self.run_mounts(ins, args);
                return heredocs(ins, args);
            }
            _ => {}
        }
        Vec::new()
    }

    /// `ARG NAME[=value] ...`: before the first FROM into the global scope, after it into the stage's.
    fn arg(&mut self, ins: &Logical, args: &[Range<usize>]) {
        for word in args {
            let w = ins.word(word);
            let (name, value) = match w.find('=') {
                Some(eq) => (&w[..eq], Some(word.start + eq + 1..word.end)),
                None => (w, None),
            };
            if name.is_empty() {
                continue;
            }
            let value = match value {
                Some(range) => Some(self.expand(ins, range, self.in_stage)),
                // In a stage, `ARG NAME` brings in the global default.
                None if self.in_stage => self.global.0.get(name).cloned().flatten(),
                None => None,
            };
            let scope = if self.in_stage {
                &mut self.stage
            } else {
                &mut self.global
            };
            scope.0.insert(name.to_string(), value);
        }
    }

    /// `FROM [--flags] image [AS name]`: FROM sees only the global ARGs.
    fn from(&mut self, ins: &Logical, args: &[Range<usize>]) {
        self.out.stages += 1;
        let rest = &args[flags(ins, args).count()..];
        if let Some(image) = rest.first() {
            let pieces = self.expand(ins, image.clone(), false);
            self.record(RefKind::From, &pieces, ins.value_range(image));
        }
        if let [_, as_kw, name, ..] = rest {
            if ins.word(as_kw).eq_ignore_ascii_case("as") {
                self.stage_names.push(ins.word(name).to_lowercase());
            }
        }
        self.in_stage = true;
        self.stage = Scope::default();
    }

    /// `COPY --from=X` / `ADD --from=X`.
    fn copy(&mut self, ins: &Logical, args: &[Range<usize>]) {
        for flag in flags(ins, args) {
            if let Some(value) = flag_value(ins, flag, "--from") {
                let written = ins.value_range(&value);
                let pieces = self.expand(ins, value, true);
                self.record(RefKind::CopyFrom, &pieces, written);
            }
        }
    }

    /// `RUN --mount=type=bind,from=X,...` (any mount type, keys in any order, fields may be quoted).
    fn run_mounts(&mut self, ins: &Logical, args: &[Range<usize>]) {
        for flag in flags(ins, args) {
            let Some(value) = flag_value(ins, flag, "--mount") else {
                continue;
            };
            for field in mount_fields(ins.word(&value)) {
                let mut field = value.start + field.start..value.start + field.end;
                let f = ins.word(&field);
                // A whole field may be quoted CSV-style: `"from=x"`.
                if f.len() >= 2 && f.starts_with('"') && f.ends_with('"') {
                    field = field.start + 1..field.end - 1;
                }
                let f = ins.word(&field);
                let Some(eq) = f.find('=') else { continue };
                if f[..eq].trim().eq_ignore_ascii_case("from") {
                    let value = field.start + eq + 1..field.end;
                    let written = ins.value_range(&value);
                    let pieces = self.expand(ins, value, true);
                    self.record(RefKind::MountFrom, &pieces, written);
                }
            }
        }
    }

    /// Expands `range` of `ins` with the stage's ARGs (`in_stage`) or the global ones.
    fn expand(&mut self, ins: &Logical, range: Range<usize>, in_stage: bool) -> Vec<Piece> {
        let chars = ins.chars(range);
        self.words = self.words.wrapping_add(1);
        let mut expander = Expander {
            scope: if in_stage { &self.stage } else { &self.global },
            escape: self.escape,
            word: self.words,
            out: Vec::new(),
            budget: &mut self.budget,
            unclosed: false,
        };
        expander.expand(&chars, 0);
        self.last_unclosed = expander.unclosed;
        expander.out
    }

    /// Records an expanded image string: a registry reference, an external image, or nothing for
    /// a stage name or index. `written` is the file range of the value as written, if in one piece.
    fn record(&mut self, kind: RefKind, pieces: &[Piece], written: Option<Range<usize>>) {
        if self.last_unclosed {
            let line = pieces.first().map_or(1, |p| self.line_of(p.src));
            self.out.unclosed.push(Unclosed { kind, line });
            return;
        }
        if let Some(r) = self.registry_ref(kind, pieces, written.clone()) {
            self.out.registry_refs.push(r);
            return;
        }
        if let Some(span) = written.filter(|_| kind != RefKind::From) {
            // A stage index as builders that do not expand `--from` (BuildKit) see it.
            let digits = self.text.get(span.clone()).unwrap_or("");
            if digits.bytes().all(|b| b.is_ascii_digit()) {
                self.out.stage_indexes.push(span);
            }
        }
        let image = render(pieces);
        let is_index = kind != RefKind::From && image.bytes().all(|b| b.is_ascii_digit());
        let lower = image.to_lowercase();
        if image.is_empty() || is_index || self.stage_names.contains(&lower) {
            return;
        }
        let line = pieces.first().map_or(1, |p| self.line_of(p.src));
        self.out.external.push(ExternalRef { kind, line, image });
    }

    /// `${REGISTRY}/name[:tag][@digest]`, if that is what `pieces` are.
    fn registry_ref(
        &self,
        kind: RefKind,
        pieces: &[Piece],
        written: Option<Range<usize>>,
    ) -> Option<RegistryRef> {
        let [registry, slash, rest @ ..] = pieces else {
            return None;
        };
        let PieceKind::Registry { in_scope } = registry.kind else {
            return None;
        };
        if !slash.is('/') {
            return None;
        }
        let (name_tag, digest) = match rest.iter().position(|p| p.is('@')) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        let last_slash = name_tag
            .iter()
            .rposition(|p| p.is('/'))
            .map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].iter().position(|p| p.is(':')) {
            Some(colon) => (
                &name_tag[..last_slash + colon],
                Some(&name_tag[last_slash + colon + 1..]),
            ),
            None => (name_tag, None),
        };
        if name.is_empty() {
            return None;
        }
        // `name:` / `name@` with nothing after: no image text ends with a tag or digest here.
        let complete = match (digest, tag) {
            (Some(d), _) => !d.is_empty(),
            (None, Some(t)) => !t.is_empty(),
            (None, None) => true,
        };
        let tag = tag.filter(|t| !t.is_empty());
        Some(RegistryRef {
            kind,
            line: self.line_of(registry.src),
            name: render(name),
            tag: tag.map(render),
            digest: digest.filter(|d| !d.is_empty()).map(render),
            tag_span: tag.and_then(|t| self.literal_span(t, registry.word)),
            image_span: written.filter(|w| complete && image_written_as(self.text, w, pieces)),
            registry_in_scope: in_scope,
        })
    }

    /// The file range of `pieces` if they are written literally, contiguously, in `word` (the word
    /// holding `${REGISTRY}`: a tag coming from another ARG is not rewritten through this reference).
    fn literal_span(&self, pieces: &[Piece], word: u32) -> Option<Range<usize>> {
        let (first, last) = (pieces.first()?, pieces.last()?);
        if !pieces
            .iter()
            .all(|p| p.kind == PieceKind::Literal && p.word == word)
        {
            return None;
        }
        let span = first.src..last.src + last.ch.len_utf8();
        (self.text.get(span.clone())? == render(pieces)).then_some(span)
    }

    /// 1-based line of a byte offset.
    fn line_of(&self, offset: usize) -> usize {
        self.lines.partition_point(|l| l.start <= offset).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry refs of `text` as (name, tag, line), checking the span invariants on the way.
    fn refs(text: &str) -> Vec<(String, Option<String>, usize)> {
        let out = scan(text);
        for r in &out.registry_refs {
            if let Some(span) = &r.tag_span {
                assert_eq!(Some(&text[span.clone()]), r.tag.as_deref(), "{r:?}");
            }
            if let Some(span) = &r.image_span {
                let image = &text[span.clone()];
                assert!(
                    image.starts_with('$') && image.contains("REGISTRY"),
                    "{r:?}"
                );
                let end = r.digest.as_ref().or(r.tag.as_ref()).unwrap_or(&r.name);
                assert!(image.ends_with(end.as_str()), "{r:?}");
            }
        }
        out.registry_refs
            .iter()
            .map(|r| (r.name.clone(), r.tag.clone(), r.line))
            .collect()
    }

    fn r(name: &str, tag: &str, line: usize) -> (String, Option<String>, usize) {
        (name.to_string(), Some(tag.to_string()), line)
    }

    fn externals(text: &str) -> Vec<(RefKind, String, usize)> {
        scan(text)
            .external
            .into_iter()
            .map(|e| (e.kind, e.image, e.line))
            .collect()
    }

    fn only(text: &str) -> RegistryRef {
        let out = scan(text);
        assert_eq!(out.registry_refs.len(), 1, "{out:?}");
        out.registry_refs.into_iter().next().unwrap()
    }

    #[test]
    fn simple_from_with_span() {
        let text = "ARG REGISTRY\nFROM ${REGISTRY}/base-dev:1.2.3\nRUN true\n";
        let r = only(text);
        assert_eq!(r.kind, RefKind::From);
        assert_eq!(
            (r.name.as_str(), r.tag.as_deref(), r.line),
            ("base-dev", Some("1.2.3"), 2)
        );
        assert_eq!(&text[r.tag_span.clone().unwrap()], "1.2.3");
        assert!(r.registry_in_scope);
        assert_eq!(r.digest, None);
        assert_eq!(scan(text).stages, 1);
    }

    #[test]
    fn registry_spellings() {
        let text = "ARG REGISTRY\n\
                    FROM $REGISTRY/a:1\n\
                    FROM ${REGISTRY:-localhost:5000}/b:2\n\
                    FROM ${REGISTRY-x}/team/c:3\n\
                    FROM ${REGISTRY}/d\n\
                    FROM ${REGISTRY}/e:4@sha256:abcd\n\
                    FROM ${REGISTRY}/f@sha256:ef01\n";
        let out = scan(text);
        let got: Vec<_> = out
            .registry_refs
            .iter()
            .map(|r| {
                (
                    r.name.as_str(),
                    r.tag.as_deref(),
                    r.digest.as_deref(),
                    r.line,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a", Some("1"), None, 2),
                ("b", Some("2"), None, 3),
                ("team/c", Some("3"), None, 4),
                ("d", None, None, 5),
                ("e", Some("4"), Some("sha256:abcd"), 6),
                ("f", None, Some("sha256:ef01"), 7),
            ]
        );
        assert_eq!(
            out.registry_refs[4]
                .tag_span
                .as_ref()
                .map(|s| &text[s.clone()]),
            Some("4")
        );
        assert_eq!(out.registry_refs[3].tag_span, None);
        assert_eq!(out.stages, 6);
    }

    #[test]
    fn not_registry_references() {
        // Another variable, a suffix, `+` forms, REGISTRY not at the start, no name.
        let text = "FROM $REGISTRY_X/a:1\nFROM ${REGISTRY}x/a:1\nFROM ${REGISTRY:+r}/a:1\n\
                    FROM docker.io/${REGISTRY}/a:1\nFROM ${REGISTRY}/\nFROM ${REGISTRY}/:1\n";
        assert_eq!(refs(text), []);
        assert_eq!(scan(text).external.len(), 6);
    }

    #[test]
    fn parser_directives_and_backtick_escape() {
        let text = "# syntax=docker/dockerfile:1\n# ESCAPE = `\nARG REGISTRY\nFROM `\n  ${REGISTRY}/win:1.0\n\
                    COPY C:\\src\\ C:\\dst\\\nFROM ${REGISTRY}/other:2\n";
        assert_eq!(refs(text), [r("win", "1.0", 5), r("other", "2", 7)]);
    }

    #[test]
    fn directive_after_comment_is_a_comment() {
        // The backslash stays the escape: the backtick does not continue, the backslash does.
        let text =
            "# a comment\n# escape=`\nFROM ${REGISTRY}/a:1 `\nFROM ${REGISTRY}/b:2 \\\n  AS b\n";
        assert_eq!(refs(text), [r("a", "1", 3), r("b", "2", 4)]);
        let text = "\n# escape=`\nFROM \\\n ${REGISTRY}/a:1\n";
        assert_eq!(refs(text), [r("a", "1", 4)]);
        // An unknown directive ends the directives.
        let text = "# foo=bar\n# escape=`\nFROM \\\n ${REGISTRY}/a:1\n";
        assert_eq!(refs(text), [r("a", "1", 4)]);
    }

    #[test]
    fn comments_blank_lines_and_case() {
        let text = "# FROM ${REGISTRY}/commented:1\n\n   # FROM ${REGISTRY}/indented:1\n\
                    from ${REGISTRY}/lower:1 as Build\n\tFrOm ${REGISTRY}/mixed:2\n";
        assert_eq!(refs(text), [r("lower", "1", 4), r("mixed", "2", 5)]);
    }

    #[test]
    fn continuations_with_comments_and_trailing_whitespace() {
        let text = "FROM --platform=$BUILDPLATFORM \\  \n# FROM ${REGISTRY}/no:1\n\n    ${REGISTRY}/yes:1.0.0 \\\t\n  AS x\n\
                    RUN echo \\\n# comment\n  FROM ${REGISTRY}/no:2\n";
        let out = scan(text);
        assert_eq!(refs(text), [r("yes", "1.0.0", 4)]);
        assert_eq!(out.stages, 1);
    }

    #[test]
    fn tag_split_by_continuation_has_no_span() {
        let text = "FROM ${REGISTRY}/a:1.\\\n2.3\n";
        let r = only(text);
        assert_eq!(r.tag.as_deref(), Some("1.2.3"));
        assert_eq!(r.tag_span, None);
    }

    #[test]
    fn heredocs_are_not_instructions() {
        let text = "FROM ${REGISTRY}/a:1\n\
                    RUN <<EOF\nFROM ${REGISTRY}/no:1\nEOF\n\
                    RUN <<-END cat\n\tFROM ${REGISTRY}/no:2\n\t\tEND\n\
                    COPY <<\"X\" <<'Y' /dst/\nFROM ${REGISTRY}/no:3\nX\nCOPY --from=${REGISTRY}/no:4 / /\nY\n\
                    RUN 3<<EOF;cat <<E2\nFROM ${REGISTRY}/no:5\nEOF\nFROM ${REGISTRY}/no:6\nE2\n\
                    FROM ${REGISTRY}/b:2\n";
        let out = scan(text);
        assert_eq!(refs(text), [r("a", "1", 1), r("b", "2", 18)]);
        assert_eq!(out.stages, 2);
    }

    #[test]
    fn not_heredocs() {
        // A here-string, a quoted `<<`, the exec form, `<<` in a non-heredoc instruction.
        let text =
            "FROM ${REGISTRY}/a:1\nRUN cat <<<EOF\nFROM ${REGISTRY}/b:1\nRUN echo \"<<EOF\"\n\
                    FROM ${REGISTRY}/c:1\nRUN [\"sh\", \"<<EOF\"]\nFROM ${REGISTRY}/d:1\n\
                    ENV X=<<EOF\nFROM ${REGISTRY}/e:1\n";
        let names: Vec<_> = refs(text).into_iter().map(|r| r.0).collect();
        assert_eq!(names, ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn heredoc_delimiter_must_match_exactly() {
        // `<<EOF` (no dash) does not strip tabs; an unterminated heredoc swallows the rest.
        let text = "RUN <<EOF\n\tEOF\nFROM ${REGISTRY}/no:1\nEOF \nFROM ${REGISTRY}/no:2\n";
        assert_eq!(refs(text), []);
        let text = "RUN <<EOF\r\nFROM ${REGISTRY}/no:1\r\nEOF\r\nFROM ${REGISTRY}/yes:1\r\n";
        assert_eq!(refs(text), [r("yes", "1", 4)]);
    }

    #[test]
    fn heredoc_after_continued_instruction() {
        let text = "RUN --mount=type=cache,target=/c \\\n    <<EOF\nFROM ${REGISTRY}/no:1\nEOF\nFROM ${REGISTRY}/a:1\n";
        assert_eq!(refs(text), [r("a", "1", 5)]);
    }

    #[test]
    fn global_arg_defaults_expand_in_from() {
        let text =
            "ARG REGISTRY\nARG BASE=${REGISTRY}/base:1.2.3 OTHER=\"debian:bookworm\" EMPTY\n\
                    FROM ${BASE} AS b\nFROM $OTHER\nFROM ${EMPTY}\n";
        let out = scan(text);
        let r = &out.registry_refs[..];
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].name.as_str(), r[0].tag.as_deref(), r[0].line),
            ("base", Some("1.2.3"), 2)
        );
        assert_eq!(&text[r[0].tag_span.clone().unwrap()], "1.2.3");
        assert!(r[0].registry_in_scope);
        assert_eq!(
            externals(text),
            [
                (RefKind::From, "debian:bookworm".into(), 2),
                (RefKind::From, "${EMPTY}".into(), 5)
            ]
        );
    }

    #[test]
    fn arg_chains_and_defaults() {
        let text = "ARG REGISTRY=localhost:5000\nARG NAME=tools\nARG V=2.0\n\
                    ARG IMG=\"${REGISTRY}/${NAME}:${V}\"\nFROM $IMG\nFROM ${REGISTRY}/x:${V}\n\
                    FROM ${REGISTRY}/y:${UNSET:-9.9}\nFROM ${MISSING:-${REGISTRY}/z:1}\n";
        let out = scan(text);
        let got: Vec<_> = out
            .registry_refs
            .iter()
            .map(|r| {
                (
                    r.name.as_str(),
                    r.tag.as_deref(),
                    r.line,
                    r.tag_span.clone().map(|s| &text[s]),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("tools", Some("2.0"), 4, None), // tag from another ARG: not rewritable here
                ("x", Some("2.0"), 6, None),     // likewise
                ("y", Some("9.9"), 7, Some("9.9")),
                ("z", Some("1"), 8, Some("1")),
            ]
        );
    }

    #[test]
    fn unknown_tag_variable() {
        let r = only("ARG V\nFROM ${REGISTRY}/a:${V}\n");
        assert_eq!((r.tag.as_deref(), r.tag_span), (Some("${V}"), None));
    }

    #[test]
    fn registry_scope_in_from() {
        assert!(!only("FROM ${REGISTRY}/a:1\n").registry_in_scope);
        assert!(only("ARG REGISTRY=r.example\nFROM ${REGISTRY}/a:1\n").registry_in_scope);
        // Declared after the ARG that uses it: empty when that default was evaluated.
        assert!(!only("ARG B=${REGISTRY}/a:1\nARG REGISTRY\nFROM $B\n").registry_in_scope);
        // A stage-level ARG REGISTRY does not reach the next FROM.
        let out = scan("FROM scratch\nARG REGISTRY\nFROM ${REGISTRY}/a:1\n");
        assert!(!out.registry_refs[0].registry_in_scope);
    }

    #[test]
    fn from_flags_stage_names_and_scratch() {
        let text =
            "ARG REGISTRY\nFROM --platform=$BUILDPLATFORM ${REGISTRY}/a:1 AS Build\nFROM build\n\
                    FROM BUILD AS again\nFROM scratch\nFROM later\nFROM golang:1.22 AS later\n";
        let out = scan(text);
        assert_eq!(refs(text), [r("a", "1", 2)]);
        assert_eq!(out.stages, 6);
        assert_eq!(
            externals(text),
            [
                (RefKind::From, "scratch".into(), 5),
                (RefKind::From, "later".into(), 6),
                (RefKind::From, "golang:1.22".into(), 7)
            ]
        );
    }

    #[test]
    fn copy_from_stage_index_and_image() {
        let text = "FROM debian:bookworm AS build\nFROM scratch\nARG REGISTRY\n\
                    COPY --from=build /a /a\nCOPY --from=0 /a /a\nCOPY --from=BUILD /a /a\n\
                    COPY --chown=1:1 --link --from=${REGISTRY}/tools:1.0 /bin/x /bin/x\n\
                    ADD --from=$REGISTRY/lib/c:2 /c /c\nCOPY --from=alpine:3 /x /x\n\
                    COPY /src --from=${REGISTRY}/not-a-flag:1 /dst\n";
        let out = scan(text);
        assert_eq!(refs(text), [r("tools", "1.0", 7), r("lib/c", "2", 8)]);
        assert!(out
            .registry_refs
            .iter()
            .all(|r| r.kind == RefKind::CopyFrom && r.registry_in_scope));
        assert_eq!(
            externals(text),
            [
                (RefKind::From, "debian:bookworm".into(), 1),
                (RefKind::From, "scratch".into(), 2),
                (RefKind::CopyFrom, "alpine:3".into(), 9)
            ]
        );
    }

    #[test]
    fn run_mount_from() {
        let text = "FROM scratch AS s\nARG REGISTRY\n\
                    RUN --mount=type=bind,from=${REGISTRY}/a:1,source=/x,target=/y \\\n\
                        --mount=target=/c,type=cache,FROM=\"${REGISTRY}/b:2\" \\\n\
                        --mount=type=bind,\"from=${REGISTRY}/c:3\",source=/s make\n\
                    RUN --mount=type=bind,from=s,target=/t --mount=type=secret,id=x true\n\
                    RUN --network=none --mount=from=debian:12,target=/d true\n\
                    RUN echo --mount=from=${REGISTRY}/no:1\n";
        let out = scan(text);
        assert_eq!(refs(text), [r("a", "1", 3), r("b", "2", 4), r("c", "3", 5)]);
        assert!(out
            .registry_refs
            .iter()
            .all(|r| r.kind == RefKind::MountFrom && r.registry_in_scope));
        assert_eq!(
            externals(text)[1..],
            [(RefKind::MountFrom, "debian:12".into(), 7)]
        );
    }

    #[test]
    fn registry_out_of_scope_in_stage() {
        let text = "ARG REGISTRY\nFROM ${REGISTRY}/a:1\nCOPY --from=${REGISTRY}/b:1 / /\n\
                    ARG REGISTRY\nCOPY --from=${REGISTRY}/c:1 / /\n\
                    FROM scratch\nRUN --mount=from=${REGISTRY}/d:1,target=/d true\n";
        let out = scan(text);
        let scope: Vec<_> = out
            .registry_refs
            .iter()
            .map(|r| (r.name.as_str(), r.registry_in_scope))
            .collect();
        assert_eq!(
            scope,
            [("a", true), ("b", false), ("c", true), ("d", false)]
        );
    }

    #[test]
    fn stage_args_for_copy_from() {
        let text = "ARG REGISTRY\nARG TOOLS=${REGISTRY}/tools:3.1\nFROM scratch\n\
                    COPY --from=${TOOLS} /a /a\nARG TOOLS\nCOPY --from=${TOOLS} /b /b\n\
                    ARG LOCAL=${REGISTRY}/local:4\nCOPY --from=$LOCAL /c /c\n";
        let out = scan(text);
        let got: Vec<_> = out
            .registry_refs
            .iter()
            .map(|r| {
                (
                    r.name.as_str(),
                    r.line,
                    r.registry_in_scope,
                    r.tag_span.clone().map(|s| &text[s]),
                )
            })
            .collect();
        // The global default was expanded where REGISTRY was declared; LOCAL's REGISTRY was not.
        assert_eq!(
            got,
            [
                ("tools", 2, true, Some("3.1")),
                ("local", 7, false, Some("4"))
            ]
        );
        assert_eq!(
            externals(text)[1..],
            [(RefKind::CopyFrom, "${TOOLS}".into(), 4)]
        );
    }

    #[test]
    fn crlf_line_endings() {
        let text = "# escape=\\\r\nARG REGISTRY\r\n\r\nFROM ${REGISTRY}/a:1.0 \\\r\n  AS a\r\n\
                    COPY --from=${REGISTRY}/b:2.0 \\\r\n  /x /y\r\nFROM \\\r\n${REGISTRY}/c:3.0\r\n";
        assert_eq!(
            refs(text),
            [r("a", "1.0", 4), r("b", "2.0", 6), r("c", "3.0", 9)]
        );
    }

    #[test]
    fn quotes_and_escapes_in_image_strings() {
        let text = "ARG REGISTRY\nFROM \"${REGISTRY}/a:1\"\nFROM '${REGISTRY}/b:2'\nFROM ${REGISTRY}/c:\\3\n";
        let out = scan(text);
        assert_eq!(refs(text), [r("a", "1", 2), r("c", "3", 4)]);
        // Quotes are removed; an escaped character is still the tag's text.
        let spans: Vec<_> = out
            .registry_refs
            .iter()
            .map(|r| r.tag_span.clone().map(|s| &text[s]))
            .collect();
        assert_eq!(spans, [Some("1"), Some("3")]);
        // Single quotes prevent expansion.
        assert_eq!(
            externals(text),
            [(RefKind::From, "${REGISTRY}/b:2".into(), 3)]
        );
    }

    #[test]
    fn byte_order_mark_and_non_ascii() {
        let text = "\u{feff}# escape=`\nFROM `\n ${REGISTRY}/é/ü:1.0-ß\n";
        let r = only(text);
        assert_eq!(
            (r.name.as_str(), r.tag.as_deref(), r.line),
            ("é/ü", Some("1.0-ß"), 3)
        );
        assert_eq!(&text[r.tag_span.unwrap()], "1.0-ß");
    }

    /// The image spans of `text`'s registry refs, as text.
    fn image_spans(text: &str) -> Vec<Option<&str>> {
        refs(text);
        scan(text)
            .registry_refs
            .into_iter()
            .map(|r| r.image_span.map(|s| &text[s]))
            .collect()
    }

    #[test]
    fn image_spans_of_written_images() {
        let text = "ARG REGISTRY\nFROM ${REGISTRY}/a:1 AS a\nFROM scratch\nARG REGISTRY\n\
                    COPY --from=${REGISTRY}/tools:1.0.0 /x /x\n\
                    COPY --link --from=\"$REGISTRY/q:2@sha256:ab\" / /\n\
                    RUN --mount=type=bind,\"from=${REGISTRY}/x:1\",target=/x true\n\
                    RUN --mount=type=bind,from=\"${REGISTRY:-r:5}/y:2\",target=/y \\\n\
                    \x20   --mount=FROM=${REGISTRY}/team/é:1.0-ß,target=/z true\n\
                    COPY --from=${REGISTRY}/d / /\nADD --from=${REGISTRY}/e@sha256:ef / /\n";
        assert_eq!(
            image_spans(text),
            [
                Some("${REGISTRY}/a:1"),
                Some("${REGISTRY}/tools:1.0.0"),
                Some("$REGISTRY/q:2@sha256:ab"),
                Some("${REGISTRY}/x:1"),
                Some("${REGISTRY:-r:5}/y:2"),
                Some("${REGISTRY}/team/é:1.0-ß"),
                Some("${REGISTRY}/d"),
                Some("${REGISTRY}/e@sha256:ef"),
            ]
        );
        // Continuations around the word, CRLF and a backtick escape do not matter.
        let text = "# escape=`\r\nARG REGISTRY\r\nFROM `\r\n  ${REGISTRY}/a:1.0 `\r\n  AS a\r\n\
                    ARG REGISTRY\r\nCOPY --chown=1:1 `\r\n  --from=${REGISTRY}/b:2.0 `\r\n /x /y\r\n";
        assert_eq!(
            image_spans(text),
            [Some("${REGISTRY}/a:1.0"), Some("${REGISTRY}/b:2.0")]
        );
        // An unknown build argument is written text too.
        let text = "FROM scratch\nARG REGISTRY\nARG V\nCOPY --from=${REGISTRY}/u:${V} / /\n";
        assert_eq!(image_spans(text), [Some("${REGISTRY}/u:${V}")]);
    }

    #[test]
    fn image_spans_absent_when_not_written_in_one_piece() {
        let text = "ARG REGISTRY\nARG T=${REGISTRY}/t:1\nARG P=${REGISTRY}\nFROM $T\nFROM $P/p:1\n\
                    FROM scratch\nARG REGISTRY\nARG V=2\nARG EMPTY=\nARG T\n\
                    COPY --from=$T / /\n\
                    COPY --from=${REGISTRY}/v:${V} / /\n\
                    COPY --from=${REGISTRY}/c:\\3 / /\n\
                    COPY --from=${REGISTRY}/s:1.\\\n2 / /\n\
                    COPY --from=\"${REGISTRY}\"/q:1 / /\n\
                    COPY --from=${REGISTRY}/q:\"1\" / /\n\
                    COPY --from=${X:-${REGISTRY}/n:1} / /\n\
                    COPY --from=${REGISTRY}/n:${X:-1} / /\n\
                    COPY --from=${REGISTRY}${EMPTY}/e:1 / /\n\
                    COPY --from=${REGISTRY}\"\"/e:1 / /\n\
                    COPY --from=${REGISTRY}/\\\nsplit:1 / /\n\
                    COPY --from=${REGISTRY}/x: / /\nCOPY --from=${REGISTRY}/y:1@ / /\n";
        let out = scan(text);
        let got: Vec<_> = out
            .registry_refs
            .iter()
            .map(|r| (r.name.as_str(), r.image_span.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("t", None),
                ("p", None),
                ("t", None),
                ("v", None),
                ("c", None),
                ("s", None),
                ("q", None),
                ("q", None),
                ("n", None),
                ("n", None),
                ("e", None),
                ("e", None),
                ("split", None),
                ("x", None),
                ("y", None),
            ]
        );
        refs(text);
    }

    #[test]
    fn first_from_and_stage_indexes() {
        let text = "# syntax=docker/dockerfile:1\nARG REGISTRY\n# comment\n  from scratch AS s\n\
                    COPY --from=0 / /\nCOPY --from=\"1\" / /\nRUN --mount=type=bind,from=2,target=/t true\n\
                    COPY --from=s / /\nCOPY --from=$I / /\nCOPY --from=1\\\n0 / /\nFROM scratch\n\
                    RUN <<EOF\nCOPY --from=3 / /\nEOF\n";
        let out = scan(text);
        assert_eq!(out.first_from, Some(text.find("  from").unwrap()));
        let indexes: Vec<_> = out.stage_indexes.iter().map(|s| &text[s.clone()]).collect();
        assert_eq!(indexes, ["0", "1", "2"]);
        assert_eq!(scan("ARG A\nRUN true\n").first_from, None);
        assert_eq!(scan("\u{feff}FROM scratch\n").first_from, Some(3));
        assert_eq!(scan("FROM \\\n scratch\nFROM a\n").first_from, Some(0));
    }

    #[test]
    fn never_panics_on_odd_input() {
        let inputs = [
            "",
            "\n",
            "\r",
            "\r\n",
            "\\",
            "`",
            "$",
            "${",
            "${}",
            "${REGISTRY",
            "FROM $",
            "FROM ${",
            "FROM ${R",
            "FROM ${REGISTRY",
            "FROM ${REGISTRY}",
            "FROM ${REGISTRY}/",
            "FROM ${REGISTRY}/:",
            "FROM ${REGISTRY}/a:",
            "FROM ${REGISTRY}/a@",
            "FROM \"",
            "FROM '",
            "ARG A=\"",
            "ARG =x",
            "ARG A='x",
            "FROM ${A:-",
            "FROM ${A:-${B",
            "FROM ${:-x}",
            "FROM ${1}",
            "RUN <<",
            "RUN <<-",
            "RUN <<''",
            "RUN <<EOF",
            "COPY --from=",
            "COPY --from",
            "RUN --mount=",
            "RUN --mount=from=",
            "RUN --mount=\"",
            "RUN --mount=,,",
            "FROM \u{fffd}\u{fffd}",
            "FROM ${REGISTRY}/\u{fffd}:\u{fffd}",
            "# escape=",
            "#",
            "FROM a AS",
            "FROM \\\n",
            "FROM `\n",
            "\u{feff}",
            "\u{feff}FROM ${REGISTRY}/a:1",
            "FROM ${A\u{fffd}}",
        ];
        for text in inputs {
            let _ = refs(text);
        }
        // Exponential ARG chains and deep nesting stay bounded.
        let mut text = String::from("ARG A0=x\n");
        for i in 1..64 {
            text.push_str(&format!("ARG A{i}=${{A{p}}}${{A{p}}}\n", p = i - 1));
        }
        text.push_str("FROM ${A63}\n");
        let out = scan(&text);
        assert!(out.external[0].image.len() <= MAX_WORD);
        let deep = format!("FROM {}x{}\n", "${A:-".repeat(10_000), "}".repeat(10_000));
        let _ = scan(&deep);
        let long = format!("FROM ${{REGISTRY}}/a:{}\n", "1".repeat(1_000_000));
        let _ = scan(&long);
        let dollars = format!("FROM {}\n", "${".repeat(100_000));
        let _ = scan(&dollars);
    }

    #[test]
    fn features_heredoc_lines_and_syntax() {
        let text = "# syntax=docker/dockerfile:1.4.1\n# escape=\\\nFROM scratch\nRUN <<-EOF\n\techo hi\n\tEOF\n\
                    COPY --chmod=755 <<X /x\nRUN <<EOF\nX\nRUN true\nRUN \\\n  <<Y cat\nY\n";
        let f = scan(text).features;
        assert_eq!(f.heredoc_lines, [4, 7, 11]);
        assert_eq!(
            f.syntax,
            Some(SyntaxDirective {
                image: "docker/dockerfile:1.4.1".into(),
                line: 1
            })
        );
        // Not a directive after a comment or an instruction; no heredoc in exec form or here-strings.
        let f =
            scan("# hi\n# syntax=docker/dockerfile:1\nFROM a\nRUN [\"<<EOF\"]\nRUN cat <<<EOF\n")
                .features;
        assert_eq!(f, Features::default());
        let f = scan("\u{feff}#syntax = x/y:1 \nFROM a\n").features;
        assert_eq!(
            f.syntax.map(|s| (s.image, s.line)),
            Some(("x/y:1".into(), 1))
        );
    }

    #[test]
    fn unknown_instructions_and_their_lines() {
        let unknown = |text: &str| -> Vec<(usize, String)> {
            scan(text)
                .unknown_instructions
                .into_iter()
                .map(|u| (u.line, u.word))
                .collect()
        };
        // Valid: every instruction in any case, directives, comments, continuation lines and heredoc
        // bodies (whose lines are not instructions).
        let valid = "# syntax=docker/dockerfile:1\n# escape=\\\nfrom scratch AS b\n\
                     # RUNN this is a comment\n  onbuild RUN true\nRUN echo a \\\n  && echo b \\\n\
                     # comment inside\n  ECHO c\nRUN <<EOF\necho heredoc\napt-get install\nEOF\n\
                     COPY <<-A <<B /dst\n\tnot an instruction\n\tA\nnor this\nB\n\
                     Add a b\nArg X\nCmd x\nCopy a b\nEntrypoint x\nEnv A=1\nExpose 1\n\
                     Healthcheck NONE\nLabel a=b\nMaintainer me\nShell [\"sh\"]\nStopsignal 9\n\
                     User me\nVolume /v\nWorkdir /w\n";
        assert_eq!(unknown(valid), []);
        assert_eq!(
            unknown(
                "FROM scratch\nRUNN apt-get x\n\n  COPPY a \\\n b\nRUN <<EOF\nx\nEOF\nECHO hi\n"
            ),
            [
                (2, "RUNN".to_string()),
                (4, "COPPY".to_string()),
                (9, "ECHO".to_string())
            ]
        );
        // An unterminated heredoc swallows the rest, as builders do.
        assert_eq!(unknown("FROM a\nRUN <<EOF\nECHO x\n"), []);
    }

    #[test]
    fn unclosed_braces_in_image_strings() {
        let text = "ARG REGISTRY\nFROM ${REGISTRY/base:1.0.0\nFROM scratch\nARG REGISTRY\n\
                    COPY --from=${REGISTRY/tools:1 / /\n\
                    RUN --mount=type=bind,from=${REGISTRY/x:1,target=/x true\n\
                    FROM ${REGISTRY}/ok:1\n";
        let out = scan(text);
        let got: Vec<_> = out.unclosed.iter().map(|u| (u.kind, u.line)).collect();
        assert_eq!(
            got,
            [
                (RefKind::From, 2),
                (RefKind::CopyFrom, 5),
                (RefKind::MountFrom, 6)
            ]
        );
        assert_eq!(refs(text), [r("ok", "1", 7)]);
    }
}
