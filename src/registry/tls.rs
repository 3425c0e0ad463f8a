//! TLS failures inside the HTTP client's errors: a certificate cip does not trust, or a handshake
//! that failed (e.g. a plain-HTTP server on the other end). Neither goes away when asked again, so
//! neither is retried (see [`super::retry::is_transient`]).
use std::error::Error;

/// The rustls error somewhere in the chain of `e`, if any (rustls errors travel inside
/// `std::io::Error`s of the connection).
pub fn rustls_error<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // An io::Error's `source()` skips the error it wraps (and io::Errors nest): step into it.
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// A client error whose TLS handshake failed, shown as the TLS library's reason alone (e.g.
/// `invalid peer certificate: UnknownIssuer`): the HTTP client's text around it names the connect
/// probe's internal URL. The client error stays inside, for [`TlsFailure::request_error`].
#[derive(Debug)]
pub struct TlsFailure {
    error: super::error::RegistryError,
    reason: String,
}

impl TlsFailure {
    /// `e` as a TLS failure, or `e` itself when it is not one.
    pub fn of(e: super::error::RegistryError) -> Result<TlsFailure, super::error::RegistryError> {
        let reason = e
            .request_error()
            .and_then(|re| rustls_error(re))
            .map(|tls| tls.to_string());
        match reason {
            Some(reason) => Ok(TlsFailure { error: e, reason }),
            None => Err(e),
        }
    }

    /// The HTTP client's error.
    pub fn request_error(&self) -> &(dyn Error + 'static) {
        match self.error.request_error() {
            Some(re) => re,
            None => &self.error,
        }
    }
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl Error for TlsFailure {}

/// Whether the TLS handshake failed, for whatever reason.
pub fn is_tls_failure(e: &(dyn Error + 'static)) -> bool {
    rustls_error(e).is_some()
}

/// Whether a transport error is about the server's TLS certificate (untrusted, expired, wrong name).
pub fn is_certificate_error(e: &(dyn Error + 'static)) -> bool {
    if let Some(tls) = rustls_error(e) {
        return matches!(
            tls,
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
        );
    }
    // Errors that do not carry the rustls value (e.g. reformatted by a layer above) still name it.
    let mut cur: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.to_string().to_ascii_lowercase().contains("certificate") {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Whether the server presented a certificate marked as a CA (`CA:TRUE`, what a plain
/// `openssl req -x509` makes) as its own, and it is not one the user gave (those are accepted:
/// [`super::trust`]).
pub fn is_ca_used_as_end_entity(e: &(dyn Error + 'static)) -> bool {
    rustls_error(e).is_some_and(super::trust::is_ca_used_as_end_entity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rustls_errors_inside_io_errors() {
        let cert = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(is_tls_failure(&cert));
        assert!(is_certificate_error(&cert));
        // As hyper-rustls hands it on: an io::Error inside another.
        let plain = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        ));
        assert!(is_tls_failure(&plain));
        assert!(!is_certificate_error(&plain));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(!is_tls_failure(&reset));
        assert!(!is_certificate_error(&reset));
    }
}
