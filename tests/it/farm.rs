//! The farm of build nodes against real engines: two docker daemons on their own sockets, a podman
//! system service and the local buildah, one daemon declared native for linux/arm64 in cip.toml
//! (QEMU does the work here, which is how the routing is proven on one machine); a node reached
//! over ssh://; a node down; a node killed in the middle of a run. Which node built what is read
//! from each engine's own records (docker and podman events, the buildah calls), not from cip.
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common;
use common::docker::TestDockerd;
use common::farm::{docker_built_by_run, kill_dockerd, TestPodmanService, TestSshd};
use common::workspace::{text, Workspace};
use common::TestRegistry;

fn write_cip_toml(ws: &Workspace, text: &str) {
    fs::write(ws.project().join("cip.toml"), text).unwrap();
}

/// Runs cip to its end, returning its pid (the builder tags of its run carry it) and its output.
fn run_cip(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> (u32, std::process::Output) {
    let child = ws
        .cip_command(args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cip");
    let pid = child.id();
    (pid, child.wait_with_output().unwrap())
}

/// `(platform, node)` of each image's builds in a run summary, as `NAME PLATFORM NODE` lines.
fn built_on(o: &std::process::Output) -> Vec<String> {
    let doc: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)));
    let mut v: Vec<String> = doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| {
            let name = i["name"].as_str().unwrap().to_string();
            i["built_on"].as_array().unwrap().iter().map(move |b| {
                format!(
                    "{name} {} {}",
                    b["platform"].as_str().unwrap(),
                    b["node"].as_str().unwrap()
                )
            })
        })
        .collect();
    v.sort();
    v
}

/// The builds of run `pid` the workspace's buildah ran, as `NAME:VERSION-PLATFORM` tags.
fn buildah_built_by_run(ws: &Workspace, pid: u32) -> Vec<String> {
    let prefix = format!("cip.local/run-{pid}-");
    let mut v: Vec<String> = ws
        .buildah_calls()
        .iter()
        .filter(|l| l.split_whitespace().any(|w| w == "bud"))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let tag = words[words.iter().position(|w| *w == "-t")? + 1];
            Some(tag.strip_prefix(&prefix)?.split_once('/')?.1.to_string())
        })
        .collect();
    v.sort();
    v
}

/// What the engines' own records say was built, as `NAME PLATFORM NODE` lines like [`built_on`].
fn engine_records(records: &[(&str, Vec<String>)]) -> Vec<String> {
    let mut v: Vec<String> = records
        .iter()
        .flat_map(|(node, tags)| {
            tags.iter().map(move |t| {
                // hello:1.0.0-linux-arm64 -> hello linux/arm64 NODE
                let (name, rest) = t.split_once(':').unwrap();
                let platform = rest.split_once('-').unwrap().1.replacen('-', "/", 1);
                format!("{name} {platform} {node}")
            })
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_farm_builds_each_platform_on_its_nodes_and_publishes_as_one_node_would() {
    let reg = TestRegistry::start_logging_requests();
    let amd1 = TestDockerd::start();
    let arm1 = TestDockerd::start();
    let podman = TestPodmanService::start();
    let ws = Workspace::demo();
    write_cip_toml(
        &ws,
        &format!(
            "[nodes.amd-1]\nkind = \"docker\"\nhost = \"{}\"\njobs = 1\n\n\
             [nodes.amd-2]\nkind = \"podman\"\nurl = \"{}\"\njobs = 1\n\n\
             [nodes.local]\nkind = \"buildah\"\njobs = 1\n\n\
             [nodes.arm-1]\nkind = \"docker\"\nhost = \"{}\"\njobs = 2\nplatforms = [\"linux/arm64\"]\n\n\
             [farms.ci]\nnodes = [\"amd-1\", \"amd-2\", \"local\", \"arm-1\"]\n",
            amd1.host(),
            podman.url(),
            arm1.host()
        ),
    );
    let args = [
        "publish",
        "--farm",
        "ci",
        "--remote-registry",
        &reg.addr(),
        "--json",
    ];
    let (pid, out) = run_cip(&ws, &args, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("under emulation on node"),
        "arm64 has a native node: no emulation warning\n{stderr}"
    );
    assert!(
        stderr.contains("build app:1.0.0 linux/arm64 on arm-1"),
        "{stderr}"
    );

    // What each engine itself recorded is what cip reports.
    let records = engine_records(&[
        ("amd-1", docker_built_by_run(&amd1, pid)),
        ("amd-2", podman.built_by_run(pid)),
        ("local", buildah_built_by_run(&ws, pid)),
        ("arm-1", docker_built_by_run(&arm1, pid)),
    ]);
    let reported = built_on(&out);
    assert_eq!(records, reported, "{}", text(&out));
    assert_eq!(reported.len(), 8, "4 images, 2 platforms: {reported:?}");
    // Every arm64 step on the declared arm64 node, the amd64 ones spread over the three others.
    for line in &reported {
        let arm = line.contains("linux/arm64");
        assert_eq!(line.ends_with(" arm-1"), arm, "{line}");
    }
    for node in ["amd-1", "amd-2", "local"] {
        assert!(
            reported.iter().any(|l| l.ends_with(&format!(" {node}"))),
            "{node} got no work: {reported:?}"
        );
    }
    // The indexes hold both platforms, each of its architecture.
    for image in ["busybox:1.0.0", "hello:1.0.0", "tools:1.0.0", "app:1.0.0"] {
        let index = common::raw_manifest(&reg, image);
        assert_eq!(
            common::index_platforms(&index),
            ["linux/amd64", "linux/arm64"],
            "{image}"
        );
        for arch in ["amd64", "arm64"] {
            let config = common::image_config(&reg, image, arch);
            assert_eq!(config["architecture"], arch, "{image}");
        }
        assert!(common::is_tagged(&reg, &image.replace("1.0.0", "latest")));
    }
    // Every node is this machine's engine: each pushed its images itself (docker's daemons,
    // the podman service and buildah: containers/image), cip uploaded no blob.
    let uploads = common::farm::blob_uploads(&reg);
    for agent in ["docker/", "containers/"] {
        assert!(
            uploads.iter().any(|u| u.agent.starts_with(agent)),
            "no upload by {agent}: {uploads:?}"
        );
    }
    for u in &uploads {
        assert!(u.repository.starts_with("cip-stage/"), "{u:?}");
        assert!(!u.agent.starts_with("oci-client"), "cip uploaded {u:?}");
    }

    // A second run has nothing to build and contacts no node: with every node gone, it still
    // succeeds, without a word about them.
    drop(amd1);
    drop(arm1);
    drop(podman);
    let (_, again) = run_cip(&ws, &args, &[]);
    assert!(again.status.success(), "{}", text(&again));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("4 images up to date"), "{stderr}");
    assert!(!stderr.contains("node"), "{stderr}");
}

/// The blocks of a `cip farm` listing: a line naming the node, then its indented lines.
fn blocks(listing: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in listing.lines() {
        match out.last_mut() {
            Some(b) if line.starts_with("  ") => {
                b.push('\n');
                b.push_str(line);
            }
            _ => out.push(line.to_string()),
        }
    }
    out
}

#[test]
fn farm_lists_each_node_and_says_why_one_is_down_within_the_probe_timeout() {
    let dockerd = TestDockerd::start();
    let ws = Workspace::demo();
    // A socket that takes connections and never answers: a daemon that hangs.
    let hung_dir = tempfile::tempdir_in("/tmp").unwrap();
    let hung = hung_dir.path().join("hung.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&hung).unwrap();
    write_cip_toml(
        &ws,
        &format!(
            "[nodes.up]\nkind = \"docker\"\nhost = \"{}\"\n\n\
             [nodes.gone]\nkind = \"docker\"\nhost = \"unix:///nonexistent/docker.sock\"\n\n\
             [nodes.hung]\nkind = \"docker\"\nhost = \"unix://{}\"\n\n\
             [nodes.arm]\nkind = \"docker\"\nhost = \"{}\"\nplatforms = [\"linux/arm64\"]\njobs = 3\n",
            dockerd.host(),
            hung.display(),
            dockerd.host()
        ),
    );
    let env = [("CIP_FARM_PROBE_SECONDS", "3")];
    let started = Instant::now();
    let out = ws.cip_env(&["farm"], &env);
    let took = started.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    let listing = String::from_utf8_lossy(&out.stdout);
    let block = |name: &str| -> String {
        blocks(&listing)
            .into_iter()
            .find(|b| b.starts_with(&format!("{name}  docker")))
            .unwrap_or_else(|| panic!("no {name} in {listing}"))
    };
    let up = block("up");
    assert!(up.contains("reachable: docker 20.10"), "{listing}");
    assert!(
        up.contains("native: linux/amd64 (reported by the node)"),
        "{listing}"
    );
    assert!(up.contains("emulates: linux/arm64"), "{listing}");
    assert!(up.contains("jobs: "), "{listing}");
    assert!(
        up.contains("route: direct") && up.contains("the node is this machine's engine"),
        "{listing}"
    );
    let arm = block("arm");
    assert!(
        arm.contains("native: linux/arm64 (declared in cip.toml; the node reports linux/amd64)"),
        "{listing}"
    );
    assert!(arm.contains("jobs: 3"), "{listing}");
    assert!(block("gone").contains("unreachable:"), "{listing}");
    assert!(
        !block("gone").contains("apt-get"),
        "installing docker here is no fix for a node: {listing}"
    );
    assert!(
        block("gone").contains("Cannot connect to the Docker daemon"),
        "{listing}"
    );
    assert!(
        block("hung").contains("unreachable: no answer within 3s (the probe timeout"),
        "{listing}"
    );
    // The hung node cost the probe timeout once, not the client's own 15 s per call.
    assert!(took < Duration::from_secs(12), "took {took:?}");

    let json = ws.cip_env(&["farm", "--node", "hung,up", "--json"], &env);
    assert!(json.status.success(), "{}", text(&json));
    let doc: Value = serde_json::from_slice(&json.stdout).unwrap();
    let nodes = doc["nodes"].as_array().unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["hung", "up"]);
    assert_eq!(nodes[0]["reachable"], false);
    assert_eq!(nodes[1]["reachable"], true);
    assert_eq!(nodes[1]["native_source"], "reported");

    let unknown = ws.cip_env(&["farm", "--node", "upp"], &env);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no node \"upp\"")
            && String::from_utf8_lossy(&unknown.stderr).contains("did you mean \"up\"?"),
        "{}",
        text(&unknown)
    );
}

#[test]
fn a_docker_node_over_ssh_builds_and_its_images_come_back_through_cip() {
    let reg = TestRegistry::start();
    let dockerd = TestDockerd::start();
    let sshd = TestSshd::start(&dockerd.host());
    let ws = Workspace::demo();
    write_cip_toml(
        &ws,
        "[nodes.far]\nkind = \"docker\"\nhost = \"ssh://farmnode\"\n",
    );
    let path = format!(
        "{}:{}",
        sshd.bin().display(),
        std::env::var("PATH").unwrap()
    );
    // Every docker call of the probe is an ssh session: give a loaded machine time.
    let env = [("PATH", path.as_str()), ("CIP_FARM_PROBE_SECONDS", "90")];
    let listing = ws.cip_env(&["farm", "--remote-registry", &reg.addr()], &env);
    assert!(listing.status.success(), "{}", text(&listing));
    let shown = String::from_utf8_lossy(&listing.stdout);
    assert!(shown.contains("far  docker  ssh://farmnode"), "{shown}");
    // The registry is on this machine's loopback, which a node elsewhere cannot reach.
    assert!(
        shown.contains("route: through cip: the image comes back to this machine")
            && shown.contains("is on this machine's loopback"),
        "{shown}"
    );
    assert!(shown.contains("emulates: unknown"), "{shown}");

    let args = [
        "publish",
        "--node",
        "far",
        "--platform",
        "linux/amd64",
        "--remote-registry",
        &reg.addr(),
        "--json",
    ];
    // The workspace puts its own bin first on PATH: the ssh wrapper must stay before /usr/bin.
    let (pid, out) = run_cip(&ws, &args, &env);
    assert!(out.status.success(), "{}", text(&out));
    let built = docker_built_by_run(&dockerd, pid);
    assert_eq!(
        built,
        [
            "app:1.0.0-linux-amd64",
            "busybox:1.0.0-linux-amd64",
            "hello:1.0.0-linux-amd64",
            "tools:1.0.0-linux-amd64"
        ],
        "{}",
        text(&out)
    );
    let config = common::image_config(&reg, "app:1.0.0", "amd64");
    assert_eq!(config["architecture"], "amd64");
}

/// On a node of another machine (docker over ssh), which runs of several machines use, a run is
/// over once it began longer ago than the lease: an old run of another pid space is swept, a young
/// one and a tag with an older id (no wall-clock start) are kept.
#[test]
fn a_run_sweeps_a_docker_node_over_ssh_of_runs_older_than_the_lease_only() {
    let reg = TestRegistry::start();
    let dockerd = TestDockerd::start();
    let sshd = TestSshd::start(&dockerd.host());
    let ws = Workspace::demo();
    write_cip_toml(
        &ws,
        "[nodes.far]\nkind = \"docker\"\nhost = \"ssh://farmnode\"\n",
    );
    let began = |ago: Duration| {
        let at = std::time::SystemTime::now() - ago;
        let nanos = at.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        format!("2147483600-1-{nanos:x}-0badc0de")
    };
    let old = format!(
        "cip.local/run-{}/old:1.0.0-linux-amd64",
        began(Duration::from_secs(48 * 3600))
    );
    let young = format!(
        "cip.local/run-{}/young:1.0.0-linux-amd64",
        began(Duration::from_secs(60))
    );
    let legacy = "cip.local/run-2147483600-1-1/legacy:1.0.0-linux-amd64".to_string();
    let docker = |args: &[&str]| {
        common::run_ok(
            Command::new("docker")
                .arg("-H")
                .arg(dockerd.host())
                .args(args),
        )
    };
    let empty = tempfile::tempdir().unwrap();
    let tar = empty.path().join("empty.tar");
    common::run_ok(
        Command::new("tar")
            .arg("cf")
            .arg(&tar)
            .args(["--files-from", "/dev/null"]),
    );
    docker(&["import", tar.to_str().unwrap(), &old]);
    for tag in [&young, &legacy] {
        docker(&["tag", &old, tag]);
    }
    let path = format!(
        "{}:{}",
        sshd.bin().display(),
        std::env::var("PATH").unwrap()
    );
    let env = [("PATH", path.as_str()), ("CIP_FARM_PROBE_SECONDS", "90")];
    let args = [
        "publish",
        "busybox",
        "--node",
        "far",
        "--platform",
        "linux/amd64",
        "--remote-registry",
        &reg.addr(),
    ];
    let (_, out) = run_cip(&ws, &args, &env);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("removed 1 tag left by earlier runs that are gone, from ssh://farmnode")
            && stderr.contains(&old),
        "{stderr}"
    );
    let listed = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(!listed.contains("/old:"), "{listed}");
    assert!(
        listed.contains("/young:") && listed.contains("/legacy:"),
        "{listed}"
    );
}

/// Four independent images whose builds each sleep `seconds`, for linux/amd64.
fn slow_tree(dir: &Path, seconds: u32) {
    for name in ["a", "b", "c", "d"] {
        let ctx = dir.join("contexts").join(format!("00-{name}"));
        fs::create_dir_all(&ctx).unwrap();
        fs::copy(common::busybox_path("amd64"), ctx.join("busybox")).unwrap();
        fs::write(
            ctx.join("Dockerfile"),
            format!(
                "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sleep\", \"{seconds}\"]\n"
            ),
        )
        .unwrap();
        fs::write(
            ctx.join("info.edn"),
            "{:version \"1.0.0\" :platforms #{\"linux/amd64\"}}",
        )
        .unwrap();
    }
}

#[test]
fn the_steps_of_a_node_killed_mid_run_finish_on_another_node() {
    let reg = TestRegistry::start();
    let doomed = TestDockerd::start();
    let spare = TestDockerd::start();
    let fixture = tempfile::tempdir().unwrap();
    slow_tree(fixture.path(), 4);
    let ws = Workspace::new(fixture.path());
    write_cip_toml(
        &ws,
        &format!(
            "[nodes.doomed]\nkind = \"docker\"\nhost = \"{}\"\njobs = 1\n\n\
             [nodes.spare]\nkind = \"docker\"\nhost = \"{}\"\njobs = 1\n",
            doomed.host(),
            spare.host()
        ),
    );
    let log = ws.project().join("cip-stderr.log");
    let mut child = ws
        .cip_command(
            &[
                "publish",
                "--node",
                "doomed,spare",
                "--remote-registry",
                &reg.addr(),
                "--json",
            ],
            &[],
        )
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Kill the node once a build is running on it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("on doomed: started")
    {
        assert!(
            Instant::now() < deadline,
            "{}",
            fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    kill_dockerd(&doomed);
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let status = child.wait().unwrap();
    let stderr = fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{stderr}\n{stdout}");
    assert!(
        stderr.contains(
            "on node doomed failed and the node no longer answers: building it on node spare"
        ),
        "{stderr}"
    );
    // Every image was built and published; the spare daemon's own events hold the moved ones.
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    for image in doc["images"].as_array().unwrap() {
        assert_eq!(image["result"], "built", "{image}");
        assert!(common::is_tagged(
            &reg,
            &format!("{}:1.0.0", image["name"].as_str().unwrap())
        ));
    }
    let on_spare = docker_built_by_run(&spare, pid);
    assert_eq!(
        on_spare,
        [
            "a:1.0.0-linux-amd64",
            "b:1.0.0-linux-amd64",
            "c:1.0.0-linux-amd64",
            "d:1.0.0-linux-amd64"
        ],
        "{stderr}"
    );
    let moved = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["node"] == "spare")
        .count();
    assert_eq!(moved, 4, "{stdout}");
}

/// Waits until `log` holds `text`.
fn wait_for_line(log: &Path, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !fs::read_to_string(log).unwrap_or_default().contains(text) {
        assert!(
            Instant::now() < deadline,
            "no {text:?} in:\n{}",
            fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn without_a_native_node_a_platform_is_emulated_with_one_warning_or_refused() {
    let reg = TestRegistry::start();
    let dockerd = TestDockerd::start();
    let ws = Workspace::demo();
    write_cip_toml(
        &ws,
        &format!(
            "[nodes.amd-1]\nkind = \"docker\"\nhost = \"{}\"\n",
            dockerd.host()
        ),
    );
    let plan = ws.cip(&[
        "plan",
        "--node",
        "amd-1",
        "--remote-registry",
        &reg.addr(),
        "--json",
    ]);
    assert!(plan.status.success(), "{}", text(&plan));
    let doc: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(
        doc["placement_warnings"],
        serde_json::json!(["no native node for linux/arm64: built under emulation on node amd-1"])
    );
    let builds: Vec<&Value> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "build")
        .collect();
    assert_eq!(builds.len(), 8);
    for b in builds {
        assert_eq!(b["node"], 0);
        assert_eq!(b["emulated"], b["platform"] == "linux/arm64", "{b}");
    }

    let args = [
        "publish",
        "--node",
        "amd-1",
        "--native-only",
        "--remote-registry",
        &reg.addr(),
    ];
    let (pid, out) = run_cip(&ws, &args, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--native-only: no native node for linux/arm64 on node amd-1"),
        "{}",
        text(&out)
    );
    assert!(
        docker_built_by_run(&dockerd, pid).is_empty(),
        "nothing was built"
    );
    assert!(!common::is_tagged(&reg, "busybox:1.0.0"));
}

#[test]
fn ctrl_c_cancels_the_build_on_a_docker_node() {
    let reg = TestRegistry::start();
    let dockerd = TestDockerd::start();
    let fixture = tempfile::tempdir().unwrap();
    // A duration no other test sleeps: its RUN step is found among the machine's processes.
    slow_tree(fixture.path(), 347);
    let ws = Workspace::new(fixture.path());
    write_cip_toml(
        &ws,
        &format!(
            "[nodes.n]\nkind = \"docker\"\nhost = \"{}\"\njobs = 1\n",
            dockerd.host()
        ),
    );
    let log = ws.project().join("cip-stderr.log");
    let child = ws
        .cip_command(
            &["publish", "--node", "n", "--remote-registry", &reg.addr()],
            &[],
        )
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for_line(&log, "on n: started");
    let running = || {
        std::process::Command::new("pgrep")
            .args(["-f", "busybox sleep 347"])
            .output()
            .unwrap()
            .status
            .success()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !running() {
        assert!(Instant::now() < deadline, "the RUN step never started");
        std::thread::sleep(Duration::from_millis(200));
    }
    common::send_signal(&child, "INT");
    let status = child.wait_with_output().unwrap().status;
    assert_eq!(
        status.code(),
        Some(130),
        "{}",
        fs::read_to_string(&log).unwrap()
    );
    // The daemon (not a child of cip) ended the build's RUN step once its client went away.
    let deadline = Instant::now() + Duration::from_secs(30);
    while running() {
        assert!(
            Instant::now() < deadline,
            "the build still runs on the node after cip exited"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!common::is_tagged(&reg, "a:1.0.0"));
}

#[test]
fn sigterm_cancels_the_build_on_a_podman_service_node() {
    let reg = TestRegistry::start();
    let service = TestPodmanService::start();
    let fixture = tempfile::tempdir().unwrap();
    // A duration no other test sleeps: its RUN step is found among the machine's processes.
    slow_tree(fixture.path(), 25);
    let ws = Workspace::new(fixture.path());
    write_cip_toml(
        &ws,
        &format!(
            "[nodes.p]\nkind = \"podman\"\nurl = \"{}\"\njobs = 1\n",
            service.url()
        ),
    );
    let log = ws.project().join("cip-stderr.log");
    let child = ws
        .cip_command(
            &["publish", "--node", "p", "--remote-registry", &reg.addr()],
            &[],
        )
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for_line(&log, "on p: started");
    let running = || !processes_naming("busybox sleep 25 ").is_empty();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !running() {
        assert!(Instant::now() < deadline, "the RUN step never started");
        std::thread::sleep(Duration::from_millis(200));
    }
    common::send_signal(&child, "TERM");
    let cancelled = Instant::now();
    let status = child.wait_with_output().unwrap().status;
    assert_eq!(
        status.code(),
        Some(143),
        "{}",
        fs::read_to_string(&log).unwrap()
    );
    // The service, not a child of cip, ran the step: it is gone, and so is the build's container.
    let containers = || {
        let out = std::process::Command::new("podman")
            .args(["--url", &service.url(), "ps", "-a", "--external", "-q"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    while running() || !containers().is_empty() {
        assert!(
            cancelled.elapsed() < Duration::from_secs(20),
            "the build still runs on the service 20 s after SIGTERM: {:?}, containers {}",
            processes_naming("busybox sleep 25 "),
            containers()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!common::is_tagged(&reg, "a:1.0.0"));
}

#[test]
fn sigterm_cancels_the_build_on_a_podman_service_node_over_ssh() {
    let reg = TestRegistry::start();
    let service = TestPodmanService::start();
    // The sshd's authorized key sets DOCKER_HOST, which podman does not read.
    let sshd = TestSshd::start("unix:///nonexistent.sock");
    let d = sshd.dir();
    let config = fs::read_to_string(d.join("sshd_config")).unwrap();
    let port = config
        .lines()
        .find_map(|l| l.strip_prefix("Port "))
        .unwrap()
        .to_string();
    // podman reaches the service with its own ssh client and CONTAINER_SSHKEY; cip's `ssh` must
    // know the host's key (it checks it, as it should): a known_hosts of the test's sshd.
    let host_key = fs::read_to_string(d.join("host_key.pub")).unwrap();
    let known_hosts = d.join("known_hosts");
    fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_key}")).unwrap();
    let fixture = tempfile::tempdir().unwrap();
    // A duration no other test sleeps: its RUN step is found among the machine's processes.
    slow_tree(fixture.path(), 26);
    let ws = Workspace::new(fixture.path());
    let bin = ws.project().parent().unwrap().join("bin");
    common::write_executable(
        &bin.join("ssh"),
        &format!(
            "#!/bin/sh\nexec /usr/bin/ssh -o UserKnownHostsFile={} \"$@\"\n",
            known_hosts.display()
        ),
    );
    let socket = service.url().strip_prefix("unix://").unwrap().to_string();
    write_cip_toml(
        &ws,
        &format!(
            "[nodes.far]\nkind = \"podman\"\nurl = \"ssh://root@127.0.0.1:{port}{socket}\"\njobs = 1\n\
             push = \"through-cip\"\n",
        ),
    );
    let log = ws.project().join("cip-stderr.log");
    let key = d.join("client_key").display().to_string();
    let child = ws
        .cip_command(
            &["publish", "--node", "far", "--remote-registry", &reg.addr()],
            &[("CONTAINER_SSHKEY", key.as_str())],
        )
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for_line(&log, "on far: started");
    let running = || !processes_naming("busybox sleep 26 ").is_empty();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !running() {
        assert!(
            Instant::now() < deadline,
            "the RUN step never started: {}",
            fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    common::send_signal(&child, "TERM");
    let cancelled = Instant::now();
    let status = child.wait_with_output().unwrap().status;
    assert_eq!(
        status.code(),
        Some(143),
        "{}",
        fs::read_to_string(&log).unwrap()
    );
    // The step ran in the service, reached over ssh: it ended well before its 26 s.
    while running() {
        assert!(
            cancelled.elapsed() < Duration::from_secs(20),
            "the build still runs on the service 20 s after SIGTERM: {:?}",
            processes_naming("busybox sleep 26 ")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!common::is_tagged(&reg, "a:1.0.0"));
}

/// Every blob of the image `image` (`NAME:TAG`) of `reg` for architecture `arch`: its config and
/// layers.
fn blobs_of(reg: &TestRegistry, image: &str, arch: &str) -> Vec<String> {
    let index = common::raw_manifest(reg, image);
    let digest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == arch)
        .unwrap_or_else(|| panic!("no {arch} in {image}: {index}"))["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let name = image.split(':').next().unwrap();
    let manifest = common::raw_manifest(reg, &format!("{name}@{digest}"));
    std::iter::once(&manifest["config"])
        .chain(manifest["layers"].as_array().unwrap())
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect()
}

/// What a registry holds of the demo's images, as a single-node publish leaves it: per image its
/// tags, index platforms and annotations, and the architecture of each platform's config.
fn published_content(reg: &TestRegistry) -> Vec<String> {
    let mut out = Vec::new();
    for name in ["busybox", "hello", "tools", "app"] {
        let index = common::raw_manifest(reg, &format!("{name}:1.0.0"));
        out.push(format!(
            "{name}: tags {:?}, platforms {:?}, annotations {}",
            common::farm::tags(reg, name),
            common::index_platforms(&index),
            index["annotations"]
        ));
        for arch in ["amd64", "arm64"] {
            let config = common::image_config(reg, &format!("{name}:1.0.0"), arch);
            out.push(format!(
                "{name} {arch}: config of {}/{}",
                config["os"], config["architecture"]
            ));
        }
    }
    out
}

#[test]
fn nodes_push_directly_or_through_cip_and_the_registry_holds_what_one_node_publishes() {
    let reg = TestRegistry::start_logging_requests();
    let dockerd = TestDockerd::start();
    let ws = Workspace::demo();
    // amd64 on a daemon of this machine (direct by default); arm64 on the same daemon, declared
    // native for it and kept to the through-cip route.
    write_cip_toml(
        &ws,
        &format!(
            "[nodes.amd-1]\nkind = \"docker\"\nhost = \"{host}\"\njobs = 2\n\n\
             [nodes.arm-1]\nkind = \"docker\"\nhost = \"{host}\"\njobs = 2\n\
             platforms = [\"linux/arm64\"]\npush = \"through-cip\"\n",
            host = dockerd.host()
        ),
    );
    let listing = ws.cip(&["farm", "--remote-registry", &reg.addr()]);
    assert!(listing.status.success(), "{}", text(&listing));
    let shown = String::from_utf8_lossy(&listing.stdout).into_owned();
    let block = |name: &str| -> String {
        blocks(&shown)
            .into_iter()
            .find(|b| b.starts_with(&format!("{name}  docker")))
            .unwrap_or_else(|| panic!("no {name} in {shown}"))
    };
    assert!(
        block("amd-1").contains("route: direct: the node pushes")
            && block("amd-1").contains("the node is this machine's engine"),
        "{shown}"
    );
    assert!(
        block("arm-1").contains("route: through cip")
            && block("arm-1").contains("push = \"through-cip\" in cip.toml"),
        "{shown}"
    );
    let json = ws.cip(&["farm", "--json", "--remote-registry", &reg.addr()]);
    let doc: Value = serde_json::from_slice(&json.stdout).unwrap();
    let routes: Vec<&str> = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["push_route"].as_str().unwrap())
        .collect();
    assert_eq!(routes, ["direct", "through-cip"], "amd-1, arm-1");

    // The plan says each build's route, and where a direct one is staged.
    let farm = ["--node", "amd-1,arm-1", "--remote-registry", &reg.addr()];
    let plan = ws.cip(&[&["plan", "--json"][..], &farm].concat());
    assert!(plan.status.success(), "{}", text(&plan));
    let doc: Value = serde_json::from_slice(&plan.stdout).unwrap();
    for s in doc["steps"].as_array().unwrap() {
        if s["action"] != "build" {
            continue;
        }
        let amd64 = s["platform"] == "linux/amd64";
        let output = &s["output"];
        assert_eq!(
            output["route"],
            if amd64 { "direct" } else { "through-cip" },
            "{s}"
        );
        // A through-cip build is staged too: for its fallback node, which pushes directly.
        let slug = s["platform"].as_str().unwrap().replace('/', "-");
        let staging = output["staging"].as_str().unwrap_or_default();
        let prefix = format!("{}/cip-stage/{slug}/", reg.addr());
        assert!(staging.starts_with(&prefix), "{s}");
        assert!(staging.ends_with(":1.0.0-RUN"), "{s}");
    }

    let dry = ws.cip(&[&["publish", "--dry-run"][..], &farm].concat());
    assert!(dry.status.success(), "{}", text(&dry));
    let table = String::from_utf8_lossy(&dry.stdout);
    let direct = format!(
        "build linux/amd64, push direct (the node pushes, via {}/cip-stage/linux-amd64/app:1.0.0-",
        reg.addr()
    );
    assert!(table.contains(&direct), "{table}");
    assert!(
        table.contains("build linux/arm64, push through cip"),
        "{table}"
    );

    let out = ws.cip(&[&["publish", "--json"][..], &farm].concat());
    assert!(out.status.success(), "{}", text(&out));

    // The registry holds what a single-node publish (the local buildah, through cip) leaves.
    let single = TestRegistry::start();
    let alone = Workspace::demo();
    let one = alone.cip(&["publish", "--remote-registry", &single.addr()]);
    assert!(one.status.success(), "{}", text(&one));
    assert_eq!(published_content(&reg), published_content(&single));

    // Who uploaded what: the amd64 images' blobs came from the daemon (its user agent) into the
    // staging names; cip uploaded only what the through-cip arm64 builds hold, into the final
    // repositories, and moved the staged amd64 images by mounting their blobs.
    let uploads = common::farm::blob_uploads(&reg);
    let by_docker: Vec<&common::farm::Upload> = uploads
        .iter()
        .filter(|u| u.agent.starts_with("docker/"))
        .collect();
    let by_others: Vec<&common::farm::Upload> = uploads
        .iter()
        .filter(|u| !u.agent.starts_with("docker/"))
        .collect();
    let mut amd64_blobs = Vec::new();
    let mut arm64_blobs = Vec::new();
    for name in ["busybox", "hello", "tools", "app"] {
        amd64_blobs.extend(blobs_of(&reg, &format!("{name}:1.0.0"), "amd64"));
        arm64_blobs.extend(blobs_of(&reg, &format!("{name}:1.0.0"), "arm64"));
    }
    assert!(!by_docker.is_empty(), "{uploads:?}");
    for u in &by_docker {
        assert!(u.repository.starts_with("cip-stage/linux-amd64/"), "{u:?}");
        assert!(amd64_blobs.contains(&u.digest), "{u:?}");
    }
    for u in &by_others {
        assert!(!u.repository.starts_with("cip-stage/"), "{u:?}");
        assert!(
            arm64_blobs.contains(&u.digest),
            "cip uploaded a blob only the amd64 images hold, which the node pushed: {u:?}"
        );
    }
    for digest in amd64_blobs.iter().filter(|d| !arm64_blobs.contains(d)) {
        assert!(
            by_docker.iter().any(|u| &u.digest == digest),
            "{digest} was not uploaded by the node: {uploads:?}"
        );
    }
    assert!(!by_others.is_empty(), "the arm64 images came through cip");

    // The staging names are gone (the registry allows deletes), the node keeps no tag of them.
    for repo in common::farm::repositories(&reg) {
        if repo.starts_with("cip-stage/") {
            assert_eq!(
                common::farm::tags(&reg, &repo),
                Vec::<String>::new(),
                "{repo}"
            );
        }
    }
    let images = std::process::Command::new("docker")
        .args([
            "-H",
            &dockerd.host(),
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
        ])
        .output()
        .unwrap();
    let images = String::from_utf8_lossy(&images.stdout);
    assert!(!images.contains("cip-stage"), "{images}");
    assert!(!images.contains("cip.local/run-"), "{images}");
}

#[test]
fn a_stage_run_on_a_node_that_pushes_directly_stages_what_the_node_pushed() {
    let reg = TestRegistry::start_logging_requests();
    let dockerd = TestDockerd::start();
    let ws = Workspace::demo();
    write_cip_toml(
        &ws,
        &format!(
            "[nodes.amd-1]\nkind = \"docker\"\nhost = \"{}\"\njobs = 2\n",
            dockerd.host()
        ),
    );
    let out = ws.cip(&[
        "publish",
        "--stage",
        "--platform",
        "linux/amd64",
        "--node",
        "amd-1",
        "--remote-registry",
        &reg.addr(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // The stage repository is the staging name too: the node's upload went there, and the
    // stage's index names the manifest the node pushed.
    let uploads = common::farm::blob_uploads(&reg);
    assert!(!uploads.is_empty());
    for u in &uploads {
        assert!(u.agent.starts_with("docker/"), "{u:?}");
        assert!(u.repository.starts_with("cip-stage/linux-amd64/"), "{u:?}");
    }
    let repo = "cip-stage/linux-amd64/app";
    let tags = common::farm::tags(&reg, repo);
    assert_eq!(tags.len(), 2, "{tags:?}");
    assert_eq!(tags[0], "1.0.0", "{tags:?}");
    assert!(
        tags[1].starts_with("1.0.0-"),
        "the node's staging tag: {tags:?}"
    );
    let index = common::raw_manifest(&reg, &format!("{repo}:1.0.0"));
    assert_eq!(common::index_platforms(&index), ["linux/amd64"]);
    let staged = common::skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &reg.docker_ref(&format!("{repo}:{}", tags[1])),
    ]);
    assert_eq!(index["manifests"][0]["digest"], staged.trim());
    let config = common::image_config(&reg, &format!("{repo}:1.0.0"), "amd64");
    assert_eq!(config["architecture"], "amd64");
    assert!(
        !common::is_tagged(&reg, "app:1.0.0"),
        "nothing in the final repository"
    );
}

/// The live processes (zombies aside) whose command line names `needle`, as `PID CMDLINE`.
fn processes_naming(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if cmdline.contains(needle) && !zombie {
            found.push(format!("{pid} {cmdline}"));
        }
    }
    found
}

#[test]
fn a_node_that_never_answers_leaves_no_probe_running_after_cip() {
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    // Sockets that take connections and never answer, named so that their probes can be found.
    let hung_dir = tempfile::tempdir_in("/tmp").unwrap();
    let docker_sock = hung_dir.path().join("never-answers-docker.sock");
    let podman_sock = hung_dir.path().join("never-answers-podman.sock");
    let _docker = std::os::unix::net::UnixListener::bind(&docker_sock).unwrap();
    let _podman = std::os::unix::net::UnixListener::bind(&podman_sock).unwrap();
    write_cip_toml(
        &ws,
        &format!(
            "[nodes.hd]\nkind = \"docker\"\nhost = \"unix://{}\"\n\n\
             [nodes.hp]\nkind = \"podman\"\nurl = \"unix://{}\"\n",
            docker_sock.display(),
            podman_sock.display()
        ),
    );
    let needle = hung_dir.path().to_string_lossy().into_owned();
    let env = [("CIP_FARM_PROBE_SECONDS", "2")];
    let runs: [&[&str]; 2] = [
        &["farm"],
        &[
            "publish",
            "--node",
            "hd,hp",
            "--remote-registry",
            &reg.addr(),
        ],
    ];
    for args in runs {
        let out = ws.cip_env(args, &env);
        let shown = text(&out);
        assert!(
            shown.contains("no answer within 2s"),
            "{args:?} probed the nodes: {shown}"
        );
        // Killed processes vanish once reaped: give that a moment, not the probes' 15 s.
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut left = processes_naming(&needle);
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            left = processes_naming(&needle);
        }
        assert!(left.is_empty(), "{args:?} left probes running: {left:?}");
    }
}
