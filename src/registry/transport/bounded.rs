//! Reading an answer's body into memory, never more than a limit: a `Content-Length` above it is
//! refused before anything is read, and a body that goes on (chunked, endless) is cut at the limit.
//! Blobs are streamed instead and have no such limit (only the read timeout bounds them).
use bytes::{Bytes, BytesMut};

use crate::registry::error::{ErrorKind, RegistryError, TooLarge};

/// A manifest or an index: distribution refuses to store a larger one (its `maxManifestBodySize`).
pub const MANIFEST_LIMIT: u64 = 4 << 20;
/// An image config read for its platform: real ones are a few KiB, with a long history tens of KiB.
pub const CONFIG_LIMIT: u64 = 8 << 20;
/// A token server's JSON answer: a JWT and a few fields.
pub const TOKEN_LIMIT: u64 = 256 << 10;
/// What is kept of an error answer's body (the rest is not read).
pub const ERROR_BODY_LIMIT: u64 = 64 << 10;

/// What a body is, for the message when it is too large.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub what: &'static str,
    pub bytes: u64,
}

pub const MANIFEST: Limit = Limit {
    what: "a manifest",
    bytes: MANIFEST_LIMIT,
};
pub const CONFIG: Limit = Limit {
    what: "an image config",
    bytes: CONFIG_LIMIT,
};
pub const TOKEN: Limit = Limit {
    what: "a token answer",
    bytes: TOKEN_LIMIT,
};

/// The whole body of `res`, or an error once it passes `limit`.
pub async fn read(
    mut res: reqwest::Response,
    limit: Limit,
    host: &str,
    operation: &str,
) -> Result<Bytes, RegistryError> {
    let too_large = |announced, read| {
        RegistryError::new(
            host,
            operation,
            ErrorKind::TooLarge(TooLarge {
                what: limit.what,
                limit: limit.bytes,
                announced,
                read,
            }),
        )
    };
    if let Some(n) = res.content_length().filter(|n| *n > limit.bytes) {
        return Err(too_large(Some(n), 0));
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| request(host, operation, e))? {
        if body.len() as u64 + chunk.len() as u64 > limit.bytes {
            return Err(too_large(None, body.len() as u64 + chunk.len() as u64));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The start of an error answer's body, at most [`ERROR_BODY_LIMIT`]; the rest is left unread.
pub async fn error_body(res: &mut reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = res.chunk().await {
        let room = (ERROR_BODY_LIMIT as usize).saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() as u64 >= ERROR_BODY_LIMIT {
            break;
        }
    }
    body
}

/// Reads what is left of an answer whose body cip has no use for (a 404's error JSON), at most
/// [`ERROR_BODY_LIMIT`], so that its connection goes back to the pool: dropping a body before its
/// end closes the connection, and a first plan's many misses would each open a new one.
pub async fn drain(mut res: reqwest::Response) {
    error_body(&mut res).await;
}

/// A transport error of a request, without its URL (internal paths mean nothing to a user).
pub fn request(host: &str, operation: &str, e: reqwest::Error) -> RegistryError {
    RegistryError::new(host, operation, ErrorKind::Request(e.without_url()))
}
