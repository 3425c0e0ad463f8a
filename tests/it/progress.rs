//! `--progress tty|plain|quiet|auto`, `-q` and `CIP_PROGRESS` on real buildah builds: the live
//! display in a real terminal (tmux), the builders' output streamed with `[image platform]`
//! prefixes, and the one-line result of quiet mode.
use crate::common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::workspace::{text, Workspace};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The demo, its base image sleeping while it builds (so a live display can be looked at).
fn slow_demo() -> Workspace {
    let ws = Workspace::demo();
    let dockerfile = ws.context("00-busybox").join("Dockerfile");
    let text = fs::read_to_string(&dockerfile).unwrap().replace(
        "ENV PATH=/bin",
        "RUN [\"/bin/busybox\", \"sleep\", \"6\"]\nENV PATH=/bin",
    );
    fs::write(&dockerfile, text).unwrap();
    ws
}

#[test]
fn plain_streams_the_builders_lines_prefixed_and_the_flag_beats_the_environment() {
    let ws = Workspace::demo();
    let out = ws
        .cip_command(
            &["build", "busybox", "--progress", "plain"],
            &[("CIP_PROGRESS", "quiet")],
        )
        .env_remove("CI")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.starts_with("[busybox linux/amd64] STEP 1/") && l.contains("FROM scratch")),
        "the builder's steps, prefixed: {err}"
    );
    assert!(
        err.contains("[busybox linux/amd64] STEP 4/6: RUN [\"/bin/busybox\", \"--install\""),
        "{err}"
    );
    // cip's own lines are there too, and the summary; nothing redraws.
    assert!(
        err.contains("build busybox:1.0.0 linux/amd64: started"),
        "{err}"
    );
    assert!(err.contains("IMAGE") && err.contains("built"), "{err}");
    assert!(!err.contains('\r') && !err.contains("\x1b["), "{err:?}");
    // The log is still written.
    let logs = ws.project().join(".cip/logs");
    let log: String = fs::read_dir(&logs)
        .unwrap()
        .map(|e| fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(log.contains("STEP 1/6: FROM scratch"), "{log}");
}

#[test]
fn quiet_prints_the_result_line_only_from_the_environment_or_q() {
    let ws = Workspace::demo();
    let out = ws
        .cip_command(&["build", "busybox"], &[("CIP_PROGRESS", "quiet")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("1 image: 1 built in ") && err.ends_with("s\n"),
        "{err}"
    );

    // -q on a run that fails: the error, then the result line; no builder output.
    fs::write(
        ws.context("01-hello").join("Dockerfile"),
        "ARG REGISTRY\nFROM ${REGISTRY}/busybox:1.0.0\nRUN echo going wrong; exit 7\n",
    )
    .unwrap();
    let out = ws.cip(&["build", "-q", "hello"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    let last = err.lines().last().unwrap();
    assert!(last.starts_with("1 image: 1 failed in "), "{err}");
    assert!(err.starts_with("FAILED hello:1.0.0: "), "{err}");
    assert!(!err.contains("[hello linux/amd64]"), "{err}");
    assert!(!err.contains("started"), "{err}");
}

#[test]
fn a_bad_cip_progress_names_the_variable() {
    let ws = Workspace::demo();
    let out = ws.cip_env(&["build", "--dry-run"], &[("CIP_PROGRESS", "fancy")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("CIP_PROGRESS: \"fancy\" is not one of auto, tty, plain, quiet"),
        "{}",
        text(&out)
    );
    let out = ws.cip(&["build", "-q", "--progress", "plain"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// A tmux server of its own (its own socket), killed when dropped.
struct Tmux {
    socket: std::path::PathBuf,
}

impl Tmux {
    fn start(dir: &Path, script: &Path) -> Tmux {
        let socket = dir.join("tmux.sock");
        let t = Tmux { socket };
        let out = t
            .cmd()
            .args(["new-session", "-d", "-x", "100", "-y", "30", "sh"])
            .arg(script)
            .output()
            .expect("tmux is installed (scripts/setup-env)");
        assert!(out.status.success(), "{out:?}");
        t
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket);
        c
    }

    fn screen(&self) -> String {
        let out = self.cmd().args(["capture-pane", "-p"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").output();
    }
}

/// A shell script that runs `cmd` as it is set up (environment, arguments; `CI` unset unless
/// `cmd` sets it), then waits.
fn script_of(cmd: &Command, done: &Path) -> String {
    let q = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
    let mut s = String::from("unset CI\n");
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => s.push_str(&format!("export {}={}\n", k.to_string_lossy(), q(v))),
            None => s.push_str(&format!("unset {}\n", k.to_string_lossy())),
        }
    }
    s.push_str(&q(cmd.get_program()));
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&q(a));
    }
    s.push_str(&format!(" 2>&1; echo $? > {}; sleep 600\n", done.display()));
    s
}

#[test]
fn tty_shows_each_running_steps_dockerfile_step_and_the_queued_count() {
    let ws = slow_demo();
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("done");
    let cmd = ws.cip_command(&["build", "hello", "-j", "1", "--progress", "auto"], &[]);
    let script = dir.path().join("run.sh");
    fs::write(&script, script_of(&cmd, &done)).unwrap();
    let tmux = Tmux::start(dir.path(), &script);

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = String::new();
    while Instant::now() < deadline && !done.exists() {
        let screen = tmux.screen();
        if screen.contains("sleep") && screen.contains("1 queued") {
            seen = screen;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let live = seen
        .lines()
        .find(|l| l.contains("build busybox:1.0.0 linux/amd64"))
        .unwrap_or_else(|| {
            panic!(
                "no live line of the running build:\n{seen}{}",
                tmux.screen()
            )
        });
    assert!(
        live.contains("STEP 5/7: RUN [\"/bin/busybox\", \"sleep\", \"6\"]"),
        "the running step's Dockerfile step: {live}"
    );
    assert!(live.chars().count() <= 100, "cut to the width: {live}");
    assert!(
        seen.lines().any(|l| l.contains("0/2 builds, 1 queued")),
        "{seen}"
    );

    while Instant::now() < deadline && !done.exists() {
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = fs::read_to_string(&done).unwrap_or_default();
    let screen = tmux.screen();
    assert_eq!(status.trim(), "0", "{screen}");
    // The live lines are gone; what stays is the results and the summary.
    assert!(!screen.contains("queued"), "{screen}");
    assert!(
        screen.contains("build hello:1.0.0 linux/amd64: done in"),
        "{screen}"
    );
    drop(tmux);

    // On a terminal too, `auto` is plain in CI.
    let done = dir.path().join("done-ci");
    let cmd = ws.cip_command(
        &["build", "busybox", "--force", "busybox"],
        &[("CI", "true")],
    );
    let script = dir.path().join("run-ci.sh");
    fs::write(&script, script_of(&cmd, &done)).unwrap();
    let tmux = Tmux::start(dir.path(), &script);
    while Instant::now() < deadline + Duration::from_secs(60) && !done.exists() {
        std::thread::sleep(Duration::from_millis(200));
    }
    let screen = tmux.screen();
    assert_eq!(
        fs::read_to_string(&done).unwrap_or_default().trim(),
        "0",
        "{screen}"
    );
    assert!(screen.contains("[busybox linux/amd64] "), "{screen}");
}

#[test]
fn pushing_is_a_visible_phase_and_a_childs_base_layers_are_mounted_from_its_parent() {
    let reg = common::TestRegistry::start();
    let ws = Workspace::demo();
    let out = ws.cip(&[
        "publish-locally",
        "--local-registry",
        &reg.addr(),
        "--progress",
        "plain",
        "-j",
        "1",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let err = stderr(&out);
    let line = |prefix: &str| {
        err.lines()
            .find(|l| l.contains(prefix) && !l.ends_with("started"))
            .unwrap_or_else(|| panic!("no {prefix:?} line: {err}"))
            .to_string()
    };
    assert!(
        err.contains("push busybox:1.0.0 linux/amd64: started"),
        "{err}"
    );
    // busybox: its layer and config uploaded.
    let busybox = line("push busybox:1.0.0 linux/amd64: ");
    assert!(
        busybox.contains(": 2 blob(s) uploaded (")
            && busybox.contains("), 0 mounted, 0 already there in "),
        "{busybox}"
    );
    // hello: busybox's layer mounted from busybox's repository, its own layer and config uploaded.
    let hello = line("push hello:1.0.0 linux/amd64: ");
    assert!(
        hello.contains(": 2 blob(s) uploaded (")
            && hello.contains("), 1 mounted, 0 already there in "),
        "{hello}"
    );
}

/// `cip publish-locally --dry-run` against `reg` with only `config` as credential file.
fn dry_run(ws: &Workspace, reg: &str, config: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["publish-locally", "--dry-run", "--local-registry", reg];
    args.extend(extra);
    let dir = config.to_str().unwrap();
    ws.cip_command(
        &args,
        &[
            ("DOCKER_CONFIG", dir),
            ("XDG_RUNTIME_DIR", dir),
            ("XDG_CONFIG_HOME", dir),
        ],
    )
    .env_remove("REGISTRY_AUTH_FILE")
    .env_remove("CIP_USERNAME")
    .env_remove("CIP_PASSWORD")
    .output()
    .unwrap()
}

#[test]
fn the_credentials_line_is_short_and_verbose_says_where_cip_looked() {
    use base64::Engine as _;
    let (user, password) = ("alice", "s3cret-Line-pw");
    let reg = common::TestRegistry::start_with(common::RegistryOptions {
        tls: false,
        auth: Some((user.into(), password.into())),
    });
    let ws = Workspace::demo();
    let with_creds = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = with_creds.path().join("config.json");
    fs::write(
        &config,
        serde_json::json!({"auths": {reg.addr(): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let line = format!(
        "registry {}: user alice (from docker's config.json)",
        reg.addr()
    );

    let out = dry_run(&ws, &reg.addr(), with_creds.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let err = stderr(&out);
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("registry "))
            .collect::<Vec<_>>(),
        [line.as_str()],
        "{err}"
    );
    let out = dry_run(&ws, &reg.addr(), with_creds.path(), &["--verbose"]);
    let err = stderr(&out);
    assert!(err.contains(&line), "{err}");
    assert!(
        err.contains(&format!("credentials from {} (auths)", config.display())),
        "--verbose names the file: {err}"
    );
    assert!(!text(&out).contains(password));
    let out = dry_run(&ws, &reg.addr(), with_creds.path(), &["-q"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stderr(&out), "", "quiet: no credentials line");

    // Nothing found: one word, where cip looked only when the registry refuses.
    let open = common::TestRegistry::start();
    let empty = tempfile::tempdir().unwrap();
    let out = dry_run(&ws, &open.addr(), empty.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l == format!("registry {}: anonymous", open.addr())),
        "{err}"
    );
    assert!(!err.contains("no credentials found"), "{err}");
    let refused = dry_run(&ws, &reg.addr(), empty.path(), &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let err = stderr(&refused);
    assert!(
        err.contains(&format!("no credentials found for {} in: ", reg.addr())),
        "a refused login says where cip looked: {err}"
    );
}

#[test]
fn cip_toml_sets_the_mode_below_the_environment_and_the_flag() {
    let ws = Workspace::demo();
    fs::write(
        ws.project().join("cip.toml"),
        "[build]\nprogress = \"quiet\"\n",
    )
    .unwrap();
    let out = ws.cip(&["build", "busybox"]);
    assert!(out.status.success(), "{}", text(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "quiet from cip.toml: {err}");

    let again = ["build", "busybox", "--force", "busybox"];
    let out = ws.cip_env(&again, &[("CIP_PROGRESS", "plain")]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stderr(&out).contains("[busybox linux/amd64] STEP 1/"),
        "{}",
        text(&out)
    );

    let mut flag = again.to_vec();
    flag.extend(["--progress", "plain"]);
    let out = ws.cip_env(&flag, &[("CIP_PROGRESS", "quiet")]);
    assert!(
        stderr(&out).contains("[busybox linux/amd64] STEP 1/"),
        "{}",
        text(&out)
    );
}

#[test]
fn tty_shows_the_push_of_each_build_with_its_blobs() {
    let reg = common::TestRegistry::start();
    let ws = Workspace::demo();
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("done");
    let args = [
        "publish-locally",
        "busybox",
        "--local-registry",
        &reg.addr(),
    ];
    let script = dir.path().join("run.sh");
    fs::write(&script, script_of(&ws.cip_command(&args, &[]), &done)).unwrap();
    let tmux = Tmux::start(dir.path(), &script);
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline && !done.exists() {
        std::thread::sleep(Duration::from_millis(200));
    }
    let screen = tmux.screen();
    assert_eq!(
        fs::read_to_string(&done).unwrap_or_default().trim(),
        "0",
        "{screen}"
    );
    assert!(
        screen.lines().any(|l| l
            .starts_with("push busybox:1.0.0 linux/amd64: 2 blob(s) uploaded (")
            && l.contains("), 0 mounted, 0 already there in ")),
        "{screen}"
    );
    assert!(screen.contains("busybox:1.0.0  amd64  built"), "{screen}");
}
