//! CI fan-out and fan-in: `publish --stage` per platform (linux/arm64 under QEMU emulation), then
//! `publish --merge`, against real registries and buildah, checked with skopeo.
use crate::common;

use std::process::Output;

use common::workspace::{result_of, results, text, Workspace};
use common::{image_config, index_platforms, is_tagged, raw_manifest as raw, TestRegistry};
use serde_json::Value;

const IMAGES: [&str; 4] = ["busybox", "hello", "tools", "app"];

fn stage(ws: &Workspace, reg: &TestRegistry, platform: &str, extra: &[&str]) -> Output {
    let addr = reg.addr();
    let mut args = vec![
        "publish",
        "--remote-registry",
        &addr,
        "--stage",
        "--platform",
        platform,
        "--json",
    ];
    args.extend_from_slice(extra);
    ws.cip(&args)
}

fn merge(ws: &Workspace, reg: &TestRegistry, extra: &[&str]) -> Output {
    let addr = reg.addr();
    let mut args = vec!["publish", "--remote-registry", &addr, "--merge"];
    args.extend_from_slice(extra);
    ws.cip(&args)
}

fn ok(out: &Output) {
    assert!(out.status.success(), "{}", text(out));
}

/// Each tag's index as the registry holds it, for comparing two registries.
fn tags_of(reg: &TestRegistry, image: &str) -> Vec<String> {
    let out = common::skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/{image}", reg.addr()),
    ]);
    let doc: Value = serde_json::from_str(&out).unwrap();
    let mut tags: Vec<String> = doc["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    tags.sort();
    tags
}

#[test]
fn two_stage_runs_then_merge_equal_one_multi_platform_publish() {
    let (staged, direct) = (TestRegistry::start(), TestRegistry::start());
    let ws = Workspace::demo();

    let amd = stage(&ws, &staged, "linux/amd64", &[]);
    ok(&amd);
    let r = results(&amd);
    for image in IMAGES {
        assert_eq!(result_of(&r, image).2, ["linux/amd64"], "{}", text(&amd));
        // Nothing in the final repositories before the merge.
        assert!(!is_tagged(&staged, &format!("{image}:1.0.0")));
        assert!(!is_tagged(&staged, &format!("{image}:latest")));
        let s = raw(&staged, &format!("cip-stage/linux-amd64/{image}:1.0.0"));
        assert_eq!(index_platforms(&s), ["linux/amd64"]);
    }
    let arm = stage(&ws, &staged, "linux/arm64", &[]);
    ok(&arm);
    // The grandchild was built on its own platform's staged parents.
    let app = image_config(&staged, "cip-stage/linux-arm64/app:1.0.0", "arm64");
    assert_eq!(app["architecture"], "arm64");
    assert!(!is_tagged(&staged, "app:1.0.0"));

    ok(&merge(&ws, &staged, &["--arch-tags"]));
    ok(&ws.cip(&[
        "publish",
        "--remote-registry",
        &direct.addr(),
        "--arch-tags",
    ]));

    let mut digests = Vec::new();
    for image in IMAGES {
        assert_eq!(tags_of(&staged, image), tags_of(&direct, image), "{image}");
        assert_eq!(
            tags_of(&staged, image),
            ["1.0.0", "1.0.0-amd64", "1.0.0-arm64", "latest"]
        );
        for tag in ["1.0.0", "latest"] {
            let (a, b) = (
                raw(&staged, &format!("{image}:{tag}")),
                raw(&direct, &format!("{image}:{tag}")),
            );
            assert_eq!(a["mediaType"], b["mediaType"], "{image}:{tag}");
            assert_eq!(index_platforms(&a), index_platforms(&b), "{image}:{tag}");
            assert_eq!(index_platforms(&a), ["linux/amd64", "linux/arm64"]);
            assert_eq!(a["annotations"], b["annotations"], "{image}:{tag}");
            assert!(a["annotations"]["dev.cip.context-digest"].is_string());
        }
        for arch in ["amd64", "arm64"] {
            let config = image_config(&staged, &format!("{image}:1.0.0"), arch);
            assert_eq!(config["architecture"], arch, "{image} {arch}");
            // The per-arch tag is that platform's manifest, in both registries.
            let tagged = image_config(&staged, &format!("{image}:1.0.0-{arch}"), arch);
            assert_eq!(tagged, config, "{image}:1.0.0-{arch}");
            let direct_tagged = image_config(&direct, &format!("{image}:1.0.0-{arch}"), arch);
            assert_eq!(direct_tagged["architecture"], arch);
        }
        digests.push(raw(&staged, &format!("{image}:1.0.0")));
    }

    // Idempotent: a second merge finds everything published and writes nothing.
    let again = merge(&ws, &staged, &[]);
    ok(&again);
    assert!(
        text(&again).contains("4 images already published in full"),
        "{}",
        text(&again)
    );
    for (image, before) in IMAGES.iter().zip(digests) {
        assert_eq!(raw(&staged, &format!("{image}:1.0.0")), before);
    }
}

#[test]
fn a_stage_run_after_the_parent_is_published_links_it_and_rebuilds_nothing_above_it() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    // busybox published in final form (both platforms), as an earlier release did.
    ok(&ws.cip(&["publish", "--remote-registry", &reg.addr(), "busybox"]));
    let published = raw(&reg, "busybox:1.0.0");
    let builds = ws.builds();

    let plan = ws.cip(&[
        "plan",
        "--remote-registry",
        &reg.addr(),
        "--stage",
        "--platform",
        "linux/arm64",
        "--json",
    ]);
    ok(&plan);
    let doc: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let steps = doc["steps"].as_array().unwrap();
    let link = steps
        .iter()
        .find(|s| s["action"] == "link")
        .unwrap_or_else(|| panic!("no link step: {doc:#}"));
    assert_eq!(link["from"], format!("{}/busybox", reg.addr()));
    assert_eq!(
        link["repository"],
        format!("{}/cip-stage/linux-arm64/busybox", reg.addr())
    );
    let stage_registry = format!("{}/cip-stage/linux-arm64", reg.addr());
    for s in steps.iter().filter(|s| s["action"] == "build") {
        assert_eq!(s["platform"], "linux/arm64");
        assert_eq!(s["build_args"]["REGISTRY"], stage_registry.as_str());
        assert!(
            s["output"]["repository"]
                .as_str()
                .unwrap()
                .starts_with(&stage_registry),
            "{s}"
        );
    }
    assert_eq!(
        steps.iter().filter(|s| s["action"] == "build").count(),
        3,
        "hello, tools and app; busybox is published: {doc:#}"
    );

    let out = stage(&ws, &reg, "linux/arm64", &[]);
    ok(&out);
    assert_eq!(ws.builds() - builds, 3, "{}", text(&out));
    let r = results(&out);
    assert_eq!(result_of(&r, "busybox").1, "up to date", "{r:?}");
    // The stage holds the very manifest of the final index, with its annotations.
    let linked = raw(&reg, "cip-stage/linux-arm64/busybox:1.0.0");
    let arm_entry = |doc: &Value| {
        doc["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == "arm64")
            .unwrap()["digest"]
            .clone()
    };
    assert_eq!(arm_entry(&linked), arm_entry(&published));
    assert_eq!(linked["annotations"], published["annotations"]);
    assert_eq!(
        raw(&reg, "busybox:1.0.0"),
        published,
        "the final index is untouched"
    );
    assert_eq!(
        image_config(&reg, "cip-stage/linux-arm64/app:1.0.0", "arm64")["architecture"],
        "arm64"
    );
}

#[test]
fn merge_with_a_platform_missing_publishes_the_complete_images_names_the_other_and_exits_1() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    ok(&stage(&ws, &reg, "linux/amd64", &[]));
    // arm64 staged for everything but app.
    ok(&stage(&ws, &reg, "linux/arm64", &["hello", "tools"]));
    assert!(!is_tagged(&reg, "cip-stage/linux-arm64/app:1.0.0"));

    // --dry-run --json: the decision per image, nothing written.
    let dry = merge(&ws, &reg, &["--dry-run", "--json"]);
    assert_eq!(dry.status.code(), Some(1), "{}", text(&dry));
    let doc: Value = serde_json::from_slice(&dry.stdout).unwrap();
    let result = |name: &str| {
        doc["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {doc:#}"))
            .clone()
    };
    assert_eq!(result("app")["result"], "incomplete");
    assert_eq!(result("app")["missing"], serde_json::json!(["linux/arm64"]));
    assert_eq!(result("busybox")["result"], "merged");
    assert_eq!(
        result("busybox")["tags"],
        serde_json::json!(["latest", "1.0.0"])
    );
    assert!(!is_tagged(&reg, "busybox:1.0.0"));

    let out = merge(&ws, &reg, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "app:1.0.0 linux/arm64: not staged: {}/cip-stage/linux-arm64/app:1.0.0",
            reg.addr()
        )),
        "{err}"
    );
    for image in ["busybox", "hello", "tools"] {
        let index = raw(&reg, &format!("{image}:1.0.0"));
        assert_eq!(index_platforms(&index), ["linux/amd64", "linux/arm64"]);
        assert!(is_tagged(&reg, &format!("{image}:latest")));
    }
    assert!(!is_tagged(&reg, "app:1.0.0"));
    assert!(!is_tagged(&reg, "app:latest"));

    // --allow-incomplete: exit 0, and still no index without arm64.
    let allowed = merge(&ws, &reg, &["--allow-incomplete"]);
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed));
    assert!(!is_tagged(&reg, "app:1.0.0"));

    // The missing platform staged, the next merge completes app.
    ok(&stage(&ws, &reg, "linux/arm64", &[]));
    ok(&merge(&ws, &reg, &["--arch-tags"]));
    assert_eq!(
        index_platforms(&raw(&reg, "app:1.0.0")),
        ["linux/amd64", "linux/arm64"]
    );
    let arm = raw(&reg, "app:1.0.0-arm64");
    assert!(
        arm.get("manifests").is_none(),
        "a platform's manifest: {arm}"
    );
    assert_eq!(
        image_config(&reg, "app:1.0.0-arm64", "arm64")["architecture"],
        "arm64"
    );
}

#[test]
fn stage_needs_exactly_one_platform() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let out = ws.cip(&["publish", "--remote-registry", &reg.addr(), "--stage"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("--stage builds one platform"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_stage_from_an_older_context_is_not_merged_and_the_next_stage_run_replaces_it() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    for platform in ["linux/amd64", "linux/arm64"] {
        ok(&stage(&ws, &reg, platform, &["busybox"]));
    }
    let old = raw(&reg, "cip-stage/linux-arm64/busybox:1.0.0");
    // The context changes after the stage jobs ran, without a version bump.
    let dockerfile = ws.context("00-busybox").join("Dockerfile");
    let before = std::fs::read_to_string(&dockerfile).unwrap();
    std::fs::write(&dockerfile, format!("{before}LABEL changed=yes\n")).unwrap();

    let out = merge(&ws, &reg, &["busybox"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "busybox:1.0.0 linux/arm64: staged from an older context (rerun that platform's --stage job)"
        ),
        "{}",
        text(&out)
    );
    assert!(!is_tagged(&reg, "busybox:1.0.0"));

    // The stage job again: the stale stage is rebuilt (no drift refusal), then the merge succeeds.
    let again = stage(&ws, &reg, "linux/arm64", &["busybox"]);
    ok(&again);
    assert_eq!(result_of(&results(&again), "busybox").2, ["linux/arm64"]);
    let new = raw(&reg, "cip-stage/linux-arm64/busybox:1.0.0");
    assert_ne!(
        new["annotations"]["dev.cip.context-digest"],
        old["annotations"]["dev.cip.context-digest"]
    );
    assert_eq!(index_platforms(&new), ["linux/arm64"]);
    ok(&stage(&ws, &reg, "linux/amd64", &["busybox"]));
    ok(&merge(&ws, &reg, &["busybox"]));
    assert_eq!(
        index_platforms(&raw(&reg, "busybox:1.0.0")),
        ["linux/amd64", "linux/arm64"]
    );
}

#[test]
fn a_registry_with_a_path_stages_under_it_and_merges_there() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    for child in ["01-hello", "01-tools", "02-app"] {
        std::fs::remove_dir_all(ws.context(child)).unwrap();
    }
    common::workspace::set_info(
        &ws,
        "00-busybox",
        "{:version \"1.0.0\" :platforms #{\"linux/amd64\"}}",
    );
    let address = format!("{}/team", reg.addr());
    let staged = ws.cip(&[
        "publish",
        "--remote-registry",
        &address,
        "--stage",
        "--platform",
        "linux/amd64",
        "--stage-namespace",
        "ci/stage",
    ]);
    ok(&staged);
    assert_eq!(
        index_platforms(&raw(&reg, "team/ci/stage/linux-amd64/busybox:1.0.0")),
        ["linux/amd64"]
    );
    ok(&ws.cip(&[
        "publish",
        "--remote-registry",
        &address,
        "--merge",
        "--stage-namespace",
        "ci/stage",
    ]));
    assert_eq!(
        index_platforms(&raw(&reg, "team/busybox:1.0.0")),
        ["linux/amd64"]
    );
    assert!(is_tagged(&reg, "team/busybox:latest"));
}

/// The demo cut to busybox and hello (its child), each with the platforms given.
fn busybox_and_hello(busybox: &str, hello: &str) -> Workspace {
    let ws = Workspace::demo();
    for gone in ["01-tools", "02-app"] {
        std::fs::remove_dir_all(ws.context(gone)).unwrap();
    }
    let info = |platforms: &str| format!("{{:version \"1.0.0\" :platforms #{{{platforms}}}}}");
    common::workspace::set_info(&ws, "00-busybox", &info(busybox));
    common::workspace::set_info(&ws, "01-hello", &info(hello));
    ws
}

/// Changes busybox's context without a version bump.
fn change_busybox(ws: &Workspace) {
    let dockerfile = ws.context("00-busybox").join("Dockerfile");
    let before = std::fs::read_to_string(&dockerfile).unwrap();
    std::fs::write(&dockerfile, format!("{before}LABEL changed=yes\n")).unwrap();
}

const AMD64: &str = "\"linux/amd64\"";
const BOTH: &str = "\"linux/amd64\" \"linux/arm64\"";
const BUSYBOX_DRIFT: &str = "drift: busybox changed since 1.0.0 was published, version not bumped";

#[test]
fn a_stage_run_refuses_to_link_a_final_version_whose_context_changed_without_a_bump() {
    let reg = TestRegistry::start();
    let ws = busybox_and_hello(AMD64, AMD64);
    ok(&ws.cip(&["publish", "--remote-registry", &reg.addr(), "busybox"]));
    let published = raw(&reg, "busybox:1.0.0");
    change_busybox(&ws);

    // The plan of the stage run shows the drift of the version it would link.
    let plan = ws.cip(&[
        "plan",
        "--remote-registry",
        &reg.addr(),
        "--stage",
        "--platform",
        "linux/amd64",
    ]);
    ok(&plan);
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains(BUSYBOX_DRIFT),
        "{}",
        text(&plan)
    );

    // The stage run refuses, as publish does, and stages nothing.
    let refused = stage(&ws, &reg, "linux/amd64", &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains(BUSYBOX_DRIFT), "{err}");
    assert!(err.contains("--allow-drift"), "{err}");
    assert!(!is_tagged(&reg, "cip-stage/linux-amd64/busybox:1.0.0"));
    assert!(!is_tagged(&reg, "cip-stage/linux-amd64/hello:1.0.0"));

    // --allow-drift goes on, says so, and links the published version as it is.
    let allowed = stage(&ws, &reg, "linux/amd64", &["--allow-drift"]);
    ok(&allowed);
    let err = String::from_utf8_lossy(&allowed.stderr);
    assert!(err.contains(BUSYBOX_DRIFT), "{err}");
    assert!(err.contains("--allow-drift: going on"), "{err}");
    let linked = raw(&reg, "cip-stage/linux-amd64/busybox:1.0.0");
    assert_eq!(linked["annotations"], published["annotations"]);
    assert_eq!(
        index_platforms(&raw(&reg, "cip-stage/linux-amd64/hello:1.0.0")),
        ["linux/amd64"]
    );
    assert_eq!(
        raw(&reg, "busybox:1.0.0"),
        published,
        "the final index is untouched"
    );
}

#[test]
fn a_merge_refuses_to_complete_a_final_index_whose_context_changed_without_a_bump() {
    let reg = TestRegistry::start();
    let ws = busybox_and_hello(AMD64, AMD64);
    std::fs::remove_dir_all(ws.context("01-hello")).unwrap();
    ok(&ws.cip(&["publish", "--remote-registry", &reg.addr()]));
    let published = raw(&reg, "busybox:1.0.0");
    // arm64 added, and the context changed, version not bumped.
    common::workspace::set_info(
        &ws,
        "00-busybox",
        &format!("{{:version \"1.0.0\" :platforms #{{{BOTH}}}}}"),
    );
    change_busybox(&ws);
    let refused = stage(&ws, &reg, "linux/arm64", &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    ok(&stage(&ws, &reg, "linux/arm64", &["--allow-drift"]));

    // The arm64 stage is from the new context, the published amd64 from the old one: no index
    // of both without --allow-drift.
    let out = merge(&ws, &reg, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(BUSYBOX_DRIFT), "{err}");
    assert!(err.contains("--allow-drift"), "{err}");
    assert_eq!(raw(&reg, "busybox:1.0.0"), published);

    let dry = merge(&ws, &reg, &["--dry-run", "--json"]);
    let doc: Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(doc["images"][0]["drift"], true, "{doc:#}");

    // --allow-drift completes it, as publish --allow-drift adds a platform, and the index keeps
    // the digest it was published with: the drift stays visible.
    let allowed = merge(&ws, &reg, &["--allow-drift"]);
    ok(&allowed);
    assert!(
        String::from_utf8_lossy(&allowed.stderr).contains("--allow-drift: going on"),
        "{}",
        text(&allowed)
    );
    let index = raw(&reg, "busybox:1.0.0");
    assert_eq!(index_platforms(&index), ["linux/amd64", "linux/arm64"]);
    assert_eq!(
        index["annotations"]["dev.cip.context-digest"],
        published["annotations"]["dev.cip.context-digest"]
    );
}

#[test]
fn merge_prune_stage_deletes_the_staging_tags_of_the_merged_images_only() {
    let reg = TestRegistry::start();
    // busybox declares arm64 too, which is not staged: it stays incomplete; hello is complete.
    let ws = busybox_and_hello(BOTH, AMD64);
    ok(&stage(&ws, &reg, "linux/amd64", &[]));
    let busybox_stage = raw(&reg, "cip-stage/linux-amd64/busybox:1.0.0");

    let out = merge(&ws, &reg, &["--prune-stage"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "busybox is incomplete: {}",
        text(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "pruned {}/cip-stage/linux-amd64/hello:1.0.0",
            reg.addr()
        )),
        "{err}"
    );
    assert!(!is_tagged(&reg, "cip-stage/linux-amd64/hello:1.0.0"));
    // The final index still holds its platform: only the stage's index went.
    assert_eq!(index_platforms(&raw(&reg, "hello:1.0.0")), ["linux/amd64"]);
    assert_eq!(
        image_config(&reg, "hello:1.0.0", "amd64")["architecture"],
        "amd64"
    );
    // The incomplete image keeps its stage for the next merge.
    assert_eq!(
        raw(&reg, "cip-stage/linux-amd64/busybox:1.0.0"),
        busybox_stage
    );
    assert!(!is_tagged(&reg, "busybox:1.0.0"));
}

#[test]
fn merge_prune_stage_on_a_registry_that_refuses_deletes_says_so_once_and_exits_0() {
    let reg = TestRegistry::start_without_deletes();
    let ws = busybox_and_hello(AMD64, AMD64);
    ok(&stage(&ws, &reg, "linux/amd64", &[]));
    let out = merge(&ws, &reg, &["--prune-stage"]);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("does not delete manifests (405 UNSUPPORTED)")
            .count(),
        1,
        "{err}"
    );
    for image in ["busybox", "hello"] {
        assert!(is_tagged(&reg, &format!("{image}:1.0.0")));
        assert!(is_tagged(
            &reg,
            &format!("cip-stage/linux-amd64/{image}:1.0.0")
        ));
    }
}

#[test]
fn a_stage_that_records_no_context_digest_is_not_merged_and_the_next_stage_run_replaces_it() {
    let reg = TestRegistry::start();
    let ws = busybox_and_hello(AMD64, AMD64);
    std::fs::remove_dir_all(ws.context("01-hello")).unwrap();
    ok(&stage(&ws, &reg, "linux/amd64", &[]));
    // The stage index rewritten without its annotations: content nothing vouches for.
    let mut index = raw(&reg, "cip-stage/linux-amd64/busybox:1.0.0");
    index.as_object_mut().unwrap().remove("annotations");
    reg.put_manifest("cip-stage/linux-amd64/busybox", "1.0.0", &index);
    assert!(raw(&reg, "cip-stage/linux-amd64/busybox:1.0.0")["annotations"].is_null());

    let out = merge(&ws, &reg, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "busybox:1.0.0 linux/amd64: staged from an older context (rerun that platform's --stage job)"
        ),
        "{}",
        text(&out)
    );
    assert!(!is_tagged(&reg, "busybox:1.0.0"));

    // The stage job again rebuilds it, and the merge takes it.
    let again = stage(&ws, &reg, "linux/amd64", &[]);
    ok(&again);
    assert_eq!(result_of(&results(&again), "busybox").2, ["linux/amd64"]);
    ok(&merge(&ws, &reg, &[]));
    assert_eq!(
        index_platforms(&raw(&reg, "busybox:1.0.0")),
        ["linux/amd64"]
    );
}

#[test]
fn merge_prune_stage_also_deletes_the_stage_links_of_published_parents() {
    let reg = TestRegistry::start();
    let ws = busybox_and_hello(AMD64, AMD64);
    ok(&ws.cip(&["publish", "--remote-registry", &reg.addr(), "busybox"]));
    let published = raw(&reg, "busybox:1.0.0");
    // The stage run links busybox into the stage for hello.
    ok(&stage(&ws, &reg, "linux/amd64", &[]));
    assert!(is_tagged(&reg, "cip-stage/linux-amd64/busybox:1.0.0"));

    let out = merge(&ws, &reg, &["--prune-stage"]);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 staging tag(s) pruned"), "{err}");
    for image in ["busybox", "hello"] {
        assert!(!is_tagged(
            &reg,
            &format!("cip-stage/linux-amd64/{image}:1.0.0")
        ));
        assert!(is_tagged(&reg, &format!("{image}:1.0.0")));
    }
    assert_eq!(raw(&reg, "busybox:1.0.0"), published);
    // Pruning again finds nothing to delete.
    let again = merge(&ws, &reg, &["--prune-stage"]);
    ok(&again);
    assert!(!String::from_utf8_lossy(&again.stderr).contains("pruned"));
}

#[test]
fn merge_of_a_target_brings_its_staged_parents_that_are_not_published() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    // Stage runs of hello (and so of busybox, its parent) on both platforms.
    ok(&stage(&ws, &reg, "linux/amd64", &["hello"]));
    ok(&stage(&ws, &reg, "linux/arm64", &["hello"]));
    assert!(is_tagged(&reg, "cip-stage/linux-arm64/busybox:1.0.0"));
    assert!(!is_tagged(&reg, "cip-stage/linux-amd64/tools:1.0.0"));

    let out = merge(&ws, &reg, &["hello"]);
    ok(&out);
    for image in ["busybox", "hello"] {
        let index = raw(&reg, &format!("{image}:1.0.0"));
        assert_eq!(
            index_platforms(&index),
            ["linux/amd64", "linux/arm64"],
            "{image}: {}",
            text(&out)
        );
        assert!(is_tagged(&reg, &format!("{image}:latest")));
    }
    // Images the target does not need stay as they were.
    assert!(!is_tagged(&reg, "tools:1.0.0"));
    assert!(!is_tagged(&reg, "app:1.0.0"));
}

/// Removes `image:version`'s index, its platform manifests and their blobs from the final
/// repository, so a merge writes all of it again as the first merge did.
fn wipe_final(reg: &TestRegistry, image: &str, version: &str) {
    let index = raw(reg, &format!("{image}:{version}"));
    let index_digest = common::skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &reg.docker_ref(&format!("{image}:{version}")),
    ]);
    for entry in index["manifests"].as_array().unwrap() {
        let digest = entry["digest"].as_str().unwrap();
        let manifest = raw(reg, &format!("{image}@{digest}"));
        let blobs = std::iter::once(&manifest["config"])
            .chain(manifest["layers"].as_array().unwrap())
            .map(|b| b["digest"].as_str().unwrap().to_string());
        for blob in blobs {
            reg.delete(&format!("/v2/{image}/blobs/{blob}"));
        }
        reg.delete(&format!("/v2/{image}/manifests/{digest}"));
    }
    reg.delete(&format!("/v2/{image}/manifests/{}", index_digest.trim()));
}

#[test]
fn two_merges_of_the_same_stage_at_once_both_succeed_with_one_result() {
    let reg = TestRegistry::start();
    let ws = busybox_and_hello(BOTH, BOTH);
    ok(&stage(&ws, &reg, "linux/amd64", &[]));
    ok(&stage(&ws, &reg, "linux/arm64", &[]));
    let mut first: Option<Vec<Value>> = None;
    for round in 0..4 {
        if round > 0 {
            for image in ["hello", "busybox"] {
                wipe_final(&reg, image, "1.0.0");
            }
            assert!(!is_tagged(&reg, "busybox:1.0.0"));
        }
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| merge(&ws, &reg, &[]));
            let b = s.spawn(|| merge(&ws, &reg, &[]));
            (a.join().unwrap(), b.join().unwrap())
        });
        for out in [&a, &b] {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !err.contains("DIGEST_INVALID") && !err.contains("MANIFEST_BLOB_UNKNOWN"),
                "round {round}: the registry's raw answer reached the user: {err}"
            );
            assert!(
                out.status.success(),
                "round {round}: both merges wrote the same result, both succeed: {}",
                text(out)
            );
        }
        // The registry is consistent: each index holds both platforms, each readable.
        let mut indexes = Vec::new();
        for image in ["busybox", "hello"] {
            let index = raw(&reg, &format!("{image}:1.0.0"));
            assert_eq!(index_platforms(&index), ["linux/amd64", "linux/arm64"]);
            assert_eq!(raw(&reg, &format!("{image}:latest")), index);
            for arch in ["amd64", "arm64"] {
                let config = image_config(&reg, &format!("{image}:1.0.0"), arch);
                assert_eq!(config["architecture"], arch, "round {round}: {image}");
            }
            indexes.push(index);
        }
        match &first {
            None => first = Some(indexes),
            Some(f) => assert_eq!(
                f, &indexes,
                "round {round}: the same staged state merges alike"
            ),
        }
    }
}

#[test]
fn a_staged_image_of_another_platform_is_never_merged() {
    let reg = TestRegistry::start();
    let ws = busybox_and_hello(BOTH, BOTH);
    ok(&stage(&ws, &reg, "linux/amd64", &["busybox"]));
    ok(&stage(&ws, &reg, "linux/arm64", &["busybox"]));
    // The arm64 stage's entry replaced by the amd64 image (copied into that repository).
    let amd = raw(&reg, "cip-stage/linux-amd64/busybox:1.0.0");
    let amd_digest = amd["manifests"][0]["digest"].as_str().unwrap().to_string();
    common::skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &reg.docker_ref(&format!("cip-stage/linux-amd64/busybox@{amd_digest}")),
        &reg.docker_ref("cip-stage/linux-arm64/busybox:swapped"),
    ]);
    let mut arm = raw(&reg, "cip-stage/linux-arm64/busybox:1.0.0");
    arm["manifests"][0]["digest"] = amd["manifests"][0]["digest"].clone();
    arm["manifests"][0]["size"] = amd["manifests"][0]["size"].clone();
    assert_eq!(arm["manifests"][0]["platform"]["architecture"], "arm64");
    reg.put_manifest("cip-stage/linux-arm64/busybox", "1.0.0", &arm);

    let out = merge(&ws, &reg, &["busybox"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the linux/arm64 image of busybox:1.0.0")
            && err.contains("is an image for linux/amd64, not linux/arm64"),
        "{err}"
    );
    assert!(!is_tagged(&reg, "busybox:1.0.0"), "{err}");
    assert!(!is_tagged(&reg, "busybox:latest"), "{err}");
}

/// `--prune-stage` never removes a stage a stage job of this version set may still pull: a
/// merge while hello is staged for one platform only publishes busybox but keeps its stage (the
/// arm64 job of hello pulls `cip-stage/linux-arm64/busybox:1.0.0`); once hello is published in
/// full, the next merge prunes both.
#[test]
fn merge_prune_stage_keeps_a_parents_stage_while_a_child_is_not_published_in_full() {
    let reg = TestRegistry::start();
    let ws = busybox_and_hello(BOTH, BOTH);
    ok(&stage(&ws, &reg, "linux/amd64", &[]));
    ok(&stage(&ws, &reg, "linux/arm64", &["busybox"]));

    let first = merge(&ws, &reg, &["--prune-stage"]);
    assert_eq!(
        first.status.code(),
        Some(1),
        "hello lacks arm64: {}",
        text(&first)
    );
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(
        err.contains(
            "kept the stage of busybox:1.0.0: hello:1.0.0 below it is not published in full yet, \
             and its stage jobs pull it from there"
        ),
        "{err}"
    );
    assert!(!err.contains("pruned"), "{err}");
    assert_eq!(
        index_platforms(&raw(&reg, "busybox:1.0.0")),
        ["linux/amd64", "linux/arm64"]
    );
    for platform in ["linux-amd64", "linux-arm64"] {
        assert!(is_tagged(
            &reg,
            &format!("cip-stage/{platform}/busybox:1.0.0")
        ));
    }
    assert!(is_tagged(&reg, "cip-stage/linux-amd64/hello:1.0.0"));

    // hello's arm64 job finds its parent in the stage, and the next merge publishes it.
    ok(&stage(&ws, &reg, "linux/arm64", &["hello"]));
    let second = merge(&ws, &reg, &["--prune-stage"]);
    ok(&second);
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("4 staging tag(s) pruned"), "{err}");
    for image in ["busybox", "hello"] {
        for platform in ["linux-amd64", "linux-arm64"] {
            assert!(!is_tagged(
                &reg,
                &format!("cip-stage/{platform}/{image}:1.0.0")
            ));
        }
        assert_eq!(
            index_platforms(&raw(&reg, &format!("{image}:1.0.0"))),
            ["linux/amd64", "linux/arm64"]
        );
    }
}
