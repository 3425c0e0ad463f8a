//! The demo tree publishes with the docker backend too (a private dockerd, BuildKit without buildx),
//! for both platforms, arm64 under emulation.
use crate::common;

use common::docker::TestDockerd;
use common::workspace::{results, text, Workspace};
use common::TestRegistry;

#[test]
fn publish_with_the_docker_backend() {
    let dockerd = TestDockerd::start();
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let host = dockerd.host();
    let env = [("DOCKER_HOST", host.as_str())];
    let args = [
        "publish",
        "--builder",
        "docker",
        "--remote-registry",
        &reg.addr(),
        "--json",
    ];
    let out = ws.cip_env(&args, &env);
    assert!(
        out.status.success(),
        "{}\n--- dockerd\n{}",
        text(&out),
        dockerd.log()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("with docker"),
        "the builder is named: {stderr}"
    );
    let r = results(&out);
    assert_eq!(r.len(), 4);
    for (name, result, built) in &r {
        assert_eq!(result, "built", "{name}");
        assert_eq!(built, &["linux/amd64", "linux/arm64"], "{name}");
    }
    // BuildKit does not expand `COPY --from=${REGISTRY}/tools:1.0.0`: app was built from a
    // translation (the only Dockerfile translated), which its log names before the command.
    let logs = ws.project().join(".cip/logs");
    let translated: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".Dockerfile"))
        .collect();
    assert!(
        translated.iter().all(|n| n.starts_with("app-1.0.0-linux-")),
        "{translated:?}"
    );
    for arch in ["amd64", "arm64"] {
        let stem = format!("app-1.0.0-linux-{arch}");
        let log = std::fs::read_to_string(logs.join(format!("{stem}.log"))).unwrap();
        // The fixture may hold logs of earlier runs: this run's lines are the last.
        let lines: Vec<&str> = log.lines().collect();
        let note = lines
            .iter()
            .rposition(|l| l.starts_with("cip: BuildKit does not expand variables in --from"))
            .unwrap_or_else(|| panic!("no translation note in {stem}.log:\n{log}"));
        let command = lines.get(note + 1).copied().unwrap_or_default();
        let file = translated
            .iter()
            .find(|n| n.starts_with(&format!("{stem}.")) && lines[note].contains(n.as_str()))
            .unwrap_or_else(|| panic!("no translated Dockerfile for {stem}: {translated:?}"));
        let path = logs.join(file).display().to_string();
        assert!(lines[note].contains(&path), "{}", lines[note]);
        assert!(
            command.starts_with("$ ") && command.contains(&format!(" -f {path} ")),
            "{command}"
        );
        let dockerfile = std::fs::read_to_string(logs.join(file)).unwrap();
        let stage = format!("FROM {}/tools:1.0.0 AS cip-from-1\n", reg.addr());
        assert!(dockerfile.contains(&stage), "{dockerfile}");
        assert!(
            dockerfile.contains("COPY --from=cip-from-1 /tools.txt"),
            "{dockerfile}"
        );
    }
    for image in ["busybox", "hello", "tools", "app"] {
        let raw = common::raw_manifest(&reg, &format!("{image}:1.0.0"));
        assert_eq!(
            common::index_platforms(&raw),
            ["linux/amd64", "linux/arm64"],
            "{image}"
        );
    }
    let config = common::image_config(&reg, "app:1.0.0", "arm64");
    assert_eq!(config["architecture"], "arm64");
    // A second run finds everything published and builds nothing.
    let again = ws.cip_env(&args, &env);
    assert!(again.status.success(), "{}", text(&again));
    assert!(results(&again).iter().all(|x| x.1 == "up to date"));
}
