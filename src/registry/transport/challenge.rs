//! The `WWW-Authenticate` header of a registry's 401: which scheme it wants (Basic, or Bearer with
//! the token server's realm and service), as RFC 7235 writes it
//! (`Bearer realm="https://auth.example.com/token",service="registry",scope="repository:a:pull"`).
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        /// The scope the registry names for this request (used when cip names none).
        scope: Option<String>,
    },
}

/// The challenge of a `WWW-Authenticate` value; None for schemes cip does not speak, or a Bearer
/// challenge without a realm.
pub fn parse(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = params(rest);
    Some(Challenge::Bearer {
        realm: params.remove("realm").filter(|r| !r.is_empty())?,
        service: params.remove("service"),
        scope: params.remove("scope"),
    })
}

/// `key=value` or `key="quoted \"value\""` pairs separated by commas; keys lower-cased.
fn params(mut s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    loop {
        s = s.trim_start_matches([' ', ',', '\t']);
        let Some((key, rest)) = s.split_once('=') else {
            return out;
        };
        let key = key.trim().to_ascii_lowercase();
        let rest = rest.trim_start();
        let (value, after) = match rest.strip_prefix('"') {
            Some(quoted) => quoted_string(quoted),
            None => {
                let end = rest.find(',').unwrap_or(rest.len());
                (rest[..end].trim().to_string(), &rest[end..])
            }
        };
        out.insert(key, value);
        s = after;
    }
}

/// The content of a quoted string whose opening quote was taken, and what follows its closing one.
fn quoted_string(s: &str) -> (String, &str) {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (value, &s[i + 1..]),
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            }
            c => value.push(c),
        }
    }
    (value, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic() {
        assert_eq!(
            parse(
                r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: Some("registry.example.com".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse(r#"bearer realm=http://127.0.0.1:1/token, error="insufficient_scope""#),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/token".into(),
                service: None,
                scope: None,
            })
        );
        assert_eq!(
            parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse("Basic"), Some(Challenge::Basic));
        assert_eq!(parse(r#"Bearer service="x""#), None, "no realm");
        assert_eq!(parse("Negotiate abc"), None);
        assert_eq!(
            parse(r#"Bearer realm="a\"b",service="#),
            Some(Challenge::Bearer {
                realm: "a\"b".into(),
                service: Some(String::new()),
                scope: None
            })
        );
    }
}
