//! Pushing single-platform images from OCI layouts to a real registry, as `publish` does for each
//! platform of an image at once.
use crate::common;

use std::fs;
use std::path::Path;

use cip::platform::Platform;
use cip::registry::index::sha256_digest;
use cip::registry::push::{push_layout, push_layout_from, PushedImage};
use cip::registry::RegistryAuth;
use cip::registry::{Endpoint, Registry};
use common::TestRegistry;
use serde_json::json;

/// Writes `bytes` into the layout's blob store and returns its descriptor.
fn add_blob(layout: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    let digest = sha256_digest(bytes);
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(digest.trim_start_matches("sha256:")), bytes).unwrap();
    json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
}

/// An OCI layout of one image for `arch`: a layer of its own, plus `shared` (a layer both
/// platforms have, as a `COPY` of the same files gives).
fn write_layout(layout: &Path, arch: &str, shared: &[u8]) {
    let own = add_blob(
        layout,
        "application/vnd.oci.image.layer.v1.tar",
        format!("the {arch} layer").repeat(5000).as_bytes(),
    );
    let shared = add_blob(layout, "application/vnd.oci.image.layer.v1.tar", shared);
    let config = serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [own["digest"], shared["digest"]]},
        "config": {}
    }))
    .unwrap();
    let config = add_blob(layout, "application/vnd.oci.image.config.v1+json", &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [own, shared]
    }))
    .unwrap();
    let manifest = add_blob(
        layout,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    );
    let index = json!({"schemaVersion": 2, "manifests": [manifest]});
    fs::write(layout.join("index.json"), index.to_string()).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
}

/// The CI failure this pins: two platforms of one image shared a layer, both pushes found it missing
/// and uploaded it, and the registry rewrote the repository's link to it while the other push's
/// manifest was being checked, which then failed with "blob unknown". The shared blob must be
/// uploaded once, and every manifest must land.
#[test]
fn platforms_pushed_at_once_upload_a_shared_blob_once() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let registry = Registry::connect(Endpoint::new(&reg.addr()), RegistryAuth::Anonymous)
            .await
            .unwrap();
        let (x86, arm) = (
            Platform::new("linux", "amd64", None),
            Platform::new("linux", "arm64", None),
        );
        // Several rounds, each into a fresh repository, so each starts with nothing published.
        for round in 0..20 {
            let shared = format!("files copied in round {round}").repeat(2000);
            let (amd64, arm64) = (
                dir.path().join(format!("amd64-{round}")),
                dir.path().join(format!("arm64-{round}")),
            );
            write_layout(&amd64, "amd64", shared.as_bytes());
            write_layout(&arm64, "arm64", shared.as_bytes());
            let repo = format!("image{round}");
            let (a, b) = tokio::join!(
                push_layout(&registry, &repo, &amd64, &x86),
                push_layout(&registry, &repo, &arm64, &arm),
            );
            let (a, b) = (
                a.unwrap_or_else(|e| panic!("round {round}, amd64: {e:#}")),
                b.unwrap_or_else(|e| panic!("round {round}, arm64: {e:#}")),
            );
            // 2 own layers, 2 configs, 1 shared layer.
            assert_eq!(
                a.blobs_uploaded + b.blobs_uploaded,
                5,
                "round {round}: {a:?} {b:?}"
            );
            assert_eq!(
                a.blobs_skipped + b.blobs_skipped,
                1,
                "round {round}: {a:?} {b:?}"
            );
            for pushed in [&a, &b] {
                let reference = registry.digest_ref(&repo, &pushed.entry.digest);
                let found = registry.manifest_raw(&reference).await.unwrap();
                assert!(
                    found.is_some(),
                    "round {round}: {reference} is not in the registry"
                );
            }
        }
    });
}

/// A child's push mounts the layer it shares with its parent from the parent's repository, and
/// reports each blob as it is done (the live push line of `--progress tty`).
#[test]
fn a_push_mounts_from_the_parent_and_reports_each_blob() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let registry = Registry::connect(Endpoint::new(&reg.addr()), RegistryAuth::Anonymous)
            .await
            .unwrap();
        let x86 = Platform::new("linux", "amd64", None);
        let shared = "the base layer".repeat(3000);
        let (parent, child) = (dir.path().join("parent"), dir.path().join("child"));
        write_layout(&parent, "amd64", shared.as_bytes());
        write_layout(&child, "arm64", shared.as_bytes());
        let parent_push = push_layout(&registry, "parent", &parent, &x86)
            .await
            .unwrap();
        assert_eq!(parent_push.blobs_uploaded, 3);

        let seen = std::sync::Mutex::new(Vec::new());
        let report = |p: &PushedImage, total: usize| {
            let done = p.blobs_uploaded + p.blobs_mounted + p.blobs_skipped;
            seen.lock().unwrap().push((done, total, p.blobs_mounted));
        };
        let from = ["parent".to_string()];
        let pushed = push_layout_from(&registry, "child", &child, &x86, &from, &report)
            .await
            .unwrap();
        // Its own layer and config uploaded, the shared layer mounted.
        assert_eq!(
            (pushed.blobs_uploaded, pushed.blobs_mounted),
            (2, 1),
            "{pushed:?}"
        );
        let seen = seen.into_inner().unwrap();
        assert_eq!(
            seen.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
            [(1, 3), (2, 3), (3, 3)],
            "one report per blob: {seen:?}"
        );
        assert_eq!(seen.last().unwrap().2, 1);
    });
}
