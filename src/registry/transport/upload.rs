//! Blob uploads: `POST /v2/REPO/blobs/uploads/` opens a session (its `Location`); with a known
//! size, one `PUT LOCATION?digest=D` carries the whole blob as a stream; without one, `PATCH`es
//! of [`CHUNK`] bytes (the stream's items coalesced) then an empty `PUT ...?digest=D` close it.
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;

use super::{status_error, Scope, Transport};
use crate::registry::error::{ErrorKind, RegistryError};

/// Bytes per `PATCH` of an upload of unknown size.
pub const CHUNK: usize = 8 << 20;

const OCTETS: &str = "application/octet-stream";

impl Transport {
    /// Uploads blob `digest` to `repo` from `body`, of `size` bytes if known. The registry checks
    /// the digest when the upload closes.
    pub async fn push_blob<S, E>(
        &self,
        repo: &str,
        digest: &str,
        body: S,
        size: Option<u64>,
    ) -> Result<(), RegistryError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        let op = format!("PUT blob {}/{repo}@{digest}", self.host);
        let scope = Scope::push(repo);
        let location = self.open_session(&op, &scope, repo).await?;
        let location = match size {
            Some(size) => {
                let request = self
                    .client
                    .put(self.with_digest(&location, digest, &op)?)
                    .header(CONTENT_TYPE, OCTETS)
                    .header(CONTENT_LENGTH, size)
                    .body(reqwest::Body::wrap_stream(body));
                let res = self.send_once(&op, &scope, request).await?;
                return closed(&self.host, &op, res).await;
            }
            None => self.patch_chunks(&op, &scope, location, body).await?,
        };
        let request = self
            .client
            .put(self.with_digest(&location, digest, &op)?)
            .header(CONTENT_LENGTH, 0);
        let res = self.send_once(&op, &scope, request).await?;
        closed(&self.host, &op, res).await
    }

    /// A new upload session of `repo`: where to send its bytes.
    async fn open_session(
        &self,
        op: &str,
        scope: &Scope,
        repo: &str,
    ) -> Result<String, RegistryError> {
        let url = self.url(&format!("{repo}/blobs/uploads/"));
        let res = self
            .send(op, scope, |c| c.post(&url).header(CONTENT_LENGTH, 0))
            .await?;
        if res.status() != StatusCode::ACCEPTED {
            return Err(status_error(&self.host, op, res).await);
        }
        self.location(&res, op)
    }

    /// Sends `body` in `PATCH`es of [`CHUNK`] bytes; returns the session's last location.
    async fn patch_chunks<S, E>(
        &self,
        op: &str,
        scope: &Scope,
        mut location: String,
        body: S,
    ) -> Result<String, RegistryError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        let mut body = Box::pin(body);
        let mut offset = 0u64;
        let mut pending = BytesMut::new();
        loop {
            let item = body.next().await;
            let end = item.is_none();
            if let Some(item) = item {
                let chunk = item.map_err(|e| {
                    let why = e.into().to_string();
                    RegistryError::new(&self.host, op, ErrorKind::Io(std::io::Error::other(why)))
                })?;
                pending.extend_from_slice(&chunk);
            }
            let full = pending.len() >= CHUNK || (end && !pending.is_empty());
            if !full {
                if end {
                    return Ok(location);
                }
                continue;
            }
            let piece = pending.split().freeze();
            let last = offset + piece.len() as u64 - 1;
            let request = self
                .client
                .patch(&location)
                .header(CONTENT_TYPE, OCTETS)
                .header("content-range", format!("{offset}-{last}"))
                .header(CONTENT_LENGTH, piece.len())
                .body(piece.clone());
            let res = self.send_once(op, scope, request).await?;
            if res.status() != StatusCode::ACCEPTED {
                return Err(status_error(&self.host, op, res).await);
            }
            location = self.location(&res, op)?;
            offset = last + 1;
            if end {
                return Ok(location);
            }
        }
    }

    /// The `Location` of an upload answer, as a URL.
    fn location(&self, res: &reqwest::Response, op: &str) -> Result<String, RegistryError> {
        let link = res
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                RegistryError::new(
                    &self.host,
                    op,
                    ErrorKind::Protocol("the upload answer has no Location".into()),
                )
            })?;
        self.resolve(link, op)
    }

    /// `location` with `digest=DIGEST` added to its query.
    fn with_digest(&self, location: &str, digest: &str, op: &str) -> Result<String, RegistryError> {
        let mut url = reqwest::Url::parse(location).map_err(|_| {
            RegistryError::new(
                &self.host,
                op,
                ErrorKind::Protocol(format!("the upload location is no URL: {location:?}")),
            )
        })?;
        url.query_pairs_mut().append_pair("digest", digest);
        Ok(url.into())
    }
}

/// The end of an upload: 201 Created, else the registry's error.
async fn closed(host: &str, op: &str, res: reqwest::Response) -> Result<(), RegistryError> {
    if res.status().is_success() {
        Ok(())
    } else {
        Err(status_error(host, op, res).await)
    }
}
