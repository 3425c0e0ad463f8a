//! What a publish must never do to a registry, whatever happened before or runs beside it: drop a
//! published platform, leave `latest` behind its version, hide drift, publish one checkout's content
//! under another's digest, or report success for a version another run overwrote. Real registry
//! processes and real buildah builds (arm64 under QEMU emulation).
use crate::common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::workspace::{result_of, results, set_info, text, Workspace};
use common::{
    index_platforms as platforms, is_tagged, raw_manifest as raw, Immutable, TestRegistry,
};
use serde_json::Value;

const DIGEST_ANNOTATION: &str = "dev.cip.context-digest";

/// The demo with only the contexts named (busybox is the base of the others).
fn demo_with(keep: &[&str]) -> Workspace {
    let ws = Workspace::demo();
    for entry in fs::read_dir(ws.project().join("contexts")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !keep.contains(&name.as_str()) {
            fs::remove_dir_all(entry.path()).unwrap();
        }
    }
    ws
}

fn digest_of(index: &Value, arch: &str) -> String {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == arch)
        .unwrap_or_else(|| panic!("no {arch} entry in {index}"))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

fn recorded_digest(reg: &TestRegistry, image: &str) -> String {
    raw(reg, image)["annotations"][DIGEST_ANNOTATION]
        .as_str()
        .unwrap_or_else(|| panic!("{image} has no context digest"))
        .to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_forced_rebuild_of_one_platform_keeps_the_other_platforms() {
    let reg = TestRegistry::start();
    let ws = demo_with(&["00-busybox"]);
    let addr = reg.addr();
    let publish = ["publish", "--remote-registry", &addr, "--json"];
    let first = ws.cip(&publish);
    assert!(first.status.success(), "{}", text(&first));
    let before = raw(&reg, "busybox:1.0.0");
    assert_eq!(platforms(&before), ["linux/amd64", "linux/arm64"]);

    let forced = ws.cip(&[
        "publish",
        "--remote-registry",
        &addr,
        "--force",
        "busybox",
        "--only-local-platform",
        "--json",
    ]);
    assert!(forced.status.success(), "{}", text(&forced));
    for tag in ["busybox:1.0.0", "busybox:latest"] {
        let after = raw(&reg, tag);
        assert_eq!(
            platforms(&after),
            ["linux/amd64", "linux/arm64"],
            "{tag}: a forced amd64 rebuild dropped arm64"
        );
        assert_eq!(
            digest_of(&after, "arm64"),
            digest_of(&before, "arm64"),
            "{tag}: the arm64 image is the one published before"
        );
    }
    let doc: Value = serde_json::from_slice(&forced.stdout).unwrap();
    assert_eq!(
        doc["images"][0]["replaced"],
        serde_json::json!(["linux/amd64"])
    );
    assert!(
        stderr(&forced)
            .contains("busybox:1.0.0: replaced the published linux/amd64 entry; kept linux/arm64"),
        "the run says what it replaced: {}",
        text(&forced)
    );
}

#[test]
fn bumping_only_a_base_is_no_drift_for_children_naming_its_old_version() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let addr = reg.addr();
    let publish = ["publish-locally", "--local-registry", &addr, "--json"];
    let first = ws.cip(&publish);
    assert!(first.status.success(), "{}", text(&first));

    // busybox gets new content and a new version; its children still say busybox:1.0.0.
    let busybox = ws.context("00-busybox");
    fs::write(busybox.join("extra.txt"), "new content\n").unwrap();
    fs::write(
        busybox.join("Dockerfile"),
        fs::read_to_string(busybox.join("Dockerfile")).unwrap() + "COPY extra.txt /extra.txt\n",
    )
    .unwrap();
    set_info(
        &ws,
        "00-busybox",
        "{:version \"7.7.7\" :platforms #{\"linux/amd64\" \"linux/arm64\"}}\n",
    );
    let second = ws.cip(&publish);
    assert!(second.status.success(), "{}", text(&second));
    assert!(!stderr(&second).contains("drift"), "{}", text(&second));
    let r = results(&second);
    assert_eq!(result_of(&r, "busybox").1, "built", "{r:?}");
    for child in ["hello", "tools", "app"] {
        assert_eq!(result_of(&r, child).1, "up to date", "{r:?}");
    }

    // busybox 1.0.0 is current again, but its context is not what 1.0.0 was published from: it
    // drifted, and so did the children that build on it, and their drift names it.
    set_info(
        &ws,
        "00-busybox",
        "{:version \"1.0.0\" :platforms #{\"linux/amd64\" \"linux/arm64\"}}\n",
    );
    let plan = ws.cip(&["plan", "--local-registry", &addr]);
    let out = String::from_utf8_lossy(&plan.stdout);
    assert!(
        out.contains("drift: busybox changed since 1.0.0 was published, version not bumped\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "drift: hello's parent busybox changed since hello 1.0.0 was published, version not bumped\n"
        ),
        "{out}"
    );
}

#[test]
fn a_latest_tag_that_could_not_be_written_is_written_by_the_next_run() {
    let reg = TestRegistry::start();
    let ws = demo_with(&["00-busybox"]);
    let addr = reg.addr();
    let publish = ["publish-locally", "--local-registry", &addr, "--json"];
    let first = ws.cip(&publish);
    assert!(first.status.success(), "{}", text(&first));

    set_info(&ws, "00-busybox", "{:version \"1.0.1\"}\n");
    let latest_link = reg
        .storage_dir()
        .join("docker/registry/v2/repositories/busybox/_manifests/tags/latest/current/link");
    let failed = {
        let _guard = Immutable::new(&latest_link);
        ws.cip(&publish)
    };
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    assert!(
        !is_tagged(&reg, "busybox:1.0.1"),
        "the version is not tagged while latest lags behind it"
    );

    let repaired = ws.cip(&publish);
    assert!(repaired.status.success(), "{}", text(&repaired));
    assert_eq!(
        raw(&reg, "busybox:latest"),
        raw(&reg, "busybox:1.0.1"),
        "latest points at the newest version"
    );
    let again = ws.cip(&publish);
    assert!(
        results(&again).iter().all(|r| r.1 == "up to date"),
        "{}",
        text(&again)
    );
}

#[test]
fn allow_drift_never_hides_the_drift_it_allows() {
    let reg = TestRegistry::start();
    let ws = demo_with(&["00-busybox"]);
    let addr = reg.addr();
    set_info(
        &ws,
        "00-busybox",
        "{:version \"1.0.0\" :platforms #{\"linux/amd64\"}}\n",
    );
    let publish = ["publish", "--remote-registry", &addr, "--json"];
    let first = ws.cip(&publish);
    assert!(first.status.success(), "{}", text(&first));
    let recorded = recorded_digest(&reg, "busybox:1.0.0");

    // New content, same version, and a platform added.
    fs::write(ws.context("00-busybox").join("extra.txt"), "drifted\n").unwrap();
    set_info(
        &ws,
        "00-busybox",
        "{:version \"1.0.0\" :platforms #{\"linux/amd64\" \"linux/arm64\"}}\n",
    );
    let refused = ws.cip(&publish);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));

    let allowed = ws.cip(&[
        "publish",
        "--remote-registry",
        &addr,
        "--allow-drift",
        "--json",
    ]);
    assert!(allowed.status.success(), "{}", text(&allowed));
    assert!(
        stderr(&allowed).contains("drift: busybox changed since 1.0.0 was published"),
        "--allow-drift prints the drift it allows: {}",
        text(&allowed)
    );
    assert_eq!(
        platforms(&raw(&reg, "busybox:1.0.0")),
        ["linux/amd64", "linux/arm64"]
    );
    assert_eq!(
        recorded_digest(&reg, "busybox:1.0.0"),
        recorded,
        "the drifted version keeps the digest it was published with"
    );
    let plan = ws.cip(&["plan", "--remote-registry", &addr]);
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("drift: busybox"),
        "{}",
        text(&plan)
    );
}

/// The marker file each checkout copies into its image.
fn mark(ws: &Workspace, marker: &str) {
    let dir = ws.context("00-busybox");
    fs::write(dir.join("marker"), marker).unwrap();
    let dockerfile = fs::read_to_string(dir.join("Dockerfile")).unwrap();
    fs::write(dir.join("Dockerfile"), dockerfile + "COPY marker /marker\n").unwrap();
}

/// The context digest `cip plan` computes for busybox in this checkout.
fn planned_digest(ws: &Workspace, addr: &str) -> String {
    let out = ws.cip(&["plan", "--local-registry", addr, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["images"][0]["context_digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The content of `/marker` in the amd64 image of `image`, read from its layers.
fn published_marker(reg: &TestRegistry, image: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let dest = format!("dir:{}", dir.path().display());
    common::skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &reg.docker_ref(image),
        &dest,
    ]);
    let manifest: Value =
        serde_json::from_slice(&fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let hex = layer["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let out = Command::new("tar")
            .args(["-xzOf"])
            .arg(dir.path().join(hex))
            .arg("marker")
            .output()
            .unwrap();
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
    }
    panic!("no layer of {image} holds /marker")
}

/// Two checkouts with different content for one version publish at once through one builder store.
/// At most one may succeed, and whatever the registry ends up with is one checkout's content under
/// that checkout's context digest.
#[test]
fn concurrent_publishes_of_one_version_never_both_succeed_or_mix_content() {
    let reg = TestRegistry::start();
    let addr = reg.addr();
    let a = demo_with(&["00-busybox"]);
    let b = demo_with(&["00-busybox"]);
    mark(&a, "from-a");
    mark(&b, "from-b");
    // Both use a's builder store, as two checkouts on one machine do.
    let store = a.store.storage_args().join(" ");
    let env = [
        ("CIP_BUILDAH_GLOBAL_ARGS", store.as_str()),
        ("CIP_PODMAN_GLOBAL_ARGS", store.as_str()),
    ];
    for trial in 0..6 {
        let version = format!("1.0.{trial}");
        for ws in [&a, &b] {
            set_info(ws, "00-busybox", &format!("{{:version \"{version}\"}}\n"));
        }
        let digests = [planned_digest(&a, &addr), planned_digest(&b, &addr)];
        assert_ne!(digests[0], digests[1]);
        let args = ["publish-locally", "--local-registry", addr.as_str()];
        let (out_a, out_b) = std::thread::scope(|s| {
            let ta = s.spawn(|| a.cip_env(&args, &env));
            let tb = s.spawn(|| b.cip_env(&args, &env));
            (ta.join().unwrap(), tb.join().unwrap())
        });
        let ok = [out_a.status.success(), out_b.status.success()];
        assert!(
            !(ok[0] && ok[1]),
            "trial {trial}: both runs reported success\n{}\n{}",
            text(&out_a),
            text(&out_b)
        );
        let image = format!("busybox:{version}");
        if !is_tagged(&reg, &image) {
            continue;
        }
        let recorded = recorded_digest(&reg, &image);
        let owner = digests
            .iter()
            .position(|d| *d == recorded)
            .unwrap_or_else(|| panic!("trial {trial}: unknown digest {recorded}"));
        assert_eq!(
            published_marker(&reg, &image),
            ["from-a", "from-b"][owner],
            "trial {trial}: the content is not from the checkout its digest names"
        );
        if let Some(winner) = ok.iter().position(|&x| x) {
            assert_eq!(
                winner, owner,
                "trial {trial}: the successful run's content was replaced"
            );
        }
        for (out, ok) in [(&out_a, ok[0]), (&out_b, ok[1])] {
            if !ok {
                let err = stderr(out);
                assert!(
                    err.contains("another publish of the same version")
                        || err.contains("changed on")
                        || err.contains("while building"),
                    "trial {trial}: the losing run says why: {err}"
                );
            }
        }
    }
}

#[test]
fn builders_never_see_cip_credentials_and_a_killed_run_leaves_no_secret_behind() {
    let reg = TestRegistry::start();
    let ws = demo_with(&["00-busybox"]);
    let root = ws.project().parent().unwrap().to_path_buf();
    // Record each builder's environment, and make builds slow enough to kill the run in one.
    let env_log = root.join("builder-env.log");
    common::write_executable(
        &root.join("bin/buildah"),
        &format!(
            "#!/bin/sh\necho \"args: $*\" >> {log}\nenv >> {log}\ncase \"$*\" in *bud*) sleep 20;; esac\nexec /usr/bin/buildah \"$@\"\n",
            log = env_log.display()
        ),
    );
    let password = "Sup3r-secret-pw";
    let env = [("CIP_USERNAME", "someone"), ("CIP_PASSWORD", password)];
    let addr = reg.addr();
    let scratch = root.join(format!("cip-{}", unsafe_uid()));
    let mut child = ws
        .cip_command(&["publish-locally", "--local-registry", &addr], &env)
        .spawn()
        .unwrap();
    // Wait until the build runs: the auth directory exists by then.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !fs::read_to_string(&env_log)
        .unwrap_or_default()
        .contains("bud")
    {
        assert!(std::time::Instant::now() < deadline, "no build started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    child.kill().unwrap(); // SIGKILL: cip cannot clean up
    child.wait().unwrap();
    let env_seen = fs::read_to_string(&env_log).unwrap();
    assert!(!env_seen.contains(password), "a builder saw the password");
    assert!(!env_seen.contains("CIP_PASSWORD"), "{env_seen}");
    assert!(
        !auth_dirs(&scratch).is_empty(),
        "the killed run left its auth directory"
    );

    // The next run removes what the killed one left.
    let _ = Command::new("pkill").args(["-f", "sleep 20"]).status();
    let next = ws.cip(&["plan", "--local-registry", &addr]);
    assert!(next.status.success(), "{}", text(&next));
    let publish = ws.cip_env(&["publish-locally", "--local-registry", &addr], &env);
    assert!(publish.status.success(), "{}", text(&publish));
    assert!(
        auth_dirs(&scratch).is_empty(),
        "leftovers: {:?}",
        auth_dirs(&scratch)
    );
}

fn unsafe_uid() -> u32 {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn auth_dirs(scratch: &Path) -> Vec<String> {
    fs::read_dir(scratch)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("auth-"))
                .collect()
        })
        .unwrap_or_default()
}

/// `latest` only moves forward: publishing an older version (a patch of an old line) leaves it on
/// the newest, and says so; `--no-latest` leaves it alone too. Versions compare as semver.
#[test]
fn latest_only_moves_forward() {
    let reg = TestRegistry::start();
    let ws = demo_with(&["00-busybox"]);
    let addr = reg.addr();
    let publish = |version: &str, extra: &[&str]| {
        set_info(&ws, "00-busybox", &format!("{{:version \"{version}\"}}\n"));
        let mut args = vec!["publish-locally", "--local-registry", addr.as_str()];
        args.extend_from_slice(extra);
        let out = ws.cip(&args);
        assert!(out.status.success(), "{version}: {}", text(&out));
        out
    };
    let latest_is =
        |version: &str| raw(&reg, "busybox:latest") == raw(&reg, &format!("busybox:{version}"));

    publish("1.10.0", &[]);
    assert!(latest_is("1.10.0"));
    let plan = {
        set_info(&ws, "00-busybox", "{:version \"1.9.0\"}\n");
        ws.cip(&["plan", "--local-registry", &addr])
    };
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("latest stays at 1.10.0"),
        "{}",
        text(&plan)
    );
    publish("1.9.0", &[]);
    assert!(is_tagged(&reg, "busybox:1.9.0"));
    assert!(latest_is("1.10.0"), "an older version does not take latest");

    publish("1.11.0", &["--no-latest"]);
    assert!(is_tagged(&reg, "busybox:1.11.0"));
    assert!(latest_is("1.10.0"), "--no-latest leaves latest alone");

    publish("1.12.0", &[]);
    assert!(latest_is("1.12.0"), "a newer version moves latest");
}

/// `--platform` builds only the platforms named, of the images that declare them; the rest of the
/// index stays, and a later run adds what is missing. `--only-local-platform` is its alias.
#[test]
fn platform_restricts_what_a_run_builds() {
    let reg = TestRegistry::start();
    let ws = demo_with(&["00-busybox"]);
    let addr = reg.addr();
    let arm = ws.cip(&[
        "publish",
        "--remote-registry",
        &addr,
        "--platform",
        "linux/arm64",
        "--json",
    ]);
    assert!(arm.status.success(), "{}", text(&arm));
    assert_eq!(result_of(&results(&arm), "busybox").2, ["linux/arm64"]);
    assert_eq!(platforms(&raw(&reg, "busybox:1.0.0")), ["linux/arm64"]);

    let plan = ws.cip(&[
        "plan",
        "--remote-registry",
        &addr,
        "--platform",
        "linux/arm64",
    ]);
    let out = String::from_utf8_lossy(&plan.stdout);
    assert!(out.contains("0 builds of 0 images needed"), "{out}");
    assert!(out.contains("not in this run's platforms"), "{out}");

    let rest = ws.cip(&[
        "publish",
        "--remote-registry",
        &addr,
        "--only-local-platform",
        "--json",
    ]);
    assert!(rest.status.success(), "{}", text(&rest));
    assert_eq!(result_of(&results(&rest), "busybox").2, ["linux/amd64"]);
    assert_eq!(
        platforms(&raw(&reg, "busybox:1.0.0")),
        ["linux/amd64", "linux/arm64"]
    );

    let both = ws.cip(&[
        "publish",
        "--remote-registry",
        &addr,
        "--platform",
        "linux/arm64",
        "--only-local-platform",
    ]);
    assert_eq!(
        both.status.code(),
        Some(2),
        "the two conflict: {}",
        text(&both)
    );
    let bad = ws.cip(&["plan", "--platform", "linux/amd65"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}

/// The builder flags users pass every day work directly, with a real buildah: `--build-arg`,
/// `--secret`, `--label`, `--no-cache`, `--pull`, and `:target` in info.edn. REGISTRY stays cip's.
#[test]
fn everyday_builder_flags_reach_the_builder() {
    let reg = TestRegistry::start();
    let ws = demo_with(&["00-busybox"]);
    let opts = ws.project().join("contexts/01-opts");
    fs::create_dir_all(&opts).unwrap();
    fs::write(
        opts.join("Dockerfile"),
        "ARG REGISTRY\nFROM ${REGISTRY}/busybox:1.0.0 AS good\nARG GREETING\n\
         RUN test \"$GREETING\" = hi\n\
         RUN --mount=type=secret,id=tok test \"$(cat /run/secrets/tok)\" = s3cret\n\
         FROM good AS broken\nRUN false\n",
    )
    .unwrap();
    fs::write(
        opts.join("info.edn"),
        "{:version \"1.0.0\" :platforms #{\"linux/amd64\"} :target \"good\"}\n",
    )
    .unwrap();
    let secret = ws.project().join("token");
    fs::write(&secret, "s3cret").unwrap();
    let secret_spec = format!("id=tok,src={}", secret.display());
    let addr = reg.addr();
    let out = ws.cip(&[
        "publish-locally",
        "--local-registry",
        &addr,
        "--build-arg",
        "GREETING=hi",
        "--secret",
        &secret_spec,
        "--label",
        "org.example.team=images",
        "--no-cache",
        "--pull",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let calls = ws.buildah_calls().join("\n");
    for flag in [
        "--no-cache",
        "--pull-always",
        "--target good",
        "--build-arg GREETING=hi",
    ] {
        assert!(calls.contains(flag), "{flag} not passed: {calls}");
    }
    let config = common::image_config(&reg, "opts:1.0.0", "amd64");
    assert_eq!(
        config["config"]["Labels"]["org.example.team"], "images",
        "{config}"
    );

    let refused = ws.cip(&[
        "publish-locally",
        "--local-registry",
        &addr,
        "--build-arg",
        "REGISTRY=elsewhere",
    ]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        stderr(&refused).contains("REGISTRY=... is not yours to set"),
        "{}",
        text(&refused)
    );
}

/// `:tags` in info.edn adds tags to each published index; `latest` and invalid tags are refused.
#[test]
fn extra_tags_from_info_edn_are_written_with_the_version() {
    let reg = TestRegistry::start();
    let ws = demo_with(&["00-busybox"]);
    let addr = reg.addr();
    set_info(
        &ws,
        "00-busybox",
        "{:version \"1.2.3\" :platforms #{\"linux/amd64\"} :tags [\"1\" \"1.2\"]}\n",
    );
    let out = ws.cip(&["publish-locally", "--local-registry", &addr]);
    assert!(out.status.success(), "{}", text(&out));
    let version = raw(&reg, "busybox:1.2.3");
    for tag in ["1", "1.2", "latest"] {
        assert_eq!(raw(&reg, &format!("busybox:{tag}")), version, "{tag}");
    }
    for (tags, why) in [
        ("[\"latest\"]", "cip moves latest itself"),
        ("[\"a b\"]", "not a valid tag"),
    ] {
        set_info(
            &ws,
            "00-busybox",
            &format!("{{:version \"1.2.3\"\n :tags {tags}}}\n"),
        );
        let check = ws.cip(&["check"]);
        assert_eq!(check.status.code(), Some(1), "{}", text(&check));
        let err = stderr(&check);
        assert!(
            err.contains("bad-tags") && err.contains(why) && err.contains("info.edn:2"),
            "{err}"
        );
    }
}

#[test]
fn a_builder_that_ignores_platform_never_gets_its_image_into_an_index() {
    let reg = TestRegistry::start();
    let ws = demo_with(&["00-busybox"]);
    let root = ws.project().parent().unwrap().to_path_buf();
    // A builder that builds the host's platform whatever `--platform` asks.
    common::write_executable(
        &root.join("bin/buildah"),
        "#!/bin/bash\nargs=()\nfor a in \"$@\"; do args+=(\"${a//linux\\/arm64/linux\\/amd64}\"); done\n\
         exec /usr/bin/buildah \"${args[@]}\"\n",
    );
    let addr = reg.addr();
    let out = ws.cip(&[
        "publish",
        "--remote-registry",
        &addr,
        "--builder",
        "buildah",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("linux/arm64 image of busybox:1.0.0")
            && err.contains("is an image for linux/amd64, not linux/arm64"),
        "the error names the image and both platforms: {err}"
    );
    assert!(!is_tagged(&reg, "busybox:1.0.0"), "{err}");
    assert!(!is_tagged(&reg, "busybox:latest"), "{err}");
}
