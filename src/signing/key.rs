//! Signing keys as cosign and openssl write them. cosign's `cosign.key` (`ENCRYPTED SIGSTORE
//! PRIVATE KEY`, older `ENCRYPTED COSIGN PRIVATE KEY`) is a PEM whose body is JSON: an scrypt key
//! derivation and a NaCl secretbox holding the PKCS#8 key, opened with `COSIGN_PASSWORD` as cosign
//! reads it. An unencrypted PKCS#8 (`PRIVATE KEY`, what `openssl genpkey -algorithm EC -pkeyopt
//! ec_paramgen_curve:P-256` writes) or SEC1 (`EC PRIVATE KEY`) P-256 key is read as it is.
//! Nothing here prints or keeps a key's bytes, its password or the decrypted key beyond the key pair.
use std::fmt;
use std::path::Path;

use anyhow::{bail, Context as _};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1,
    ECDSA_P256_SHA256_ASN1_SIGNING,
};
use base64::Engine as _;
use zeroize::Zeroizing;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The largest key file read: keys are a few hundred bytes.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// DER of a P-256 SubjectPublicKeyInfo up to its 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A P-256 private key, ready to sign.
pub struct SigningKey {
    pair: EcdsaKeyPair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(P-256, private)")
    }
}

impl SigningKey {
    /// Reads `path`; `password` opens an encrypted cosign key (None: the key must not be encrypted).
    pub fn load(path: &Path, password: Option<&str>) -> anyhow::Result<SigningKey> {
        let text = read_small(path)?;
        SigningKey::from_pem(&text, password)
            .with_context(|| format!("signing key {}", path.display()))
    }

    pub fn from_pem(text: &str, password: Option<&str>) -> anyhow::Result<SigningKey> {
        let (label, body) = pem_body(text)?;
        let der = match label.as_str() {
            "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => {
                let Some(password) = password else {
                    bail!("the key is encrypted: set COSIGN_PASSWORD to its password (an empty one is allowed)");
                };
                decrypt_cosign(&body, password)?
            }
            "PRIVATE KEY" | "EC PRIVATE KEY" => body,
            "ENCRYPTED PRIVATE KEY" => bail!(
                "an openssl-encrypted PKCS#8 key is not read: decrypt it (openssl pkey -in KEY -out \
                 KEY.pem) or make a cosign key (cosign generate-key-pair)"
            ),
            other => bail!("a PEM of type {other:?} is no private key (expected ENCRYPTED SIGSTORE PRIVATE KEY or PRIVATE KEY)"),
        };
        let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, &der)
            .map_err(|_| {
                anyhow::anyhow!("not an ECDSA P-256 private key (cosign and cip sign with P-256)")
            })?;
        Ok(SigningKey { pair })
    }

    /// The ASN.1 DER ECDSA signature of SHA-256(`payload`), as cosign stores it (base64).
    pub fn sign(&self, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
        let sig = self
            .pair
            .sign(&SystemRandom::new(), payload)
            .map_err(|_| anyhow::anyhow!("signing failed"))?;
        Ok(sig.as_ref().to_vec())
    }

    /// The public half, as `cosign.pub` holds it.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            point: self.pair.public_key().as_ref().to_vec(),
        }
    }
}

/// A P-256 public key (`-----BEGIN PUBLIC KEY-----`, SubjectPublicKeyInfo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The uncompressed point (65 bytes).
    point: Vec<u8>,
}

impl PublicKey {
    pub fn load(path: &Path) -> anyhow::Result<PublicKey> {
        let text = read_small(path)?;
        PublicKey::from_pem(&text).with_context(|| format!("public key {}", path.display()))
    }

    pub fn from_pem(text: &str) -> anyhow::Result<PublicKey> {
        let (label, der) = pem_body(text)?;
        if label != "PUBLIC KEY" {
            bail!("a PEM of type {label:?} is no public key (expected PUBLIC KEY)");
        }
        match der.strip_prefix(&P256_SPKI_PREFIX[..]) {
            Some(point) if point.len() == 65 && point[0] == 4 => Ok(PublicKey {
                point: point.to_vec(),
            }),
            _ => bail!("not an ECDSA P-256 public key"),
        }
    }

    pub fn to_pem(&self) -> String {
        let der: Vec<u8> = P256_SPKI_PREFIX
            .iter()
            .chain(&self.point)
            .copied()
            .collect();
        let b64 = B64.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// Whether `signature` (ASN.1 DER) signs `payload` with this key.
    pub fn verifies(&self, payload: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(payload, signature)
            .is_ok()
    }
}

fn read_small(path: &Path) -> anyhow::Result<String> {
    use std::io::Read as _;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("{} is not a text (PEM) file", path.display()))?;
    if text.len() as u64 > MAX_KEY_FILE {
        bail!(
            "{} is larger than {MAX_KEY_FILE} bytes: not a key",
            path.display()
        );
    }
    Ok(text)
}

/// The label and decoded body of the first PEM block of `text`.
fn pem_body(text: &str) -> anyhow::Result<(String, Zeroizing<Vec<u8>>)> {
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .by_ref()
        .find_map(|l| l.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .context("no PEM block (-----BEGIN ...-----) in the file")?
        .to_string();
    let end = format!("-----END {label}-----");
    let mut b64 = Zeroizing::new(String::new());
    for line in lines.by_ref() {
        if line == end {
            let body = B64
                .decode(b64.as_bytes())
                .context("the PEM body is not base64")?;
            return Ok((label, Zeroizing::new(body)));
        }
        b64.push_str(line);
    }
    bail!("the PEM block {label} has no end line")
}

/// Opens the JSON body of a cosign key: `{"kdf": {"name": "scrypt", "params": {"N", "r", "p"},
/// "salt"}, "cipher": {"name": "nacl/secretbox", "nonce"}, "ciphertext"}` (base64 fields).
fn decrypt_cosign(body: &[u8], password: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    use crypto_secretbox::aead::{Aead, KeyInit};
    use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};

    let v: serde_json::Value =
        serde_json::from_slice(body).context("the encrypted key is not cosign's JSON")?;
    let field = |path: &[&str]| -> anyhow::Result<&serde_json::Value> {
        path.iter()
            .try_fold(&v, |v, k| v.get(k))
            .with_context(|| format!("the encrypted key has no {}", path.join(".")))
    };
    let b64 = |path: &[&str]| -> anyhow::Result<Vec<u8>> {
        let s = field(path)?
            .as_str()
            .with_context(|| format!("{} is not a string", path.join(".")))?;
        B64.decode(s)
            .with_context(|| format!("{} is not base64", path.join(".")))
    };
    let num = |name: &str| -> anyhow::Result<u64> {
        field(&["kdf", "params", name])?
            .as_u64()
            .with_context(|| format!("kdf.params.{name} is not a number"))
    };
    if field(&["kdf", "name"])?.as_str() != Some("scrypt")
        || field(&["cipher", "name"])?.as_str() != Some("nacl/secretbox")
    {
        bail!("the key is encrypted with something other than scrypt and nacl/secretbox");
    }
    let (n, r, p) = (num("N")?, num("r")?, num("p")?);
    // cosign writes N = 2^15 or 2^16; a bound keeps a hostile file from asking for gigabytes.
    if !n.is_power_of_two()
        || !(2..=1 << 20).contains(&n)
        || !(1..=32).contains(&r)
        || !(1..=16).contains(&p)
    {
        bail!("the key's scrypt parameters (N={n}, r={r}, p={p}) are out of range");
    }
    let params = scrypt::Params::new(n.trailing_zeros() as u8, r as u32, p as u32, 32)
        .map_err(|e| anyhow::anyhow!("the key's scrypt parameters: {e}"))?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(
        password.as_bytes(),
        &b64(&["kdf", "salt"])?,
        &params,
        key.as_mut(),
    )
    .map_err(|e| anyhow::anyhow!("scrypt: {e}"))?;
    let nonce = b64(&["cipher", "nonce"])?;
    if nonce.len() != 24 {
        bail!("the key's nonce is not 24 bytes");
    }
    let cipher = XSalsa20Poly1305::new(Key::from_slice(key.as_ref()));
    let plain = cipher
        .decrypt(Nonce::from_slice(&nonce), b64(&["ciphertext"])?.as_slice())
        .map_err(|_| anyhow::anyhow!("wrong password for the encrypted key (COSIGN_PASSWORD)"))?;
    Ok(Zeroizing::new(plain))
}
