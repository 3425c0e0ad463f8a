//! Why a registry could not be reached at all, in the words a user acts on: no such host,
//! connection refused, no answer to the connection, a network that cannot be reached. The HTTP
//! client's own error names an internal URL (the connect probe's `/v2/`) and layers of wrappers
//! instead.
use std::error::Error;
use std::io::ErrorKind;

/// What failed and what to check, when `e` is a failure to connect (not a TLS failure: those
/// have their own messages); None otherwise.
pub fn why(e: &reqwest::Error) -> Option<String> {
    if !e.is_connect() || super::tls::is_tls_failure(e) {
        return None;
    }
    if e.is_dns() {
        return Some(format!(
            "no such host ({}): is the registry address right?",
            innermost(e).unwrap_or_else(|| "the name does not resolve".into())
        ));
    }
    if e.is_timeout() {
        return Some(format!(
            "the connection timed out (no answer in {} s): is the host up, and does a firewall \
             let this port through?",
            super::CONNECT_TIMEOUT.as_secs()
        ));
    }
    Some(match io_kind(e) {
        Some(ErrorKind::ConnectionRefused) => {
            "connection refused (nothing listens on that port): is the registry running, and are \
             the host and port right?"
                .to_string()
        }
        Some(ErrorKind::TimedOut) => {
            "the connection timed out: is the host up, and does a firewall let this port through?"
                .to_string()
        }
        Some(ErrorKind::NetworkUnreachable) => {
            "the network is unreachable from this machine: check its network connection".into()
        }
        Some(ErrorKind::HostUnreachable) => {
            "the host is unreachable: is it up, and is the address right?".into()
        }
        _ => format!(
            "cannot connect ({}): is the registry running, and is the address right?",
            innermost(e).unwrap_or_else(|| "no reason given".into())
        ),
    })
}

/// The kind of the first I/O error in the chain of `e` that tells why a connection failed.
fn io_kind(e: &(dyn Error + 'static)) -> Option<ErrorKind> {
    use ErrorKind::*;
    chain(e)
        .filter_map(|s| s.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind)
        .find(|k| {
            matches!(
                k,
                ConnectionRefused | TimedOut | NetworkUnreachable | HostUnreachable
            )
        })
}

/// The text of the last error in the chain of `e` (the system's own words, e.g. `failed to lookup
/// address information: Name or service not known`), which names no URL.
fn innermost(e: &(dyn Error + 'static)) -> Option<String> {
    chain(e).skip(1).last().map(|s| s.to_string())
}

/// `e` and its sources, stepping into the error an `io::Error` wraps (its `source()` skips it).
fn chain<'a>(e: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(e), |&s| next(s))
}

fn next<'a>(s: &'a (dyn Error + 'static)) -> Option<&'a (dyn Error + 'static)> {
    match s
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        Some(inner) => Some(inner as &(dyn Error + 'static)),
        None => s.source(),
    }
}
