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

/// The STATE column of `image`'s row of `cip status`.
fn state_of(status: &str, image: &str) -> String {
    let line = status
        .lines()
        .find(|l| l.split_whitespace().next() == Some(image))
        .unwrap_or_else(|| panic!("no row for {image}: {status}"));
    line.split_whitespace()
        .skip(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn an_index_without_a_context_digest_is_unknown_not_up_to_date_and_cip_merge_keeps_cips_indexes() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let addr = reg.addr();
    let first = ws.cip(&["publish-locally", "--local-registry", &addr]);
    assert!(first.status.success(), "{}", text(&first));
    let tag = format!("{addr}/busybox:1.0.0");

    // cip merge does not overwrite an index cip published...
    let refused = ws.cip(&["merge", "--tag", &tag, &tag]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("is an index cip published") && err.contains("--force"),
        "{err}"
    );
    let index = common::raw_manifest(&reg, "busybox:1.0.0");
    assert!(index["annotations"]["dev.cip.context-digest"].is_string());

    // ... unless forced; then the version records no context digest.
    let forced = ws.cip(&["merge", "--tag", &tag, &tag, "--force"]);
    assert!(forced.status.success(), "{}", text(&forced));
    let index = common::raw_manifest(&reg, "busybox:1.0.0");
    assert!(
        index["annotations"]["dev.cip.context-digest"].is_null(),
        "{index}"
    );

    let status = |ws: &Workspace| {
        let out = ws.cip(&["status", "--local-registry", &addr]);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = status(&ws);
    assert_eq!(
        state_of(&out, "busybox"),
        "unknown: no context digest",
        "{out}"
    );
    assert_eq!(state_of(&out, "hello"), "up to date", "{out}");

    // busybox changes: it stays unknown, and its children are not called changed because of it.
    let dockerfile = ws.context("00-busybox").join("Dockerfile");
    let before = fs::read_to_string(&dockerfile).unwrap();
    fs::write(&dockerfile, format!("{before}LABEL changed=yes\n")).unwrap();
    let out = status(&ws);
    assert_eq!(
        state_of(&out, "busybox"),
        "unknown: no context digest",
        "{out}"
    );
    // Below them too: app builds on hello and tools, whose drift may be busybox's.
    for child in ["hello", "tools", "app"] {
        assert_eq!(
            state_of(&out, child),
            "unknown: builds on busybox, which records no context digest",
            "{out}"
        );
    }
    assert!(
        !out.contains("changed since published") && !out.contains("drift: hello changed"),
        "{out}"
    );

    let plan = ws.cip(&["plan", "--local-registry", &addr, "--json"]);
    assert!(plan.status.success(), "{}", text(&plan));
    let doc: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let image = |name: &str| {
        doc["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap()
            .clone()
    };
    let busybox = image("busybox");
    assert_eq!(busybox["unknown_provenance"], true, "{busybox:#}");
    assert_eq!(busybox["drift"], false, "{busybox:#}");
    assert_eq!(
        busybox["platforms"][0]["reason"],
        "published; unknown: no context digest"
    );
    let hello = image("hello");
    assert_eq!(hello["unknown_provenance"], false);
    assert_eq!(hello["unknown_parents"], serde_json::json!(["busybox"]));
    assert_eq!(
        image("app")["unknown_parents"],
        serde_json::json!(["busybox"])
    );
    let text_plan = ws.cip(&["plan", "--local-registry", &addr]);
    let out = String::from_utf8_lossy(&text_plan.stdout);
    assert!(
        out.contains("published; unknown: no context digest"),
        "{out}"
    );
    assert!(
        out.contains("drift: hello or busybox below it changed since hello 1.0.0 was published"),
        "{out}"
    );
    assert!(!out.contains("drift: hello changed"), "{out}");
}
