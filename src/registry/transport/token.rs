//! The token flow of a Bearer challenge (the distribution token protocol, as Docker Hub, GHCR,
//! GitLab and Harbor use it): `GET REALM?service=S&scope=repository:R:pull,push`, with the user's
//! username and password as HTTP Basic if there are any, answers `{"token": JWT, "expires_in": N}`.
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::StatusCode;
use serde::Deserialize;

use super::bounded;
use crate::registry::auth::RegistryAuth;
use crate::registry::error::{ErrorKind, RegistryError};

/// What the protocol says a token lasts when the answer does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
/// The longest a token is kept, whatever the answer says.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Taken off a token's lifetime, so that it is not sent just as it expires.
const MARGIN: Duration = Duration::from_secs(5);

pub struct Token {
    pub value: String,
    pub until: Instant,
}

#[derive(Deserialize)]
struct Answer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// A token for `scopes` from the token server at `realm`. A refusal (401, 403) is an error with
/// that status, which [`crate::registry::Registry`] reports as refused access.
pub async fn fetch(
    client: &reqwest::Client,
    operation: &str,
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    auth: &RegistryAuth,
) -> Result<Token, RegistryError> {
    let url = reqwest::Url::parse(realm).map_err(|_| {
        RegistryError::new(
            "",
            operation,
            ErrorKind::Protocol(format!(
                "the registry names a token server that is no URL ({realm:?})"
            )),
        )
    })?;
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or("")),
        None => url.host_str().unwrap_or("").to_string(),
    };
    let what = format!("token for {operation}");
    let mut query: Vec<(&str, &str)> = Vec::new();
    if let Some(service) = service {
        query.push(("service", service));
    }
    query.extend(scopes.iter().map(|s| ("scope", s.as_str())));
    let mut request = client.get(url).query(&query);
    if let RegistryAuth::Basic(user, password) = auth {
        request = request.basic_auth(user, Some(password));
    }
    let res = request
        .send()
        .await
        .map_err(|e| bounded::request(&host, &what, e))?;
    if res.status() != StatusCode::OK {
        return Err(super::status_error(&host, &what, res).await);
    }
    let body = bounded::read(res, bounded::TOKEN, &host, &what).await?;
    // No serde detail in the message: the body is a secret.
    let answer: Answer = serde_json::from_slice(&body).map_err(|_| {
        RegistryError::new(
            &host,
            &what,
            ErrorKind::Protocol("the token server's answer is not the JSON of a token".into()),
        )
    })?;
    let value = answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            RegistryError::new(
                &host,
                &what,
                ErrorKind::Protocol("the token server's answer holds no token".into()),
            )
        })?;
    // Bounded: an absurd `expires_in` must not overflow the clock.
    let lifetime = answer
        .expires_in
        .map_or(DEFAULT_LIFETIME, Duration::from_secs)
        .min(MAX_LIFETIME);
    Ok(Token {
        value,
        until: Instant::now() + lifetime.saturating_sub(MARGIN),
    })
}
