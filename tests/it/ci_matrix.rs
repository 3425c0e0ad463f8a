//! `cip ci matrix` against a real registry, and the pipelines of docs/ci/: valid by the GitHub
//! workflow and GitLab CI schemas (PyPI's check-jsonschema, offline), and reading exactly what
//! `cip ci matrix` prints.
use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::workspace::{text, Workspace};
use common::TestRegistry;
use serde_json::Value;

/// Where scripts/setup-env installs check-jsonschema.
const JSONSCHEMA_DIR: &str = "/opt/check-jsonschema/bin";

fn tool(name: &str) -> PathBuf {
    let p = Path::new(JSONSCHEMA_DIR).join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup-env",
        p.display()
    );
    p
}

fn pipeline(name: &str) -> PathBuf {
    common::repo_root().join("docs/ci").join(name)
}

/// check-jsonschema with a built-in schema, without network when `unshare` can take it away.
fn schema_check(schema: &str, file: &Path) -> std::process::Output {
    let checker = tool("check-jsonschema");
    let mut cmd = if common::have_program("unshare") {
        let mut c = Command::new("unshare");
        c.arg("-n").arg(&checker);
        c
    } else {
        Command::new(&checker)
    };
    cmd.args(["--builtin-schema", schema]).arg(file);
    common::run_output(&mut cmd)
}

/// A YAML file as JSON (ruamel.yaml, which check-jsonschema brings).
fn yaml(file: &Path) -> Value {
    let out = common::run_ok(Command::new(tool("python")).args([
        "-c",
        "import sys, json\nfrom ruamel.yaml import YAML\nprint(json.dumps(YAML(typ='safe').load(open(sys.argv[1]))))",
        file.to_str().unwrap(),
    ]));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn the_pipelines_pass_the_github_and_gitlab_schemas_offline() {
    for (file, schema) in [
        ("github-actions.yml", "vendor.github-workflows"),
        ("gitlab-ci.yml", "vendor.gitlab-ci"),
        ("gitlab-ci-jobs.yml", "vendor.gitlab-ci"),
    ] {
        let out = schema_check(schema, &pipeline(file));
        assert!(out.status.success(), "{file}: {}", text(&out));
    }
    // The check does check: a job without `runs-on` / a job with an unknown key fails.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yml");
    let github = std::fs::read_to_string(pipeline("github-actions.yml")).unwrap();
    std::fs::write(&broken, github.replace("runs-on: ubuntu-24.04\n", "")).unwrap();
    assert!(!schema_check("vendor.github-workflows", &broken)
        .status
        .success());
    let gitlab = std::fs::read_to_string(pipeline("gitlab-ci.yml")).unwrap();
    std::fs::write(
        &broken,
        gitlab.replace("  stage: images\n", "  stagez: images\n"),
    )
    .unwrap();
    assert!(!schema_check("vendor.gitlab-ci", &broken).status.success());
}

fn matrix(ws: &Workspace, reg: &TestRegistry, format: &str) -> String {
    let out = ws.cip(&[
        "ci",
        "matrix",
        "--format",
        format,
        "--remote-registry",
        &reg.addr(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// `KEY=VALUE` lines as pairs.
fn pairs(s: &str) -> Vec<(String, String)> {
    s.lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{l:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn value<'a>(pairs: &'a [(String, String)], key: &str) -> &'a str {
    &pairs
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("{key} in {pairs:?}"))
        .1
}

fn with_runners(ws: &Workspace) {
    std::fs::write(
        ws.project().join("cip.toml"),
        "[ci.runners]\n\"linux/arm64\" = \"ubuntu-24.04-arm\"\n",
    )
    .unwrap();
}

#[test]
fn matrix_lists_the_platforms_to_build_with_their_runners_and_none_when_all_is_published() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    with_runners(&ws);
    let doc: Value = serde_json::from_str(&matrix(&ws, &reg, "json")).unwrap();
    assert_eq!(doc["any"], true);
    let include = doc["include"].as_array().unwrap();
    assert_eq!(include.len(), 2, "{doc:#}");
    assert_eq!(include[0]["platform"], "linux/amd64");
    assert!(include[0]["runner"].is_null(), "no label configured: {doc}");
    assert_eq!(include[1]["platform"], "linux/arm64");
    assert_eq!(include[1]["runner"], "ubuntu-24.04-arm");
    assert_eq!(include[1]["slug"], "linux-arm64");
    assert_eq!(include[1]["images"].as_array().unwrap().len(), 4);

    let out = ws.cip(&[
        "publish",
        "--remote-registry",
        &reg.addr(),
        "--platform",
        "linux/amd64",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let gitlab = pairs(&matrix(&ws, &reg, "gitlab"));
    assert_eq!(value(&gitlab, "CIP_PLATFORMS"), "linux/arm64");
    assert_eq!(value(&gitlab, "CIP_ANY"), "true");
    assert_eq!(value(&gitlab, "CIP_RUNNER_LINUX_ARM64"), "ubuntu-24.04-arm");

    let out = ws.cip(&["publish", "--remote-registry", &reg.addr()]);
    assert!(out.status.success(), "{}", text(&out));
    let github = pairs(&matrix(&ws, &reg, "github"));
    assert_eq!(value(&github, "any"), "false");
    assert_eq!(value(&github, "matrix"), "{\"include\":[]}");
    assert_eq!(
        pairs(&matrix(&ws, &reg, "gitlab"))[..2],
        [
            ("CIP_PLATFORMS".to_string(), String::new()),
            ("CIP_ANY".to_string(), "false".to_string())
        ]
    );
}

/// Every `${{ matrix.FIELD }}`-style reference (`matrix.FIELD`) in `text`.
fn matrix_fields(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .match_indices("matrix.")
        .map(|(i, m)| {
            text[i + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .filter(|f: &String| !f.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn the_github_workflow_reads_what_cip_ci_matrix_prints() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    with_runners(&ws);
    let printed = pairs(&matrix(&ws, &reg, "github"));
    let wf = yaml(&pipeline("github-actions.yml"));
    let plan = &wf["jobs"]["plan"];
    let step = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["run"]
                .as_str()
                .is_some_and(|r| r.contains("ci matrix --format github"))
        })
        .expect("a step runs cip ci matrix --format github");
    assert!(step["run"]
        .as_str()
        .unwrap()
        .starts_with("cip -C \"$CIP_PROJECT_DIR\" ci matrix"));
    assert!(step["run"]
        .as_str()
        .unwrap()
        .ends_with(">> \"$GITHUB_OUTPUT\""));
    let id = step["id"].as_str().unwrap();
    // The job's outputs are cip's lines, by name.
    let outputs = plan["outputs"].as_object().unwrap();
    for (name, expr) in outputs {
        assert_eq!(expr, &format!("${{{{ steps.{id}.outputs.{name} }}}}"));
        value(&printed, name);
    }
    // Overlapping runs queue, never cancel a merge halfway.
    assert!(wf["concurrency"]["group"].is_string());
    assert_eq!(wf["concurrency"]["cancel-in-progress"], false);
    let stage = &wf["jobs"]["stage"];
    assert_eq!(stage["if"], "needs.plan.outputs.any == 'true'");
    assert_eq!(stage["strategy"]["fail-fast"], false);
    assert_eq!(
        stage["strategy"]["matrix"],
        "${{ fromJSON(needs.plan.outputs.matrix) }}"
    );
    assert_eq!(
        wf["jobs"]["merge"]["if"],
        "needs.plan.outputs.any == 'true'"
    );
    // Every matrix field the stage job uses is in every entry cip prints.
    let m: Value = serde_json::from_str(value(&printed, "matrix")).unwrap();
    let entries = m["include"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let fields = matrix_fields(&stage.to_string());
    assert_eq!(fields, ["platform", "runner", "slug"]);
    for e in entries {
        for f in &fields {
            assert!(e.get(f).is_some(), "{f} in {e}");
        }
    }
    let runs: Vec<&str> = stage["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect();
    assert_eq!(stage["env"]["PLATFORM"], "${{ matrix.platform }}");
    assert!(
        runs.iter()
            .any(|r| r.contains("--stage --platform \"$PLATFORM\"")),
        "{runs:?}"
    );
    let merge_runs = wf["jobs"]["merge"].to_string();
    assert!(merge_runs.contains("--merge"), "{merge_runs}");
}

/// `cip ci matrix --format gitlab-pipeline` with the documented job template, written to a file.
fn child_pipeline(ws: &Workspace, reg: &TestRegistry, dir: &Path) -> (String, PathBuf) {
    let out = ws.cip(&[
        "ci",
        "matrix",
        "--format",
        "gitlab-pipeline",
        "--job-template",
        pipeline("gitlab-ci-jobs.yml").to_str().unwrap(),
        "--remote-registry",
        &reg.addr(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let yml = String::from_utf8(out.stdout).unwrap();
    let file = dir.join("child.yml");
    std::fs::write(&file, &yml).unwrap();
    (yml, file)
}

#[test]
fn the_gitlab_pipeline_runs_the_child_pipeline_cip_ci_matrix_writes() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    with_runners(&ws);
    let ci = yaml(&pipeline("gitlab-ci.yml"));
    // The plan job writes the child pipeline as an artifact; the trigger job runs it.
    let script: Vec<&str> = ci["plan"]["script"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let script = script.join("\n");
    assert!(
        script
            .contains("cip -C \"$CIP_PROJECT_DIR\" ci matrix --format gitlab-pipeline --job-template .gitlab/cip-jobs.yml"),
        "{script}"
    );
    assert!(script.contains("> cip-pipeline.yml"), "{script}");
    assert_eq!(ci["plan"]["artifacts"]["paths"][0], "cip-pipeline.yml");
    let trigger = &ci["images"]["trigger"];
    assert_eq!(trigger["include"][0]["artifact"], "cip-pipeline.yml");
    assert_eq!(trigger["include"][0]["job"], "plan");
    assert_eq!(trigger["strategy"], "depend");
    assert!(ci["images"]["resource_group"].is_string());

    // The child pipelines cip writes (something to build, nothing) are valid GitLab CI.
    let dir = tempfile::tempdir().unwrap();
    let (yml, file) = child_pipeline(&ws, &reg, dir.path());
    let out = schema_check("vendor.gitlab-ci", &file);
    assert!(
        out.status.success(),
        "{}
{yml}",
        text(&out)
    );
    let child = yaml(&file);
    let arm = &child["stage linux/arm64"];
    assert_eq!(arm["extends"], ".cip-stage");
    assert_eq!(arm["variables"]["PLATFORM"], "linux/arm64");
    assert_eq!(arm["tags"][0], "ubuntu-24.04-arm");
    assert!(child["stage linux/amd64"].get("tags").is_none());
    assert_eq!(
        child["merge"]["needs"],
        serde_json::json!(["stage linux/amd64", "stage linux/arm64"])
    );
    let out = ws.cip(&["publish", "--remote-registry", &reg.addr()]);
    assert!(out.status.success(), "{}", text(&out));
    let (yml, file) = child_pipeline(&ws, &reg, dir.path());
    let out = schema_check("vendor.gitlab-ci", &file);
    assert!(out.status.success(), "{}\n{yml}", text(&out));
    let child = yaml(&file);
    let jobs: Vec<&String> = child
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "stages")
        .collect();
    assert_eq!(jobs, ["nothing to build"], "{yml}");

    // A template that would start jobs of its own is refused, naming the file and line.
    let bad = dir.path().join("jobs.yml");
    std::fs::write(
        &bad,
        ".cip-stage:\n  script: [a]\n.cip-merge:\n  script: [b]\nbuild:\n  script: [c]\n",
    )
    .unwrap();
    let out = ws.cip(&[
        "ci",
        "matrix",
        "--format",
        "gitlab-pipeline",
        "--job-template",
        bad.to_str().unwrap(),
        "--remote-registry",
        &reg.addr(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:5: `build` is not a hidden job", bad.display())),
        "{err}"
    );
}

#[test]
fn matrix_leaves_out_platforms_staged_from_the_current_contexts() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    let stage = |platform: &str| {
        let out = ws.cip(&[
            "publish",
            "--remote-registry",
            &reg.addr(),
            "--stage",
            "--platform",
            platform,
        ]);
        assert!(out.status.success(), "{}", text(&out));
    };
    stage("linux/amd64");
    let doc: Value = serde_json::from_str(&matrix(&ws, &reg, "json")).unwrap();
    let include = doc["include"].as_array().unwrap();
    assert_eq!(include.len(), 1, "{doc:#}");
    assert_eq!(include[0]["platform"], "linux/arm64");
    assert_eq!(include[0]["images"].as_array().unwrap().len(), 4);

    // A context changed since it was staged: its stage is stale, that platform builds it again.
    let dockerfile = ws.context("02-app").join("Dockerfile");
    let mut text_now = std::fs::read_to_string(&dockerfile).unwrap();
    text_now.push_str("RUN echo changed > /changed.txt\n");
    std::fs::write(&dockerfile, text_now).unwrap();
    let doc: Value = serde_json::from_str(&matrix(&ws, &reg, "json")).unwrap();
    let include = doc["include"].as_array().unwrap();
    assert_eq!(include.len(), 2, "{doc:#}");
    assert_eq!(include[0]["platform"], "linux/amd64");
    assert_eq!(include[0]["images"], serde_json::json!(["app"]));

    // Both platforms staged from the current contexts: nothing left to start.
    stage("linux/amd64");
    stage("linux/arm64");
    let github = pairs(&matrix(&ws, &reg, "github"));
    assert_eq!(value(&github, "any"), "false");
}

/// The registry credentials reach only the steps that run cip against the registry: on GitHub
/// through step-level `env:` (never the workflow's or a job's), on GitLab on the cip command
/// lines themselves (GitLab gives CI/CD variables to every job; the install unsets them).
#[test]
fn the_pipelines_hand_credentials_only_to_the_cip_commands_that_need_them() {
    let wf = yaml(&pipeline("github-actions.yml"));
    assert!(!wf["env"].to_string().contains("secrets."), "{}", wf["env"]);
    let mut steps_with_secrets = 0;
    for (name, job) in wf["jobs"].as_object().unwrap() {
        assert!(!job["env"].to_string().contains("secrets."), "job {name}");
        for step in job["steps"].as_array().unwrap() {
            if step["env"].to_string().contains("secrets.") {
                steps_with_secrets += 1;
                let run = step["run"].as_str().unwrap_or_default();
                assert!(run.starts_with("cip -C "), "{name}: {step}");
                assert!(!run.contains("cargo"), "{name}: {step}");
            }
        }
    }
    assert_eq!(steps_with_secrets, 3, "matrix, stage, merge");
    for file in ["gitlab-ci.yml", "gitlab-ci-jobs.yml"] {
        let text = std::fs::read_to_string(pipeline(file)).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.contains("$CIP_REGISTRY_PASSWORD") {
                assert!(
                    line.trim_start().starts_with(
                        "CIP_USERNAME=\"$CIP_REGISTRY_USER\" CIP_PASSWORD=\"$CIP_REGISTRY_PASSWORD\""
                    ),
                    "{file}:{}: {line}",
                    n + 1
                );
            }
        }
        assert!(!text.contains("variables:\n  CIP_PASSWORD"), "{file}");
    }
    let jobs = std::fs::read_to_string(pipeline("gitlab-ci-jobs.yml")).unwrap();
    assert!(jobs.contains("unset CIP_REGISTRY_USER CIP_REGISTRY_PASSWORD"));
}

#[test]
fn ci_matrix_help_names_only_the_flags_it_uses() {
    let (code, out, err) = common::cip(&["ci", "matrix", "--help"]);
    assert_eq!(code, 0, "{err}");
    for used in [
        "--remote-registry",
        "--platform",
        "--format",
        "--ca-cert",
        "--insecure-registry",
        "--stage-namespace",
        "--job-template",
    ] {
        assert!(out.contains(used), "{used} missing:\n{out}");
    }
    let flags: Vec<&str> = out
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| w.starts_with("--"))
        .collect();
    for unused in [
        "--stage",
        "--local-registry",
        "--only-local-platform",
        "--remote",
    ] {
        assert!(!flags.contains(&unused), "{unused} listed:\n{out}");
    }
    // And refused, not silently ignored.
    let (code, _, err) = common::cip(&["ci", "matrix", "--stage"]);
    assert_eq!(code, 2, "{err}");
}
