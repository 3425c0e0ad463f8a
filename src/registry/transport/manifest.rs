//! Manifests and indexes: `HEAD`, `GET` (raw bytes, read up to [`bounded::MANIFEST_LIMIT`]),
//! `PUT` (the exact bytes given) and `DELETE` by digest, on `/v2/REPO/manifests/REFERENCE`.
use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;

use super::{bounded, status_error, Scope, Transport};
use crate::registry::error::{ErrorKind, RegistryError};
use crate::registry::index::sha256_digest;
use crate::registry::reference::Reference;

/// A manifest as the registry holds it.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub bytes: Bytes,
    /// The answer's `Content-Type`, else the document's own `mediaType`.
    pub media_type: String,
    /// The digest of exactly these bytes.
    pub digest: String,
}

/// What a `HEAD` tells of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// `Docker-Content-Digest`, as the registry sent it.
    pub digest: Option<String>,
    pub media_type: Option<String>,
    pub size: Option<u64>,
}

impl Transport {
    fn manifest_url(&self, r: &Reference) -> String {
        self.url(&format!("{}/manifests/{}", r.repository(), r.reference()))
    }

    /// The manifest `r` names, or None when the registry has no such one (404). Fetched by digest,
    /// its bytes must have that digest.
    pub async fn get_manifest(
        &self,
        r: &Reference,
        accept: &[&str],
    ) -> Result<Option<Manifest>, RegistryError> {
        let op = format!("GET manifest {r}");
        let url = self.manifest_url(r);
        let accept = accept.join(", ");
        let res = self
            .send(&op, &Scope::pull(r.repository()), |c| {
                c.get(&url).header(ACCEPT, &accept)
            })
            .await?;
        if res.status() == StatusCode::NOT_FOUND {
            bounded::drain(res).await;
            return Ok(None);
        }
        if !res.status().is_success() {
            return Err(status_error(&self.host, &op, res).await);
        }
        let content_type = media_type(&res);
        let bytes = bounded::read(res, bounded::MANIFEST, &self.host, &op).await?;
        let digest = sha256_digest(&bytes);
        if let Some(asked) = r.digest().filter(|d| *d != digest) {
            return Err(RegistryError::new(
                &self.host,
                &op,
                ErrorKind::DigestMismatch {
                    expected: asked.to_string(),
                    actual: digest,
                },
            ));
        }
        let media_type = content_type
            .or_else(|| document_media_type(&bytes))
            .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".to_string());
        Ok(Some(Manifest {
            bytes,
            media_type,
            digest,
        }))
    }

    /// What the registry says of manifest `r` without sending it; None when it has no such one.
    pub async fn head_manifest(
        &self,
        r: &Reference,
        accept: &[&str],
    ) -> Result<Option<Head>, RegistryError> {
        let op = format!("HEAD manifest {r}");
        let url = self.manifest_url(r);
        let accept = accept.join(", ");
        let res = self
            .send(&op, &Scope::pull(r.repository()), |c| {
                c.head(&url).header(ACCEPT, &accept)
            })
            .await?;
        match res.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(Head {
                digest: res
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                media_type: media_type(&res),
                size: res.content_length(),
            })),
            _ => Err(status_error(&self.host, &op, res).await),
        }
    }

    /// Puts `body` as it is under `r` (a tag, or its digest).
    pub async fn put_manifest(
        &self,
        r: &Reference,
        body: Bytes,
        media_type: &str,
    ) -> Result<(), RegistryError> {
        let op = format!("PUT manifest {r}");
        let url = self.manifest_url(r);
        let res = self
            .send(&op, &Scope::push(r.repository()), |c| {
                c.put(&url)
                    .header(CONTENT_TYPE, media_type)
                    .body(body.clone())
            })
            .await?;
        if !res.status().is_success() {
            return Err(status_error(&self.host, &op, res).await);
        }
        Ok(())
    }

    /// Deletes manifest `r` (by digest): any error status is an error, 404 and 405 included.
    pub async fn delete_manifest(&self, r: &Reference) -> Result<(), RegistryError> {
        let op = format!("DELETE manifest {r}");
        let url = self.manifest_url(r);
        let res = self
            .send(&op, &Scope::delete(r.repository()), |c| c.delete(&url))
            .await?;
        if !res.status().is_success() {
            return Err(status_error(&self.host, &op, res).await);
        }
        Ok(())
    }
}

/// The answer's `Content-Type` without parameters, if any.
fn media_type(res: &reqwest::Response) -> Option<String> {
    let value = res.headers().get(CONTENT_TYPE)?.to_str().ok()?;
    let media_type = value.split(';').next()?.trim();
    (!media_type.is_empty()).then(|| media_type.to_string())
}

fn document_media_type(bytes: &[u8]) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    Some(doc.get("mediaType")?.as_str()?.to_string())
}
