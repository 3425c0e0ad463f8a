//! A private dockerd for tests, started as DESIGN.md says it runs here.
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

/// A dockerd of this test (own data root, exec root, pidfile and socket), as DESIGN.md says it runs
/// here: vfs storage, no iptables, no bridge. Stopped (SIGTERM, then SIGKILL) when dropped.
pub struct TestDockerd {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl TestDockerd {
    pub fn start() -> TestDockerd {
        // Short paths: the socket path must fit a sockaddr_un.
        let dir = tempfile::Builder::new()
            .prefix("cip-dockerd-")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        let log = fs::File::create(d.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .args([
                "--storage-driver",
                "vfs",
                "--iptables=false",
                "--bridge=none",
            ])
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start dockerd");
        let mut dockerd = TestDockerd { child, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answered = Command::new("docker")
                .args(["version", "--format", "{{.Server.Version}}"])
                .env("DOCKER_HOST", dockerd.host())
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if answered {
                return dockerd;
            }
            if let Ok(Some(status)) = dockerd.child.try_wait() {
                panic!("dockerd exited ({status}):\n{}", dockerd.log());
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within 60 s:\n{}",
                dockerd.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for TestDockerd {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child; no memory is involved.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- dockerd log\n{}", self.log());
        }
    }
}
