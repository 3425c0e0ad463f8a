//! What runs that are gone left behind in the nodes' stores (their per-platform stores too) and in
//! the registry's staging repositories: a run that builds removes the run tags
//! (`cip.local/run-ID/...`) and staging tags (`cip-stage/.../NAME:VERSION-ID`) of runs that are over
//! and says so, and never those of a run that may still live; a cancelled run removes its own.
//! Runs are told apart by their id (`PID-START-WALL-SPACE`, or the older `PID-START-NANOS`): a
//! live process with that pid and start time is the run; a pid now held by a process started at
//! another time is not; a run of another machine is over once older than the stage lease.
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

/// A local buildah node that pushes directly: its builds go to the registry's staging
/// repositories (`cip-stage/linux-amd64/NAME:VERSION-RUN`) before cip copies them.
const DIRECT_NODE: &str = "[nodes.b]\nkind = \"buildah\"\npush = \"direct\"\n";

const STAGING: &str = "cip-stage/linux-amd64/busybox";

/// The args of a publish of linux/amd64 on the direct node into `reg`.
fn direct_publish(reg: &common::TestRegistry) -> Vec<String> {
    ["publish", "--node", "b", "--platform", "linux/amd64"]
        .into_iter()
        .map(str::to_string)
        .chain(["--remote-registry".to_string(), reg.addr()])
        .collect()
}

/// The run id a run of this workspace takes, from its dry run: a run of this machine whose
/// process is gone once the dry run ended.
fn run_id_of_a_dry_run(ws: &Workspace, reg: &common::TestRegistry) -> String {
    let mut args = direct_publish(reg);
    args.extend(["--dry-run".to_string(), "--json".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ws.cip(&args);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let at = stdout
        .find(&format!("{STAGING}:1.0.0-"))
        .unwrap_or_else(|| panic!("no staging reference in the plan: {stdout}"));
    let rest = &stdout[at + STAGING.len() + ":1.0.0-".len()..];
    rest.chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect()
}

/// An id of a run that began `ago` before now, of process `pid` started at `start`, in `space`.
fn id_began(pid: u32, start: u64, ago: std::time::Duration, space: &str) -> String {
    let began = std::time::SystemTime::now() - ago;
    let nanos = began
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{pid}-{start:x}-{nanos:x}-{space}")
}

/// Pushes to `STAGING:TAG` in `reg`, as a node that pushed directly would have, an image of its
/// own (a manifest no other tag names), or with `same_as` the manifest of that tag.
fn push_staged(ws: &Workspace, reg: &common::TestRegistry, tag: &str, same_as: Option<&str>) {
    let dest = reg.docker_ref(&format!("{STAGING}:{tag}"));
    if let Some(other) = same_as {
        common::skopeo(&[
            "copy",
            "--quiet",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &reg.docker_ref(&format!("{STAGING}:{other}")),
            &dest,
        ]);
        return;
    }
    let container = ws.store.run(&["from", "scratch"]);
    let local = "localhost/staged:latest";
    ws.store
        .run(&["config", "--label", &format!("tag={tag}"), container.trim()]);
    ws.store
        .run(&["commit", "--quiet", container.trim(), local]);
    ws.store
        .run(&["push", "--quiet", "--tls-verify=false", local, &dest]);
}

fn staging_tags(reg: &common::TestRegistry) -> Vec<String> {
    common::farm::tags(reg, STAGING)
}

#[test]
fn a_run_removes_the_staging_tags_of_runs_that_are_over_and_keeps_those_that_may_live() {
    let reg = common::TestRegistry::start();
    let ws = Workspace::demo();
    fs::write(
        ws.project().join("cip.toml"),
        format!("[registry]\nstage_lease_hours = 2\n{DIRECT_NODE}"),
    )
    .unwrap();
    let hour = std::time::Duration::from_secs(3600);
    let live = LiveRun::start();
    // A run of this machine whose process is gone, and the pid space ids of this machine carry.
    let gone = run_id_of_a_dry_run(&ws, &reg);
    let space = gone.rsplit('-').next().unwrap().to_string();
    let elsewhere = if space == "0badc0de" {
        "0badbeef"
    } else {
        "0badc0de"
    };
    let tag = |id: &str| format!("1.0.0-{id}");
    let gone_tag = tag(&gone);
    // Of another machine: one that began longer ago than the lease, one that may still run.
    let old_tag = tag(&id_began(2147483600, 1, 3 * hour, elsewhere));
    let young_tag = tag(&id_began(2147483600, 1, hour, elsewhere));
    // Of this machine: a live run that began longer ago than the lease (its process tells it
    // lives, so it is kept); and an id of the older form, which says nothing to another machine.
    let live_tag = tag(&id_began(
        live.child.id(),
        live.start_time(),
        3 * hour,
        &space,
    ));
    let old_form_tag = tag("2147483600-1-1");
    // A run that is over, whose manifest a tag that stays names: a delete would take both.
    let shared_tag = tag(&id_began(2147483601, 1, 3 * hour, elsewhere));
    for t in [&gone_tag, &old_tag, &young_tag, &live_tag, &old_form_tag] {
        push_staged(&ws, &reg, t, None);
    }
    push_staged(&ws, &reg, &shared_tag, Some(&young_tag));

    let args = direct_publish(&reg);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ws.cip(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", text(&out));
    let said = format!(
        "removed 2 staging tags left by earlier runs that are over from {}/{STAGING}: ",
        reg.addr()
    );
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&said))
        .unwrap_or_else(|| panic!("no sweep said: {stderr}"));
    assert!(
        line.contains(&format!("{gone_tag} (its process is gone)")),
        "{line}"
    );
    assert!(
        line.contains(&format!("{old_tag} (began longer ago than the lease)")),
        "{line}"
    );
    let mut kept = vec![young_tag, live_tag, old_form_tag, shared_tag];
    kept.sort();
    assert_eq!(staging_tags(&reg), kept, "{stderr}");
    // What the run published is whole, and its own staging tag went after the copy.
    assert!(common::is_tagged(&reg, "busybox:1.0.0"), "{stderr}");
}

#[test]
fn a_run_cancelled_between_a_direct_push_and_its_copy_removes_its_staging_tag() {
    let reg = common::TestRegistry::start();
    let ws = Workspace::demo();
    fs::write(ws.project().join("cip.toml"), DIRECT_NODE).unwrap();
    // The node's push to the staging name goes through; then it hangs, so the SIGTERM comes
    // after the push and before cip copies the image.
    let bin = ws.project().parent().unwrap().join("bin");
    let marker = bin.join("pushed");
    let real = fs::read_to_string(bin.join("buildah")).unwrap();
    let slow = real.replacen(
        "exec /usr/bin/buildah \"$@\"",
        &format!(
            "case \"$*\" in *'docker://'*cip-stage*) /usr/bin/buildah \"$@\" && touch {m}; \
             sleep 60; exit 1;; esac\nexec /usr/bin/buildah \"$@\"",
            m = marker.display()
        ),
        1,
    );
    assert_ne!(slow, real);
    common::write_executable(&bin.join("buildah"), &slow);
    let args = direct_publish(&reg);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = ws
        .cip_command(&args, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while !marker.exists() {
        assert!(std::time::Instant::now() < deadline, "no direct push ended");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let pushed = staging_tags(&reg);
    assert_eq!(
        pushed.len(),
        1,
        "the node pushed to its staging name: {pushed:?}"
    );
    common::send_signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "removed 1 staging tag of this cancelled run from {}/{STAGING}: {}",
            reg.addr(),
            pushed[0]
        )),
        "{stderr}"
    );
    assert_eq!(staging_tags(&reg), Vec::<String>::new(), "{stderr}");
}

#[test]
fn a_run_sweeps_the_per_platform_stores_of_its_builds() {
    let reg = common::TestRegistry::start();
    let ws = Workspace::demo();
    let live = LiveRun::start();
    // The store buildah builds linux/arm64 in, beside the configured one, as a run of cip makes it.
    let sibling = |p: std::path::PathBuf| format!("{}-linux-arm64", p.display());
    let (root, runroot) = (sibling(ws.store.root()), sibling(ws.store.runroot()));
    let arm64 = |args: &[&str]| {
        let mut cmd = Command::new("buildah");
        cmd.args([
            "--storage-driver",
            "vfs",
            "--root",
            &root,
            "--runroot",
            &runroot,
        ])
        .args(args);
        common::run_ok(&mut cmd)
    };
    let tags = tags(&live);
    let container = arm64(&["from", "scratch"]);
    for tag in &tags {
        arm64(&["commit", "--quiet", container.trim(), tag]);
    }
    let out = ws.cip(&[
        "publish",
        "--platform",
        "linux/arm64",
        "--remote-registry",
        &reg.addr(),
        "busybox",
    ]);
    let listed = arm64(&["images", "--format", "{{.Name}}:{{.Tag}}"]);
    assert_swept(&out, &listed, &tags);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("(store {root})")),
        "{}",
        text(&out)
    );
}
