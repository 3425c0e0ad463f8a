//! `cip merge`: an index from single-platform images of two repositories of one real registry
//! (arm64 built under QEMU emulation), checked with skopeo.
use crate::common;

use common::workspace::{text, Workspace};
use common::{image_config, index_platforms, is_tagged, raw_manifest as raw, TestRegistry};

/// Builds the demo's busybox context for `platform` with buildah and pushes it, single-platform,
/// to `reg/repo_tag`; `label` makes a different image of the same platform.
fn push_image(ws: &Workspace, reg: &TestRegistry, platform: &str, label: &str, repo_tag: &str) {
    let local = format!("localhost/merge-test-{}", repo_tag.replace([':', '/'], "-"));
    let ctx = ws.context("00-busybox");
    ws.store.run(&[
        "bud",
        "-q",
        "--platform",
        platform,
        "--label",
        label,
        "-t",
        &local,
        ctx.to_str().unwrap(),
    ]);
    ws.store.run(&[
        "push",
        "-q",
        "--tls-verify=false",
        &local,
        &format!("docker://{}/{repo_tag}", reg.addr()),
    ]);
}

#[test]
fn merge_of_two_single_platform_images_from_two_repositories_and_conflicts() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    push_image(&ws, &reg, "linux/amd64", "v=1", "team-a/app:amd64");
    push_image(&ws, &reg, "linux/arm64", "v=1", "team-b/app-arm:1.0");
    let a = format!("{}/team-a/app:amd64", reg.addr());
    let b = format!("{}/team-b/app-arm:1.0", reg.addr());
    let tag = format!("{}/final/app:1.0", reg.addr());

    // --dry-run shows the index and writes nothing.
    let dry = ws.cip(&["merge", "--tag", &tag, &a, &b, "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry));
    let shown: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(index_platforms(&shown), ["linux/amd64", "linux/arm64"]);
    assert!(!is_tagged(&reg, "final/app:1.0"));

    let out = ws.cip(&[
        "merge",
        "--tag",
        &tag,
        &a,
        &b,
        "--annotation",
        "org.opencontainers.image.version=1.0",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let index = raw(&reg, "final/app:1.0");
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(index_platforms(&index), ["linux/amd64", "linux/arm64"]);
    assert_eq!(
        index["annotations"]["org.opencontainers.image.version"],
        "1.0"
    );
    assert_eq!(
        index["manifests"], shown["manifests"],
        "the dry run showed these entries"
    );
    // The configs (blobs) are readable from the target repository: they were mounted there.
    for arch in ["amd64", "arm64"] {
        let config = image_config(&reg, "final/app:1.0", arch);
        assert_eq!(config["architecture"], arch);
        assert_eq!(config["os"], "linux");
    }

    // Another amd64 image: two sources of one platform are refused...
    push_image(&ws, &reg, "linux/amd64", "v=2", "team-c/app:amd64");
    let c = format!("{}/team-c/app:amd64", reg.addr());
    let both = format!("{}/final/both:1.0", reg.addr());
    let refused = ws.cip(&["merge", "--tag", &both, &a, &b, &c]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(&format!("linux/amd64 comes from {a} and {c}")) && err.contains("--prefer"),
        "{err}"
    );
    assert!(!is_tagged(&reg, "final/both:1.0"));

    // ... unless --prefer says which.
    let preferred = ws.cip(&["merge", "--tag", &both, &a, &b, &c, "--prefer", &c]);
    assert!(preferred.status.success(), "{}", text(&preferred));
    let amd_of = |doc: &serde_json::Value| {
        doc["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == "amd64")
            .unwrap()["digest"]
            .clone()
    };
    assert_eq!(
        amd_of(&raw(&reg, "final/both:1.0")),
        raw_digest(&reg, "team-c/app:amd64")
    );
    assert_ne!(amd_of(&raw(&reg, "final/both:1.0")), amd_of(&index));
}

/// The digest of what a tag points to, as skopeo computes it.
fn raw_digest(reg: &TestRegistry, image: &str) -> serde_json::Value {
    let out = common::skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &reg.docker_ref(image),
    ]);
    serde_json::Value::String(out.trim().to_string())
}

#[test]
fn merge_refuses_sources_of_another_registry_and_a_digest_as_tag() {
    let ws = Workspace::demo();
    let out = ws.cip(&[
        "merge",
        "--tag",
        "localhost:1/final/app:1.0",
        "localhost:2/team/app:amd64",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not in localhost:1"), "{}", text(&out));
    let out = ws.cip(&["merge", "--tag", "localhost:1/final/app", "localhost:1/a:1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no :TAG or @DIGEST"), "{}", text(&out));
}

#[test]
fn merge_refuses_a_source_whose_config_names_another_platform_than_its_entry() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    push_image(&ws, &reg, "linux/amd64", "v=1", "team-a/app:amd64");
    // An index in the same repository that calls the amd64 image arm64.
    let manifest = common::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &reg.docker_ref("team-a/app:amd64"),
    ]);
    let digest = raw_digest(&reg, "team-a/app:amd64");
    let media_type = serde_json::from_str::<serde_json::Value>(&manifest).unwrap()["mediaType"]
        .as_str()
        .unwrap_or("application/vnd.oci.image.manifest.v1+json")
        .to_string();
    let lie = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": media_type,
            "digest": digest,
            "size": manifest.len(),
            "platform": {"os": "linux", "architecture": "arm64"},
        }],
    });
    reg.put_manifest("team-a/app", "lie", &lie);

    let tag = format!("{}/final/app:1.0", reg.addr());
    let src = format!("{}/team-a/app:lie", reg.addr());
    for dry in [true, false] {
        let mut args = vec!["merge", "--tag", &tag, &src];
        if dry {
            args.push("--dry-run");
        }
        let out = ws.cip(&args);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("the linux/arm64 image of")
                && err.contains("is an image for linux/amd64, not linux/arm64"),
            "{err}"
        );
        assert!(!is_tagged(&reg, "final/app:1.0"));
    }
}
