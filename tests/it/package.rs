//! The crate as `cargo package` makes it builds on its own, outside this workspace, from its own
//! `Cargo.lock` (`--locked`): what `cargo install --locked container-image-pipelines` would build.
//! Its dependencies must all come from crates.io (a `[patch]` is dropped by packaging). Slow the
//! first time (a whole build in its own target directory, `target/package-check`, kept between
//! runs so that later ones only rebuild cip).
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::workspace::text;

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs `cmd`; `--offline` first (the dependencies are on this machine after any build), then
/// online when something is missing from the local registry cache.
fn run_offline_first(make: impl Fn() -> Command) -> std::process::Output {
    let offline = make().arg("--offline").output().expect("run cargo");
    if offline.status.success() {
        return offline;
    }
    eprintln!("offline failed, trying online:\n{}", text(&offline));
    make().output().expect("run cargo")
}

#[test]
fn the_packaged_crate_builds_on_its_own_with_its_lock_file() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let check = root.join("target/package-check");
    let version = env!("CARGO_PKG_VERSION");
    let name = env!("CARGO_PKG_NAME");

    let listed = run_offline_first(|| {
        let mut c = cargo();
        c.current_dir(&root).env("CARGO_TARGET_DIR", &check).args([
            "package",
            "--allow-dirty",
            "--list",
        ]);
        c
    });
    assert!(listed.status.success(), "{}", text(&listed));
    let files = String::from_utf8_lossy(&listed.stdout).into_owned();
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "LICENSE",
        "README.md",
        "src/main.rs",
        "src/lib.rs",
    ] {
        assert!(
            files.lines().any(|f| f == needed),
            "{needed} missing: {files}"
        );
    }
    for f in files.lines() {
        assert!(
            !f.starts_with("fixtures/") && !f.starts_with("tests/") && !f.starts_with("vendor/"),
            "{f} should not be packaged: {files}"
        );
    }

    let packaged = run_offline_first(|| {
        let mut c = cargo();
        c.current_dir(&root).env("CARGO_TARGET_DIR", &check).args([
            "package",
            "--allow-dirty",
            "--no-verify",
        ]);
        c
    });
    assert!(packaged.status.success(), "{}", text(&packaged));
    let crate_file = check.join(format!("package/{name}-{version}.crate"));
    assert!(crate_file.is_file(), "{}", crate_file.display());

    // Unpacked where no workspace encloses it, into a directory reused between runs.
    let unpacked = check.join("unpacked");
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::create_dir_all(&unpacked).unwrap();
    let untar = Command::new("tar")
        .arg("-xzf")
        .arg(&crate_file)
        .arg("-C")
        .arg(&unpacked)
        .output()
        .unwrap();
    assert!(untar.status.success(), "{}", text(&untar));
    let dir = unpacked.join(format!("{name}-{version}"));
    assert!(
        dir.join("Cargo.lock").is_file(),
        "the package holds its lock file"
    );
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(!manifest.contains("[patch"), "{manifest}");

    let target = check.join("build");
    let built = run_offline_first(|| {
        let mut c = cargo();
        c.current_dir(&dir)
            .env("CARGO_TARGET_DIR", &target)
            .args(["build", "--locked", "--bin", "cip"]);
        c
    });
    assert!(built.status.success(), "{}", text(&built));
    let cip: &Path = &target.join("debug/cip");
    let version_out = Command::new(cip).arg("--version").output().unwrap();
    assert!(version_out.status.success(), "{}", text(&version_out));
    assert!(
        String::from_utf8_lossy(&version_out.stdout).contains(version),
        "{}",
        text(&version_out)
    );
}
