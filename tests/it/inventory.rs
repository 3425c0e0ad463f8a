//! What the registry holds is asked once per image: a repeated no-op run over single-platform images
//! (pushed by other tools, e.g. `docker push`) reads their manifests only, since the platform of an
//! image config is cached. Real registry, real buildah and skopeo.
use crate::common;

use common::workspace::{text, Workspace};
use common::TestRegistry;

/// GET requests the registry logged whose path contains `needle`.
fn gets(reg: &TestRegistry, needle: &str) -> usize {
    reg.log()
        .lines()
        .filter(|l| l.contains("http.request.method=GET") && l.contains(needle))
        .filter(|l| l.contains("msg=\"response completed\""))
        .count()
}

#[test]
fn a_repeated_plan_over_single_platform_images_reads_one_manifest_per_image() {
    let reg = TestRegistry::start_logging_requests();
    let ws = Workspace::demo();
    let addr = reg.addr();
    let first = ws.cip(&["publish-locally", "--local-registry", &addr]);
    assert!(first.status.success(), "{}", text(&first));
    // Replace each index by its single amd64 manifest, as a plain `docker push` leaves it.
    for image in ["busybox", "hello", "tools", "app"] {
        let r = reg.docker_ref(&format!("{image}:1.0.0"));
        common::skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--override-arch",
            "amd64",
            &r,
            &r,
        ]);
        let manifest = common::raw_manifest(&reg, &format!("{image}:1.0.0"));
        assert!(manifest.get("manifests").is_none(), "{image}: {manifest}");
    }
    let cache = ws.project().join(".cip/cache/config-platforms");
    let plan = |label: &str| {
        let out = ws.cip(&["plan", "--local-registry", &addr]);
        assert!(out.status.success(), "{label}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            stdout.contains("0 builds of 0 images needed"),
            "{label}: {stdout}"
        );
    };

    let (manifests, blobs) = (gets(&reg, "/manifests/1.0.0"), gets(&reg, "/blobs/sha256:"));
    plan("first");
    assert_eq!(gets(&reg, "/manifests/1.0.0") - manifests, 4);
    assert_eq!(
        gets(&reg, "/blobs/sha256:") - blobs,
        4,
        "one config per image"
    );
    assert_eq!(std::fs::read_to_string(&cache).unwrap().lines().count(), 4);

    let (manifests, blobs) = (gets(&reg, "/manifests/1.0.0"), gets(&reg, "/blobs/sha256:"));
    plan("second");
    assert_eq!(gets(&reg, "/manifests/1.0.0") - manifests, 4);
    assert_eq!(
        gets(&reg, "/blobs/sha256:") - blobs,
        0,
        "the configs' platforms come from the cache"
    );

    // A damaged cache is only a cache: the registry is asked again.
    std::fs::write(&cache, "not\ta cache\n").unwrap();
    plan("damaged cache");
    assert_eq!(gets(&reg, "/blobs/sha256:") - blobs, 4);
}
