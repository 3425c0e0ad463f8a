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
        gitlab.replace("  stage: merge\n", "  stagez: merge\n"),
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
    assert!(include[0].get("runner").is_none(), "no label configured");
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
                .is_some_and(|r| r.contains("cip ci matrix --format github"))
        })
        .expect("a step runs cip ci matrix --format github");
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
    let stage = &wf["jobs"]["stage"];
    assert_eq!(stage["if"], "needs.plan.outputs.any == 'true'");
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
    assert!(
        runs.iter()
            .any(|r| r.contains("--stage --platform \"${{ matrix.platform }}\"")),
        "{runs:?}"
    );
    let merge_runs = wf["jobs"]["merge"].to_string();
    assert!(merge_runs.contains("--merge"), "{merge_runs}");
}

#[test]
fn the_gitlab_pipeline_reads_what_cip_ci_matrix_prints() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    // arm64 only left to build.
    for dir in ["00-busybox", "01-hello", "01-tools", "02-app"] {
        common::workspace::set_info(
            &ws,
            dir,
            "{:version \"1.0.0\" :platforms #{\"linux/arm64\"}}",
        );
    }
    let printed = matrix(&ws, &reg, "gitlab");
    // The registry of cip.toml serves as well as the flag.
    std::fs::write(
        ws.project().join("cip.toml"),
        format!("[registry]\nremote = \"{}\"\n", reg.addr()),
    )
    .unwrap();
    let out = ws.cip(&["ci", "matrix", "--format", "gitlab"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), printed);
    let ci = yaml(&pipeline("gitlab-ci.yml"));
    let job = &ci["matrix"];
    let script = job["script"].to_string();
    assert!(script.contains("cip ci matrix --format gitlab"), "{script}");
    let report = job["artifacts"]["reports"]["dotenv"].as_str().unwrap();
    assert!(script.contains(&format!("> {report}")), "{script}");
    // Every CIP_ variable the later jobs read is one cip prints (or the documented CI/CD ones).
    let keys: Vec<String> = pairs(&printed).into_iter().map(|(k, _)| k).collect();
    for name in ["stage", "merge"] {
        let body = ci[name]["script"].to_string();
        for (i, _) in body.match_indices("$CIP_") {
            let var: String = body[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            assert!(
                keys.contains(&var)
                    || ["CIP_REGISTRY", "CIP_USERNAME", "CIP_PASSWORD"].contains(&var.as_str()),
                "{name} reads {var}, which cip ci matrix does not print ({keys:?})"
            );
        }
        assert!(ci[name]["needs"]
            .as_array()
            .unwrap()
            .contains(&"matrix".into()));
    }
    // The stage job's guard, run as GitLab runs it with the report's variables: only the listed
    // platform goes on.
    let guard = ci["stage"]["script"][0].as_str().unwrap();
    let env = pairs(&printed);
    for entry in ci["stage"]["parallel"]["matrix"].as_array().unwrap() {
        let platform = entry["PLATFORM"].as_str().unwrap();
        let out = common::run_output(
            Command::new("sh")
                .args(["-ec", &format!("{guard}\necho GO")])
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("PLATFORM", platform),
        );
        assert!(out.status.success(), "{}", text(&out));
        let went_on = String::from_utf8_lossy(&out.stdout).contains("GO");
        assert_eq!(
            went_on,
            platform == "linux/arm64",
            "{platform}: {}",
            text(&out)
        );
    }
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
    ] {
        assert!(out.contains(used), "{used} missing:\n{out}");
    }
    let flags: Vec<&str> = out
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| w.starts_with("--"))
        .collect();
    for unused in [
        "--stage",
        "--stage-namespace",
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
