//! The documented pipelines (docs/ci/) run as written, by the executor of
//! tests/it/common/pipeline.rs, on a small project repository (scratch + busybox, a git
//! submodule a context COPYs) against a registry with htpasswd authentication; cip is installed
//! in every job from the release tarball `scripts/release` makes of the binary under test
//! (`CIP_RELEASE_URL=file://...`), each job with its own /usr/local (a mount namespace) and its own
//! dockerd (20.10, BuildKit). See `pipeline::REPLACED` for the steps that cannot run here.
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::common;
use common::pipeline::{self, Repo, Run, Setup, Status};
use common::{RegistryOptions, TestRegistry};

const USER: &str = "ci";
const PASSWORD: &str = "s3cret-pipeline-pw";

/// The release tarball of the cip under test, from the run's one `scripts/release`
/// ([`common::release_artifacts`]), and its version.
fn release() -> &'static (PathBuf, String) {
    static INFO: OnceLock<(PathBuf, String)> = OnceLock::new();
    INFO.get_or_init(|| {
        let (out, _) = common::release_artifacts();
        let tarball = fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with("-linux.tar.gz"))
            .expect("scripts/release made a tarball");
        (tarball, env!("CARGO_PKG_VERSION").to_string())
    })
}

/// The project: busybox (scratch + static busybox), hello (COPYs a file of the `greeting`
/// submodule; its RUN fails on aarch64 while its info.edn says `:broken-on-arm64 true`), app.
/// The project is in `root/sub`, the pipelines at the root.
fn project(root: &Path, sub: &str, heredocs: bool) {
    let ctx = |name: &str| {
        let d = root.join(sub).join("contexts").join(name);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("info.edn"), "{:version \"1.0.0\"}\n").unwrap();
        d
    };
    let base = ctx("00-busybox");
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
    let hello = ctx("01-hello");
    // info.edn is read through a bind mount (not copied): the image holds only the greeting.
    // cip's context digest leaves info.edn out, so the fix of the failure below leaves the other
    // platform's stage current, as a retry after a flaky runner would.
    let mut dockerfile = String::from(
        "ARG REGISTRY\nFROM ${REGISTRY}/busybox:1.0.0\nCOPY greeting/hello.txt /hello.txt\n\
         RUN --mount=type=bind,source=info.edn,target=/tmp/info.edn \\\n    \
         if [ \"$(uname -m)\" = aarch64 ] && grep -q ':broken-on-arm64 true' /tmp/info.edn; then \
         echo 'hello: broken on aarch64' >&2; exit 1; fi\n",
    );
    if heredocs {
        dockerfile.push_str("RUN <<EOF\necho from a heredoc > /heredoc.txt\nEOF\n");
    }
    fs::write(hello.join("Dockerfile"), dockerfile).unwrap();
    let app = ctx("02-app");
    fs::write(
        app.join("Dockerfile"),
        "ARG REGISTRY\nFROM ${REGISTRY}/hello:1.0.0\nRUN cat /hello.txt > /app.txt\n",
    )
    .unwrap();
    // The pipelines where the docs say to put them.
    let dir = root;
    let ci = common::repo_root().join("docs/ci");
    fs::create_dir_all(dir.join(".github/workflows")).unwrap();
    fs::create_dir_all(dir.join(".gitlab")).unwrap();
    fs::copy(
        ci.join("github-actions.yml"),
        dir.join(".github/workflows/images.yml"),
    )
    .unwrap();
    fs::copy(ci.join("gitlab-ci.yml"), dir.join(".gitlab-ci.yml")).unwrap();
    fs::copy(
        ci.join("gitlab-ci-jobs.yml"),
        dir.join(".gitlab/cip-jobs.yml"),
    )
    .unwrap();
}

fn repo(heredocs: bool) -> Repo {
    repo_in(".", heredocs)
}

/// A repository whose project is in `sub` (`.`: at the root).
fn repo_in(sub: &str, heredocs: bool) -> Repo {
    let submodule = format!("{sub}/contexts/01-hello/greeting");
    let submodule = submodule.trim_start_matches("./");
    Repo::new(
        |d| project(d, sub, heredocs),
        (submodule, &[("hello.txt", "hello from a submodule\n")]),
    )
}

fn registry() -> TestRegistry {
    TestRegistry::start_with(RegistryOptions {
        tls: false,
        auth: Some((USER.into(), PASSWORD.into())),
    })
}

/// The index `image` points to, read with skopeo and the registry's credentials.
fn index(reg: &TestRegistry, image: &str) -> Option<Value> {
    let creds = format!("{USER}:{PASSWORD}");
    let out = common::skopeo_output(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &creds,
        &reg.docker_ref(image),
    ]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn assert_published(reg: &TestRegistry, images: &[&str], run: &Run) {
    for image in images {
        let idx = index(reg, image)
            .unwrap_or_else(|| panic!("{image} is not in the registry\n{}", run.logs()));
        assert_eq!(
            common::index_platforms(&idx),
            ["linux/amd64", "linux/arm64"],
            "{image}"
        );
    }
}

/// (name, result, built platforms) of a `--json` summary kept as an artifact.
fn summary(file: &Path) -> Vec<(String, String, Vec<String>)> {
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["result"].as_str().unwrap().to_string(),
                i["built"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

/// How one CI system's run is read: its job names and where its jobs keep the summaries.
struct Flavor {
    run: fn(&Setup) -> Run,
    /// The stage job of a platform slug, and the path of its summary in the job's artifacts.
    stage_job: fn(&str) -> String,
    summary: fn(&str) -> String,
    merge_job: &'static str,
    /// The jobs a pipeline with everything to do starts, and one with nothing to do.
    all: &'static [&'static str],
    none: &'static [&'static str],
    /// The jobs a re-run of the arm64 platform alone starts.
    arm64_only: &'static [&'static str],
}

const GITHUB: Flavor = Flavor {
    run: |s| pipeline::run_github(s, ".github/workflows/images.yml"),
    stage_job: |slug| format!("stage {}", slug.replacen('-', "/", 1)),
    summary: |slug| format!("logs-{slug}/summary-{slug}.json"),
    merge_job: "merge",
    all: &["merge", "plan", "stage linux/amd64", "stage linux/arm64"],
    none: &["plan"],
    arm64_only: &["merge", "plan", "stage linux/arm64"],
};

const GITLAB: Flavor = Flavor {
    run: |s| pipeline::run_gitlab(s, ".gitlab-ci.yml"),
    stage_job: |slug| format!("images/stage {}", slug.replacen('-', "/", 1)),
    summary: |slug| format!("summary-{slug}.json"),
    merge_job: "images/merge",
    all: &[
        "images",
        "images/merge",
        "images/stage linux/amd64",
        "images/stage linux/arm64",
        "plan",
    ],
    none: &["images", "images/nothing to build", "plan"],
    arm64_only: &["images", "images/merge", "images/stage linux/arm64", "plan"],
};

/// The images a stage job built, from the summary it kept.
fn built_by(f: &Flavor, run: &Run, slug: &str) -> Vec<String> {
    let job = run.job(&(f.stage_job)(slug));
    let file = job.artifacts.join((f.summary)(slug));
    let mut v: Vec<String> = summary(&file)
        .into_iter()
        .filter(|(_, _, built)| !built.is_empty())
        .map(|(n, _, _)| n)
        .collect();
    v.sort();
    v
}

fn github_setup<'a>(repo: &'a Repo, reg: &TestRegistry) -> Setup<'a> {
    let (tarball, version) = release();
    Setup {
        repo,
        vars: BTreeMap::from([
            ("REGISTRY".into(), reg.addr()),
            (
                "CIP_RELEASE_URL".into(),
                format!("file://{}", tarball.display()),
            ),
            ("CIP_VERSION".into(), version.clone()),
            // No fallback can hide a broken tarball install: no toolchain on the jobs' PATH.
            ("CIP_GIT_URL".into(), "file:///nonexistent".into()),
        ]),
        secrets: BTreeMap::from([
            ("REGISTRY_USERNAME".into(), USER.into()),
            ("REGISTRY_PASSWORD".into(), PASSWORD.into()),
        ]),
    }
}

fn assert_ok(run: &Run) {
    for j in &run.jobs {
        assert_ne!(j.status, Status::Failure, "{}", run.logs());
    }
}

fn cip_in(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_cip"))
        .args(args)
        .arg("-C")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn edit_info(repo: &Repo, dir: &str, f: impl FnOnce(&str) -> String) {
    let path = repo.work().join("contexts").join(dir).join("info.edn");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, f(&text)).unwrap();
}

/// No job leaks the password into its log, and the machine's /usr/local got no cip.
fn assert_clean(run: &Run) {
    for j in &run.jobs {
        assert!(!j.log.contains(PASSWORD), "{} printed the password", j.name);
    }
    assert!(
        !Path::new("/usr/local/bin/cip").exists() || installed_before(),
        "a job installed cip into the machine's /usr/local"
    );
}

/// Whether /usr/local/bin/cip existed before these tests ran (then it is not theirs).
fn installed_before() -> bool {
    static BEFORE: OnceLock<bool> = OnceLock::new();
    *BEFORE.get_or_init(|| Path::new("/usr/local/bin/cip").exists())
}

/// First publish, after `cip bump hello patch`, no change, one platform failing, then fixed.
fn scenarios(f: &Flavor, setup: &Setup, reg: &TestRegistry) {
    let repo = setup.repo;
    // 1. First publish: every image at both platforms.
    let run = (f.run)(setup);
    assert_ok(&run);
    assert_clean(&run);
    assert_eq!(run.started(), f.all, "{}", run.logs());
    assert_published(reg, &["busybox:1.0.0", "hello:1.0.0", "app:1.0.0"], &run);
    assert_eq!(
        built_by(f, &run, "linux-arm64"),
        ["app", "busybox", "hello"]
    );
    assert!(walk(&run.job(f.merge_job).artifacts)
        .iter()
        .any(|p| p.ends_with("summary-merge.json")));

    // 2. `cip bump hello patch`, committed: hello and its descendant app, nothing else.
    cip_in(&repo.work(), &["bump", "hello", "patch"]);
    repo.commit("bump hello");
    let run = (f.run)(setup);
    assert_ok(&run);
    for slug in ["linux-amd64", "linux-arm64"] {
        assert_eq!(built_by(f, &run, slug), ["app", "hello"], "{}", run.logs());
    }
    assert_published(reg, &["hello:1.0.1", "app:1.0.1"], &run);

    // 3. No change: the plan says so, no stage job starts.
    let run = (f.run)(setup);
    assert_ok(&run);
    assert_eq!(run.started(), f.none, "{}", run.logs());

    // 4. hello breaks on arm64 (with a bump): amd64 stages, arm64 fails, nothing is merged.
    cip_in(&repo.work(), &["bump", "hello", "patch"]);
    edit_info(repo, "01-hello", |t| {
        t.replace('}', " :broken-on-arm64 true}")
    });
    repo.commit("hello 1.0.2, broken on arm64");
    let run = (f.run)(setup);
    let amd = run.job(&(f.stage_job)("linux-amd64"));
    assert_eq!(amd.status, Status::Success, "{}", run.logs());
    let arm = run.job(&(f.stage_job)("linux-arm64"));
    assert_eq!(arm.status, Status::Failure, "{}", run.logs());
    assert!(
        arm.log.contains("broken on aarch64") || log_dir_says(arm, "broken on aarch64"),
        "{}",
        arm.log
    );
    assert_eq!(run.job(f.merge_job).status, Status::Skipped);
    assert!(index(reg, "hello:1.0.2").is_none());

    // 5. Fixed: the re-run starts arm64 alone (amd64 is staged from the same contexts).
    edit_info(repo, "01-hello", |t| {
        t.replace(" :broken-on-arm64 true", "")
    });
    repo.commit("hello builds on arm64 again");
    let run = (f.run)(setup);
    assert_ok(&run);
    assert_eq!(run.started(), f.arm64_only, "{}", run.logs());
    assert_eq!(built_by(f, &run, "linux-arm64"), ["app", "hello"]);
    assert_published(reg, &["hello:1.0.2", "app:1.0.2"], &run);
    assert_clean(&run);

    // The registry's garbage collection after --prune-stage (docs/ci.md), as Debian names it:
    // what the final indexes hold stays.
    let config = reg.storage_dir().parent().unwrap().join("config.yml");
    common::run_ok(
        Command::new("docker-registry")
            .arg("garbage-collect")
            .arg(&config),
    );
    assert_published(reg, &["busybox:1.0.0", "hello:1.0.2", "app:1.0.2"], &run);
}

#[test]
fn github_workflow_publishes_bumps_skips_and_reruns_only_the_failed_platform() {
    installed_before();
    let reg = registry();
    let repo = repo(false);
    scenarios(&GITHUB, &github_setup(&repo, &reg), &reg);
}

#[test]
fn gitlab_pipeline_publishes_bumps_skips_and_reruns_only_the_failed_platform() {
    installed_before();
    let reg = registry();
    let repo = repo(false);
    scenarios(&GITLAB, &gitlab_setup(&repo, &reg), &reg);
}

fn gitlab_setup<'a>(repo: &'a Repo, reg: &TestRegistry) -> Setup<'a> {
    let gh = github_setup(repo, reg);
    let mut vars = gh.vars;
    let registry = vars.remove("REGISTRY").unwrap();
    vars.insert("CIP_REGISTRY".into(), registry);
    Setup {
        repo,
        vars,
        secrets: BTreeMap::from([
            ("CIP_REGISTRY_USER".into(), USER.into()),
            ("CIP_REGISTRY_PASSWORD".into(), PASSWORD.into()),
        ]),
    }
}

/// Whether a builder log the job kept says `what`.
fn log_dir_says(job: &pipeline::Job, what: &str) -> bool {
    walk(&job.artifacts)
        .iter()
        .any(|f| fs::read_to_string(f).unwrap_or_default().contains(what))
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The plan job fails with the builder's capability message on a tree with heredocs (docker
/// 20.10 lacks them), and no other job starts; the scenarios above pass the plan without them.
fn plan_refuses_heredocs(f: &Flavor, setup: &Setup) {
    let run = (f.run)(setup);
    let plan = run.job("plan");
    assert_eq!(plan.status, Status::Failure, "{}", run.logs());
    assert!(plan.log.contains("heredocs"), "{}", plan.log);
    assert!(plan.log.contains("docker 20.10"), "{}", plan.log);
    assert_eq!(run.started(), ["plan"], "{}", run.logs());
}

#[test]
fn github_plan_fails_on_heredocs_docker_20_10_cannot_build_before_any_stage_job() {
    let reg = registry();
    let repo = repo(true);
    plan_refuses_heredocs(&GITHUB, &github_setup(&repo, &reg));
}

#[test]
fn gitlab_plan_fails_on_heredocs_docker_20_10_cannot_build_before_any_stage_job() {
    let reg = registry();
    let repo = repo(true);
    plan_refuses_heredocs(&GITLAB, &gitlab_setup(&repo, &reg));
}

/// A project below the repository root (`images/`), named by the CIP_PROJECT_DIR variable.
fn below_the_root(f: &Flavor, setup: &mut Setup, reg: &TestRegistry) {
    setup.vars.insert("CIP_PROJECT_DIR".into(), "images".into());
    let run = (f.run)(setup);
    assert_ok(&run);
    assert_eq!(run.started(), f.all, "{}", run.logs());
    assert_published(reg, &["busybox:1.0.0", "hello:1.0.0", "app:1.0.0"], &run);
    assert_eq!(
        built_by(f, &run, "linux-amd64"),
        ["app", "busybox", "hello"]
    );
}

#[test]
fn github_workflow_publishes_a_project_below_the_repository_root() {
    let reg = registry();
    let repo = repo_in("images", false);
    below_the_root(&GITHUB, &mut github_setup(&repo, &reg), &reg);
}

#[test]
fn gitlab_pipeline_publishes_a_project_below_the_repository_root() {
    let reg = registry();
    let repo = repo_in("images", false);
    below_the_root(&GITLAB, &mut gitlab_setup(&repo, &reg), &reg);
}

#[test]
fn the_executor_reads_expressions_and_step_outputs_as_github_does() {
    use pipeline::expr::{condition, interpolate, Ctx};
    let contexts = serde_json::json!({
        "matrix": {"platform": "linux/arm64", "runner": null},
        "needs": {"plan": {"outputs": {"any": "true", "matrix": "{\"include\":[{\"a\":1}]}"}}},
        "vars": {}, "secrets": {"S": "x"}, "env": {}, "steps": {}, "github": {},
    });
    let ok = Ctx {
        contexts: &contexts,
        ok: true,
    };
    let failed = Ctx {
        contexts: &contexts,
        ok: false,
    };
    assert_eq!(
        interpolate("${{ matrix.runner || 'ubuntu-24.04' }}", &ok),
        "ubuntu-24.04"
    );
    assert_eq!(
        interpolate("stage ${{ matrix.platform }}", &ok),
        "stage linux/arm64"
    );
    assert_eq!(
        interpolate("${{ fromJSON(needs.plan.outputs.matrix) }}", &ok)["include"][0]["a"],
        1
    );
    assert_eq!(
        interpolate("${{ vars.MISSING || '/usr/local' }}", &ok),
        "/usr/local"
    );
    assert!(condition(Some("needs.plan.outputs.any == 'true'"), &ok));
    assert!(!condition(
        Some("needs.plan.outputs.any == 'true'"),
        &failed
    ));
    assert!(condition(Some("always()"), &failed));
    assert!(!condition(None, &failed));
    let out = pipeline::parse_output("matrix={\"include\":[]}\nany=false\nlong<<EOF\na\nb\nEOF\n");
    assert_eq!(out["any"], "false");
    assert_eq!(out["matrix"], "{\"include\":[]}");
    assert_eq!(out["long"], "a\nb");
    // Every replaced step says why.
    assert!(pipeline::REPLACED.iter().all(|(_, why)| why.len() > 20));
}

/// The install lines of both pipelines, run as written: a URL prefix with CIP_VERSION picks the
/// tarball of this machine's architecture; a tarball of another architecture (or none) falls
/// back to `cargo install --git` and says so (here without a toolchain, so it fails).
#[test]
fn the_install_lines_take_a_prefix_or_a_tarball_and_else_fall_back_to_cargo_install_git() {
    let (tarball, version) = release();
    let wf = pipeline::yaml(&common::repo_root().join("docs/ci/github-actions.yml"));
    let github = wf["jobs"]["plan"]["steps"][1]["run"]
        .as_str()
        .unwrap()
        .to_string();
    let jobs = pipeline::yaml(&common::repo_root().join("docs/ci/gitlab-ci-jobs.yml"));
    let gitlab = jobs[".cip-install"]["before_script"][1]
        .as_str()
        .unwrap()
        .to_string();
    let arch = String::from_utf8(Command::new("uname").arg("-m").output().unwrap().stdout).unwrap();
    let other = if arch.trim() == "x86_64" {
        "aarch64"
    } else {
        "x86_64"
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix_url = format!("file://{}/", tarball.parent().unwrap().display());
    let foreign = format!("file:///releases/cip-{version}-{other}-linux.tar.gz");
    // Each install gets a prefix of its own: one named after something of the URL (its length)
    // could be the prefix of another that installed.
    let installs = std::cell::Cell::new(0);
    for script in [github, gitlab].iter() {
        let run = |url: &str| {
            installs.set(installs.get() + 1);
            let prefix = dir.path().join(format!("prefix-{}", installs.get()));
            Command::new("bash")
                .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("CIP_RELEASE_URL", url)
                .env("CIP_VERSION", version)
                .env("CIP_GIT_URL", "file:///nonexistent/cip")
                .env("CIP_INSTALL_PREFIX", &prefix)
                .env("GITHUB_PATH", dir.path().join("github_path"))
                .output()
                .map(|o| (o, prefix))
                .unwrap()
        };
        let (out, prefix) = run(&prefix_url);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let installed = common::run_ok(Command::new(prefix.join("bin/cip")).arg("--version"));
        assert!(installed.contains(version.as_str()), "{installed}");
        assert!(prefix.join("share/man/man1/cip.1").is_file());
        for url in [foreign.as_str(), ""] {
            let (out, prefix) = run(url);
            assert!(!out.status.success());
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(
                said.contains(&format!(
                    "no cip release tarball for {}: cargo install --git file:///nonexistent/cip",
                    arch.trim()
                )),
                "{said}"
            );
            assert!(!prefix.join("bin/cip").exists());
        }
    }
}
