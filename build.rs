//! Sets `CIP_VERSION`, what `cip --version` prints after `cip `: the crate's version and, when
//! known, the commit it was built from: `0.1.0 (abc1234 2026-12-01)`, `-dirty` after the hash when
//! tracked files differed from it.
//!
//! The commit comes from, in order: `CIP_COMMIT` given at build time (a packager that knows better,
//! printed as given), git when the crate's directory is the top of a git checkout (never a parent
//! repository that merely contains the crate), the `.cargo_vcs_info.json` that `cargo package`
//! writes (hash only). None of them present, the version alone: the build never fails for want of
//! git. No build dependencies, so that a build stays as fast as it was.
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let version = env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    println!("cargo:rerun-if-env-changed=CIP_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");
    let commit = given_commit()
        .or_else(|| git_commit(&manifest_dir))
        .or_else(|| packaged_commit(&manifest_dir));
    let full = match commit {
        Some(c) => format!("{version} ({c})"),
        None => version,
    };
    println!("cargo:rustc-env=CIP_VERSION={full}");
}

/// `CIP_COMMIT`, if it is one printable line.
fn given_commit() -> Option<String> {
    let given = env::var("CIP_COMMIT").ok()?;
    let given = given.trim();
    if given.is_empty() {
        return None;
    }
    if given.chars().any(char::is_control) {
        println!("cargo:warning=CIP_COMMIT holds control characters: ignored");
        return None;
    }
    Some(given.to_string())
}

/// `HASH[-dirty] DATE` of the checkout at `dir`, and the files whose change must run this again.
fn git_commit(dir: &Path) -> Option<String> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same(Path::new(&top), dir) {
        return None;
    }
    // HEAD moves (checkout, commit) and the branch it names moves (commit, reset, fetch+merge);
    // a branch may live in packed-refs; the index changes with `git add`. A worktree keeps HEAD
    // in its own git dir and the branches in the common one: git says where each file is.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".into(), "index".into()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in &watched {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", name]) {
            println!("cargo:rerun-if-changed={}", dir.join(path).display());
        }
    }
    // Edits not yet added make the tree dirty too; these are what the binary is built from.
    for path in ["src", "vendor", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={path}");
    }
    let head = git(
        dir,
        &["show", "-s", "--abbrev=7", "--format=%h %cs", "HEAD"],
    )?;
    let (hash, date) = head.split_once(' ')?;
    // --no-optional-locks: never take index.lock of a checkout someone is working in.
    let changes = git(
        dir,
        &[
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
    );
    let dirty = match changes {
        Some(c) if c.is_empty() => "",
        Some(_) => "-dirty",
        None => "",
    };
    Some(format!("{hash}{dirty} {date}"))
}

/// The trimmed stdout of a successful `git ARGS` in `dir`; None when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_string())
}

/// The hash `cargo package` recorded (`"sha1": "..."` in `.cargo_vcs_info.json`), 7 digits.
fn packaged_commit(dir: &Path) -> Option<String> {
    let path = dir.join(".cargo_vcs_info.json");
    println!("cargo:rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(path).ok()?;
    let after = &text[text.find("\"sha1\"")? + "\"sha1\"".len()..];
    let hex: String = after
        .trim_start_matches([' ', ':', '"', '\t', '\n'])
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    if hex.len() < 7 {
        return None;
    }
    let dirty = if text.contains("\"dirty\": true") || text.contains("\"dirty\":true") {
        "-dirty"
    } else {
        ""
    };
    Some(format!("{}{dirty}", &hex[..7]))
}
