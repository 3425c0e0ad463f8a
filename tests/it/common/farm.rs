//! Farm nodes for tests, as DESIGN.md's farm recipes run them here: a podman system service on a
//! socket of its own, an sshd on loopback that hands a docker daemon to the key the test made, and
//! what each engine records of the builds it ran (its own events, not cip's report).
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::docker::TestDockerd;

/// `podman system service` with a private vfs store, on `unix://DIR/podman.sock`. Stopped when
/// dropped.
pub struct TestPodmanService {
    child: Child,
    dir: tempfile::TempDir,
}

impl TestPodmanService {
    pub fn start() -> TestPodmanService {
        let dir = tempfile::Builder::new()
            .prefix("cip-podman-")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        let log = fs::File::create(d.join("service.log")).unwrap();
        let child = Command::new("podman")
            .args(["--storage-driver", "vfs", "--root"])
            .arg(d.join("store"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", d.join("podman.sock").display()))
            .env("BUILDAH_ISOLATION", "chroot")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start podman system service");
        let service = TestPodmanService { child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !service.answers() {
            assert!(
                Instant::now() < deadline,
                "the podman service did not answer within 30 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        service
    }

    pub fn url(&self) -> String {
        format!("unix://{}", self.dir.path().join("podman.sock").display())
    }

    fn answers(&self) -> bool {
        Command::new("podman")
            .args(["--url", &self.url(), "info", "--format", "{{.Host.Arch}}"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// The images of run `pid` the service untagged (cip removes each build's private tag after
    /// pushing it), e.g. `hello:1.0.0-linux-amd64`.
    pub fn built_by_run(&self, pid: u32) -> Vec<String> {
        let out = Command::new("podman")
            .args(["--url", &self.url(), "events", "--stream=false"])
            .args([
                "--filter",
                "type=image",
                "--format",
                "{{.Status}} {{.Name}}",
            ])
            .output()
            .expect("podman events");
        of_run(&String::from_utf8_lossy(&out.stdout), "untag", pid)
    }
}

impl Drop for TestPodmanService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The private tags of run `pid` in `ACTION NAME` lines, without the run's prefix:
/// `cip.local/run-PID-X/hello:1.0.0-linux-amd64` -> `hello:1.0.0-linux-amd64`.
fn of_run(lines: &str, action: &str, pid: u32) -> Vec<String> {
    let prefix = format!("cip.local/run-{pid}-");
    let mut v: Vec<String> = lines
        .lines()
        .filter_map(|l| l.strip_prefix(action)?.trim().strip_prefix(&prefix))
        .filter_map(|rest| rest.split_once('/').map(|(_, name)| name.to_string()))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The images of run `pid` a docker daemon tagged (its own event log): what it built.
pub fn docker_built_by_run(dockerd: &TestDockerd, pid: u32) -> Vec<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let out = Command::new("docker")
        .args(["-H", &dockerd.host(), "events", "--since", "0"])
        .args(["--until", &now.to_string(), "--filter", "type=image"])
        .args(["--format", "{{.Action}} {{.Actor.Attributes.name}}"])
        .output()
        .expect("docker events");
    of_run(&String::from_utf8_lossy(&out.stdout), "tag", pid)
}

/// Kills a test dockerd at once (SIGKILL), as a machine that dies would leave it.
pub fn kill_dockerd(dockerd: &TestDockerd) {
    let host = dockerd.host();
    let socket = Path::new(host.strip_prefix("unix://").unwrap());
    let pid = fs::read_to_string(socket.with_file_name("dockerd.pid")).unwrap();
    let status = Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// An sshd on 127.0.0.1 with a host key and a client key made here; the client key's
/// `authorized_keys` line sets `DOCKER_HOST` to one daemon, so `docker -H ssh://farmnode` reaches
/// it. `bin()` holds an `ssh` that uses this test's client config: put it first on PATH.
pub struct TestSshd {
    child: Child,
    dir: tempfile::TempDir,
}

impl TestSshd {
    pub fn start(docker_host: &str) -> TestSshd {
        let dir = tempfile::Builder::new()
            .prefix("cip-sshd-")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        fs::create_dir_all("/run/sshd").unwrap();
        for key in ["host_key", "client_key"] {
            super::run_ok(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                    .arg(d.join(key)),
            );
        }
        let public = fs::read_to_string(d.join("client_key.pub")).unwrap();
        fs::write(
            d.join("authorized_keys"),
            format!("environment=\"DOCKER_HOST={docker_host}\" {public}"),
        )
        .unwrap();
        fs::set_permissions(d.join("authorized_keys"), fs::Permissions::from_mode(0o600)).unwrap();
        let port = super::free_port();
        fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PermitUserEnvironment yes\nPermitRootLogin prohibit-password\nPidFile {}\n\
                 StrictModes no\nUsePAM no\n",
                d.join("host_key").display(),
                d.join("authorized_keys").display(),
                d.join("sshd.pid").display()
            ),
        )
        .unwrap();
        fs::write(
            d.join("ssh_config"),
            format!(
                "Host farmnode\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {}\n\
                 \x20 StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n",
                d.join("client_key").display()
            ),
        )
        .unwrap();
        fs::create_dir_all(d.join("bin")).unwrap();
        super::write_executable(
            &d.join("bin/ssh"),
            &format!(
                "#!/bin/sh\nexec /usr/bin/ssh -F {} \"$@\"\n",
                d.join("ssh_config").display()
            ),
        );
        let log = fs::File::create(d.join("sshd.log")).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(d.join("sshd.log"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start sshd");
        let sshd = TestSshd { child, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = Command::new(sshd.bin().join("ssh"))
                .args(["farmnode", "true"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return sshd;
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not let the test's key in within 20 s:\n{}",
                fs::read_to_string(sshd.dir.path().join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Where its files are: `sshd_config` (its `Port`), `host_key.pub`, `client_key`.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The directory of the `ssh` wrapper.
    pub fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }
}

impl Drop for TestSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blob upload the registry completed, from its request log
/// ([`super::TestRegistry::start_logging_requests`]).
#[derive(Debug, Clone)]
pub struct Upload {
    /// The repository it went to, e.g. `cip-stage/linux-amd64/app`.
    pub repository: String,
    /// `sha256:...`.
    pub digest: String,
    /// Who sent it: `docker/20.10.24 go/...`, `containers/5.23.1 ...`, cip's client.
    pub agent: String,
}

/// Every blob upload the registry completed (the `PUT` that ends an upload, which names the
/// digest), in its log's order.
pub fn blob_uploads(reg: &super::TestRegistry) -> Vec<Upload> {
    reg.log()
        .lines()
        .filter(|l| l.contains("msg=\"response completed\""))
        .filter(|l| l.contains("http.request.method=PUT") && l.contains("/blobs/uploads/"))
        .filter_map(|l| {
            let uri = field(l, "http.request.uri")?;
            let repository = uri
                .strip_prefix("/v2/")?
                .split("/blobs/")
                .next()?
                .to_string();
            let digest = uri
                .split(['?', '&'])
                .find_map(|p| p.strip_prefix("digest="))?
                .replace("%3A", ":")
                .replace("%3a", ":");
            let agent = field(l, "http.request.useragent").unwrap_or_default();
            Some(Upload {
                repository,
                digest,
                agent,
            })
        })
        .collect()
}

/// The value of `key=VALUE` or `key="VALUE"` in a log line of the registry.
fn field(line: &str, key: &str) -> Option<String> {
    let rest = &line[line.find(&format!("{key}="))? + key.len() + 1..];
    Some(match rest.strip_prefix('"') {
        Some(quoted) => quoted[..quoted.find('"')?].to_string(),
        None => rest.split_whitespace().next()?.to_string(),
    })
}

/// The tags of `repository` on `reg` (none for a repository whose manifests were deleted).
pub fn tags(reg: &super::TestRegistry, repository: &str) -> Vec<String> {
    let out = super::run_ok(Command::new("curl").args([
        "-sS",
        "--max-time",
        "10",
        &format!("{}/v2/{repository}/tags/list", reg.url()),
    ]));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    let mut v: Vec<String> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

/// The repositories `reg` holds (its catalog).
pub fn repositories(reg: &super::TestRegistry) -> Vec<String> {
    let out = super::run_ok(Command::new("curl").args([
        "-sS",
        "--max-time",
        "10",
        &format!("{}/v2/_catalog", reg.url()),
    ]));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    doc["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_tags_are_read_without_their_prefix() {
        let lines = "tag cip.local/run-42-ab/hello:1.0.0-linux-amd64\n\
                     untag cip.local/run-42-ab/app:1.0.0-linux-amd64\n\
                     tag cip.local/run-7-ab/tools:1.0.0-linux-amd64\n";
        assert_eq!(super::of_run(lines, "tag", 42), ["hello:1.0.0-linux-amd64"]);
    }

    #[test]
    fn log_fields_are_read_quoted_or_not() {
        let line = "level=info msg=\"response completed\" http.request.method=PUT \
                    http.request.uri=\"/v2/cip-stage/linux-amd64/app/blobs/uploads/u?_state=x&digest=sha256%3Aab\" \
                    http.request.useragent=\"docker/20.10.24 go/go1.19\" http.response.status=201";
        assert_eq!(
            super::field(line, "http.request.method").as_deref(),
            Some("PUT")
        );
        assert_eq!(
            super::field(line, "http.request.useragent").as_deref(),
            Some("docker/20.10.24 go/go1.19")
        );
    }
}
