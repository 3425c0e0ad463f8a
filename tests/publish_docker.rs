//! The demo tree publishes with the docker backend too (a private dockerd, BuildKit without buildx),
//! for both platforms, arm64 under emulation.
mod common;

use common::docker::TestDockerd;
use common::workspace::{results, text, Workspace};
use common::TestRegistry;
use serde_json::Value;

#[test]
fn publish_with_the_docker_backend() {
    let dockerd = TestDockerd::start();
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let host = dockerd.host();
    let env = [("DOCKER_HOST", host.as_str())];
    let args = ["publish", "--builder", "docker", "--remote-registry", &reg.addr(), "--json"];
    let out = ws.cip_env(&args, &env);
    assert!(out.status.success(), "{}\n--- dockerd\n{}", text(&out), dockerd.log());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("with docker"), "the builder is named: {stderr}");
    let r = results(&out);
    assert_eq!(r.len(), 4);
    for (name, result, built) in &r {
        assert_eq!(result, "built", "{name}");
        assert_eq!(built, &["linux/amd64", "linux/arm64"], "{name}");
    }
    for image in ["busybox", "hello", "tools", "app"] {
        let raw: Value = serde_json::from_str(&common::skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &reg.docker_ref(&format!("{image}:1.0.0")),
        ]))
        .unwrap();
        let mut archs: Vec<&str> = raw["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["platform"]["architecture"].as_str().unwrap())
            .collect();
        archs.sort();
        assert_eq!(archs, ["amd64", "arm64"], "{image}");
    }
    let config: Value = serde_json::from_str(&common::skopeo(&[
        "--override-arch",
        "arm64",
        "inspect",
        "--config",
        "--tls-verify=false",
        &reg.docker_ref("app:1.0.0"),
    ]))
    .unwrap();
    assert_eq!(config["architecture"], "arm64");
    // A second run finds everything published and builds nothing.
    let again = ws.cip_env(&args, &env);
    assert!(again.status.success(), "{}", text(&again));
    assert!(results(&again).iter().all(|x| x.1 == "up to date"));
}
