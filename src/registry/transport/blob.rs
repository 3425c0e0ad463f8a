//! Blobs: `HEAD` (is it there), `GET` as a stream checked against its digest as it ends, and
//! `GET` of a small blob (a config) into memory, bounded.
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::StatusCode;
use sha2::{Digest as _, Sha256};

use super::bounded::{self, Limit};
use super::{status_error, Scope, Transport};
use crate::registry::error::{ErrorKind, RegistryError};

/// A blob being downloaded.
pub struct Download<S> {
    /// `Content-Length`, if the registry sent it.
    pub size: Option<u64>,
    /// The bytes; the last item is an error if their digest is not the blob's.
    pub stream: S,
}

impl Transport {
    fn blob_url(&self, repo: &str, digest: &str) -> String {
        self.url(&format!("{repo}/blobs/{digest}"))
    }

    /// Whether `repo` holds blob `digest`.
    pub async fn head_blob(&self, repo: &str, digest: &str) -> Result<bool, RegistryError> {
        let op = format!("HEAD blob {}/{repo}@{digest}", self.host);
        let url = self.blob_url(repo, digest);
        let res = self.send(&op, &Scope::pull(repo), |c| c.head(&url)).await?;
        match res.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_error(&self.host, &op, res).await),
        }
    }

    /// One `HEAD` of a blob with no credentials and no second try, whatever it answers (the
    /// protocol probe of `connect`: any HTTP answer proves the protocol).
    pub async fn probe_blob(&self, repo: &str, digest: &str) -> Result<u16, RegistryError> {
        let op = format!("HEAD blob {}/{repo}@{digest}", self.host);
        let request = self.client.head(self.blob_url(repo, digest));
        let res = self.execute(&op, request, None).await?;
        Ok(res.status().as_u16())
    }

    /// Starts downloading blob `digest` of `repo`.
    pub async fn get_blob(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<
        Download<impl Stream<Item = Result<Bytes, RegistryError>> + Send + Unpin + 'static>,
        RegistryError,
    > {
        let op = format!("GET blob {}/{repo}@{digest}", self.host);
        let res = self.get_blob_answer(&op, repo, digest).await?;
        let size = res.content_length();
        Ok(Download {
            size,
            stream: verified(res, digest, &self.host, &op),
        })
    }

    /// Blob `digest` of `repo` in memory, at most `limit` bytes, checked against its digest.
    pub async fn get_blob_bytes(
        &self,
        repo: &str,
        digest: &str,
        limit: Limit,
    ) -> Result<Bytes, RegistryError> {
        let op = format!("GET blob {}/{repo}@{digest}", self.host);
        let res = self.get_blob_answer(&op, repo, digest).await?;
        let bytes = bounded::read(res, limit, &self.host, &op).await?;
        let actual = crate::registry::index::sha256_digest(&bytes);
        if digest.starts_with("sha256:") && actual != digest {
            return Err(mismatch(&self.host, &op, digest, actual));
        }
        Ok(bytes)
    }

    async fn get_blob_answer(
        &self,
        op: &str,
        repo: &str,
        digest: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let url = self.blob_url(repo, digest);
        let res = self.send(op, &Scope::pull(repo), |c| c.get(&url)).await?;
        if !res.status().is_success() {
            return Err(status_error(&self.host, op, res).await);
        }
        Ok(res)
    }
}

fn mismatch(host: &str, op: &str, expected: &str, actual: String) -> RegistryError {
    RegistryError::new(
        host,
        op,
        ErrorKind::DigestMismatch {
            expected: expected.to_string(),
            actual,
        },
    )
}

/// The body of `res`, hashed as it goes; a digest other than `digest` ends it with an error.
fn verified(
    res: reqwest::Response,
    digest: &str,
    host: &str,
    op: &str,
) -> impl Stream<Item = Result<Bytes, RegistryError>> + Send + Unpin + 'static {
    struct State {
        body: Option<std::pin::Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>>,
        hasher: Sha256,
        digest: String,
        host: String,
        op: String,
    }
    let state = State {
        body: Some(Box::pin(res.bytes_stream())),
        hasher: Sha256::new(),
        digest: digest.to_string(),
        host: host.to_string(),
        op: op.to_string(),
    };
    Box::pin(futures_util::stream::unfold(state, |mut st| async move {
        let body = st.body.as_mut()?;
        match body.next().await {
            Some(Ok(chunk)) => {
                st.hasher.update(&chunk);
                Some((Ok(chunk), st))
            }
            Some(Err(e)) => {
                st.body = None;
                let e = bounded::request(&st.host, &st.op, e);
                Some((Err(e), st))
            }
            None => {
                st.body = None;
                let actual = format!("sha256:{}", hex::encode(st.hasher.clone().finalize()));
                if !st.digest.starts_with("sha256:") || actual == st.digest {
                    return None;
                }
                let e = mismatch(&st.host, &st.op, &st.digest, actual);
                Some((Err(e), st))
            }
        }
    }))
}
