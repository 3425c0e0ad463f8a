//! The index writer against a real registry: what it writes, the hooks it calls after writing,
//! the platform check that keeps an image out of another platform's entry, and the index another
//! job wrote first recognised as this one.
use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};

use cip::execute::index_writer::{
    AfterIndexWritten, Annotations, Guard, IndexWrite, IndexWriter, NewImage, Written,
};
use cip::platform::Platform;
use cip::registry::push::push_layout;
use cip::registry::RegistryAuth;
use cip::registry::{Endpoint, Registry};
use common::{add_blob, is_tagged, raw_manifest, TestRegistry};
use futures_util::future::BoxFuture;
use serde_json::json;

/// An OCI layout of a one-layer image whose config names `arch`.
fn layout_for(dir: &Path, arch: &str) -> std::path::PathBuf {
    let layout = dir.join(arch);
    let layer = add_blob(
        &layout,
        "application/vnd.oci.image.layer.v1.tar",
        format!("the {arch} layer").as_bytes(),
    );
    let config = serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
        "config": {}
    }))
    .unwrap();
    let config = add_blob(&layout, "application/vnd.oci.image.config.v1+json", &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [layer]
    }))
    .unwrap();
    let manifest = add_blob(
        &layout,
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
    layout
}

/// Records what it is called with; fails when told to.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(String, Vec<String>, bool)>>,
    fail: bool,
}

impl AfterIndexWritten for Recorder {
    fn after_index_written<'a>(
        &'a self,
        _reg: &'a Registry,
        written: &'a Written,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        self.seen.lock().unwrap().push((
            written.digest.clone(),
            written.tags.clone(),
            written.by_another_job,
        ));
        let fail = self.fail;
        Box::pin(async move {
            anyhow::ensure!(!fail, "the hook refused");
            Ok(())
        })
    }
}

fn p(s: &str) -> Platform {
    s.parse().unwrap()
}

#[test]
fn the_writer_checks_each_image_writes_the_tags_calls_its_hooks_and_knows_another_jobs_index() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let registry = Registry::connect(Endpoint::new(&reg.addr()), RegistryAuth::Anonymous)
            .await
            .unwrap();
        let amd = push_layout(
            &registry,
            "src",
            &layout_for(dir.path(), "amd64"),
            &p("linux/amd64"),
        )
        .await
        .unwrap();
        let arm = push_layout(
            &registry,
            "src",
            &layout_for(dir.path(), "arm64"),
            &p("linux/arm64"),
        )
        .await
        .unwrap();
        let new = |entry: &cip::registry::index::Entry| NewImage {
            entry: entry.clone(),
            from: "src".into(),
            node: Some("node-a".into()),
        };
        let write = IndexWrite {
            repository: "app".into(),
            label: "app:1.0".into(),
            new: vec![new(&amd.entry), new(&arm.entry)],
            guard: Guard::Unchanged(None),
            keep_published: true,
            annotations: Annotations::Fixed(BTreeMap::from([("k".into(), "v".into())])),
            arch_tags: BTreeMap::from([("1.0-arm64".to_string(), p("linux/arm64"))]),
            tags: vec!["latest".into(), "1.0".into()],
        };
        let hook = Arc::new(Recorder::default());
        let writer = IndexWriter::new(&registry).after_index_written(hook.clone());
        let written = writer.write(&write).await.unwrap();
        assert!(!written.by_another_job);
        assert_eq!(
            *hook.seen.lock().unwrap(),
            [(
                written.digest.clone(),
                vec!["latest".to_string(), "1.0".to_string()],
                false
            )],
            "the hook is called once, after the write, with what was written"
        );
        let index = raw_manifest(&reg, "app:1.0");
        assert_eq!(raw_manifest(&reg, "app:latest"), index);
        assert_eq!(index["annotations"]["k"], "v");
        assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
        assert_eq!(
            raw_manifest(&reg, "app:1.0-arm64")["config"]["digest"],
            raw_manifest(&reg, &format!("src@{}", arm.entry.digest))["config"]["digest"]
        );

        // The same write again, as a second job that planned before the first wrote: the tag
        // holds this very index, which is no race lost but the same result.
        let again = writer.write(&write).await.unwrap();
        assert!(again.by_another_job);
        assert_eq!(again.digest, written.digest);
        assert_eq!(hook.seen.lock().unwrap().len(), 2);
        // Another index there is a race lost: refused, and the hook is not called.
        let other = IndexWrite {
            new: vec![new(&amd.entry)],
            keep_published: false,
            ..write.clone()
        };
        let err = writer.write(&other).await.unwrap_err();
        assert!(format!("{err:#}").contains("changed on"), "{err:#}");
        assert_eq!(hook.seen.lock().unwrap().len(), 2);
        assert!(writer
            .settle(std::slice::from_ref(&written))
            .await
            .is_empty());

        // The amd64 image as the arm64 entry: refused before anything is written, naming the
        // image, the node and both platforms.
        let mut lying = amd.entry.clone();
        lying.platform = Some(p("linux/arm64"));
        let bad = IndexWrite {
            repository: "bad".into(),
            label: "bad:1.0".into(),
            new: vec![new(&lying)],
            tags: vec!["1.0".into()],
            arch_tags: BTreeMap::new(),
            ..write.clone()
        };
        let err = format!("{:#}", writer.write(&bad).await.unwrap_err());
        assert!(
            err.contains("the linux/arm64 image of bad:1.0")
                && err.contains("built on node node-a")
                && err.contains("is an image for linux/amd64, not linux/arm64"),
            "{err}"
        );
        assert!(writer.preview(&bad).await.is_err());
        assert_eq!(hook.seen.lock().unwrap().len(), 2);

        // A hook's error fails the write.
        let failing = IndexWriter::new(&registry).after_index_written(Arc::new(Recorder {
            fail: true,
            ..Default::default()
        }));
        let fresh = IndexWrite {
            repository: "app2".into(),
            label: "app2:1.0".into(),
            ..write.clone()
        };
        let err = format!("{:#}", failing.write(&fresh).await.unwrap_err());
        assert!(
            err.contains("after writing the index of app2:1.0") && err.contains("the hook refused"),
            "{err}"
        );
    });
    assert!(!is_tagged(&reg, "bad:1.0"));
}
