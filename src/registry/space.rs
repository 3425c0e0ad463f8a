//! Recognising a registry whose storage is full, so the user reads that instead of its raw JSON.
//!
//! Distribution 2.8 on a full filesystem answers 500 with an `UNKNOWN` error whose `detail` is either
//! the Go error text (`write .../data: no space left on device`) or the error as a structure
//! (`{"DriverName":"filesystem","Enclosed":{"Op":"write","Path":...,"Err":28}}`, 28 being ENOSPC).
//! Other registries answer 507 Insufficient Storage. None of these go away when the request is
//! repeated, so they are not retried.
use serde_json::Value;

use super::error::{ErrorKind, RegistryError};

/// ENOSPC on Linux, as Go's `syscall.Errno` is written in JSON.
const ENOSPC: u64 = 28;

/// Whether the registry said its storage is full.
pub fn is_out_of_space(e: &RegistryError) -> bool {
    match &e.kind {
        ErrorKind::Status { status: 507, .. } => true,
        ErrorKind::Status {
            status,
            errors,
            body,
        } if *status >= 500 => {
            mentions_no_space(body)
                || serde_json::from_str::<Value>(body).is_ok_and(|v| holds_enospc(&v))
                || errors
                    .iter()
                    .any(|er| mentions_no_space(&er.message) || holds_enospc(&er.detail))
        }
        _ => false,
    }
}

fn mentions_no_space(text: &str) -> bool {
    text.to_ascii_lowercase()
        .contains("no space left on device")
}

/// A string mentioning ENOSPC, or an `"Err": 28` of a Go error structure, anywhere in `v`.
fn holds_enospc(v: &Value) -> bool {
    match v {
        Value::String(s) => mentions_no_space(s),
        Value::Array(items) => items.iter().any(holds_enospc),
        Value::Object(map) => map.iter().any(|(key, value)| {
            (key == "Err" && value.as_u64() == Some(ENOSPC)) || holds_enospc(value)
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: u16, message: &str) -> RegistryError {
        RegistryError::new(
            "reg",
            "PUT blob reg/x@sha256:0",
            ErrorKind::Status {
                status: code,
                errors: crate::registry::error::parse_envelope(message.as_bytes()),
                body: message.into(),
            },
        )
    }

    #[test]
    fn distribution_answers_on_a_full_disk() {
        // Both as distribution 2.8.2 answered with its storage on a full tmpfs.
        let structured = r#"{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":{"DriverName":"filesystem","Enclosed":{"Op":"write","Path":"/data/docker/registry/v2/repositories/busybox/_uploads/cc54/startedat","Err":28}}}]}"#;
        assert!(is_out_of_space(&server(500, structured)));
        let text = r#"{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":"write /data/_uploads/5c6d/data: no space left on device"}]}"#;
        assert!(is_out_of_space(&server(500, text)));
        assert!(is_out_of_space(&server(507, "")));
    }

    #[test]
    fn other_errors_are_not_out_of_space() {
        let other = r#"{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":{"Enclosed":{"Op":"write","Err":13}}}]}"#;
        assert!(!is_out_of_space(&server(500, other)));
        assert!(!is_out_of_space(&server(503, "")));
        // A client error naming the text is the client's business, not the registry's storage.
        assert!(!is_out_of_space(&server(400, "no space left on device")));
    }
}
