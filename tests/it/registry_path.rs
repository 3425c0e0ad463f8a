//! Registry addresses with a namespace path (`HOST:PORT/team/sub`): every command puts the images
//! under the path, builds find their parents there, credentials and plain HTTP go by the host, and an
//! address carrying credentials is refused without echoing them. Real registries, real buildah.
use crate::common;

use std::fs;
use std::path::Path;
use std::process::Command;

use base64::Engine;
use common::workspace::{results, text, Workspace};
use common::{raw_manifest as raw, RegistryOptions, TestRegistry};
use serde_json::Value;

const PATH: &str = "team/sub";

/// The repositories the registry holds (`GET /v2/_catalog`), sorted.
fn catalog(reg: &TestRegistry) -> Vec<String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10"]);
    if let Some(creds) = reg.creds() {
        cmd.arg("-u").arg(creds);
    }
    cmd.arg(format!("{}/v2/_catalog", reg.url()));
    let doc: Value = serde_json::from_str(&common::run_ok(&mut cmd)).unwrap();
    let mut repos: Vec<String> = doc["repositories"]
        .as_array()
        .unwrap_or_else(|| panic!("catalog: {doc}"))
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    repos.sort();
    repos
}

fn under(path: &str, names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|n| format!("{path}/{n}")).collect();
    v.sort();
    v
}

/// `cip plan ARGS --json`, checked to succeed, as JSON.
fn plan_json(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut all = vec!["plan"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = ws.cip_env(&all, env);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

/// Publishes the demo to `address` with publish-locally, checked to build all four images.
fn publish_demo(ws: &Workspace, address: &str, env: &[(&str, &str)]) {
    let out = ws.cip_env(
        &["publish-locally", "--local-registry", address, "--json"],
        env,
    );
    assert!(out.status.success(), "{}", text(&out));
    let r = results(&out);
    assert_eq!(r.len(), 4, "{}", text(&out));
    assert!(r.iter().all(|x| x.1 == "built"), "{r:?}");
}

#[test]
fn demo_publishes_under_a_two_level_path_and_plan_and_status_agree() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let address = format!("{}/{PATH}", reg.addr());
    publish_demo(&ws, &address, &[]);

    assert_eq!(
        catalog(&reg),
        under(PATH, &["app", "busybox", "hello", "tools"]),
        "every image under the path, nothing at the registry's root"
    );
    for image in ["busybox:1.0.0", "hello:latest", "tools:1.0.0", "app:1.0.0"] {
        let index = raw(&reg, &format!("{PATH}/{image}"));
        assert_eq!(
            index["mediaType"],
            "application/vnd.oci.image.index.v1+json"
        );
    }
    // The children were built FROM the path-prefixed parents: nothing else exists to build them on.
    let calls = ws.buildah_calls().join("\n");
    assert!(
        calls.contains(&format!("REGISTRY={address}")),
        "REGISTRY is HOST:PORT/PATH: {calls}"
    );

    let plan = plan_json(&ws, &["--local-registry", &address], &[]);
    assert_eq!(plan["builds_needed"], 0, "{plan}");
    assert_eq!(plan["registry"], address.as_str());
    let status = ws.cip(&["status", "--local-registry", &address]);
    assert!(status.status.success(), "{}", text(&status));
    let out = String::from_utf8_lossy(&status.stdout);
    assert_eq!(out.matches("up to date").count(), 4, "{out}");
    // The same registry without the path holds none of them.
    let bare = plan_json(&ws, &["--local-registry", &reg.addr()], &[]);
    assert_eq!(bare["builds_needed"], 4, "{bare}");
}

#[test]
fn build_tags_the_local_store_under_the_path_and_children_find_their_parents_there() {
    let ws = Workspace::demo();
    // `build` only tags the builder's store: no registry answers at this address.
    let address = format!("localhost:5999/{PATH}/");
    let out = ws.cip(&["build", "--local-registry", &address, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        results(&out).iter().all(|x| x.1 == "built"),
        "{}",
        text(&out)
    );
    let images = ws.store.run(&["images", "--format", "{{.Name}}:{{.Tag}}"]);
    for want in ["app:1.0.0", "app:latest", "hello:1.0.0", "busybox:1.0.0"] {
        let want = format!("localhost:5999/{PATH}/{want}");
        assert!(images.lines().any(|l| l == want), "{want} in {images}");
    }
    let again = ws.cip(&["build", "--local-registry", &address, "--json"]);
    assert!(
        results(&again).iter().all(|x| x.1 == "up to date"),
        "{}",
        text(&again)
    );
}

/// A small tree in the older layout (`VERSION`, `PLATFORMS_OVERRIDE`): a busybox base for both
/// platforms and a child built on it for amd64.
fn version_file_tree(root: &Path) {
    let base = root.join("contexts/00-base");
    let child = root.join("contexts/01-child");
    fs::create_dir_all(&base).unwrap();
    fs::create_dir_all(&child).unwrap();
    for arch in ["amd64", "arm64"] {
        fs::copy(
            common::busybox_path(arch),
            base.join(format!("busybox-{arch}")),
        )
        .unwrap();
    }
    fs::write(
        base.join("Dockerfile"),
        "FROM scratch\nARG TARGETARCH\nCOPY busybox-${TARGETARCH} /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nENV PATH=/bin\n",
    )
    .unwrap();
    fs::write(base.join("VERSION"), "2.0.0\n").unwrap();
    fs::write(
        child.join("Dockerfile"),
        "ARG REGISTRY\nFROM ${REGISTRY}/base:2.0.0\nRUN echo child > /child.txt\n",
    )
    .unwrap();
    fs::write(child.join("VERSION"), "0.1.0\n").unwrap();
    fs::write(child.join("PLATFORMS_OVERRIDE"), "linux/amd64\n").unwrap();
}

#[test]
fn version_file_tree_publishes_to_a_remote_path_and_plans_up_to_date() {
    let reg = TestRegistry::start();
    let fixture = tempfile::tempdir().unwrap();
    version_file_tree(fixture.path());
    let ws = Workspace::new(fixture.path());
    let address = format!("{}/{PATH}", reg.addr());

    let out = ws.cip(&["publish", "--remote-registry", &address, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let r = results(&out);
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r.iter().all(|x| x.1 == "built"), "{r:?}");
    assert_eq!(catalog(&reg), under(PATH, &["base", "child"]));
    assert_eq!(
        common::index_platforms(&raw(&reg, &format!("{PATH}/base:2.0.0"))),
        ["linux/amd64", "linux/arm64"]
    );
    assert_eq!(
        common::index_platforms(&raw(&reg, &format!("{PATH}/child:latest"))),
        ["linux/amd64"]
    );

    let plan = plan_json(&ws, &["--remote-registry", &address], &[]);
    assert_eq!(plan["builds_needed"], 0, "{plan}");
}

#[test]
fn mirror_commands_copy_and_pull_between_paths() {
    let source = TestRegistry::start();
    let target = TestRegistry::start();
    let ws = Workspace::demo();
    let from = format!("{}/{PATH}", source.addr());
    let to = format!("{}/other", target.addr());
    publish_demo(&ws, &from, &[]);

    let out = ws.cip(&[
        "upload-all-to-local-registry",
        "--remote-registry",
        &from,
        "--local-registry",
        &to,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        catalog(&target),
        under("other", &["app", "busybox", "hello", "tools"])
    );
    for image in ["busybox:1.0.0", "app:latest"] {
        assert_eq!(
            raw(&source, &format!("{PATH}/{image}")),
            raw(&target, &format!("other/{image}")),
            "{image} copied as it is"
        );
    }
    let again = ws.cip(&[
        "upload-all-to-local-registry",
        "--remote-registry",
        &from,
        "--local-registry",
        &to,
    ]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(
        String::from_utf8_lossy(&again.stdout)
            .matches("already there")
            .count(),
        4,
        "{}",
        text(&again)
    );

    let pulled = ws.cip(&[
        "pull-latest-from-local-registry",
        "--local-registry",
        &to,
        "--builder",
        "buildah",
        "--strict",
    ]);
    assert!(pulled.status.success(), "{}", text(&pulled));
    let images = ws.store.run(&["images", "--format", "{{.Name}}:{{.Tag}}"]);
    for name in ["busybox", "hello", "tools", "app"] {
        for tag in ["1.0.0", "latest"] {
            let want = format!("{to}/{name}:{tag}");
            assert!(images.lines().any(|l| l == want), "{want} in {images}");
        }
    }
}

/// A directory for DOCKER_CONFIG and XDG_*, so no credentials of the machine's user are found. It
/// holds an empty `config.json`: buildah refuses a DOCKER_CONFIG without one.
fn empty_config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("config.json"), "{}").unwrap();
    dir
}

/// An auth.json (`REGISTRY_AUTH_FILE`) with `user:password` for `key`.
fn auth_file(dir: &Path, key: &str, user: &str, password: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let path = dir.join("auth.json");
    fs::write(
        &path,
        serde_json::json!({"auths": {key: {"auth": auth}}}).to_string(),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn credentials_are_looked_up_by_host_when_the_address_has_a_path() {
    let (user, password) = ("path-user", "s3cret-Path-pw");
    let reg = TestRegistry::start_with(RegistryOptions {
        tls: false,
        auth: Some((user.into(), password.into())),
    });
    let ws = Workspace::demo();
    let home = empty_config_dir();
    let empty = home.path().display().to_string();
    let file = auth_file(home.path(), &reg.addr(), user, password);
    let address = format!("{}/{PATH}", reg.addr());
    let isolated = [
        ("DOCKER_CONFIG", empty.as_str()),
        ("XDG_RUNTIME_DIR", empty.as_str()),
        ("XDG_CONFIG_HOME", empty.as_str()),
    ];

    let mut env = isolated.to_vec();
    env.push(("REGISTRY_AUTH_FILE", file.as_str()));
    let plan = ws.cip_env(&["plan", "--remote-registry", &address, "--json"], &env);
    assert!(plan.status.success(), "{}", text(&plan));
    let err = String::from_utf8_lossy(&plan.stderr);
    assert!(
        err.contains(&format!("registry {}: ", reg.addr())) && err.contains("auth.json"),
        "credentials named by host and source: {err}"
    );
    assert!(!text(&plan).contains(password));

    // Without the file, the same look is refused: the credentials above were really used.
    let anon = ws.cip_env(&["plan", "--remote-registry", &address], &isolated);
    assert_eq!(anon.status.code(), Some(1), "{}", text(&anon));
    assert!(
        String::from_utf8_lossy(&anon.stderr).contains("refused access"),
        "{}",
        text(&anon)
    );
}

#[test]
fn environment_credentials_reach_the_builder_by_host_when_the_address_has_a_path() {
    let (user, password) = ("env-user", "s3cret-Env-pw");
    let reg = TestRegistry::start_with(RegistryOptions {
        tls: false,
        auth: Some((user.into(), password.into())),
    });
    let ws = Workspace::demo();
    let home = empty_config_dir();
    let empty = home.path().display().to_string();
    let address = format!("{}/{PATH}", reg.addr());
    let env = [
        ("DOCKER_CONFIG", empty.as_str()),
        ("XDG_RUNTIME_DIR", empty.as_str()),
        ("CIP_USERNAME", user),
        ("CIP_PASSWORD", password),
    ];
    // The children pull their parents from the guarded registry with the builder auth file.
    publish_demo(&ws, &address, &env);
    assert_eq!(
        catalog(&reg),
        under(PATH, &["app", "busybox", "hello", "tools"])
    );
}

#[test]
fn an_address_with_credentials_is_refused_without_echoing_them() {
    let ws = Workspace::new(&common::demo_fixture());
    let secret = "Pa55-Hidden-w0rd";
    let address = format!("someone:{secret}@127.0.0.1:1/{PATH}");
    for args in [
        vec!["plan", "--remote-registry", address.as_str()],
        vec!["status", "--local-registry", address.as_str()],
        vec!["publish", "--remote-registry", address.as_str()],
        vec!["publish-locally", "--local-registry", address.as_str()],
        vec!["build", "--local-registry", address.as_str()],
        vec![
            "upload-all-to-local-registry",
            "--remote-registry",
            address.as_str(),
        ],
        vec![
            "upload-all-to-local-registry",
            "--remote-registry",
            "127.0.0.1:1",
            "--local-registry",
            address.as_str(),
        ],
        vec![
            "pull-latest-from-remote-registry",
            "--remote-registry",
            address.as_str(),
        ],
    ] {
        let out = ws.cip(&args);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {all}");
        assert!(
            all.contains("registry addresses may not carry credentials: use CIP_USERNAME/CIP_PASSWORD or docker login"),
            "{args:?}: {all}"
        );
        assert!(
            !all.contains(secret) && !all.contains("someone"),
            "{args:?} echoed the address: {all}"
        );
    }
}

#[test]
fn invalid_paths_are_refused_with_the_reason() {
    let ws = Workspace::new(&common::demo_fixture());
    for (address, why) in [
        ("127.0.0.1:1/Team", "must be lowercase"),
        ("127.0.0.1:1/team//sub", "empty component"),
        ("127.0.0.1:1/team/-x", "not a repository name"),
        ("http://127.0.0.1:1/team", "without a scheme"),
    ] {
        let out = ws.cip(&["plan", "--remote-registry", address]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(why) && err.contains(address),
            "{address}: {err}"
        );
    }
}
