//! Private directories a run hands to its builders (the auth file of environment credentials, CA
//! certificates, image layouts). They live in `TMPDIR/cip-UID/` (the run's `TMPDIR`, passed in),
//! named after the run's process id, so that a run killed with SIGKILL, which cannot clean up after
//! itself, leaves them where the next run finds and removes them.
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// A new private directory (mode 0700) for this run in `temp_dir/cip-UID`, removed when dropped.
/// Leftovers of runs that are no longer alive are removed first.
pub fn private_dir(temp_dir: &Path, purpose: &str) -> anyhow::Result<tempfile::TempDir> {
    let base = base_dir(temp_dir)?;
    sweep(&base);
    tempfile::Builder::new()
        .prefix(&format!("{purpose}-{}-", std::process::id()))
        .tempdir_in(&base)
        .with_context(|| format!("cannot create a private directory in {}", base.display()))
}

/// `TMPDIR/cip-UID`, created readable by its owner only.
fn base_dir(temp_dir: &Path) -> anyhow::Result<PathBuf> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let base = temp_dir.join(format!("cip-{uid}"));
    match fs::DirBuilder::new().mode(0o700).create(&base) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", base.display())),
    }
    let meta = fs::symlink_metadata(&base)?;
    if !meta.is_dir() || meta.permissions().mode() & 0o077 != 0 {
        anyhow::bail!(
            "{} is not a private directory (a symlink, or readable by others): remove it",
            base.display()
        );
    }
    Ok(base)
}

/// Removes the directories of runs whose process is gone.
fn sweep(base: &std::path::Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if owner_pid(&name).is_some_and(|pid| !alive(pid)) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The process id in `purpose-PID-random`.
fn owner_pid(name: &str) -> Option<libc::pid_t> {
    let mut parts = name.split('-');
    parts.next()?;
    parts.next()?.parse().ok()
}

fn alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_of_dead_runs_are_swept_and_live_ones_kept() {
        let base = tempfile::tempdir().unwrap();
        // A pid far above any pid_max in use: no such process.
        let dead = base.path().join("auth-2147483600-abc");
        let live = base.path().join(format!("auth-{}-abc", std::process::id()));
        let other = base.path().join("unrelated");
        for d in [&dead, &live, &other] {
            fs::create_dir(d).unwrap();
        }
        sweep(base.path());
        assert!(!dead.exists());
        assert!(live.exists());
        assert!(other.exists(), "names cip did not make are left alone");
    }

    #[test]
    fn private_dirs_are_owner_only_and_named_after_the_run() {
        let d = private_dir(&std::env::temp_dir(), "test").unwrap();
        let name = d.path().file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(owner_pid(&name), Some(std::process::id() as libc::pid_t));
        let mode = fs::metadata(d.path().parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
