//! A context's metadata: `info.edn` (`{:version "1.2.3" :platforms #{"linux/amd64"}}`) or, in the older
//! layout, a `VERSION` file with an optional comma-separated `PLATFORMS_OVERRIDE`.
use std::ops::Range;
use std::path::Path;

use clojure_reader::edn::{self, Edn};
use clojure_reader::error::{Code, Error as EdnError};
use semver::Version;

use crate::diagnostics::Problem;
use crate::platform::{self, Platform};

mod version_value;

/// What a context declares about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub version: Version,
    /// None: not declared, the run's default platforms apply.
    pub platforms: Option<Vec<Platform>>,
    /// `:dockerfile "Dockerfile.prod"`: the file to build, relative to the context (None: the
    /// context's `Dockerfile`, or its `Containerfile`).
    pub dockerfile: Option<String>,
    /// `:target "runtime"`: the stage to build (None: the last).
    pub target: Option<String>,
    /// `:tags ["1" "1.2"]`: more tags for each published index, besides VERSION and latest.
    pub tags: Vec<String>,
}

/// Which file layout a context uses; cascade rewrites the same file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InfoFormat {
    Edn,
    VersionFile,
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Parses `info.edn` text. Every problem found is returned, each naming `file` and a line.
/// A UTF-8 byte-order mark at the start is skipped (editors on Windows write one); the file's text
/// is not changed, so offsets into it (see [`version_span`]) stay those of the file.
pub fn parse_edn(text: &str, file: &Path) -> Result<Info, Vec<Problem>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let map = read_single_map(text, file).map_err(|p| vec![p])?;
    let mut problems = Vec::new();
    let version = version_of(&map, text, file)
        .map_err(|p| problems.push(p))
        .ok();
    let platforms = platforms_of(&map, text, file).map_err(|p| problems.extend(p));
    let dockerfile = dockerfile_of(&map, text, file)
        .map_err(|p| problems.push(p))
        .ok();
    let target = target_of(&map, text, file)
        .map_err(|p| problems.push(p))
        .ok();
    let tags = tags_of(&map, text, file).map_err(|p| problems.push(p)).ok();
    match (version, platforms, dockerfile, target, tags) {
        (Some(version), Ok(platforms), Some(dockerfile), Some(target), Some(tags))
            if problems.is_empty() =>
        {
            Ok(Info {
                version,
                platforms,
                dockerfile,
                target,
                tags,
            })
        }
        _ => Err(problems),
    }
}

/// Reads exactly one EDN map; anything but whitespace and comments after it is an error.
fn read_single_map<'a>(text: &'a str, file: &Path) -> Result<Edn<'a>, Problem> {
    let (form, rest) = edn::read(text).map_err(|e| edn_problem(&e, text, file))?;
    // Anything but blanks and comments after the map is a second form, parseable or not.
    let trailing = skip_blank(rest);
    if trailing < rest.len() {
        let at = text.len() - rest.len() + trailing;
        return Err(Problem::error(
            "bad-edn",
            "more than one form: info.edn must hold exactly one map",
        )
        .at(file, Some(line_of(text, at)))
        .hint("remove the text after the closing `}` (or merge it into the map)"));
    }
    match form {
        Edn::Map(_) => Ok(form),
        other => Err(Problem::error(
            "bad-edn",
            format!("info.edn must be a map, found {}", kind_name(&other)),
        )
        .at(file, Some(line_of(text, skip_blank(text))))
        .hint("write it as {:version \"1.0.0\"}")),
    }
}

/// Length of leading whitespace, commas and `;` comments.
fn skip_blank(s: &str) -> usize {
    let mut i = 0;
    let b = s.as_bytes();
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\r' | b'\n' | b',' => i += 1,
            b';' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1
                }
            }
            _ => break,
        }
    }
    i
}

fn edn_problem(e: &EdnError, text: &str, file: &Path) -> Problem {
    // Locate by byte offset, counting lines as editors do (the reader also breaks lines at a lone CR).
    let (line, column) = match e.ptr.map(|p| p.min(text.len())) {
        Some(mut p) => {
            while !text.is_char_boundary(p) {
                p -= 1;
            }
            let start = text[..p].rfind('\n').map_or(0, |i| i + 1);
            let col = text.get(start..p).map_or(1, |s| s.chars().count() + 1);
            (Some(line_of(text, p)), Some(col))
        }
        None => (Some(line_of(text, text.len())), None),
    };
    let (what, hint) = match &e.code {
        Code::UnexpectedEOF => (
            "unexpected end of file",
            "close every `{`, `#{`, `[` and `\"`; a map needs a value for each key, e.g. {:version \"1.0.0\"}",
        ),
        Code::UnmatchedDelimiter(_) => ("unmatched delimiter", "check the brackets"),
        Code::HashMapDuplicateKey => ("duplicate key in map", "keep one of the two entries"),
        Code::SetDuplicateKey => ("duplicate element in set", "list each platform once"),
        Code::InvalidEscape => (
            "invalid escape in string",
            "only \\t \\r \\n \\\\ and \\\" are allowed",
        ),
        _ => (
            "invalid EDN",
            "info.edn is an EDN map such as {:version \"1.0.0\" :platforms #{\"linux/amd64\"}}",
        ),
    };
    Problem::error("bad-edn", format!("{what} ({:?})", e.code))
        .at(file, line)
        .column(column)
        .hint(hint)
}

fn kind_name(e: &Edn) -> &'static str {
    match e {
        Edn::Vector(_) => "a vector",
        Edn::Set(_) => "a set",
        Edn::Map(_) => "a map",
        Edn::List(_) => "a list",
        Edn::Key(_) => "a keyword",
        Edn::Symbol(_) => "a symbol",
        Edn::Str(_) => "a string",
        Edn::Int(_) => "an integer",
        Edn::Nil => "nil",
        Edn::Bool(_) => "a boolean",
        _ => "a non-map value",
    }
}

fn version_of(map: &Edn, text: &str, file: &Path) -> Result<Version, Problem> {
    let line = key_line(text, "version");
    match map.get(&Edn::key("version")) {
        None => Err(
            Problem::error("missing-version", "info.edn has no :version")
                .at(file, Some(1))
                .hint("add a semantic version, e.g. {:version \"1.0.0\"}"),
        ),
        Some(Edn::Str(s)) => parse_version(s).map_err(|msg| {
            Problem::error("bad-version", msg)
                .at(file, line)
                .hint("use MAJOR.MINOR.PATCH, e.g. \"1.4.0\"")
        }),
        Some(other) => Err(Problem::error(
            "bad-version",
            format!(
                ":version must be a string like \"1.2.0\", found {}",
                describe(other)
            ),
        )
        .at(file, line)
        .hint("quote it: {:version \"1.0.0\"}")),
    }
}

/// Longest tag a registry accepts (the distribution spec's `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`).
const MAX_TAG: usize = 128;

/// A semantic version that can also be an image tag: no `+build` metadata, at most 128 characters.
/// Messages quote only a short prefix of a bad value (it may be a whole file of anything).
pub fn parse_version(s: &str) -> Result<Version, String> {
    let quoted = crate::diagnostics::quote(s);
    let v = Version::parse(s.trim()).map_err(|e| format!("version {quoted} is not semver: {e}"))?;
    if !v.build.is_empty() {
        return Err(format!(
            "version {quoted} has build metadata \"+{}\", which cannot be part of an image tag \
             ('+' is not allowed in tags): drop it, or use a pre-release such as -{}",
            v.build, v.build
        ));
    }
    let len = s.trim().len();
    if len > MAX_TAG {
        return Err(format!(
            "version {quoted} is {len} characters long: an image tag holds at most {MAX_TAG}"
        ));
    }
    Ok(v)
}

/// A short description of a value for messages: the number itself for numbers.
fn describe(e: &Edn) -> String {
    match e {
        Edn::Int(i) => format!("the number {i}"),
        Edn::Double(d) => format!("the number {d}"),
        Edn::Rational((n, d)) => format!("the number {n}/{d}"),
        Edn::Symbol(s) => format!("the symbol {}", crate::diagnostics::quote(s)),
        other => kind_name(other).to_string(),
    }
}

/// A platform parser message with the full bad value replaced by a short quote of it.
fn short_platform_message(message: &str, value: &str) -> String {
    message.replace(&format!("{value:?}"), &crate::diagnostics::quote(value))
}

/// `:tags`: a vector (or set) of valid tags, none of them `latest` (cip moves it).
fn tags_of(map: &Edn, text: &str, file: &Path) -> Result<Vec<String>, Problem> {
    let bad = |what: String| {
        Problem::error("bad-tags", what)
            .at(file, key_line(text, "tags"))
            .hint("write :tags [\"1\" \"1.2\"]: letters, digits, '_', '.', '-', at most 128 characters")
    };
    let items: Vec<&Edn> = match map.get(&Edn::key("tags")) {
        None => return Ok(Vec::new()),
        Some(Edn::Vector(v)) | Some(Edn::List(v)) => v.iter().collect(),
        Some(Edn::Set(s)) => s.iter().collect(),
        Some(other) => {
            return Err(bad(format!(
                ":tags must be a vector of strings, found {}",
                kind_name(other)
            )))
        }
    };
    let mut tags = Vec::new();
    for item in items {
        let Edn::Str(tag) = item else {
            return Err(bad(format!(
                ":tags holds {}, not a string",
                kind_name(item)
            )));
        };
        let valid = tag.len() <= 128
            && tag
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid || *tag == "latest" {
            let why = if valid {
                "cip moves latest itself"
            } else {
                "not a valid tag"
            };
            return Err(bad(format!(
                ":tags: {} is {why}",
                crate::diagnostics::quote(tag)
            )));
        }
        tags.push(tag.to_string());
    }
    Ok(tags)
}

/// `:target`: a stage name (letters, digits, `_`, `-`, `.`).
fn target_of(map: &Edn, text: &str, file: &Path) -> Result<Option<String>, Problem> {
    let bad = |what: String| {
        Problem::error("bad-target", what)
            .at(file, key_line(text, "target"))
            .hint("name a stage of the Dockerfile (FROM ... AS NAME), e.g. :target \"runtime\"")
    };
    match map.get(&Edn::key("target")) {
        None => Ok(None),
        Some(Edn::Str(name)) => {
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if ok {
                Ok(Some(name.to_string()))
            } else {
                Err(bad(format!(
                    ":target {} is not a stage name",
                    crate::diagnostics::quote(name)
                )))
            }
        }
        Some(other) => Err(bad(format!(
            ":target must be a string, found {}",
            kind_name(other)
        ))),
    }
}

/// `:dockerfile`: a file name inside the context (a relative path that does not climb out).
fn dockerfile_of(map: &Edn, text: &str, file: &Path) -> Result<Option<String>, Problem> {
    let bad = |what: String| {
        Problem::error("bad-dockerfile-key", what)
            .at(file, key_line(text, "dockerfile"))
            .hint("name a file inside the context, e.g. :dockerfile \"Dockerfile.prod\"")
    };
    match map.get(&Edn::key("dockerfile")) {
        None => Ok(None),
        Some(Edn::Str(name)) => {
            let path = Path::new(name.as_ref() as &str);
            let inside = !name.is_empty()
                && path.is_relative()
                && path
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
            if inside {
                Ok(Some(name.to_string()))
            } else {
                Err(bad(format!(
                    ":dockerfile {} is not a file name inside the context",
                    crate::diagnostics::quote(name)
                )))
            }
        }
        Some(other) => Err(bad(format!(
            ":dockerfile must be a string, found {}",
            kind_name(other)
        ))),
    }
}

fn platforms_of(map: &Edn, text: &str, file: &Path) -> Result<Option<Vec<Platform>>, Vec<Problem>> {
    let items: Vec<&Edn> = match map.get(&Edn::key("platforms")) {
        None => return Ok(None),
        Some(Edn::Set(s)) => s.iter().collect(),
        Some(Edn::Vector(v)) | Some(Edn::List(v)) => v.iter().collect(),
        Some(other) => {
            return Err(vec![Problem::error(
                "bad-platform",
                format!(
                    ":platforms must be a set of strings, found {}",
                    kind_name(other)
                ),
            )
            .at(file, key_line(text, "platforms"))
            .hint("write :platforms #{\"linux/amd64\" \"linux/arm64\"}")])
        }
    };
    let mut problems = Vec::new();
    let mut out: Vec<Platform> = Vec::new();
    for item in items {
        let parsed = match item {
            Edn::Str(s) => s
                .parse::<Platform>()
                .map_err(|m| (short_platform_message(&m, s), string_line(text, s))),
            other => Err((
                format!("platform must be a string, found {}", kind_name(other)),
                key_line(text, "platforms"),
            )),
        };
        match parsed {
            Ok(p) if !out.contains(&p) => out.push(p),
            Ok(_) => {}
            Err((msg, line)) => {
                problems.push(Problem::error("bad-platform", msg).at(file, line).hint(
                    "platforms look like \"linux/amd64\", \"linux/arm64\" or \"linux/arm/v7\"",
                ))
            }
        }
    }
    if problems.is_empty() && out.is_empty() {
        problems.push(
            Problem::error("bad-platform", ":platforms is empty")
                .at(file, key_line(text, "platforms"))
                .hint("list at least one platform, or remove :platforms to use the defaults"),
        );
    }
    out.sort();
    if problems.is_empty() {
        Ok(Some(out))
    } else {
        Err(problems)
    }
}

/// A string literal or keyword in EDN text, outside comments. Enough structure to locate values for
/// messages and for in-place rewrites without disturbing anything else in the file.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    /// Content of a string literal (between the quotes) and its byte range.
    Str(&'a str, Range<usize>),
    Keyword(&'a str),
}

fn tokens(text: &str) -> Vec<Token<'_>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b';' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                let end = i.min(b.len());
                out.push(Token::Str(&text[start..end], start..end));
                i += 1;
            }
            b':' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && !b" \t\r\n,;\"{}[]()#".contains(&b[i]) {
                    i += 1;
                }
                out.push(Token::Keyword(&text[start..i]));
            }
            _ => i += 1,
        }
    }
    out
}

/// Byte range of the string value of the top-level map's live `:version` key (for in-place version
/// bumps): never a nested map's, a `#_` discarded one, or one in a string or comment.
pub fn version_span(text: &str) -> Option<Range<usize>> {
    // A byte-order mark is accepted (see `parse_edn`); offsets stay those of the whole text.
    let bom = if text.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    let span = version_value::version_value(&text[bom..])?;
    Some(span.start + bom..span.end + bom)
}

fn key_line(text: &str, key: &str) -> Option<usize> {
    let needle = format!(":{key}");
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let code = line.split(';').next().unwrap_or("");
        if let Some(pos) = code.find(&needle) {
            return Some(line_of(text, offset + pos));
        }
        offset += line.len();
    }
    None
}

fn string_line(text: &str, value: &str) -> Option<usize> {
    tokens(text).into_iter().find_map(|t| match t {
        Token::Str(s, span) if s == value => Some(line_of(text, span.start)),
        _ => None,
    })
}

/// Parses the older layout: `VERSION` holds the version, `PLATFORMS_OVERRIDE` (optional) a comma list.
pub fn parse_version_file(
    version_text: &str,
    version_file: &Path,
    platforms: Option<(&str, &Path)>,
) -> Result<Info, Vec<Problem>> {
    let mut problems = Vec::new();
    let version = parse_version(version_text)
        .map_err(|m| {
            problems.push(
                Problem::error("bad-version", m)
                    .at(version_file, Some(1))
                    .hint("VERSION holds one semantic version, e.g. 1.4.0"),
            )
        })
        .ok();
    let platforms = match platforms {
        None => None,
        Some((text, path)) => match parse_platform_list(text) {
            Ok(list) => Some(list),
            Err(m) => {
                problems.push(Problem::error("bad-platform", m).at(path, Some(1)).hint(
                    "PLATFORMS_OVERRIDE is a comma-separated list like linux/amd64,linux/arm64",
                ));
                None
            }
        },
    };
    match version {
        Some(version) if problems.is_empty() => Ok(Info {
            version,
            platforms,
            dockerfile: None,
            target: None,
            tags: Vec::new(),
        }),
        _ => Err(problems),
    }
}

/// `platform::parse_list` with messages that quote a short prefix of a bad item.
fn parse_platform_list(text: &str) -> Result<Vec<Platform>, String> {
    platform::parse_list(text).map_err(|m| {
        text.split(',')
            .map(str::trim)
            .find(|item| m.contains(&format!("{item:?}")))
            .map_or(m.clone(), |item| short_platform_message(&m, item))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Info, Vec<Problem>> {
        parse_edn(text, Path::new("contexts/01-x/info.edn"))
    }

    fn codes_and_lines(text: &str) -> Vec<(&'static str, Option<usize>)> {
        parse(text)
            .unwrap_err()
            .into_iter()
            .map(|p| (p.code, p.line))
            .collect()
    }

    #[test]
    fn reads_version_and_platforms_and_ignores_other_keys() {
        let info = parse(
            ";; comment\n{:version \"1.2.3\"\n :platforms #{\"linux/arm64\" \"linux/amd64\"}\n :owner \"me\"}\n; trailing comment\n",
        )
        .unwrap();
        assert_eq!(info.version, Version::new(1, 2, 3));
        let p: Vec<String> = info
            .platforms
            .unwrap()
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(p, ["linux/amd64", "linux/arm64"]);
    }

    #[test]
    fn platforms_may_be_a_vector_and_are_optional() {
        let info = parse("{:version \"0.1.0\" :platforms [\"linux/amd64\"]}").unwrap();
        assert_eq!(info.platforms.unwrap().len(), 1);
        assert_eq!(parse("{:version \"0.1.0\"}").unwrap().platforms, None);
    }

    #[test]
    fn errors_name_line_and_column() {
        let errs = parse("{:version \"1.0.0\"\n :platforms #{\"linux/amd64\"\n").unwrap_err();
        assert_eq!(errs[0].code, "bad-edn");
        assert_eq!(errs[0].line, Some(3));
        assert!(errs[0].to_string().contains("contexts/01-x/info.edn:3"));
    }

    #[test]
    fn key_without_value_is_an_error() {
        assert_eq!(codes_and_lines("{:version}")[0].0, "bad-edn");
    }

    #[test]
    fn trailing_forms_are_errors_with_their_line() {
        assert_eq!(
            codes_and_lines("{:version \"1.0.0\"}\n\n{:other 1}\n"),
            [("bad-edn", Some(3))]
        );
        let errs = codes_and_lines("{:version \"1.0.0\"}\n ; ok\n  {:a\n");
        assert_eq!(errs, [("bad-edn", Some(3))]);
    }

    #[test]
    fn non_map_top_level() {
        assert_eq!(codes_and_lines("\n[1 2]"), [("bad-edn", Some(2))]);
        assert_eq!(codes_and_lines(""), [("bad-edn", Some(1))]);
    }

    #[test]
    fn missing_and_bad_versions() {
        assert_eq!(
            codes_and_lines("{:platforms #{\"linux/amd64\"}}")[0].0,
            "missing-version"
        );
        assert_eq!(
            codes_and_lines("{\n:version \"1.2\"}"),
            [("bad-version", Some(2))]
        );
        assert_eq!(codes_and_lines("{:version 1}"), [("bad-version", Some(1))]);
    }

    #[test]
    fn every_bad_platform_is_reported_with_its_line() {
        let errs = codes_and_lines(
            "{:version \"x\"\n :platforms #{\"linux/amd64\"\n \"linux/amd46\"\n \"windoze/arm64\"}}",
        );
        assert_eq!(
            errs,
            [
                ("bad-version", Some(1)),
                ("bad-platform", Some(3)),
                ("bad-platform", Some(4))
            ]
        );
        assert_eq!(
            codes_and_lines("{:version \"1.0.0\" :platforms #{}}")[0].0,
            "bad-platform"
        );
        assert_eq!(
            codes_and_lines("{:version \"1.0.0\" :platforms \"linux/amd64\"}")[0].0,
            "bad-platform"
        );
    }

    #[test]
    fn version_span_points_at_the_value_not_comments_or_other_keys() {
        let text =
            ";; :version \"9.9.9\"\n{:old-version \"0.0.1\" :version  \"1.2.3\" :x \":version\"}";
        let span = version_span(text).unwrap();
        assert_eq!(&text[span], "1.2.3");
    }

    #[test]
    fn version_file_layout() {
        let p = Path::new("VERSION");
        let info = parse_version_file(
            "2.0.1\n",
            p,
            Some(("linux/amd64, linux/arm64\n", Path::new("P"))),
        )
        .unwrap();
        assert_eq!(info.version, Version::new(2, 0, 1));
        assert_eq!(info.platforms.unwrap().len(), 2);
        let errs = parse_version_file("two", p, Some(("linux/x", Path::new("P")))).unwrap_err();
        assert_eq!(errs.len(), 2);
    }

    #[test]
    fn byte_order_mark_is_accepted_and_offsets_stay_those_of_the_file() {
        let text = "\u{feff}{:version \"1.2.3\"\n :platforms #{\"linux/amd64\"}}\n";
        assert_eq!(parse(text).unwrap().version, Version::new(1, 2, 3));
        let span = version_span(text).unwrap();
        assert_eq!(&text[span], "1.2.3");
        // Errors keep their lines.
        assert_eq!(
            codes_and_lines("\u{feff}{:version \"1.0.0\"}\n{:x 1}"),
            [("bad-edn", Some(2))]
        );
    }

    #[test]
    fn numbers_as_versions_are_named() {
        let errs = parse("{:version 1.2}").unwrap_err();
        assert_eq!(
            errs[0].message,
            ":version must be a string like \"1.2.0\", found the number 1.2"
        );
        assert!(parse("{:version 1}").unwrap_err()[0]
            .message
            .ends_with("found the number 1"));
    }

    #[test]
    fn versions_must_be_valid_tags() {
        let errs = codes_and_lines("{:version \"1.0.0+abc\"}");
        assert_eq!(errs, [("bad-version", Some(1))]);
        let m = parse_version("1.0.0+abc").unwrap_err();
        assert!(m.contains("'+' is not allowed in tags"), "{m}");
        let long = format!("1.0.0-{}", "a".repeat(123));
        assert_eq!(long.len(), 129);
        let m = parse_version(&long).unwrap_err();
        assert!(m.contains("129 characters long"), "{m}");
        assert!(parse_version(&long[..128]).is_ok());
        assert!(parse_version("1.0.0-rc.1").is_ok());
    }

    #[test]
    fn bad_values_are_quoted_short() {
        let secret = format!("CIP_PASSWORD=hunter2{}", "\0PATH=/bin".repeat(10));
        // The secret starts past the 40 quoted characters.
        let value = format!("{}{secret}", "x".repeat(40));
        let errs = parse_version_file(&value, Path::new("VERSION"), Some((&value, Path::new("P"))))
            .unwrap_err();
        assert_eq!(errs.len(), 2);
        for e in errs {
            assert!(!e.to_string().contains("hunter2"), "{e}");
            assert!(e.to_string().contains("xxxx..."), "{e}");
        }
        let text = format!("{{:version \"1.0.0\" :platforms #{{\"{value}\"}}}}");
        let e = &parse(&text).unwrap_err()[0];
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
