//! `cip check` and `cip graph` on the fixture trees in fixtures/check: every problem with file and line.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common;
use common::workspace::{results, text, Workspace};

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/check")
        .join(case)
}

use common::cip;

/// A problem as (severity, code, file relative to the fixture, line).
type Found = (String, String, String, Option<u64>);

/// Runs `cip check --json` on a fixture: exit code and (severity, code, file relative to the fixture, line).
fn check(case: &str) -> (i32, Vec<Found>, Value) {
    let dir = fixture(case);
    let (code, stdout, stderr) = cip(&["check", "--json", "-C", dir.to_str().unwrap()]);
    let doc: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    let problems = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let file = p["file"].as_str().unwrap_or("");
            let rel = Path::new(file)
                .strip_prefix(&dir)
                .map(|r| r.display().to_string());
            (
                p["severity"].as_str().unwrap().to_string(),
                p["code"].as_str().unwrap().to_string(),
                rel.unwrap_or_else(|_| file.to_string()),
                p["line"].as_u64(),
            )
        })
        .collect();
    (code, problems, doc)
}

fn one(
    severity: &str,
    code: &str,
    file: &str,
    line: Option<u64>,
) -> (String, String, String, Option<u64>) {
    (severity.into(), code.into(), file.into(), line)
}

/// One fixture of fixtures/check: the exit code, the single problem it must report (severity,
/// code, file relative to the fixture, line), and words its message or hint must hold.
struct Case {
    fixture: &'static str,
    exit: i32,
    problem: Option<(&'static str, &'static str, &'static str, Option<u64>)>,
    message_has: &'static [&'static str],
    hint_has: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        fixture: "valid",
        exit: 0,
        problem: None,
        message_has: &[],
        hint_has: &[],
    },
    Case {
        fixture: "bad-edn",
        exit: 1,
        problem: Some(("error", "bad-edn", "contexts/00-base/info.edn", Some(3))),
        message_has: &[],
        hint_has: &["close"],
    },
    Case {
        fixture: "trailing-form",
        exit: 1,
        problem: Some(("error", "bad-edn", "contexts/00-base/info.edn", Some(3))),
        message_has: &[],
        hint_has: &[],
    },
    Case {
        fixture: "missing-version",
        exit: 1,
        problem: Some((
            "error",
            "missing-version",
            "contexts/00-base/info.edn",
            Some(1),
        )),
        message_has: &[],
        hint_has: &[],
    },
    Case {
        fixture: "bad-version",
        exit: 1,
        problem: Some(("error", "bad-version", "contexts/00-base/info.edn", Some(2))),
        message_has: &[],
        hint_has: &[],
    },
    Case {
        fixture: "bad-platform",
        exit: 1,
        problem: Some((
            "error",
            "bad-platform",
            "contexts/00-base/info.edn",
            Some(3),
        )),
        message_has: &[],
        hint_has: &[],
    },
    Case {
        fixture: "missing-dockerfile",
        exit: 1,
        problem: Some((
            "error",
            "missing-dockerfile",
            "contexts/00-base/Dockerfile",
            None,
        )),
        message_has: &[],
        hint_has: &[],
    },
    Case {
        fixture: "missing-info",
        exit: 1,
        problem: Some(("error", "missing-info", "contexts/00-base/info.edn", None)),
        message_has: &[],
        hint_has: &[],
    },
    Case {
        fixture: "duplicate-name",
        exit: 1,
        problem: Some(("error", "duplicate-name", "contexts/01-base", None)),
        message_has: &["00-base", "01-base"],
        hint_has: &[],
    },
    Case {
        fixture: "unknown-image",
        exit: 1,
        problem: Some((
            "error",
            "unknown-image",
            "contexts/01-child/Dockerfile",
            Some(2),
        )),
        message_has: &[],
        hint_has: &["\"base\""],
    },
    Case {
        fixture: "order",
        exit: 1,
        problem: Some(("error", "order", "contexts/02-child/Dockerfile", Some(2))),
        message_has: &["02-child", "03-parent"],
        hint_has: &[],
    },
    Case {
        fixture: "stale-reference",
        exit: 0, // warnings do not fail check
        problem: Some((
            "warning",
            "stale-reference",
            "contexts/01-child/Dockerfile",
            Some(2),
        )),
        message_has: &[],
        hint_has: &["cascade-version-updates"],
    },
    Case {
        fixture: "registry-out-of-scope",
        exit: 0,
        problem: Some((
            "warning",
            "registry-out-of-scope",
            "contexts/02-app/Dockerfile",
            Some(3),
        )),
        message_has: &[],
        hint_has: &["ARG REGISTRY"],
    },
    Case {
        fixture: "platform-missing-in-parent",
        exit: 1,
        problem: Some((
            "error",
            "platform-missing-in-parent",
            "contexts/01-child/Dockerfile",
            Some(2),
        )),
        message_has: &[],
        hint_has: &[],
    },
];

#[test]
fn each_fixture_reports_its_one_problem_with_file_and_line() {
    for case in CASES {
        let (code, problems, doc) = check(case.fixture);
        let want: Vec<Found> = case
            .problem
            .iter()
            .map(|(sev, code, file, line)| one(sev, code, file, *line))
            .collect();
        assert_eq!(problems, want, "{}", case.fixture);
        assert_eq!(code, case.exit, "{}: exit code", case.fixture);
        let field = |name: &str| doc["problems"][0][name].as_str().unwrap_or("").to_string();
        for word in case.message_has {
            assert!(
                field("message").contains(word),
                "{}: {word:?} in {doc}",
                case.fixture
            );
        }
        for word in case.hint_has {
            assert!(
                field("hint").contains(word),
                "{}: {word:?} in {doc}",
                case.fixture
            );
        }
    }
    assert_eq!(
        check("valid").2["contexts"],
        4,
        "README.md and .hidden are not contexts"
    );
}

#[test]
fn cycle_names_the_whole_cycle() {
    let (code, problems, doc) = check("cycle");
    assert_eq!(code, 1);
    let cycles: Vec<_> = problems.iter().filter(|p| p.1 == "cycle").collect();
    assert_eq!(cycles.len(), 1);
    let msg = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "cycle")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("(parent -> child): 00-a -> 01-b -> 02-c -> 00-a"),
        "{msg}"
    );
    // The graph cannot be drawn either.
    let (code, _, stderr) = cip(&["graph", "-C", fixture("cycle").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cycle"), "{stderr}");
}

#[test]
fn text_output_has_locations_and_a_summary() {
    let (code, _, stderr) = cip(&["check", "-C", fixture("order").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("02-child/Dockerfile:2: "), "{stderr}");
    assert!(stderr.contains("hint: renumber"), "{stderr}");
    assert!(stderr.contains("1 error(s), 0 warning(s)"), "{stderr}");
}

#[test]
fn missing_contexts_dir_is_a_clear_error() {
    let (code, _, stderr) = cip(&["check", "-C", "/nonexistent-project"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("/nonexistent-project/contexts is not a directory"),
        "{stderr}"
    );
}

#[test]
fn graph_text_shows_batches_and_critical_path() {
    let (code, out, _) = cip(&["graph", "-C", fixture("valid").to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains("4 images in 3 build batches"), "{out}");
    assert!(
        out.contains("batch 0:\n  base 1.0.0 [linux/amd64, linux/arm64]\n"),
        "{out}"
    );
    assert!(
        out.contains("top 0.3.0 [linux/amd64]  <- left, right"),
        "{out}"
    );
    assert!(
        out.contains("critical path (3 images): base -> left -> top"),
        "{out}"
    );
}

#[test]
fn graph_json_is_the_documented_schema() {
    let (code, out, _) = cip(&[
        "graph",
        "--format",
        "json",
        "-C",
        fixture("valid").to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let (_, alias, _) = cip(&["graph", "--json", "-C", fixture("valid").to_str().unwrap()]);
    assert_eq!(alias, out, "--json is --format json");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(
        doc["layers"],
        serde_json::json!([["base"], ["left", "right"], ["top"]])
    );
    let top = doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "top")
        .unwrap();
    assert_eq!(top["dir"], "02-top");
    assert_eq!(top["order"], 2);
    assert_eq!(top["version"], "0.3.0");
    assert_eq!(top["platforms"], serde_json::json!(["linux/amd64"]));
    assert_eq!(top["platforms_declared"], true);
    assert_eq!(top["layer"], 2);
    assert_eq!(
        top["parents"],
        serde_json::json!([
            {"name": "left", "tag": "1.0.0", "kind": "from", "line": 2},
            {"name": "right", "tag": "2.1.0", "kind": "copy-from", "line": 4}
        ])
    );
    assert_eq!(
        doc["images"][0]["children"],
        serde_json::json!(["left", "right"])
    );
    assert_eq!(doc["images"][0]["external"], serde_json::json!(["scratch"]));
}

#[test]
fn graph_dot_and_mermaid() {
    let dir = fixture("valid");
    let (_, dot, _) = cip(&["graph", "-f", "dot", "-C", dir.to_str().unwrap()]);
    assert!(dot.starts_with("digraph cip {"));
    assert!(dot.contains("\"base\" -> \"left\";"), "{dot}");
    let (_, mm, _) = cip(&["graph", "-f", "mermaid", "-C", dir.to_str().unwrap()]);
    assert!(mm.starts_with("graph LR\n"));
    assert!(mm.contains("n0 --> n1"), "{mm}");
}

#[test]
fn unknown_subcommand_lists_valid_ones_and_exits_2() {
    let (code, _, stderr) = cip(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("Valid subcommands:"), "{stderr}");
    assert!(
        stderr.contains("check") && stderr.contains("graph"),
        "{stderr}"
    );
}

#[test]
fn help_lists_subcommands() {
    for args in [&["--help"][..], &["help"][..]] {
        let (code, out, _) = cip(args);
        assert_eq!(code, 0);
        assert!(
            out.contains("check") && out.contains("Validate the project"),
            "{out}"
        );
    }
}

#[test]
fn what_builders_reject_is_a_check_error() {
    let (code, problems, doc) = check("unbuildable");
    assert_eq!(code, 1);
    let dockerfile = |d: &str| format!("contexts/{d}/Dockerfile");
    let info = |d: &str| format!("contexts/{d}/info.edn");
    let expected = [
        one("error", "bad-name", "contexts/01-a_-b", None),
        one("error", "bad-dockerfile", &dockerfile("01-binary"), Some(2)),
        one("error", "bad-version", &info("01-build-meta"), Some(1)),
        one("error", "empty-dockerfile", &dockerfile("01-empty"), None),
        one("error", "bad-version", &info("01-float"), Some(1)),
        one(
            "error",
            "bad-version",
            "contexts/01-long-version/VERSION",
            Some(1),
        ),
        one("error", "no-from", &dockerfile("01-no-from"), None),
        one(
            "error",
            "unclosed-variable",
            &dockerfile("01-unclosed"),
            Some(2),
        ),
        one(
            "error",
            "unclosed-variable",
            &dockerfile("01-unclosed"),
            Some(4),
        ),
        one(
            "error",
            "unclosed-variable",
            &dockerfile("01-unclosed"),
            Some(5),
        ),
        one(
            "error",
            "unknown-instruction",
            &dockerfile("01-unknown"),
            Some(3),
        ),
    ];
    assert_eq!(problems, expected);
    let message = |code: &str, file: &str| -> String {
        let p = doc["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["code"] == code && p["file"].as_str().unwrap().contains(file))
            .unwrap_or_else(|| panic!("no {code} in {file}"));
        format!("{} / {}", p["message"], p["hint"])
    };
    let has = |code: &str, file: &str, what: &str| {
        let m = message(code, file);
        assert!(m.contains(what), "{code} {file}: {m}");
    };
    has("bad-version", "01-build-meta", "'+' is not allowed in tags");
    has("bad-version", "01-long-version", "at most 128");
    has("bad-version", "01-float", "found the number 1.2");
    has(
        "bad-version",
        "01-float",
        r#":version must be a string like \"1.2.0\""#,
    );
    has("unclosed-variable", "01-unclosed", "unclosed ${");
    has("unknown-instruction", "01-unknown", "did you mean RUN?");
    has("bad-name", "01-a_-b", "\\\"a_-b\\\"");
}

// ---------------------------------------------------------------------------------------------
// Files cip must not read: symlinks out of the project, FIFOs, devices, huge files.
// ---------------------------------------------------------------------------------------------

/// A project in a temporary directory: `contexts/DIR/FILE` = content for each entry.
fn scratch_project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let path = tmp.path().join("contexts").join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    tmp
}

/// Runs cip with `env`, killing it after `limit` (a hang is a failure, not a stuck test run).
/// Returns the exit code and its stdout and stderr as bytes.
fn cip_timed(
    args: &[&str],
    env: &[(&str, &str)],
    limit: std::time::Duration,
) -> (i32, Vec<u8>, Vec<u8>) {
    let out_dir = tempfile::tempdir().unwrap();
    let (out, err) = (out_dir.path().join("out"), out_dir.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_cip"))
        .args(args)
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("run cip");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "cip {args:?} still running after {limit:?}; stderr so far:\n{}",
                String::from_utf8_lossy(&std::fs::read(&err).unwrap())
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    (
        status.code().unwrap_or(-1),
        std::fs::read(&out).unwrap(),
        std::fs::read(&err).unwrap(),
    )
}

const LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn metadata_symlinked_out_of_the_project_is_not_read_or_echoed() {
    // Each metadata file in turn is a link to cip's own environment, which holds a password.
    let cases = [
        ("VERSION", "contexts/00-a/VERSION"),
        ("PLATFORMS_OVERRIDE", "contexts/00-a/PLATFORMS_OVERRIDE"),
        ("info.edn", "contexts/00-a/info.edn"),
        ("Dockerfile", "contexts/00-a/Dockerfile"),
        // What the context digest and the builder leave out: a link out of the project would make
        // the digest follow a file cip must not read.
        (".dockerignore", "contexts/00-a/.dockerignore"),
        (
            "Dockerfile.dockerignore",
            "contexts/00-a/Dockerfile.dockerignore",
        ),
    ];
    for (file, rel) in cases {
        let mut files = vec![("00-a/Dockerfile", "FROM scratch\n")];
        if file == "info.edn" {
            files.push(("00-a/info.edn", "{:version \"1.0.0\"}\n"));
        } else {
            files.push(("00-a/VERSION", "1.0.0\n"));
        }
        let tmp = scratch_project(&files);
        let link = tmp.path().join(rel);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/proc/self/environ", &link).unwrap();
        let dir = tmp.path().to_str().unwrap();
        let env = [("CIP_PASSWORD", "hunter2-secret")];
        let runs = [
            vec!["check", "-C", dir],
            vec!["check", "--json", "-C", dir],
            // The building commands load the project the same way, before any registry is asked.
            vec!["publish", "--remote-registry", "127.0.0.1:9", "-C", dir],
        ];
        for args in runs {
            let (code, out, err) = cip_timed(&args, &env, LIMIT);
            let all = [out, err].concat();
            let text = String::from_utf8_lossy(&all);
            assert_ne!(code, 0, "{file} {args:?}: {text}");
            assert!(!contains(&all, b"hunter2"), "{file} {args:?}: {text}");
            assert!(
                text.contains("is a symlink to /proc/self/environ, which is outside the project"),
                "{file} {args:?}: {text}"
            );
            assert!(text.contains("outside-project"), "{file} {args:?}: {text}");
        }
    }
}

#[test]
fn fifos_devices_and_huge_files_are_refused_without_hanging() {
    let ok = [
        ("00-a/Dockerfile", "FROM scratch\n"),
        ("00-a/info.edn", "{:version \"1.0.0\"}\n"),
    ];
    let mkfifo = |p: &Path| {
        let _ = std::fs::remove_file(p);
        let status = Command::new("mkfifo").arg(p).status().unwrap();
        assert!(status.success());
    };
    let mknod_zero = |p: &Path| {
        let _ = std::fs::remove_file(p);
        // The same device as /dev/zero, inside the project (cip runs as root here).
        let status = Command::new("mknod").arg(p).args(["c", "1", "5"]).status();
        assert!(status.unwrap().success(), "mknod {}", p.display());
    };
    let link_zero = |p: &Path| {
        let _ = std::fs::remove_file(p);
        std::os::unix::fs::symlink("/dev/zero", p).unwrap();
    };
    let huge = |size: usize| move |p: &Path| std::fs::write(p, " ".repeat(size)).unwrap();
    type Make<'a> = &'a dyn Fn(&Path);
    let cases: [(&str, Make, &str, &str); 7] = [
        (
            "info.edn",
            &mkfifo,
            "not-a-file",
            "is not a regular file (a FIFO",
        ),
        (
            "Dockerfile",
            &mkfifo,
            "not-a-file",
            "is not a regular file (a FIFO",
        ),
        (
            "info.edn",
            &mknod_zero,
            "not-a-file",
            "is not a regular file (a character device)",
        ),
        (
            "Dockerfile",
            &mknod_zero,
            "not-a-file",
            "is not a regular file (a character device)",
        ),
        (
            "info.edn",
            &link_zero,
            "outside-project",
            "is a symlink to /dev/zero",
        ),
        (
            "info.edn",
            &huge((1 << 20) + 1),
            "too-large",
            "is larger than 1 MiB",
        ),
        (
            "Dockerfile",
            &huge((4 << 20) + 1),
            "too-large",
            "is larger than 4 MiB",
        ),
    ];
    for (file, make, code, message) in cases {
        let tmp = scratch_project(&ok);
        make(&tmp.path().join("contexts/00-a").join(file));
        let dir = tmp.path().to_str().unwrap();
        let (exit, out, err) = cip_timed(&["check", "--json", "-C", dir], &[], LIMIT);
        let doc: Value = serde_json::from_slice(&out)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&err)));
        assert_eq!(exit, 1, "{file}: {doc}");
        let p = &doc["problems"][0];
        assert_eq!(p["code"], code, "{file}: {doc}");
        assert!(
            p["message"].as_str().unwrap().contains(message),
            "{file}: {doc}"
        );
        assert!(p["file"].as_str().unwrap().ends_with(file), "{file}: {doc}");
    }
}

#[test]
fn control_characters_never_reach_the_terminal_raw() {
    // A value too long to be useful in a message is quoted short.
    let long_from = format!("ARG REGISTRY\nFROM ${{REGISTRY}}/{}:1\n", "y".repeat(1000));
    let tmp = scratch_project(&[
        (
            "00-a/Dockerfile",
            "ARG REGISTRY\nFROM ${REGISTRY}/\x1b]0;title\x07:1\n",
        ),
        ("00-a/info.edn", "{:version \"1.0.0\"}\n"),
        ("01-b/Dockerfile", "FROM scratch\nRUN\x1b[2J true\n"),
        ("01-b/info.edn", "{:version \"1.0.0\x07\"}\n"),
        ("02-c/Dockerfile", &long_from),
        ("02-c/info.edn", "{:version \"1.0.0\"}\n"),
    ]);
    let dir = tmp.path().to_str().unwrap();
    for args in [vec!["check", "-C", dir], vec!["check", "--json", "-C", dir]] {
        let (code, out, err) = cip_timed(&args, &[], LIMIT);
        let all = [out, err].concat();
        let text = String::from_utf8_lossy(&all);
        assert_eq!(code, 1, "{text}");
        assert!(
            !all.contains(&0x1b) && !all.contains(&0x07),
            "{args:?}: {text:?}"
        );
        assert!(text.contains("unknown-image"), "{text}");
        assert!(text.contains("bad-version"), "{text}");
        assert!(text.contains("unknown-instruction"), "{text}");
        assert!(text.contains(&format!("{}...", "y".repeat(40))), "{text}");
        assert!(!text.contains(&"y".repeat(41)), "{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Builder capabilities: heredocs with a builder that cannot build them (buildah 1.28 here).
// ---------------------------------------------------------------------------------------------

/// The version of the buildah installed here, e.g. `1.28.2`.
fn buildah_version() -> String {
    let out = Command::new("buildah").arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(2).unwrap().to_string()
}

#[test]
fn check_with_a_builder_reports_heredocs_it_cannot_build() {
    let version = buildah_version();
    assert!(
        version.starts_with("1.") && version.as_str() < "1.35",
        "{version}"
    );
    let ws = Workspace::new(&fixture("heredoc"));
    // Without --builder, check stays builder-agnostic: heredocs are fine, nothing is probed.
    let out = ws.cip(&["check"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(ws.buildah_calls().is_empty(), "{:?}", ws.buildah_calls());

    for builder in ["buildah", "auto"] {
        let out = ws.cip(&["check", "--builder", builder]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            stderr.contains("error[builder-lacks-heredocs]: ")
                && stderr.contains("contexts/01-heredoc/Dockerfile:4: "),
            "{stderr}"
        );
        assert!(stderr.contains(&format!("buildah {version}")), "{stderr}");
        assert!(stderr.contains("buildah 1.35+ / podman 5.0+"), "{stderr}");
        assert!(stderr.contains("1 error(s)"), "{stderr}");
    }

    let out = ws.cip(&["check", "--json", "--builder", "podman"]);
    let doc: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert!(
        doc["builder"].as_str().unwrap().starts_with("podman "),
        "{doc}"
    );
    let p = &doc["problems"][0];
    assert_eq!(p["code"], "builder-lacks-heredocs", "{doc}");
    assert_eq!(p["line"], 4, "{doc}");
    assert!(
        p["hint"]
            .as_str()
            .unwrap()
            .contains("buildah 1.35+ / podman 5.0+"),
        "{doc}"
    );
}

#[test]
fn check_with_docker_20_wants_a_syntax_line_for_heredocs() {
    // docker 20.10's BuildKit builds heredocs only with a `# syntax=` frontend, which it pulls.
    let dockerd = common::docker::TestDockerd::start();
    let host = dockerd.host();
    let env = [("DOCKER_HOST", host.as_str())];
    let ws = Workspace::new(&fixture("heredoc"));
    let out = ws.cip_env(&["check", "--json", "--builder", "docker"], &env);
    let doc: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(out.status.code(), Some(0), "{doc}");
    assert!(
        doc["builder"].as_str().unwrap().starts_with("docker 20.10"),
        "{doc}"
    );
    let p = &doc["problems"][0];
    assert_eq!(
        (&p["severity"], &p["code"]),
        (&"warning".into(), &"frontend-pull".into()),
        "{doc}"
    );
    assert!(
        p["message"]
            .as_str()
            .unwrap()
            .contains("docker/dockerfile:1.4.1"),
        "{doc}"
    );

    // Without the syntax line, the built-in frontend cannot parse them.
    let dockerfile = ws.context("01-heredoc").join("Dockerfile");
    let text_now = std::fs::read_to_string(&dockerfile).unwrap();
    let without = text_now.replace("# syntax=docker/dockerfile:1.4.1\n", "");
    std::fs::write(&dockerfile, without).unwrap();
    let out = ws.cip_env(&["check", "--builder", "docker"], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr.contains("contexts/01-heredoc/Dockerfile:3: "),
        "{stderr}"
    );
    assert!(stderr.contains("docker 20.10"), "{stderr}");
    assert!(
        stderr.contains("# syntax=docker/dockerfile:1.4"),
        "{stderr}"
    );
}

/// Appends a heredoc RUN to a context's Dockerfile; returns the line it starts on.
fn add_heredoc(ws: &Workspace, dir: &str) -> usize {
    let path = ws.context(dir).join("Dockerfile");
    let mut text = std::fs::read_to_string(&path).unwrap();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let line = text.lines().count() + 1;
    text.push_str("RUN <<EOF\necho heredoc > /heredoc.txt\nEOF\n");
    std::fs::write(&path, text).unwrap();
    line
}

#[test]
fn build_refuses_heredocs_before_any_build_and_only_for_what_it_builds() {
    let ws = Workspace::demo();
    let clean = std::fs::read_to_string(ws.context("02-app").join("Dockerfile")).unwrap();
    let line = add_heredoc(&ws, "02-app");
    let build = ["build", "--local-registry", "localhost:5999", "--json"];
    let out = ws.cip(&build);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        stderr.contains(&format!("contexts/02-app/Dockerfile:{line}: ")),
        "{stderr}"
    );
    assert!(stderr.contains("buildah 1.35+ / podman 5.0+"), "{stderr}");
    assert!(stderr.contains("nothing was built"), "{stderr}");
    assert_eq!(ws.builds(), 0, "{:?}", ws.buildah_calls());

    // Without heredocs the same tree builds as before.
    std::fs::write(ws.context("02-app").join("Dockerfile"), clean).unwrap();
    let out = ws.cip(&build);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(ws.builds(), 4);

    // A heredoc in an image that is not rebuilt does not matter: only app is built here.
    add_heredoc(&ws, "00-busybox");
    let forced = [&build[..], &["--force", "app", "--allow-drift"]].concat();
    let out = ws.cip(&forced);
    assert!(out.status.success(), "{}", text(&out));
    let built: Vec<_> = results(&out)
        .into_iter()
        .filter(|r| r.1 == "built")
        .map(|r| r.0)
        .collect();
    assert_eq!(built, ["app"], "{}", text(&out));
    assert_eq!(ws.builds(), 5);
}

#[test]
fn heredocs_a_builder_cannot_build_are_one_error_listing_every_file_as_it_is_written() {
    let ws = Workspace::demo();
    let app = add_heredoc(&ws, "02-app");
    // Another context opens its heredoc with `<<-`: the message quotes that, not `<<EOF`.
    let path = ws.context("00-busybox").join("Dockerfile");
    let mut text_now = std::fs::read_to_string(&path).unwrap();
    let busybox = text_now.lines().count() + 1;
    text_now.push_str("RUN <<-EOT\n\techo tabs > /tabs.txt\n\tEOT\n");
    std::fs::write(&path, text_now).unwrap();
    let out = ws.cip(&["build", "--local-registry", "localhost:5999"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        stderr.matches("use heredocs").count(),
        1,
        "one message for all files: {stderr}"
    );
    assert_eq!(
        stderr.matches("builder-lacks-heredocs").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("2 Dockerfiles use heredocs, which buildah 1.28"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "contexts/00-busybox/Dockerfile:{busybox}: `<<-EOT`"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("contexts/02-app/Dockerfile:{app}: `<<EOF`")),
        "{stderr}"
    );
    for way in [
        "docker daemon 23.0+",
        "buildah 1.35+ / podman 5.0+",
        "rewrite the heredocs",
    ] {
        assert!(stderr.contains(way), "{way}: {stderr}");
    }
    assert_eq!(ws.builds(), 0);
}

#[test]
fn docker_without_its_daemon_says_to_start_the_daemon() {
    let ws = Workspace::demo();
    let out = ws.cip_env(
        &[
            "build",
            "--builder",
            "docker",
            "--local-registry",
            "localhost:5999",
        ],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr.contains("the daemon does not answer"), "{stderr}");
    assert!(
        stderr.contains("The docker client is installed; start the docker daemon"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// Builder failures caused by the machine get a hint.
// ---------------------------------------------------------------------------------------------

#[test]
fn hybrid_cgroups_failure_names_the_fix() {
    // The real condition (a host with hybrid cgroups v1/v2) cannot be made here: a buildah on PATH
    // that fails its builds with buildah's own message stands in for it; every other call is real.
    let ws = Workspace::demo();
    let bin = tempfile::tempdir().unwrap();
    common::write_executable(
        &bin.path().join("buildah"),
        "#!/bin/sh\ncase \" $* \" in *\" bud \"*|*\" build \"*)\n\
         echo 'STEP 1/3: FROM scratch' >&2\n\
         echo 'error running container: cgroups in hybrid mode not supported' >&2\n\
         exit 1;;\nesac\nexec /usr/bin/buildah \"$@\"\n",
    );
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let out = ws.cip_env(
        &["build", "--local-registry", "localhost:5999"],
        &[("PATH", path.as_str())],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        stderr.contains("cgroups in hybrid mode not supported"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: set BUILDAH_ISOLATION=chroot (or pass --isolation chroot after --)"),
        "{stderr}"
    );
}

#[test]
fn info_edn_with_a_byte_order_mark_is_read_and_kept_by_a_bump() {
    let tmp = scratch_project(&[
        ("00-base/Dockerfile", "FROM scratch\n"),
        (
            "00-base/info.edn",
            "\u{feff}{:version \"1.0.0\" :owner \"me\"}\n",
        ),
        (
            "01-child/Dockerfile",
            "ARG REGISTRY\nFROM ${REGISTRY}/base:1.0.0\n",
        ),
        (
            "01-child/info.edn",
            "\u{feff};; child\n{:version \"2.0.0\"}\n",
        ),
    ]);
    let dir = tmp.path().to_str().unwrap();
    let (code, _, err) = cip_timed(&["check", "-C", dir], &[], LIMIT);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    let (code, _, err) = cip_timed(&["bump", "base", "minor", "-C", dir], &[], LIMIT);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    let read = |f: &str| std::fs::read_to_string(tmp.path().join("contexts").join(f)).unwrap();
    assert_eq!(
        read("00-base/info.edn"),
        "\u{feff}{:version \"1.1.0\" :owner \"me\"}\n"
    );
    assert_eq!(
        read("01-child/info.edn"),
        "\u{feff};; child\n{:version \"2.0.1\"}\n"
    );
    assert_eq!(
        read("01-child/Dockerfile"),
        "ARG REGISTRY\nFROM ${REGISTRY}/base:1.1.0\n"
    );
}

/// podman's `Containerfile` is built where there is no `Dockerfile`, and `:dockerfile` in info.edn
/// names another file; both with real builds, and both wrong uses are check errors.
#[test]
fn containerfiles_and_named_dockerfiles_are_built() {
    let reg = common::TestRegistry::start();
    let ws = Workspace::demo();
    let busybox = ws.context("00-busybox");
    fs::rename(busybox.join("Dockerfile"), busybox.join("Containerfile")).unwrap();
    let hello = ws.context("01-hello");
    fs::write(
        hello.join("Dockerfile.prod"),
        "ARG REGISTRY\nFROM ${REGISTRY}/busybox:1.0.0\nRUN echo prod > /hello.txt\n",
    )
    .unwrap();
    // A decoy that cannot build: the run must not use it.
    fs::write(hello.join("Dockerfile"), "FROM scratch\nRUN false\n").unwrap();
    fs::write(
        hello.join("info.edn"),
        "{:version \"1.0.0\" :platforms #{\"linux/amd64\" \"linux/arm64\"}\n :dockerfile \"Dockerfile.prod\"}\n",
    )
    .unwrap();
    let out = ws.cip(&["publish-locally", "--local-registry", &reg.addr(), "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        results(&out).iter().all(|r| r.1 == "built"),
        "{}",
        text(&out)
    );
    let calls = ws.buildah_calls().join("\n");
    assert!(calls.contains("00-busybox/Containerfile"), "{calls}");
    assert!(calls.contains("01-hello/Dockerfile.prod"), "{calls}");
    assert!(!calls.contains("01-hello/Dockerfile "), "{calls}");

    for (value, code) in [
        ("\"../outside\"", "bad-dockerfile-key"),
        ("42", "bad-dockerfile-key"),
        ("\"Missing.Dockerfile\"", "missing-dockerfile"),
    ] {
        fs::write(
            hello.join("info.edn"),
            format!("{{:version \"1.0.0\"\n :dockerfile {value}}}\n"),
        )
        .unwrap();
        let dir = ws.project();
        let (exit, stdout, _) = cip(&["check", "--json", "-C", dir.to_str().unwrap()]);
        assert_eq!(exit, 1, "{value}: {stdout}");
        let doc: Value = serde_json::from_str(&stdout).unwrap();
        let found = doc["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["code"] == code)
            .unwrap_or_else(|| panic!("{value}: no {code} in {doc}"));
        if code == "bad-dockerfile-key" {
            assert_eq!(found["line"], 2, "{value}: {found}");
        } else {
            assert!(
                found["message"]
                    .as_str()
                    .unwrap()
                    .contains("Missing.Dockerfile"),
                "{found}"
            );
        }
    }
}

/// Every subcommand of `cip --help`, by name.
fn subcommands() -> Vec<String> {
    let (_, help, _) = cip(&["--help"]);
    let section = help
        .split("Commands:")
        .nth(1)
        .expect("a Commands section")
        .split("\n\n")
        .next()
        .unwrap();
    section
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn completions_and_the_manual_page_list_every_subcommand() {
    let all = subcommands();
    assert!(all.len() >= 14, "{all:?}");
    for shell in ["bash", "zsh", "fish"] {
        let (code, script, err) = cip(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        for name in &all {
            assert!(
                script.contains(name.as_str()),
                "{shell} completion lacks {name}"
            );
        }
    }
    let (code, page, err) = cip(&["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(page.contains(".TH cip 1"), "{page}");
    for name in &all {
        let title = format!(".SH \"CIP {}\"", name.to_uppercase());
        assert!(
            page.contains(&title),
            "the manual page has no {title} section"
        );
    }
    let (code, _, err) = cip(&["completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is a usage error: {err}");
}

/// docs/exit-codes.md lists every code cip uses, and the common ones are what cip exits with.
#[test]
fn exit_codes_are_documented_and_used() {
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/exit-codes.md"))
        .unwrap();
    for code in ["`0`", "`1`", "`2`", "`130`", "`143`"] {
        assert!(
            doc.contains(&format!("| {code} |")),
            "{code} is not documented"
        );
    }
    let valid = fixture("valid");
    let invalid = fixture("order");
    assert_eq!(cip(&["check", "-C", valid.to_str().unwrap()]).0, 0);
    assert_eq!(cip(&["check", "-C", invalid.to_str().unwrap()]).0, 1);
    assert_eq!(cip(&["check", "--no-such-flag"]).0, 2);
    assert_eq!(cip(&["no-such-command"]).0, 2);
    assert_eq!(
        cip(&["publish", "--jobs", "many", "--remote-registry", "r"]).0,
        2
    );
}

/// `-C` goes before or after the subcommand, and without it cip finds the project from inside
/// it (its contexts/ or a context), as git finds its repository.
#[test]
fn the_project_is_found_from_inside_it_and_c_goes_anywhere() {
    let valid = fixture("valid");
    let run_in = |dir: &Path, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_cip"))
            .args(args)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let elsewhere = tempfile::tempdir().unwrap();
    let v = valid.to_str().unwrap();
    assert_eq!(run_in(elsewhere.path(), &["-C", v, "check"]).0, Some(0));
    assert_eq!(run_in(elsewhere.path(), &["check", "-C", v]).0, Some(0));
    assert_eq!(
        run_in(elsewhere.path(), &["--project-dir", v, "graph"]).0,
        Some(0)
    );
    for inside in ["", "contexts", "contexts/00-base"] {
        let (code, err) = run_in(&valid.join(inside), &["check"]);
        assert_eq!(code, Some(0), "from {inside:?}: {err}");
    }
    let (code, err) = run_in(elsewhere.path(), &["check"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("-C DIR"),
        "says how to point at a project: {err}"
    );
}
