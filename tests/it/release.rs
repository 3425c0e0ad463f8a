//! The installs that need no Rust toolchain, as a user gets them: `scripts/release` packages the
//! test's own cip binary into a tarball and a Debian package; the tarball is unpacked into a
//! prefix, the package installed with `dpkg -i` and used as `/usr/bin/cip` on the demo against a
//! real registry, and the CI image of the top-level Containerfile is built from it on a Debian
//! base made by debootstrap (cached in ~/.cache/cip) and asked for `cip --version`.
use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::workspace::{text, Workspace};
use common::{run_ok, run_output, TestRegistry};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const DEB_ARCH: &str = "amd64";
const TAR_ARCH: &str = "x86_64";

/// The artifacts of the run's one `scripts/release` ([`common::release_artifacts`]), checked to be
/// the tarball and the .deb.
fn artifacts() -> &'static Path {
    let (out, shown) = common::release_artifacts();
    for name in [tarball_name(), deb_name()] {
        assert!(
            shown.contains(&out.join(&name).display().to_string()),
            "{shown}"
        );
    }
    out
}

fn tarball_name() -> String {
    format!("cip-{VERSION}-{TAR_ARCH}-linux.tar.gz")
}

fn deb_name() -> String {
    format!("cip_{VERSION}_{DEB_ARCH}.deb")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `cip VERSION (HASH[-dirty] DATE)`, the hash the checkout's HEAD had when cip was built.
fn assert_version_line(line: &str) {
    let prefix = format!("cip {VERSION} (");
    let inner = line
        .trim()
        .strip_prefix(&prefix)
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line:?} is not `{prefix}HASH DATE)`"));
    let (hash, date) = inner.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
    let hash = hash.strip_suffix("-dirty").unwrap_or(hash);
    assert!(
        hash.len() >= 7 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{line:?}"
    );
    let head = run_ok(
        Command::new("git")
            .arg("-C")
            .arg(common::repo_root())
            .args(["rev-parse", "HEAD"]),
    );
    assert!(head.starts_with(hash), "{line:?} is not HEAD {head}");
    let digits: Vec<&str> = date.split('-').collect();
    assert!(
        digits.len() == 3 && digits.iter().all(|d| d.parse::<u32>().is_ok()),
        "{line:?}"
    );
}

/// What the test's cip says to `--version`: the packaged copies of it must say the same.
fn own_version() -> String {
    let (code, out, err) = common::cip(&["--version"]);
    assert_eq!(code, 0, "{err}");
    out
}

#[test]
fn cip_version_names_the_commit_it_was_built_from() {
    let (code, out, err) = common::cip(&["--version"]);
    assert_eq!(code, 0, "{err}");
    assert_version_line(&out);
}

#[test]
fn the_tarball_unpacks_into_a_prefix_with_cip_its_manual_completions_and_licence() {
    let tarball = artifacts().join(tarball_name());
    let listing = run_ok(Command::new("tar").arg("-tzf").arg(&tarball));
    let top = format!("cip-{VERSION}-{TAR_ARCH}-linux/");
    let mut files: Vec<&str> = listing
        .lines()
        .filter(|l| !l.ends_with('/'))
        .map(|l| {
            l.strip_prefix(&top)
                .unwrap_or_else(|| panic!("{l} outside {top}"))
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "LICENSE",
            "README.md",
            "bin/cip",
            "share/bash-completion/completions/cip",
            "share/fish/vendor_completions.d/cip.fish",
            "share/man/man1/cip.1",
            "share/zsh/site-functions/_cip",
        ]
    );

    // The README's command, into a prefix of the test's own.
    let prefix = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("--strip-components=1")
            .arg("-C")
            .arg(prefix.path()),
    );
    let out = run_output(Command::new(prefix.path().join("bin/cip")).arg("--version"));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out), own_version(), "{}", text(&out));
    let man = fs::read_to_string(prefix.path().join("share/man/man1/cip.1")).unwrap();
    assert!(man.starts_with(".ie") || man.contains(".TH cip 1"), "{man}");
    let bash = fs::read_to_string(prefix.path().join("share/bash-completion/completions/cip"));
    assert!(bash.unwrap().contains("complete -F _cip"));
}

/// Removes the package when the test ends, however it ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let out = dpkg(&["-r", "cip"]);
        if !out.status.success() && !std::thread::panicking() {
            panic!("dpkg -r cip failed: {}", text(&out));
        }
    }
}

/// `dpkg ARGS`, waiting while another dpkg or apt holds its lock (other jobs on this machine).
fn dpkg(args: &[&str]) -> Output {
    let started = std::time::Instant::now();
    loop {
        let out = run_output(Command::new("dpkg").args(args));
        let locked = String::from_utf8_lossy(&out.stderr).contains("lock");
        if out.status.success() || !locked || started.elapsed().as_secs() > 300 {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
}

/// One process at a time installs the package on this machine (a file lock; the tests of
/// several checkouts may run at once).
fn machine_lock() -> fs::File {
    let lock = fs::File::create("/run/lock/cip-release-test.lock").unwrap();
    use std::os::fd::AsRawFd as _;
    // SAFETY: flock on a descriptor we own; released when the file is closed.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
    lock
}

/// The command `ws.cip_command(args)` builds, with the installed `/usr/bin/cip` as its program.
fn installed_cip(ws: &Workspace, args: &[&str]) -> Command {
    let template = ws.cip_command(args, &[]);
    let mut cmd = Command::new("/usr/bin/cip");
    cmd.args(template.get_args());
    for (k, v) in template.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd
}

#[test]
fn the_deb_installs_usr_bin_cip_which_publishes_the_demo() {
    let deb = artifacts().join(deb_name());
    let info = run_ok(Command::new("dpkg-deb").arg("--info").arg(&deb));
    for field in [
        "Package: cip\n".to_string(),
        format!("Version: {VERSION}\n"),
        format!("Architecture: {DEB_ARCH}\n"),
        "Recommends: buildah | podman | docker.io, skopeo, qemu-user-static\n".into(),
    ] {
        assert!(info.contains(&field), "{field:?} in {info}");
    }
    let depends = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .unwrap_or_else(|| panic!("no Depends in {info}"));
    assert!(depends.contains("libc6 (>= 2."), "{depends}");
    let contents = run_ok(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    let mut files: Vec<&str> = contents
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "./usr/bin/cip",
            "./usr/share/bash-completion/completions/cip",
            "./usr/share/doc/cip/README.md",
            "./usr/share/doc/cip/copyright",
            "./usr/share/fish/vendor_completions.d/cip.fish",
            "./usr/share/man/man1/cip.1.gz",
            "./usr/share/zsh/vendor-completions/_cip",
        ],
        "{contents}"
    );
    assert!(
        contents
            .lines()
            .all(|l| l.split_whitespace().nth(1) == Some("root/root")),
        "{contents}"
    );

    let _lock = machine_lock();
    let out = dpkg(&["-i", deb.to_str().unwrap()]);
    let _installed = Installed;
    assert!(out.status.success(), "dpkg -i: {}", text(&out));
    let status = run_ok(Command::new("dpkg-query").args(["-W", "-f=${Status} ${Version}", "cip"]));
    assert_eq!(status, format!("install ok installed {VERSION}"));
    let out = run_output(Command::new("/usr/bin/cip").arg("--version"));
    assert_eq!(stdout(&out), own_version(), "{}", text(&out));
    let copyright = fs::read_to_string("/usr/share/doc/cip/copyright").unwrap();
    assert!(copyright.contains("License: MIT"), "{copyright}");

    // The manual page, as `man` shows it and as it is stored.
    let page = run_ok(
        Command::new("man")
            .args(["-l", "/usr/share/man/man1/cip.1.gz"])
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100"),
    );
    assert!(
        page.contains("publish-locally") && page.contains("cascade-version-updates"),
        "{page}"
    );
    let roff = run_ok(Command::new("zcat").arg("/usr/share/man/man1/cip.1.gz"));
    assert!(roff.contains(".TH cip 1"), "{roff}");

    // The demo of the README, run by the installed binary in a git checkout of its own.
    let reg = TestRegistry::start();
    let ws = Workspace::demo();
    run_ok(Command::new("git").arg("init").arg("-q").arg(ws.project()));
    let out = run_output(&mut installed_cip(
        &ws,
        &["publish-locally", "--local-registry", &reg.addr()],
    ));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(ws.builds(), 4, "{}", text(&out));
    for image in [
        "busybox:1.0.0",
        "hello:1.0.0",
        "tools:1.0.0",
        "app:1.0.0",
        "app:latest",
    ] {
        assert!(common::is_tagged(&reg, image), "{image}: {}", text(&out));
    }
    let out = run_output(&mut installed_cip(
        &ws,
        &["status", "--local-registry", &reg.addr()],
    ));
    assert!(out.status.success(), "{}", text(&out));

    // The run wrote its logs under .cip/, which tells git to leave it alone.
    let project = ws.project();
    assert!(project.join(".cip/logs").is_dir());
    let ignore = fs::read_to_string(project.join(".cip/.gitignore")).unwrap();
    assert_eq!(ignore.lines().last(), Some("*"), "{ignore}");
    let added =
        run_ok(
            Command::new("git")
                .arg("-C")
                .arg(&project)
                .args(["add", "-A", "--dry-run"]),
        );
    assert!(added.contains("add 'contexts/"), "{added}");
    assert!(!added.contains(".cip"), "{added}");
}

/// A Debian 12 root file system as a tar, made once by debootstrap and kept in the cache
/// (`CIP_CACHE`, else ~/.cache/cip, as scripts/setup-env keeps its busybox binaries).
fn debian_rootfs() -> PathBuf {
    let cache = std::env::var_os("CIP_CACHE").map_or_else(
        || PathBuf::from(std::env::var("HOME").unwrap_or("/root".into())).join(".cache/cip"),
        PathBuf::from,
    );
    fs::create_dir_all(&cache).unwrap();
    let tar = cache.join("debian-bookworm-minbase.tar");
    let lock = fs::File::create(cache.join("debian-bookworm-minbase.lock")).unwrap();
    use std::os::fd::AsRawFd as _;
    // SAFETY: flock on a descriptor we own; released when `lock` is dropped.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    if tar.is_file() {
        return tar;
    }
    let work = tempfile::tempdir_in(&cache).unwrap();
    let root = work.path().join("root");
    run_ok(
        Command::new("debootstrap")
            .args(["--variant=minbase", "bookworm"])
            .arg(&root)
            .arg("http://deb.debian.org/debian"),
    );
    let partial = work.path().join("rootfs.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&partial)
            .arg("."),
    );
    fs::rename(&partial, &tar).unwrap();
    tar
}

#[test]
fn the_containerfile_builds_a_ci_image_holding_cip_and_the_stage_tools() {
    let store = common::Buildah::new();
    let podman =
        |args: &[&str]| run_ok(Command::new("podman").args(store.storage_args()).args(args));
    let rootfs = debian_rootfs();
    podman(&["import", rootfs.to_str().unwrap(), "debian:bookworm"]);

    // The build context holds the .deb only, as the Containerfile's header says.
    let context = tempfile::tempdir().unwrap();
    fs::copy(
        artifacts().join(deb_name()),
        context.path().join(deb_name()),
    )
    .unwrap();
    let containerfile = common::repo_root().join("Containerfile");
    let out = store.output(&[
        "bud",
        "-f",
        containerfile.to_str().unwrap(),
        "-t",
        "cip-ci",
        context.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));

    let container = store.run(&["from", "cip-ci"]);
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--isolation", "chroot", container.trim(), "--"];
        all.extend_from_slice(args);
        store.run(&all)
    };
    assert_eq!(run(&["cip", "--version"]), own_version());
    assert!(run(&["buildah", "--version"]).starts_with("buildah version"));
    assert!(run(&["skopeo", "--version"]).starts_with("skopeo version"));
    assert!(run(&["git", "--version"]).starts_with("git version"));
    run(&["test", "-x", "/usr/bin/qemu-aarch64-static"]);
    run(&["test", "-s", "/etc/ssl/certs/ca-certificates.crt"]);
    let env = run(&["env"]);
    assert!(
        env.contains("STORAGE_DRIVER=vfs") && env.contains("BUILDAH_ISOLATION=chroot"),
        "{env}"
    );
    store.run(&["rm", container.trim()]);
}

/// build.rs compiled on its own and run as cargo runs it, in a directory of the test's making.
struct BuildScript {
    bin: PathBuf,
    _dir: tempfile::TempDir,
}

impl BuildScript {
    fn compile() -> BuildScript {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("build-script");
        run_ok(
            Command::new(std::env::var("RUSTC").unwrap_or("rustc".into()))
                .args(["--edition", "2021", "-o"])
                .arg(&bin)
                .arg(common::repo_root().join("build.rs")),
        );
        BuildScript { bin, _dir: dir }
    }

    /// The `CIP_VERSION` it sets for a crate in `manifest_dir`, `CIP_COMMIT` set to `commit`.
    fn version(&self, manifest_dir: &Path, commit: Option<&str>) -> String {
        let mut cmd = Command::new(&self.bin);
        cmd.current_dir(manifest_dir)
            .env("CARGO_PKG_VERSION", "1.2.3")
            .env("CARGO_MANIFEST_DIR", manifest_dir)
            .env_remove("CIP_COMMIT")
            .env_remove("GIT_DIR");
        if let Some(c) = commit {
            cmd.env("CIP_COMMIT", c);
        }
        let out = run_ok(&mut cmd);
        let line = out
            .lines()
            .find_map(|l| l.strip_prefix("cargo:rustc-env=CIP_VERSION="))
            .unwrap_or_else(|| panic!("no CIP_VERSION in {out}"));
        line.to_string()
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    run_ok(
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args),
    )
    .trim()
    .to_string()
}

#[test]
fn the_build_script_names_a_commit_only_when_it_knows_one_and_never_fails() {
    let script = BuildScript::compile();
    // A packaged crate without git metadata: the version alone, or what the packager says.
    let plain = tempfile::tempdir().unwrap();
    assert_eq!(script.version(plain.path(), None), "1.2.3");
    assert_eq!(
        script.version(plain.path(), Some("0123abc 2026-11-30")),
        "1.2.3 (0123abc 2026-11-30)"
    );
    // `cargo package` records the commit it was made from.
    fs::write(
        plain.path().join(".cargo_vcs_info.json"),
        "{\n  \"git\": {\n    \"sha1\": \"89abcdef0123456789abcdef0123456789abcdef\"\n  },\n  \"path_in_vcs\": \"\"\n}",
    )
    .unwrap();
    assert_eq!(script.version(plain.path(), None), "1.2.3 (89abcde)");

    // A git checkout of the crate: its HEAD, then -dirty once a tracked file changed.
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    fs::write(repo.path().join("Cargo.toml"), "[package]\n").unwrap();
    git(repo.path(), &["add", "Cargo.toml"]);
    git(repo.path(), &["commit", "-q", "-m", "first"]);
    let head = git(
        repo.path(),
        &["show", "-s", "--abbrev=7", "--format=%h %cs"],
    );
    assert_eq!(script.version(repo.path(), None), format!("1.2.3 ({head})"));
    fs::write(repo.path().join("untracked"), "").unwrap();
    assert_eq!(script.version(repo.path(), None), format!("1.2.3 ({head})"));
    fs::write(repo.path().join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
    let (hash, date) = head.split_once(' ').unwrap();
    assert_eq!(
        script.version(repo.path(), None),
        format!("1.2.3 ({hash}-dirty {date})")
    );
    // A crate vendored inside someone else's repository is not that repository's commit.
    let vendored = repo.path().join("vendor/cip");
    fs::create_dir_all(&vendored).unwrap();
    assert_eq!(script.version(&vendored, None), "1.2.3");
    // Without git on PATH, the version alone (the build goes on).
    let mut cmd = Command::new(&script.bin);
    cmd.current_dir(repo.path())
        .env("CARGO_PKG_VERSION", "1.2.3")
        .env("CARGO_MANIFEST_DIR", repo.path())
        .env("PATH", plain.path())
        .env_remove("CIP_COMMIT");
    let out = run_ok(&mut cmd);
    assert!(out.contains("cargo:rustc-env=CIP_VERSION=1.2.3\n"), "{out}");
}
