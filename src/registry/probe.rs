//! The connect-time `GET /v2/` over the registry's own protocol (HTTPS, or plain HTTP where it is
//! allowed and the raw sniff could not settle it): the answer's status and headers tell a registry
//! from another web server, and an open registry (200) from one that wants credentials.
//!
//! It goes through a small reqwest client of its own, with the same trust ([`super::trust`]) and the
//! request timeout, before the registry's transport is chosen.
use reqwest::header::HeaderMap;

use super::sniff::{self, API_VERSION_HEADER};
use super::timeouts::Timeouts;

/// The HTTP client of the probe, with the connection's TLS configuration ([`super::trust`]).
pub fn client(tls: rustls::ClientConfig, timeouts: &Timeouts) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(super::CONNECT_TIMEOUT)
        .timeout(timeouts.request)
        .user_agent("cip")
        .build()?)
}

/// What `GET /v2/` answered.
pub async fn get_v2(
    client: &reqwest::Client,
    host: &str,
    plain_http: bool,
) -> Result<sniff::Answer, reqwest::Error> {
    let scheme = if plain_http { "http" } else { "https" };
    let res = client.get(format!("{scheme}://{host}/v2/")).send().await?;
    let status = res.status();
    Ok(sniff::Answer {
        status: status.as_u16(),
        status_line: format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .trim_end()
        .to_string(),
        api_header: has_api_header(res.headers()),
    })
}

fn has_api_header(headers: &HeaderMap) -> bool {
    headers.contains_key(API_VERSION_HEADER)
}
