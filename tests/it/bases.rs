//! External bases against real registries: an "upstream" registry holds `library/debian:bookworm`;
//! the tree refers to it by its address, through a mirror of `docker.io`, pinned, and once to a tag
//! the upstream lacks and a registry nobody listens on. Resolution asks once per distinct reference
//! and follows the upstream tag when it moves.
use crate::common;

use std::fs;
use std::path::Path;

use cip::bases::resolve::{resolve, Connect, Mirrors, Resolution};
use cip::bases::{self, BaseRef};
use cip::platform::Platform;
use cip::registry::push::push_layout;
use cip::registry::{Endpoint, Reference, Registry, RegistryAuth};
use common::{add_blob, TestRegistry};
use futures_util::FutureExt;
use serde_json::json;

/// An OCI layout of a one-layer amd64 image whose layer says `what`.
fn layout(dir: &Path, what: &str) -> std::path::PathBuf {
    let layout = dir.join(what);
    let layer = add_blob(
        &layout,
        "application/vnd.oci.image.layer.v1.tar",
        what.as_bytes(),
    );
    let config = json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}, "config": {}});
    let config = add_blob(
        &layout,
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
    );
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": [layer]});
    let manifest = add_blob(
        &layout,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    fs::write(
        layout.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [manifest]}).to_string(),
    )
    .unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    layout
}

/// Pushes an image saying `what` as `repo:tag` and returns its manifest digest.
async fn publish(registry: &Registry, dir: &Path, repo: &str, tag: &str, what: &str) -> String {
    let pushed = push_layout(
        registry,
        repo,
        &layout(dir, what),
        &"linux/amd64".parse::<Platform>().unwrap(),
    )
    .await
    .unwrap();
    let digest = pushed.entry.digest.clone();
    let by_digest = Reference::with_digest(registry.address().into(), repo.into(), digest.clone());
    let (bytes, _) = registry.manifest_raw(&by_digest).await.unwrap().unwrap();
    let media_type = "application/vnd.oci.image.manifest.v1+json";
    let tagged = Reference::with_tag(registry.address().into(), repo.into(), tag.into());
    registry
        .put_manifest(&tagged, bytes, media_type)
        .await
        .unwrap();
    digest
}

fn context(root: &Path, dir: &str, dockerfile: &str) {
    let ctx = root.join("contexts").join(dir);
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    fs::write(ctx.join("info.edn"), r#"{:version "1.0.0"}"#).unwrap();
}

#[test]
fn bases_are_resolved_once_each_through_mirrors_and_follow_a_moved_tag() {
    let upstream = TestRegistry::start_logging_requests();
    let up = upstream.addr();
    let nobody = format!("127.0.0.1:{}", common::free_port());
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("tree");
    let pin = format!("sha256:{}", "0".repeat(64));
    context(
        &root,
        "00-root",
        &format!("FROM {up}/library/debian:bookworm\n"),
    );
    context(
        &root,
        "01-hub",
        "FROM debian:bookworm AS b\nCOPY --from=docker.io/library/debian:bookworm / /\nFROM b\n",
    );
    context(
        &root,
        "02-pinned",
        &format!("FROM {up}/library/debian:bookworm@{pin}\n"),
    );
    context(
        &root,
        "03-lost",
        &format!("FROM {up}/library/debian:trixie\nCOPY --from={nobody}/x:1 / /\n"),
    );
    context(&root, "04-odd", "ARG BASE\nFROM ${BASE}x\nFROM scratch\n");
    let project = cip::project::scan(&root).unwrap();
    let found = bases::collect(&project);

    let hub = BaseRef::parse("debian:bookworm").unwrap();
    assert_eq!(
        found.images_on(&hub),
        ["hub"],
        "two spellings of one image, one base"
    );
    assert_eq!(found.bases[&hub].len(), 2);
    let by_address = BaseRef::parse(&format!("{up}/library/debian:bookworm")).unwrap();
    let pinned = BaseRef::parse(&format!("{up}/library/debian:bookworm@{pin}")).unwrap();
    assert_eq!(found.images_on(&pinned), ["pinned"]);
    assert!(
        found.bases.keys().all(|b| b.repository != "scratch"),
        "scratch is no base"
    );
    assert_eq!(found.unreadable.len(), 1, "{:?}", found.unreadable);
    assert_eq!(found.unreadable[0].0.image, "odd");
    let asked = found.to_resolve();
    assert_eq!(
        asked.len(),
        4,
        "the pin is asked as its tag, with the unpinned one: {asked:?}"
    );

    let mirrors = Mirrors([("docker.io".to_string(), up.clone())].into());
    let connect: &Connect = &|address: String| {
        async move {
            Registry::connect(Endpoint::new(&address), RegistryAuth::Anonymous)
                .await
                .map(std::sync::Arc::new)
        }
        .boxed()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let registry = Registry::connect(Endpoint::new(&up), RegistryAuth::Anonymous).await.unwrap();
        let first = publish(&registry, work.path(), "library/debian", "bookworm", "first").await;
        let before = upstream.log().len();
        let resolved = resolve(&asked, &mirrors, connect, 8).await;
        assert_eq!(resolved[&by_address], Resolution::Digest(first.clone()));
        assert_eq!(resolved[&hub], Resolution::Digest(first.clone()), "through the mirror");
        let trixie = BaseRef::parse(&format!("{up}/library/debian:trixie")).unwrap();
        assert!(matches!(&resolved[&trixie], Resolution::Missing { registry } if *registry == up));
        let lost = BaseRef::parse(&format!("{nobody}/x:1")).unwrap();
        assert!(
            matches!(&resolved[&lost], Resolution::Unreachable { registry, .. } if *registry == nobody),
            "{:?}",
            resolved[&lost]
        );
        let log = upstream.log()[before..].to_string();
        let heads = log.lines().filter(|l| l.contains("method=HEAD") && l.contains("uri=/v2/library/debian/manifests/bookworm ")).count();
        assert_eq!(
            log.matches("uri=/v2/ ").count(),
            1,
            "the upstream (asked directly and as docker.io's mirror) is connected to once"
        );
        assert_eq!(heads, 1, "one request per base: {log}");

        let second = publish(&registry, work.path(), "library/debian", "bookworm", "second").await;
        assert_ne!(first, second);
        let moved = resolve(&asked, &mirrors, connect, 8).await;
        assert_eq!(moved[&by_address], Resolution::Digest(second.clone()));
        assert_eq!(moved[&hub], Resolution::Digest(second));
    });
}

/// `cip status --bases` on a tree whose root uses the upstream through a mirror of docker.io named
/// in cip.toml, a child of the tree, and a pin the tag moved away from.
#[test]
fn status_bases_lists_each_base_with_its_digest_now_and_the_images_on_it() {
    let upstream = TestRegistry::start();
    let up = upstream.addr();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("tree");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (old, new) = rt.block_on(async {
        let registry = Registry::connect(Endpoint::new(&up), RegistryAuth::Anonymous)
            .await
            .unwrap();
        let old = publish(&registry, work.path(), "library/debian", "bookworm", "old").await;
        let new = publish(&registry, work.path(), "library/debian", "bookworm", "new").await;
        (old, new)
    });
    context(&root, "00-root", "FROM debian:bookworm\n");
    context(
        &root,
        "01-child",
        "ARG REGISTRY\nFROM ${REGISTRY}/root:1.0.0\n",
    );
    context(
        &root,
        "02-pinned",
        &format!("FROM {up}/library/debian:bookworm@{old}\n"),
    );
    fs::write(
        root.join("cip.toml"),
        format!("[registry.mirrors]\n\"docker.io\" = \"{up}\"\n"),
    )
    .unwrap();
    let dir = root.to_str().unwrap();
    let (code, out, err) = common::cip(&["status", "--bases", "--json", "--project-dir", dir]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let bases = v["bases"].as_array().unwrap();
    assert_eq!(bases.len(), 2, "{v:#}");
    let hub = bases
        .iter()
        .find(|b| b["base"] == "debian:bookworm")
        .unwrap();
    assert_eq!(hub["status"], "resolved");
    assert_eq!(hub["digest"], new.as_str());
    assert_eq!(hub["registry"], up.as_str(), "asked through the mirror");
    assert_eq!(
        hub["images"],
        serde_json::json!(["root"]),
        "the child builds on root, not on debian"
    );
    let pinned = bases.iter().find(|b| b["pinned"] == old.as_str()).unwrap();
    assert_eq!(pinned["status"], "pin-moved");
    assert_eq!(pinned["digest"], new.as_str());

    let (code, text, err) = common::cip(&["status", "--bases", "--project-dir", dir]);
    assert_eq!(code, 0, "{err}");
    let short_new = &new["sha256:".len().."sha256:".len() + 12];
    let row = text
        .lines()
        .find(|l| l.starts_with("debian:bookworm "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains(short_new) && row.ends_with("root"), "{text}");
    assert!(text.contains("pinned; its tag now names"), "{text}");

    fs::write(
        root.join("cip.toml"),
        "[registry.mirrors]\n\"docker.io\" = \"--evil\"\n",
    )
    .unwrap();
    let (code, _, err) = common::cip(&["status", "--bases", "--project-dir", dir]);
    assert_ne!(code, 0);
    assert!(err.contains("cip.toml") && err.contains("--evil"), "{err}");
}
