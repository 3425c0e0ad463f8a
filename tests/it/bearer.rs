//! cip against a registry that uses bearer-token authentication (the Docker Hub / Harbor scheme):
//! docker-registry with `auth.token`, and the test token server of `common::tokenserver`, which
//! checks the user and password and signs the JWTs the registry verifies.
use crate::common;

use std::fs;

use bytes::Bytes;
use cip::registry::auth::{Credentials, Source};
use cip::registry::index::sha256_digest;
use cip::registry::push::upload_blob;
use cip::registry::RegistryAuth;
use cip::registry::{Endpoint, Registry};
use common::tokenserver::TokenServer;
use common::workspace::{result_of, results, text, Workspace};
use common::{skopeo, skopeo_output, RegistryOptions, TestRegistry};
use serde_json::{json, Value};

const USER: &str = "cip-bearer";
const PASSWORD: &str = "b3arer-Pa55:w0rd";
const WRONG: &str = "wr0ng-b3arer-Pa55";
const REPO: &str = "bearer/hello";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn assert_secret_free(what: &str, text: &str) {
    for secret in [PASSWORD, WRONG] {
        assert!(
            !text.contains(secret),
            "a password leaked into {what}: {text}"
        );
    }
}

/// A token server for USER / PASSWORD and a plain-HTTP registry (loopback) that trusts it.
fn token_registry() -> (TokenServer, TestRegistry) {
    let tokens = TokenServer::start(USER, PASSWORD);
    let registry = TestRegistry::start_with_token(RegistryOptions::default(), &tokens);
    (tokens, registry)
}

async fn connect(reg: &TestRegistry, password: &str) -> anyhow::Result<Registry> {
    Registry::connect(
        Endpoint::new(&reg.addr()),
        RegistryAuth::Basic(USER.to_string(), password.to_string()),
    )
    .await
}

/// A one-layer linux/amd64 image: (config, layer, manifest), each as bytes.
fn tiny_image() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let layer = b"not really a tar, but the registry stores any bytes\n".to_vec();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&layer)]},
        "config": {},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256_digest(&config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": sha256_digest(&layer),
            "size": layer.len(),
        }],
    }))
    .unwrap();
    (config, layer, manifest)
}

/// Uploads `blob` from a temp file, as cip uploads the blobs of an OCI layout.
async fn push_blob(registry: &Registry, dir: &std::path::Path, blob: &[u8]) -> anyhow::Result<()> {
    let digest = sha256_digest(blob);
    let path = dir.join(digest.replace(':', "-"));
    fs::write(&path, blob).unwrap();
    upload_blob(registry, REPO, &path, &digest, blob.len() as u64).await
}

#[tokio::test]
async fn push_and_read_back_through_bearer_tokens() {
    let (tokens, reg) = token_registry();
    // The registry really wants a token: no anonymous or Basic access to the API.
    assert_eq!(reg.http_status("/v2/", false), 401);
    assert_eq!(tokens.tokens_issued(), 0);

    let registry = connect(&reg, PASSWORD).await.unwrap();
    assert!(registry.plain_http(), "loopback without TLS is plain HTTP");
    let dir = tempfile::tempdir().unwrap();
    let (config, layer, manifest) = tiny_image();
    for blob in [&config, &layer] {
        push_blob(&registry, dir.path(), blob)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(registry
            .blob_exists(REPO, &sha256_digest(blob))
            .await
            .unwrap());
    }
    let reference = registry.tag_ref(REPO, "1.0.0");
    registry
        .put_manifest(&reference, Bytes::from(manifest.clone()), OCI_MANIFEST)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));

    let published = registry
        .published(REPO, "1.0.0")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
        .expect("the tag was just pushed");
    assert_eq!(published.digest, sha256_digest(&manifest));
    assert!(!published.is_index);
    assert_eq!(
        published
            .platforms()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["linux/amd64"]
    );
    let (raw, digest) = registry.manifest_raw(&reference).await.unwrap().unwrap();
    assert_eq!(raw.as_ref(), manifest.as_slice());
    assert_eq!(digest, sha256_digest(&manifest));
    assert!(registry.published(REPO, "9.9.9").await.unwrap().is_none());

    // The bearer flow carried all of it: tokens for the user, for this registry's service, with
    // push access to the repository; no request was refused.
    let log = tokens.requests();
    assert!(tokens.authenticated_tokens() > 0, "{log:#?}");
    assert!(log.iter().all(|r| r.status == 200), "{log:#?}");
    assert!(
        log.iter()
            .all(|r| r.user.as_deref() == Some(USER)
                && r.service.as_deref() == Some(tokens.service()))
    );
    assert!(
        log.iter()
            .any(|r| r.granted == [format!("repository:{REPO}:pull,push")]),
        "{log:#?}"
    );
    eprintln!(
        "{} token requests for 2 blob uploads, 1 manifest push and 4 reads",
        log.len()
    );

    // skopeo, an independent client, reads the same image with the same credentials...
    let creds = tokens.creds();
    let image = reg.docker_ref(&format!("{REPO}:1.0.0"));
    let inspected: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &creds,
        &image,
    ]))
    .unwrap();
    assert_eq!(
        inspected,
        serde_json::from_slice::<Value>(&manifest).unwrap()
    );
    // ...and is refused without them (its anonymous token grants nothing).
    let anonymous = skopeo_output(&["inspect", "--raw", "--tls-verify=false", &image]);
    assert!(!anonymous.status.success());
    assert!(
        tokens
            .requests()
            .iter()
            .any(|r| r.user.is_none() && r.status == 200 && r.granted.is_empty()),
        "skopeo asked for an anonymous token"
    );
}

#[tokio::test]
async fn anonymous_reads_are_refused_with_a_clear_error() {
    let (tokens, reg) = token_registry();
    let registry = Registry::connect(Endpoint::new(&reg.addr()), RegistryAuth::Anonymous)
        .await
        .unwrap();
    let err = registry
        .published(REPO, "1.0.0")
        .await
        .expect_err("an anonymous token grants nothing");
    let text = format!("{err:#}");
    assert!(
        text.contains(&reg.addr()) && text.contains("tried anonymously"),
        "{text}"
    );
    assert!(
        tokens.tokens_issued() > 0,
        "the anonymous flow asked for a token"
    );
    assert!(tokens.requests().iter().all(|r| r.user.is_none()));
}

#[tokio::test]
async fn a_wrong_password_is_refused_naming_the_registry_not_the_password() {
    let (tokens, reg) = token_registry();
    let host = reg.addr();

    let registry = connect(&reg, WRONG).await.unwrap();
    let err = registry
        .published(REPO, "1.0.0")
        .await
        .expect_err("a wrong password must be refused");
    let text = format!("{err:#}");
    assert!(text.contains(&host), "the error names the registry: {text}");
    assert!(text.contains("refused access"), "{text}");
    assert_secret_free("the error", &text);
    assert_secret_free("the error's Debug", &format!("{err:?}"));

    // Pushing is refused as well.
    let registry = connect(&reg, WRONG).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = push_blob(&registry, dir.path(), b"blob")
        .await
        .expect_err("a wrong password must be refused");
    let text = format!("{err:#}");
    assert!(text.contains(&host), "the error names the registry: {text}");
    assert_secret_free("the error", &text);
    assert_secret_free("the error's Debug", &format!("{err:?}"));

    let log = tokens.requests();
    assert_eq!(tokens.tokens_issued(), 0, "{log:#?}");
    assert!(log.iter().all(|r| r.status == 401), "{log:#?}");
}

#[tokio::test]
async fn a_tls_token_registry_works_too() {
    let tokens = TokenServer::start(USER, PASSWORD);
    let reg = TestRegistry::start_with_token(
        RegistryOptions {
            tls: true,
            ..Default::default()
        },
        &tokens,
    );
    let mut endpoint = Endpoint::new(&reg.addr());
    endpoint.ca_certs = vec![reg.ca_cert_path().unwrap()];
    let registry = Registry::connect(
        endpoint,
        RegistryAuth::Basic(USER.to_string(), PASSWORD.to_string()),
    )
    .await
    .unwrap();
    assert!(!registry.plain_http());
    let dir = tempfile::tempdir().unwrap();
    push_blob(&registry, dir.path(), b"over TLS")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(registry
        .blob_exists(REPO, &sha256_digest(b"over TLS"))
        .await
        .unwrap());
    assert!(tokens.authenticated_tokens() > 0);
}

/// End to end: `cip publish-locally` builds the demo project (parents pulled by buildah from the
/// token registry) with credentials from CIP_USERNAME / CIP_PASSWORD.
#[test]
fn publish_locally_to_a_token_registry() {
    let (tokens, reg) = token_registry();
    let ws = Workspace::demo();
    let addr = reg.addr();
    let started = std::time::Instant::now();
    let out = ws.cip_env(
        &["publish-locally", "--local-registry", &addr, "--json"],
        &[("CIP_USERNAME", USER), ("CIP_PASSWORD", PASSWORD)],
    );
    let all = text(&out);
    assert_secret_free("cip's output", &all);
    assert!(out.status.success(), "{all}");
    eprintln!("publish-locally took {:?}", started.elapsed());
    let r = results(&out);
    for name in ["busybox", "hello", "tools", "app"] {
        let (_, result, built) = result_of(&r, name);
        assert!(!built.is_empty(), "{name} was built: {result} {r:?}");
    }

    let creds = tokens.creds();
    for image in ["busybox:1.0.0", "hello:1.0.0", "tools:1.0.0", "app:1.0.0"] {
        let raw: Value = serde_json::from_str(&skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &creds,
            &reg.docker_ref(image),
        ]))
        .unwrap();
        assert!(
            raw["manifests"].as_array().is_some_and(|m| !m.is_empty()),
            "{image}: {raw}"
        );
    }

    let log = tokens.requests();
    assert!(log.iter().all(|r| r.status == 200), "{log:#?}");
    assert!(
        log.iter().all(|r| r.user.as_deref() == Some(USER)),
        "{log:#?}"
    );
    let by = |agent: &str| {
        log.iter()
            .filter(|r| r.user_agent.to_lowercase().contains(agent))
            .count()
    };
    eprintln!(
        "{} tokens issued: {} to cip, {} to buildah; user agents: {:?}",
        tokens.tokens_issued(),
        by("cip/"),
        by("buildah") + by("containers"),
        log.iter()
            .map(|r| r.user_agent.as_str())
            .collect::<std::collections::BTreeSet<_>>()
    );
    assert!(tokens.authenticated_tokens() > 0);

    // A second run finds everything published: nothing is built, and it still authenticates.
    let builds = ws.builds();
    let again = ws.cip_env(
        &["publish-locally", "--local-registry", &addr, "--json"],
        &[("CIP_USERNAME", USER), ("CIP_PASSWORD", PASSWORD)],
    );
    assert_secret_free("cip's output", &text(&again));
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(ws.builds(), builds);
}

/// A refused push explains itself as a refused read does: "refused access (tried SOURCE): check your
/// credentials": the token server's 401 is the answer, not a reason to upload unauthenticated.
#[tokio::test]
async fn a_refused_push_names_the_credentials_source() {
    let (_tokens, reg) = token_registry();
    let creds = Credentials {
        auth: RegistryAuth::Basic(USER.to_string(), WRONG.to_string()),
        source: Source::Env,
    };
    let registry = Registry::connect_with(Endpoint::new(&reg.addr()), creds)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = push_blob(&registry, dir.path(), b"blob")
        .await
        .expect_err("a wrong password must be refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("refused access") && text.contains("CIP_USERNAME/CIP_PASSWORD"),
        "{text}"
    );
    assert_secret_free("the error", &text);
}

/// A cross-repository mount on a token registry needs `pull` on the source repository too: cip asks
/// the token server for both scopes in one token, so the registry mounts instead of cip uploading.
#[tokio::test]
async fn a_mount_asks_for_pull_on_the_source_repository() {
    let (tokens, reg) = token_registry();
    let registry = connect(&reg, PASSWORD).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    push_blob(&registry, dir.path(), b"shared layer")
        .await
        .unwrap();
    let digest = sha256_digest(b"shared layer");
    let mounted = registry
        .mount_blob("bearer/other", REPO, &digest)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(mounted, "{:#?}", tokens.requests());
    assert!(registry.blob_exists("bearer/other", &digest).await.unwrap());
    let wanted = [
        "repository:bearer/other:pull,push".to_string(),
        format!("repository:{REPO}:pull"),
    ];
    assert!(
        tokens
            .requests()
            .iter()
            .any(|r| r.scopes == wanted && r.status == 200),
        "{:#?}",
        tokens.requests()
    );
}
