//! Talking to an OCI registry (cip's own [`transport`] over reqwest): what is published, pushing
//! single-platform images from an OCI layout, and assembling image indexes (manifest lists).
//!
//! Every request a [`Registry`] makes is idempotent and goes through [`Registry::retrying`]: connection
//! errors, timeouts, 429 and 5xx answers are retried with backoff as [`retry`] describes (bounded by
//! `CIP_RETRY_ATTEMPTS` / `CIP_RETRY_MAX_SECONDS`); 400, 401, 403 and 404 never are.
//! The last error is explained in words a user acts on, with the typed [`RegistryError`] (status,
//! error codes, host, operation) inside for callers that match on it ([`RegistryError::find`]).
pub mod address;
pub mod auth;
mod cert_validity;
pub mod copy;
pub mod error;
pub mod index;
mod locks;
pub mod merge;
pub mod pace;
mod probe;
pub mod push;
pub mod reference;
pub mod retry;
mod sniff;
mod space;
pub mod stage_sweep;
pub mod timeouts;
mod tls;
pub mod transport;
mod trust;
mod unreachable;

use tls::is_certificate_error;

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use bytes::Bytes;
use futures_util::Stream;

pub use auth::RegistryAuth;
pub use error::{ErrorCode, ErrorKind, RegistryError};
pub use index::{Entry, Published};
pub use reference::Reference;
pub use retry::RetryPolicy;
pub use timeouts::Timeouts;

/// How long a TCP connection to a registry may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
    /// `host[:port]`, e.g. `localhost:5000` or `registry.example.com`: what cip connects to and
    /// looks credentials up by.
    pub host: String,
    /// The namespace inside the registry (`team/sub`), empty for none: image `NAME` is repository
    /// `PATH/NAME` (see [`address`]).
    pub path: String,
    /// Hosts for which plain HTTP is allowed besides loopback (`--insecure-registry`).
    pub insecure_hosts: Vec<String>,
    /// Extra CA certificates (PEM) to trust, from `--ca-cert` and SSL_CERT_FILE.
    pub ca_certs: Vec<PathBuf>,
    /// How requests are retried (the run configuration's `CIP_RETRY_*`).
    pub retry: RetryPolicy,
    /// How long the registry may stay silent (the run configuration's `CIP_*_TIMEOUT_SECONDS`).
    pub timeouts: Timeouts,
}

impl Endpoint {
    /// The endpoint of `HOST[:PORT][/PATH]`, taken as it is (see [`Endpoint::parse`] to validate).
    pub fn new(address: &str) -> Self {
        let (host, path) = address::split(address.trim_end_matches('/'));
        Endpoint {
            host: host.to_string(),
            path: path.to_string(),
            ..Default::default()
        }
    }

    /// The endpoint of a registry address from the user, validated ([`address::Address::parse`]).
    pub fn parse(address: &str) -> anyhow::Result<Self> {
        let a = address::Address::parse(address)?;
        Ok(Endpoint {
            host: a.host,
            path: a.path,
            ..Default::default()
        })
    }

    /// `HOST[:PORT][/PATH]`: where images are named from (`REGISTRY` of builds).
    pub fn address(&self) -> String {
        match self.path.as_str() {
            "" => self.host.clone(),
            path => format!("{}/{path}", self.host),
        }
    }

    /// The repository of image `name`: `PATH/NAME`.
    pub fn repository(&self, name: &str) -> String {
        address::repository(&self.path, name)
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
    transport: transport::Transport,
    pub endpoint: Endpoint,
    auth: RegistryAuth,
    /// Whether this connection speaks plain HTTP (decided by `connect`).
    plain_http: bool,
    /// How failed requests are retried.
    retry: RetryPolicy,
    /// How long requests may go without an answer.
    timeouts: Timeouts,
    /// Where the credentials came from, for messages (never the secret itself).
    auth_source: String,
    /// One lock per `repo@digest` blob upload (see [`Registry::upload_lock`]).
    uploads: locks::KeyedLocks<()>,
    /// `HOST[:PORT][/PATH]` ([`Endpoint::address`]).
    address: String,
    /// Whom this connection trusts ([`trust`]), for the connect-time probe's client too.
    tls: rustls::ClientConfig,
}

impl Registry {
    /// Connects over HTTPS; where plain HTTP is allowed (loopback, `--insecure-registry`), HTTP is
    /// used only if the registry does not speak TLS, as docker does: a registry that answers a plain
    /// `GET /v2/` ([`sniff`]) does not, else an HTTPS probe decides. Either way, the server must
    /// answer `GET /v2/` like a registry (its API version header), or cip stops here. Requests are
    /// retried and bounded as the endpoint says ([`Endpoint::retry`], [`Endpoint::timeouts`]); the
    /// HTTPS probe itself is a single request, never retried.
    pub async fn connect(endpoint: Endpoint, auth: RegistryAuth) -> anyhow::Result<Registry> {
        let retry = endpoint.retry.clone();
        let timeouts = endpoint.timeouts;
        let tls = trust::client_config(trust::read_certificates(&endpoint.ca_certs)?)?;
        let sniffed = if endpoint.plain_http() {
            sniff::plain_http(&endpoint.host, timeouts.request).await
        } else {
            None
        };
        if let Some(sniff::Plain::NotRegistry(answered)) = &sniffed {
            return Err(sniff::not_a_registry(&endpoint.host, answered));
        }
        let mut reg = match sniffed {
            Some(_) => Registry::with_protocol(endpoint, auth, true, timeouts, tls)?,
            None => {
                let https = Registry::with_protocol(
                    endpoint.clone(),
                    auth.clone(),
                    false,
                    timeouts,
                    tls.clone(),
                )?;
                if !endpoint.plain_http() || https.speaks_https().await? {
                    https
                } else {
                    Registry::with_protocol(endpoint, auth, true, timeouts, tls)?
                }
            }
        };
        reg.retry = retry;
        if sniffed.is_none() {
            reg.recognize().await?;
        }
        Ok(reg)
    }

    /// `GET /v2/` once, at connect ([`probe`]): fails here when the registry cannot be reached at all
    /// (not running, wrong address, untrusted certificate, plain HTTP where HTTPS is expected) or is
    /// no registry, instead of letting every later request find out and retry on its own. Tells
    /// whether anyone may come in. A registry that answered the plain sniff needs no such check.
    async fn recognize(&self) -> anyhow::Result<sniff::Access> {
        let host = &self.endpoint.host;
        let client = probe::client(self.tls.clone(), &self.timeouts)?;
        let what = format!("connect to {host}");
        let answer = self
            .run_retrying(&what, &what, || async {
                probe::get_v2(&client, host, self.plain_http)
                    .await
                    .map_err(|e| transport::bounded::request(host, &what, e))
            })
            .await;
        let answer = match answer {
            Ok(a) => a,
            Err(e) => return Err(self.plain_http_to_https(e).await),
        };
        match sniff::recognize(answer.status, answer.api_header) {
            sniff::Recognized::NotRegistry => Err(sniff::not_a_registry(host, &answer.status_line)),
            _ if answer.status == 200 => Ok(sniff::Access::Open),
            _ => Ok(sniff::Access::Guarded),
        }
    }

    /// `e`, or when the TLS handshake failed because the server answered in plain HTTP, an error that
    /// says so and how to allow it. Costs one plain request, only on this failure.
    async fn plain_http_to_https(&self, e: anyhow::Error) -> anyhow::Error {
        let handshake_failed = e
            .downcast_ref::<tls::TlsFailure>()
            .is_some_and(|f| !is_certificate_error(f.request_error()));
        if self.plain_http || !handshake_failed {
            return e;
        }
        let host = &self.endpoint.host;
        match sniff::plain_http(host, self.timeouts.request).await {
            Some(_) => anyhow::anyhow!(
                "{host} answered plain HTTP to an HTTPS request: use --insecure-registry {host} \
                 if this registry is meant to be plain HTTP"
            ),
            None => e,
        }
    }

    /// Connects with resolved credentials; messages about refused access name their source.
    pub async fn connect_with(
        endpoint: Endpoint,
        creds: auth::Credentials,
    ) -> anyhow::Result<Registry> {
        let source = creds.describe_source();
        let mut reg = Registry::connect(endpoint, creds.auth).await?;
        reg.auth_source = source;
        Ok(reg)
    }

    /// One `HEAD` of a blob, without credentials. Any HTTP answer over TLS (404, 401, ...)
    /// proves HTTPS; only a transport error disproves it. A server that accepts the connection and
    /// never answers is an error: neither protocol will do.
    async fn speaks_https(&self) -> anyhow::Result<bool> {
        let repo = self.endpoint.repository("cip-probe");
        let digest = format!("sha256:{}", "0".repeat(64));
        let head = self.transport.probe_blob(&repo, &digest);
        let answer = tokio::time::timeout(self.timeouts.request, head)
            .await
            .map_err(|_| self.no_answer("an HTTPS probe", Bound::Whole(self.timeouts.request)))?;
        Ok(match answer {
            Ok(_) => true,
            // A certificate we do not trust still proves TLS: keep HTTPS and say so later.
            Err(e) => e
                .request_error()
                .is_none_or(|re| re.status().is_some() || is_certificate_error(re)),
        })
    }

    pub fn plain_http(&self) -> bool {
        self.plain_http
    }

    fn with_protocol(
        endpoint: Endpoint,
        auth: RegistryAuth,
        plain_http: bool,
        timeouts: Timeouts,
        tls: rustls::ClientConfig,
    ) -> anyhow::Result<Registry> {
        // The trust of [`trust`] (the system's roots, --ca-cert, given certificates as they are).
        let transport =
            transport::Transport::new(&endpoint.host, plain_http, auth.clone(), tls.clone())?;
        Ok(Registry {
            transport,
            address: endpoint.address(),
            endpoint,
            auth,
            plain_http,
            retry: RetryPolicy::no_retry(),
            timeouts,
            auth_source: String::new(),
            uploads: Default::default(),
            tls,
        })
    }

    /// How this connection retries failed requests.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Replaces the retry policy (e.g. to send retry lines to a progress display, or in tests).
    pub fn set_retry_policy(&mut self, policy: RetryPolicy) {
        self.retry = policy;
    }

    /// Replaces the timeouts read from the environment at connect (e.g. in tests).
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.timeouts = timeouts;
    }

    /// `HOST[:PORT]`: what cip connects to (for messages about the connection).
    pub fn host(&self) -> &str {
        &self.endpoint.host
    }

    /// `HOST[:PORT][/PATH]`: the prefix of this registry's image names, what `REGISTRY` is for builds.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// `name:tag` of image `name`, in its repository `PATH/NAME`.
    pub fn tag_ref(&self, name: &str, tag: &str) -> Reference {
        Reference::with_tag(
            self.endpoint.host.clone(),
            self.endpoint.repository(name),
            tag.to_string(),
        )
    }

    /// `name@digest` of image `name`, in its repository `PATH/NAME`.
    pub fn digest_ref(&self, name: &str, digest: &str) -> Reference {
        Reference::with_digest(
            self.endpoint.host.clone(),
            self.endpoint.repository(name),
            digest.to_string(),
        )
    }

    /// Runs the request `f` makes, retrying it as [`Self::retry_policy`] says when it fails in a way
    /// that may go away (connection errors, timeouts, 429, 5xx; see [`retry`]). `what` names the
    /// request in retry lines and errors, e.g. `GET manifest localhost:5000/app:1.0.0`; it must not
    /// contain credentials. `f` is called once per attempt and must start the request from scratch
    /// (reopen files, restart streams). The last error is explained ([`Self::explain`]) and, when
    /// retries were made or allowed, says so: `after 5 attempts over 12.3s: ...`.
    pub async fn retrying<T, F, Fut>(&self, what: &str, f: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        self.run_retrying(what, what, f).await
    }

    /// [`Self::retrying`] for a request about `reference`: `verb reference` in retry lines, the
    /// reference in the explained error.
    pub(crate) async fn request<T, F, Fut>(
        &self,
        verb: &str,
        reference: &Reference,
        f: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        self.run_retrying(&format!("{verb} {reference}"), &reference.to_string(), f)
            .await
    }

    /// [`Self::retrying`] for a blob transfer: no bound on the whole attempt, only on its pauses
    /// (`CIP_READ_TIMEOUT_SECONDS`): a large blob takes the time it takes. `f` gets each attempt's
    /// [`pace::Pace`] and must pass the chunks it moves through [`pace::Pace::track`].
    pub(crate) async fn transfer<T, F, Fut>(
        &self,
        what: &str,
        subject: &str,
        f: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut(pace::Pace) -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        self.run_bounded(what, subject, Bound::Pauses(self.timeouts.read), f)
            .await
    }

    /// Runs `f` with retries, each attempt bounded by the request timeout.
    async fn run_retrying<T, F, Fut>(
        &self,
        what: &str,
        subject: &str,
        mut f: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let bound = Bound::Whole(self.timeouts.request);
        self.run_bounded(what, subject, bound, |_| f()).await
    }

    async fn run_bounded<T, F, Fut>(
        &self,
        what: &str,
        subject: &str,
        bound: Bound,
        mut f: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut(pace::Pace) -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let attempt = || {
            let pace = pace::Pace::default();
            let request = f(pace.clone());
            async move {
                match bound {
                    Bound::Whole(b) => match tokio::time::timeout(b, request).await {
                        Ok(r) => r.map_err(Attempt::Failed),
                        Err(_) => Err(Attempt::TimedOut),
                    },
                    Bound::Pauses(b) => tokio::select! {
                        r = request => r.map_err(Attempt::Failed),
                        _ = pace.stalled(b) => Err(Attempt::TimedOut),
                    },
                }
            }
        };
        match self
            .retry
            .run(what, Attempt::transient, Attempt::reason, attempt)
            .await
        {
            Ok(v) => Ok(v),
            Err(failure) => {
                let mention = failure.worth_mentioning().then(|| failure.exhausted());
                let e = match failure.error {
                    Attempt::Failed(e) => self.explain_subject(e, subject),
                    Attempt::TimedOut => self.no_answer(subject, bound),
                };
                Err(match mention {
                    Some(exhausted) => e.context(exhausted),
                    None => e,
                })
            }
        }
    }

    /// The error of a request that got no answer (or a transfer that stopped moving) within `bound`.
    fn no_answer(&self, subject: &str, bound: Bound) -> anyhow::Error {
        let host = &self.endpoint.host;
        match bound {
            Bound::Whole(waited) => anyhow::anyhow!(
                "no answer from {host} in {} ({subject}): the registry took the connection but did \
                 not answer; if it is only slow, raise {}",
                timeouts::show(waited),
                timeouts::REQUEST_ENV
            ),
            Bound::Pauses(waited) => anyhow::anyhow!(
                "no answer from {host} in {} ({subject}): the transfer stopped moving; if the \
                 registry is only slow, raise {}",
                timeouts::show(waited),
                timeouts::READ_ENV
            ),
        }
    }

    /// The raw manifest (or index) a tag points to, with its digest; None if the tag does not exist.
    pub async fn manifest_raw(
        &self,
        reference: &Reference,
    ) -> anyhow::Result<Option<(Bytes, String)>> {
        self.request("GET manifest", reference, || async {
            let found = self
                .transport
                .get_manifest(reference, MANIFEST_TYPES)
                .await?;
            Ok(found.map(|m| (m.bytes, m.digest)))
        })
        .await
    }

    /// The digest and media type of what `reference` names, without its bytes (a `HEAD`); None if
    /// it does not exist. Registries that send no `Docker-Content-Digest` are asked with a `GET`.
    pub async fn manifest_digest(&self, reference: &Reference) -> anyhow::Result<Option<String>> {
        let head = self
            .request("HEAD manifest", reference, || {
                self.transport.head_manifest(reference, MANIFEST_TYPES)
            })
            .await?;
        match head {
            None => Ok(None),
            Some(transport::manifest::Head {
                digest: Some(d), ..
            }) => Ok(Some(d)),
            Some(_) => Ok(self.manifest_raw(reference).await?.map(|(_, d)| d)),
        }
    }

    /// Every tag of image `name`'s repository (none if the registry does not know it).
    pub async fn tags(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let repo = self.endpoint.repository(name);
        let what = format!("GET tags {}/{repo}", self.endpoint.host);
        self.run_retrying(&what, &what, || self.transport.tags(&repo))
            .await
    }

    /// What `repo:tag` holds: which platforms, by which manifests. None if the tag does not exist.
    pub async fn published(&self, repo: &str, tag: &str) -> anyhow::Result<Option<Published>> {
        let reference = self.tag_ref(repo, tag);
        let Some((raw, digest)) = self.manifest_raw(&reference).await? else {
            return Ok(None);
        };
        self.described(repo, &raw, &digest).await.map(Some)
    }

    /// What the manifest or index `raw` (of `repo`, with `digest`) holds: which platforms, by which
    /// manifests. A single-platform manifest's platform is read from its config blob.
    pub async fn described(
        &self,
        repo: &str,
        raw: &[u8],
        digest: &str,
    ) -> anyhow::Result<Published> {
        let parsed = index::parse(raw, digest)?;
        let published = match parsed {
            index::Parsed::Index(p) => p,
            // A single-platform manifest: its platform is in the config blob.
            index::Parsed::Manifest {
                config_digest,
                entry,
            } => {
                let config = self.blob_bytes(repo, &config_digest).await?;
                index::single(entry, &config, digest)?
            }
        };
        Ok(published)
    }

    /// A small blob in memory (an image config, at most [`transport::bounded::CONFIG_LIMIT`]),
    /// checked against its digest. Each attempt downloads it from the start.
    pub async fn blob_bytes(&self, repo: &str, digest: &str) -> anyhow::Result<Vec<u8>> {
        let reference = self.digest_ref(repo, digest);
        let repo = reference.repository().to_string();
        self.request("GET blob", &reference, || async {
            let bytes = self
                .transport
                .get_blob_bytes(&repo, digest, transport::bounded::CONFIG)
                .await?;
            Ok(bytes.to_vec())
        })
        .await
    }

    /// Held while a blob of `repo` is looked up and uploaded, so two pushes through this connection
    /// (the platforms of one image often share a layer) never upload one blob to one repository at
    /// once. The registry (distribution 2.8, filesystem storage) rewrites the repository's link to a
    /// blob at the end of each upload, truncating it first; a manifest PUT that checks that blob
    /// meanwhile fails with "blob unknown". With the lock, the second push finds the blob and skips it.
    pub fn upload_lock(&self, repo: &str, digest: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        self.uploads.of(&format!("{repo}@{digest}"))
    }

    pub async fn blob_exists(&self, repo: &str, digest: &str) -> anyhow::Result<bool> {
        let reference = self.digest_ref(repo, digest);
        self.request("HEAD blob", &reference, || {
            self.transport.head_blob(reference.repository(), digest)
        })
        .await
    }

    /// Mounts blob `digest` from `from_repo` into `repo` of this registry (a cross-repository mount:
    /// no data moves). Returns false when the registry did not mount it (it lacks the blob in
    /// `from_repo`, or does not mount across repositories): it then answers 202 with an upload
    /// session, which is left to expire, and the caller uploads the blob instead.
    pub async fn mount_blob(
        &self,
        repo: &str,
        from_repo: &str,
        digest: &str,
    ) -> anyhow::Result<bool> {
        let target = self.digest_ref(repo, digest);
        let source = self.digest_ref(from_repo, digest);
        let what = format!("POST mount {target} from {from_repo}");
        self.run_retrying(&what, &target.to_string(), || async {
            let mounted = self
                .transport
                .mount_blob(target.repository(), source.repository(), digest)
                .await;
            match mounted {
                // A token registry may refuse the mount because the token does not cover the
                // source repository: upload instead.
                Err(e) if is_refused(&e) => Ok(false),
                other => other,
            }
        })
        .await
    }

    /// Starts downloading blob `digest` of `repo`: its size (from `Content-Length`) and its bytes as
    /// a stream, verified against the digest as it ends (a mismatch is the stream's last item, an
    /// error). Starting the download is retried; the stream itself is not (an error midway is an
    /// item): to copy a blob robustly, restart the download and the upload together, e.g. inside
    /// [`Self::retrying`] (the stream's items are registry errors, ready for an upload).
    pub async fn blob_stream(
        &self,
        repo: &str,
        digest: &str,
    ) -> anyhow::Result<(
        u64,
        impl Stream<Item = Result<Bytes, RegistryError>> + Send + 'static,
    )> {
        let reference = self.digest_ref(repo, digest);
        let download = self
            .request("GET blob", &reference, || {
                self.transport.get_blob(reference.repository(), digest)
            })
            .await?;
        let size = download.size.with_context(|| {
            format!(
                "registry {} sent blob {reference} without its size (Content-Length)",
                self.endpoint.host
            )
        })?;
        Ok((
            size,
            paced(download.stream, self.timeouts.read, &self.endpoint.host),
        ))
    }

    /// Pushes manifest bytes as they are (their digest is the digest of exactly these bytes).
    pub async fn put_manifest(
        &self,
        reference: &Reference,
        body: Bytes,
        media_type: &str,
    ) -> anyhow::Result<()> {
        self.request("PUT manifest", reference, || {
            self.transport
                .put_manifest(reference, body.clone(), media_type)
        })
        .await
    }

    /// Deletes manifest `digest` from `repo`, and with it every tag of `repo` that points to it.
    /// Registries may refuse deletes (distribution without `storage.delete.enabled`): that is an
    /// answer, not an error.
    pub async fn delete_manifest(&self, repo: &str, digest: &str) -> anyhow::Result<Deleted> {
        let reference = self.digest_ref(repo, digest);
        self.request("DELETE manifest", &reference, || async {
            match self.transport.delete_manifest(&reference).await {
                Ok(()) => Ok(Deleted::Deleted),
                Err(e) if is_not_found(&e) => Ok(Deleted::Absent),
                Err(e) if is_unsupported(&e) => Ok(Deleted::Unsupported),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// The registry's transport: single requests, not retried (for requests that move blobs
    /// inside [`Self::transfer`]).
    pub fn transport(&self) -> &transport::Transport {
        &self.transport
    }

    /// Turns a registry error into one that names the registry and says what to do.
    pub fn explain(&self, e: RegistryError, reference: &Reference) -> anyhow::Error {
        self.explain_subject(e, &reference.to_string())
    }

    /// [`Self::explain`] for a request about `subject` (a reference, or a description of the request).
    fn explain_subject(&self, e: RegistryError, subject: &str) -> anyhow::Error {
        let host = &self.endpoint.host;
        // Said instead of the registry's raw JSON, which only repeats it less clearly.
        if space::is_out_of_space(&e) {
            return anyhow::anyhow!(
                "registry {host} is out of space (its storage is full: {subject} was refused): free \
                 space on the registry's storage, or delete unused images and run its garbage \
                 collection, then push again"
            );
        }
        // Said alone: the client's own text only adds an internal URL (`.../v2/`).
        if let Some(why) = e.request_error().and_then(unreachable::why) {
            return anyhow::anyhow!("cannot reach registry {host}: {why}");
        }
        let refused = is_refused(&e);
        let what = match e.request_error() {
            _ if refused => {
                let tried = match &self.auth {
                    _ if !self.auth_source.is_empty() => format!("tried {}", self.auth_source),
                    RegistryAuth::Basic(..) => "tried a username and password".to_string(),
                    RegistryAuth::Bearer(t) if !t.is_empty() => "tried a bearer token".to_string(),
                    _ => "tried anonymously".to_string(),
                };
                format!(
                    "registry {host} refused access to {subject} ({tried}): check your credentials"
                )
            }
            // The limit's own sentence names the host, the request and the size.
            _ if matches!(e.kind, ErrorKind::TooLarge(_)) => return anyhow::Error::new(e),
            Some(re) if tls::is_ca_used_as_end_entity(re) => {
                format!(
                    "registry {host} presented a certificate marked as a CA (CA:TRUE) as its own, \
                     and it is not a certificate given with --ca-cert: pass that very certificate \
                     with --ca-cert FILE (or SSL_CERT_FILE), or issue the registry a certificate \
                     with CA:FALSE (for a self-signed one, add \
                     `-addext basicConstraints=critical,CA:FALSE` to `openssl req -x509`)"
                )
            }
            Some(re) if is_certificate_error(re) => {
                format!(
                    "registry {host} presented a TLS certificate that is not trusted: pass its CA with \
                     --ca-cert FILE (or SSL_CERT_FILE), or use --insecure-registry {host} for plain HTTP"
                )
            }
            Some(re) if tls::is_tls_failure(re) => format!(
                "the TLS handshake with registry {host} failed: does it speak HTTPS on this port? \
                 (--insecure-registry {host} allows plain HTTP)"
            ),
            Some(re) if re.is_timeout() => format!(
                "no answer from {host} in {} during {subject}: the registry stopped sending or \
                 answering; if it is only slow, raise {}",
                timeouts::show(self.timeouts.read),
                timeouts::READ_ENV
            ),
            // reqwest follows at most 10 redirects (and never takes credentials to another host).
            Some(re) if re.is_redirect() => format!(
                "registry {host} redirected {subject} too many times or in a loop: check the \
                 registry (or the proxy in front of it)"
            ),
            Some(re) if re.status().is_none() => {
                format!("the connection to registry {host} broke during {subject}")
            }
            _ => format!("registry {host}: {subject}"),
        };
        // A TLS failure is said by its cause: the client's own text only adds an internal URL.
        match tls::TlsFailure::of(e) {
            Ok(failure) => anyhow::Error::new(failure).context(what),
            Err(e) => anyhow::Error::new(e).context(what),
        }
    }
}

/// How long an attempt may take.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// The whole request (it moves no blob).
    Whole(std::time::Duration),
    /// Each pause of a transfer.
    Pauses(std::time::Duration),
}

/// `stream`, ending with an error when its next chunk takes longer than `bound`.
fn paced<S>(
    stream: S,
    bound: std::time::Duration,
    host: &str,
) -> impl Stream<Item = Result<Bytes, RegistryError>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, RegistryError>> + Send + Unpin + 'static,
{
    use futures_util::StreamExt as _;
    let stalled = format!(
        "no answer from {host} in {}: the download stopped moving; if the registry is only slow, \
         raise {}",
        timeouts::show(bound),
        timeouts::READ_ENV
    );
    let host = host.to_string();
    futures_util::stream::unfold(Some(stream), move |state| {
        let stalled = stalled.clone();
        let host = host.clone();
        async move {
            let mut stream = state?;
            match tokio::time::timeout(bound, stream.next()).await {
                Ok(Some(item)) => Some((item, Some(stream))),
                Ok(None) => None,
                // One error, then the end.
                Err(_) => {
                    let e = RegistryError::new(&host, "GET blob", ErrorKind::Stalled(stalled));
                    Some((Err(e), None))
                }
            }
        }
    })
}

/// One attempt's failure: the registry's error, or no answer within the request timeout.
enum Attempt {
    Failed(RegistryError),
    TimedOut,
}

impl Attempt {
    /// A request that got no answer is retried, as a dropped connection is.
    fn transient(&self) -> bool {
        match self {
            Attempt::Failed(e) => retry::is_transient(e),
            Attempt::TimedOut => true,
        }
    }

    fn reason(&self) -> String {
        match self {
            Attempt::Failed(e) => retry::reason(e),
            Attempt::TimedOut => "no answer".to_string(),
        }
    }
}

/// Whether the registry (or its token server) refused the credentials or their permissions.
fn is_refused(e: &RegistryError) -> bool {
    e.status().is_some_and(|s| matches!(s, 401 | 403))
        || e.has_code(&ErrorCode::Unauthorized)
        || e.has_code(&ErrorCode::Denied)
}

/// What a manifest delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// The repository did not hold it (any more).
    Absent,
    /// The registry does not delete (405, `UNSUPPORTED`).
    Unsupported,
}

/// A request the registry does not serve at all (405 Method Not Allowed, `UNSUPPORTED`).
fn is_unsupported(e: &RegistryError) -> bool {
    e.status() == Some(405) || e.has_code(&ErrorCode::Unsupported)
}

fn is_not_found(e: &RegistryError) -> bool {
    e.status() == Some(404)
        || e.has_code(&ErrorCode::ManifestUnknown)
        || e.has_code(&ErrorCode::NameUnknown)
}

/// Refuses registry addresses that are not `HOST[:PORT][/PATH]` (see [`address::Address::parse`]).
pub fn validate_host(address: &str) -> anyhow::Result<()> {
    address::Address::parse(address).map(drop)
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
