//! The tags of a repository: `GET /v2/REPO/tags/list?n=N`, page after page as the `Link` header
//! (`<URL>; rel="next"`) leads, each page bounded like a manifest.
use reqwest::StatusCode;
use serde::Deserialize;

use super::{bounded, status_error, Scope, Transport};
use crate::registry::error::{ErrorKind, RegistryError};

/// Tags asked per page.
const PAGE: usize = 1000;
/// Pages followed at most: a registry whose `next` links go round in circles stops here.
const MAX_PAGES: usize = 10_000;

#[derive(Deserialize)]
struct Page {
    tags: Option<Vec<String>>,
}

impl Transport {
    /// Every tag of `repo`, in the registry's order; none for a repository it does not know.
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>, RegistryError> {
        let op = format!("GET tags {}/{repo}", self.host);
        let mut url = format!("{}?n={PAGE}", self.url(&format!("{repo}/tags/list")));
        let mut tags = Vec::new();
        for _ in 0..MAX_PAGES {
            let res = self.send(&op, &Scope::pull(repo), |c| c.get(&url)).await?;
            if res.status() == StatusCode::NOT_FOUND {
                bounded::drain(res).await;
                return Ok(tags);
            }
            if !res.status().is_success() {
                return Err(status_error(&self.host, &op, res).await);
            }
            let next = next_link(&res);
            let body = bounded::read(res, bounded::MANIFEST, &self.host, &op).await?;
            let page: Page = serde_json::from_slice(&body).map_err(|e| {
                RegistryError::new(
                    &self.host,
                    &op,
                    ErrorKind::Protocol(format!("the tag list is not JSON of tags: {e}")),
                )
            })?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(link) => url = self.resolve(&link, &op)?,
                None => return Ok(tags),
            }
        }
        Err(RegistryError::new(
            &self.host,
            &op,
            ErrorKind::Protocol(format!("more than {MAX_PAGES} pages of tags")),
        ))
    }

    /// `link` (absolute, or a path on this registry) as a URL on this registry.
    pub(super) fn resolve(&self, link: &str, op: &str) -> Result<String, RegistryError> {
        let url = reqwest::Url::parse(&self.base).and_then(|base| base.join(link));
        url.map(String::from).map_err(|_| {
            RegistryError::new(
                &self.host,
                op,
                ErrorKind::Protocol(format!(
                    "the registry sent a location that is no URL: {link:?}"
                )),
            )
        })
    }
}

/// The target of `Link: <URL>; rel="next"`, if any.
fn next_link(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find(|l| l.contains("rel=\"next\"") || l.contains("rel=next"))
        .and_then(|l| Some(l.split_once('<')?.1.split_once('>')?.0.to_string()))
}
