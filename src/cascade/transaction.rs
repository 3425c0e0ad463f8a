//! Writing a cascade all or nothing, even when cip is interrupted. Every new content is first staged
//! in `PROJECT/.cip/staging-PID/` (never inside a build context, where a stray file would change the
//! context's digest), next to a hard link to (or copy of) each original; only then are the staged
//! files renamed over the originals. A signal while staging stops with nothing replaced; once
//! replacing has begun, signals wait until every file is replaced. A failed rename puts the originals
//! back. A journal in the staging directory lets the next cascade undo a run killed (SIGKILL, power)
//! in the middle of replacing, and remove what a killed run left.
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::io::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context as _};

use super::{signals, Cascade};
use crate::cip_dir::{self, NAME as CIP_DIR};
use crate::interrupt::Signal;
use crate::output::timing;

const STAGING_PREFIX: &str = "staging-";
/// Paths (relative to the project) of the staged files, NUL-separated, in staging order.
const JOURNAL: &str = "journal";
/// Present from the first rename on; renamed to REPLACED once every file is replaced.
const REPLACING: &str = "replacing";
const REPLACED: &str = "replaced";

/// The write was stopped by a signal before any file was replaced.
#[derive(Debug)]
pub struct Interrupted(pub Signal);

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} received: stopped before any file was replaced; no file was changed",
            self.0.name()
        )
    }
}

impl std::error::Error for Interrupted {}

/// What a completed write did.
#[derive(Debug, Default)]
pub struct Written {
    /// The backup written for each rewritten file (with `--backup`).
    pub backups: BTreeMap<PathBuf, PathBuf>,
    /// A signal that arrived while files were being replaced: it waited until every file was.
    pub deferred: Option<Signal>,
}

/// Writes every file of the cascade, or none. `root` is the project directory (for `.cip/`).
pub fn write(cascade: &Cascade, root: &Path, backup: bool) -> anyhow::Result<Written> {
    let started = Instant::now();
    let mut staging = Staging::create(root)?;
    let entries = staging.stage_all(cascade)?;
    timing("cascade: stage", started);
    // From here on a signal waits: the tree is never left half applied.
    let started = Instant::now();
    staging.replace_all(&entries)?;
    timing("cascade: replace", started);
    let backups = if backup {
        staging.keep_backups(&entries)?
    } else {
        BTreeMap::new()
    };
    Ok(Written {
        backups,
        deferred: signals::received(),
    })
}

/// One file of the cascade: where it goes, its staged new content and its original.
struct Entry<'a> {
    target: &'a Path,
    new: PathBuf,
    orig: PathBuf,
}

/// The staging directory of this process; removed when dropped unless it must be kept.
struct Staging {
    root: PathBuf,
    dir: PathBuf,
    keep: bool,
}

impl Staging {
    fn create(root: &Path) -> anyhow::Result<Staging> {
        let dir = root
            .join(CIP_DIR)
            .join(format!("{STAGING_PREFIX}{}", std::process::id()));
        // Left by a dead process that had our PID: `recover` deals with it (commands run it first).
        if dir.exists() {
            bail!(
                "{} exists, left by a killed cascade: run `cip cascade-version-updates` to undo or                  remove it (no file was changed)",
                dir.display()
            );
        }
        cip_dir::create_dir_all(&dir).with_context(|| {
            format!(
                "cannot create {}: cip stages every rewritten file there before it replaces any; \
                 make {} writable (no file was changed)",
                dir.display(),
                root.display()
            )
        })?;
        Ok(Staging {
            root: root.to_path_buf(),
            dir,
            keep: false,
        })
    }

    /// Stages every new content and original; stops at a signal. Nothing is replaced here.
    fn stage_all<'a>(&self, cascade: &'a Cascade) -> anyhow::Result<Vec<Entry<'a>>> {
        let dev = fs::metadata(&self.dir)?.dev();
        let mut entries = Vec::new();
        let mut journal = Vec::new();
        for (i, (target, (original, new))) in cascade.files.iter().enumerate() {
            interrupted()?;
            let e = Entry {
                target,
                new: self.dir.join(format!("{i}.new")),
                orig: self.dir.join(format!("{i}.orig")),
            };
            self.stage_one(&e, original, new, dev).with_context(|| {
                format!("cannot stage {}; no file was changed", target.display())
            })?;
            journal.extend_from_slice(
                target
                    .strip_prefix(&self.root)
                    .unwrap_or(target)
                    .as_os_str()
                    .as_bytes(),
            );
            journal.push(0);
            entries.push(e);
        }
        fs::write(self.dir.join(JOURNAL), journal)
            .and_then(|()| sync_filesystem(&self.dir))
            .with_context(|| format!("cannot write {}; no file was changed", self.dir.display()))?;
        interrupted()?;
        Ok(entries)
    }

    fn stage_one(&self, e: &Entry, original: &str, new: &str, dev: u64) -> anyhow::Result<()> {
        let meta = fs::metadata(e.target)?;
        let parent = e.target.parent().unwrap_or(Path::new("."));
        if fs::metadata(parent)?.dev() != dev {
            bail!(
                "it is on another filesystem than {}, so it cannot be replaced from there in one \
                 step; keep {CIP_DIR}/ on the filesystem of contexts/",
                self.dir.display()
            );
        }
        // The original is kept (a second link to it costs nothing) for a rollback and the backup.
        if fs::hard_link(e.target, &e.orig).is_err() {
            fs::copy(e.target, &e.orig)?;
        }
        if fs::read(&e.orig)? != original.as_bytes() {
            bail!("it changed since cip read it: run the cascade again");
        }
        let mut file = File::create(&e.new)?;
        file.write_all(new.as_bytes())?;
        fs::set_permissions(&e.new, meta.permissions())?;
        // Best effort: only root may give a file away, and then the owner must stay the same.
        let _ = std::os::unix::fs::chown(&e.new, Some(meta.uid()), Some(meta.gid()));
        Ok(())
    }

    /// Renames every staged file over its original; on a failure, puts back those already replaced.
    fn replace_all(&mut self, entries: &[Entry]) -> anyhow::Result<()> {
        File::create(self.dir.join(REPLACING)).with_context(|| {
            format!(
                "cannot write in {}; no file was changed",
                self.dir.display()
            )
        })?;
        for (k, e) in entries.iter().enumerate() {
            if let Err(err) = fs::rename(&e.new, e.target) {
                let restored = self.roll_back(&entries[..k]);
                return Err(anyhow!(err)
                    .context(format!("cannot replace {}; {restored}", e.target.display())));
            }
        }
        let _ = fs::rename(self.dir.join(REPLACING), self.dir.join(REPLACED));
        Ok(())
    }

    /// Puts the originals of `replaced` back; says how that went.
    fn roll_back(&mut self, replaced: &[Entry]) -> String {
        let failed: Vec<String> = replaced
            .iter()
            .filter(|e| fs::rename(&e.orig, e.target).is_err())
            .map(|e| e.target.display().to_string())
            .collect();
        if failed.is_empty() {
            return "every file was left as it was (no file was changed)".to_string();
        }
        self.keep = true;
        format!(
            "could not restore {}: their originals are in {} (the next cascade restores them)",
            failed.join(", "),
            self.dir.display()
        )
    }

    /// Keeps each original as `FILE.bk`, or the first free `FILE.bk.N`: an earlier backup stays.
    fn keep_backups(&mut self, entries: &[Entry]) -> anyhow::Result<BTreeMap<PathBuf, PathBuf>> {
        let mut out = BTreeMap::new();
        for e in entries {
            match keep_backup(&e.orig, e.target) {
                Ok(bk) => {
                    out.insert(e.target.to_path_buf(), bk);
                }
                Err(err) => {
                    self.keep = true;
                    return Err(anyhow!(err).context(format!(
                        "every file was rewritten, but no backup of {} could be written; its \
                         original is {}",
                        e.target.display(),
                        e.orig.display()
                    )));
                }
            }
        }
        Ok(out)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.dir);
            // `.cip/` itself goes too if this run created it for nothing else.
            cip_dir::remove_if_unused(&self.root.join(CIP_DIR));
        }
    }
}

/// Err(Interrupted) once a signal was received.
fn interrupted() -> anyhow::Result<()> {
    match signals::received() {
        Some(sig) => Err(Interrupted(sig).into()),
        None => Ok(()),
    }
}

/// One sync for every staged file (instead of one fsync each): they are durable before any rename.
fn sync_filesystem(dir: &Path) -> io::Result<()> {
    let d = File::open(dir)?;
    // SAFETY: syncfs on a descriptor we own.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Links `orig` as `TARGET.bk`, or `TARGET.bk.1`, `.bk.2`, ... whichever is free first.
fn keep_backup(orig: &Path, target: &Path) -> io::Result<PathBuf> {
    for n in 0u32.. {
        let mut name = target.as_os_str().to_owned();
        name.push(if n == 0 {
            ".bk".to_string()
        } else {
            format!(".bk.{n}")
        });
        let candidate = PathBuf::from(name);
        match fs::hard_link(orig, &candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("u32 backups")
}

/// Cleans what killed cascades left in `root/.cip`: undoes a half-applied replace from its journal,
/// removes the staging directory, and returns one line per directory saying what was done, and
/// whether files were restored.
pub fn recover(root: &Path) -> anyhow::Result<Vec<(String, bool)>> {
    let Ok(list) = fs::read_dir(root.join(CIP_DIR)) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in list {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(STAGING_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
            .filter(|&p| p > 0)
        else {
            continue;
        };
        // Ours cannot exist yet (this runs before staging): one with our PID is a dead process's.
        if pid != std::process::id() && alive(pid) {
            continue; // a cascade still running
        }
        out.push(recover_one(root, &entry.path(), pid)?);
    }
    Ok(out)
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn recover_one(root: &Path, dir: &Path, pid: u32) -> anyhow::Result<(String, bool)> {
    let shown = dir.strip_prefix(root).unwrap_or(dir).display().to_string();
    let (line, restored) = if dir.join(REPLACING).exists() {
        let n = restore_from_journal(root, dir)
            .with_context(|| format!("cannot undo the half-applied cascade kept in {shown}; restore its *.orig files by hand (see its journal)"))?;
        (
            format!(
                "restored {n} file(s) from {shown}: a cascade (pid {pid}) was killed while it \
                 replaced files; the project is as it was before it"
            ),
            n > 0,
        )
    } else if dir.join(REPLACED).exists() {
        (
            format!("removed {shown}, left by a cascade (pid {pid}) killed after it had replaced every file"),
            false,
        )
    } else {
        (
            format!(
                "removed {shown}, left by a cascade (pid {pid}) killed before it replaced any file"
            ),
            false,
        )
    };
    fs::remove_dir_all(dir).with_context(|| format!("cannot remove {shown}"))?;
    Ok((line, restored))
}

/// Puts back the original of every journal entry that was replaced (its staged file is gone).
fn restore_from_journal(root: &Path, dir: &Path) -> anyhow::Result<usize> {
    let journal = fs::read(dir.join(JOURNAL))?;
    let mut restored = 0;
    for (i, rel) in journal
        .split(|b| *b == 0)
        .filter(|r| !r.is_empty())
        .enumerate()
    {
        if dir.join(format!("{i}.new")).exists() {
            continue; // never replaced
        }
        let target = root.join(OsStr::from_bytes(rel));
        match fs::rename(dir.join(format!("{i}.orig")), &target) {
            Ok(()) => restored += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {} // put back already
            Err(e) => {
                return Err(e).with_context(|| format!("cannot restore {}", target.display()))
            }
        }
    }
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PID of a process that has ended (and was reaped).
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        child.id()
    }

    /// A project with `contexts/x/Dockerfile` holding "new", and a staging directory left by a
    /// dead cascade, with the markers given, whose entry 0 is that Dockerfile (already replaced:
    /// its staged file is gone, its original "old" kept) and entry 1 another file never replaced.
    fn killed_cascade(markers: &[&str]) -> (tempfile::TempDir, PathBuf, u32) {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path().join("contexts/x");
        fs::create_dir_all(&ctx).unwrap();
        fs::write(ctx.join("Dockerfile"), "new").unwrap();
        fs::write(ctx.join("info.edn"), "old info").unwrap();
        let pid = dead_pid();
        let dir = tmp.path().join(format!(".cip/staging-{pid}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(JOURNAL),
            "contexts/x/Dockerfile\0contexts/x/info.edn\0",
        )
        .unwrap();
        fs::write(dir.join("0.orig"), "old").unwrap();
        fs::write(dir.join("1.orig"), "old info").unwrap();
        fs::write(dir.join("1.new"), "new info").unwrap();
        for m in markers {
            fs::write(dir.join(m), "").unwrap();
        }
        (tmp, dir, pid)
    }

    fn read(root: &Path, rel: &str) -> String {
        fs::read_to_string(root.join(rel)).unwrap()
    }

    #[test]
    fn a_run_killed_while_replacing_is_undone() {
        let (tmp, dir, pid) = killed_cascade(&[REPLACING]);
        let lines = recover(tmp.path()).unwrap();
        let line = format!(
            "restored 1 file(s) from .cip/staging-{pid}: a cascade (pid {pid}) was killed while it \
             replaced files; the project is as it was before it"
        );
        assert_eq!(lines, [(line, true)]);
        assert_eq!(read(tmp.path(), "contexts/x/Dockerfile"), "old");
        assert_eq!(read(tmp.path(), "contexts/x/info.edn"), "old info");
        assert!(!dir.exists());
        assert!(
            recover(tmp.path()).unwrap().is_empty(),
            "nothing left to do"
        );
    }

    #[test]
    fn a_run_killed_before_or_after_replacing_is_removed() {
        for (markers, when) in [
            (&[][..], "before it replaced any file"),
            (&[REPLACED][..], "after it had replaced every file"),
        ] {
            let (tmp, dir, pid) = killed_cascade(markers);
            let lines = recover(tmp.path()).unwrap();
            let line =
                format!("removed .cip/staging-{pid}, left by a cascade (pid {pid}) killed {when}");
            assert_eq!(lines, [(line, false)]);
            assert_eq!(
                read(tmp.path(), "contexts/x/Dockerfile"),
                "new",
                "left as it is"
            );
            assert!(!dir.exists());
        }
    }

    #[test]
    fn the_staging_directory_of_a_running_cascade_is_left_alone() {
        let (tmp, dir, _) = killed_cascade(&[REPLACING]);
        // PID 1 is alive (and not ours).
        fs::rename(&dir, tmp.path().join(".cip/staging-1")).unwrap();
        assert!(recover(tmp.path()).unwrap().is_empty());
        assert!(tmp.path().join(".cip/staging-1/0.orig").exists());
    }
}
