//! Unit tests of the Dockerfile scanner, through `scan` (and the expansion limit it keeps).
use super::expand::MAX_WORD;
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
    let text =
        "# syntax=docker/dockerfile:1\n# ESCAPE = `\nARG REGISTRY\nFROM `\n  ${REGISTRY}/win:1.0\n\
                COPY C:\\src\\ C:\\dst\\\nFROM ${REGISTRY}/other:2\n";
    assert_eq!(refs(text), [r("win", "1.0", 5), r("other", "2", 7)]);
}

#[test]
fn directive_after_comment_is_a_comment() {
    // The backslash stays the escape: the backtick does not continue, the backslash does.
    let text = "# a comment\n# escape=`\nFROM ${REGISTRY}/a:1 `\nFROM ${REGISTRY}/b:2 \\\n  AS b\n";
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
    let text = "FROM ${REGISTRY}/a:1\nRUN cat <<<EOF\nFROM ${REGISTRY}/b:1\nRUN echo \"<<EOF\"\n\
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
    let text = "ARG REGISTRY\nARG BASE=${REGISTRY}/base:1.2.3 OTHER=\"debian:bookworm\" EMPTY\n\
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
    let text =
        "ARG REGISTRY\nFROM \"${REGISTRY}/a:1\"\nFROM '${REGISTRY}/b:2'\nFROM ${REGISTRY}/c:\\3\n";
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
    let f = scan("# hi\n# syntax=docker/dockerfile:1\nFROM a\nRUN [\"<<EOF\"]\nRUN cat <<<EOF\n")
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
        unknown("FROM scratch\nRUNN apt-get x\n\n  COPPY a \\\n b\nRUN <<EOF\nx\nEOF\nECHO hi\n"),
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
