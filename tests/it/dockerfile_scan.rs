//! Property tests of the Dockerfile reference scanner: it never panics, its tag and image spans always
//! point at the tag and the image, and in generated Dockerfiles it finds exactly the references, the
//! heredocs and the unknown instructions that were put in; their BuildKit translation changes exactly
//! those references.
use std::collections::BTreeSet;

use cip::builders::buildkit::translate;
use cip::project::dockerfile::{scan, DockerfileRefs, RefKind};
use proptest::prelude::*;

/// Every tag span is a valid range of `text` holding exactly the tag; every image span one holding
/// the image as written: `${REGISTRY}` first, the tag or digest last. Stage indexes are digits.
fn check_spans(text: &str, refs: &DockerfileRefs) -> Result<(), TestCaseError> {
    for r in &refs.registry_refs {
        prop_assert!(r.line >= 1);
        if let Some(span) = &r.tag_span {
            prop_assert_eq!(text.get(span.clone()), r.tag.as_deref(), "{:?}", r);
        }
        if let Some(span) = &r.image_span {
            let image = text.get(span.clone());
            prop_assert!(image.is_some(), "{:?}", r);
            let image = image.unwrap_or_default();
            prop_assert!(
                image.starts_with('$') && image.contains("REGISTRY"),
                "{:?}: {:?}",
                r,
                image
            );
            if let Some(end) = r.digest.as_ref().or(r.tag.as_ref()) {
                prop_assert!(image.ends_with(end.as_str()), "{:?}: {:?}", r, image);
            }
            if let Some(tag) = r.tag_span.as_ref().filter(|_| r.digest.is_none()) {
                prop_assert_eq!(tag.end, span.end, "{:?}", r);
            }
        }
    }
    for span in &refs.stage_indexes {
        let index = text.get(span.clone()).unwrap_or_default();
        prop_assert!(!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()));
    }
    if let Some(at) = refs.first_from {
        prop_assert!(
            at == 0 || at == 3 || text[..at].ends_with(['\n', '\r']),
            "{}",
            at
        );
    }
    Ok(())
}

/// Pieces of Dockerfile syntax, so that random text often reaches the interesting paths.
fn vocabulary() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("FROM "),
            Just("from "),
            Just("ARG "),
            Just("COPY "),
            Just("RUN "),
            Just("ADD "),
            Just(" AS s"),
            Just("${REGISTRY}"),
            Just("$REGISTRY"),
            Just("${REGISTRY:-r:1}"),
            Just("${B}"),
            Just("B="),
            Just("REGISTRY"),
            Just("/"),
            Just(":"),
            Just("@sha256:"),
            Just("1.2"),
            Just("é"),
            Just("\u{fffd}"),
            Just("\\"),
            Just("`"),
            Just("\n"),
            Just("\r\n"),
            Just("\r"),
            Just(" "),
            Just("\t"),
            Just("#"),
            Just("# escape=`\n"),
            Just("<<EOF"),
            Just("<<-'EOF'"),
            Just("EOF"),
            Just("\tEOF"),
            Just("--from="),
            Just("--mount=type=bind,from="),
            Just(","),
            Just("\""),
            Just("'"),
            Just("$"),
            Just("${"),
            Just("{"),
            Just("}"),
            Just(":-"),
            Just("0"),
        ],
        0..60,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        let refs = scan(&text);
        check_spans(&text, &refs)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let refs = scan(&text);
        check_spans(&text, &refs)?;
    }

    #[test]
    fn dockerfile_like_text_never_panics(text in vocabulary()) {
        let refs = scan(&text);
        check_spans(&text, &refs)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Generated Dockerfiles with known references
// ---------------------------------------------------------------------------------------------

/// A reference the generator put in: (kind, name, tag, 1-based line, image text as written if it is
/// written in one piece).
type Expected = (RefKind, String, String, usize, Option<String>);

/// One piece of a generated Dockerfile.
#[derive(Debug, Clone)]
enum Fragment {
    Blank,
    Comment(String),
    /// A RUN, possibly continued over two lines with a comment line in between.
    Run {
        continued: bool,
    },
    /// A heredoc (style 0..4) whose body holds decoy references.
    Heredoc {
        style: u8,
        body: Vec<String>,
    },
    /// `FROM ${REGISTRY}/name:tag` in one of several forms.
    From {
        form: u8,
        name: String,
        tag: String,
    },
    CopyFrom {
        name: String,
        tag: String,
    },
    Mount {
        name: String,
        tag: String,
    },
    /// `ARG REGISTRY`, which brings REGISTRY into the current stage.
    StageArg,
    /// `COPY --from=N`: a stage index.
    CopyIndex(u8),
    /// A misspelt instruction (`RUNN`), which the scanner reports.
    Unknown(u8),
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,8}(/[a-z][a-z0-9_.-]{0,6})?"
}

fn tag() -> impl Strategy<Value = String> {
    "[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{1,2}(-[a-z0-9]{1,4})?"
}

fn fragment() -> impl Strategy<Value = Fragment> {
    prop_oneof![
        Just(Fragment::Blank),
        "[^\r\n]{0,30}".prop_map(Fragment::Comment),
        any::<bool>().prop_map(|continued| Fragment::Run { continued }),
        (
            0u8..4,
            prop::collection::vec("x[a-zA-Z0-9 ${}/:#=`\\\\-]{0,20}", 0..3)
        )
            .prop_map(|(style, body)| Fragment::Heredoc { style, body }),
        (0u8..4, name(), tag()).prop_map(|(form, name, tag)| Fragment::From { form, name, tag }),
        (name(), tag()).prop_map(|(name, tag)| Fragment::CopyFrom { name, tag }),
        (name(), tag()).prop_map(|(name, tag)| Fragment::Mount { name, tag }),
        Just(Fragment::StageArg),
        (0u8..3).prop_map(Fragment::CopyIndex),
        (0u8..3).prop_map(Fragment::Unknown),
    ]
}

/// Writes Dockerfiles, tracking line numbers and the references put in.
struct Writer {
    lines: Vec<String>,
    expected: Vec<Expected>,
    escape: char,
    /// Lines where heredocs and unknown instructions were written.
    marks: Marks,
}

/// Lines of the heredoc instructions and of the unknown instructions of a generated Dockerfile.
#[derive(Debug, Clone, Default, PartialEq)]
struct Marks {
    heredocs: Vec<usize>,
    unknown: Vec<usize>,
}

impl Writer {
    fn line(&mut self, s: impl Into<String>) {
        self.lines.push(s.into());
    }

    /// Records a reference on the next line to be written, with its image text.
    fn expect(&mut self, kind: RefKind, name: &str, tag: &str, image: Option<String>) {
        self.expected.push((
            kind,
            name.to_string(),
            tag.to_string(),
            self.lines.len() + 1,
            image,
        ));
    }

    fn fragment(&mut self, f: &Fragment) {
        let e = self.escape;
        match f {
            Fragment::Blank => self.line(""),
            Fragment::Comment(text) => self.line(format!("#{text}")),
            Fragment::Run { continued: false } => self.line("RUN echo hello"),
            Fragment::Run { continued: true } => {
                self.line(format!("RUN echo a {e} "));
                self.line("# FROM ${REGISTRY}/decoy:9.9.9");
                self.line("  && echo b");
            }
            Fragment::Heredoc { style, body } => {
                let (open, close) = match style {
                    0 => ("RUN <<EOF", "EOF"),
                    1 => ("RUN <<-EOF cat", "\t\tEOF"),
                    2 => ("COPY <<\"END\" /dst", "END"),
                    _ => ("RUN <<'X' sh", "X"),
                };
                self.marks.heredocs.push(self.lines.len() + 1);
                self.line(open);
                self.line("FROM ${REGISTRY}/decoy:9.9.9");
                self.line("COPY --from=${REGISTRY}/decoy:9.9.9 / /");
                for b in body {
                    self.line(b.clone());
                }
                self.line(close);
            }
            Fragment::From { form, name, tag } => match form {
                0 => {
                    let image = format!("${{REGISTRY}}/{name}:{tag}");
                    self.expect(RefKind::From, name, tag, Some(image.clone()));
                    self.line(format!("FROM {image}"));
                }
                1 => {
                    let image = format!("$REGISTRY/{name}:{tag}");
                    self.expect(RefKind::From, name, tag, Some(image.clone()));
                    self.line(format!("from {image} AS stage"));
                }
                2 => {
                    self.line(format!("FROM --platform=linux/amd64 {e} \t"));
                    self.line("# a comment in the middle");
                    let image = format!("${{REGISTRY}}/{name}:{tag}");
                    self.expect(RefKind::From, name, tag, Some(image.clone()));
                    self.line(format!("    {image} {e}"));
                    self.line("    AS other");
                }
                _ => {
                    let image = format!("${{REGISTRY:-localhost:5000}}/{name}:{tag}@sha256:0123");
                    self.expect(RefKind::From, name, tag, Some(image.clone()));
                    self.line(format!("FROM \"{image}\""));
                }
            },
            Fragment::CopyFrom { name, tag } => {
                self.line(format!("COPY --chown=1:1 {e}"));
                let image = format!("${{REGISTRY}}/{name}:{tag}");
                self.expect(RefKind::CopyFrom, name, tag, Some(image.clone()));
                self.line(format!("  --from={image} /a /b"));
            }
            Fragment::Mount { name, tag } => {
                let image = format!("${{REGISTRY}}/{name}:{tag}");
                self.expect(RefKind::MountFrom, name, tag, Some(image.clone()));
                self.line(format!(
                    "RUN --mount=type=bind,target=/x,\"from={image}\" true"
                ));
            }
            Fragment::StageArg => self.line("ARG REGISTRY"),
            Fragment::CopyIndex(n) => self.line(format!("COPY --from={n} /i /i")),
            Fragment::Unknown(n) => {
                self.marks.unknown.push(self.lines.len() + 1);
                match n {
                    0 => self.line("RUNN apt-get install -y curl"),
                    1 => {
                        self.line(format!("  Echo hello {e}"));
                        self.line("  world");
                    }
                    _ => self.line("COPPY a b"),
                }
            }
        }
    }
}

/// A Dockerfile: a prologue (directives, then an instruction so that no random comment can be read as
/// a directive), an optional global ARG holding a reference, then the fragments.
fn dockerfile() -> impl Strategy<Value = (String, Vec<Expected>, Marks)> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::option::of((name(), tag())),
        prop::collection::vec(fragment(), 0..25),
    )
        .prop_map(|(backtick, crlf, base, fragments)| {
            let escape = if backtick { '`' } else { '\\' };
            let mut w = Writer {
                lines: Vec::new(),
                expected: Vec::new(),
                escape,
                marks: Marks::default(),
            };
            w.line("# syntax=docker/dockerfile:1");
            if backtick {
                w.line("# escape=`");
            }
            w.line("ARG REGISTRY");
            if let Some((name, tag)) = &base {
                // From a global ARG default: not written in the FROM itself.
                w.expect(RefKind::From, name, tag, None);
                w.line(format!("ARG OTHER=1 BASE=\"${{REGISTRY}}/{name}:{tag}\""));
                w.line("FROM ${BASE} AS base");
            }
            for f in &fragments {
                w.fragment(f);
            }
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut text = w.lines.join(eol);
            text.push_str(eol);
            (text, w.expected, w.marks)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_dockerfiles_yield_their_references((text, expected, _) in dockerfile()) {
        let refs = scan(&text);
        check_spans(&text, &refs)?;
        let found: Vec<Expected> = refs
            .registry_refs
            .iter()
            .map(|r| {
                (
                    r.kind,
                    r.name.clone(),
                    r.tag.clone().unwrap_or_default(),
                    r.line,
                    r.image_span.clone().map(|s| text[s].to_string()),
                )
            })
            .collect();
        prop_assert_eq!(&found, &expected, "in:\n{}", text);
        for r in &refs.registry_refs {
            prop_assert!(r.tag_span.is_some(), "{:?}", r);
        }
    }

    #[test]
    fn translations_replace_exactly_the_from_references((text, _, _) in dockerfile()) {
        let registry = "registry.example:5000";
        let refs = scan(&text);
        let is_target = |r: &cip::project::dockerfile::RegistryRef| {
            r.kind != RefKind::From && r.registry_in_scope && r.image_span.is_some()
        };
        let images: BTreeSet<String> = refs
            .registry_refs
            .iter()
            .filter(|r| is_target(r))
            .map(|r| format!("{registry}/{}:{}", r.name, r.tag.clone().unwrap_or_default()))
            .collect();
        let Some(out) = translate(&text, registry) else {
            prop_assert!(images.is_empty(), "no translation of:\n{}", text);
            return Ok(());
        };
        prop_assert!(!images.is_empty());
        let after = scan(&out);
        check_spans(&out, &after)?;
        // One stage per distinct image, declared in the line before the first FROM.
        prop_assert_eq!(after.stages, refs.stages + images.len());
        prop_assert_eq!(out.lines().count(), text.lines().count() + images.len());
        let declared: BTreeSet<String> = after
            .external
            .iter()
            .filter(|e| e.kind == RefKind::From && e.image.starts_with(registry))
            .map(|e| e.image.clone())
            .collect();
        prop_assert_eq!(&declared, &images);
        // Every other reference is still there, heredoc decoys included.
        let key = |r: &cip::project::dockerfile::RegistryRef| {
            (r.kind, r.name.clone(), r.tag.clone(), r.registry_in_scope)
        };
        let kept: Vec<_> = refs.registry_refs.iter().filter(|r| !is_target(r)).map(key).collect();
        let left: Vec<_> = after.registry_refs.iter().map(key).collect();
        prop_assert_eq!(left, kept, "out:\n{}", out);
        prop_assert_eq!(out.matches("decoy:9.9.9").count(), text.matches("decoy:9.9.9").count());
        // Stage indexes moved by the number of stages declared before them.
        let indexes = |t: &str, r: &DockerfileRefs| -> Vec<usize> {
            r.stage_indexes.iter().map(|s| t[s.clone()].parse().unwrap()).collect()
        };
        let shifted: Vec<usize> = indexes(&text, &refs).iter().map(|n| n + images.len()).collect();
        prop_assert_eq!(indexes(&out, &after), shifted);
        prop_assert_eq!(translate(&out, registry), None);
    }

    /// Heredoc bodies, comments, directives and continuation lines are never taken for
    /// instructions; misspelt ones are found on their line; heredocs and the syntax line are seen.
    #[test]
    fn generated_dockerfiles_yield_their_features((text, _, marks) in dockerfile()) {
        let refs = scan(&text);
        let found = Marks {
            heredocs: refs.features.heredoc_lines.clone(),
            unknown: refs.unknown_instructions.iter().map(|u| u.line).collect(),
        };
        prop_assert_eq!(&found, &marks, "in:\n{}", text);
        let syntax = refs.features.syntax.as_ref().map(|s| (s.image.as_str(), s.line));
        prop_assert_eq!(syntax, Some(("docker/dockerfile:1", 1)));
        prop_assert!(refs.unclosed.is_empty(), "{:?}", refs.unclosed);
    }
}
