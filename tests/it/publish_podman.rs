//! The demo tree publishes with the podman backend too: the same engine as buildah, driven through
//! `podman build`, with a private store and a store per platform for arm64; and pull-latest fills
//! podman's store.
use crate::common;

use common::workspace::{result_of, results, text, Workspace};
use common::TestRegistry;
use std::process::Command;

fn builds(calls: &[String]) -> usize {
    calls
        .iter()
        .filter(|l| l.split_whitespace().any(|w| w == "build"))
        .count()
}

#[test]
fn publish_with_the_podman_backend() {
    assert!(
        common::have_program("podman"),
        "`podman` is not installed: run scripts/setup-env"
    );
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let local = [
        "publish-locally",
        "--builder",
        "podman",
        "--local-registry",
        &reg.addr(),
        "--json",
    ];

    let first = ws.cip(&local);
    assert!(first.status.success(), "{}", text(&first));
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains("with podman"),
        "the builder is named: {stderr}"
    );
    let r = results(&first);
    assert_eq!(r.len(), 4);
    assert!(
        r.iter().all(|x| x.1 == "built" && x.2 == ["linux/amd64"]),
        "{r:?}"
    );
    assert_eq!(builds(&ws.calls("podman")), 4);
    assert!(
        ws.buildah_calls().is_empty(),
        "podman was asked for, buildah never runs: {:?}",
        ws.buildah_calls()
    );

    let calls = ws.calls("podman").len();
    let second = ws.cip(&local);
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        results(&second).iter().all(|x| x.1 == "up to date"),
        "{}",
        text(&second)
    );
    assert_eq!(
        ws.calls("podman").len(),
        calls,
        "a no-op run starts no podman"
    );

    // All platforms now: only arm64 is built, in a store of its own, and each index keeps amd64.
    let multi = [
        "publish",
        "--builder",
        "podman",
        "--remote-registry",
        &reg.addr(),
        "--default-platforms",
        "linux/amd64,linux/arm64",
        "--json",
    ];
    let third = ws.cip(&multi);
    assert!(third.status.success(), "{}", text(&third));
    let r = results(&third);
    for name in ["busybox", "hello", "tools", "app"] {
        assert_eq!(result_of(&r, name).2, ["linux/arm64"], "{r:?}");
    }
    assert_eq!(builds(&ws.calls("podman")), 8);
    let arm64_store = format!("{}-linux-arm64", ws.store.root().display());
    assert!(
        std::path::Path::new(&arm64_store).is_dir(),
        "arm64 builds use their own store {arm64_store}"
    );
    let config = common::image_config(&reg, "app:1.0.0", "arm64");
    assert_eq!(config["architecture"], "arm64");
    let index = common::raw_manifest(&reg, "app:latest");
    assert_eq!(
        common::index_platforms(&index),
        ["linux/amd64", "linux/arm64"]
    );

    // pull-latest-from-local-registry through podman: the current versions land in its store.
    let pulled = ws.cip(&[
        "pull-latest-from-local-registry",
        "--local-registry",
        &reg.addr(),
        "--builder",
        "podman",
    ]);
    assert!(pulled.status.success(), "{}", text(&pulled));
    let mut images = Command::new("podman");
    images
        .args(ws.store.storage_args())
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let images = common::run_ok(&mut images);
    for image in ["busybox", "hello", "tools", "app"] {
        for tag in ["1.0.0", "latest"] {
            let want = format!("{}/{image}:{tag}", reg.addr());
            assert!(images.contains(&want), "{want} in {images}");
        }
    }
}
