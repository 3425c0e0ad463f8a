//! Cancelling a build on a podman service (`podman --url unix://...` or `ssh://...`). The build
//! runs inside the service: ending the `podman --url ... build` client does not stop it (podman
//! 4.3 goes on to the end of the Dockerfile). So each such build is marked with a host name only
//! its RUN steps see (`--add-host=MARKER:127.0.0.1`, in the step's /etc/hosts, never in the image),
//! and a cancellation finds the service (the peer of its socket), looks among the service's
//! descendants for processes whose /etc/hosts holds the marker, and kills them: the RUN step fails,
//! and the service ends the build and removes its working container. Builds of other runs on the
//! same service carry other markers and are left alone. A service on another machine (`ssh://`)
//! is reached as podman reaches it, over ssh: `ssh [-p PORT] [-i KEY] -- [USER@]HOST SCRIPT` runs a
//! small sh script there that kills, for the same watch, the processes whose /etc/hosts names the
//! marker (the marker is hex, the script fixed: nothing from the configuration reaches the remote
//! shell but it). The account podman logs in as owns the service, so it may kill its steps.
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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

/// The value of podman's global option `--NAME` in `global_args` (`--NAME=V` or `--NAME V`).
fn option(global_args: &[String], name: &str) -> Option<String> {
    let long = format!("--{name}");
    let joined = format!("--{name}=");
    global_args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix(&joined).map(str::to_string).or_else(|| {
            (*a == long)
                .then(|| global_args.get(i + 1).cloned())
                .flatten()
        })
    })
}

/// The socket of a podman service on this machine that `global_args` point podman at, if they
/// do (`--url=unix:///PATH` or `--url unix:///PATH`).
pub fn local_socket(global_args: &[String]) -> Option<PathBuf> {
    option(global_args, "url")?
        .strip_prefix("unix://")
        .map(PathBuf::from)
}

/// A podman service a cancellation can reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// On this machine, listening on this socket.
    Local(PathBuf),
    /// On the machine podman reaches over ssh.
    Ssh(SshTarget),
}

/// Where `ssh` logs in to reach a service, as podman's `ssh://[USER@]HOST[:PORT]/PATH` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// `USER@HOST` or `HOST` (IPv6 without its brackets).
    pub destination: String,
    pub port: Option<u16>,
    /// The key podman logs in with (`--identity`, `CONTAINER_SSHKEY`).
    pub identity: Option<PathBuf>,
}

/// The service `global_args` point podman at, if a cancellation can reach it: a `unix://` socket
/// here, or an `ssh://` URL whose user and host cannot be taken for options. `identity`: the key
/// of `CONTAINER_SSHKEY`, used when the arguments name none.
pub fn service(global_args: &[String], identity: Option<String>) -> Option<Service> {
    if let Some(socket) = local_socket(global_args) {
        return Some(Service::Local(socket));
    }
    let url = option(global_args, "url")?;
    let mut target = ssh_target(&url)?;
    target.identity = option(global_args, "identity")
        .or(identity)
        .filter(|i| !i.starts_with('-'))
        .map(PathBuf::from);
    Some(Service::Ssh(target))
}

fn ssh_target(url: &str) -> Option<SshTarget> {
    let rest = url.strip_prefix("ssh://")?;
    let authority = rest.split('/').next()?;
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    let safe =
        |s: &str| !s.is_empty() && !s.starts_with('-') && !s.chars().any(char::is_whitespace);
    if !safe(host) || user.is_some_and(|u| !safe(u)) {
        return None;
    }
    Some(SshTarget {
        destination: match user {
            Some(u) => format!("{u}@{host}"),
            None => host.to_string(),
        },
        port,
        identity: None,
    })
}

/// Ends the RUN steps marked `marker` of `service` (see [`cancel`], [`cancel_over_ssh`]).
pub fn cancel_on(service: &Service, marker: &str) {
    match service {
        Service::Local(socket) => {
            cancel(socket, marker);
        }
        Service::Ssh(target) => cancel_over_ssh(target, marker),
    }
}

/// The script run on the service's machine: for [`WATCH`] seconds, SIGKILL to every process whose
/// /etc/hosts names the marker (`$1`); done once steps were killed and none is left.
const REMOTE_SCRIPT: &str = r#"m="$1"; end=$(( $(date +%s) + $2 )); killed=0
while [ "$(date +%s)" -lt "$end" ]; do
  found=0
  for h in /proc/[0-9]*/root/etc/hosts; do
    if grep -qsw -e "$m" "$h" 2>/dev/null; then
      p=${h#/proc/}; p=${p%%/*}
      kill -9 "$p" 2>/dev/null && found=1 && killed=1
    fi
  done
  [ "$killed" = 1 ] && [ "$found" = 0 ] && break
  sleep 0.2
done"#;

/// `ssh ... -- DESTINATION sh -c SCRIPT`: the script as one word of the remote command line, the
/// marker (hex and dashes) and the watch as its arguments.
pub fn ssh_command(target: &SshTarget, marker: &str) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]);
    if let Some(port) = target.port {
        cmd.arg("-p").arg(port.to_string());
    }
    if let Some(identity) = &target.identity {
        cmd.arg("-i").arg(identity);
    }
    // The remote side joins the words into one shell line: the script goes quoted.
    let quoted = format!("'{}'", REMOTE_SCRIPT.replace('\'', r"'\''"));
    cmd.arg("--")
        .arg(&target.destination)
        .args(["sh", "-c", &quoted, "cip-cancel", marker])
        .arg(WATCH.as_secs().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Runs [`REMOTE_SCRIPT`] on the service's machine, killing `ssh` if it outlasts the watch (a
/// machine that does not answer), so no child is left behind.
fn cancel_over_ssh(target: &SshTarget, marker: &str) {
    debug_assert!(marker
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-'));
    let Ok(mut child) = ssh_command(target, marker).spawn() else {
        return;
    };
    let deadline = Instant::now() + WATCH + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
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
    fn an_ssh_url_is_reached_as_podman_reaches_it_and_nothing_in_it_becomes_an_option() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let target = |url: &str, identity: Option<&str>| match service(
            &args(&["--url", url]),
            identity.map(str::to_string),
        ) {
            Some(Service::Ssh(t)) => Some(t),
            _ => None,
        };
        assert_eq!(
            target("ssh://root@127.0.0.1:2222/run/p.sock", Some("/k")),
            Some(SshTarget {
                destination: "root@127.0.0.1".into(),
                port: Some(2222),
                identity: Some(PathBuf::from("/k")),
            })
        );
        assert_eq!(
            target("ssh://[::1]:22/run/p.sock", None).map(|t| (t.destination, t.port)),
            Some(("::1".to_string(), Some(22)))
        );
        assert_eq!(target("ssh://far/run/p.sock", None).unwrap().port, None);
        let identity = service(
            &args(&["--url=ssh://far/s", "--identity=/id"]),
            Some("/env".into()),
        );
        assert!(matches!(identity, Some(Service::Ssh(t)) if t.identity == Some("/id".into())));
        for hostile in [
            "ssh://-oProxyCommand=touch@h/s",
            "ssh://u@-oProxyCommand=x/s",
            "ssh://u@h:port/s",
            "ssh://u@ h/s",
            "ssh:///s",
        ] {
            assert_eq!(target(hostile, None), None, "{hostile}");
        }
        assert_eq!(
            service(&args(&["--url=unix:///p.sock"]), None),
            Some(Service::Local("/p.sock".into()))
        );
        assert_eq!(service(&args(&["--url=tcp://h:1"]), None), None);
        // Every value is one argument, after `--`.
        let cmd = ssh_command(
            &target("ssh://u@h:2/s", Some("/my key")).unwrap(),
            &marker("t"),
        );
        let argv: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let dash = argv.iter().position(|a| a == "--").unwrap();
        assert_eq!(&argv[dash + 1..dash + 3], ["u@h", "sh"]);
        assert!(
            argv[..dash].windows(2).any(|w| w == ["-i", "/my key"]),
            "{argv:?}"
        );
        assert!(
            argv[..dash].windows(2).any(|w| w == ["-p", "2"]),
            "{argv:?}"
        );
        assert_eq!(argv[argv.len() - 2], marker("t"));
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
