//! `.dockerignore` as builders apply it: patterns with `*`, `?`, `[...]` and `**`, `!` exceptions, the
//! last matching line wins, and a pattern that matches a directory excludes everything below it.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(u8),
    Any,        // ?
    Star,       // * within one path segment
    DoubleStar, // ** across segments
    Class(Vec<(u8, u8)>, bool),
}

#[derive(Debug, Clone)]
struct Rule {
    toks: Vec<Tok>,
    negate: bool,
}

#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    rules: Vec<Rule>,
}

impl DockerIgnore {
    pub fn parse(text: &str) -> DockerIgnore {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let (negate, pat) = match l.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, l),
                };
                let cleaned = clean(pat);
                (!cleaned.is_empty()).then(|| Rule {
                    toks: compile(cleaned.as_bytes()),
                    negate,
                })
            })
            .collect();
        DockerIgnore { rules }
    }

    /// Whether `rel` (a `/`-separated path relative to the context) is left out of the build context.
    pub fn excluded(&self, rel: &str) -> bool {
        let mut excluded = false;
        for rule in &self.rules {
            if rule.negate == excluded && matches_path_or_parent(&rule.toks, rel) {
                excluded = !rule.negate;
            }
        }
        excluded
    }
}

/// Like Go's filepath.Clean on a relative, `/`-separated pattern, with a leading `/` dropped.
fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

fn compile(p: &[u8]) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'*' if p.get(i + 1) == Some(&b'*') => {
                toks.push(Tok::DoubleStar);
                i += 2;
                // `**/` also matches zero directories: the slash belongs to the double star.
                if p.get(i) == Some(&b'/') {
                    i += 1;
                }
            }
            b'*' => {
                toks.push(Tok::Star);
                i += 1;
            }
            b'?' => {
                toks.push(Tok::Any);
                i += 1;
            }
            b'[' => match class(p, i + 1) {
                Some((tok, next)) => {
                    toks.push(tok);
                    i = next;
                }
                None => {
                    toks.push(Tok::Lit(b'['));
                    i += 1;
                }
            },
            b'\\' if i + 1 < p.len() => {
                toks.push(Tok::Lit(p[i + 1]));
                i += 2;
            }
            c => {
                toks.push(Tok::Lit(c));
                i += 1;
            }
        }
    }
    toks
}

/// Parses `[...]` starting after the `[`; returns the token and the index after `]`.
fn class(p: &[u8], mut i: usize) -> Option<(Tok, usize)> {
    let negated = matches!(p.get(i), Some(b'^') | Some(b'!'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    while i < p.len() {
        if p[i] == b']' && !first {
            return Some((Tok::Class(ranges, negated), i + 1));
        }
        first = false;
        let lo = if p[i] == b'\\' && i + 1 < p.len() {
            i += 1;
            p[i]
        } else {
            p[i]
        };
        i += 1;
        let hi = if p.get(i) == Some(&b'-') && p.get(i + 1).is_some_and(|&c| c != b']') {
            i += 2;
            p[i - 1]
        } else {
            lo
        };
        ranges.push((lo, hi));
    }
    None
}

fn matches_path_or_parent(toks: &[Tok], rel: &str) -> bool {
    let b = rel.as_bytes();
    b.iter()
        .enumerate()
        .filter(|(_, &c)| c == b'/')
        .map(|(i, _)| &b[..i])
        .chain(std::iter::once(b))
        .any(|prefix| glob(toks, prefix))
}

fn glob(toks: &[Tok], s: &[u8]) -> bool {
    let Some((first, rest)) = toks.split_first() else {
        return s.is_empty();
    };
    match first {
        Tok::Lit(c) => s.first() == Some(c) && glob(rest, &s[1..]),
        Tok::Any => s.first().is_some_and(|&c| c != b'/') && glob(rest, &s[1..]),
        Tok::Class(ranges, negated) => {
            s.first().is_some_and(|&c| {
                c != b'/' && ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }) && glob(rest, &s[1..])
        }
        Tok::Star => (0..=s.len())
            .take_while(|&k| k == 0 || s[k - 1] != b'/')
            .any(|k| glob(rest, &s[k..])),
        // Zero or more whole segments (or anything, at the end of the pattern).
        Tok::DoubleStar => (0..=s.len())
            .any(|k| (k == 0 || s[k - 1] == b'/' || rest.is_empty()) && glob(rest, &s[k..])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(patterns: &str, path: &str) -> bool {
        DockerIgnore::parse(patterns).excluded(path)
    }

    #[test]
    fn basics() {
        assert!(ex("*.md", "README.md"));
        assert!(
            !ex("*.md", "docs/README.md"),
            "* does not cross directories"
        );
        assert!(ex("**/*.md", "docs/README.md"));
        assert!(ex("**/*.md", "README.md"), "**/ matches zero directories");
        assert!(
            ex("docs", "docs/a/b.txt"),
            "a directory excludes what is below it"
        );
        assert!(
            ex("/tmp/", "tmp/x"),
            "leading and trailing slashes are cleaned"
        );
        assert!(ex("a?c", "abc"));
        assert!(!ex("a?c", "a/c"));
        assert!(ex("[a-c]x", "bx"));
        assert!(!ex("[^a-c]x", "bx"));
        assert!(ex("# comment\n\n*.log", "x.log"));
        assert!(!ex("# *.log", "x.log"));
        assert!(ex("docs/**", "docs/a/b"));
    }

    #[test]
    fn last_match_wins_and_exceptions_reinclude() {
        assert!(!ex("*.md\n!README.md", "README.md"));
        assert!(ex("*.md\n!README.md", "NOTES.md"));
        assert!(ex("*.md\n!README.md\nREADME.md", "README.md"));
        assert!(!ex("docs\n!docs/keep.txt", "docs/keep.txt"));
        assert!(ex("docs\n!docs/keep.txt", "docs/drop.txt"));
    }
}
