//! The build backends against real builders: buildah (private vfs store per test, chroot isolation),
//! arm64 under qemu emulation, a plain-HTTP registry for parent images, cancellation of running
//! builds, the binfmt_misc check, and docker (a private dockerd started by the test when none
//! answers). Needs `scripts/setup-env` to have run (`--docker` for the docker test).

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cip::builders::{emulation, Backend, BuildJob, BuilderKind, NodeEnv, RegistryAccess};
use cip::platform::Platform;
use common::{busybox_path, skopeo, Buildah, TestRegistry};
use serde_json::Value;

fn platform(s: &str) -> Platform {
    s.parse().unwrap()
}

/// The registered engine `name`.
fn kind(name: &str) -> BuilderKind {
    BuilderKind::engine_named(name).expect("a registered engine")
}

/// A tag no other test uses.
fn unique_tag(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "localhost/cip-backends-{name}:{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A buildah builder on a private store: the storage driver from `STORAGE_DRIVER` (which cip turns
/// into `--storage-driver`), the store's location through `CIP_BUILDAH_GLOBAL_ARGS`.
fn buildah_builder(store: &Buildah) -> std::sync::Arc<dyn Backend> {
    let tmp = store.root().parent().unwrap().to_path_buf();
    let env = NodeEnv::new()
        .set("STORAGE_DRIVER", "vfs")
        .set("BUILDAH_ISOLATION", "chroot")
        .set(
            "CIP_BUILDAH_GLOBAL_ARGS",
            format!(
                "--root {} --runroot {}",
                store.root().display(),
                store.runroot().display()
            ),
        )
        .set("TMPDIR", tmp.display().to_string());
    cip::builders::detect_with(kind("buildah"), env).expect("buildah is usable")
}

/// A context `FROM scratch` with both busybox binaries, the Dockerfile ending with `run_steps`.
fn context(dir: &Path, run_steps: &str) -> PathBuf {
    let ctx = dir.join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    for arch in ["amd64", "arm64"] {
        fs::copy(busybox_path(arch), ctx.join(format!("busybox-{arch}"))).unwrap();
    }
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM scratch\nARG TARGETARCH\nCOPY busybox-${{TARGETARCH}} /bin/busybox\n{run_steps}"
        ),
    )
    .unwrap();
    ctx
}

fn job(ctx: &Path, platform: &Platform, tag: &str, log: PathBuf) -> BuildJob {
    BuildJob {
        context_dir: ctx.to_path_buf(),
        dockerfile: ctx.join("Dockerfile"),
        platform: platform.clone(),
        build_args: vec![("REGISTRY".into(), "unused.invalid".into())],
        tag: tag.to_string(),
        extra_args: Vec::new(),
        log,
        registry: RegistryAccess::default(),
        options: Default::default(),
        events: Default::default(),
    }
}

fn read_json(path: &Path) -> Value {
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    layout.join("blobs/sha256").join(hex)
}

/// Checks the layout holds one image manifest and returns its config.
fn layout_config(layout: &Path) -> Value {
    assert!(layout.join("oci-layout").is_file(), "no oci-layout file");
    let index = read_json(&layout.join("index.json"));
    let manifests = index["manifests"].as_array().expect("index.json manifests");
    assert_eq!(manifests.len(), 1, "{index}");
    // Docker's manifest format, whose config keeps SHELL, HEALTHCHECK, ONBUILD and STOPSIGNAL.
    assert_eq!(
        manifests[0]["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let manifest = read_json(&blob(layout, manifests[0]["digest"].as_str().unwrap()));
    for layer in manifest["layers"].as_array().expect("layers") {
        let path = blob(layout, layer["digest"].as_str().unwrap());
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            layer["size"].as_u64().unwrap(),
            "layer blob {} has the size the manifest says",
            path.display()
        );
    }
    read_json(&blob(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
}

#[tokio::test]
async fn buildah_builds_native_and_emulated_platforms_and_exports_layouts() {
    let store = Buildah::new();
    let builder = buildah_builder(&store);
    let describe = builder.describe();
    assert!(describe.starts_with("buildah 1."), "{describe}");
    assert!(describe.contains("--storage-driver=vfs"), "{describe}");
    assert_eq!(builder.native_platforms(), vec![Platform::host()]);

    let dir = tempfile::tempdir().unwrap();
    let ctx = context(
        dir.path(),
        "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox uname -m > /arch\"]\n",
    );
    let (amd, arm) = (platform("linux/amd64"), platform("linux/arm64"));
    let (tag_amd, tag_arm) = (unique_tag("amd64"), unique_tag("arm64"));
    let logs = dir.path().join("logs/nested");
    let started = Instant::now();
    // Both at once into the same store, as the scheduler does.
    let job_amd = job(&ctx, &amd, &tag_amd, logs.join("amd64.log"));
    let job_arm = job(&ctx, &arm, &tag_arm, logs.join("arm64.log"));
    let (a, b) = tokio::join!(builder.build(&job_amd), builder.build(&job_arm));
    a.unwrap();
    b.unwrap();
    eprintln!("built amd64 + arm64 in {:?}", started.elapsed());
    let log = fs::read_to_string(logs.join("arm64.log")).unwrap();
    assert!(
        log.starts_with("$ "),
        "the log starts with the command: {log}"
    );
    assert!(log.contains("--platform=linux/arm64"), "{log}");

    for (tag, arch) in [(&tag_amd, "amd64"), (&tag_arm, "arm64")] {
        let started = Instant::now();
        let layout = dir.path().join(format!("layouts/{arch}"));
        builder.export_oci_layout(tag, &layout).await.unwrap();
        eprintln!("exported {arch} in {:?}", started.elapsed());
        let config = layout_config(&layout);
        assert_eq!(config["architecture"], arch, "{config}");
        assert_eq!(config["os"], "linux");
        // Exporting into a non-empty directory is refused rather than mixing two images.
        let err = builder.export_oci_layout(tag, &layout).await.unwrap_err();
        assert!(format!("{err:#}").contains("not empty"), "{err:#}");
    }

    // The RUN steps really ran, the arm64 one under emulation: /arch holds `uname -m`.
    assert_eq!(
        file_in_layout(&dir.path().join("layouts/amd64"), "arch"),
        "x86_64\n"
    );
    assert_eq!(
        file_in_layout(&dir.path().join("layouts/arm64"), "arch"),
        "aarch64\n"
    );
}

/// The content of `name` in the last layer of the layout that has it (layers are gzip tars).
fn file_in_layout(layout: &Path, name: &str) -> String {
    let index = read_json(&layout.join("index.json"));
    let manifest = read_json(&blob(
        layout,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let mut found = None;
    for layer in manifest["layers"].as_array().unwrap() {
        let path = blob(layout, layer["digest"].as_str().unwrap());
        let list = common::run_ok(Command::new("tar").arg("-tzf").arg(&path));
        if let Some(entry) = list.lines().find(|l| l.trim_start_matches("./") == name) {
            found = Some(common::run_ok(
                Command::new("tar").arg("-xzOf").arg(&path).arg(entry),
            ));
        }
    }
    found.unwrap_or_else(|| panic!("{name} is in no layer of {}", layout.display()))
}

#[tokio::test]
async fn buildah_local_store_operations() {
    let store = Buildah::new();
    let builder = buildah_builder(&store);
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), "");
    let host = Platform::host();
    let tag = unique_tag("store");
    let other = unique_tag("store-copy");

    assert!(!builder.image_exists(&tag).await.unwrap());
    builder
        .build(&job(&ctx, &host, &tag, dir.path().join("build.log")))
        .await
        .unwrap();
    assert!(builder.image_exists(&tag).await.unwrap());

    builder.tag_image(&tag, &other).await.unwrap();
    assert!(builder.image_exists(&other).await.unwrap());

    builder.remove_image(&tag).await.unwrap();
    assert!(!builder.image_exists(&tag).await.unwrap());
    assert!(
        builder.image_exists(&other).await.unwrap(),
        "removing one tag keeps the other"
    );
    // Removing what is not there is fine; tagging what is not there is not.
    builder.remove_image(&tag).await.unwrap();
    let err = builder
        .tag_image(&tag, &unique_tag("nothing"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, cip::builders::BackendError::NotFound { image, .. } if *image == tag),
        "a typed error, not a message to match: {err:#}"
    );
    let layout = tempfile::tempdir().unwrap().path().join("layout");
    let err = builder.export_oci_layout(&tag, &layout).await.unwrap_err();
    assert!(
        matches!(err, cip::builders::BackendError::NotFound { .. }),
        "{err:#}"
    );
    builder.remove_image(&other).await.unwrap();
    assert!(!builder.image_exists(&other).await.unwrap());
}

#[tokio::test]
async fn failing_build_reports_command_and_log_tail() {
    let store = Buildah::new();
    let builder = buildah_builder(&store);
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(
        dir.path(),
        "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo cip-marker-before-failure; exit 7\"]\n",
    );
    let log = dir.path().join("a/b/fail.log");
    let tag = unique_tag("fail");
    let err = builder
        .build(&job(&ctx, &Platform::host(), &tag, log.clone()))
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    eprintln!("the error as reported:\n{text}");
    assert!(text.contains("buildah"), "names the command: {text}");
    assert!(text.contains(" bud "), "names the command: {text}");
    assert!(
        text.contains("cip-marker-before-failure"),
        "quotes the log: {text}"
    );
    assert!(
        text.contains(&log.display().to_string()),
        "names the log: {text}"
    );
    assert!(text.lines().count() < 40, "only the tail: {text}");
    assert!(!builder.image_exists(&tag).await.unwrap());
}

/// The processes (pid, state, command line) of process group `pgid`.
fn group_members(pgid: i32) -> Vec<(i32, String, String)> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2).and_then(|f| f.parse::<i32>().ok()) == Some(pgid) {
            let cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .replace('\0', " ");
            out.push((pid, fields[0].to_string(), cmdline));
        }
    }
    out
}

/// The pid of the buildah process whose command line contains `needle`.
fn find_process(needle: &str) -> Option<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .find(|pid| {
            fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .map(|c| c.replace('\0', " ").contains(needle))
                .unwrap_or(false)
        })
}

#[tokio::test]
async fn dropping_a_running_build_kills_buildah_and_its_run_step() {
    let store = Buildah::new();
    let builder = buildah_builder(&store);
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), "RUN [\"/bin/busybox\", \"sleep\", \"30\"]\n");
    let tag = unique_tag("cancel");
    let build_job = job(&ctx, &Platform::host(), &tag, dir.path().join("cancel.log"));

    // Run the build until its RUN step sleeps, plus ~2 s, then drop its future.
    let watch = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(pgid) = find_process(&tag) {
                let members = group_members(pgid);
                if members.iter().any(|(_, _, cmd)| cmd.contains("sleep 30")) {
                    return (pgid, members);
                }
            }
            assert!(
                Instant::now() < deadline,
                "the build never reached its RUN step"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (pgid, members) = tokio::select! {
        r = builder.build(&build_job) => panic!("the build ended before being cancelled: {r:?}"),
        found = async {
            let found = watch.await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            found
        } => found,
    };
    eprintln!("cancelling group {pgid}: {members:?}");
    let dropped = Instant::now();

    assert!(
        builder.wait_cancelled(Duration::from_secs(20)),
        "the cancelled group is still being terminated"
    );
    let left: Vec<_> = group_members(pgid)
        .into_iter()
        .filter(|(_, state, _)| state != "Z")
        .collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
    for (pid, _, cmd) in &members {
        let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            state.is_empty() || state.contains(") Z "),
            "{pid} ({cmd}) still runs: {state}"
        );
    }
    assert!(find_process(&tag).is_none(), "a process with {tag} remains");
    eprintln!("group gone {:?} after the drop", dropped.elapsed());
    assert!(
        dropped.elapsed() < Duration::from_secs(15),
        "took {:?}",
        dropped.elapsed()
    );
    // SIGTERM first: buildah removed its working container.
    let containers = store.run(&["containers", "--quiet"]);
    assert!(
        containers.trim().is_empty(),
        "left containers: {containers}"
    );
}

#[tokio::test]
async fn child_pulls_its_parent_from_a_plain_http_registry() {
    let registry = TestRegistry::start();
    let store = Buildah::new();
    let builder = buildah_builder(&store);
    let dir = tempfile::tempdir().unwrap();
    let host = Platform::host();

    // The parent, published by hand (cip's own push is not what is tested here).
    publish_parent(builder.as_ref(), &registry, dir.path()).await;

    let child_ctx = dir.path().join("child");
    fs::create_dir_all(&child_ctx).unwrap();
    fs::write(
        child_ctx.join("Dockerfile"),
        "ARG REGISTRY\nFROM ${REGISTRY}/parent:1.0.0\nRUN [\"/bin/busybox\", \"touch\", \"/child\"]\n",
    )
    .unwrap();
    let mut child = job(
        &child_ctx,
        &host,
        &unique_tag("child"),
        dir.path().join("child.log"),
    );
    child.build_args = vec![("REGISTRY".into(), registry.addr())];

    // Without --tls-verify=false buildah talks HTTPS to the plain-HTTP registry and fails.
    let err = builder.build(&child).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("HTTP response to HTTPS client"),
        "{err:#}"
    );

    child.registry = RegistryAccess {
        insecure: true,
        ..RegistryAccess::default()
    };
    builder.build(&child).await.unwrap();
    assert!(builder.image_exists(&child.tag).await.unwrap());

    // pull: the parent by reference, for a platform, through the same access settings.
    let parent_ref = format!("{}/parent:1.0.0", registry.addr());
    builder.remove_image(&parent_ref).await.unwrap();
    assert!(!builder.image_exists(&parent_ref).await.unwrap());
    builder
        .pull(&parent_ref, Some(&host), &child.registry)
        .await
        .unwrap();
    assert!(builder.image_exists(&parent_ref).await.unwrap());
}

/// Builds `parent` (host platform) and copies it to `registry` as `parent:1.0.0` with skopeo.
async fn publish_parent(builder: &dyn Backend, registry: &TestRegistry, dir: &Path) {
    let parent_ctx = context(&dir.join("parent"), "");
    let parent_tag = unique_tag("parent");
    builder
        .build(&job(
            &parent_ctx,
            &Platform::host(),
            &parent_tag,
            dir.join("parent.log"),
        ))
        .await
        .unwrap();
    let layout = dir.join("parent-layout");
    builder
        .export_oci_layout(&parent_tag, &layout)
        .await
        .unwrap();
    let src = format!("oci:{}", layout.display());
    let dest = registry.docker_ref("parent:1.0.0");
    let mut args = vec!["copy", "-q"];
    let cert_arg;
    match registry.cert_dir() {
        Some(certs) => {
            cert_arg = format!("--dest-cert-dir={}", certs.display());
            args.push(&cert_arg);
        }
        None => args.push("--dest-tls-verify=false"),
    }
    args.extend([src.as_str(), dest.as_str()]);
    skopeo(&args);
}

#[tokio::test]
async fn child_pulls_its_parent_over_tls_with_a_private_ca() {
    let registry = TestRegistry::start_with(common::RegistryOptions {
        tls: true,
        auth: None,
    });
    let store = Buildah::new();
    let builder = buildah_builder(&store);
    let dir = tempfile::tempdir().unwrap();
    publish_parent(builder.as_ref(), &registry, dir.path()).await;

    let child_ctx = dir.path().join("child");
    fs::create_dir_all(&child_ctx).unwrap();
    fs::write(
        child_ctx.join("Dockerfile"),
        "ARG REGISTRY\nFROM ${REGISTRY}/parent:1.0.0\nRUN [\"/bin/busybox\", \"true\"]\n",
    )
    .unwrap();
    let mut child = job(
        &child_ctx,
        &Platform::host(),
        &unique_tag("tls-child"),
        dir.path().join("child.log"),
    );
    child.build_args = vec![("REGISTRY".into(), registry.addr())];
    let err = builder.build(&child).await.unwrap_err();
    assert!(format!("{err:#}").contains("x509"), "{err:#}");

    child.registry.cert_dir = registry.cert_dir();
    builder.build(&child).await.unwrap();
    assert!(builder.image_exists(&child.tag).await.unwrap());
}

#[test]
fn detection_errors_name_what_was_looked_for() {
    let empty = tempfile::tempdir().unwrap();
    let env = NodeEnv::new().set("PATH", empty.path().display().to_string());
    let err = cip::builders::detect_with(BuilderKind::AUTO, env.clone())
        .unwrap_err()
        .to_string();
    for word in ["buildah", "podman", "docker", "apt-get install -y buildah"] {
        assert!(err.contains(word), "{word} missing from: {err}");
    }
    let err = cip::builders::detect_with(kind("podman"), env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("podman") && err.contains("not found on PATH"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// emulation: the check against a binfmt_misc directory (CIP_BINFMT_DIR, which a run passes to
// `emulation::check_in`, is covered end to end by tests/publish.rs
// `missing_emulator_is_reported_before_any_build`).
// ---------------------------------------------------------------------------------------------

fn probe(dir: &Path) -> Result<(), String> {
    emulation::check_in(
        dir,
        &[platform("linux/amd64"), platform("linux/arm64")],
        &[platform("linux/amd64")],
    )
}

#[test]
fn emulation_check_reads_binfmt_entries() {
    let dir = tempfile::tempdir().unwrap();
    let text = probe(dir.path()).unwrap_err();
    for needle in [
        "linux/arm64",
        "qemu-user-static",
        "/usr/lib/binfmt.d/qemu-aarch64.conf",
        "/proc/sys/fs/binfmt_misc/register",
        "tonistiigi/binfmt --install arm64",
    ] {
        assert!(text.contains(needle), "{needle} missing: {text}");
    }

    fs::write(
        dir.path().join("qemu-aarch64"),
        "enabled\ninterpreter /usr/bin/qemu-aarch64-static\n",
    )
    .unwrap();
    probe(dir.path()).unwrap();

    fs::write(
        dir.path().join("qemu-aarch64"),
        "disabled\ninterpreter /usr/bin/qemu-aarch64-static\n",
    )
    .unwrap();
    let text = probe(dir.path()).unwrap_err();
    assert!(text.contains("disabled"), "{text}");
}

#[test]
fn emulation_check_passes_on_this_machine() {
    // scripts/setup-env registers qemu-aarch64; the real /proc entry must be recognised.
    let real = Path::new("/proc/sys/fs/binfmt_misc");
    let result = emulation::check_in(real, &[platform("linux/arm64")], &[platform("linux/amd64")]);
    if Platform::host().arch == "amd64" {
        result.unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// docker
// ---------------------------------------------------------------------------------------------

/// The docker backend: the daemon that answers (DOCKER_HOST or the default socket), else a
/// private dockerd (`scripts/setup-env --docker` installs docker).
#[tokio::test]
async fn docker_builds_exports_and_manages_its_store() {
    assert!(
        common::have_program("docker") && common::have_program("dockerd"),
        "docker/dockerd not installed: run scripts/setup-env --docker"
    );
    let mut own_daemon = None;
    let builder = match cip::builders::detect_with(kind("docker"), NodeEnv::new()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("no docker daemon answers ({e:#}); starting one");
            let started = Instant::now();
            let dockerd = common::docker::TestDockerd::start();
            eprintln!("dockerd up in {:?}", started.elapsed());
            let env = NodeEnv::new().set("DOCKER_HOST", dockerd.host());
            own_daemon = Some(dockerd);
            cip::builders::detect_with(kind("docker"), env).expect("docker backend on our dockerd")
        }
    };
    let describe = builder.describe();
    eprintln!("builder: {describe}");
    assert!(describe.starts_with("docker "), "{describe}");
    if let Some(d) = &own_daemon {
        assert!(describe.contains(&d.host()), "{describe}");
    }

    let dir = tempfile::tempdir().unwrap();
    let ctx = context(
        dir.path(),
        "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox uname -m > /arch\"]\n",
    );
    let mut tags = Vec::new();
    for (arch, uname) in [("amd64", "x86_64\n"), ("arm64", "aarch64\n")] {
        let p = platform(&format!("linux/{arch}"));
        if !builder.native_platforms().contains(&p) {
            emulation::check(std::slice::from_ref(&p), &builder.native_platforms()).unwrap();
        }
        let tag = unique_tag(&format!("docker-{arch}"));
        let started = Instant::now();
        builder
            .build(&job(
                &ctx,
                &p,
                &tag,
                dir.path().join(format!("logs/{arch}.log")),
            ))
            .await
            .unwrap();
        eprintln!("docker built {arch} in {:?}", started.elapsed());
        let layout = dir.path().join(format!("layout-{arch}"));
        let started = Instant::now();
        builder.export_oci_layout(&tag, &layout).await.unwrap();
        eprintln!("docker exported {arch} in {:?}", started.elapsed());
        assert_eq!(layout_config(&layout)["architecture"], arch);
        assert_eq!(file_in_layout(&layout, "arch"), uname);
        tags.push(tag);
    }

    let copy = unique_tag("docker-copy");
    builder.tag_image(&tags[0], &copy).await.unwrap();
    assert!(builder.image_exists(&copy).await.unwrap());
    builder.remove_image(&copy).await.unwrap();
    assert!(!builder.image_exists(&copy).await.unwrap());
    builder.remove_image(&copy).await.unwrap();
    assert!(builder.image_exists(&tags[0]).await.unwrap());

    let failing = dir.path().join("failing");
    let fctx = context(
        &failing,
        "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo cip-docker-marker; exit 3\"]\n",
    );
    let err = builder
        .build(&job(
            &fctx,
            &Platform::host(),
            &unique_tag("docker-fail"),
            dir.path().join("logs/fail.log"),
        ))
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("docker") && text.contains(" build "),
        "{text}"
    );
    assert!(text.contains("cip-docker-marker"), "{text}");

    // Cancelling: the client is killed, BuildKit cancels the RUN step in the daemon.
    let sleep_arg = format!("40.{}", std::process::id() % 1000);
    let cctx = context(
        &dir.path().join("cancel"),
        &format!("RUN [\"/bin/busybox\", \"sleep\", \"{sleep_arg}\"]\n"),
    );
    let needle = format!("sleep {sleep_arg}");
    let cancel_job = job(
        &cctx,
        &Platform::host(),
        &unique_tag("docker-cancel"),
        dir.path().join("logs/cancel.log"),
    );
    tokio::select! {
        r = builder.build(&cancel_job) => panic!("the build ended before being cancelled: {r:?}"),
        _ = async {
            let deadline = Instant::now() + Duration::from_secs(60);
            while find_process(&needle).is_none() {
                assert!(Instant::now() < deadline, "the RUN step never started");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        } => {}
    }
    let dropped = Instant::now();
    assert!(builder.wait_cancelled(Duration::from_secs(20)));
    while find_process(&needle).is_some() {
        assert!(
            dropped.elapsed() < Duration::from_secs(20),
            "the RUN step of a cancelled docker build still runs"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "docker RUN step gone {:?} after the drop",
        dropped.elapsed()
    );

    for tag in &tags {
        builder.remove_image(tag).await.unwrap();
    }
}
