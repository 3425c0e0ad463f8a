//! What runs that are gone left behind in the nodes' stores: a run that builds removes the run
//! tags (`cip.local/run-ID/...`) of runs no longer alive and says so, and never those of a run that
//! still lives. Runs are told apart by their id, `PID-START-NANOS`: a live process with that pid
//! and start time is the run; a pid now held by a process started at another time is not.
use std::fs;
use std::process::{Command, Stdio};

use crate::common;
use common::docker::TestDockerd;
use common::workspace::{text, Workspace};

/// A process that stands for a run still alive, with the run id it would have.
struct LiveRun {
    child: std::process::Child,
}

impl LiveRun {
    fn start() -> LiveRun {
        let child = Command::new("sleep")
            .arg("120")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        LiveRun { child }
    }

    fn start_time(&self) -> u64 {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let (_, rest) = stat.rsplit_once(')').unwrap();
        rest.split_whitespace().nth(19).unwrap().parse().unwrap()
    }

    fn id(&self) -> String {
        format!("{}-{:x}-1", self.child.id(), self.start_time())
    }

    /// The same pid, but a start time that is not this process's: a run that is gone.
    fn reused_id(&self) -> String {
        format!("{}-{:x}-1", self.child.id(), self.start_time() + 1)
    }
}

impl Drop for LiveRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run tags of a live run, of a run whose process is gone, and of one whose pid was reused.
fn tags(live: &LiveRun) -> [String; 3] {
    [
        format!("cip.local/run-{}/keep:1.0.0-linux-amd64", live.id()),
        "cip.local/run-2147483600-1-1/gone:1.0.0-linux-amd64".to_string(),
        format!(
            "cip.local/run-{}/reused:1.0.0-linux-amd64",
            live.reused_id()
        ),
    ]
}

fn assert_swept(out: &std::process::Output, listed: &str, tags: &[String; 3]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", text(out));
    assert!(
        stderr.contains("removed 2 tags left by earlier runs that are gone"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&tags[1]) && stderr.contains(&tags[2]),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&tags[0]),
        "a live run's tag is kept: {stderr}"
    );
    assert!(
        listed.contains("run-") && listed.contains("/keep"),
        "{listed}"
    );
    assert!(
        !listed.contains("/gone") && !listed.contains("/reused"),
        "{listed}"
    );
}

#[test]
fn a_run_removes_what_gone_runs_left_in_the_local_store_and_keeps_a_live_runs() {
    let ws = Workspace::demo();
    let live = LiveRun::start();
    let tags = tags(&live);
    let container = ws.store.run(&["from", "scratch"]);
    for tag in &tags {
        ws.store.run(&["commit", "--quiet", container.trim(), tag]);
    }
    let out = ws.cip(&["build", "--local-registry", "localhost:5999"]);
    let listed = ws.store.run(&["images", "--format", "{{.Name}}:{{.Tag}}"]);
    assert_swept(&out, &listed, &tags);
}

#[test]
fn a_run_removes_what_gone_runs_left_on_a_docker_daemon_of_this_machine() {
    let dockerd = TestDockerd::start();
    let ws = Workspace::demo();
    let live = LiveRun::start();
    let tags = tags(&live);
    let host = dockerd.host();
    let docker = |args: &[&str]| {
        let mut cmd = Command::new("docker");
        cmd.arg("-H").arg(&host).args(args);
        common::run_ok(&mut cmd)
    };
    let empty = tempfile::tempdir().unwrap();
    let tar = empty.path().join("empty.tar");
    common::run_ok(
        Command::new("tar")
            .arg("cf")
            .arg(&tar)
            .arg("--files-from")
            .arg("/dev/null"),
    );
    docker(&["import", tar.to_str().unwrap(), &tags[0]]);
    for tag in &tags[1..] {
        docker(&["tag", &tags[0], tag]);
    }
    let out = ws.cip_env(
        &[
            "build",
            "--builder",
            "docker",
            "--local-registry",
            "localhost:5999",
        ],
        &[("DOCKER_HOST", host.as_str())],
    );
    let listed = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_swept(&out, &listed, &tags);
}

#[test]
fn a_cancelled_run_removes_the_tags_of_what_it_built_and_did_not_push() {
    let reg = common::TestRegistry::start();
    let ws = Workspace::demo();
    // buildah exports each built image (`push ... oci:DIR`) before cip pushes it: this one takes
    // long enough for the SIGTERM to come between the build and the push.
    let bin = ws.project().parent().unwrap().join("bin");
    let marker = bin.join("exporting");
    let real = fs::read_to_string(bin.join("buildah")).unwrap();
    let slow = real.replacen(
        "exec /usr/bin/buildah",
        &format!(
            "case \"$*\" in *' oci:'*) touch {m}; sleep 60;; esac\nexec /usr/bin/buildah",
            m = marker.display()
        ),
        1,
    );
    common::write_executable(&bin.join("buildah"), &slow);
    let child = ws
        .cip_command(
            &[
                "publish",
                "--remote-registry",
                &reg.addr(),
                "--only-local-platform",
            ],
            &[],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !marker.exists() {
        assert!(std::time::Instant::now() < deadline, "no export started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let run_tags = || {
        ws.store
            .run(&["images", "--format", "{{.Name}}:{{.Tag}}"])
            .lines()
            .filter(|l| l.contains("cip.local/run-"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert!(
        !run_tags().is_empty(),
        "the built image is tagged for the run"
    );
    common::send_signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("of this cancelled run from"), "{stderr}");
    assert_eq!(run_tags(), Vec::<String>::new(), "{stderr}");
}
