//! What the builder built is what is published: the fields only Docker's image config has
//! (`Shell`, `Healthcheck`, `OnBuild`, `StopSignal`) reach the registry with every engine, and a
//! child's RUN steps run under its parent's SHELL. The parent is `FROM scratch` with a static
//! busybox and no `/bin/sh`: its child's shell-form RUN works only through the parent's
//! `SHELL ["/bin/busybox", "sh", "-e", "-c"]`, and its `ONBUILD` step leaves a file the child checks.
use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::common;
use common::docker::TestDockerd;
use common::farm::TestPodmanService;
use common::workspace::{text, Workspace};
use common::TestRegistry;

const SHELL: [&str; 4] = ["/bin/busybox", "sh", "-e", "-c"];

/// `00-parent` with SHELL, HEALTHCHECK, STOPSIGNAL and ONBUILD; `01-child` whose RUN needs them.
fn shell_tree(dir: &Path) {
    let write = |ctx: &str, dockerfile: &str| {
        let ctx = dir.join("contexts").join(ctx);
        fs::create_dir_all(&ctx).unwrap();
        fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        fs::write(
            ctx.join("info.edn"),
            "{:version \"1.0.0\" :platforms #{\"linux/amd64\"}}",
        )
        .unwrap();
        ctx
    };
    let parent = write(
        "00-parent",
        "FROM scratch\nCOPY busybox /bin/busybox\n\
         SHELL [\"/bin/busybox\", \"sh\", \"-e\", \"-c\"]\n\
         HEALTHCHECK --interval=30s CMD /bin/busybox true\n\
         STOPSIGNAL SIGINT\n\
         ONBUILD RUN echo onbuild > /onbuild\n",
    );
    fs::copy(common::busybox_path("amd64"), parent.join("busybox")).unwrap();
    write(
        "01-child",
        "ARG REGISTRY\nFROM ${REGISTRY}/parent:1.0.0\n\
         RUN test -f /onbuild && echo ran under the parent shell > /child\n",
    );
}

/// The config blob of `image`'s amd64 entry as the registry holds it (skopeo's `--config` alone
/// would show it converted to OCI's format, without the fields this is about).
fn raw_config(reg: &TestRegistry, image: &str) -> Value {
    let text = common::skopeo(&[
        "--override-arch",
        "amd64",
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        &reg.docker_ref(image),
    ]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Publishes the tree with `args` and `env`, and checks what the registry holds.
fn publishes_what_was_built(
    ws: &Workspace,
    reg: &TestRegistry,
    args: &[&str],
    env: &[(&str, &str)],
) {
    let addr = reg.addr();
    let mut all = vec!["publish", "--remote-registry", &addr];
    all.extend_from_slice(args);
    let out = ws.cip_env(&all, env);
    assert!(out.status.success(), "{}", text(&out));
    let parent = raw_config(reg, "parent:1.0.0");
    let config = &parent["config"];
    assert_eq!(config["Shell"], serde_json::json!(SHELL), "{parent}");
    assert_eq!(
        config["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "/bin/busybox true"]),
        "{parent}"
    );
    assert_eq!(config["StopSignal"], "SIGINT", "{parent}");
    assert_eq!(
        config["OnBuild"],
        serde_json::json!(["RUN echo onbuild > /onbuild"]),
        "{parent}"
    );
    // The child inherits the shell (its own children need it too).
    let child: Value = raw_config(reg, "child:1.0.0");
    assert_eq!(
        child["config"]["Shell"],
        serde_json::json!(SHELL),
        "{child}"
    );
}

fn workspace() -> (tempfile::TempDir, Workspace) {
    let fixture = tempfile::tempdir().unwrap();
    shell_tree(fixture.path());
    let ws = Workspace::new(fixture.path());
    (fixture, ws)
}

#[test]
fn buildah_publishes_shell_healthcheck_onbuild_and_stopsignal() {
    let reg = TestRegistry::start();
    let (_fixture, ws) = workspace();
    publishes_what_was_built(&ws, &reg, &["--builder", "buildah"], &[]);
}

#[test]
fn podman_publishes_shell_healthcheck_onbuild_and_stopsignal() {
    let reg = TestRegistry::start();
    let (_fixture, ws) = workspace();
    publishes_what_was_built(&ws, &reg, &["--builder", "podman"], &[]);
}

#[test]
fn docker_publishes_shell_healthcheck_onbuild_and_stopsignal() {
    let dockerd = TestDockerd::start();
    let reg = TestRegistry::start();
    let (_fixture, ws) = workspace();
    let host = dockerd.host();
    publishes_what_was_built(
        &ws,
        &reg,
        &["--builder", "docker"],
        &[("DOCKER_HOST", host.as_str())],
    );
}

#[test]
fn a_podman_service_node_publishes_them_by_either_route() {
    let service = TestPodmanService::start();
    for route in ["direct", "through-cip"] {
        let reg = TestRegistry::start();
        let (_fixture, ws) = workspace();
        fs::write(
            ws.project().join("cip.toml"),
            format!(
                "[nodes.p]\nkind = \"podman\"\nurl = \"{}\"\npush = \"{route}\"\n",
                service.url()
            ),
        )
        .unwrap();
        publishes_what_was_built(&ws, &reg, &["--node", "p"], &[]);
    }
}
