//! Shared helpers of the integration tests: a real registry process (`docker-registry serve`),
//! optionally with TLS and htpasswd authentication, a private buildah store per test, and the
//! static busybox binaries of the demo fixture. `scripts/setup-env` installs everything used here.
//!
//! The integration tests are one binary (tests/it/main.rs); the module-wide `#[allow(dead_code)]`
//! keeps a helper that no test uses at the moment from failing clippy's `-D warnings`.

#![allow(dead_code)]

pub mod docker;
pub mod farm;
pub mod faultproxy;
pub mod pipeline;
pub mod tokenserver;
pub mod workspace;

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a registry may take to answer `GET /v2/` after it was spawned.
const REGISTRY_START_TIMEOUT: Duration = Duration::from_secs(10);
/// A port picked by binding port 0 may be taken again before the registry binds it; retry then.
const REGISTRY_START_ATTEMPTS: usize = 3;

const SETUP_HINT: &str = "run scripts/setup-env first";

/// Root of the repository (the crate's manifest directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `fixtures/` of the repository.
pub fn fixtures_dir() -> PathBuf {
    repo_root().join("fixtures")
}

/// `fixtures/demo`, the project tree that builds offline for linux/amd64 and linux/arm64.
pub fn demo_fixture() -> PathBuf {
    fixtures_dir().join("demo")
}

/// The static busybox of the demo fixture for `arch` (`"amd64"` or `"arm64"`), as put there by
/// `scripts/setup-env`. Panics with a hint when it is absent.
pub fn busybox_path(arch: &str) -> PathBuf {
    let path = demo_fixture()
        .join("contexts/00-busybox")
        .join(format!("busybox-{arch}"));
    if !path.is_file() {
        panic!("{} is missing: {SETUP_HINT}", path.display());
    }
    path
}

/// Writes an executable script. The file is written by a child process (`sh`), never opened for
/// writing in this one: a test thread that forks meanwhile would inherit that descriptor, and
/// executing the script while any process holds it open for writing fails with "Text file busy".
pub fn write_executable(path: &Path, script: &str) {
    let mut child = Command::new("sh")
        .args(["-c", r#"cat > "$1" && chmod 755 "$1""#, "sh"])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("start sh to write a script");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.as_bytes())
        .expect("write the script to sh");
    let status = child.wait().expect("wait for sh");
    assert!(status.success(), "cannot write {}", path.display());
}

/// Whether `program` is found on `PATH`.
pub fn have_program(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

fn require_program(program: &str) {
    if !have_program(program) {
        panic!("`{program}` is not installed: {SETUP_HINT}");
    }
}

/// Runs the cip binary with `args` (no colour): its exit code, stdout and stderr.
pub fn cip(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cip"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run cip");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `cmd`, returning its output; panics when it cannot be started.
pub fn run_output(cmd: &mut Command) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null());
    match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`{program}` is not installed: {SETUP_HINT}")
        }
        Err(e) => panic!("cannot run {cmd:?}: {e}"),
    }
}

/// Runs `cmd` and returns its stdout; panics with the command line and its stderr when it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run_output(cmd);
    if !out.status.success() {
        panic!(
            "command failed ({}): {cmd:?}\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `skopeo ARGS`, returning stdout, panicking with stderr on failure.
pub fn skopeo(args: &[&str]) -> String {
    run_ok(Command::new("skopeo").args(args))
}

/// `skopeo ARGS` about `image` on `reg`, trusting its CA (TLS) or using plain HTTP, read as JSON.
fn skopeo_json(reg: &TestRegistry, args: &[&str], image: &str) -> serde_json::Value {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    match reg.cert_dir() {
        Some(d) => all.extend(["--cert-dir".to_string(), d.display().to_string()]),
        None => all.push("--tls-verify=false".into()),
    }
    all.push(reg.docker_ref(image));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    serde_json::from_str(&skopeo(&all)).unwrap()
}

/// The raw manifest or index a tag points to, read with skopeo.
pub fn raw_manifest(reg: &TestRegistry, image: &str) -> serde_json::Value {
    skopeo_json(reg, &["inspect", "--raw"], image)
}

/// The image config of `image` for architecture `arch` (its index entry for that architecture).
pub fn image_config(reg: &TestRegistry, image: &str, arch: &str) -> serde_json::Value {
    skopeo_json(
        reg,
        &["--override-arch", arch, "inspect", "--config"],
        image,
    )
}

/// The platforms (`os/arch`) of an index's entries, sorted.
pub fn index_platforms(index: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    v.sort();
    v
}

/// Sends `kill -SIG` to a child process (`INT`, `TERM`, ...).
pub fn send_signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} {}", child.id());
}

/// Whether `image` (`name:tag`) can be inspected in `reg`: false for a tag that was never pushed.
pub fn is_tagged(reg: &TestRegistry, image: &str) -> bool {
    skopeo_output(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &reg.docker_ref(image),
    ])
    .status
    .success()
}

/// Runs `skopeo ARGS` and returns the raw output (for expected failures).
pub fn skopeo_output(args: &[&str]) -> Output {
    run_output(Command::new("skopeo").args(args))
}

// ---------------------------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------------------------

/// How a [`TestRegistry`] is served.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Serve HTTPS with a certificate for `127.0.0.1` and `localhost`, signed by a fresh test CA
    /// (see [`TestRegistry::ca_cert_path`] and [`TestRegistry::cert_dir`]).
    pub tls: bool,
    /// Require HTTP basic authentication with this user and password (htpasswd, bcrypt).
    pub auth: Option<(String, String)>,
}

impl RegistryOptions {
    /// TLS and authentication with `user` / `password`.
    pub fn tls_auth(user: &str, password: &str) -> Self {
        RegistryOptions {
            tls: true,
            auth: Some((user.to_string(), password.to_string())),
        }
    }
}

/// Bearer-token authentication of a [`TestRegistry`] (`auth.token` of its config): clients get
/// their tokens from `realm` (see [`tokenserver::TokenServer`]).
#[derive(Debug, Clone)]
pub struct TokenAuth {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    /// PEM certificates whose keys sign the tokens.
    pub root_cert_bundle: PathBuf,
}

impl TokenAuth {
    /// The token authentication `server` hands out tokens for.
    pub fn of(server: &tokenserver::TokenServer) -> TokenAuth {
        TokenAuth {
            realm: server.realm(),
            service: server.service().to_string(),
            issuer: server.issuer().to_string(),
            root_cert_bundle: server.root_cert_bundle(),
        }
    }
}

/// A `docker-registry serve` process on a free loopback port with its own storage directory.
/// The process is killed (and the directory removed) when the value is dropped; if that happens
/// while the test panics, the registry's log is printed.
pub struct TestRegistry {
    child: Child,
    port: u16,
    options: RegistryOptions,
    token: Option<TokenAuth>,
    dir: TempDir,
}

impl TestRegistry {
    /// A plain-HTTP registry without authentication.
    pub fn start() -> TestRegistry {
        TestRegistry::start_with(RegistryOptions::default())
    }

    /// A registry served as `options` says.
    pub fn start_with(options: RegistryOptions) -> TestRegistry {
        TestRegistry::start_inner(options, None, false, true)
    }

    /// A plain-HTTP registry that logs every request it answers (`msg="response completed"` lines
    /// of [`TestRegistry::log`]), for tests that count requests.
    pub fn start_logging_requests() -> TestRegistry {
        TestRegistry::start_inner(RegistryOptions::default(), None, true, true)
    }

    /// A plain-HTTP registry that refuses to delete (`storage.delete.enabled: false`, distribution's
    /// default): DELETE answers 405 `UNSUPPORTED`.
    pub fn start_without_deletes() -> TestRegistry {
        TestRegistry::start_inner(RegistryOptions::default(), None, false, false)
    }

    /// A registry that wants bearer tokens from `server` (the Docker Hub / Harbor scheme), served
    /// with TLS when `options.tls`. `options.auth` must be None: the token server checks the
    /// credentials ([`tokenserver::TokenServer::creds`]).
    pub fn start_with_token(
        options: RegistryOptions,
        server: &tokenserver::TokenServer,
    ) -> TestRegistry {
        assert!(
            options.auth.is_none(),
            "a token registry checks no password itself: give it to the token server"
        );
        TestRegistry::start_inner(options, Some(TokenAuth::of(server)), false, true)
    }

    fn start_inner(
        options: RegistryOptions,
        token: Option<TokenAuth>,
        log_requests: bool,
        deletes: bool,
    ) -> TestRegistry {
        require_program("docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("cip-registry-")
            .tempdir()
            .expect("create registry temp dir");
        fs::create_dir_all(dir.path().join("data")).expect("create registry storage dir");
        if let Some((user, password)) = &options.auth {
            write_htpasswd(dir.path(), user, password);
        }
        if options.tls {
            write_tls_files(dir.path());
        }

        let mut last_error = String::new();
        for _ in 0..REGISTRY_START_ATTEMPTS {
            let port = free_port();
            write_config(
                dir.path(),
                port,
                &options,
                token.as_ref(),
                log_requests,
                deletes,
            );
            let log_path = dir.path().join("registry.log");
            let log = fs::File::create(&log_path).expect("create registry log");
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(dir.path().join("config.yml"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot spawn docker-registry ({e}): {SETUP_HINT}"));
            match wait_ready(&mut child, port, options.tls) {
                Ok(()) => {
                    return TestRegistry {
                        child,
                        port,
                        options,
                        token,
                        dir,
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = fs::read_to_string(&log_path).unwrap_or_default();
                    last_error = format!("{e}\n--- registry log\n{log}");
                }
            }
        }
        panic!("docker-registry did not start: {last_error}");
    }

    /// `127.0.0.1:PORT`, the registry's host for image references.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.options.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr())
    }

    /// `docker://127.0.0.1:PORT/REPO_AND_TAG`, a reference for buildah and skopeo.
    pub fn docker_ref(&self, repo_and_tag: &str) -> String {
        format!("docker://{}/{repo_and_tag}", self.addr())
    }

    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// The bearer-token authentication, for a registry started with [`Self::start_with_token`].
    pub fn token_auth(&self) -> Option<&TokenAuth> {
        self.token.as_ref()
    }

    pub fn is_tls(&self) -> bool {
        self.options.tls
    }

    /// The PEM certificate of the CA that signed the server certificate (TLS only).
    pub fn ca_cert_path(&self) -> Option<PathBuf> {
        self.options
            .tls
            .then(|| self.dir.path().join("certs.d/ca.crt"))
    }

    /// A directory holding only `ca.crt`, usable as `--cert-dir` of buildah and skopeo (TLS only).
    pub fn cert_dir(&self) -> Option<PathBuf> {
        self.options.tls.then(|| self.dir.path().join("certs.d"))
    }

    /// `USER:PASSWORD` when authentication is on, for `--creds`.
    pub fn creds(&self) -> Option<String> {
        self.options
            .auth
            .as_ref()
            .map(|(user, password)| format!("{user}:{password}"))
    }

    /// Where the registry's output goes.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// The registry's output so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The registry's storage root directory.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// HTTP status of `GET PATH` (e.g. `/v2/`), with the registry's credentials when `with_creds`.
    /// Uses curl (with the test CA for TLS).
    pub fn http_status(&self, path: &str, with_creds: bool) -> u16 {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ]);
        if let Some(ca) = self.ca_cert_path() {
            cmd.arg("--cacert").arg(ca);
        }
        if with_creds {
            let creds = self
                .creds()
                .expect("http_status(.., true) needs an auth registry");
            cmd.arg("-u").arg(creds);
        }
        cmd.arg(format!("{}{path}", self.url()));
        let out = run_ok(&mut cmd);
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("curl printed no status code: {out:?}"))
    }

    /// Puts `manifest` (its own `mediaType` as the content type) as `repo:tag` behind cip's back,
    /// with curl, as a tampering party would (plain-HTTP registries only), checking it was taken.
    pub fn put_manifest(&self, repo: &str, tag: &str, manifest: &serde_json::Value) {
        let media_type = manifest["mediaType"]
            .as_str()
            .expect("the manifest names its mediaType");
        let body = tempfile::NamedTempFile::new().unwrap();
        fs::write(body.path(), serde_json::to_vec(manifest).unwrap()).unwrap();
        let status = run_ok(Command::new("curl").args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {media_type}"),
            "--data-binary",
            &format!("@{}", body.path().display()),
            &format!("{}/v2/{repo}/manifests/{tag}", self.url()),
        ]));
        assert_eq!(status.trim(), "201", "PUT {repo}:{tag}");
    }

    /// `curl -X DELETE` of a registry path (`/v2/...`) behind cip's back, checking the registry
    /// took it (202).
    pub fn delete(&self, path: &str) {
        let out = run_ok(Command::new("curl").args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "DELETE",
            &format!("{}{path}", self.url()),
        ]));
        assert_eq!(out.trim(), "202", "DELETE {path}");
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "--- log of the registry at {} ({})\n{}",
                self.addr(),
                self.log_path().display(),
                self.log()
            );
        }
    }
}

/// Waits until the registry on `port` answers, or fails when it exits or the time is up.
fn wait_ready(child: &mut Child, port: u16, tls: bool) -> Result<(), String> {
    let deadline = Instant::now() + REGISTRY_START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("docker-registry exited early: {status}"));
        }
        // The port was free a moment ago; make sure it is this child that listens on it now,
        // not another process that took the port in between.
        if listens_on(child.id(), port) && answers(port, tls) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no answer on 127.0.0.1:{port} within {REGISTRY_START_TIMEOUT:?}"
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Whether process `pid` has a listening TCP socket on `port` (Linux `/proc`).
fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let inodes: Vec<String> = fds
        .filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            let inode = link.strip_prefix("socket:[")?.strip_suffix(']')?;
            Some(inode.to_string())
        })
        .collect();
    let port_hex = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // local_address is field 1, state field 3 (0A = LISTEN), inode field 9.
                fields.len() > 9
                    && fields[1].ends_with(&port_hex)
                    && fields[3] == "0A"
                    && inodes.iter().any(|inode| inode == fields[9])
            })
    })
}

/// Plain HTTP: `GET /v2/` answers 200 (or 401 with auth). TLS: the port accepts connections
/// (the registry listens only once its certificate is loaded).
fn answers(port: u16, tls: bool) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    if tls {
        return true;
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    if stream.read_exact(&mut head).is_err() {
        return false;
    }
    head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.1 401")
}

/// A loopback port that was free a moment ago.
/// Writes `bytes` into the OCI layout at `layout` as a blob; its descriptor, of `media_type`.
pub fn add_blob(layout: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    let digest = cip::registry::index::sha256_digest(bytes);
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(digest.trim_start_matches("sha256:")), bytes).unwrap();
    serde_json::json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

fn write_config(
    dir: &Path,
    port: u16,
    options: &RegistryOptions,
    token: Option<&TokenAuth>,
    log_requests: bool,
    deletes: bool,
) {
    let level = if log_requests { "info" } else { "warn" };
    let mut config = format!(
        "version: 0.1\n\
         log:\n  level: {level}\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: {deletes}\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: cip-test-{port}\n",
        data = dir.join("data").display()
    );
    if options.tls {
        config.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            dir.join("tls/server.crt").display(),
            dir.join("tls/server.key").display()
        ));
    }
    if options.auth.is_some() {
        config.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: cip-test\n    path: {}\n",
            dir.join("htpasswd").display()
        ));
    }
    if let Some(token) = token {
        config.push_str(&format!(
            "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            token.realm,
            token.service,
            token.issuer,
            token.root_cert_bundle.display()
        ));
    }
    fs::write(dir.join("config.yml"), config).expect("write registry config");
}

fn write_htpasswd(dir: &Path, user: &str, password: &str) {
    require_program("htpasswd");
    let line = run_ok(Command::new("htpasswd").args(["-Bbn", user, password]));
    fs::write(dir.join("htpasswd"), line.trim_end().to_string() + "\n").expect("write htpasswd");
}

/// A test CA (`certs.d/ca.crt`) and a server certificate for 127.0.0.1 and localhost signed by it
/// (`tls/server.{crt,key}`). A separate CA, rather than one self-signed server certificate, keeps
/// strict verifiers (rustls/webpki refuse a CA certificate as the server's) working.
fn write_tls_files(dir: &Path) {
    require_program("openssl");
    let tls = dir.join("tls");
    let certs = dir.join("certs.d");
    fs::create_dir_all(&tls).expect("create tls dir");
    fs::create_dir_all(&certs).expect("create certs.d dir");
    fs::write(
        tls.join("openssl.cnf"),
        "[req]\n\
         distinguished_name = dn\n\
         prompt = no\n\
         [dn]\n\
         CN = cip test\n\
         [ca_ext]\n\
         basicConstraints = critical, CA:TRUE\n\
         keyUsage = critical, keyCertSign, cRLSign\n\
         subjectKeyIdentifier = hash\n\
         [server_ext]\n\
         basicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature, keyEncipherment\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = IP:127.0.0.1, DNS:localhost\n\
         authorityKeyIdentifier = keyid\n\
         subjectKeyIdentifier = hash\n",
    )
    .expect("write openssl.cnf");
    let cnf = tls.join("openssl.cnf");
    let ca_key = tls.join("ca.key");
    let ca_crt = certs.join("ca.crt");
    let key = tls.join("server.key");
    let csr = tls.join("server.csr");
    let crt = tls.join("server.crt");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .arg("-config")
            .arg(&cnf)
            .args([
                "-extensions",
                "ca_ext",
                "-subj",
                "/CN=cip test CA",
                "-days",
                "7",
            ])
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca_crt),
    );
    run_ok(
        Command::new("openssl")
            .arg("req")
            .args(ec)
            .arg("-config")
            .arg(&cnf)
            .args(["-subj", "/CN=localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr),
    );
    run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "7", "-set_serial", "2"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&ca_crt)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-extfile")
            .arg(&cnf)
            .args(["-extensions", "server_ext"])
            .arg("-out")
            .arg(&crt),
    );
}

// ---------------------------------------------------------------------------------------------
// buildah
// ---------------------------------------------------------------------------------------------

/// A private buildah image store (vfs driver, `--root`/`--runroot` in a temp dir), so tests
/// running in parallel share no state. `bud`/`build` get `--isolation chroot` (the default OCI
/// runtime does not work on this machine's cgroups).
pub struct Buildah {
    dir: TempDir,
}

impl Default for Buildah {
    fn default() -> Self {
        Buildah::new()
    }
}

impl Buildah {
    pub fn new() -> Buildah {
        require_program("buildah");
        let dir = tempfile::Builder::new()
            .prefix("cip-buildah-")
            .tempdir()
            .expect("create buildah temp dir");
        Buildah { dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn runroot(&self) -> PathBuf {
        self.dir.path().join("runroot")
    }

    /// The global options selecting this store: `--storage-driver vfs --root .. --runroot ..`.
    pub fn storage_args(&self) -> Vec<String> {
        vec![
            "--storage-driver".into(),
            "vfs".into(),
            "--root".into(),
            self.root().display().to_string(),
            "--runroot".into(),
            self.runroot().display().to_string(),
        ]
    }

    /// `buildah` with this store's global options, `--isolation chroot` added after `bud`/`build`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("buildah");
        cmd.args(self.storage_args())
            .env("BUILDAH_ISOLATION", "chroot")
            .env("TMPDIR", self.dir.path());
        let mut args = args.iter();
        if let Some(&sub) = args.next() {
            cmd.arg(sub);
            if sub == "bud" || sub == "build" {
                cmd.args(["--isolation", "chroot"]);
            }
        }
        cmd.args(args);
        cmd
    }

    /// Runs buildah, returning stdout; panics with stderr on failure.
    pub fn run(&self, args: &[&str]) -> String {
        run_ok(&mut self.command(args))
    }

    /// Runs buildah and returns the raw output (for expected failures).
    pub fn output(&self, args: &[&str]) -> Output {
        run_output(&mut self.command(args))
    }
}

/// Runs `buildah ARGS` against `store` (see [`Buildah`]), returning stdout or panicking with stderr.
pub fn buildah(store: &Buildah, args: &[&str]) -> String {
    store.run(args)
}

/// Makes a path immutable (even for root) for the life of the guard (`chattr +i`, on ext4): writes
/// to it fail, as on a broken disk or a registry whose storage refuses them.
pub struct Immutable(PathBuf);

impl Immutable {
    pub fn new(p: &Path) -> Immutable {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(p)
            .status()
            .expect("chattr (e2fsprogs)")
            .success();
        assert!(
            ok,
            "chattr +i {} failed: the test directory must be on ext4",
            p.display()
        );
        Immutable(p.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// What one `scripts/release --binary CIP --out DIR` of the cip under test made (the tarball and the
/// .deb), shared by every test of the run that installs cip as a user would: packaging a debug
/// binary takes minutes on a loaded machine, so it is done once. Returns DIR and what the script
/// printed; DIR is the same each run, its files replaced by renames.
pub fn release_artifacts() -> &'static (PathBuf, String) {
    static ARTIFACTS: std::sync::OnceLock<(PathBuf, String)> = std::sync::OnceLock::new();
    ARTIFACTS.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("release-artifacts");
        let shown = run_ok(
            Command::new(repo_root().join("scripts/release"))
                .arg("--binary")
                .arg(env!("CARGO_BIN_EXE_cip"))
                .arg("--out")
                .arg(&out),
        );
        (out, shown)
    })
}
