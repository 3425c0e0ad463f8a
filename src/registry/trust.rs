//! Which server certificates cip trusts: the system's roots plus the certificates given with
//! `--ca-cert` / SSL_CERT_FILE, verified as reqwest would (rustls-platform-verifier, i.e. webpki),
//! with one addition: a server certificate byte-identical to a given one is trusted even when it is
//! marked as a CA (`CA:TRUE`, what a plain `openssl req -x509` makes). webpki refuses such a
//! certificate as a server's own (`CaUsedAsEndEntity`) even when it is a trusted root; curl and
//! skopeo accept it, and a user who gave that very certificate means it. Its validity period and
//! name are still checked, and so is the handshake signature (the server holds its key). Every
//! other certificate gets webpki's verdict unchanged: nothing else is weakened.
//!
//! The registry's transport ([`super::transport`]) and the connect probe build their reqwest
//! clients with this configuration.
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use super::cert_validity;

/// The certificates (PEM, one or more per file) in `paths`.
pub fn read_certificates(
    paths: &[impl AsRef<Path>],
) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let mut certs = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let data = std::fs::read(path)
            .with_context(|| format!("cannot read CA certificate {}", path.display()))?;
        let before = certs.len();
        for cert in CertificateDer::pem_slice_iter(&data) {
            certs.push(
                cert.with_context(|| {
                    format!("CA certificate {} is not valid PEM", path.display())
                })?,
            );
        }
        anyhow::ensure!(
            certs.len() > before,
            "CA certificate {} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(certs)
}

/// The TLS client configuration of every connection to a registry that trusts `given` besides the
/// system's roots, as described above. HTTP/1.1 only, as cip's reqwest speaks.
pub fn client_config(given: Vec<CertificateDer<'static>>) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let platform =
        rustls_platform_verifier::Verifier::new_with_extra_roots(given.clone(), provider.clone())
            .context("cannot load the system's trusted certificates")?;
    let verifier = GivenOrPlatform { platform, given };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("no TLS protocol version is available")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The platform's (webpki) verification, plus the given certificates taken as they are.
#[derive(Debug)]
struct GivenOrPlatform {
    platform: rustls_platform_verifier::Verifier,
    given: Vec<CertificateDer<'static>>,
}

impl GivenOrPlatform {
    /// A certificate the user gave, presented by the server as its own: valid now and for this name.
    fn verify_given(
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (not_before, not_after) = cert_validity::period(end_entity).ok_or(
            rustls::Error::InvalidCertificate(CertificateError::BadEncoding),
        )?;
        let now = now.as_secs();
        if now < not_before {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidYet,
            ));
        }
        if now > not_after {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
        }
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        Ok(ServerCertVerified::assertion())
    }
}

impl ServerCertVerifier for GivenOrPlatform {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.platform.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match verdict {
            Err(e)
                if is_ca_used_as_end_entity(&e)
                    && self.given.iter().any(|c| c.as_ref() == end_entity.as_ref()) =>
            {
                Self::verify_given(end_entity, server_name, now)
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.platform.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.platform.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.platform.supported_verify_schemes()
    }
}

/// webpki's refusal of a CA certificate presented as a server's own (it travels as an opaque
/// "other" error, named only in its debug form).
pub fn is_ca_used_as_end_entity(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(CertificateError::Other(other))
            if format!("{other:?}").contains("CaUsedAsEndEntity")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::Duration;

    /// A self-signed certificate for 127.0.0.1 valid for `days`, made by `openssl req -x509`
    /// (CA:TRUE, as openssl makes it by default).
    fn openssl_cert(dir: &Path, days: &str) -> CertificateDer<'static> {
        let cert = dir.join("cert.pem");
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", days, "-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl");
        assert!(status.status.success(), "{status:?}");
        read_certificates(&[cert]).unwrap().remove(0)
    }

    #[test]
    fn validity_period_of_a_real_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let cert = openssl_cert(dir.path(), "3");
        let (not_before, not_after) = cert_validity::period(&cert).unwrap();
        assert_eq!(not_after - not_before, 3 * 86_400);
        let now = UnixTime::now().as_secs();
        assert!(
            not_before <= now && now - not_before < 600,
            "{not_before} vs {now}"
        );
    }

    #[test]
    fn a_given_certificate_is_held_to_its_period_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let cert = openssl_cert(dir.path(), "2");
        let ip = ServerName::try_from("127.0.0.1").unwrap();
        let at = |secs| UnixTime::since_unix_epoch(Duration::from_secs(secs));
        let (not_before, not_after) = cert_validity::period(&cert).unwrap();
        assert!(GivenOrPlatform::verify_given(&cert, &ip, at(not_before + 60)).is_ok());
        assert_eq!(
            GivenOrPlatform::verify_given(&cert, &ip, at(not_after + 1)).unwrap_err(),
            rustls::Error::InvalidCertificate(CertificateError::Expired)
        );
        assert_eq!(
            GivenOrPlatform::verify_given(&cert, &ip, at(not_before - 1)).unwrap_err(),
            rustls::Error::InvalidCertificate(CertificateError::NotValidYet)
        );
        let other = ServerName::try_from("registry.example.com").unwrap();
        assert!(matches!(
            GivenOrPlatform::verify_given(&cert, &other, at(not_before + 60)),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ))
        ));
    }

    #[test]
    fn files_without_certificates_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = read_certificates(&[&empty]).unwrap_err().to_string();
        assert!(err.contains("empty.pem holds no certificate"), "{err}");
    }
}
