//! `--metadata-file` and the digests of the summary, checked against what skopeo reads from a real
//! registry and what buildah's store holds.
use crate::common;

use std::fs;

use common::workspace::{text, Workspace};
use common::{skopeo, TestRegistry};
use serde_json::Value;

/// The digest of the manifest or index `image` names on `reg`, as skopeo computes it from the
/// bytes the registry serves.
fn registry_digest(reg: &TestRegistry, image: &str, dir: &std::path::Path) -> String {
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &reg.docker_ref(image),
    ]);
    let file = dir.join("manifest.json");
    fs::write(&file, raw).unwrap();
    skopeo(&["manifest-digest", file.to_str().unwrap()])
        .trim()
        .to_string()
}

fn read(path: &std::path::Path) -> Vec<Value> {
    let doc: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    doc["images"].as_array().unwrap().clone()
}

fn entry<'a>(images: &'a [Value], name: &str) -> &'a Value {
    images
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {images:?}"))
}

#[test]
fn publish_locally_writes_each_images_digests_as_the_registry_has_them() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("meta.json");
    let out = ws.cip(&[
        "publish-locally",
        "--local-registry",
        &reg.addr(),
        "--metadata-file",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let images = read(&file);
    assert_eq!(images.len(), 4, "{images:?}");
    let summary = String::from_utf8_lossy(&out.stderr).into_owned();
    for name in ["busybox", "hello", "tools", "app"] {
        let e = entry(&images, name);
        let digest = registry_digest(&reg, &format!("{name}:1.0.0"), dir.path());
        assert_eq!(e["digest"], digest.as_str(), "{e}");
        assert_eq!(e["image"], format!("{}/{name}", reg.addr()));
        assert_eq!(e["version"], "1.0.0");
        assert_eq!(e["result"], "built");
        assert_eq!(e["tags"], serde_json::json!(["latest", "1.0.0"]), "{e}");
        let index = common::raw_manifest(&reg, &format!("{name}:1.0.0"));
        assert_eq!(e["platforms"][0]["platform"], "linux/amd64", "{e}");
        assert_eq!(
            e["platforms"][0]["digest"], index["manifests"][0]["digest"],
            "{e}"
        );
        // The summary shows it in short, within 80 columns.
        let short = &digest["sha256:".len().."sha256:".len() + 12];
        assert!(
            summary
                .lines()
                .any(|l| l.starts_with(name) && l.trim_end().ends_with(short)),
            "{summary}"
        );
    }
    let table = &summary[summary.find("IMAGE").unwrap()..];
    assert!(table.lines().all(|l| l.chars().count() <= 80), "{table}");

    // A run with nothing to do lists them too, as the registry holds them.
    let again = dir.path().join("again.json");
    let out = ws.cip(&[
        "publish-locally",
        "--local-registry",
        &reg.addr(),
        "--metadata-file",
        again.to_str().unwrap(),
        "--verbose",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let second = read(&again);
    // --verbose lists the images a no-op run left alone, with the digests the registry holds.
    let err = String::from_utf8_lossy(&out.stderr);
    for e in &second {
        let digest = e["digest"].as_str().unwrap();
        let row = format!("{}:1.0.0", e["name"].as_str().unwrap());
        assert!(
            err.lines().any(|l| l.starts_with(&row)
                && l.contains("up to date")
                && l.ends_with(&digest[7..19])),
            "{err}"
        );
    }
    for name in ["busybox", "hello", "tools", "app"] {
        let (a, b) = (entry(&images, name), entry(&second, name));
        assert_eq!(b["result"], "up_to_date", "{b}");
        assert_eq!(a["digest"], b["digest"]);
        assert_eq!(a["platforms"], b["platforms"]);
        assert_eq!(b["tags"], serde_json::json!(["1.0.0"]), "{b}");
    }
    // Nothing but the file itself was left in its directory (written by a rename).
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["again.json", "manifest.json", "meta.json"]);
}

#[test]
fn build_writes_the_image_ids_of_the_local_store() {
    let ws = Workspace::demo();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("meta.json");
    let out = ws.cip(&[
        "build",
        "busybox",
        "--metadata-file",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let images = read(&file);
    let e = entry(&images, "busybox");
    let id = ws.store.run(&[
        "inspect",
        "--type",
        "image",
        "--format",
        "{{.FromImageID}}",
        "localhost:5000/busybox:1.0.0",
    ]);
    let id = format!("sha256:{}", id.trim());
    assert_eq!(e["digest"], id.as_str(), "{e}");
    assert_eq!(e["image"], "localhost:5000/busybox");
    assert_eq!(e["platforms"][0]["platform"], "linux/amd64");
    assert_eq!(e["platforms"][0]["digest"], id.as_str());
    assert_eq!(e["result"], "built");

    // A run with nothing to do gives the same id, for the image it found in the store.
    let out = ws.cip(&[
        "build",
        "busybox",
        "--metadata-file",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let images = read(&file);
    let e = entry(&images, "busybox");
    assert_eq!(e["result"], "up_to_date", "{e}");
    assert_eq!(e["digest"], id.as_str(), "{e}");

    // A file that cannot be written is an error that names it, after the summary.
    let out = ws.cip(&[
        "build",
        "busybox",
        "--metadata-file",
        "/nonexistent/dir/m.json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot write the metadata file /nonexistent/dir/m.json"),
        "{err}"
    );
    assert!(err.contains("1 image up to date"), "{err}");
}
