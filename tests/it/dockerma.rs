//! dockerma's `# dockerma archs:...:` directive: a context's platforms when info.edn names none
//! (built for real, arm64 under emulation), and a warning of `cip check` when both disagree.
use crate::common;

use std::fs;

use common::workspace::{text, Workspace};
use common::{index_platforms, raw_manifest as raw, TestRegistry};
use serde_json::Value;

/// The demo's busybox Dockerfile with `directive` after its comments.
fn with_directive(ws: &Workspace, directive: &str) {
    let path = ws.context("00-busybox").join("Dockerfile");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, format!("{directive}\n{text}")).unwrap();
}

fn graph_platforms(ws: &Workspace, image: &str) -> Value {
    let out = ws.cip(&["graph", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let node = doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == image)
        .unwrap_or_else(|| panic!("{image} in {doc:#}"))
        .clone();
    node["platforms"].clone()
}

#[test]
fn the_directive_gives_the_platforms_when_info_edn_has_none() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    // busybox alone (its children declare amd64, which it would then lack).
    for child in ["01-hello", "01-tools", "02-app"] {
        fs::remove_dir_all(ws.context(child)).unwrap();
    }
    with_directive(&ws, "# dockerma archs:arm64:");
    fs::write(
        ws.context("00-busybox").join("info.edn"),
        "{:version \"1.0.0\"}",
    )
    .unwrap();
    assert_eq!(
        graph_platforms(&ws, "busybox"),
        serde_json::json!(["linux/arm64"])
    );

    let out = ws.cip(&["publish", "--remote-registry", &reg.addr(), "busybox"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        index_platforms(&raw(&reg, "busybox:1.0.0")),
        ["linux/arm64"]
    );

    // dockerma's names: arm is linux/arm/v7.
    with_directive(&ws, "# dockerma archs:arm,amd64,arm64:");
    assert_eq!(
        graph_platforms(&ws, "busybox"),
        serde_json::json!(["linux/arm/v7", "linux/amd64", "linux/arm64"])
    );
}

#[test]
fn check_warns_when_the_directive_and_info_edn_disagree() {
    let ws = Workspace::demo();
    let check = |ws: &Workspace| {
        let out = ws.cip(&["check", "--json"]);
        assert!(out.status.success(), "warnings only: {}", text(&out));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["problems"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["code"] == "dockerma-disagrees")
            .cloned()
            .collect::<Vec<_>>()
    };
    // Agreeing (in another order): nothing to say.
    with_directive(&ws, "# dockerma archs:arm64,amd64:");
    assert!(check(&ws).is_empty());

    with_directive(&ws, "# dockerma archs:arm,amd64:");
    let found = check(&ws);
    assert_eq!(found.len(), 1, "{found:?}");
    let w = &found[0];
    assert_eq!(w["severity"], "warning");
    assert_eq!(w["line"], 1);
    assert!(
        w["file"]
            .as_str()
            .unwrap()
            .ends_with("00-busybox/Dockerfile"),
        "{w}"
    );
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .contains("names linux/arm/v7, linux/amd64 but info.edn's :platforms are linux/amd64, linux/arm64"),
        "{w}"
    );
    // info.edn wins.
    assert_eq!(
        graph_platforms(&ws, "busybox"),
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
}
