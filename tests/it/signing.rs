//! Signing keys and signatures checked by independent implementations: keys made by openssl and,
//! in cosign's encrypted format, by PyNaCl and Python's scrypt; signatures verified by openssl.
use crate::common::{run_ok, run_output};

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use cip::signing::{self, PublicKey, Signature, Signer, SigningKey};

const PYTHON: &str = "/opt/check-jsonschema/bin/python";

fn openssl(args: &[&str]) -> String {
    run_ok(Command::new("openssl").args(args))
}

/// A P-256 key in PKCS#8 PEM, as `openssl genpkey` writes it, and its public key.
fn openssl_key(dir: &Path) -> (PathBuf, PathBuf) {
    let key = dir.join("key.pem");
    let public = dir.join("pub.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        key.to_str().unwrap(),
    ]);
    openssl(&[
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (key, public)
}

/// `key` (PKCS#8 PEM) encrypted as cosign writes `cosign.key`, by Python's scrypt and PyNaCl.
fn cosign_key(dir: &Path, key: &Path, password: &str) -> PathBuf {
    let out = dir.join("cosign.key");
    let script = r#"
import base64, hashlib, json, os, sys, nacl.secret
pem = open(sys.argv[1]).read().split('\n')
der = base64.b64decode(''.join(l for l in pem if l and not l.startswith('-----')))
salt, nonce = os.urandom(32), os.urandom(24)
key = hashlib.scrypt(sys.argv[2].encode(), salt=salt, n=32768, r=8, p=1, maxmem=64 * 1024 * 1024, dklen=32)
box = nacl.secret.SecretBox(key).encrypt(der, nonce).ciphertext
body = json.dumps({"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1},
                           "salt": base64.b64encode(salt).decode()},
                   "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
                   "ciphertext": base64.b64encode(box).decode()}).encode()
b64 = base64.b64encode(body).decode()
lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
open(sys.argv[3], 'w').write('-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n' + '\n'.join(lines)
                             + '\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n')
"#;
    run_ok(Command::new(PYTHON).args([
        "-c",
        script,
        key.to_str().unwrap(),
        password,
        out.to_str().unwrap(),
    ]));
    out
}

/// Whether openssl accepts `signature_b64` over `payload` with the public key `public`.
fn openssl_verifies(dir: &Path, public: &Path, payload: &[u8], signature_b64: &str) -> bool {
    use base64::Engine as _;
    let (p, s) = (dir.join("payload"), dir.join("sig.der"));
    fs::write(&p, payload).unwrap();
    fs::write(
        &s,
        base64::engine::general_purpose::STANDARD
            .decode(signature_b64)
            .unwrap(),
    )
    .unwrap();
    let out = run_output(Command::new("openssl").args([
        "dgst",
        "-sha256",
        "-verify",
        public.to_str().unwrap(),
        "-signature",
        s.to_str().unwrap(),
        p.to_str().unwrap(),
    ]));
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK")
}

#[test]
fn an_openssl_key_signs_what_openssl_verifies_and_its_public_key_is_openssls() {
    let dir = tempfile::tempdir().unwrap();
    let (key_path, public_path) = openssl_key(dir.path());
    let key = SigningKey::load(&key_path, None).unwrap();
    let openssl_public = fs::read_to_string(&public_path).unwrap();
    assert_eq!(
        key.public_key(),
        PublicKey::from_pem(&openssl_public).unwrap()
    );
    assert_eq!(
        key.public_key().to_pem(),
        openssl_public,
        "cosign.pub as openssl writes it"
    );
    let payload = signing::payload(
        "127.0.0.1:5000/team/base",
        &format!("sha256:{}", "ab".repeat(32)),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sig = rt.block_on(Signer::Key(key).sign(&payload)).unwrap();
    assert!(openssl_verifies(dir.path(), &public_path, &payload, &sig));
    assert!(!openssl_verifies(
        dir.path(),
        &public_path,
        b"another payload",
        &sig
    ));
    let text = String::from_utf8(payload.clone()).unwrap();
    assert!(
        text.contains(r#""type":"cosign container image signature""#),
        "{text}"
    );
    assert_eq!(
        signing::payload_subject(&payload),
        Some((
            "127.0.0.1:5000/team/base".into(),
            format!("sha256:{}", "ab".repeat(32))
        ))
    );
}

#[test]
fn a_cosign_encrypted_key_opens_with_its_password_only_and_is_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, public_path) = openssl_key(dir.path());
    let encrypted = cosign_key(dir.path(), &plain, "s3cret pass");
    let key = SigningKey::load(&encrypted, Some("s3cret pass")).unwrap();
    assert_eq!(key.public_key(), PublicKey::load(&public_path).unwrap());
    let wrong = SigningKey::load(&encrypted, Some("guess")).unwrap_err();
    assert!(format!("{wrong:#}").contains("wrong password"), "{wrong:#}");
    assert!(
        format!("{wrong:#}").contains("cosign.key"),
        "the message names the file: {wrong:#}"
    );
    let none = SigningKey::load(&encrypted, None).unwrap_err();
    assert!(format!("{none:#}").contains("COSIGN_PASSWORD"), "{none:#}");
    let shown = format!("{key:?}");
    let secret = fs::read_to_string(&plain).unwrap();
    let body: String = secret.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(
        !shown.contains(&body[..20]) && shown.contains("private"),
        "{shown}"
    );
    let payload = signing::payload("r/x", "sha256:00");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sig = rt.block_on(Signer::Key(key).sign(&payload)).unwrap();
    assert!(openssl_verifies(dir.path(), &public_path, &payload, &sig));
}

#[test]
fn sec1_keys_load_and_what_is_no_p256_key_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let sec1 = dir.path().join("sec1.pem");
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        sec1.to_str().unwrap(),
    ]);
    assert!(fs::read_to_string(&sec1)
        .unwrap()
        .contains("BEGIN EC PRIVATE KEY"));
    SigningKey::load(&sec1, None).unwrap();
    let ed = dir.path().join("ed.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        ed.to_str().unwrap(),
    ]);
    let e = SigningKey::load(&ed, None).unwrap_err();
    assert!(format!("{e:#}").contains("P-256"), "{e:#}");
    let cert = dir.path().join("not-a-key.pem");
    fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = SigningKey::load(&cert, None).unwrap_err();
    assert!(format!("{e:#}").contains("no private key"), "{e:#}");
    fs::write(&cert, "hello").unwrap();
    assert!(format!("{:#}", SigningKey::load(&cert, None).unwrap_err()).contains("no PEM block"));
    let big = dir.path().join("big.pem");
    fs::write(&big, vec![b'A'; 200 * 1024]).unwrap();
    assert!(format!("{:#}", SigningKey::load(&big, None).unwrap_err()).contains("larger than"));
}

#[test]
fn a_signer_command_signs_through_openssl_and_its_failures_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let (key_path, public_path) = openssl_key(dir.path());
    let public = PublicKey::load(&public_path).unwrap();
    let payload = signing::payload("r/x", "sha256:11");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let command = |argv: &[&str]| Signer::Command(argv.iter().map(|s| s.to_string()).collect());
    let key = key_path.to_str().unwrap();
    let sig = rt
        .block_on(command(&["openssl", "dgst", "-sha256", "-sign", key]).sign(&payload))
        .unwrap();
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(&sig)
        .unwrap();
    assert!(public.verifies(&payload, &der));
    assert!(!public.verifies(b"other", &der));
    let b64_script = format!("openssl dgst -sha256 -sign '{key}' | base64 -w0");
    let sig = rt
        .block_on(command(&["sh", "-c", &b64_script]).sign(&payload))
        .unwrap();
    assert!(public.verifies(
        &payload,
        &base64::engine::general_purpose::STANDARD
            .decode(&sig)
            .unwrap()
    ));
    let failed = rt
        .block_on(command(&["sh", "-c", "echo no key here >&2; exit 3"]).sign(&payload))
        .unwrap_err();
    assert!(format!("{failed:#}").contains("no key here"), "{failed:#}");
    let garbage = rt
        .block_on(command(&["sh", "-c", "cat >/dev/null; echo hello"]).sign(&payload))
        .unwrap_err();
    assert!(
        format!("{garbage:#}").contains("neither DER nor base64"),
        "{garbage:#}"
    );
    let deaf = rt
        .block_on(
            command(&["sh", "-c", "exec 0<&-; sleep 0.2; echo MEUCIQ=="])
                .sign(&vec![b'x'; 1 << 20]),
        )
        .unwrap_err();
    assert!(
        format!("{deaf:#}").contains("without reading the payload"),
        "{deaf:#}"
    );
    let missing = rt
        .block_on(command(&["/nonexistent/signer"]).sign(&payload))
        .unwrap_err();
    assert!(
        format!("{missing:#}").contains("cannot start the signer"),
        "{missing:#}"
    );
}

#[test]
fn a_signature_manifest_has_cosigns_layout_and_reads_back() {
    let payload = signing::payload("r/x", "sha256:22");
    let sig = Signature {
        payload: payload.clone(),
        signature_b64: "MEUCIQ==".into(),
    };
    let (config, manifest) = signing::signature_manifest(std::slice::from_ref(&sig));
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    assert_eq!(
        m["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"],
        "MEUCIQ=="
    );
    let c: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(c["rootfs"]["diff_ids"][0], m["layers"][0]["digest"]);
    let layers = signing::signature_layers(&manifest).unwrap();
    assert_eq!(
        layers,
        [(
            m["layers"][0]["digest"].as_str().unwrap().to_string(),
            "MEUCIQ==".to_string()
        )]
    );
    assert_eq!(signing::signature_tag("sha256:abcd"), "sha256-abcd.sig");
}
