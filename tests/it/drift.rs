//! Drift: a context changed after its version was published, without a version bump.
use crate::common;

use std::fs;

use common::workspace::{results, text, Workspace};
use common::TestRegistry;

#[test]
fn drift_is_reported_refused_and_fixed_by_bump_changed() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let hello = ws.context("01-hello");
    fs::write(hello.join("greeting.txt"), "hi\n").unwrap();
    fs::write(hello.join("notes.md"), "not part of the image\n").unwrap();
    fs::write(hello.join(".dockerignore"), "*.md\n").unwrap();
    let addr = reg.addr();
    let publish = [
        "publish-locally",
        "--local-registry",
        addr.as_str(),
        "--json",
    ];
    let first = ws.cip(&publish);
    assert!(first.status.success(), "{}", text(&first));

    // Editing a .dockerignore'd file is no drift.
    fs::write(hello.join("notes.md"), "edited\n").unwrap();
    let status = ws.cip(&["status", "--local-registry", &addr]);
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(!out.contains("drift"), "{out}");
    assert!(out.contains("up to date"), "{out}");

    // Editing a real file of the mid-level context is.
    fs::write(hello.join("greeting.txt"), "hello there\n").unwrap();
    let plan = ws.cip(&["plan", "--local-registry", &addr]);
    let out = String::from_utf8_lossy(&plan.stdout);
    assert!(
        out.contains("drift: hello changed since 1.0.0 was published, version not bumped"),
        "{out}"
    );
    assert!(
        out.contains(
            "drift: app's parent hello changed since app 1.0.0 was published, version not bumped\n"
        ),
        "its descendant's context digest moved too, only through its parent: {out}"
    );
    assert!(
        !out.contains("drift: tools") && !out.contains("drift: busybox"),
        "{out}"
    );
    let status = ws.cip(&["status", "--local-registry", &addr]);
    assert!(String::from_utf8_lossy(&status.stdout)
        .contains("changed since published, version not bumped"));

    // publish refuses to skip it silently.
    let refused = ws.cip(&publish);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("drift: hello") && err.contains("--allow-drift"),
        "{err}"
    );
    let builds = ws.builds();

    // bump --changed bumps the drifted images and cascades.
    let bump = ws.cip(&["bump", "--changed", "--local-registry", &addr]);
    assert!(bump.status.success(), "{}", text(&bump));
    let out = String::from_utf8_lossy(&bump.stdout);
    assert!(out.contains("hello 1.0.0 -> 1.0.1"), "{out}");
    assert!(out.contains("app 1.0.0 -> 1.0.1"), "{out}");
    assert!(!out.contains("tools") && !out.contains("busybox"), "{out}");
    let df = fs::read_to_string(ws.context("02-app").join("Dockerfile")).unwrap();
    assert!(df.contains("${REGISTRY}/hello:1.0.1"), "{df}");

    // The next publish builds exactly those.
    let next = ws.cip(&publish);
    assert!(next.status.success(), "{}", text(&next));
    let mut built: Vec<String> = results(&next)
        .into_iter()
        .filter(|r| r.1 == "built")
        .map(|r| r.0)
        .collect();
    built.sort();
    assert_eq!(built, ["app", "hello"]);
    assert_eq!(ws.builds(), builds + 2);
    let status = ws.cip(&["status", "--local-registry", &addr]);
    assert!(!String::from_utf8_lossy(&status.stdout).contains("drift"));
    // Nothing drifted any more: bump --changed has nothing to do.
    let again = ws.cip(&["bump", "--changed", "--local-registry", &addr]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("nothing to bump"),
        "{}",
        text(&again)
    );
}

#[test]
fn allow_drift_publishes_anyway() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let addr = reg.addr();
    assert!(ws
        .cip(&["publish-locally", "--local-registry", &addr])
        .status
        .success());
    fs::write(ws.context("01-tools").join("extra.txt"), "x").unwrap();
    let refused = ws.cip(&["publish-locally", "--local-registry", &addr]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let out = ws.cip(&[
        "publish-locally",
        "--local-registry",
        &addr,
        "--allow-drift",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(results(&out).iter().all(|r| r.1 == "up to date"));
}
