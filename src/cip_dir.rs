//! cip's own directory in a project, `PROJECT/.cip/` (build logs, caches, a cascade's staging).
//! Whoever creates a directory in it goes through [`create_dir_all`], which leaves a `.gitignore`
//! holding `*` in every `.cip/` on the way, as other tools do for their caches: `git add -A` then
//! never stages cip's files.
use std::fs;
use std::io::{self, Write as _};
use std::path::Path;

pub const NAME: &str = ".cip";
const GITIGNORE: &str = ".gitignore";
const IGNORE_ALL: &str = "# cip's logs and caches: never committed\n*\n";

/// `fs::create_dir_all(dir)`, then a `.gitignore` in each `.cip` directory among `dir` and its
/// ancestors that has none (one the user wrote is left as it is).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    for cip in dir
        .ancestors()
        .filter(|d| d.file_name() == Some(NAME.as_ref()))
    {
        ignore_all(cip)?;
    }
    Ok(())
}

/// Writes `dir/.gitignore` unless something is there: a temporary file linked into place, so a
/// reader never sees half of it and a concurrent writer's file is never replaced.
fn ignore_all(dir: &Path) -> io::Result<()> {
    let path = dir.join(GITIGNORE);
    if fs::symlink_metadata(&path).is_ok() {
        return Ok(());
    }
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(IGNORE_ALL.as_bytes())?;
    match tmp.persist_noclobber(&path) {
        Ok(_) => Ok(()),
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e.error),
    }
}

/// Removes `dir` (a `.cip` directory) when nothing but the `.gitignore` cip wrote is left in it;
/// for a command that created `.cip/` for a file it then removed.
pub fn remove_if_unused(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
    if names.iter().all(|n| n == GITIGNORE) {
        let ignore = dir.join(GITIGNORE);
        if fs::read_to_string(&ignore).is_ok_and(|t| t == IGNORE_ALL) {
            let _ = fs::remove_file(ignore);
        }
        let _ = fs::remove_dir(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cip_directory_on_the_way_ignores_all_its_files() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = tmp.path().join(".cip/logs");
        create_dir_all(&logs).unwrap();
        assert!(logs.is_dir());
        let ignore = fs::read_to_string(tmp.path().join(".cip/.gitignore")).unwrap();
        assert_eq!(ignore.lines().last(), Some("*"));
        assert!(!logs.join(".gitignore").exists());
        // The logs and the .gitignore, no temporary file.
        let names: Vec<_> = fs::read_dir(tmp.path().join(".cip"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_gitignore_the_user_wrote_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join(".cip")).unwrap();
        fs::write(tmp.path().join(".cip/.gitignore"), "logs/\n").unwrap();
        create_dir_all(&tmp.path().join(".cip/cache")).unwrap();
        let kept = fs::read_to_string(tmp.path().join(".cip/.gitignore")).unwrap();
        assert_eq!(kept, "logs/\n");
        remove_if_unused(&tmp.path().join(".cip"));
        assert!(tmp.path().join(".cip/cache").is_dir());
    }

    #[test]
    fn a_directory_outside_cip_gets_no_gitignore() {
        let tmp = tempfile::tempdir().unwrap();
        create_dir_all(&tmp.path().join("logs/a")).unwrap();
        assert!(!tmp.path().join("logs/.gitignore").exists());
        assert!(!tmp.path().join("logs/a/.gitignore").exists());
    }

    #[test]
    fn an_unused_cip_directory_goes_with_its_gitignore() {
        let tmp = tempfile::tempdir().unwrap();
        let cip = tmp.path().join(".cip");
        create_dir_all(&cip.join("staging-1")).unwrap();
        fs::remove_dir(cip.join("staging-1")).unwrap();
        remove_if_unused(&cip);
        assert!(!cip.exists());
    }
}
