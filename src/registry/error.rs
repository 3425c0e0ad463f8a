//! What went wrong in one registry request, typed so that callers match on it: the HTTP status and
//! the registry's error codes (`MANIFEST_UNKNOWN`, `DIGEST_INVALID`, ...), or the transport's
//! failure, or a limit cip put on what it reads; always with the host and the operation.
use std::fmt;

use serde_json::Value;

/// One failed registry request.
#[derive(Debug)]
pub struct RegistryError {
    /// `HOST[:PORT]` the request went to (a token server's host for a token request).
    pub host: String,
    /// What was asked, as retry lines name it: `GET manifest HOST/app:1.0.0`.
    pub operation: String,
    pub kind: ErrorKind,
}

#[derive(Debug)]
pub enum ErrorKind {
    /// The server answered with an error status.
    Status {
        status: u16,
        /// The error envelope's entries (`{"errors":[...]}`), if the body held one.
        errors: Vec<Envelope>,
        /// The start of the body (at most [`super::transport::bounded::ERROR_BODY_LIMIT`]).
        body: String,
    },
    /// The request did not get an answer: connection, TLS, timeout, a body cut midway.
    Request(reqwest::Error),
    /// An answer larger than cip reads for its kind.
    TooLarge(TooLarge),
    /// An answer that breaks the distribution protocol (no `Location` for an upload, a token
    /// server's answer without a token).
    Protocol(String),
    /// Content whose digest is not the one asked for.
    DigestMismatch { expected: String, actual: String },
    /// A local file could not be read for an upload.
    Io(std::io::Error),
    /// A download stopped moving for longer than the read timeout.
    Stalled(String),
}

/// An answer cut at a limit: what it was, which limit, and how much was announced or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    /// `a manifest`, `an image config`, `a token answer`.
    pub what: &'static str,
    pub limit: u64,
    /// `Content-Length`, when the server announced more than the limit (nothing was read).
    pub announced: Option<u64>,
    /// Bytes read before cip stopped (a body that went past the limit).
    pub read: u64,
}

/// One entry of a registry's error envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub code: ErrorCode,
    pub message: String,
    pub detail: Value,
}

/// The error codes of the distribution specification that cip acts on; others are kept as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    Other(String),
}

impl ErrorCode {
    pub fn parse(code: &str) -> ErrorCode {
        use ErrorCode::*;
        match code {
            "BLOB_UNKNOWN" => BlobUnknown,
            "BLOB_UPLOAD_INVALID" => BlobUploadInvalid,
            "BLOB_UPLOAD_UNKNOWN" => BlobUploadUnknown,
            "DIGEST_INVALID" => DigestInvalid,
            "MANIFEST_BLOB_UNKNOWN" => ManifestBlobUnknown,
            "MANIFEST_INVALID" => ManifestInvalid,
            "MANIFEST_UNKNOWN" => ManifestUnknown,
            "NAME_INVALID" => NameInvalid,
            "NAME_UNKNOWN" => NameUnknown,
            "SIZE_INVALID" => SizeInvalid,
            "UNAUTHORIZED" => Unauthorized,
            "DENIED" => Denied,
            "UNSUPPORTED" => Unsupported,
            "TOOMANYREQUESTS" => TooManyRequests,
            other => Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        use ErrorCode::*;
        match self {
            BlobUnknown => "BLOB_UNKNOWN",
            BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            DigestInvalid => "DIGEST_INVALID",
            ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ManifestInvalid => "MANIFEST_INVALID",
            ManifestUnknown => "MANIFEST_UNKNOWN",
            NameInvalid => "NAME_INVALID",
            NameUnknown => "NAME_UNKNOWN",
            SizeInvalid => "SIZE_INVALID",
            Unauthorized => "UNAUTHORIZED",
            Denied => "DENIED",
            Unsupported => "UNSUPPORTED",
            TooManyRequests => "TOOMANYREQUESTS",
            Other(code) => code,
        }
    }
}

/// The entries of an error envelope `{"errors":[{"code":..,"message":..,"detail":..}]}`; none when
/// `body` is no such envelope.
pub fn parse_envelope(body: &[u8]) -> Vec<Envelope> {
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    doc.get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some(Envelope {
                code: ErrorCode::parse(e.get("code")?.as_str()?),
                message: e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                detail: e.get("detail").cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

impl RegistryError {
    pub fn new(host: &str, operation: &str, kind: ErrorKind) -> RegistryError {
        RegistryError {
            host: host.to_string(),
            operation: operation.to_string(),
            kind,
        }
    }

    /// The HTTP status the server answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match &self.kind {
            ErrorKind::Status { status, .. } => Some(*status),
            ErrorKind::Request(re) => re.status().map(|s| s.as_u16()),
            _ => None,
        }
    }

    /// Whether the registry's answer carried `code`.
    pub fn has_code(&self, code: &ErrorCode) -> bool {
        self.codes().any(|c| c == code)
    }

    pub fn codes(&self) -> impl Iterator<Item = &ErrorCode> {
        let errors = match &self.kind {
            ErrorKind::Status { errors, .. } => errors.as_slice(),
            _ => &[],
        };
        errors.iter().map(|e| &e.code)
    }

    /// The transport's error, when the request got no answer.
    pub fn request_error(&self) -> Option<&reqwest::Error> {
        match &self.kind {
            ErrorKind::Request(re) => Some(re),
            _ => None,
        }
    }

    /// The registry error inside `e` (an error of a [`super::Registry`] method), for callers that
    /// act on its status or codes.
    pub fn find(e: &anyhow::Error) -> Option<&RegistryError> {
        e.chain().find_map(|c| c.downcast_ref::<RegistryError>())
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Status { status, errors, .. } => {
                f.write_str(&super::retry::status_text(*status))?;
                for e in errors {
                    match e.message.as_str() {
                        "" => write!(f, ", {}", e.code.as_str())?,
                        m => write!(f, ", {}: {}", e.code.as_str(), clip(m))?,
                    }
                }
                Ok(())
            }
            // The transport's text without the request's URL (internal paths mean nothing to users).
            ErrorKind::Request(re) => write!(f, "{re}"),
            ErrorKind::TooLarge(t) => write!(f, "{}", t.describe(&self.host, &self.operation)),
            ErrorKind::Protocol(why) => write!(f, "{}: {why}", self.operation),
            ErrorKind::DigestMismatch { expected, actual } => write!(
                f,
                "{}: the content's digest is {actual}, not the {expected} asked for",
                self.operation
            ),
            ErrorKind::Io(e) => write!(f, "{e}"),
            ErrorKind::Stalled(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for RegistryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Request(re) => Some(re),
            ErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl TooLarge {
    /// `registry H sent a manifest larger than cip's limit of 4 MiB (GET manifest H/a:1 announced
    /// 2147483648 bytes): ...`
    pub fn describe(&self, host: &str, operation: &str) -> String {
        let how = match self.announced {
            Some(n) => format!("{operation} announced {n} bytes"),
            None => format!(
                "{operation} sent more; cip stopped reading after {} bytes",
                self.read
            ),
        };
        format!(
            "registry {host} sent {} larger than cip's limit of {} ({how}): no registry serves one \
             that large, so this is not the registry it should be, or it is broken",
            self.what,
            show_size(self.limit)
        )
    }
}

/// `4 MiB`, `64 KiB`, `17 bytes`.
pub fn show_size(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// A registry's message, cut to one line of reasonable length.
fn clip(m: &str) -> String {
    let line = m.lines().next().unwrap_or("");
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, body: &str) -> RegistryError {
        RegistryError::new(
            "h:5000",
            "PUT manifest h:5000/a:1",
            ErrorKind::Status {
                status: code,
                errors: parse_envelope(body.as_bytes()),
                body: body.into(),
            },
        )
    }

    #[test]
    fn envelopes_give_typed_codes() {
        let e = status(
            400,
            r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:ab"},{"code":"X_CUSTOM"}]}"#,
        );
        assert!(e.has_code(&ErrorCode::ManifestBlobUnknown));
        assert!(e.has_code(&ErrorCode::Other("X_CUSTOM".into())));
        assert_eq!(e.status(), Some(400));
        assert_eq!(
            e.to_string(),
            "400 Bad Request, MANIFEST_BLOB_UNKNOWN: blob unknown to registry, X_CUSTOM"
        );
        let found = anyhow::Error::new(e).context("registry h:5000: a:1");
        assert!(RegistryError::find(&found).is_some_and(|e| e.host == "h:5000"));
        assert!(status(404, "<html>not json</html>")
            .codes()
            .next()
            .is_none());
        for code in [
            "DIGEST_INVALID",
            "MANIFEST_UNKNOWN",
            "BLOB_UNKNOWN",
            "DENIED",
            "TOOMANYREQUESTS",
        ] {
            assert_eq!(ErrorCode::parse(code).as_str(), code);
            assert!(
                !matches!(ErrorCode::parse(code), ErrorCode::Other(_)),
                "{code}"
            );
        }
    }

    #[test]
    fn limits_name_the_host_the_request_and_the_size() {
        let t = TooLarge {
            what: "a manifest",
            limit: 4 << 20,
            announced: Some(2 << 30),
            read: 0,
        };
        let text = t.describe("h:1", "GET manifest h:1/a:1");
        assert!(text.starts_with("registry h:1 sent a manifest larger than cip's limit of 4 MiB (GET manifest h:1/a:1 announced 2147483648 bytes)"), "{text}");
        assert_eq!(show_size(64 << 10), "64 KiB");
        assert_eq!(show_size(17), "17 bytes");
    }
}
