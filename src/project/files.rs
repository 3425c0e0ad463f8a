//! Reading a context's files (info.edn, VERSION, PLATFORMS_OVERRIDE, Dockerfile) defensively: only
//! regular files, only inside the project, and never more than a bound. A FIFO would block the scan
//! forever, `/dev/zero` would fill memory, and a link to `/proc/self/environ` would put cip's
//! environment (credentials) into error messages.
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::diagnostics::Problem;

/// info.edn, VERSION and PLATFORMS_OVERRIDE hold a few lines.
pub const METADATA_LIMIT: u64 = 1 << 20;
/// Dockerfiles are longer, but not this long.
pub const DOCKERFILE_LIMIT: u64 = 4 << 20;

/// Where files may live: the project directory and the context's own directory (a context may be
/// a symlink to a directory elsewhere), both canonical.
#[derive(Debug, Clone)]
pub struct Allowed {
    roots: Vec<PathBuf>,
}

impl Allowed {
    pub fn new(project: &Path, context: &Path) -> Allowed {
        Allowed::project(project).and(context)
    }

    /// The project directory alone (canonicalised once per scan).
    pub fn project(project: &Path) -> Allowed {
        Allowed {
            roots: fs::canonicalize(project).into_iter().collect(),
        }
    }

    /// These roots and `dir`.
    pub fn and(&self, dir: &Path) -> Allowed {
        let mut roots = self.roots.clone();
        roots.extend(fs::canonicalize(dir));
        Allowed { roots }
    }

    fn contains(&self, path: &Path) -> bool {
        self.roots.iter().any(|r| path.starts_with(r))
    }
}

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Nothing at that path (not even a dangling symlink).
    Missing,
    Problem(Problem),
}

/// Whether anything (a file, a directory, a dangling symlink) is at `path`.
pub fn present(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Reads `path` if it is a regular file within `allowed`, of at most `limit` bytes.
pub fn read_bounded(path: &Path, allowed: &Allowed, limit: u64) -> Result<Vec<u8>, ReadError> {
    let link = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::Missing),
        Err(e) => return Err(unreadable(path, &e)),
    };
    if link.file_type().is_symlink() {
        check_link_target(path, allowed)?;
    }
    let meta = fs::metadata(path).map_err(|e| unreadable(path, &e))?;
    if !meta.is_file() {
        return Err(not_regular(path, &meta));
    }
    // O_NONBLOCK: should the file be swapped for a FIFO after the check, opening it does not wait
    // for a writer; fstat below then refuses it.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| unreadable(path, &e))?;
    let meta = file.metadata().map_err(|e| unreadable(path, &e))?;
    if !meta.is_file() {
        return Err(not_regular(path, &meta));
    }
    read_at_most(file, path, limit)
}

/// The problem with an ignore file of a context (`.dockerignore`, `Dockerfile.dockerignore`), if
/// there is one: it decides what the context digest and the builder see, so it is held to the rules
/// of the other metadata files (a regular file inside the project, of bounded size).
pub fn ignore_file_problem(path: &Path, allowed: &Allowed) -> Option<Problem> {
    match read_bounded(path, allowed, METADATA_LIMIT) {
        Ok(_) | Err(ReadError::Missing) => None,
        Err(ReadError::Problem(p)) => Some(p),
    }
}

fn read_at_most(file: File, path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unreadable(path, &e))?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::Problem(
            Problem::error(
                "too-large",
                format!(
                    "{} is larger than {}: cip reads at most that much of it",
                    path.display(),
                    human_size(limit)
                ),
            )
            .at(path, None)
            .hint("is this the right file? Metadata files hold a few lines"),
        ));
    }
    Ok(bytes)
}

/// A symlink must resolve inside the project: its target is named, never read.
fn check_link_target(path: &Path, allowed: &Allowed) -> Result<(), ReadError> {
    let target = fs::read_link(path).map_err(|e| unreadable(path, &e))?;
    let resolved = match fs::canonicalize(path) {
        Ok(r) => r,
        Err(_) => {
            return Err(ReadError::Problem(
                Problem::error(
                    "unreadable",
                    format!(
                        "{} is a symlink to {}, which does not exist",
                        path.display(),
                        target.display()
                    ),
                )
                .at(path, None)
                .hint("fix or remove the link"),
            ))
        }
    };
    if allowed.contains(&resolved) {
        return Ok(());
    }
    Err(ReadError::Problem(
        Problem::error(
            "outside-project",
            format!(
                "{} is a symlink to {}, which is outside the project; cip does not read metadata \
                 from outside the project",
                path.display(),
                target.display()
            ),
        )
        .at(path, None)
        .hint("copy the file into the context instead of linking to it"),
    ))
}

fn not_regular(path: &Path, meta: &fs::Metadata) -> ReadError {
    let t = meta.file_type();
    let kind = if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    ReadError::Problem(
        Problem::error(
            "not-a-file",
            format!("{} is not a regular file ({kind})", path.display()),
        )
        .at(path, None)
        .hint("replace it with a regular file"),
    )
}

fn unreadable(path: &Path, e: &std::io::Error) -> ReadError {
    ReadError::Problem(Problem::error("unreadable", format!("cannot read: {e}")).at(path, None))
}

fn human_size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(r: Result<Vec<u8>, ReadError>) -> Problem {
        match r {
            Err(ReadError::Problem(p)) => p,
            other => panic!("expected a problem, got {other:?}"),
        }
    }

    #[test]
    fn regular_files_inside_are_read_others_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("project");
        let ctx = root.join("contexts/00-a");
        fs::create_dir_all(&ctx).unwrap();
        fs::write(ctx.join("real"), "1.0.0\n").unwrap();
        fs::write(tmp.path().join("secret"), "CIP_PASSWORD=x").unwrap();
        std::os::unix::fs::symlink("real", ctx.join("inside")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), ctx.join("outside")).unwrap();
        std::os::unix::fs::symlink("nowhere", ctx.join("dangling")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", ctx.join("zero")).unwrap();
        let allowed = Allowed::new(&root, &ctx);
        let read = |name: &str, limit| read_bounded(&ctx.join(name), &allowed, limit);

        assert_eq!(read("real", 100).unwrap(), b"1.0.0\n");
        assert_eq!(read("inside", 100).unwrap(), b"1.0.0\n");
        assert!(matches!(read("absent", 100), Err(ReadError::Missing)));
        let p = problem(read("outside", 100));
        assert_eq!(p.code, "outside-project");
        assert!(!p.to_string().contains("CIP_PASSWORD"), "{p}");
        assert!(problem(read("dangling", 100))
            .message
            .contains("does not exist"));
        assert_eq!(problem(read("zero", 100)).code, "outside-project");
        let allowed_dev = Allowed::new(Path::new("/"), &ctx);
        let p = problem(read_bounded(&ctx.join("zero"), &allowed_dev, 100));
        assert_eq!(p.code, "not-a-file");
        assert!(p.message.contains("character device"), "{p}");
        let p = problem(read("real", 3));
        assert_eq!(p.code, "too-large");
        assert!(problem(read_bounded(&ctx, &allowed, 10))
            .message
            .contains("directory"));
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(METADATA_LIMIT), "1 MiB");
        assert_eq!(human_size(DOCKERFILE_LIMIT), "4 MiB");
        assert_eq!(human_size(10), "10 bytes");
    }
}
