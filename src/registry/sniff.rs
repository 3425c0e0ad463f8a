//! Tells a plain-HTTP registry from a TLS one with one tiny request, before any HTTP client exists.
//!
//! Where plain HTTP is allowed (loopback, `--insecure-registry`), cip prefers HTTPS, as docker does.
//! Finding out through a TLS handshake that fails costs a client with the system's roots and the
//! handshake (about 0.1 s here), on every run against a local registry. Instead, `GET /v2/` is sent
//! in plain HTTP over a raw connection: a registry that answers it with a proper HTTP status does not
//! speak TLS on that port. A TLS server answers with an alert, closes, or (Go, nginx) says 400, and
//! then the TLS path is taken as before.
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the sniff may take before cip falls back to the TLS probe (which settles it anyway).
const SNIFF_TIMEOUT: Duration = Duration::from_secs(2);

/// What a plain-HTTP `GET /v2/` got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plain {
    /// The registry speaks plain HTTP and lets anyone in (200).
    Open,
    /// The registry speaks plain HTTP and asks for credentials (401) or answers otherwise.
    Guarded,
}

/// `Some` if `host` (`name[:port]`, port 80 if absent) answers a plain-HTTP `GET /v2/` like a
/// registry; `None` if it does not (TLS, another protocol, unreachable): the caller then tries TLS.
pub async fn plain_http(host: &str) -> Option<Plain> {
    tokio::time::timeout(SNIFF_TIMEOUT, status_of_v2(host))
        .await
        .ok()
        .flatten()
        .and_then(classify)
}

async fn status_of_v2(host: &str) -> Option<u16> {
    let address = if has_port(host) {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let mut stream = TcpStream::connect(address).await.ok()?;
    let request = format!("GET /v2/ HTTP/1.0\r\nHost: {host}\r\nUser-Agent: cip\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 64];
    while !head.contains(&b'\n') && head.len() < 256 {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    status_code(&head)
}

/// `HTTP/1.1 200 OK\r\n...` -> 200.
fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    let version = words.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    words.next()?.parse().ok()
}

/// 400 is what TLS servers answer to plain HTTP ("client sent an HTTP request to an HTTPS
/// server"); a registry never answers `GET /v2/` with it.
fn classify(status: u16) -> Option<Plain> {
    match status {
        200 => Some(Plain::Open),
        400 => None,
        100..=599 => Some(Plain::Guarded),
        _ => None,
    }
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

    #[test]
    fn status_lines() {
        assert_eq!(
            status_code(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"),
            Some(200)
        );
        assert_eq!(status_code(b"HTTP/1.0 401 Unauthorized\r\n"), Some(401));
        assert_eq!(status_code(b"\x15\x03\x01\x00\x02\x02\x50"), None);
        assert_eq!(status_code(b""), None);
        assert_eq!(classify(400), None);
        assert_eq!(classify(200), Some(Plain::Open));
        assert_eq!(classify(401), Some(Plain::Guarded));
    }

    #[test]
    fn ports() {
        assert!(has_port("localhost:5000"));
        assert!(has_port("[::1]:5000"));
        assert!(!has_port("[::1]"));
        assert!(!has_port("registry.example.com"));
    }
}
