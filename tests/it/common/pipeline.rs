//! A small executor of the documented pipelines (docs/ci/): it reads a GitHub workflow or a GitLab
//! CI file as the runners would, and runs each job's shell lines with bash in a fresh
//! `git clone` of a test project repository, with a private docker daemon per job (the runner's
//! own docker on GitHub, the `docker:dind` service on GitLab), the jobs of one stage at once.
//!
//! What it understands is what the files use; anything else panics, so a file that grows a
//! feature the executor does not model fails the test instead of being skipped silently.
//!
//! The steps that cannot run here, and what the executor does instead, are listed in
//! [`REPLACED`].
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Map, Value};

use super::docker::TestDockerd;

/// Steps of the files that cannot run on this machine, each with why and what replaces it.
pub const REPLACED: &[(&str, &str)] = &[
    (
        "actions/checkout",
        "GitHub's action fetches from github.com: the executor clones the test repository \
         itself, with submodules when `with.submodules` is `recursive` or `true`",
    ),
    (
        "docker/setup-qemu-action",
        "it pulls tonistiigi/binfmt from Docker Hub, unreachable here: the machine's binfmt \
         handler (qemu-aarch64, registered by scripts/setup-env) is required instead",
    ),
    (
        "actions/upload-artifact",
        "GitHub's artifact store: the executor copies `with.path` into the job's artifact dir",
    ),
    (
        "runs-on / image:",
        "no runner pool or job image here: every job runs on this machine (docker 20.10, \
         bash), its install lines run for real; image and runner labels are recorded only",
    ),
    (
        "services: docker:dind",
        "a dockerd the executor starts for the job (own data dir), given as DOCKER_HOST \
         (it replaces the file's tcp://docker:2375); the runner's docker on GitHub likewise",
    ),
    (
        "concurrency / resource_group",
        "the executor runs one pipeline at a time, so nothing waits on them here; the tests \
         check that both files declare them",
    ),
    (
        "trigger: include: artifact",
        "the child pipeline is read from the plan job's artifact dir and run by this executor",
    ),
];

/// Where scripts/setup-env installs check-jsonschema, whose ruamel.yaml reads the files.
const YAML_PYTHON: &str = "/opt/check-jsonschema/bin/python";

/// A YAML file as JSON (anchors and aliases resolved).
pub fn yaml(file: &Path) -> Value {
    let out = super::run_ok(Command::new(YAML_PYTHON).args([
        "-c",
        "import sys, json\nfrom ruamel.yaml import YAML\nprint(json.dumps(YAML(typ='safe').load(open(sys.argv[1]))))",
        file.to_str().unwrap(),
    ]));
    serde_json::from_str(&out).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The test project repository
// ---------------------------------------------------------------------------------------------

/// A git repository holding a project (and a submodule repository a context uses), committed
/// as a user would.
pub struct Repo {
    dir: tempfile::TempDir,
}

/// git with file:// submodules allowed (git refuses them by default since 2.38.1).
pub fn git(cwd: &Path, args: &[&str]) -> String {
    super::run_ok(
        Command::new("git")
            .current_dir(cwd)
            .args(["-c", "protocol.file.allow=always"])
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com"),
    )
}

impl Repo {
    /// A repository whose work tree is `fill`ed, with `submodule` (its own repository with
    /// `files`) at the path given, then committed.
    pub fn new(fill: impl FnOnce(&Path), submodule: (&str, &[(&str, &str)])) -> Repo {
        let dir = tempfile::Builder::new()
            .prefix("cip-pipeline-repo-")
            .tempdir()
            .unwrap();
        let sub = dir.path().join("submodule");
        fs::create_dir_all(&sub).unwrap();
        git(&sub, &["init", "-q", "-b", "main"]);
        for (name, content) in submodule.1 {
            fs::write(sub.join(name), content).unwrap();
        }
        git(&sub, &["add", "-A"]);
        git(&sub, &["commit", "-qm", "submodule"]);
        let work = dir.path().join("project");
        fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        fill(&work);
        git(
            &work,
            &["submodule", "add", "-q", sub.to_str().unwrap(), submodule.0],
        );
        let repo = Repo { dir };
        repo.commit("the project");
        repo
    }

    /// The work tree a test edits and commits (the origin the jobs clone).
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    pub fn commit(&self, message: &str) {
        git(&self.work(), &["add", "-A"]);
        git(&self.work(), &["commit", "-qm", message]);
    }

    /// A fresh clone at `dest`, with submodules when `submodules`.
    pub fn clone_into(&self, dest: &Path, submodules: bool) {
        let mut args = vec!["clone", "-q"];
        if submodules {
            args.push("--recurse-submodules");
        }
        let src = self.work();
        args.extend([src.to_str().unwrap(), dest.to_str().unwrap()]);
        git(dest.parent().unwrap(), &args);
    }
}

// ---------------------------------------------------------------------------------------------
// Running jobs
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    Failure,
    Skipped,
}

/// One job of a pipeline run.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub status: Status,
    /// What its lines printed, each step headed by `>>> STEP`.
    pub log: String,
    pub artifacts: PathBuf,
}

/// A pipeline run: its jobs in the order they finished, and where the run's files are.
pub struct Run {
    pub jobs: Vec<Job>,
    pub dir: tempfile::TempDir,
}

impl Run {
    pub fn job(&self, name: &str) -> &Job {
        self.jobs
            .iter()
            .find(|j| j.name == name)
            .unwrap_or_else(|| panic!("no job {name:?} in {:?}", self.names()))
    }

    pub fn names(&self) -> Vec<(String, Status)> {
        self.jobs
            .iter()
            .map(|j| (j.name.clone(), j.status))
            .collect()
    }

    /// The jobs that started (ran lines), by name.
    pub fn started(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .jobs
            .iter()
            .filter(|j| j.status != Status::Skipped)
            .map(|j| j.name.clone())
            .collect();
        v.sort();
        v
    }

    /// Every job's log, for assertion messages.
    pub fn logs(&self) -> String {
        self.jobs
            .iter()
            .map(|j| format!("=== job {} ({:?})\n{}\n", j.name, j.status, j.log))
            .collect()
    }
}

/// What the pipeline's jobs get from "the CI system": CI/CD variables or repository variables
/// and secrets, and the repository.
pub struct Setup<'a> {
    pub repo: &'a Repo,
    /// GitHub `vars.*` / GitLab CI/CD variables.
    pub vars: BTreeMap<String, String>,
    /// GitHub `secrets.*` (on GitLab, secrets are CI/CD variables too).
    pub secrets: BTreeMap<String, String>,
}

/// A job's private directory: the clone, HOME, TMPDIR, the install prefix, artifacts.
struct JobDir {
    root: PathBuf,
}

impl JobDir {
    fn new(run: &Path, name: &str) -> JobDir {
        let slug: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let root = tempfile::Builder::new()
            .prefix(&format!("{slug}-"))
            .tempdir_in(run)
            .unwrap()
            .keep();
        for d in ["home", "tmp", "prefix", "artifacts"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        JobDir { root }
    }
    fn ws(&self) -> PathBuf {
        self.root.join("ws")
    }
    fn prefix(&self) -> PathBuf {
        self.root.join("prefix")
    }
    fn artifacts(&self) -> PathBuf {
        self.root.join("artifacts")
    }
}

/// The environment every job starts from: a runner's PATH (no cargo, no cip), a private HOME.
fn base_env(dir: &JobDir) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert(
        "PATH".into(),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
    );
    env.insert("HOME".into(), dir.root.join("home").display().to_string());
    env.insert("TMPDIR".into(), dir.root.join("tmp").display().to_string());
    env.insert("CI".into(), "true".into());
    env.insert("NO_COLOR".into(), "1".into());
    env.insert("LANG".into(), "C.UTF-8".into());
    env
}

/// Runs `script` with bash (`-eo pipefail`, as both CI systems do) in `cwd`; its output goes to
/// `log`. True when it exited 0. With `usr_local`, in a mount namespace of its own where that
/// directory (the job's) is /usr/local: the pipelines install cip where they would on a runner,
/// and the machine's /usr/local stays as it was.
fn bash(
    script: &str,
    cwd: &Path,
    env: &BTreeMap<String, String>,
    usr_local: Option<&Path>,
    log: &mut String,
) -> bool {
    let bash = [
        "bash",
        "--noprofile",
        "--norc",
        "-eo",
        "pipefail",
        "-c",
        script,
    ];
    let mut cmd = match usr_local {
        Some(dir) => {
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg("mount --bind \"$0\" /usr/local && exec \"$@\"")
                .arg(dir)
                .args(bash);
            c
        }
        None => {
            let mut c = Command::new(bash[0]);
            c.args(&bash[1..]);
            c
        }
    };
    let out = cmd
        .current_dir(cwd)
        .env_clear()
        .envs(env)
        .output()
        .expect("run bash");
    log.push_str(&String::from_utf8_lossy(&out.stdout));
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    log.push_str(&format!("<<< exit {:?}\n", out.status.code()));
    out.status.success()
}

/// The machine's arm64 emulation, which replaces the setup-qemu action.
fn require_binfmt() {
    assert!(
        Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists(),
        "no qemu-aarch64 binfmt handler: run scripts/setup-env"
    );
}

/// Copies `paths` (relative to `ws`, shell globs allowed) into `dest`, keeping their paths.
fn copy_artifacts(ws: &Path, paths: &[String], dest: &Path) {
    fs::create_dir_all(dest).unwrap();
    for p in paths {
        let p = p.trim().trim_end_matches('/');
        if p.is_empty() {
            continue;
        }
        let script = format!(
            "shopt -s nullglob; for f in {p}; do cp -r --parents \"$f\" {}; done",
            dest.display()
        );
        let mut log = String::new();
        assert!(
            bash(
                &script,
                ws,
                &BTreeMap::from([("PATH".to_string(), "/usr/bin:/bin".to_string())]),
                None,
                &mut log
            ),
            "{log}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// GitHub Actions
// ---------------------------------------------------------------------------------------------

/// `${{ ... }}` expressions, the subset the workflow uses: contexts (`matrix.*`, `needs.*`,
/// `steps.*`, `secrets.*`, `vars.*`, `env.*`, `github.*`), string literals, `||`, `&&`, `==`,
/// `!=`, `!`, and the functions `fromJSON`, `always`, `success`, `failure`.
pub mod expr {
    use serde_json::Value;

    #[derive(Debug, Clone, PartialEq)]
    enum Tok {
        Ident(String),
        Str(String),
        Num(f64),
        Op(&'static str),
    }

    fn lex(s: &str) -> Vec<Tok> {
        let c: Vec<char> = s.chars().collect();
        let mut i = 0;
        let mut out = Vec::new();
        while i < c.len() {
            let ch = c[i];
            if ch.is_whitespace() {
                i += 1;
            } else if ch == '\'' {
                let mut v = String::new();
                i += 1;
                loop {
                    assert!(i < c.len(), "unterminated string in {s:?}");
                    if c[i] == '\'' {
                        if c.get(i + 1) == Some(&'\'') {
                            v.push('\'');
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    v.push(c[i]);
                    i += 1;
                }
                out.push(Tok::Str(v));
            } else if ch.is_ascii_digit() {
                let start = i;
                while i < c.len() && (c[i].is_ascii_digit() || c[i] == '.') {
                    i += 1;
                }
                out.push(Tok::Num(
                    c[start..i].iter().collect::<String>().parse().unwrap(),
                ));
            } else if ch.is_alphabetic() || ch == '_' {
                let start = i;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '-') {
                    i += 1;
                }
                out.push(Tok::Ident(c[start..i].iter().collect()));
            } else {
                let two: String = c[i..(i + 2).min(c.len())].iter().collect();
                let op = match ["||", "&&", "==", "!="].into_iter().find(|o| *o == two) {
                    Some(op) => op,
                    None => ["(", ")", ".", ",", "!"]
                        .into_iter()
                        .find(|o| o.starts_with(ch))
                        .unwrap_or_else(|| panic!("unsupported character {ch:?} in {s:?}")),
                };
                i += op.len();
                out.push(Tok::Op(op));
            }
        }
        out
    }

    /// The values an expression reads, and the status of what ran before.
    pub struct Ctx<'a> {
        pub contexts: &'a Value,
        /// Whether everything before succeeded (`success()`).
        pub ok: bool,
    }

    struct Parser<'a> {
        toks: Vec<Tok>,
        at: usize,
        ctx: &'a Ctx<'a>,
    }

    pub fn truthy(v: &Value) -> bool {
        match v {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !s.is_empty(),
            _ => true,
        }
    }

    /// A value as it appears in an interpolated string.
    pub fn text(v: &Value) -> String {
        match v {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    impl Parser<'_> {
        fn peek(&self) -> Option<&Tok> {
            self.toks.get(self.at)
        }
        fn eat(&mut self, op: &str) -> bool {
            let hit = matches!(self.peek(), Some(Tok::Op(o)) if *o == op);
            if hit {
                self.at += 1;
            }
            hit
        }
        fn or(&mut self) -> Value {
            let mut v = self.and();
            while self.eat("||") {
                let r = self.and();
                if !truthy(&v) {
                    v = r;
                }
            }
            v
        }
        fn and(&mut self) -> Value {
            let mut v = self.cmp();
            while self.eat("&&") {
                let r = self.cmp();
                if truthy(&v) {
                    v = r;
                }
            }
            v
        }
        fn cmp(&mut self) -> Value {
            let l = self.unary();
            for (op, eq) in [("==", true), ("!=", false)] {
                if self.eat(op) {
                    let r = self.unary();
                    // GitHub compares strings case-insensitively.
                    let same = text(&l).to_lowercase() == text(&r).to_lowercase();
                    return Value::Bool(same == eq);
                }
            }
            l
        }
        fn unary(&mut self) -> Value {
            if self.eat("!") {
                return Value::Bool(!truthy(&self.unary()));
            }
            self.primary()
        }
        fn primary(&mut self) -> Value {
            if self.eat("(") {
                let v = self.or();
                assert!(self.eat(")"), "missing )");
                return v;
            }
            let tok = self.toks.get(self.at).cloned().expect("an operand");
            self.at += 1;
            match tok {
                Tok::Str(s) => Value::String(s),
                Tok::Num(n) => serde_json::json!(n),
                Tok::Ident(id) if self.eat("(") => {
                    let mut args = Vec::new();
                    if !self.eat(")") {
                        loop {
                            args.push(self.or());
                            if self.eat(")") {
                                break;
                            }
                            assert!(self.eat(","), "expected , in {id}()");
                        }
                    }
                    match id.to_lowercase().as_str() {
                        "fromjson" => serde_json::from_str(&text(&args[0]))
                            .unwrap_or_else(|e| panic!("fromJSON({:?}): {e}", args[0])),
                        "always" => Value::Bool(true),
                        "success" => Value::Bool(self.ctx.ok),
                        "failure" => Value::Bool(!self.ctx.ok),
                        other => panic!("the executor does not model the function {other}()"),
                    }
                }
                Tok::Ident(id) => match id.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "null" => Value::Null,
                    _ => {
                        let mut v = self.ctx.contexts.get(&id).cloned().unwrap_or_else(|| {
                            panic!("the executor does not model the context {id}")
                        });
                        while self.eat(".") {
                            let Some(Tok::Ident(key)) = self.toks.get(self.at).cloned() else {
                                panic!("expected a name after .");
                            };
                            self.at += 1;
                            v = v.get(&key).cloned().unwrap_or(Value::Null);
                        }
                        v
                    }
                },
                Tok::Op(op) => panic!("unexpected {op}"),
            }
        }
    }

    /// Evaluates one expression (without `${{ }}`).
    pub fn eval(s: &str, ctx: &Ctx) -> Value {
        let mut p = Parser {
            toks: lex(s),
            at: 0,
            ctx,
        };
        let v = p.or();
        assert!(p.at == p.toks.len(), "trailing tokens in {s:?}");
        v
    }

    /// A string with `${{ }}` parts: the value itself when it is one expression, else the text.
    pub fn interpolate(s: &str, ctx: &Ctx) -> Value {
        let t = s.trim();
        if t.starts_with("${{") && t.ends_with("}}") && t.matches("${{").count() == 1 {
            return eval(&t[3..t.len() - 2], ctx);
        }
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("${{") {
            out.push_str(&rest[..i]);
            let end = rest[i..].find("}}").expect("unterminated ${{") + i;
            out.push_str(&text(&eval(&rest[i + 3..end], ctx)));
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        Value::String(out)
    }

    /// An `if:` condition; without a status function it means `success() && (...)`.
    pub fn condition(s: Option<&str>, ctx: &Ctx) -> bool {
        let Some(s) = s else { return ctx.ok };
        let s = s.trim();
        let s = s
            .strip_prefix("${{")
            .and_then(|x| x.strip_suffix("}}"))
            .unwrap_or(s);
        let status = ["always(", "success(", "failure(", "cancelled("]
            .iter()
            .any(|f| s.contains(f));
        (status || ctx.ok) && truthy(&eval(s, ctx))
    }
}

/// Runs a GitHub workflow (`file`, read from a clone of the repository) as GitHub would: jobs in
/// `needs` order, a job's matrix instances at once.
pub fn run_github(setup: &Setup, file: &str) -> Run {
    let dir = tempfile::Builder::new()
        .prefix("cip-gh-run-")
        .tempdir()
        .unwrap();
    let peek = dir.path().join("config");
    setup.repo.clone_into(&peek, false);
    let wf = yaml(&peek.join(file));
    let jobs = wf["jobs"].as_object().expect("jobs").clone();
    let mut results: BTreeMap<String, (Status, Value)> = BTreeMap::new();
    let mut run = Run {
        jobs: Vec::new(),
        dir,
    };
    let mut left: Vec<String> = jobs.keys().cloned().collect();
    while !left.is_empty() {
        let ready = left
            .iter()
            .position(|j| needs_of(&jobs[j]).iter().all(|n| results.contains_key(n)))
            .expect("a job whose needs ran (a cycle?)");
        let id = left.remove(ready);
        let job = &jobs[&id];
        let needs = needs_of(job);
        let needs_ctx: Map<String, Value> = needs
            .iter()
            .map(|n| {
                let (status, outputs) = &results[n];
                let result = match status {
                    Status::Success => "success",
                    Status::Failure => "failure",
                    Status::Skipped => "skipped",
                };
                (n.clone(), json!({"outputs": outputs, "result": result}))
            })
            .collect();
        let ok = needs.iter().all(|n| results[n].0 == Status::Success);
        let contexts = github_contexts(setup, Value::Object(needs_ctx.clone()), Value::Null);
        let ctx = expr::Ctx {
            contexts: &contexts,
            ok,
        };
        if !expr::condition(job.get("if").and_then(Value::as_str), &ctx) {
            results.insert(id.clone(), (Status::Skipped, json!({})));
            run.jobs.push(Job {
                name: id,
                status: Status::Skipped,
                log: String::new(),
                artifacts: PathBuf::new(),
            });
            continue;
        }
        let instances: Vec<Value> = match job.get("strategy").and_then(|s| s.get("matrix")) {
            None => vec![Value::Null],
            Some(m) => {
                let m = match m {
                    Value::String(s) => expr::interpolate(s, &ctx),
                    other => other.clone(),
                };
                let obj = m.as_object().expect("a matrix object");
                assert!(
                    obj.keys().all(|k| k == "include"),
                    "the executor models `include` matrices only: {m}"
                );
                obj["include"].as_array().unwrap().clone()
            }
        };
        let done: Vec<(Job, Value)> = std::thread::scope(|s| {
            let handles: Vec<_> = instances
                .iter()
                .map(|matrix| {
                    let needs_ctx = Value::Object(needs_ctx.clone());
                    let run_dir = run.dir.path();
                    let (wf, id) = (&wf, &id);
                    s.spawn(move || github_job(setup, wf, id, job, matrix, needs_ctx, run_dir))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let status = if done.iter().all(|(j, _)| j.status == Status::Success) {
            Status::Success
        } else {
            Status::Failure
        };
        // One instance's outputs (GitHub takes the last one to set each).
        let outputs = done
            .iter()
            .map(|(_, o)| o.clone())
            .fold(json!({}), |mut acc, o| {
                if let (Some(a), Some(o)) = (acc.as_object_mut(), o.as_object()) {
                    a.extend(o.clone());
                }
                acc
            });
        results.insert(id.clone(), (status, outputs));
        run.jobs.extend(done.into_iter().map(|(j, _)| j));
    }
    run
}

fn needs_of(job: &Value) -> Vec<String> {
    match job.get("needs") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
        Some(other) => panic!("needs: {other}"),
    }
}

fn github_contexts(setup: &Setup, needs: Value, matrix: Value) -> Value {
    json!({
        "vars": setup.vars,
        "secrets": setup.secrets,
        "needs": needs,
        "matrix": matrix,
        "github": {"ref": "refs/heads/main", "workspace": ""},
        "env": {},
        "steps": {},
    })
}

/// Evaluates an `env:` map into `env`, each value with the contexts so far.
fn github_env(map: Option<&Value>, contexts: &Value, ok: bool, env: &mut BTreeMap<String, String>) {
    let Some(map) = map.and_then(Value::as_object) else {
        return;
    };
    for (k, v) in map {
        let ctx = expr::Ctx { contexts, ok };
        let raw = match v {
            Value::String(s) => s.clone(),
            other => expr::text(other),
        };
        env.insert(k.clone(), expr::text(&expr::interpolate(&raw, &ctx)));
    }
}

/// One job (one matrix instance): its steps in a fresh directory with its own dockerd.
fn github_job(
    setup: &Setup,
    wf: &Value,
    id: &str,
    job: &Value,
    matrix: &Value,
    needs: Value,
    run_dir: &Path,
) -> (Job, Value) {
    let mut contexts = github_contexts(setup, needs, matrix.clone());
    let name = match job.get("name").and_then(Value::as_str) {
        Some(n) => expr::text(&expr::interpolate(
            n,
            &expr::Ctx {
                contexts: &contexts,
                ok: true,
            },
        )),
        None => id.to_string(),
    };
    let dir = JobDir::new(run_dir, &name);
    let dockerd = TestDockerd::start();
    let mut env = base_env(&dir);
    env.insert("DOCKER_HOST".into(), dockerd.host());
    let files = ["GITHUB_OUTPUT", "GITHUB_PATH", "GITHUB_ENV"];
    for f in files {
        env.insert(
            f.into(),
            dir.root.join(f.to_lowercase()).display().to_string(),
        );
    }
    env.insert("GITHUB_WORKSPACE".into(), dir.ws().display().to_string());
    contexts["github"]["workspace"] = json!(dir.ws().display().to_string());
    // The job's env: the workflow's, then the job's (the runner's own variables stay).
    let mut job_env = BTreeMap::new();
    github_env(wf.get("env"), &contexts, true, &mut job_env);
    contexts["env"] = json!(job_env);
    github_env(job.get("env"), &contexts, true, &mut job_env);
    let mut log = String::new();
    let mut ok = true;
    let mut paths: Vec<String> = Vec::new();
    let mut extra_env: BTreeMap<String, String> = BTreeMap::new();
    for (n, step) in job["steps"].as_array().unwrap().iter().enumerate() {
        contexts["env"] = json!(job_env);
        let ctx = expr::Ctx {
            contexts: &contexts,
            ok,
        };
        let label = step
            .get("name")
            .or_else(|| step.get("uses"))
            .and_then(Value::as_str)
            .map(|s| expr::text(&expr::interpolate(s, &ctx)))
            .unwrap_or_else(|| format!("step {n}"));
        if !expr::condition(step.get("if").and_then(Value::as_str), &ctx) {
            log.push_str(&format!(">>> {label}: skipped\n"));
            continue;
        }
        log.push_str(&format!(">>> {label}\n"));
        let with = step.get("with").cloned().unwrap_or(json!({}));
        let with_str = |k: &str| {
            with.get(k)
                .map(|v| expr::text(&expr::interpolate(&expr::text(v), &ctx)))
        };
        if let Some(uses) = step.get("uses").and_then(Value::as_str) {
            let action = uses.split('@').next().unwrap();
            match action {
                "actions/checkout" => {
                    let sub = matches!(
                        with_str("submodules").as_deref(),
                        Some("recursive" | "true")
                    );
                    setup.repo.clone_into(&dir.ws(), sub);
                }
                "docker/setup-qemu-action" => require_binfmt(),
                "actions/upload-artifact" => {
                    let name = with_str("name").expect("upload-artifact with.name");
                    let list: Vec<String> = with_str("path")
                        .unwrap_or_default()
                        .lines()
                        .map(str::to_string)
                        .collect();
                    copy_artifacts(&dir.ws(), &list, &dir.artifacts().join(name));
                }
                other => panic!("the executor does not model the action {other}"),
            }
            continue;
        }
        let script = step["run"].as_str().expect("a step runs or uses");
        let script = expr::text(&expr::interpolate(script, &ctx));
        let mut step_env = job_env.clone();
        github_env(step.get("env"), &contexts, ok, &mut step_env);
        let mut all = env.clone();
        all.extend(extra_env.clone());
        all.extend(step_env);
        if !paths.is_empty() {
            let p = format!("{}:{}", paths.join(":"), all["PATH"]);
            all.insert("PATH".into(), p);
        }
        for f in files {
            let _ = fs::write(&env[f], "");
        }
        let passed = bash(&script, &dir.ws(), &all, Some(&dir.prefix()), &mut log);
        // $GITHUB_OUTPUT: KEY=VALUE lines (or KEY<<EOF ... EOF).
        if let Some(id) = step.get("id").and_then(Value::as_str) {
            let outputs =
                parse_output(&fs::read_to_string(&env["GITHUB_OUTPUT"]).unwrap_or_default());
            contexts["steps"][id] = json!({"outputs": outputs});
        }
        for line in fs::read_to_string(&env["GITHUB_PATH"])
            .unwrap_or_default()
            .lines()
        {
            if !line.trim().is_empty() {
                paths.insert(0, line.trim().to_string());
            }
        }
        extra_env.extend(parse_output(
            &fs::read_to_string(&env["GITHUB_ENV"]).unwrap_or_default(),
        ));
        ok &= passed;
    }
    let ctx = expr::Ctx {
        contexts: &contexts,
        ok,
    };
    let outputs: Map<String, Value> = job
        .get("outputs")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        json!(expr::text(&expr::interpolate(v.as_str().unwrap(), &ctx))),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let status = if ok { Status::Success } else { Status::Failure };
    drop(dockerd);
    (
        Job {
            name,
            status,
            log,
            artifacts: dir.artifacts(),
        },
        Value::Object(outputs),
    )
}

/// `KEY=VALUE` and `KEY<<DELIM` ... `DELIM` lines, as GitHub reads its command files.
pub fn parse_output(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = s.lines();
    while let Some(line) = lines.next() {
        if let Some((k, delim)) = line.split_once("<<") {
            let mut v = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                v.push(l);
            }
            out.insert(k.to_string(), v.join("\n"));
        } else if let Some((k, v)) = line.split_once('=') {
            out.insert(k.to_string(), v.to_string());
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// GitLab CI
// ---------------------------------------------------------------------------------------------

/// Top-level keys of a GitLab file that are not jobs.
const GITLAB_GLOBAL: &[&str] = &["stages", "variables", "include", "default", "workflow"];
/// The job keys the executor models.
const GITLAB_JOB: &[&str] = &[
    "stage",
    "extends",
    "script",
    "before_script",
    "variables",
    "artifacts",
    "needs",
    "services",
    "image",
    "tags",
    "trigger",
    "resource_group",
];

/// Objects merged key by key (the later wins), anything else replaced: GitLab's `extends`.
fn deep_merge(base: &mut Value, over: &Value) {
    match (base.as_object_mut(), over.as_object()) {
        (Some(b), Some(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => deep_merge(slot, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *base = over.clone(),
    }
}

/// A job with its `extends` chain resolved.
fn resolved(config: &Value, name: &str) -> Value {
    let job = config
        .get(name)
        .unwrap_or_else(|| panic!("extends names {name}, which is not defined"));
    let parents: Vec<String> = match job.get("extends") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
        Some(other) => panic!("extends: {other}"),
    };
    let mut out = json!({});
    for p in parents {
        deep_merge(&mut out, &resolved(config, &p));
    }
    let mut own = job.clone();
    own.as_object_mut().unwrap().remove("extends");
    deep_merge(&mut out, &own);
    out
}

/// A GitLab file with its `include: - local:` files (from the clone at `root`) merged in.
fn gitlab_config(root: &Path, file: &Path) -> Value {
    let own = yaml(file);
    let mut config = json!({});
    if let Some(includes) = own.get("include") {
        for inc in includes.as_array().expect("include: a list") {
            let local = inc["local"]
                .as_str()
                .unwrap_or_else(|| panic!("the executor models include: local only: {inc}"));
            deep_merge(
                &mut config,
                &gitlab_config(root, &root.join(local.trim_start_matches('/'))),
            );
        }
    }
    deep_merge(&mut config, &own);
    config.as_object_mut().unwrap().remove("include");
    config
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                Value::Object(o) => o["job"].as_str().unwrap().to_string(),
                other => panic!("{other}"),
            })
            .collect(),
        Some(other) => panic!("expected a list: {other}"),
    }
}

fn variables(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|o| o.iter().map(|(k, v)| (k.clone(), expr::text(v))).collect())
        .unwrap_or_default()
}

/// Runs the GitLab pipeline of `file` (read from a clone of the repository): stage by stage, the
/// jobs of a stage at once, child pipelines of `trigger:` jobs included (their jobs named
/// `TRIGGER/JOB`).
pub fn run_gitlab(setup: &Setup, file: &str) -> Run {
    let dir = tempfile::Builder::new()
        .prefix("cip-gl-run-")
        .tempdir()
        .unwrap();
    let peek = dir.path().join("config");
    setup.repo.clone_into(&peek, false);
    let config = gitlab_config(&peek, &peek.join(file));
    let mut run = Run {
        jobs: Vec::new(),
        dir,
    };
    let mut jobs = Vec::new();
    gitlab_pipeline(
        setup,
        &config,
        &BTreeMap::new(),
        run.dir.path(),
        "",
        &mut jobs,
    );
    run.jobs = jobs;
    run
}

/// One pipeline (the parent or a child); the jobs go to `out`. Its status: failed when a job
/// failed.
fn gitlab_pipeline(
    setup: &Setup,
    config: &Value,
    upstream: &BTreeMap<String, String>,
    run_dir: &Path,
    prefix: &str,
    out: &mut Vec<Job>,
) -> Status {
    let mut globals = upstream.clone();
    globals.extend(variables(config.get("variables")));
    let stages = match config.get("stages") {
        Some(s) => strings(Some(s)),
        None => vec!["build".into(), "test".into(), "deploy".into()],
    };
    let names: Vec<String> = config
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !k.starts_with('.') && !GITLAB_GLOBAL.contains(&k.as_str()))
        .cloned()
        .collect();
    assert!(!names.is_empty(), "GitLab refuses a pipeline without jobs");
    let jobs: BTreeMap<String, Value> = names
        .iter()
        .map(|n| {
            let job = resolved(config, n);
            for key in job.as_object().unwrap().keys() {
                assert!(
                    GITLAB_JOB.contains(&key.as_str()),
                    "the executor does not model the job key {key} (job {n})"
                );
            }
            (n.clone(), job)
        })
        .collect();
    let mut status: BTreeMap<String, Status> = BTreeMap::new();
    let mut artifacts: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut failed = false;
    for stage in &stages {
        let here: Vec<&String> = names
            .iter()
            .filter(|n| {
                jobs[*n]
                    .get("stage")
                    .and_then(Value::as_str)
                    .unwrap_or("test")
                    == stage
            })
            .collect();
        // A job runs when what it needs succeeded (without `needs`: every earlier stage's job).
        let (go, skip): (Vec<&String>, Vec<&String>) =
            here.into_iter().partition(|n| match jobs[*n].get("needs") {
                Some(needs) => strings(Some(needs))
                    .iter()
                    .all(|d| status.get(d) == Some(&Status::Success)),
                None => status.values().all(|s| *s == Status::Success),
            });
        for n in skip {
            status.insert(n.clone(), Status::Skipped);
            out.push(Job {
                name: format!("{prefix}{n}"),
                status: Status::Skipped,
                log: String::new(),
                artifacts: PathBuf::new(),
            });
        }
        let done: Vec<(String, Job, Vec<Job>)> = std::thread::scope(|s| {
            let handles: Vec<_> = go
                .iter()
                .map(|n| {
                    let (job, globals, artifacts) = (&jobs[*n], &globals, &artifacts);
                    s.spawn(move || {
                        let mut children = Vec::new();
                        let j = match job.get("trigger") {
                            Some(t) => gitlab_trigger(
                                setup,
                                n,
                                t,
                                globals,
                                artifacts,
                                run_dir,
                                prefix,
                                &mut children,
                            ),
                            None => gitlab_job(setup, n, job, globals, run_dir, prefix),
                        };
                        ((*n).clone(), j, children)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (n, j, children) in done {
            failed |= j.status == Status::Failure;
            status.insert(n.clone(), j.status);
            artifacts.insert(n, j.artifacts.clone());
            out.push(j);
            out.extend(children);
        }
    }
    if failed {
        Status::Failure
    } else {
        Status::Success
    }
}

/// A `trigger:` job: its child pipeline, from an artifact of an earlier job.
#[allow(clippy::too_many_arguments)]
fn gitlab_trigger(
    setup: &Setup,
    name: &str,
    trigger: &Value,
    globals: &BTreeMap<String, String>,
    artifacts: &BTreeMap<String, PathBuf>,
    run_dir: &Path,
    prefix: &str,
    children: &mut Vec<Job>,
) -> Job {
    let includes = trigger["include"]
        .as_array()
        .expect("trigger: include: a list");
    assert_eq!(includes.len(), 1, "one child pipeline file: {trigger}");
    let file = includes[0]["artifact"].as_str().expect("include: artifact");
    let from = includes[0]["job"].as_str().expect("include: job");
    let path = artifacts
        .get(from)
        .unwrap_or_else(|| panic!("{name} includes an artifact of {from}, which did not run"))
        .join(file);
    let config = yaml(&path);
    let status = gitlab_pipeline(
        setup,
        &config,
        globals,
        run_dir,
        &format!("{prefix}{name}/"),
        children,
    );
    // strategy: depend: the trigger job has the child pipeline's status.
    assert_eq!(trigger["strategy"], "depend", "{trigger}");
    Job {
        name: format!("{prefix}{name}"),
        status,
        log: fs::read_to_string(&path).unwrap(),
        artifacts: PathBuf::new(),
    }
}

/// A script job: before_script and script in one bash, in a fresh clone, with a dockerd of its
/// own for a `docker:dind` service.
fn gitlab_job(
    setup: &Setup,
    name: &str,
    job: &Value,
    globals: &BTreeMap<String, String>,
    run_dir: &Path,
    prefix: &str,
) -> Job {
    let full = format!("{prefix}{name}");
    let dir = JobDir::new(run_dir, &full);
    let mut env = base_env(&dir);
    // YAML variables, then the project's CI/CD variables (which take precedence in GitLab).
    env.extend(globals.clone());
    env.extend(variables(job.get("variables")));
    env.extend(setup.vars.clone());
    env.extend(setup.secrets.clone());
    env.insert("CI_PROJECT_DIR".into(), dir.ws().display().to_string());
    env.insert("CI_JOB_NAME".into(), name.to_string());
    let submodules = env.get("GIT_SUBMODULE_STRATEGY").map(String::as_str) == Some("recursive");
    setup.repo.clone_into(&dir.ws(), submodules);
    let mut dockerd = None;
    for service in job
        .get("services")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let image = service
            .get("name")
            .or(Some(service))
            .and_then(Value::as_str)
            .unwrap();
        assert!(
            image.starts_with("docker:") && image.ends_with("dind"),
            "the executor models the docker:dind service only: {image}"
        );
        let d = TestDockerd::start();
        env.insert("DOCKER_HOST".into(), d.host());
        dockerd = Some(d);
    }
    let mut lines = strings(job.get("before_script"));
    lines.extend(strings(job.get("script")));
    let mut log = String::new();
    let ok = bash(
        &lines.join("\n"),
        &dir.ws(),
        &env,
        Some(&dir.prefix()),
        &mut log,
    );
    let when = job["artifacts"]["when"].as_str().unwrap_or("on_success");
    if ok || when == "always" {
        let paths = strings(job["artifacts"].get("paths"));
        copy_artifacts(&dir.ws(), &paths, &dir.artifacts());
    }
    drop(dockerd);
    Job {
        name: full,
        status: if ok { Status::Success } else { Status::Failure },
        log,
        artifacts: dir.artifacts(),
    }
}
