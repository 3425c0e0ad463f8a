//! upload-all-to-local-registry and pull-latest-from-*-registry against two real registries: a "remote"
//! one with TLS and htpasswd authentication, and a plain local one.
use crate::common;

use std::fs;
use std::path::Path;

use base64::Engine;
use common::docker::TestDockerd;
use common::workspace::{text, Workspace};
use common::{RegistryOptions, TestRegistry};
use serde_json::Value;

const USER: &str = "mirror-user";
const PASSWORD: &str = "s3cret-Mirror-pw";

/// A docker config.json holding the remote's credentials.
fn docker_config(dir: &Path, host: &str, password: &str) {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"));
    fs::create_dir_all(dir).unwrap();
    fs::write(
        dir.join("config.json"),
        serde_json::json!({"auths": {host: {"auth": auth}}}).to_string(),
    )
    .unwrap();
}

/// The digest of the index a tag points to (the exact bytes the registry serves).
fn digest(reg: &TestRegistry, image: &str) -> String {
    let cert_dir = reg.cert_dir().map(|d| d.display().to_string());
    let creds = reg.creds();
    let mut args = vec!["inspect", "--raw"];
    match &cert_dir {
        Some(d) => args.extend(["--cert-dir", d.as_str()]),
        None => args.push("--tls-verify=false"),
    }
    if let Some(c) = &creds {
        args.extend(["--creds", c.as_str()]);
    }
    let r = reg.docker_ref(image);
    args.push(&r);
    let raw = common::skopeo(&args);
    let index: Value = serde_json::from_str(&raw).unwrap();
    assert!(index["manifests"].is_array(), "{image} is an index");
    cip::registry::index::sha256_digest(raw.as_bytes())
}

#[test]
fn upload_all_copies_every_platform_then_nothing_and_pull_latest_fills_local_stores() {
    let remote = TestRegistry::start_with(RegistryOptions::tls_auth(USER, PASSWORD));
    let local = TestRegistry::start();
    let ws = Workspace::demo();
    let config = ws.project().join("../docker-config");
    docker_config(&config, &remote.addr(), PASSWORD);
    let ca = remote.ca_cert_path().unwrap();
    let ca = ca.to_str().unwrap();
    let env = [("DOCKER_CONFIG", config.to_str().unwrap())];

    let published = ws.cip_env(
        &[
            "publish",
            "--remote-registry",
            &remote.addr(),
            "--ca-cert",
            ca,
        ],
        &env,
    );
    assert!(published.status.success(), "{}", text(&published));
    let stderr = String::from_utf8_lossy(&published.stderr);
    assert!(
        stderr.contains("config.json"),
        "the credential source is named: {stderr}"
    );

    let upload = [
        "upload-all-to-local-registry",
        "--remote-registry",
        &remote.addr(),
        "--local-registry",
        &local.addr(),
        "--ca-cert",
        ca,
    ];
    let first = ws.cip_env(&upload, &env);
    assert!(first.status.success(), "{}", text(&first));
    let out = String::from_utf8_lossy(&first.stdout);
    assert_eq!(out.matches("copied:").count(), 4, "{out}");
    for image in ["busybox", "hello", "tools", "app"] {
        for tag in ["1.0.0", "latest"] {
            let r = format!("{image}:{tag}");
            assert_eq!(
                digest(&remote, &format!("{image}:1.0.0")),
                digest(&local, &r),
                "{r}"
            );
        }
    }
    // Blobs shared between repositories were mounted, not copied again.
    assert!(out.contains("mounted"), "{out}");

    let second = ws.cip_env(&upload, &env);
    assert!(second.status.success(), "{}", text(&second));
    let out = String::from_utf8_lossy(&second.stdout);
    assert_eq!(
        out.matches("already there").count(),
        4,
        "the second run copies no blob: {out}"
    );
    assert!(!out.contains("copied:"), "{out}");

    // pull-latest-from-local-registry into buildah's store.
    let pulled = ws.cip(&[
        "pull-latest-from-local-registry",
        "--local-registry",
        &local.addr(),
        "--builder",
        "buildah",
    ]);
    assert!(pulled.status.success(), "{}", text(&pulled));
    let images = ws.store.run(&["images", "--format", "{{.Name}}:{{.Tag}}"]);
    for image in ["busybox", "hello", "tools", "app"] {
        for tag in ["1.0.0", "latest"] {
            let want = format!("{}/{image}:{tag}", local.addr());
            assert!(images.contains(&want), "{want} in {images}");
        }
    }

    // pull-latest-from-remote-registry into docker's store (a private dockerd; it trusts the CA
    // through its certs.d directory, as docker users configure it).
    let dockerd = TestDockerd::start();
    let certs_d = Path::new("/etc/docker/certs.d").join(remote.addr());
    fs::create_dir_all(&certs_d).unwrap();
    fs::copy(remote.ca_cert_path().unwrap(), certs_d.join("ca.crt")).unwrap();
    let host = dockerd.host();
    let docker_env = [
        ("DOCKER_CONFIG", config.to_str().unwrap()),
        ("DOCKER_HOST", host.as_str()),
    ];
    let pulled = ws.cip_env(
        &[
            "pull-latest-from-remote-registry",
            "--remote-registry",
            &remote.addr(),
            "--ca-cert",
            ca,
            "--builder",
            "docker",
        ],
        &docker_env,
    );
    let _ = fs::remove_dir_all(&certs_d);
    assert!(
        pulled.status.success(),
        "{}\n{}",
        text(&pulled),
        dockerd.log()
    );
    let listed = std::process::Command::new("docker")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .env("DOCKER_HOST", &host)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    for tag in ["1.0.0", "latest"] {
        let want = format!("{}/app:{tag}", remote.addr());
        assert!(listed.contains(&want), "{want} in {listed}");
    }
    for out in [&published, &first, &second, &pulled] {
        assert!(
            !text(out).contains(PASSWORD),
            "the password never appears in output"
        );
    }
}

#[test]
fn wrong_credentials_and_missing_images_are_clear() {
    let remote = TestRegistry::start_with(RegistryOptions::tls_auth(USER, PASSWORD));
    let local = TestRegistry::start();
    let ws = Workspace::demo();
    let config = ws.project().join("../docker-config");
    docker_config(&config, &remote.addr(), "wrong-password-123");
    let ca = remote.ca_cert_path().unwrap();
    let env = [("DOCKER_CONFIG", config.to_str().unwrap())];
    let upload = [
        "upload-all-to-local-registry",
        "--remote-registry",
        &remote.addr(),
        "--local-registry",
        &local.addr(),
        "--ca-cert",
        ca.to_str().unwrap(),
    ];
    let out = ws.cip_env(&upload, &env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains(&remote.addr()) && all.contains("config.json"),
        "{all}"
    );
    assert!(all.contains("credentials"), "{all}");
    assert!(!all.contains("wrong-password-123"), "{all}");

    // Right credentials, nothing published: every image is listed as missing, not fatal unless --strict.
    docker_config(&config, &remote.addr(), PASSWORD);
    let out = ws.cip_env(&upload, &env);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("missing on")
            .count(),
        4,
        "{}",
        text(&out)
    );
    let strict = ws.cip_env(&[&upload[..], &["--strict"]].concat(), &env);
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict));
}

/// A remote registry with the demo published on it, an empty local one, and the demo's workspace.
fn demo_on_a_remote_and_an_empty_local() -> (TestRegistry, TestRegistry, Workspace) {
    let remote = TestRegistry::start();
    let local = TestRegistry::start();
    let ws = Workspace::demo();
    let published = ws.cip(&["publish-locally", "--local-registry", &remote.addr()]);
    assert!(published.status.success(), "{}", text(&published));
    (remote, local, ws)
}

#[test]
fn upload_all_completes_through_resets_and_503s() {
    use common::faultproxy::{Fault, FaultProxy};
    let (remote, local, ws) = demo_on_a_remote_and_an_empty_local();
    // Faults on both sides of the copy: the source's downloads and the target's uploads.
    let faults = || {
        vec![
            Fault::Reset,
            Fault::Status503,
            Fault::Reset,
            Fault::Status503,
            Fault::ResetAfter(200),
        ]
    };
    let src = FaultProxy::start(&remote.addr(), faults());
    let dst = FaultProxy::start(&local.addr(), faults());
    let env = [("CIP_RETRY_ATTEMPTS", "10"), ("CIP_RETRY_BASE_MS", "50")];
    let out = ws.cip_env(
        &[
            "upload-all-to-local-registry",
            "--remote-registry",
            &src.addr(),
            "--local-registry",
            &dst.addr(),
        ],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("retry:"),
        "retries are logged: {}",
        text(&out)
    );
    assert!(src.fault_count() >= 4 && dst.fault_count() >= 4);
    for image in ["busybox", "hello", "tools", "app"] {
        assert_eq!(
            digest(&remote, &format!("{image}:1.0.0")),
            digest(&local, &format!("{image}:latest")),
            "{image}"
        );
    }
}

#[test]
fn ctrl_c_stops_a_stalled_upload_all_without_moving_a_tag() {
    use common::faultproxy::{Fault, FaultProxy};
    let (remote, local, ws) = demo_on_a_remote_and_an_empty_local();
    // The local side answers cip's first look (GET /v2/), then never again.
    let mut faults = vec![Fault::Pass];
    faults.extend(std::iter::repeat_n(Fault::Stall, 50));
    let dst = FaultProxy::start(&local.addr(), faults);
    let child = ws.spawn_cip(&[
        "upload-all-to-local-registry",
        "--remote-registry",
        &remote.addr(),
        "--local-registry",
        &dst.addr(),
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while dst.fault_count() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no copy reached the local side"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    common::send_signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SIGINT: stopped"),
        "{}",
        text(&out)
    );
    for image in ["busybox", "hello", "tools", "app"] {
        assert!(
            !common::is_tagged(&local, &format!("{image}:1.0.0")),
            "{image} was not tagged"
        );
    }
}

#[test]
fn credential_helper_and_ssl_cert_file_end_to_end() {
    let remote = TestRegistry::start_with(RegistryOptions::tls_auth(USER, PASSWORD));
    let ws = Workspace::demo();
    // A docker credential helper on PATH, named in config.json's credHelpers.
    let bin = ws.project().join("../helper-bin");
    fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-citest");
    common::write_executable(
        &helper,
        &format!("#!/bin/sh\nread host\necho '{{\"ServerURL\":\"'$host'\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'\n"),
    );
    let config = ws.project().join("../helper-config");
    fs::create_dir_all(&config).unwrap();
    fs::write(
        config.join("config.json"),
        serde_json::json!({"credHelpers": {remote.addr(): "citest"}}).to_string(),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let ca = remote.ca_cert_path().unwrap();
    // The CA comes from SSL_CERT_FILE this time, not --ca-cert.
    let env = [
        ("DOCKER_CONFIG", config.to_str().unwrap()),
        ("PATH", path.as_str()),
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
    ];
    let out = ws.cip_env(
        &["plan", "--remote-registry", &remote.addr(), "--json"],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("credential helper docker-credential-citest"),
        "{stderr}"
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["builds_needed"], 8,
        "an authenticated, verified look at an empty registry"
    );
    assert!(!text(&out).contains(PASSWORD));
    // Without the CA the TLS certificate is not trusted: a clear error, not a fallback to HTTP.
    let untrusted = ws.cip_env(
        &["plan", "--remote-registry", &remote.addr()],
        &[
            ("DOCKER_CONFIG", config.to_str().unwrap()),
            ("PATH", path.as_str()),
        ],
    );
    assert_eq!(untrusted.status.code(), Some(1), "{}", text(&untrusted));
    let err = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        err.contains("not trusted") && err.contains("--ca-cert"),
        "{err}"
    );
}

/// The JSON document a mirroring command printed on stdout (nothing else is there).
fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

/// The image entry `name` of a mirroring document.
fn image<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {doc}"))
}

#[test]
fn mirror_commands_report_each_image_as_json() {
    use common::faultproxy::{Fault, FaultProxy};
    let (remote, local, ws) = demo_on_a_remote_and_an_empty_local();
    // hello's next version is not published: missing on the source.
    common::workspace::set_info(
        &ws,
        "01-hello",
        r#"{:version "1.0.1" :platforms #{"linux/amd64" "linux/arm64"}}"#,
    );
    let upload = |to: &str, env: &[(&str, &str)]| {
        ws.cip_env(
            &[
                "upload-all-to-local-registry",
                "--remote-registry",
                &remote.addr(),
                "--local-registry",
                to,
                "--json",
            ],
            env,
        )
    };

    let first = upload(&local.addr(), &[]);
    assert!(first.status.success(), "{}", text(&first));
    let doc = json_of(&first);
    assert_eq!(doc["schema_version"], 1, "{doc}");
    assert_eq!(doc["command"], "upload-all-to-local-registry");
    assert_eq!(doc["source"], remote.addr().as_str());
    assert_eq!(doc["target"], local.addr().as_str());
    let busybox = image(&doc, "busybox");
    assert_eq!(busybox["version"], "1.0.0");
    assert_eq!(busybox["result"], "copied", "{busybox}");
    assert_eq!(busybox["digest"], digest(&remote, "busybox:1.0.0").as_str());
    // publish-locally published this machine's platform.
    assert_eq!(busybox["platforms"], serde_json::json!(["linux/amd64"]));
    assert!(busybox["blobs_copied"].as_u64().unwrap() > 0, "{busybox}");
    assert!(busybox["bytes_copied"].as_u64().unwrap() > 0, "{busybox}");
    assert!(busybox["duration_ms"].is_u64() && busybox["error"].is_null());
    let hello = image(&doc, "hello");
    assert_eq!(
        (&hello["version"], &hello["result"], &hello["digest"]),
        (&"1.0.1".into(), &"missing_on_source".into(), &Value::Null),
        "{hello}"
    );
    assert_eq!(doc["summary"]["copied"], 3, "{doc}");
    assert_eq!(doc["summary"]["missing_on_source"], 1, "{doc}");
    assert_eq!(doc["exit_code"], 0);
    // Human text on stderr.
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(err.contains("IMAGE") && err.contains("missing on"), "{err}");

    // Again: nothing moves.
    let second = json_of(&upload(&local.addr(), &[]));
    for name in ["busybox", "tools", "app"] {
        let i = image(&second, name);
        assert_eq!(i["result"], "up_to_date", "{i}");
        assert_eq!(i["blobs_copied"], 0, "{i}");
        assert_eq!(i["digest"], image(&doc, name)["digest"], "{i}");
    }

    // A target that fails every request: each image says so with its error, exit 1.
    let broken = FaultProxy::start(
        &TestRegistry::start().addr(),
        [Fault::Pass]
            .into_iter()
            .chain(std::iter::repeat_n(Fault::Status503, 200))
            .collect(),
    );
    let failed = upload(&broken.addr(), &[("CIP_RETRY_ATTEMPTS", "1")]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    let doc = json_of(&failed);
    assert_eq!(doc["exit_code"], 1);
    let app = image(&doc, "app");
    assert_eq!(app["result"], "failed", "{app}");
    assert!(
        app["error"].as_str().unwrap().contains("503"),
        "the error is there: {app}"
    );
    assert_eq!(doc["summary"]["failed"], 3, "{doc}");

    // pull-latest into buildah's store: what was pulled, by which digest, tagged how.
    let pulled = ws.cip(&[
        "pull-latest-from-local-registry",
        "--local-registry",
        &local.addr(),
        "--builder",
        "buildah",
        "--json",
    ]);
    assert!(pulled.status.success(), "{}", text(&pulled));
    let doc = json_of(&pulled);
    assert_eq!(doc["command"], "pull-latest-from-local-registry");
    assert_eq!(doc["source"], local.addr().as_str());
    assert!(doc["target"].as_str().unwrap().contains("buildah"), "{doc}");
    let app = image(&doc, "app");
    assert_eq!(app["result"], "pulled", "{app}");
    assert_eq!(app["digest"], digest(&local, "app:1.0.0").as_str());
    assert_eq!(app["platforms"], serde_json::json!(["linux/amd64"]));
    assert_eq!(
        app["tagged"],
        format!("{}/app:latest", local.addr()).as_str()
    );
    assert_eq!(image(&doc, "hello")["result"], "missing_on_source");
    assert_eq!(doc["summary"]["pulled"], 3, "{doc}");
}
