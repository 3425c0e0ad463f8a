//! Dockerfiles for BuildKit, docker's builder, which does not expand variables in `COPY --from=`,
//! `ADD --from=` and `RUN --mount=...,from=` (all its versions: "failed to parse stage name
//! \"${REGISTRY}/tools:1.0.0\"", newer ones "variable expansion is not supported for --from").
//! buildah and podman expand them, and cip's users write `COPY --from=${REGISTRY}/tools:1.0.0`.
//!
//! [`translate`] rewrites such a Dockerfile the standard way: each distinct image is declared once as a
//! named stage, `FROM <registry>/tools:1.0.0 AS cip-from-1`, inserted just before the first FROM (after
//! the parser directives and the global ARGs), and the `--from=` / `from=` values become that stage's
//! name. The last stage stays the build target. Inserting stages shifts stage indexes, so numeric
//! `--from=N` / `from=N` values are renumbered; every other byte is kept (line endings,
//! continuations, heredocs, comments).
//!
//! Only references whose image text is written in one piece are rewritten (see
//! [`RegistryRef::image_span`]), and only where `ARG REGISTRY` is in scope: buildah expands
//! `${REGISTRY}` to an empty string elsewhere (`cip check` warns about it), and the docker backend
//! should fail there as well rather than build what buildah would not.
use std::ops::Range;

use crate::project::dockerfile::{scan, RefKind, RegistryRef};

/// Name prefix of the stages [`translate`] declares.
pub const STAGE_PREFIX: &str = "cip-from-";

/// A Dockerfile rewritten for BuildKit, with the stages it declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    pub dockerfile: String,
    /// (stage name, image) of each declared stage, in order.
    pub stages: Vec<(String, String)>,
}

/// The Dockerfile `text` for BuildKit, with `${REGISTRY}` being `registry`; None when it has no
/// `COPY --from` / `ADD --from` / `RUN --mount=from=` reference to rewrite.
pub fn translate(text: &str, registry: &str) -> Option<String> {
    translation(text, registry).map(|t| t.dockerfile)
}

/// [`translate`], also telling which stages were declared.
pub fn translation(text: &str, registry: &str) -> Option<Translation> {
    let refs = scan(text);
    let insert_at = refs.first_from?;
    let targets: Vec<(&Range<usize>, String)> = refs
        .registry_refs
        .iter()
        .filter(|r| matches!(r.kind, RefKind::CopyFrom | RefKind::MountFrom) && r.registry_in_scope)
        .filter_map(|r| Some((r.image_span.as_ref()?, image(registry, r))))
        .collect();
    if targets.is_empty() {
        return None;
    }

    // Stage names that cannot be one of the file's own (stage names are case-insensitive).
    let lower = text.to_lowercase();
    let mut names = (1u64..)
        .map(|n| format!("{STAGE_PREFIX}{n}"))
        .filter(|name| !lower.contains(name.as_str()));
    let mut stages: Vec<(String, String)> = Vec::new();
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    for (span, image) in targets {
        let name = match stages.iter().find(|(_, i)| *i == image) {
            Some((name, _)) => name.clone(),
            None => {
                let name = names.next()?;
                stages.push((name.clone(), image));
                name
            }
        };
        edits.push((span.clone(), name));
    }
    let added = stages.len() as u64;
    for span in &refs.stage_indexes {
        // An index too large to be a stage is left alone: BuildKit rejects it either way.
        if let Some(n) = text[span.clone()]
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_add(added))
        {
            edits.push((span.clone(), n.to_string()));
        }
    }
    let eol = line_ending(text, insert_at);
    let declarations: String = stages
        .iter()
        .map(|(name, image)| format!("FROM {image} AS {name}{eol}"))
        .collect();
    edits.push((insert_at..insert_at, declarations));
    edits.sort_by_key(|(range, _)| (range.start, range.end));

    let mut out = String::with_capacity(text.len() + 64 * stages.len());
    let mut at = 0;
    for (range, replacement) in edits {
        if range.start < at {
            return None; // overlapping edits: the scanner never reports those
        }
        out.push_str(&text[at..range.start]);
        out.push_str(&replacement);
        at = range.end;
    }
    out.push_str(&text[at..]);
    Some(Translation {
        dockerfile: out,
        stages,
    })
}

/// The image a reference names once `${REGISTRY}` is `registry`.
fn image(registry: &str, r: &RegistryRef) -> String {
    let mut s = format!("{registry}/{}", r.name);
    if let Some(tag) = &r.tag {
        s.push(':');
        s.push_str(tag);
    }
    if let Some(digest) = &r.digest {
        s.push('@');
        s.push_str(digest);
    }
    s
}

/// The line ending of the line starting at `at` (`\n` when it has none).
fn line_ending(text: &str, at: usize) -> &'static str {
    match text[at..].find('\n') {
        Some(i) if text[..at + i].ends_with('\r') => "\r\n",
        _ => "\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REG: &str = "127.0.0.1:5000";

    #[test]
    fn copy_from_becomes_a_named_stage() {
        let text = "ARG REGISTRY\nFROM ${REGISTRY}/hello:1.0.0\n\
                    # An ARG declared before FROM must be declared again to be used inside the stage.\n\
                    ARG REGISTRY\nCOPY --from=${REGISTRY}/tools:1.0.0 /tools.txt /tools.txt\n\
                    RUN cat /hello.txt /tools.txt > /app.txt\n";
        let t = translation(text, REG).unwrap();
        assert_eq!(
            t.dockerfile,
            "ARG REGISTRY\nFROM 127.0.0.1:5000/tools:1.0.0 AS cip-from-1\n\
             FROM ${REGISTRY}/hello:1.0.0\n\
             # An ARG declared before FROM must be declared again to be used inside the stage.\n\
             ARG REGISTRY\nCOPY --from=cip-from-1 /tools.txt /tools.txt\n\
             RUN cat /hello.txt /tools.txt > /app.txt\n"
        );
        assert_eq!(
            t.stages,
            [("cip-from-1".to_string(), format!("{REG}/tools:1.0.0"))]
        );
        assert_eq!(translate(text, REG), Some(t.dockerfile));
    }

    #[test]
    fn no_op_inputs() {
        for text in [
            "",
            "FROM scratch\nCOPY a /a\n",
            "ARG REGISTRY\nFROM ${REGISTRY}/base:1\nRUN true\n",
            // Stage names, indexes, external images.
            "FROM debian:12 AS b\nFROM scratch\nCOPY --from=b / /\nCOPY --from=0 / /\n\
             COPY --from=alpine:3 / /\nRUN --mount=from=b,target=/b true\n",
            // Not written in one piece: from an ARG, split by a continuation.
            "ARG REGISTRY\nARG T=${REGISTRY}/t:1\nFROM scratch\nARG T\nCOPY --from=$T / /\n",
            "FROM scratch\nARG REGISTRY\nCOPY --from=${REGISTRY}/t:1.\\\n0 / /\n",
            // REGISTRY not declared in the stage: buildah sees an empty string there.
            "ARG REGISTRY\nFROM scratch\nCOPY --from=${REGISTRY}/t:1 / /\n",
            // No FROM at all.
            "COPY --from=${REGISTRY}/t:1 / /\n",
        ] {
            assert_eq!(translate(text, REG), None, "{text}");
        }
    }

    #[test]
    fn heredoc_decoys_are_kept() {
        let text = "ARG REGISTRY\nFROM scratch\nARG REGISTRY\n\
                    RUN <<EOF\nCOPY --from=${REGISTRY}/decoy:9 / /\nFROM ${REGISTRY}/decoy:9\nEOF\n\
                    RUN --mount=from=${REGISTRY}/no:1,target=/n <<-'END'\n\tCOPY --from=${REGISTRY}/decoy:8 / /\n\tEND\n\
                    COPY --from=${REGISTRY}/tools:2 /t /t\n";
        let out = translate(text, REG).unwrap();
        assert_eq!(
            out,
            "ARG REGISTRY\nFROM 127.0.0.1:5000/no:1 AS cip-from-1\n\
             FROM 127.0.0.1:5000/tools:2 AS cip-from-2\nFROM scratch\nARG REGISTRY\n\
             RUN <<EOF\nCOPY --from=${REGISTRY}/decoy:9 / /\nFROM ${REGISTRY}/decoy:9\nEOF\n\
             RUN --mount=from=cip-from-1,target=/n <<-'END'\n\tCOPY --from=${REGISTRY}/decoy:8 / /\n\tEND\n\
             COPY --from=cip-from-2 /t /t\n"
        );
    }

    #[test]
    fn multi_stage_with_shared_images_and_indexes() {
        let text = "# syntax=docker/dockerfile:1\n# escape=\\\n\nARG REGISTRY\nARG OTHER=1\n\
                    FROM ${REGISTRY}/base:1 AS build\nARG REGISTRY\n\
                    COPY --from=${REGISTRY}/tools:1.0.0 /a /a\n\
                    FROM scratch AS second\nARG REGISTRY\n\
                    COPY --from=$REGISTRY/lib/c:2@sha256:ab /c /c\n\
                    COPY --link --from=${REGISTRY}/tools:1.0.0 /b /b\n\
                    COPY --from=0 /x /x\nCOPY --from=\"1\" /y /y\nCOPY --from=build /z /z\n\
                    FROM second\nRUN --mount=type=bind,from=1,target=/t true\n";
        let t = translation(text, REG).unwrap();
        assert_eq!(
            t.dockerfile,
            "# syntax=docker/dockerfile:1\n# escape=\\\n\nARG REGISTRY\nARG OTHER=1\n\
             FROM 127.0.0.1:5000/tools:1.0.0 AS cip-from-1\n\
             FROM 127.0.0.1:5000/lib/c:2@sha256:ab AS cip-from-2\n\
             FROM ${REGISTRY}/base:1 AS build\nARG REGISTRY\n\
             COPY --from=cip-from-1 /a /a\n\
             FROM scratch AS second\nARG REGISTRY\n\
             COPY --from=cip-from-2 /c /c\n\
             COPY --link --from=cip-from-1 /b /b\n\
             COPY --from=2 /x /x\nCOPY --from=\"3\" /y /y\nCOPY --from=build /z /z\n\
             FROM second\nRUN --mount=type=bind,from=3,target=/t true\n"
        );
        assert_eq!(t.stages.len(), 2);
    }

    #[test]
    fn run_mount_from_among_other_keys() {
        let text = "FROM scratch\nARG REGISTRY\n\
                    RUN --network=none \\\n  --mount=type=bind,source=/s,from=${REGISTRY}/a:1,target=/y \\\n\
                    \x20 --mount=target=/c,type=cache --mount=type=bind,\"from=${REGISTRY}/b:2\",target=/b \\\n\
                    \x20 --mount=readonly,FROM=\"${REGISTRY}/a:1\",target=/z make\n";
        let out = translate(text, REG).unwrap();
        assert_eq!(
            out,
            "FROM 127.0.0.1:5000/a:1 AS cip-from-1\nFROM 127.0.0.1:5000/b:2 AS cip-from-2\n\
             FROM scratch\nARG REGISTRY\n\
             RUN --network=none \\\n  --mount=type=bind,source=/s,from=cip-from-1,target=/y \\\n\
             \x20 --mount=target=/c,type=cache --mount=type=bind,\"from=cip-from-2\",target=/b \\\n\
             \x20 --mount=readonly,FROM=\"cip-from-1\",target=/z make\n"
        );
    }

    #[test]
    fn crlf_backtick_escape_and_bom_are_kept() {
        let text = "\u{feff}# escape=`\r\nARG REGISTRY\r\n\r\nFROM `\r\n  ${REGISTRY}/base:1\r\n\
                    ARG REGISTRY\r\nCOPY --chown=1:1 `\r\n  --from=${REGISTRY}/t:1 `\r\n  C:\\a C:\\b\r\n";
        let out = translate(text, REG).unwrap();
        assert_eq!(
            out,
            "\u{feff}# escape=`\r\nARG REGISTRY\r\n\r\nFROM 127.0.0.1:5000/t:1 AS cip-from-1\r\n\
             FROM `\r\n  ${REGISTRY}/base:1\r\n\
             ARG REGISTRY\r\nCOPY --chown=1:1 `\r\n  --from=cip-from-1 `\r\n  C:\\a C:\\b\r\n"
        );
        // A FROM on the first line (after a byte-order mark), no final newline.
        let text = "\u{feff}FROM scratch\nARG REGISTRY\nCOPY --from=${REGISTRY}/t:1 / /";
        assert_eq!(
            translate(text, REG).unwrap(),
            "\u{feff}FROM 127.0.0.1:5000/t:1 AS cip-from-1\nFROM scratch\nARG REGISTRY\n\
             COPY --from=cip-from-1 / /"
        );
    }

    #[test]
    fn stage_names_do_not_collide() {
        let text = "FROM scratch AS CIP-FROM-1\nARG REGISTRY\nCOPY --from=${REGISTRY}/t:1 / /\n";
        assert_eq!(
            translate(text, REG).unwrap(),
            "FROM 127.0.0.1:5000/t:1 AS cip-from-2\nFROM scratch AS CIP-FROM-1\nARG REGISTRY\n\
             COPY --from=cip-from-2 / /\n"
        );
    }

    #[test]
    fn stage_args_in_the_image_are_resolved() {
        // The image text is written in one piece; the tag is an unknown build argument and stays a
        // variable, which the declared stage expands from the global ARGs.
        let text = "ARG REGISTRY\nARG V\nFROM scratch\nARG REGISTRY\nARG V\n\
                    COPY --from=${REGISTRY}/t:${V} / /\n";
        assert_eq!(
            translate(text, REG).unwrap(),
            "ARG REGISTRY\nARG V\nFROM 127.0.0.1:5000/t:${V} AS cip-from-1\nFROM scratch\n\
             ARG REGISTRY\nARG V\nCOPY --from=cip-from-1 / /\n"
        );
    }

    #[test]
    fn translations_scan_like_the_original() {
        // What cip reads of the translated file: the FROM references now include the declared
        // stages, and nothing else moved.
        let text = "ARG REGISTRY\nFROM ${REGISTRY}/hello:1.0.0\nARG REGISTRY\n\
                    COPY --from=${REGISTRY}/tools:1.0.0 / /\n";
        let out = translate(text, REG).unwrap();
        let refs = scan(&out);
        assert_eq!(refs.stages, 2);
        assert!(refs.registry_refs.iter().all(|r| r.kind == RefKind::From));
        assert_eq!(translate(&out, REG), None);
    }
}
