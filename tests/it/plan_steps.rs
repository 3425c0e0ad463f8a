//! The plan is the run: `cip plan --json` lists the steps a publish executes, and the publish runs
//! exactly those, in an order the plan allows. Real registry, real buildah.
use crate::common;

use std::collections::HashMap;

use common::workspace::{text, Workspace};
use common::TestRegistry;
use serde_json::Value;

fn json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", text(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

#[test]
fn a_publish_executes_exactly_the_steps_its_plan_lists() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let addr = reg.addr();
    let plan = json(&ws.cip(&["plan", "--local-registry", &addr, "--json"]));
    assert_eq!(plan["schema_version"], 2);

    // One node, the local builder, and per image one build (the local platform) and one assemble.
    let nodes = plan["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{plan:#}");
    assert!(nodes[0]["builder"]
        .as_str()
        .unwrap()
        .starts_with("buildah "));
    let steps = plan["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 8, "{plan:#}");
    let images: Vec<&str> = plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    let by_id: HashMap<u64, &Value> = steps
        .iter()
        .map(|s| (s["id"].as_u64().unwrap(), s))
        .collect();
    for s in steps {
        let image = images[s["image"].as_u64().unwrap() as usize];
        match s["action"].as_str().unwrap() {
            "build" => {
                assert_eq!(s["platform"], "linux/amd64");
                assert_eq!(s["node"], 0);
                assert_eq!(s["emulated"], false);
                assert_eq!(s["build_args"]["REGISTRY"], addr.as_str());
                assert_eq!(s["output"]["to"], "push");
                assert_eq!(s["output"]["repository"], format!("{addr}/{image}"));
                let log = s["log"].as_str().unwrap();
                assert!(
                    log.ends_with(&format!(".cip/logs/{image}-1.0.0-linux-amd64.log")),
                    "{log}"
                );
            }
            "assemble" => {
                assert_eq!(s["tags"], serde_json::json!(["latest", "1.0.0"]));
                let waits = s["waits_for"].as_array().unwrap();
                assert!(
                    waits
                        .iter()
                        .all(|w| by_id[&w.as_u64().unwrap()]["action"] == "build"),
                    "an index waits for its builds: {s}"
                );
            }
            other => panic!("unknown action {other}"),
        }
    }
    // app's build waits for the indexes of both its parents.
    let app = images.iter().position(|n| *n == "app").unwrap() as u64;
    let app_build = steps
        .iter()
        .find(|s| s["image"] == app && s["action"] == "build")
        .unwrap();
    let parents: Vec<&str> = app_build["waits_for"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            let dep = by_id[&w.as_u64().unwrap()];
            assert_eq!(dep["action"], "assemble");
            images[dep["image"].as_u64().unwrap() as usize]
        })
        .collect();
    assert_eq!(parents, ["hello", "tools"]);

    // The run: the same step ids, every one succeeded, none started before what it waits for ended.
    let run = json(&ws.cip(&["publish-locally", "--local-registry", &addr, "--json"]));
    let ran = run["steps"].as_array().unwrap();
    let ran_ids: Vec<u64> = ran.iter().map(|s| s["id"].as_u64().unwrap()).collect();
    let planned_ids: Vec<u64> = steps.iter().map(|s| s["id"].as_u64().unwrap()).collect();
    assert_eq!(ran_ids, planned_ids);
    let times: HashMap<u64, (f64, f64)> = ran
        .iter()
        .map(|s| {
            assert_eq!(s["outcome"], "succeeded", "{s}");
            let t = |k: &str| s[k].as_f64().unwrap();
            (
                s["id"].as_u64().unwrap(),
                (t("started_seconds"), t("finished_seconds")),
            )
        })
        .collect();
    for s in steps {
        let id = s["id"].as_u64().unwrap();
        for w in s["waits_for"].as_array().unwrap() {
            let dep = w.as_u64().unwrap();
            assert!(
                times[&dep].1 <= times[&id].0,
                "step {id} started before step {dep} finished: {run:#}"
            );
        }
        if s["action"] == "build" {
            assert!(std::path::Path::new(s["log"].as_str().unwrap()).is_file());
        }
    }

    // Once everything is published, the plan has no step and finds no builder.
    let calls = ws.buildah_calls().len();
    let done = json(&ws.cip(&["plan", "--local-registry", &addr, "--json"]));
    assert_eq!(done["steps"], serde_json::json!([]));
    assert_eq!(done["nodes"], serde_json::json!([]));
    assert_eq!(
        ws.buildah_calls().len(),
        calls,
        "a plan with nothing to build runs no builder"
    );
}

#[test]
fn plan_store_shows_what_build_would_do_and_dry_runs_print_the_steps() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let addr = reg.addr();
    let plan = json(&ws.cip(&["plan", "--store", "--local-registry", &addr, "--json"]));
    let steps = plan["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4, "cip build has no assemble step: {plan:#}");
    for s in steps {
        assert_eq!(s["action"], "build");
        assert_eq!(s["output"]["to"], "store");
        let tag = s["tag"].as_str().unwrap();
        assert!(
            tag.starts_with(&format!("{addr}/")) && tag.ends_with(":1.0.0"),
            "{tag}"
        );
    }
    let dry = ws.cip(&["publish-locally", "--local-registry", &addr, "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry));
    let out = String::from_utf8_lossy(&dry.stdout);
    assert!(
        out.contains("STEP") && out.contains("build linux/amd64, push"),
        "{out}"
    );
    assert!(out.contains("tag latest, 1.0.0"), "{out}");
    assert_eq!(ws.builds(), 0, "plans and dry runs build nothing");
}

#[test]
fn a_bad_setting_in_the_environment_stops_the_run_before_anything() {
    let ws = Workspace::demo();
    for (var, value) in [
        ("CIP_RETRY_ATTEMPTS", "zero"),
        ("CIP_REQUEST_TIMEOUT_SECONDS", "-3"),
        ("CIP_QUERY_CONCURRENCY", "0"),
    ] {
        let out = ws.cip_env(
            &["plan", "--local-registry", "127.0.0.1:9"],
            &[(var, value)],
        );
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var), "the message names {var}: {err}");
        assert!(
            !err.contains("registry 127.0.0.1:9"),
            "nothing was connected: {err}"
        );
    }
}

/// `cip publish-locally NAME...` builds those images and the parents they need that are not
/// published yet; `--with-descendants` adds what is below them; an unknown name gets a
/// did-you-mean.
#[test]
fn targets_build_what_they_name_and_the_parents_they_miss() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let addr = reg.addr();
    let names = |doc: &Value| -> Vec<String> {
        doc["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    };
    let first = json(&ws.cip(&[
        "publish-locally",
        "hello",
        "--local-registry",
        &addr,
        "--json",
    ]));
    assert_eq!(names(&first), ["busybox", "hello"], "{first:#}");
    assert!(common::is_tagged(&reg, "hello:1.0.0"));
    assert!(!common::is_tagged(&reg, "tools:1.0.0"));

    let tools = json(&ws.cip(&["plan", "01-tools", "--local-registry", &addr, "--json"]));
    assert_eq!(names(&tools), ["tools"], "busybox is published: {tools:#}");
    assert_eq!(tools["builds_needed"], 1);

    let below = json(&ws.cip(&[
        "plan",
        "hello",
        "--with-descendants",
        "--local-registry",
        &addr,
        "--json",
    ]));
    assert_eq!(names(&below), ["hello", "tools", "app"], "{below:#}");
    assert_eq!(below["builds_needed"], 2, "app and the parent it misses");

    let typo = ws.cip(&["plan", "helo", "--local-registry", &addr]);
    assert_eq!(typo.status.code(), Some(1), "{}", text(&typo));
    assert!(
        String::from_utf8_lossy(&typo.stderr).contains("did you mean \"hello\"?"),
        "{}",
        text(&typo)
    );
}

/// A parent bumped without cascading: its children still refer to the old version, which the
/// registry lacks and the run cannot build. The plan marks their steps blocked, and the publish
/// refuses before building anything (the registry unchanged, no builder run), with the way out.
#[test]
fn a_child_of_an_unpublished_old_parent_version_is_blocked_and_the_run_refuses_before_building() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    common::workspace::set_info(
        &ws,
        "00-busybox",
        "{:version \"1.0.1\" :platforms #{\"linux/amd64\" \"linux/arm64\"}}",
    );
    let addr = reg.addr();
    let reason = |child: &str| {
        format!(
            "{child} refers to busybox:1.0.0, which {addr} does not have and this run cannot \
             build: 00-busybox is at 1.0.1; run `cip cascade-version-updates` or publish busybox \
             1.0.0 first"
        )
    };

    let plan = json(&ws.cip(&["plan", "--local-registry", &addr, "--json"]));
    assert_eq!(
        plan["blocked"],
        serde_json::json!([reason("hello"), reason("tools")]),
        "{plan:#}"
    );
    let hello = &plan["images"][1];
    assert_eq!(hello["name"], "hello");
    assert_eq!(hello["platforms"][0]["status"], "blocked");
    let blocked_builds: Vec<&Value> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "build" && s["blocked"].is_array())
        .collect();
    assert_eq!(blocked_builds.len(), 2, "hello and tools: {plan:#}");
    let shown = ws.cip(&["plan", "--local-registry", &addr]);
    assert!(shown.status.success(), "{}", text(&shown));
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains(&format!("blocked: {}", reason("hello"))),
        "{}",
        text(&shown)
    );

    let status = ws.cip(&["status", "--local-registry", &addr]);
    assert!(status.status.success(), "{}", text(&status));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains(&format!("blocked: {}", reason("tools"))),
        "{}",
        text(&status)
    );

    for command in ["publish-locally", "publish"] {
        let flag = if command == "publish" {
            "--remote-registry"
        } else {
            "--local-registry"
        };
        let out = ws.cip(&[command, flag, &addr]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&reason("hello")), "{}", text(&out));
        assert!(err.contains(&reason("tools")), "{}", text(&out));
        assert_eq!(ws.builds(), 0, "nothing is built: {}", text(&out));
        let logs: Vec<_> = std::fs::read_dir(ws.project().join(".cip/logs"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(logs.is_empty(), "no builder log: {logs:?}");
        assert!(
            common::farm::repositories(&reg).is_empty(),
            "the registry is unchanged: {:?}",
            common::farm::repositories(&reg)
        );
    }

    // A stage run's builds pull from the stage: that is where the old version must be.
    let staged = json(&ws.cip(&[
        "plan",
        "--remote-registry",
        &addr,
        "--stage",
        "--platform",
        "linux/amd64",
        "--json",
    ]));
    assert!(
        staged["blocked"][0].as_str().unwrap().starts_with(&format!(
            "hello refers to busybox:1.0.0, which {addr}/cip-stage/linux-amd64 does not have"
        )),
        "{staged:#}"
    );

    // Published, the old version unblocks its children: only busybox 1.0.1 and the rest build.
    let old = Workspace::demo();
    let first = old.cip(&["publish-locally", "--local-registry", &addr, "busybox"]);
    assert!(first.status.success(), "{}", text(&first));
    let now = json(&ws.cip(&["plan", "--local-registry", &addr, "--json"]));
    assert_eq!(now["blocked"], serde_json::json!([]), "{now:#}");
    assert_eq!(
        now["builds_needed"], 4,
        "busybox 1.0.1 and its three descendants: {now:#}"
    );
}

/// `--platform` naming a platform no image declares is no "up to date": publish (a stage run
/// too), plan, status and ci matrix refuse when none of the platforms named is declared, and
/// warn when only some are. `linux/arm64/v8` is `linux/arm64`, as containerd matches it.
#[test]
fn a_platform_no_image_declares_is_named_and_refused_when_nothing_matches() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let addr = reg.addr();
    let refusal = "--platform: no image declares linux/arm/v7 (the images declare linux/amd64, \
                   linux/arm64): nothing to do for it";
    let runs: [&[&str]; 5] = [
        &[
            "publish",
            "--remote-registry",
            &addr,
            "--stage",
            "--platform",
            "linux/arm/v7",
        ],
        &[
            "publish",
            "--remote-registry",
            &addr,
            "--platform",
            "linux/arm/v7",
        ],
        &[
            "plan",
            "--remote-registry",
            &addr,
            "--platform",
            "linux/arm/v7",
        ],
        &[
            "status",
            "--remote-registry",
            &addr,
            "--platform",
            "linux/arm/v7",
        ],
        &[
            "ci",
            "matrix",
            "--remote-registry",
            &addr,
            "--platform",
            "linux/arm/v7",
        ],
    ];
    for args in runs {
        let out = ws.cip(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(refusal),
            "{args:?}: {}",
            text(&out)
        );
        assert!(!String::from_utf8_lossy(&out.stderr).contains("up to date"));
    }
    assert_eq!(ws.builds(), 0);
    assert!(common::farm::repositories(&reg).is_empty());

    // Only some declared: a warning, and the declared one is planned.
    let some = ws.cip(&[
        "plan",
        "--remote-registry",
        &addr,
        "--platform",
        "linux/arm/v7,linux/amd64",
        "--json",
    ]);
    assert!(
        String::from_utf8_lossy(&some.stderr).contains(
            "warning: --platform: no image declares linux/arm/v7; going on with linux/amd64"
        ),
        "{}",
        text(&some)
    );
    assert_eq!(json(&some)["builds_needed"], 4);

    // arm64/v8 is arm64: every image builds it, staged under linux-arm64.
    let v8 = json(&ws.cip(&[
        "plan",
        "--remote-registry",
        &addr,
        "--stage",
        "--platform",
        "linux/arm64/v8",
        "--json",
    ]));
    assert_eq!(v8["builds_needed"], 4, "{v8:#}");
    assert_eq!(v8["registry"], format!("{addr}/cip-stage/linux-arm64"));
    assert_eq!(v8["images"][0]["platforms"][0]["platform"], "linux/arm64");
    let matrix = ws.cip(&[
        "ci",
        "matrix",
        "--remote-registry",
        &addr,
        "--platform",
        "linux/arm64/v8",
        "--format",
        "json",
    ]);
    assert!(matrix.status.success(), "{}", text(&matrix));
    let doc: Value = serde_json::from_slice(&matrix.stdout).unwrap();
    assert!(doc.to_string().contains("linux-arm64"), "{doc:#}");
}

/// The reasons `cip plan --json` lists in `blocked`.
fn blocked(plan: &Value) -> Vec<String> {
    plan["blocked"]
        .as_array()
        .map(|b| b.iter().map(|r| r.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// The build steps of a plan that say they are blocked, as `IMAGE PLATFORM`.
fn blocked_builds(plan: &Value) -> Vec<String> {
    let images = plan["images"].as_array().unwrap();
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "build" && s["blocked"].is_array())
        .map(|s| {
            let image = &images[s["image"].as_u64().unwrap() as usize];
            format!(
                "{} {}",
                image["name"].as_str().unwrap(),
                s["platform"].as_str().unwrap()
            )
        })
        .collect()
}

/// Runs `args`, which must refuse before building anything: exit 1, nothing built, the registry
/// untouched. Returns stderr.
fn refused(ws: &Workspace, reg: &TestRegistry, args: &[&str]) -> String {
    let repositories = common::farm::repositories(reg);
    let builds = ws.builds();
    let out = ws.cip(args);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
    assert_eq!(ws.builds(), builds, "{args:?} built: {}", text(&out));
    assert_eq!(
        common::farm::repositories(reg),
        repositories,
        "{args:?} changed the registry"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every refusal of a run is in its plan: `cip plan` (exit 0, as for any blocked plan) shows the
/// reason in `blocked`, text and JSON, and the steps it stops; the run refuses with that same
/// reason before building. A builder lacking heredocs (buildah 1.28 here), `--native-only` on a
/// farm whose only node emulates arm64, a reference no run can resolve, drift; `--allow-drift`
/// waives the last in the plan as in the run.
#[test]
fn cip_plan_shows_every_refusal_of_the_run_and_the_run_refuses_with_it() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let addr = reg.addr();
    let local = ["--local-registry", addr.as_str()];
    let plan_of =
        |extra: &[&str]| json(&ws.cip(&[&["plan", "--json"], &local[..], extra].concat()));

    // A heredoc in app: buildah 1.28 cannot build it, on the node app is built on.
    let dockerfile = ws.context("02-app").join("Dockerfile");
    let clean = std::fs::read_to_string(&dockerfile).unwrap();
    let line = clean.lines().count() + 1;
    std::fs::write(
        &dockerfile,
        format!("{clean}RUN <<EOF\necho hi > /hi.txt\nEOF\n"),
    )
    .unwrap();
    let plan = plan_of(&[]);
    let reasons = blocked(&plan);
    assert_eq!(reasons.len(), 1, "{plan:#}");
    assert!(
        reasons[0].contains("1 Dockerfile use heredocs, which buildah 1.28")
            && reasons[0].contains(&format!("contexts/02-app/Dockerfile:{line}: `<<EOF`")),
        "{plan:#}"
    );
    assert_eq!(blocked_builds(&plan), ["app linux/amd64"], "{plan:#}");
    let shown = ws.cip(&[&["plan"], &local[..]].concat());
    assert!(shown.status.success(), "{}", text(&shown));
    let first_line = reasons[0].lines().next().unwrap();
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains(&format!("blocked: {first_line}")),
        "{}",
        text(&shown)
    );
    let err = refused(&ws, &reg, &[&["publish-locally"], &local[..]].concat());
    assert!(err.contains(first_line), "{err}");
    assert!(
        err.contains("1 context(s) use Dockerfile features that buildah 1.28"),
        "{err}"
    );
    std::fs::write(&dockerfile, &clean).unwrap();
    assert_eq!(blocked(&plan_of(&[])), Vec::<String>::new());

    // --native-only on a farm of one buildah node, native for amd64 only: arm64 is emulated.
    std::fs::write(
        ws.project().join("cip.toml"),
        "[nodes.here]\nkind = \"buildah\"\njobs = 2\n",
    )
    .unwrap();
    let farm = [
        "--node",
        "here",
        "--native-only",
        "--remote-registry",
        addr.as_str(),
    ];
    let plan = json(&ws.cip(&[&["plan", "--json"], &farm[..]].concat()));
    let native_only = "--native-only: no native node for linux/arm64 on node here; add a node \
                       native for it (or declare its platforms in cip.toml), or drop \
                       --native-only to build it under emulation";
    assert_eq!(blocked(&plan), [native_only], "{plan:#}");
    assert_eq!(
        blocked_builds(&plan),
        [
            "busybox linux/arm64",
            "hello linux/arm64",
            "tools linux/arm64",
            "app linux/arm64"
        ],
        "{plan:#}"
    );
    let err = refused(&ws, &reg, &[&["publish"], &farm[..]].concat());
    assert!(err.contains(native_only), "{err}");
    let without = json(&ws.cip(&[&["plan", "--json"], &farm[..2], &farm[3..]].concat()));
    assert_eq!(blocked(&without), Vec::<String>::new(), "{without:#}");
    std::fs::remove_file(ws.project().join("cip.toml")).unwrap();

    // A parent bumped without cascading: hello and tools refer to a version nothing provides.
    let info = std::fs::read_to_string(ws.context("00-busybox").join("info.edn")).unwrap();
    common::workspace::set_info(&ws, "00-busybox", &info.replace("1.0.0", "1.0.1"));
    let plan = plan_of(&[]);
    let unresolved = |child: &str| {
        format!(
            "{child} refers to busybox:1.0.0, which {addr} does not have and this run cannot \
             build: 00-busybox is at 1.0.1; run `cip cascade-version-updates` or publish busybox \
             1.0.0 first"
        )
    };
    assert_eq!(
        blocked(&plan),
        [unresolved("hello"), unresolved("tools")],
        "{plan:#}"
    );
    let err = refused(&ws, &reg, &[&["publish-locally"], &local[..]].concat());
    assert!(err.contains(&unresolved("hello")), "{err}");
    common::workspace::set_info(&ws, "00-busybox", &info);

    // Drift: hello's context changes after 1.0.0 is published.
    let greeting = ws.context("01-hello").join("greeting.txt");
    std::fs::write(&greeting, "hi\n").unwrap();
    let first = ws.cip(&[&["publish-locally"], &local[..]].concat());
    assert!(first.status.success(), "{}", text(&first));
    std::fs::write(&greeting, "hello there\n").unwrap();
    let plan = plan_of(&[]);
    let drift = "published versions differ from their contexts: bump them, or pass --allow-drift";
    assert_eq!(blocked(&plan), [drift], "{plan:#}");
    let err = refused(&ws, &reg, &[&["publish-locally"], &local[..]].concat());
    assert!(err.contains(drift), "{err}");
    assert!(
        err.contains("drift: hello changed since 1.0.0 was published, version not bumped"),
        "the run says which image drifted, as the plan does: {err}"
    );
    let allowed = plan_of(&["--allow-drift"]);
    assert_eq!(blocked(&allowed), Vec::<String>::new(), "{allowed:#}");
    let run = ws.cip(&[&["publish-locally", "--allow-drift"], &local[..]].concat());
    assert!(run.status.success(), "{}", text(&run));
}

/// The tags of registry `reg`'s repository `name`, sorted.
fn tags_of(reg: &TestRegistry, name: &str) -> Vec<String> {
    let doc: Value = serde_json::from_str(&common::skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/{name}", reg.addr()),
    ]))
    .unwrap();
    let mut tags: Vec<String> = doc["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    tags.sort();
    tags
}

/// Per image, the tags a plan's assemble steps write (index tags and arch tags), sorted.
fn planned_tags(plan: &Value) -> HashMap<String, Vec<String>> {
    let images = plan["images"].as_array().unwrap();
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "assemble")
        .map(|s| {
            let name = images[s["image"].as_u64().unwrap() as usize]["name"]
                .as_str()
                .unwrap()
                .to_string();
            let mut tags: Vec<String> = s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect();
            if let Some(arch) = s["arch_tags"].as_object() {
                tags.extend(arch.keys().cloned());
            }
            tags.sort();
            (name, tags)
        })
        .collect()
}

/// `cip plan --no-latest --arch-tags` shows the tags the run with those flags writes: read back
/// from the registry, each image holds exactly the tags its plan lists (no `latest`, the version
/// and its per-platform tag).
#[test]
fn the_tags_of_the_plan_are_the_tags_the_run_writes_with_no_latest_and_arch_tags() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let addr = reg.addr();
    let flags = [
        "--local-registry",
        addr.as_str(),
        "--no-latest",
        "--arch-tags",
    ];
    let plain = json(&ws.cip(&["plan", "--local-registry", &addr, "--json"]));
    assert_eq!(
        planned_tags(&plain)["app"],
        ["1.0.0", "latest"],
        "without the flags, latest: {plain:#}"
    );
    let plan = json(&ws.cip(&[&["plan", "--json"], &flags[..]].concat()));
    let planned = planned_tags(&plan);
    assert_eq!(planned.len(), 4, "{plan:#}");
    for tags in planned.values() {
        assert_eq!(tags, &["1.0.0", "1.0.0-amd64"], "{plan:#}");
    }
    let run = ws.cip(&[&["publish-locally"], &flags[..]].concat());
    assert!(run.status.success(), "{}", text(&run));
    for (name, tags) in &planned {
        assert_eq!(&tags_of(&reg, name), tags, "{name}");
    }
}
