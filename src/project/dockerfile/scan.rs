//! The scanner: walks the logical instructions of a Dockerfile (skipping comments and heredoc
//! bodies), keeps the global and stage ARG scopes, expands the image strings of FROM, COPY/ADD
//! --from and RUN --mount from=, and records them as registry references (with the spans of their
//! tag and whole image text), external images, stage indexes, features, unknown instructions and
//! unclosed `${`. Hands the finished `DockerfileRefs` to `scan` (in `mod.rs`).
use std::ops::Range;

use super::expand::{image_written_as, render, Expander, Piece, PieceKind, Scope, MAX_TOTAL};
use super::lex::{flag_value, flags, heredocs, mount_fields, split_words};
use super::lines::{
    is_blank_or_comment, parse_directives, split_lines, strip_continuation, Line, Logical,
};
use super::{
    DockerfileRefs, ExternalRef, Features, RefKind, RegistryRef, Unclosed, UnknownInstruction,
    INSTRUCTIONS,
};

/// The state of one scan: the file's lines, the ARG scopes and stages so far, and what was found.
pub(super) struct Scanner<'a> {
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
    pub(super) fn new(text: &'a str) -> Self {
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

    pub(super) fn run(mut self) -> DockerfileRefs {
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
