//! cip's own client of the distribution API: one reqwest client with cip's TLS trust
//! ([`super::trust`]), the registry's authentication (anonymous, Basic, or Bearer tokens from its
//! token server, cached per scope) and one file per remote operation ([`manifest`], [`blob`],
//! [`mount`], [`upload`], [`tags`]). Each call is one attempt: retries, timeouts and the words of
//! errors are [`super::Registry`]'s. What it reads into memory is bounded ([`bounded`]).
//!
//! Requests go out without credentials until the registry asks for them (a 401 with
//! `WWW-Authenticate`): an open registry costs no extra round trip, and the scheme it asks for is
//! remembered, so later requests carry the Basic header or the scope's token from the start.
//! Redirects follow reqwest's policy: at most 10, and the `Authorization` header is dropped when a
//! redirect leads to another host, port or scheme.
pub mod blob;
pub mod bounded;
mod challenge;
pub mod manifest;
pub mod mount;
pub mod tags;
mod token;
pub mod upload;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use reqwest::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::StatusCode;

use super::auth::RegistryAuth;
use super::error::{parse_envelope, ErrorKind, RegistryError};
use super::locks::KeyedLocks;
use challenge::Challenge;

/// The access a request needs, as token servers grant it: `repository:NAME:ACTIONS` entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope(Vec<String>);

impl Scope {
    /// No repository (`GET /v2/`).
    pub fn none() -> Scope {
        Scope::default()
    }

    pub fn pull(repo: &str) -> Scope {
        Scope(vec![format!("repository:{repo}:pull")])
    }

    pub fn push(repo: &str) -> Scope {
        Scope(vec![format!("repository:{repo}:pull,push")])
    }

    pub fn delete(repo: &str) -> Scope {
        Scope(vec![format!("repository:{repo}:delete")])
    }

    /// Pushing to `to` and reading `from`: a cross-repository mount needs both.
    pub fn mount(to: &str, from: &str) -> Scope {
        let mut s = Scope::push(to);
        s.0.push(format!("repository:{from}:pull"));
        s
    }

    fn key(&self) -> String {
        self.0.join(" ")
    }
}

/// A connection to one registry over one protocol.
pub struct Transport {
    client: reqwest::Client,
    /// `https://HOST[:PORT]` or `http://HOST[:PORT]`.
    base: String,
    host: String,
    auth: RegistryAuth,
    state: Mutex<AuthState>,
    /// One token request per scope at a time: concurrent requests wait for its token.
    fetching: KeyedLocks<()>,
}

#[derive(Default)]
struct AuthState {
    /// What the registry asked for in its last 401; None while it asked for nothing.
    challenge: Option<Challenge>,
    tokens: HashMap<String, token::Token>,
}

impl Transport {
    /// A client for `host` over HTTPS, or plain HTTP when `plain_http`, trusting as `tls` says.
    /// No overall timeout: [`super::Registry`] bounds requests as wholes and transfers by their
    /// pauses.
    pub fn new(
        host: &str,
        plain_http: bool,
        auth: RegistryAuth,
        tls: rustls::ClientConfig,
    ) -> anyhow::Result<Transport> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(super::CONNECT_TIMEOUT)
            .user_agent(concat!("cip/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot create the registry client: {e}"))?;
        let scheme = if plain_http { "http" } else { "https" };
        Ok(Transport {
            client,
            base: format!("{scheme}://{host}"),
            host: host.to_string(),
            auth,
            state: Mutex::default(),
            fetching: KeyedLocks::default(),
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// `BASE/v2/PATH`.
    fn url(&self, path: &str) -> String {
        format!("{}/v2/{path}", self.base)
    }

    /// Sends the request `build` makes, authenticated as the registry asked before; on a 401 that
    /// names a scheme, learns it, authenticates (a token for `scope`, or Basic) and sends the
    /// request once more. `build` must make the same request each time (no streamed body: see
    /// [`Self::send_once`]). Answers of any status are returned; only transport failures and
    /// token refusals are errors.
    async fn send(
        &self,
        operation: &str,
        scope: &Scope,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let sent = self.authorization(operation, scope).await?;
        let res = self
            .execute(operation, build(&self.client), sent.as_ref())
            .await?;
        if res.status() != StatusCode::UNAUTHORIZED {
            return Ok(res);
        }
        let Some(challenge) = res
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(challenge::parse)
        else {
            return Ok(res);
        };
        {
            let mut state = self.lock();
            state.challenge = Some(challenge);
            // Refused with it: expired, or granting less than the request needs.
            state.tokens.remove(&scope.key());
        }
        match self.authorization(operation, scope).await? {
            Some(again) if Some(&again) != sent.as_ref() => {
                self.execute(operation, build(&self.client), Some(&again))
                    .await
            }
            _ => Ok(res),
        }
    }

    /// Sends `request` once, with the authorization learned so far (for a streamed body, which
    /// cannot be sent twice: an upload learns it from the POST that opens its session).
    async fn send_once(
        &self,
        operation: &str,
        scope: &Scope,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let auth = self.authorization(operation, scope).await?;
        self.execute(operation, request, auth.as_ref()).await
    }

    async fn execute(
        &self,
        operation: &str,
        request: reqwest::RequestBuilder,
        auth: Option<&HeaderValue>,
    ) -> Result<reqwest::Response, RegistryError> {
        let request = match auth {
            Some(value) => request.header(AUTHORIZATION, value.clone()),
            None => request,
        };
        request
            .send()
            .await
            .map_err(|e| bounded::request(&self.host, operation, e))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AuthState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `Authorization` header for a request needing `scope`, as the registry's challenge asks;
    /// None while it asked for nothing, or when there is nothing to send (anonymous Basic).
    async fn authorization(
        &self,
        operation: &str,
        scope: &Scope,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let challenge = self.lock().challenge.clone();
        let value = match (challenge, &self.auth) {
            (None, _) => return Ok(None),
            (Some(_), RegistryAuth::Bearer(token)) => format!("Bearer {token}"),
            (Some(Challenge::Basic), RegistryAuth::Basic(user, password)) => {
                token::basic(user, password)
            }
            (Some(Challenge::Basic), _) => return Ok(None),
            (
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope: asked,
                }),
                _,
            ) => {
                let scopes = match scope.0.is_empty() {
                    true => asked.into_iter().collect(),
                    false => scope.0.clone(),
                };
                let token = self
                    .token(operation, &realm, service.as_deref(), &scopes)
                    .await?;
                format!("Bearer {token}")
            }
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            RegistryError::new(
                &self.host,
                operation,
                ErrorKind::Protocol("the credentials cannot be sent in an HTTP header".into()),
            )
        })?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    /// A token for `scopes` from the cache, or from the token server at `realm`.
    async fn token(
        &self,
        operation: &str,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String, RegistryError> {
        let key = scopes.join(" ");
        let cached = |t: &Self| {
            t.lock()
                .tokens
                .get(&key)
                .filter(|t| t.until > Instant::now())
                .map(|t| t.value.clone())
        };
        if let Some(token) = cached(self) {
            return Ok(token);
        }
        let lock = self.fetching.of(&key);
        let _one_at_a_time = lock.lock().await;
        if let Some(token) = cached(self) {
            return Ok(token);
        }
        let fetched =
            token::fetch(&self.client, operation, realm, service, scopes, &self.auth).await?;
        let value = fetched.value.clone();
        self.lock().tokens.insert(key, fetched);
        Ok(value)
    }
}

/// The error of an answer with status `res.status()`, its envelope read from a bounded body.
pub async fn status_error(
    host: &str,
    operation: &str,
    mut res: reqwest::Response,
) -> RegistryError {
    let status = res.status().as_u16();
    let body = bounded::error_body(&mut res).await;
    RegistryError::new(
        host,
        operation,
        ErrorKind::Status {
            status,
            errors: parse_envelope(&body),
            body: String::from_utf8_lossy(&body).into_owned(),
        },
    )
}
