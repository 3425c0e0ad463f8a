//! What a benchmark needs from the machine: tools on PATH (the registry, buildah, skopeo, curl)
//! and the demo's static busybox binaries (gitignored, so absent from a fresh clone). When
//! something is missing, `scripts/setup-env` (idempotent) installs and copies it, once per run.
//! When it cannot, the part that needs it is skipped with the reason, never a panic.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The package root: benches run from a checkout, where `scripts/` and `fixtures/` are.
fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The demo's base context; `scripts/setup-env` copies its `busybox-{amd64,arm64}` there.
pub fn demo_busybox_dir() -> PathBuf {
    repo_root().join("fixtures/demo/contexts/00-busybox")
}

/// The demo's static busybox binaries, one per architecture it builds.
pub fn demo_busybox_files() -> Vec<PathBuf> {
    ["amd64", "arm64"]
        .iter()
        .map(|arch| demo_busybox_dir().join(format!("busybox-{arch}")))
        .collect()
}

/// Makes sure `tools` are on PATH and `files` exist for the bench part `part`, running
/// `scripts/setup-env` when something is missing. Err says why the part cannot run: the caller
/// prints it and skips that part.
pub fn prepare(part: &str, tools: &[&str], files: &[PathBuf]) -> Result<(), String> {
    let before = missing(tools, files);
    if before.is_empty() {
        return Ok(());
    }
    println!(
        "{part}: missing {}: trying scripts/setup-env, which installs and copies what is missing",
        before.join(", ")
    );
    let ran = SETUP_ENV.get_or_init(run_setup_env);
    let after = missing(tools, files);
    match (after.is_empty(), ran) {
        (true, Ok(())) => Ok(()),
        (true, Err(why)) => {
            // setup-env goes on to arm64 emulation, which an unprivileged container cannot set
            // up; what this part needs may be there all the same.
            println!("{part}: {why}, but what this part needs is there now");
            Ok(())
        }
        (false, Err(why)) => Err(format!("missing {}: {why}", after.join(", "))),
        (false, Ok(())) => Err(format!(
            "still missing after scripts/setup-env: {}",
            after.join(", ")
        )),
    }
}

/// The outcome of the one `scripts/setup-env` run of this process (several parts may ask).
static SETUP_ENV: OnceLock<Result<(), String>> = OnceLock::new();

/// What of `tools` and `files` is not there, named for a message.
fn missing(tools: &[&str], files: &[PathBuf]) -> Vec<String> {
    let tools = tools.iter().filter(|t| !on_path(t)).map(|t| t.to_string());
    let files = files.iter().filter(|f| !f.is_file()).map(|f| {
        f.strip_prefix(repo_root())
            .unwrap_or(f)
            .display()
            .to_string()
    });
    tools.chain(files).collect()
}

fn on_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
}

/// Runs `scripts/setup-env`, its output shown, if it can work here: it installs with apt-get, as
/// root or through sudo.
fn run_setup_env() -> Result<(), String> {
    if !on_path("apt-get") {
        return Err(
            "scripts/setup-env cannot run: this machine has no apt-get (install \
                    docker-registry, buildah, skopeo, curl and busybox-static by hand, and copy \
                    the busybox binaries as scripts/setup-env does)"
                .to_string(),
        );
    }
    // SAFETY: geteuid only reads this process's effective user id.
    let root = unsafe { libc::geteuid() } == 0;
    if !root && !sudo_without_password() {
        return Err(
            "scripts/setup-env cannot run: not root, and sudo is missing or asks for a \
             password (run scripts/setup-env yourself once)"
                .to_string(),
        );
    }
    let script = repo_root().join("scripts/setup-env");
    let status = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "scripts/setup-env failed ({status}; its messages are above)"
        ))
    }
}

fn sudo_without_password() -> bool {
    Command::new("sudo")
        .args(["-n", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
