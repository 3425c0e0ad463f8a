//! Proves the test environment for real: buildah builds FROM-scratch busybox images for
//! linux/amd64 and linux/arm64 (the latter under qemu emulation), pushes them to a real
//! registry, and skopeo reads back what was pushed. Also exercises the TLS and authentication
//! modes of the registry helper. Needs `scripts/setup-env` to have run.

use crate::common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{busybox_path, run_ok, skopeo, skopeo_output, Buildah, RegistryOptions, TestRegistry};
use serde_json::Value;

/// A context whose RUN step executes the target architecture's busybox.
fn write_context(dir: &Path, with_run: bool) {
    let mut dockerfile = String::from(
        "FROM scratch\n\
         ARG TARGETARCH\n\
         COPY busybox-${TARGETARCH} /bin/busybox\n",
    );
    if with_run {
        dockerfile.push_str(
            "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox echo ok $(/bin/busybox uname -m) > /ok\"]\n",
        );
    }
    fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    for arch in ["amd64", "arm64"] {
        fs::copy(busybox_path(arch), dir.join(format!("busybox-{arch}"))).unwrap();
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Reads the file `name` from the image's layers (copied to a `dir:` with skopeo).
/// `src_args` are skopeo copy's source options, e.g. `--src-tls-verify=false`.
fn file_in_image(image: &str, arch: &str, name: &str, src_args: &[&str]) -> String {
    let out = tempfile::tempdir().unwrap();
    let dest = format!("dir:{}", out.path().join("img").display());
    let mut args = vec!["copy", "-q", "--override-arch", arch];
    args.extend_from_slice(src_args);
    args.extend([image, dest.as_str()]);
    skopeo(&args);
    let manifest = json(&fs::read_to_string(out.path().join("img/manifest.json")).unwrap());
    for layer in manifest["layers"].as_array().expect("layers") {
        let digest = layer["digest"].as_str().unwrap();
        let blob = out
            .path()
            .join("img")
            .join(digest.trim_start_matches("sha256:"));
        let listing = run_ok(Command::new("tar").arg("-tf").arg(&blob));
        if listing.lines().any(|l| l.trim_start_matches("./") == name) {
            return run_ok(Command::new("tar").arg("-xOf").arg(&blob).arg(name));
        }
    }
    panic!("{name} not found in any layer of {image}");
}

#[test]
fn buildah_builds_amd64_and_arm64_and_registry_serves_them() {
    let registry = TestRegistry::start();
    let buildah = Buildah::new();
    let context = tempfile::tempdir().unwrap();
    write_context(context.path(), true);
    let context_dir = context.path().to_str().unwrap();

    for (arch, uname) in [("amd64", "x86_64"), ("arm64", "aarch64")] {
        let local = format!("localhost/envtest:{arch}");
        let remote = registry.docker_ref(&format!("envtest:{arch}"));
        let platform = format!("linux/{arch}");
        buildah.run(&[
            "bud",
            "-q",
            "--platform",
            &platform,
            "-t",
            &local,
            context_dir,
        ]);
        buildah.run(&["push", "-q", "--tls-verify=false", &local, &remote]);

        let manifest = json(&skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &remote,
        ]));
        assert_eq!(manifest["schemaVersion"], 2, "{manifest}");
        // buildah without --layers commits the whole stage as one layer.
        let layers = manifest["layers"]
            .as_array()
            .expect("a single-image manifest");
        assert_eq!(layers.len(), 1, "{manifest}");

        let config = json(&skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--config",
            &remote,
        ]));
        assert_eq!(config["architecture"], arch, "{config}");
        assert_eq!(config["os"], "linux", "{config}");

        // The RUN step really ran the target architecture's binary.
        let ok = file_in_image(&remote, arch, "ok", &["--src-tls-verify=false"]);
        assert_eq!(ok.trim(), format!("ok {uname}"));
    }

    let tags = json(&skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &registry.docker_ref("envtest"),
    ]));
    let mut tags: Vec<&str> = tags["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, ["amd64", "arm64"]);
}

#[test]
fn registry_helper_serves_tls_with_authentication() {
    let registry = TestRegistry::start_with(RegistryOptions::tls_auth("cip", "s3cret"));
    assert!(registry.url().starts_with("https://127.0.0.1:"));
    let cert_dir = registry.cert_dir().unwrap();
    let cert_dir = cert_dir.to_str().unwrap();
    let creds = registry.creds().unwrap();
    assert!(registry.ca_cert_path().unwrap().is_file());

    // The certificate verifies against the test CA (curl --cacert); auth is enforced.
    assert_eq!(registry.http_status("/v2/", false), 401);
    assert_eq!(registry.http_status("/v2/", true), 200);

    let buildah = Buildah::new();
    let context = tempfile::tempdir().unwrap();
    write_context(context.path(), false);
    let local = "localhost/authtest:1";
    buildah.run(&[
        "bud",
        "-q",
        "--platform",
        "linux/amd64",
        "-t",
        local,
        context.path().to_str().unwrap(),
    ]);
    let remote = registry.docker_ref("authtest:1");

    let denied = buildah.output(&["push", "--cert-dir", cert_dir, local, &remote]);
    assert!(
        !denied.status.success(),
        "push without credentials must fail"
    );

    buildah.run(&[
        "push",
        "-q",
        "--cert-dir",
        cert_dir,
        "--creds",
        &creds,
        local,
        &remote,
    ]);

    let denied = skopeo_output(&["inspect", "--raw", "--cert-dir", cert_dir, &remote]);
    assert!(
        !denied.status.success(),
        "inspect without credentials must fail"
    );
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("unauthorized") || stderr.contains("authentication required"),
        "{stderr}"
    );

    // Without the CA the certificate must not verify.
    let untrusted = skopeo_output(&["inspect", "--raw", "--creds", &creds, &remote]);
    assert!(
        !untrusted.status.success(),
        "a self-made CA must not be trusted by default"
    );

    let config = json(&skopeo(&[
        "inspect",
        "--config",
        "--cert-dir",
        cert_dir,
        "--creds",
        &creds,
        &remote,
    ]));
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    let config = json(&skopeo(&[
        "inspect",
        "--config",
        "--tls-verify=false",
        "--creds",
        &creds,
        &remote,
    ]));
    assert_eq!(config["architecture"], "amd64");
}

#[test]
fn registry_helper_serves_plain_http_with_authentication() {
    let registry = TestRegistry::start_with(RegistryOptions {
        tls: false,
        auth: Some(("u".into(), "p".into())),
    });
    assert!(registry.url().starts_with("http://127.0.0.1:"));
    assert_eq!(registry.ca_cert_path(), None);
    assert_eq!(registry.http_status("/v2/", false), 401);
    assert_eq!(registry.http_status("/v2/", true), 200);
}

#[test]
fn registries_do_not_share_ports_or_storage() {
    let a = TestRegistry::start();
    let b = TestRegistry::start();
    assert_ne!(a.addr(), b.addr());
    assert_ne!(a.storage_dir(), b.storage_dir());
    assert_eq!(a.http_status("/v2/", false), 200);
    assert_eq!(b.http_status("/v2/", false), 200);
}

/// The demo fixture's whole chain (busybox -> hello, tools -> app) builds with plain buildah,
/// each child pulling its parents from a plain-HTTP registry (`--tls-verify=false` on bud).
/// One registry and one store per platform, so both platforms build in parallel.
#[test]
fn demo_fixture_chain_builds_for_both_platforms() {
    let contexts = common::demo_fixture().join("contexts");
    let order = ["00-busybox", "01-hello", "01-tools", "02-app"];
    let builds: Vec<_> = [("amd64", "x86_64"), ("arm64", "aarch64")]
        .into_iter()
        .map(|(arch, uname)| {
            let contexts = contexts.clone();
            std::thread::spawn(move || {
                let registry = TestRegistry::start();
                let buildah = Buildah::new();
                let build_arg = format!("REGISTRY={}", registry.addr());
                let platform = format!("linux/{arch}");
                for dir in order {
                    let name = dir.split_once('-').unwrap().1;
                    let local = format!("localhost/{name}:1.0.0");
                    let context = contexts.join(dir);
                    buildah.run(&[
                        "bud",
                        "-q",
                        "--tls-verify=false",
                        "--platform",
                        &platform,
                        "--build-arg",
                        &build_arg,
                        "-t",
                        &local,
                        context.to_str().unwrap(),
                    ]);
                    let remote = registry.docker_ref(&format!("{name}:1.0.0"));
                    buildah.run(&["push", "-q", "--tls-verify=false", &local, &remote]);
                }
                let app = registry.docker_ref("app:1.0.0");
                let config = json(&skopeo(&[
                    "inspect",
                    "--tls-verify=false",
                    "--config",
                    &app,
                ]));
                assert_eq!(config["architecture"], arch, "{config}");
                // busybox, hello and app layers: the FROM chain was followed.
                assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
                let text = file_in_image(&app, arch, "app.txt", &["--src-tls-verify=false"]);
                assert_eq!(text, format!("hello\ntools for {uname}\n"));
            })
        })
        .collect();
    for build in builds {
        if let Err(panic) = build.join() {
            std::panic::resume_unwind(panic);
        }
    }
}
