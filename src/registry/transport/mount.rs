//! Cross-repository mounts: `POST /v2/TO/blobs/uploads/?mount=DIGEST&from=FROM`. 201 means
//! mounted; 202 is an upload session, the registry's way of saying it did not mount (it lacks the
//! blob in `from`, or does not mount), which is left to expire.
use reqwest::StatusCode;

use super::{status_error, Scope, Transport};
use crate::registry::error::RegistryError;

impl Transport {
    /// Whether the registry mounted blob `digest` of `from` into `to`.
    pub async fn mount_blob(
        &self,
        to: &str,
        from: &str,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        let op = format!("POST mount {}/{to}@{digest} from {from}", self.host);
        let url = self.url(&format!("{to}/blobs/uploads/"));
        let res = self
            .send(&op, &Scope::mount(to, from), |c| {
                c.post(&url)
                    .query(&[("mount", digest), ("from", from)])
                    .header(reqwest::header::CONTENT_LENGTH, 0)
            })
            .await?;
        match res.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => Ok(false),
            _ => Err(status_error(&self.host, &op, res).await),
        }
    }
}
