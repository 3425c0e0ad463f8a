//! Signatures in cosign's classic layout, so every cosign verifier and policy controller reads
//! them: the signature of image `sha256:HEX` of repository `R` is the manifest tagged
//! `sha256-HEX.sig` in `R`, an OCI manifest whose one layer per signature is the simple-signing
//! payload (naming `R` and the digest) with the base64 signature in an annotation.
use std::time::Duration;

use anyhow::{bail, Context as _};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::registry::index::sha256_digest;

pub mod key;

pub use key::{PublicKey, SigningKey};

pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// The tag holding the signatures of `digest` (`sha256:HEX` -> `sha256-HEX.sig`).
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// The simple-signing payload cosign signs: the repository (`HOST[:PORT]/PATH`, no tag) and the
/// manifest digest. Its exact bytes are what the signature covers.
pub fn payload(docker_reference: &str, digest: &str) -> Vec<u8> {
    let v = json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": null
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// What a payload says it signs, if it is a simple-signing payload.
pub fn payload_subject(payload: &[u8]) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let critical = v.get("critical")?;
    let reference = critical
        .get("identity")?
        .get("docker-reference")?
        .as_str()?;
    let digest = critical
        .get("image")?
        .get("docker-manifest-digest")?
        .as_str()?;
    Some((reference.to_string(), digest.to_string()))
}

/// One signature of a `.sig` manifest: its payload and the base64 signature over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub payload: Vec<u8>,
    pub signature_b64: String,
}

/// The blobs and manifest of a `.sig` tag holding `signatures`: (config bytes, manifest bytes).
/// The payloads are its layers, pushed as blobs beside the config.
pub fn signature_manifest(signatures: &[Signature]) -> (Vec<u8>, Vec<u8>) {
    let digests: Vec<String> = signatures
        .iter()
        .map(|s| sha256_digest(&s.payload))
        .collect();
    let config = json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": digests},
        "config": {}
    });
    let config = serde_json::to_vec(&config).unwrap_or_default();
    let layers: Vec<Value> = signatures
        .iter()
        .zip(&digests)
        .map(|(s, d)| {
            json!({
                "mediaType": PAYLOAD_MEDIA_TYPE,
                "size": s.payload.len(),
                "digest": d,
                "annotations": {SIGNATURE_ANNOTATION: s.signature_b64}
            })
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": config.len(), "digest": sha256_digest(&config)},
        "layers": layers
    });
    (config, serde_json::to_vec(&manifest).unwrap_or_default())
}

/// The layers of a `.sig` manifest: (payload digest, base64 signature) of each.
pub fn signature_layers(manifest: &[u8]) -> anyhow::Result<Vec<(String, String)>> {
    let v: Value =
        serde_json::from_slice(manifest).context("the signature manifest is not JSON")?;
    let layers = v["layers"]
        .as_array()
        .context("the signature manifest has no layers")?;
    layers
        .iter()
        .filter(|l| l["mediaType"] == PAYLOAD_MEDIA_TYPE)
        .map(|l| {
            let digest = l["digest"]
                .as_str()
                .context("a signature layer without a digest")?;
            let sig = l["annotations"][SIGNATURE_ANNOTATION]
                .as_str()
                .context("a signature layer without its signature annotation")?;
            Ok((digest.to_string(), sig.to_string()))
        })
        .collect()
}

/// Who signs: a key cip holds, or the user's program (a KMS client, a keyless signer in CI) that
/// reads the payload on stdin and writes the signature (DER, or its base64) on stdout.
#[derive(Debug)]
pub enum Signer {
    Key(SigningKey),
    Command(Vec<String>),
}

/// How long the user's signer may take for one payload.
const SIGN_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// The most of a signer's output read: a signature is under a hundred bytes.
const MAX_SIGNATURE_OUTPUT: usize = 64 * 1024;

impl Signer {
    /// The base64 signature of `payload`.
    pub async fn sign(&self, payload: &[u8]) -> anyhow::Result<String> {
        let der = match self {
            Signer::Key(k) => k.sign(payload)?,
            Signer::Command(argv) => run_signer(argv, payload).await?,
        };
        Ok(base64::engine::general_purpose::STANDARD.encode(der))
    }
}

async fn run_signer(argv: &[String], payload: &[u8]) -> anyhow::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (program, args) = argv.split_first().context("[sign] command is empty")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start the signer {program}"))?;
    let mut stdin = child.stdin.take().context("the signer's stdin")?;
    let payload = payload.to_vec();
    let feed = async move {
        stdin.write_all(&payload).await?;
        drop(stdin);
        Ok::<_, std::io::Error>(())
    };
    let mut stdout = child.stdout.take().context("the signer's stdout")?;
    let mut stderr = child.stderr.take().context("the signer's stderr")?;
    let run = async {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut out_reader = (&mut stdout).take(MAX_SIGNATURE_OUTPUT as u64 + 1);
        let mut err_reader = (&mut stderr).take(4096);
        let (fed, read, _, status) = tokio::join!(
            feed,
            out_reader.read_to_end(&mut out),
            err_reader.read_to_end(&mut err),
            child.wait()
        );
        Ok::<_, anyhow::Error>((status?, fed, read, out, err))
    };
    let (status, fed, read, out, err) = tokio::time::timeout(SIGN_COMMAND_TIMEOUT, run)
        .await
        .with_context(|| {
            format!(
                "the signer {program} gave no signature within {}s",
                SIGN_COMMAND_TIMEOUT.as_secs()
            )
        })??;
    if !status.success() {
        bail!(
            "the signer {program} failed ({status}): {}",
            String::from_utf8_lossy(&err).trim()
        );
    }
    // After the exit status: a signer that failed before reading its payload breaks the pipe.
    if let Err(e) = fed {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            bail!("the signer {program} exited without reading the payload: it signed nothing");
        }
        return Err(e).context("writing the payload to the signer");
    }
    read.context("reading the signer's output")?;
    if out.len() > MAX_SIGNATURE_OUTPUT {
        bail!("the signer {program} wrote more than {MAX_SIGNATURE_OUTPUT} bytes: no signature");
    }
    decode_signature(&out).with_context(|| format!("the output of the signer {program}"))
}

/// A signature as a signer writes it: DER (`0x30 ...`) or its base64 text.
fn decode_signature(out: &[u8]) -> anyhow::Result<Vec<u8>> {
    if out.first() == Some(&0x30) {
        return Ok(out.to_vec());
    }
    let text = std::str::from_utf8(out)
        .context("neither DER nor base64")?
        .trim();
    let der = base64::engine::general_purpose::STANDARD
        .decode(text)
        .context("neither DER nor base64")?;
    if der.first() != Some(&0x30) {
        bail!("not an ASN.1 DER signature");
    }
    Ok(der)
}
