//! `cip publish-locally`, `publish`, `build` and `plan` against real registry processes and real buildah
//! builds (arm64 under QEMU emulation).
use crate::common;

use std::fs;
use std::process::Command;

use common::workspace::{result_of, results, set_info, text, Workspace};
use common::{index_platforms as platforms, raw_manifest as raw};
use common::{RegistryOptions, TestRegistry};
use serde_json::Value;

#[test]
fn publish_locally_builds_what_is_missing_and_nothing_else() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let args = ["publish-locally", "--local-registry", &reg.addr(), "--json"];

    let first = ws.cip(&args);
    assert!(first.status.success(), "{}", text(&first));
    let r = results(&first);
    assert_eq!(r.len(), 4);
    assert!(
        r.iter().all(|x| x.1 == "built" && x.2 == ["linux/amd64"]),
        "{r:?}"
    );
    assert_eq!(ws.builds(), 4);
    for image in [
        "busybox:1.0.0",
        "hello:1.0.0",
        "tools:1.0.0",
        "app:1.0.0",
        "app:latest",
    ] {
        let index = raw(&reg, image);
        assert_eq!(
            index["mediaType"], "application/vnd.oci.image.index.v1+json",
            "{image}"
        );
        assert_eq!(platforms(&index), ["linux/amd64"], "{image}");
    }
    // The app really was built on its parents: its file combines both.
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains("IMAGE") && stderr.contains("built"),
        "summary table: {stderr}"
    );

    let calls = ws.buildah_calls().len();
    let second = ws.cip(&args);
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("4 images up to date\ntotal "),
        "a no-op run says so in one line: {}",
        text(&second)
    );
    assert!(
        results(&second).iter().all(|x| x.1 == "up to date"),
        "{}",
        text(&second)
    );
    assert_eq!(
        ws.buildah_calls().len(),
        calls,
        "a second run invokes no builder, not even to detect it"
    );

    set_info(
        &ws,
        "02-app",
        "{:version \"1.0.1\" :platforms #{\"linux/amd64\" \"linux/arm64\"}}\n",
    );
    let third = ws.cip(&args);
    assert!(third.status.success(), "{}", text(&third));
    let r = results(&third);
    assert_eq!(result_of(&r, "app").1, "built");
    assert!(
        r.iter()
            .filter(|x| x.0 != "app")
            .all(|x| x.1 == "up to date"),
        "{r:?}"
    );
    assert_eq!(ws.builds(), 5, "only the bumped leaf was built");
    assert_eq!(platforms(&raw(&reg, "app:1.0.1")), ["linux/amd64"]);
    assert_eq!(
        platforms(&raw(&reg, "app:1.0.0")),
        ["linux/amd64"],
        "the old version stays"
    );
}

#[test]
fn publish_multi_arch_to_tls_registry_and_add_a_platform_later() {
    let reg = TestRegistry::start_with(RegistryOptions {
        tls: true,
        auth: None,
    });
    let ws = Workspace::demo();
    // app starts as amd64 only.
    set_info(
        &ws,
        "02-app",
        "{:version \"1.0.0\" :platforms #{\"linux/amd64\"}}\n",
    );
    let ca = reg.ca_cert_path().unwrap();
    let args = [
        "publish",
        "--remote-registry",
        &reg.addr(),
        "--ca-cert",
        ca.to_str().unwrap(),
        "--json",
    ];

    let first = ws.cip(&args);
    assert!(first.status.success(), "{}", text(&first));
    for image in ["busybox:1.0.0", "hello:1.0.0", "tools:1.0.0"] {
        assert_eq!(
            platforms(&raw(&reg, image)),
            ["linux/amd64", "linux/arm64"],
            "{image}"
        );
    }
    let app_before = raw(&reg, "app:1.0.0");
    assert_eq!(platforms(&app_before), ["linux/amd64"]);
    // skopeo agrees on the architecture of the arm64 image's config.
    let config = common::image_config(&reg, "tools:1.0.0", "arm64");
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["os"], "linux");

    // Add arm64 to app: only that platform is built and the index keeps amd64 as it was.
    set_info(
        &ws,
        "02-app",
        "{:version \"1.0.0\" :platforms #{\"linux/amd64\" \"linux/arm64\"}}\n",
    );
    let builds_before = ws.builds();
    let second = ws.cip(&args);
    assert!(second.status.success(), "{}", text(&second));
    let r = results(&second);
    assert_eq!(result_of(&r, "app").2, ["linux/arm64"], "{r:?}");
    assert_eq!(ws.builds(), builds_before + 1);
    let app_after = raw(&reg, "app:1.0.0");
    assert_eq!(platforms(&app_after), ["linux/amd64", "linux/arm64"]);
    let amd64 = |v: &Value| {
        v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == "amd64")
            .unwrap()["digest"]
            .clone()
    };
    assert_eq!(
        amd64(&app_before),
        amd64(&app_after),
        "the published amd64 image is kept"
    );
}

#[test]
fn keep_going_publishes_independent_images_and_skips_descendants() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    fs::write(
        ws.context("01-tools").join("Dockerfile"),
        "ARG REGISTRY\nFROM ${REGISTRY}/busybox:1.0.0\nRUN exit 3\n",
    )
    .unwrap();
    let out = ws.cip(&[
        "publish-locally",
        "--local-registry",
        &reg.addr(),
        "--keep-going",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = results(&out);
    assert_eq!(result_of(&r, "busybox").1, "built");
    assert_eq!(result_of(&r, "hello").1, "built");
    assert_eq!(result_of(&r, "tools").1, "failed");
    assert_eq!(result_of(&r, "app").1, "skipped: a parent failed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FAILED tools:1.0.0"), "{stderr}");
    assert!(
        stderr.contains("exit 3") || stderr.contains("exit status 3"),
        "the log tail is shown: {stderr}"
    );
    assert!(
        !stderr.contains("retry: building"),
        "a Dockerfile's failure is not retried: {stderr}"
    );
    assert_eq!(platforms(&raw(&reg, "hello:1.0.0")), ["linux/amd64"]);
    assert!(
        !common::is_tagged(&reg, "tools:1.0.0"),
        "nothing half-published is tagged"
    );
    let log = ws.project().join(".cip/logs/tools-1.0.0-linux-amd64.log");
    assert!(log.exists());
    // The JSON summary has machine-friendly codes, and the failed platform with its log.
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let image = |name: &str| {
        doc["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(image("busybox")["code"], "built");
    assert_eq!(image("app")["code"], "skipped_parent_failed");
    let tools = image("tools");
    assert_eq!(tools["code"], "failed");
    assert_eq!(tools["failed"][0]["platform"], "linux/amd64");
    assert_eq!(tools["failed"][0]["log"], log.to_str().unwrap());
}

/// buildah fails a RUN step now and then on a loaded machine with "Close_Fd sealing memfd copy:
/// Device or resource busy" (the kernel refuses to seal buildah's copy of itself). That cannot be
/// caused at will, so here the RUN step prints the same line and fails, once: a host directory
/// mounted into the build (`-v`, passed to buildah after `--`) remembers the first try.
#[test]
fn a_build_failing_for_a_reason_of_the_machine_is_run_again() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let marker = tempfile::tempdir().unwrap();
    let dockerfile = ws.context("01-tools").join("Dockerfile");
    let mut steps = fs::read_to_string(&dockerfile).unwrap();
    steps.push_str(
        "RUN if [ ! -e /marker/tried ]; then touch /marker/tried; \
         echo 'Close_Fd sealing memfd copy: Device or resource busy'; exit 1; fi\n",
    );
    fs::write(&dockerfile, steps).unwrap();
    let volume = format!("{}:/marker", marker.path().display());
    let out = ws.cip(&[
        "publish-locally",
        "--local-registry",
        &reg.addr(),
        "--json",
        "--",
        "-v",
        &volume,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(marker.path().join("tried").exists(), "the first try ran");
    let r = results(&out);
    assert!(r.iter().all(|(_, result, _)| result == "built"), "{r:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let retries: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("retry: building"))
        .collect();
    assert_eq!(retries.len(), 1, "{stderr}");
    assert!(
        retries[0].contains("tools:1.0.0") && retries[0].contains("sealing memfd copy"),
        "{stderr}"
    );
    let log =
        fs::read_to_string(ws.project().join(".cip/logs/tools-1.0.0-linux-amd64.log")).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.starts_with("$ ")).count(),
        2,
        "the log keeps both tries: {log}"
    );
    assert!(log.contains("Device or resource busy"), "{log}");
}

#[test]
fn first_error_cancels_running_builds() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    fs::write(
        ws.context("01-hello").join("Dockerfile"),
        "ARG REGISTRY\nFROM ${REGISTRY}/busybox:1.0.0\nRUN sleep 120\n",
    )
    .unwrap();
    fs::write(
        ws.context("01-tools").join("Dockerfile"),
        "ARG REGISTRY\nFROM ${REGISTRY}/busybox:1.0.0\nRUN sleep 3; exit 3\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = ws.cip(&["publish-locally", "--local-registry", &reg.addr(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        started.elapsed().as_secs() < 100,
        "the sleeping build was not waited for"
    );
    let r = results(&out);
    assert_eq!(result_of(&r, "tools").1, "failed");
    assert_eq!(result_of(&r, "hello").1, "cancelled");
    assert_eq!(result_of(&r, "app").1, "cancelled");
    // cip waits for cancelled builders before it exits: none may be left running.
    let sleepers = Command::new("ps")
        .args(["-eo", "pid,ppid,pgid,sid,stat,args"])
        .output()
        .unwrap();
    let sleepers: Vec<String> = String::from_utf8_lossy(&sleepers.stdout)
        .lines()
        .filter(|l| l.contains("sleep 120"))
        .map(str::to_string)
        .collect();
    assert!(
        sleepers.is_empty(),
        "the cancelled build was not killed: {sleepers:#?}\n{}",
        text(&out)
    );
    assert!(!common::is_tagged(&reg, "hello:1.0.0"));
}

/// The processes (pid and command line) whose command line contains `needle`.
fn processes_running(needle: &str) -> Vec<String> {
    let ps = Command::new("ps")
        .args(["-eo", "pid,ppid,pgid,stat,args"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// Starts publish-locally on the demo with a hello that sleeps `seconds` in a RUN step, and returns
/// once that step runs.
fn start_a_long_build(ws: &Workspace, reg: &TestRegistry, seconds: u32) -> std::process::Child {
    fs::write(
        ws.context("01-hello").join("Dockerfile"),
        format!("ARG REGISTRY\nFROM ${{REGISTRY}}/busybox:1.0.0\nRUN sleep {seconds}\n"),
    )
    .unwrap();
    let child = ws.spawn_cip(&["publish-locally", "--local-registry", &reg.addr(), "--json"]);
    let needle = format!("sleep {seconds}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while processes_running(&needle).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the RUN step never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child
}

#[test]
fn ctrl_c_cancels_the_running_builds_and_reports_them() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let child = start_a_long_build(&ws, &reg, 121);
    common::send_signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    // The status a shell reports for Ctrl-C, after the summary (no builder left behind).
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(
        processes_running("sleep 121").is_empty(),
        "the interrupted build still runs: {:?}",
        processes_running("sleep 121")
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SIGINT: stopping"), "{stderr}");
    assert!(
        stderr.contains("build hello:1.0.0 linux/amd64: cancelled after"),
        "{stderr}"
    );
    let r = results(&out);
    assert_eq!(result_of(&r, "busybox").1, "built");
    assert_eq!(result_of(&r, "hello").1, "cancelled");
    assert_eq!(result_of(&r, "app").1, "cancelled");
    assert!(
        !common::is_tagged(&reg, "hello:1.0.0"),
        "an interrupted image is not tagged"
    );
}

#[test]
fn a_second_sigterm_kills_the_builders_at_once() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let child = start_a_long_build(&ws, &reg, 122);
    common::send_signal(&child, "TERM");
    std::thread::sleep(std::time::Duration::from_millis(300));
    common::send_signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", text(&out));
    assert!(
        processes_running("sleep 122").is_empty(),
        "the terminated build still runs: {:?}",
        processes_running("sleep 122")
    );
    assert_eq!(result_of(&results(&out), "hello").1, "cancelled");
}

#[test]
fn missing_emulator_is_reported_before_any_build() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let empty = tempfile::tempdir().unwrap();
    let out = ws.cip_env(
        &["publish", "--remote-registry", &reg.addr()],
        &[("CIP_BINFMT_DIR", empty.path().to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("linux/arm64") && stderr.contains("qemu-user-static"),
        "{stderr}"
    );
    assert_eq!(ws.builds(), 0, "no build started");
}

#[test]
fn published_versions_are_not_rebuilt_unless_forced() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let args = ["publish-locally", "--local-registry", &reg.addr(), "--json"];
    assert!(ws.cip(&args).status.success());
    let before = raw(&reg, "hello:1.0.0");
    // Change hello without bumping: even when the drift is allowed, the published tag is not overwritten.
    fs::write(
        ws.context("01-hello").join("Dockerfile"),
        "ARG REGISTRY\nFROM ${REGISTRY}/busybox:1.0.0\nRUN echo changed > /hello.txt\n",
    )
    .unwrap();
    let again = ws.cip(&[&args[..], &["--allow-drift"]].concat());
    assert!(
        results(&again).iter().all(|x| x.1 == "up to date"),
        "{}",
        text(&again)
    );
    assert_eq!(raw(&reg, "hello:1.0.0"), before);
    // --force NAME rebuilds it on purpose.
    let forced = ws.cip(&[
        "publish-locally",
        "--local-registry",
        &reg.addr(),
        "--json",
        "--force",
        "hello",
        "--allow-drift",
    ]);
    assert!(forced.status.success(), "{}", text(&forced));
    assert_eq!(result_of(&results(&forced), "hello").1, "built");
    assert_ne!(raw(&reg, "hello:1.0.0"), before);
    // Forcing an unknown image is an error.
    let bad = ws.cip(&[
        "publish-locally",
        "--local-registry",
        &reg.addr(),
        "--force",
        "nope",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--force nope"));
}

#[test]
fn plan_explains_per_image_and_platform() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let plan = ws.cip(&["plan", "--local-registry", &reg.addr(), "--json"]);
    assert!(plan.status.success(), "{}", text(&plan));
    let doc: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(doc["builds_needed"], 4);
    let app = doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "app")
        .unwrap();
    assert_eq!(app["platforms"][0]["status"], "missing");
    assert_eq!(app["waits_for"], serde_json::json!(["hello", "tools"]));
    assert_eq!(app["out_of_scope"], serde_json::json!(["linux/arm64"]));
    assert!(ws
        .cip(&["publish-locally", "--local-registry", &reg.addr()])
        .status
        .success());
    let plan = ws.cip(&["plan", "--local-registry", &reg.addr()]);
    let out = String::from_utf8_lossy(&plan.stdout);
    assert!(out.contains("0 builds of 0 images needed"), "{out}");
    // A remote plan covers every declared platform; amd64 is published, arm64 is missing.
    let remote = ws.cip(&["plan", "--remote-registry", &reg.addr(), "--json"]);
    let doc: Value = serde_json::from_slice(&remote.stdout).unwrap();
    assert_eq!(doc["builds_needed"], 4, "{}", text(&remote));
    let dry = ws.cip(&["publish", "--remote-registry", &reg.addr(), "--dry-run"]);
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("missing from the published index"),
        "{}",
        text(&dry)
    );
    assert_eq!(ws.builds(), 4, "plan and --dry-run build nothing");
}

#[test]
fn build_into_the_local_store() {
    let ws = Workspace::demo();
    let out = ws.cip(&["build", "--local-registry", "localhost:5999", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(results(&out).iter().all(|x| x.1 == "built"));
    let images = ws.store.run(&["images", "--format", "{{.Name}}:{{.Tag}}"]);
    for want in [
        "localhost:5999/app:1.0.0",
        "localhost:5999/app:latest",
        "localhost:5999/busybox:1.0.0",
    ] {
        assert!(images.contains(want), "{want} in {images}");
    }
    let calls = ws.buildah_calls().len();
    let again = ws.cip(&["build", "--local-registry", "localhost:5999", "--json"]);
    assert!(
        results(&again).iter().all(|x| x.1 == "up to date"),
        "{}",
        text(&again)
    );
    assert_eq!(ws.builds(), 4);
    // What the store holds comes from one listing, not from one inspect per image.
    let lookups: Vec<String> = ws.buildah_calls()[calls..]
        .iter()
        .filter(|c| c.contains(" images ") || c.contains(" inspect "))
        .cloned()
        .collect();
    assert_eq!(lookups.len(), 1, "{lookups:?}");
    assert!(lookups[0].contains(" images "), "{lookups:?}");
}

#[test]
fn credentials_from_the_environment_reach_the_builder_and_never_the_output() {
    let password = "env-Secret-42";
    let reg = TestRegistry::start_with(RegistryOptions::tls_auth("builder", password));
    let ws = Workspace::demo();
    let ca = reg.ca_cert_path().unwrap();
    let args = [
        "publish-locally",
        "--local-registry",
        &reg.addr(),
        "--ca-cert",
        ca.to_str().unwrap(),
        "--json",
    ];
    let env = [("CIP_USERNAME", "builder"), ("CIP_PASSWORD", password)];
    let out = ws.cip_env(&args, &env);
    // Children pull their parents from the authenticated registry through the builder.
    assert!(out.status.success(), "{}", text(&out));
    assert!(results(&out).iter().all(|r| r.1 == "built"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CIP_USERNAME/CIP_PASSWORD"));
    assert!(!text(&out).contains(password));
    for log in fs::read_dir(ws.project().join(".cip/logs")).unwrap() {
        let log = fs::read_to_string(log.unwrap().path()).unwrap();
        assert!(
            !log.contains(password),
            "a builder log shows the password: {log}"
        );
    }
    // Without credentials the registry refuses, and the error says what was tried.
    let anon = ws.cip(&args);
    assert_eq!(anon.status.code(), Some(1), "{}", text(&anon));
    let err = String::from_utf8_lossy(&anon.stderr);
    assert!(
        err.contains("refused access") && err.contains("anonymous"),
        "{err}"
    );
}

/// A parent rebuilt with `--force` keeps its tag but not its content: a child built in the same run
/// must be built on the new content, not on the copy of the old one its builder's store holds from
/// the run before.
#[test]
fn a_child_forced_with_its_parent_builds_on_the_parents_new_content() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let args = ["publish-locally", "--local-registry", &reg.addr(), "--json"];
    let first = ws.cip(&args);
    assert!(first.status.success(), "{}", text(&first));
    let base = ws.context("00-busybox").join("Dockerfile");
    let mut steps = fs::read_to_string(&base).unwrap();
    steps.push_str("RUN echo second > /base-edition\n");
    fs::write(&base, steps).unwrap();
    let forced = ws.cip(
        &[
            &args[..],
            &["--force", "busybox", "--force", "hello", "--allow-drift"],
        ]
        .concat(),
    );
    assert!(forced.status.success(), "{}", text(&forced));
    let base_layers = layers(&reg, "busybox:1.0.0", "amd64");
    let child_layers = layers(&reg, "hello:1.0.0", "amd64");
    assert_eq!(
        child_layers[..base_layers.len()],
        base_layers[..],
        "hello is built on the new busybox"
    );
}

/// The layer digests of `image`'s manifest for `arch`.
fn layers(reg: &TestRegistry, image: &str, arch: &str) -> Vec<String> {
    let index = raw(reg, image);
    let digest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == arch)
        .unwrap_or_else(|| panic!("{image} has no {arch} entry: {index}"))["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let name = image.split(':').next().unwrap();
    raw(reg, &format!("{name}@{digest}"))["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// The digest of the first layer of `image`'s manifest for `arch` (the busybox layer every child
/// inherits from the base).
fn first_layer(reg: &TestRegistry, image: &str, arch: &str) -> String {
    layers(reg, image, arch)[0].clone()
}

/// Many children of one parent, both platforms at once: with buildah every platform builds in a
/// store of its own, else concurrent pulls of the parent for different platforms move its name
/// between images ("image not known", or a child built on the wrong platform's parent).
#[test]
fn concurrent_platform_builds_of_siblings_use_their_own_parent() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let children = [
        "leaf1", "leaf2", "leaf3", "leaf4", "leaf5", "leaf6", "leaf7", "leaf8",
    ];
    for name in children {
        let dir = ws.context(&format!("01-{name}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("Dockerfile"),
            format!("ARG REGISTRY\nFROM ${{REGISTRY}}/busybox:1.0.0\nRUN echo {name} > /name\n"),
        )
        .unwrap();
        fs::write(dir.join("info.edn"), "{:version \"1.0.0\"}\n").unwrap();
    }
    let out = ws.cip(&[
        "publish",
        "--remote-registry",
        &reg.addr(),
        "--jobs",
        "8",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    for arch in ["amd64", "arm64"] {
        let base = first_layer(&reg, "busybox:1.0.0", arch);
        for name in children.iter().chain(&["hello", "tools"]) {
            assert_eq!(
                first_layer(&reg, &format!("{name}:1.0.0"), arch),
                base,
                "{name} for {arch} is built on busybox for {arch}"
            );
        }
    }
}

/// A local custom build (another `USER_UID_GID`) of published versions: `--build-arg` alone says
/// it rebuilt nothing and how to; `--force NAME --with-descendants` forces the images below NAME
/// too; `--force-all` rebuilds every image of the run with the build arguments.
#[test]
fn forced_rebuilds_reach_descendants_and_every_image_and_unused_build_args_are_said() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let addr = reg.addr();
    let run = |extra: &[&str]| {
        let mut args = vec!["publish-locally", "--local-registry", &addr, "--json"];
        args.extend_from_slice(extra);
        let out = ws.cip(&args);
        assert!(out.status.success(), "{}", text(&out));
        out
    };
    let names_built = |out: &std::process::Output| -> Vec<String> {
        results(out)
            .into_iter()
            .filter(|r| r.1 == "built")
            .map(|r| r.0)
            .collect()
    };
    assert_eq!(names_built(&run(&[])).len(), 4);
    let builds = ws.builds();

    let custom = run(&["--build-arg", "USER_UID_GID=1001"]);
    assert_eq!(ws.builds(), builds, "{}", text(&custom));
    assert!(
        String::from_utf8_lossy(&custom.stderr).contains(
            "--build-arg given, but every image is published: nothing was rebuilt; use \
             --force-all to rebuild with them"
        ),
        "{}",
        text(&custom)
    );

    let below = run(&["--force", "hello", "--with-descendants", "hello"]);
    assert_eq!(names_built(&below), ["hello", "app"], "{}", text(&below));

    let hello = raw(&reg, "hello:1.0.0");
    let all = run(&["--force-all", "--build-arg", "USER_UID_GID=1001"]);
    assert_eq!(
        names_built(&all),
        ["busybox", "hello", "tools", "app"],
        "{}",
        text(&all)
    );
    assert!(!String::from_utf8_lossy(&all.stderr).contains("--build-arg given"));
    let with_arg = ws
        .buildah_calls()
        .iter()
        .filter(|c| c.contains("USER_UID_GID=1001"))
        .count();
    assert_eq!(with_arg, 4, "{:?}", ws.buildah_calls());
    assert_ne!(raw(&reg, "hello:1.0.0"), hello, "hello was republished");

    let plan = ws.cip(&["plan", "--local-registry", &addr, "--force-all", "--json"]);
    let doc: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(doc["builds_needed"], 4, "{}", text(&plan));
    let conflict = ws.cip(&["publish-locally", "--force-all", "--force", "hello"]);
    assert_eq!(conflict.status.code(), Some(2), "{}", text(&conflict));
}
