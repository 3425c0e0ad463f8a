//! Cancelling a build on a podman service of this machine (`podman --url unix://...`). The build
//! runs inside the service: ending the `podman --url ... build` client does not stop it (podman
//! 4.3 goes on to the end of the Dockerfile). So each such build is marked with a host name only
//! its RUN steps see (`--add-host=MARKER:127.0.0.1`, in the step's /etc/hosts, never in the image),
//! and a cancellation finds the service (the peer of its socket), looks among the service's
//! descendants for processes whose /etc/hosts holds the marker, and kills them: the RUN step fails,
//! and the service ends the build and removes its working container. Builds of other runs on the
//! same service carry other markers and are left alone. A service on another machine (`ssh://`)
//! cannot be reached this way; its build ends when it ends.
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// How long a cancellation watches the service for RUN steps of the build: a step that starts
/// after the client was ended (the build was copying files) is caught too.
const WATCH: Duration = Duration::from_secs(8);
/// The most of a RUN step's /etc/hosts read.
const HOSTS_LIMIT: u64 = 64 * 1024;

/// The host name that marks the RUN steps of the build of `tag` (unique to the run, image and
/// platform, since the tag is).
pub fn marker(tag: &str) -> String {
    let hash = hex::encode(Sha256::digest(tag.as_bytes()));
    format!("cip-build-{}", &hash[..20])
}

/// The socket of a podman service on this machine that `global_args` point podman at, if they
/// do (`--url=unix:///PATH` or `--url unix:///PATH`).
pub fn local_socket(global_args: &[String]) -> Option<PathBuf> {
    let url = global_args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--url=").map(str::to_string).or_else(|| {
            (a == "--url")
                .then(|| global_args.get(i + 1).cloned())
                .flatten()
        })
    })?;
    url.strip_prefix("unix://").map(PathBuf::from)
}

/// Kills the RUN steps marked `marker` of the service listening on `socket`, watching for
/// [`WATCH`]; returns how many processes it killed.
pub fn cancel(socket: &Path, marker: &str) -> usize {
    let Some(service) = peer_pid(socket) else {
        return 0;
    };
    let started = Instant::now();
    let mut killed = 0;
    while started.elapsed() < WATCH {
        let marked: Vec<libc::pid_t> = descendants(service)
            .into_iter()
            .filter(|&pid| hosts_name(pid, marker))
            .collect();
        for &pid in &marked {
            // SAFETY: kill(2) on a process of the service whose RUN step carries this build's
            // marker; no memory is involved.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        killed += marked.len();
        // Once a step was killed, the build fails: nothing more of it starts.
        if killed > 0 && marked.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    killed
}

/// The process at the other end of the unix socket `socket` (the service itself).
fn peer_pid(socket: &Path) -> Option<libc::pid_t> {
    use std::os::fd::AsRawFd;
    let stream = std::os::unix::net::UnixStream::connect(socket).ok()?;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, a ucred as SO_PEERCRED expects.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (r == 0 && cred.pid > 0).then_some(cred.pid)
}

/// Every live descendant of `root`.
fn descendants(root: libc::pid_t) -> Vec<libc::pid_t> {
    let parents: Vec<(libc::pid_t, libc::pid_t)> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: libc::pid_t = e.file_name().to_str()?.parse().ok()?;
            Some((pid, parent_of(pid)?))
        })
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(pid, _) in parents.iter().filter(|(_, pp)| *pp == p) {
            out.push(pid);
            frontier.push(pid);
        }
    }
    out
}

fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether the /etc/hosts process `pid` sees names `marker`.
fn hosts_name(pid: libc::pid_t, marker: &str) -> bool {
    let Ok(file) = fs::File::open(format!("/proc/{pid}/root/etc/hosts")) else {
        return false;
    };
    let mut text = String::new();
    if file.take(HOSTS_LIMIT).read_to_string(&mut text).is_err() {
        return false;
    }
    text.lines()
        .any(|l| l.split_whitespace().skip(1).any(|name| name == marker))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_host_names_unique_to_a_tag() {
        let a = marker("cip.local/run-1-a/app:1.0.0-linux-amd64");
        assert_eq!(a, marker("cip.local/run-1-a/app:1.0.0-linux-amd64"));
        assert_ne!(a, marker("cip.local/run-1-a/app:1.0.0-linux-arm64"));
        assert!(a.len() < 64 && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    #[test]
    fn only_a_unix_url_is_a_service_of_this_machine() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            local_socket(&args(&["--url=unix:///run/a b.sock"])),
            Some(PathBuf::from("/run/a b.sock"))
        );
        assert_eq!(
            local_socket(&args(&["--url", "unix:///run/p.sock"])),
            Some(PathBuf::from("/run/p.sock"))
        );
        assert_eq!(local_socket(&args(&["--url=ssh://u@h/run/p.sock"])), None);
        assert_eq!(local_socket(&args(&["--connection=far"])), None);
    }

    #[test]
    fn the_peer_of_a_socket_is_the_process_listening_on_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(peer_pid(&path), Some(std::process::id() as libc::pid_t));
        assert_eq!(peer_pid(&dir.path().join("none.sock")), None);
    }
}
