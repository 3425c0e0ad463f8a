//! One connection to one registry for a run: its validated address, the credentials resolved once
//! (from the environment, podman's auth.json or docker's config.json), and what builders that pull
//! from it are handed: a private auth file for credentials given in the environment, and a
//! directory of the CA certificates given with `--ca-cert`. Shared by the building commands,
//! `plan`, `status` and the mirror commands.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;

use crate::builders::RegistryAccess;
use crate::events::{Event, Events};
use crate::options::ConnectOptions;
use crate::registry::{self, auth, Endpoint, Registry};

/// A registry connection with what builders need to reach the same registry.
pub struct Session {
    pub registry: Arc<Registry>,
    /// Credentials given in the environment, as a `config.json` builders read.
    auth_dir: Option<tempfile::TempDir>,
    /// The `--ca-cert` files, as `*.crt` for buildah's `--cert-dir`.
    cert_dir: Option<tempfile::TempDir>,
}

impl Session {
    /// Connects for reading and writing the registry; builders get nothing. Which credentials
    /// are used, and retries, are reported to `events`.
    pub async fn open(
        address: &str,
        c: &ConnectOptions,
        events: &Events,
    ) -> anyhow::Result<Session> {
        Ok(Session {
            registry: Arc::new(connect(address, c, events).await?),
            auth_dir: None,
            cert_dir: None,
        })
    }

    /// Connects as [`Session::open`] does, and prepares what builders that pull from the registry
    /// need; the credentials are resolved once for both.
    pub async fn open_for_builds(
        address: &str,
        c: &ConnectOptions,
        events: &Events,
    ) -> anyhow::Result<Session> {
        let (registry, auth_dir) = connect_for_builds(address, c, events).await?;
        Ok(Session {
            registry: Arc::new(registry),
            auth_dir,
            cert_dir: cert_dir(&c.temp_dir, &c.ca_certs)?,
        })
    }

    /// How builders reach this registry.
    pub fn access(&self) -> RegistryAccess {
        RegistryAccess {
            insecure: self.registry.plain_http(),
            cert_dir: self.cert_dir.as_ref().map(|d| d.path().to_path_buf()),
            auth_dir: self.auth_dir.as_ref().map(|d| d.path().to_path_buf()),
        }
    }
}

/// Connects to the registry at `address` (`HOST[:PORT][/PATH]`) with the run's TLS settings and
/// credentials.
async fn connect(address: &str, c: &ConnectOptions, events: &Events) -> anyhow::Result<Registry> {
    let ep = reporting(endpoint(address, c)?, events);
    let creds = credentials(&ep.host, c, events)?;
    connect_as(ep, creds).await
}

/// Connects as `connect` does, and also hands the credentials to builders that will pull from the
/// registry (see `builder_auth_dir`); the credentials are resolved once for both.
async fn connect_for_builds(
    address: &str,
    c: &ConnectOptions,
    events: &Events,
) -> anyhow::Result<(Registry, Option<tempfile::TempDir>)> {
    let ep = reporting(endpoint(address, c)?, events);
    let creds = credentials(&ep.host, c, events)?;
    let auth_dir = builder_auth_dir(&c.temp_dir, &ep.host, &creds)?;
    Ok((connect_as(ep, creds).await?, auth_dir))
}

/// The credentials for `host` (`HOST[:PORT]`, never a path: credentials belong to the host); says
/// where they come from (never what they are).
fn credentials(
    host: &str,
    c: &ConnectOptions,
    events: &Events,
) -> anyhow::Result<auth::Credentials> {
    let options = auth::Options {
        no_login: c.no_login,
    };
    let creds = auth::resolve(host, &options)?;
    // One short line; where cip looked only with --verbose (or in the error of a refused login).
    events.report(Event::Note(&format!(
        "registry {host}: {}",
        creds.summary()
    )));
    events.report(Event::Detail(&format!(
        "registry {host}: {}",
        creds.describe_source()
    )));
    Ok(creds)
}

/// `ep` with its retries reported to `events`.
fn reporting(mut ep: Endpoint, events: &Events) -> Endpoint {
    ep.retry = ep.retry.reporting_to(events.clone());
    ep
}

async fn connect_as(ep: Endpoint, creds: auth::Credentials) -> anyhow::Result<Registry> {
    let started = std::time::Instant::now();
    let reg = Registry::connect_with(ep, creds).await;
    crate::output::timing("registry connection", started);
    reg
}

/// The validated endpoint of `address`, before anything prints it (it may carry a password, which
/// validation refuses without echoing it). `--insecure-registry` names hosts: a path given with one
/// is ignored.
pub fn endpoint(address: &str, c: &ConnectOptions) -> anyhow::Result<Endpoint> {
    let mut e = Endpoint::parse(address)?;
    e.insecure_hosts = c
        .insecure_registries
        .iter()
        .map(|h| {
            registry::address::split(h.trim_end_matches('/'))
                .0
                .to_string()
        })
        .collect();
    e.ca_certs = c.ca_certs.clone();
    if let Some(f) = &c.ssl_cert_file {
        e.ca_certs.push(f.clone());
    }
    e.retry = c.retry.clone();
    e.timeouts = c.timeouts;
    Ok(e)
}

/// Credentials given in the environment, written where builders look for them (see
/// `RegistryAccess::auth_dir`), readable by the owner only. None when builders find them on their own.
fn builder_auth_dir(
    temp_dir: &Path,
    host: &str,
    creds: &auth::Credentials,
) -> anyhow::Result<Option<tempfile::TempDir>> {
    use base64::Engine as _;
    use std::os::unix::fs::PermissionsExt;
    let (auth::Source::Env, auth::RegistryAuth::Basic(user, password)) =
        (&creds.source, &creds.auth)
    else {
        return Ok(None);
    };
    let dir = crate::scratch::private_dir(temp_dir, "auth")?;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        serde_json::json!({"auths": {host: {"auth": token}}}).to_string(),
    )?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(Some(dir))
}

/// Copies the CA files into a directory as `*.crt`, the form buildah's `--cert-dir` reads.
fn cert_dir(temp_dir: &Path, ca_certs: &[PathBuf]) -> anyhow::Result<Option<tempfile::TempDir>> {
    if ca_certs.is_empty() {
        return Ok(None);
    }
    let dir = crate::scratch::private_dir(temp_dir, "certs")?;
    for (i, c) in ca_certs.iter().enumerate() {
        std::fs::copy(c, dir.path().join(format!("ca-{i}.crt")))
            .with_context(|| format!("cannot read CA certificate {}", c.display()))?;
    }
    Ok(Some(dir))
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
