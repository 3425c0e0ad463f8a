//! Talking to an OCI registry (oci-client over tokio): what is published, pushing single-platform images
//! from an OCI layout, and assembling image indexes (manifest lists).
pub mod auth;
pub mod index;
pub mod push;

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

pub use index::{Entry, Published};

/// Media types cip reads when it asks what a tag points to.
pub const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// How to reach one registry.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// `host[:port]`, e.g. `localhost:5000` or `registry.example.com`.
    pub host: String,
    /// Hosts for which plain HTTP is allowed besides loopback (`--insecure-registry`).
    pub insecure_hosts: Vec<String>,
    /// Extra CA certificates (PEM) to trust, from `--ca-cert` and SSL_CERT_FILE.
    pub ca_certs: Vec<PathBuf>,
}

impl Endpoint {
    pub fn new(host: &str) -> Self {
        Endpoint {
            host: host.trim_end_matches('/').to_string(),
            ..Default::default()
        }
    }

    /// Plain HTTP only for loopback addresses or hosts the user named as insecure.
    pub fn plain_http(&self) -> bool {
        is_loopback(&self.host) || self.insecure_hosts.iter().any(|h| h == &self.host)
    }
}

/// Whether `host[:port]` names this machine: `localhost`, 127.0.0.0/8 or `[::1]`.
pub fn is_loopback(host_port: &str) -> bool {
    let host = if let Some(rest) = host_port.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A connection to one registry with one credential.
pub struct Registry {
    client: Client,
    pub endpoint: Endpoint,
    auth: RegistryAuth,
    /// Whether this connection speaks plain HTTP (decided by `connect`).
    plain_http: bool,
}

impl Registry {
    /// Connects over HTTPS; where plain HTTP is allowed (loopback, `--insecure-registry`), HTTPS is
    /// tried first and HTTP used only if the registry does not speak TLS, as docker does.
    pub async fn connect(endpoint: Endpoint, auth: RegistryAuth) -> anyhow::Result<Registry> {
        let https = Registry::with_protocol(endpoint.clone(), auth.clone(), false)?;
        if !endpoint.plain_http() || https.speaks_https().await {
            return Ok(https);
        }
        Registry::with_protocol(endpoint, auth, true)
    }

    async fn speaks_https(&self) -> bool {
        let probe = self.tag_ref("cip-probe", "probe");
        // Any HTTP answer over TLS (404, 401, ...) proves HTTPS; only a transport error disproves it.
        !matches!(
            self.client.fetch_manifest_digest(&probe, &self.auth).await,
            Err(OciDistributionError::RequestError(_))
        )
    }

    pub fn plain_http(&self) -> bool {
        self.plain_http
    }

    fn with_protocol(
        endpoint: Endpoint,
        auth: RegistryAuth,
        plain_http: bool,
    ) -> anyhow::Result<Registry> {
        let mut certs = Vec::new();
        for path in &endpoint.ca_certs {
            let data = std::fs::read(path)
                .with_context(|| format!("cannot read CA certificate {}", path.display()))?;
            certs.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let protocol = if plain_http {
            ClientProtocol::HttpsExcept(vec![endpoint.host.clone()])
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            extra_root_certificates: certs,
            // Sizes are known from the layout: one PUT per blob instead of a PATCH per chunk.
            use_monolithic_push: true,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(300)),
            ..Default::default()
        };
        let client = Client::try_from(config).context("cannot create the registry client")?;
        Ok(Registry {
            client,
            endpoint,
            auth,
            plain_http,
        })
    }

    pub fn host(&self) -> &str {
        &self.endpoint.host
    }

    pub fn tag_ref(&self, repo: &str, tag: &str) -> Reference {
        Reference::with_tag(
            self.endpoint.host.clone(),
            repo.to_string(),
            tag.to_string(),
        )
    }

    pub fn digest_ref(&self, repo: &str, digest: &str) -> Reference {
        Reference::with_digest(
            self.endpoint.host.clone(),
            repo.to_string(),
            digest.to_string(),
        )
    }

    async fn ready(&self) {
        self.client
            .store_auth_if_needed(&self.endpoint.host, &self.auth)
            .await;
    }

    /// The raw manifest (or index) a tag points to, with its digest; None if the tag does not exist.
    pub async fn manifest_raw(
        &self,
        reference: &Reference,
    ) -> anyhow::Result<Option<(Bytes, String)>> {
        self.ready().await;
        match self
            .client
            .pull_manifest_raw(reference, &self.auth, MANIFEST_TYPES)
            .await
        {
            Ok(found) => Ok(Some(found)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.explain(e, reference)),
        }
    }

    /// What `repo:tag` holds: which platforms, by which manifests. None if the tag does not exist.
    pub async fn published(&self, repo: &str, tag: &str) -> anyhow::Result<Option<Published>> {
        let reference = self.tag_ref(repo, tag);
        let Some((raw, digest)) = self.manifest_raw(&reference).await? else {
            return Ok(None);
        };
        let parsed = index::parse(&raw, &digest)?;
        let published = match parsed {
            index::Parsed::Index(p) => p,
            // A single-platform manifest: its platform is in the config blob.
            index::Parsed::Manifest {
                config_digest,
                entry,
            } => {
                let config = self.blob_bytes(repo, &config_digest).await?;
                index::single(entry, &config, &digest)?
            }
        };
        Ok(Some(published))
    }

    pub async fn blob_bytes(&self, repo: &str, digest: &str) -> anyhow::Result<Vec<u8>> {
        self.ready().await;
        let reference = self.digest_ref(repo, digest);
        let mut out = Vec::new();
        self.client
            .pull_blob(&reference, digest, &mut out)
            .await
            .map_err(|e| self.explain(e, &reference))?;
        Ok(out)
    }

    pub async fn blob_exists(&self, repo: &str, digest: &str) -> anyhow::Result<bool> {
        self.ready().await;
        let reference = self.digest_ref(repo, digest);
        self.client
            .blob_exists(&reference, digest)
            .await
            .map_err(|e| self.explain(e, &reference))
    }

    /// Pushes manifest bytes as they are (their digest is the digest of exactly these bytes).
    pub async fn put_manifest(
        &self,
        reference: &Reference,
        body: Bytes,
        media_type: &str,
    ) -> anyhow::Result<()> {
        self.ready().await;
        let content_type = media_type.parse().context("invalid media type")?;
        self.client
            .push_manifest_raw(reference, body, content_type)
            .await
            .map_err(|e| self.explain(e, reference))?;
        Ok(())
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Turns a client error into one that names the registry and says what to do.
    pub fn explain(&self, e: OciDistributionError, reference: &Reference) -> anyhow::Error {
        let host = &self.endpoint.host;
        let what = match &e {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => {
                format!(
                    "registry {host} refused access to {reference} ({}): check your credentials",
                    match self.auth {
                        RegistryAuth::Anonymous => "tried anonymously",
                        RegistryAuth::Basic(..) => "tried a username and password",
                        RegistryAuth::Bearer(_) => "tried a bearer token",
                    }
                )
            }
            OciDistributionError::RequestError(re) if re.is_connect() || re.is_timeout() => {
                let scheme = if self.plain_http { "http" } else { "https" };
                format!("cannot reach registry {host} over {scheme}: is it running and is the address right?")
            }
            _ => format!("registry {host}: {reference}"),
        };
        anyhow::Error::new(e).context(what)
    }
}

fn is_not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|er| {
            matches!(
                er.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        _ => false,
    }
}

/// Refuses registry strings that are URLs: cip wants `host[:port]`.
pub fn validate_host(host: &str) -> anyhow::Result<()> {
    if host.contains("://") {
        bail!("registry {host:?} must be host[:port] without a scheme (plain HTTP is chosen for localhost, 127.0.0.0/8, [::1] and --insecure-registry hosts)");
    }
    if host.is_empty() {
        bail!("empty registry address");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost:5000",
            "localhost",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "registry.example.com",
            "10.0.0.1:5000",
            "localhost.example.com:5000",
            "[::2]:1",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn insecure_hosts_are_exact() {
        let mut e = Endpoint::new("reg.lan:5000");
        assert!(!e.plain_http());
        e.insecure_hosts = vec!["reg.lan".into()];
        assert!(!e.plain_http());
        e.insecure_hosts = vec!["reg.lan:5000".into()];
        assert!(e.plain_http());
    }
}
