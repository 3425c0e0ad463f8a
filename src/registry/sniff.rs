//! Tells a plain-HTTP registry from a TLS one with one tiny request, before any HTTP client exists.
//!
//! Where plain HTTP is allowed (loopback, `--insecure-registry`), cip prefers HTTPS, as docker does.
//! Finding out through a TLS handshake that fails costs a client with the system's roots and the
//! handshake (about 0.1 s here), on every run against a local registry. Instead, `GET /v2/` is sent
//! in plain HTTP over a raw connection: a registry that answers it with a proper HTTP status does not
//! speak TLS on that port. A TLS server answers with an alert, closes, or (Go, nginx) says 400, and
//! then the TLS path is taken as before. The answer's head also tells a registry (its
//! `Docker-Distribution-API-Version` header) from another web server ([`recognize`]), at no extra
//! request.
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the sniff may take before cip falls back to the TLS probe (which settles it anyway).
const SNIFF_TIMEOUT: Duration = Duration::from_secs(2);

/// The header every registry (distribution, and the registries compatible with it) sends with its
/// answer to `GET /v2/`.
pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";

/// What a plain-HTTP `GET /v2/` got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plain {
    /// The registry speaks plain HTTP and lets anyone in (200).
    Open,
    /// The registry speaks plain HTTP and asks for credentials (401), or is in trouble (429, 5xx:
    /// later requests retry and say so).
    Guarded,
    /// A plain-HTTP server that is no registry: it answered this status line without the
    /// registry's API version header.
    NotRegistry(String),
}

/// `Some` if `host` (`name[:port]`, port 80 if absent) answers a plain-HTTP `GET /v2/`; `None` if
/// it does not (TLS, another protocol, unreachable): the caller then tries TLS.
pub async fn plain_http(host: &str, request_timeout: Duration) -> Option<Plain> {
    tokio::time::timeout(SNIFF_TIMEOUT.min(request_timeout), answer_of_v2(host))
        .await
        .ok()
        .flatten()
        .and_then(|a| classify(&a))
}

/// The head of an HTTP answer: status code, status line, whether the API version header was there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub status_line: String,
    pub api_header: bool,
}

async fn answer_of_v2(host: &str) -> Option<Answer> {
    let address = if has_port(host) {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let mut stream = TcpStream::connect(address).await.ok()?;
    let request = format!("GET /v2/ HTTP/1.0\r\nHost: {host}\r\nUser-Agent: cip\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    // The whole head (for the header), up to a bound; a server that closes early ends it too.
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < HEAD_MAX {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    parse_head(&head)
}

/// Largest answer head read by the sniff.
const HEAD_MAX: usize = 16 << 10;

/// `HTTP/1.1 200 OK\r\nDocker-Distribution-Api-Version: registry/2.0\r\n...` -> 200, with header.
fn parse_head(head: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let line = lines.next()?;
    let mut words = line.split_whitespace();
    if !words.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = words.next()?.parse().ok()?;
    let api_header = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .any(|(name, _)| name.trim().eq_ignore_ascii_case(API_VERSION_HEADER));
    Some(Answer {
        status,
        status_line: line
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" "),
        api_header,
    })
}

/// 400 is what TLS servers answer to plain HTTP ("client sent an HTTP request to an HTTPS
/// server"); a registry never answers `GET /v2/` with it.
fn classify(a: &Answer) -> Option<Plain> {
    match recognize(a.status, a.api_header) {
        _ if a.status == 400 => None,
        Recognized::Registry if a.status == 200 => Some(Plain::Open),
        Recognized::Registry | Recognized::Troubled => Some(Plain::Guarded),
        Recognized::NotRegistry => Some(Plain::NotRegistry(a.status_line.clone())),
    }
}

/// Who may use a registry, as its answer to an anonymous `GET /v2/` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (200).
    Open,
    /// Those with credentials or tokens (401).
    Guarded,
}

/// What an answer to `GET /v2/` says about the server, over HTTP or HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recognized {
    /// A registry: its API version header is there.
    Registry,
    /// 429 or 5xx without the header: a registry (or its proxy) in trouble may answer so; the
    /// requests that follow retry and report it.
    Troubled,
    /// Any other answer without the header (a web server's 404, a login page's 200).
    NotRegistry,
}

pub fn recognize(status: u16, api_header: bool) -> Recognized {
    if api_header {
        Recognized::Registry
    } else if super::retry::transient_status(status) {
        Recognized::Troubled
    } else {
        Recognized::NotRegistry
    }
}

/// The error for a server that is no registry; `answered` is its status line.
pub fn not_a_registry(host: &str, answered: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{host} does not look like a container registry (GET /v2/ answered {answered} without a \
         Docker-Distribution-API-Version header): check the registry address"
    )
}

fn has_port(host: &str) -> bool {
    match host.rsplit_once(':') {
        // `[::1]` alone ends in `]`; `[::1]:5000` has its port after the bracket.
        Some((_, port)) => !port.ends_with(']') && port.parse::<u16>().is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(head: &[u8]) -> Option<Answer> {
        parse_head(head)
    }

    #[test]
    fn heads() {
        let registry = answer(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDocker-Distribution-Api-Version: registry/2.0\r\n\r\n{}",
        )
        .unwrap();
        assert_eq!((registry.status, registry.api_header), (200, true));
        assert_eq!(classify(&registry), Some(Plain::Open));
        let guarded = answer(
            b"HTTP/1.0 401 Unauthorized\r\ndocker-distribution-api-version: registry/2.0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(classify(&guarded), Some(Plain::Guarded));
        let web = answer(b"HTTP/1.0 404 File not found\r\nServer: SimpleHTTP/0.6\r\n\r\n").unwrap();
        assert_eq!(
            classify(&web),
            Some(Plain::NotRegistry("404 File not found".into()))
        );
        let page = answer(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>").unwrap();
        assert_eq!(classify(&page), Some(Plain::NotRegistry("200 OK".into())));
        // The header only counts in the head, not in a body.
        let body = answer(b"HTTP/1.1 404 Not Found\r\n\r\nDocker-Distribution-Api-Version: x\r\n")
            .unwrap();
        assert!(!body.api_header);
        let busy = answer(b"HTTP/1.1 503 Service Unavailable\r\n\r\n").unwrap();
        assert_eq!(classify(&busy), Some(Plain::Guarded));
        let tls = answer(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap();
        assert_eq!(classify(&tls), None);
        assert_eq!(answer(b"\x15\x03\x01\x00\x02\x02\x50"), None);
        assert_eq!(answer(b""), None);
    }

    #[test]
    fn ports() {
        assert!(has_port("localhost:5000"));
        assert!(has_port("[::1]:5000"));
        assert!(!has_port("[::1]"));
        assert!(!has_port("registry.example.com"));
    }
}
