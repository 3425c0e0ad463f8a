//! A private copy of a fixture project with its own buildah store, and helpers to run cip on it.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[allow(unused_imports)]
use serde_json::Value;

use super::Buildah;

/// A private copy of a fixture project, a private containers store (for buildah and podman alike), and
/// a `buildah` and a `podman` on PATH that record each invocation before running the real one (so tests
/// can tell whether cip built anything, and with what).
pub struct Workspace {
    dir: tempfile::TempDir,
    pub store: Buildah,
}

impl Workspace {
    pub fn new(fixture: &Path) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(fixture, &dir.path().join("project"));
        let bin = dir.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        for program in ["buildah", "podman"] {
            super::write_executable(
                &bin.join(program),
                &format!(
                    "#!/bin/sh\necho \"$*\" >> {log}\nexec /usr/bin/{program} \"$@\"\n",
                    log = dir.path().join(format!("{program}-calls.log")).display()
                ),
            );
        }
        Workspace {
            dir,
            store: Buildah::new(),
        }
    }

    pub fn demo() -> Workspace {
        super::busybox_path("amd64");
        super::busybox_path("arm64");
        Workspace::new(&super::demo_fixture())
    }

    pub fn project(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    pub fn context(&self, dir: &str) -> PathBuf {
        self.project().join("contexts").join(dir)
    }

    /// How many builds (`buildah bud`) ran so far.
    pub fn builds(&self) -> usize {
        self.buildah_calls()
            .iter()
            .filter(|l| l.split_whitespace().any(|w| w == "bud" || w == "build"))
            .count()
    }

    /// Every buildah invocation so far (its arguments), probes included.
    pub fn buildah_calls(&self) -> Vec<String> {
        self.calls("buildah")
    }

    /// Every invocation of `program` (buildah or podman) so far, probes included.
    pub fn calls(&self, program: &str) -> Vec<String> {
        fs::read_to_string(self.dir.path().join(format!("{program}-calls.log")))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn cip(&self, args: &[&str]) -> Output {
        self.cip_env(args, &[])
    }

    pub fn cip_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.cip_command(args, env).output().expect("run cip")
    }

    /// Starts cip in the background with its output piped (collect it with `wait_with_output`).
    pub fn spawn_cip(&self, args: &[&str]) -> std::process::Child {
        self.cip_command(args, &[])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start cip")
    }

    /// The command `cip` runs as in this workspace (project, PATH, builder store), not started.
    pub fn cip_command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap()
        );
        // `--project-dir` goes before a `--`: what follows it is for the builder.
        let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cip"));
        cmd.args(&args[..split])
            .arg("--project-dir")
            .arg(self.project())
            .args(&args[split..])
            .env("PATH", path)
            .env("NO_COLOR", "1")
            .env(
                "CIP_BUILDAH_GLOBAL_ARGS",
                self.store.storage_args().join(" "),
            )
            .env(
                "CIP_PODMAN_GLOBAL_ARGS",
                self.store.storage_args().join(" "),
            )
            .env("BUILDAH_ISOLATION", "chroot")
            .env("TMPDIR", self.dir.path())
            .env_remove("STORAGE_DRIVER");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }
}

/// Copies a fixture, without the `.cip` state (logs) a run of `scripts/demo` leaves in it.
pub fn copy_tree(from: &Path, to: &Path) {
    let entries = walkdir::WalkDir::new(from)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".cip");
    for e in entries.map(Result::unwrap) {
        let dest = to.join(e.path().strip_prefix(from).unwrap());
        if e.file_type().is_dir() {
            fs::create_dir_all(&dest).unwrap();
        } else {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Parses the `--json` run summary into (name, result, built platforms).
pub fn results(o: &Output) -> Vec<(String, String, Vec<String>)> {
    let doc: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)));
    doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let built = i["built"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_string())
                .collect();
            (
                i["name"].as_str().unwrap().into(),
                i["result"].as_str().unwrap().into(),
                built,
            )
        })
        .collect()
}

pub fn result_of<'a>(
    r: &'a [(String, String, Vec<String>)],
    name: &str,
) -> &'a (String, String, Vec<String>) {
    r.iter()
        .find(|x| x.0 == name)
        .unwrap_or_else(|| panic!("{name} not in {r:?}"))
}

pub fn set_info(ws: &Workspace, dir: &str, content: &str) {
    fs::write(ws.context(dir).join("info.edn"), content).unwrap();
}
