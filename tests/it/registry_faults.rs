//! Registry-facing faults, against real servers on loopback: a web server that is no registry, a
//! registry that accepts connections and never answers, plain HTTP where HTTPS is expected, TLS
//! failures (never retried).
use crate::common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::faultproxy::{Fault, FaultProxy};
use common::workspace::{text, Workspace};
use common::{RegistryOptions, TestRegistry};

/// A `python3` web server on a free loopback port, killed when dropped.
struct WebServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl WebServer {
    /// `python3 -m http.server`, serving an empty directory (so `/v2/` is a 404).
    fn plain() -> WebServer {
        WebServer::start(|port| {
            vec![
                "-m".into(),
                "http.server".into(),
                port.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
            ]
        })
    }

    /// The same over TLS with `cert` / `key`.
    fn tls(cert: &Path, key: &Path) -> WebServer {
        let script = format!(
            "import http.server, ssl, sys\n\
             srv = http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), http.server.SimpleHTTPRequestHandler)\n\
             ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
             ctx.load_cert_chain({:?}, {:?})\n\
             srv.socket = ctx.wrap_socket(srv.socket, server_side=True)\n\
             srv.serve_forever()\n",
            cert.display().to_string(),
            key.display().to_string()
        );
        WebServer::start(move |port| vec!["-c".into(), script.clone(), port.to_string()])
    }

    fn start(args: impl Fn(u16) -> Vec<String>) -> WebServer {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let port = common::free_port();
            let mut child = Command::new("python3")
                .args(args(port))
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start python3");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return WebServer {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                if child.try_wait().unwrap().is_some() {
                    break; // the port was taken meanwhile: try another
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("python3 web server did not start");
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_plain_web_server_is_not_a_registry_for_plan_and_publish_locally() {
    let web = WebServer::plain();
    let ws = Workspace::demo();
    let want = format!(
        "{} does not look like a container registry (GET /v2/ answered 404",
        web.addr()
    );
    let plan = ws.cip(&["plan", "--local-registry", &web.addr()]);
    assert_eq!(plan.status.code(), Some(1), "{}", text(&plan));
    assert!(stderr(&plan).contains(&want), "{}", text(&plan));
    assert!(!text(&plan).contains("builds of"), "{}", text(&plan));

    let publish = ws.cip(&["publish-locally", "--local-registry", &web.addr()]);
    assert_eq!(publish.status.code(), Some(1), "{}", text(&publish));
    assert!(stderr(&publish).contains(&want), "{}", text(&publish));
    assert_eq!(
        ws.builds(),
        0,
        "nothing is built for a server that is no registry"
    );
}

#[test]
fn an_https_web_server_is_not_a_registry() {
    // A TLS registry only lends its certificate (signed by its test CA) to the web server.
    let reg = TestRegistry::start_with(RegistryOptions {
        tls: true,
        auth: None,
    });
    let tls: PathBuf = reg.storage_dir().parent().unwrap().join("tls");
    let web = WebServer::tls(&tls.join("server.crt"), &tls.join("server.key"));
    let ws = Workspace::demo();
    let ca = reg.ca_cert_path().unwrap();
    let out = ws.cip(&[
        "plan",
        "--remote-registry",
        &web.addr(),
        "--ca-cert",
        ca.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains(&format!(
            "{} does not look like a container registry (GET /v2/ answered 404",
            web.addr()
        )),
        "{}",
        text(&out)
    );
}

#[test]
fn a_registry_that_never_answers_is_reported_after_the_request_timeout() {
    let reg = TestRegistry::start();
    // The sniff's connection gets through, then every request stalls.
    let mut faults = vec![Fault::Pass];
    faults.extend([Fault::Stall; 40]);
    let proxy = FaultProxy::start(&reg.addr(), faults);
    let ws = Workspace::demo();
    let started = Instant::now();
    let out = ws.cip_env(
        &["plan", "--local-registry", &proxy.addr()],
        &[
            ("CIP_REQUEST_TIMEOUT_SECONDS", "1"),
            ("CIP_RETRY_ATTEMPTS", "2"),
            ("CIP_RETRY_BASE_MS", "50"),
        ],
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("no answer from {} in 1 s", proxy.addr()))
            && err.contains("CIP_REQUEST_TIMEOUT_SECONDS")
            && err.contains("after 2 attempts"),
        "{err}"
    );
    assert!(err.contains("failed (no answer), attempt 2/2"), "{err}");
    assert!(took < Duration::from_secs(20), "took {took:?}: {err}");
}

#[test]
fn a_server_that_never_answers_at_connect_is_reported_after_the_request_timeout() {
    // Every connection stalls, the sniff's included: neither plain HTTP nor TLS gets an answer.
    let reg = TestRegistry::start();
    let proxy = FaultProxy::start(&reg.addr(), vec![Fault::Stall; 20]);
    let ws = Workspace::demo();
    let started = Instant::now();
    let out = ws.cip_env(
        &["plan", "--local-registry", &proxy.addr()],
        &[("CIP_REQUEST_TIMEOUT_SECONDS", "1.5")],
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("no answer from {} in 1.5 s", proxy.addr())),
        "{err}"
    );
    assert!(took < Duration::from_secs(15), "took {took:?}: {err}");
}

#[test]
fn plain_http_answering_https_says_to_use_insecure_registry() {
    let reg = TestRegistry::start();
    // An IPv4-mapped IPv6 address reaches the registry on loopback, but is not a loopback name to
    // cip: HTTPS is required there, as for any remote host.
    let addr = format!("[::ffff:127.0.0.1]:{}", reg.port());
    let ws = Workspace::demo();
    let started = Instant::now();
    let out = ws.cip(&["plan", "--remote-registry", &format!("{addr}/team")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{addr} answered plain HTTP to an HTTPS request: use --insecure-registry {addr} if this \
             registry is meant to be plain HTTP"
        )),
        "{err}"
    );
    assert!(
        !err.contains("retry:"),
        "a handshake failure is not retried: {err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    let allowed = ws.cip(&[
        "plan",
        "--remote-registry",
        &format!("{addr}/team"),
        "--insecure-registry",
        &addr,
        "--json",
    ]);
    assert!(allowed.status.success(), "{}", text(&allowed));
}

#[test]
fn an_untrusted_certificate_is_not_retried() {
    let reg = TestRegistry::start_with(RegistryOptions {
        tls: true,
        auth: None,
    });
    let proxy = FaultProxy::start(&reg.addr(), vec![]);
    let ws = Workspace::demo();
    // Retries would be quick here: only their absence passes.
    let out = ws.cip_env(
        &["plan", "--remote-registry", &proxy.addr()],
        &[("CIP_RETRY_BASE_MS", "10")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("not trusted") && err.contains("--ca-cert"),
        "{err}"
    );
    assert!(
        !err.contains("retry:") && !err.contains("attempts"),
        "{err}"
    );
    // The plain sniff, the HTTPS probe and one GET /v2/.
    assert!(
        proxy.connection_count() <= 3,
        "{} connections: {err}",
        proxy.connection_count()
    );
}

/// A small tmpfs mounted over a directory, unmounted (lazily: the registry may hold files there)
/// when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> SmallDisk {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk(dir.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_registry_out_of_space_says_so_instead_of_its_json() {
    let reg = TestRegistry::start();
    // 512 KiB: less than the demo's busybox layer, so its upload fills the registry's storage.
    let _disk = SmallDisk::mount(&reg.storage_dir(), "512k");
    let ws = Workspace::demo();
    let out = ws.cip(&["publish-locally", "--local-registry", &reg.addr(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    // The result says what failed: the push, not the build.
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let busybox = &doc["images"][0];
    assert_eq!(busybox["name"], "busybox", "{doc}");
    assert_eq!(busybox["code"], "push_failed", "{doc}");
    assert_eq!(busybox["result"], "push failed", "{doc}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("busybox:1.0.0 ") && l.contains("push failed")),
        "{err}"
    );
    assert!(
        err.contains(&format!("registry {} is out of space (", reg.addr())),
        "{err}"
    );
    assert!(
        !err.contains("{\"errors\"") && !err.contains("DriverName"),
        "no raw JSON: {err}"
    );
    assert!(!err.contains("retry:"), "a full disk is not retried: {err}");
    assert!(
        err.contains("pushing busybox:1.0.0 for linux/amd64 (the build succeeded)"),
        "a push failure is reported as one: {err}"
    );
}

/// A self-signed certificate and its key (P-256) for 127.0.0.1, made by a plain `openssl req -x509`
/// (CA:TRUE unless `extra` says otherwise): `dir/cert.pem`, `dir/key.pem`.
fn self_signed(dir: &Path, extra: &[&str]) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    common::run_ok(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .args(extra),
    );
    (cert, key)
}

/// A `docker-registry` serving HTTPS with a [`self_signed`] certificate, killed when dropped.
struct SelfSignedRegistry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SelfSignedRegistry {
    fn start(extra: &[&str]) -> SelfSignedRegistry {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), extra);
        for _ in 0..5 {
            let port = common::free_port();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                     http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {}\n    key: {}\n",
                    dir.path().join("data").display(),
                    cert.display(),
                    key.display()
                ),
            )
            .unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start docker-registry");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return SelfSignedRegistry { child, port, dir };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry with a self-signed certificate did not start");
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn cert(&self) -> String {
        self.dir.path().join("cert.pem").display().to_string()
    }
}

impl Drop for SelfSignedRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A base image for amd64 (from scratch) and a child built on it from the registry, which the
/// builder must pull: a publish talks TLS both through cip and through the builder.
fn base_and_child(root: &Path) {
    let base = root.join("contexts/00-base");
    let child = root.join("contexts/01-child");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::create_dir_all(&child).unwrap();
    std::fs::copy(common::busybox_path("amd64"), base.join("busybox-amd64")).unwrap();
    std::fs::write(
        base.join("Dockerfile"),
        "FROM scratch\nARG TARGETARCH\nCOPY busybox-${TARGETARCH} /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nENV PATH=/bin\n",
    )
    .unwrap();
    std::fs::write(
        child.join("Dockerfile"),
        "ARG REGISTRY\nFROM ${REGISTRY}/base:1.0.0\nRUN echo child > /child.txt\n",
    )
    .unwrap();
    for dir in [&base, &child] {
        std::fs::write(dir.join("VERSION"), "1.0.0\n").unwrap();
        std::fs::write(dir.join("PLATFORMS_OVERRIDE"), "linux/amd64\n").unwrap();
    }
}

#[test]
fn a_self_signed_ca_certificate_given_with_ca_cert_is_trusted_for_publish_and_plan() {
    // What `openssl req -x509` makes by default: CA:TRUE, which webpki alone refuses as a server's
    // own certificate even when it is trusted.
    let reg = SelfSignedRegistry::start(&[]);
    let fixture = tempfile::tempdir().unwrap();
    base_and_child(fixture.path());
    let ws = Workspace::new(fixture.path());
    let (addr, cert) = (reg.addr(), reg.cert());
    let trusted = ["--remote-registry", &addr, "--ca-cert", &cert];

    let out = ws.cip(&[&["publish", "--json"][..], &trusted].concat());
    assert!(out.status.success(), "{}", text(&out));
    let r = common::workspace::results(&out);
    assert!(r.len() == 2 && r.iter().all(|x| x.1 == "built"), "{r:?}");

    let out = ws.cip(&[&["plan", "--json"][..], &trusted].concat());
    assert!(out.status.success(), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["builds_needed"], 0, "{plan}");
}

#[test]
fn a_self_signed_ca_certificate_is_refused_unless_it_is_the_one_given() {
    let ws = Workspace::demo();
    let reg = SelfSignedRegistry::start(&[]);
    let addr = reg.addr();
    let other = tempfile::tempdir().unwrap();
    let (other_cert, _) = self_signed(other.path(), &[]);
    let other_cert = other_cert.display().to_string();

    let refusals = [
        ("no --ca-cert", vec!["plan", "--remote-registry", &addr]),
        (
            "another CA:TRUE certificate",
            vec!["plan", "--remote-registry", &addr, "--ca-cert", &other_cert],
        ),
    ];
    for (case, args) in refusals {
        let out = ws.cip_env(&args, &[("CIP_RETRY_BASE_MS", "10")]);
        assert_eq!(out.status.code(), Some(1), "{case}: {}", text(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "registry {addr} presented a certificate marked as a CA (CA:TRUE) as its own, and \
                 it is not a certificate given with --ca-cert"
            )),
            "{case}: {err}"
        );
        assert!(
            !err.contains("retry:"),
            "{case}: a TLS verification error is not retried: {err}"
        );
        assert!(
            err.contains("invalid peer certificate") && !err.contains("/v2/"),
            "{case}: the TLS library's reason, not the probe's URL: {err}"
        );
    }

    // A certificate with CA:FALSE, given with --ca-cert, is trusted as before.
    let leaf = SelfSignedRegistry::start(&["-addext", "basicConstraints=critical,CA:FALSE"]);
    let out = ws.cip(&[
        "plan",
        "--remote-registry",
        &leaf.addr(),
        "--ca-cert",
        &leaf.cert(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn an_unreachable_registry_is_named_with_what_failed_not_a_probe_url() {
    let ws = Workspace::demo();
    // A loopback port nothing listens on: connection refused (retried: a registry may be starting).
    let closed = format!("127.0.0.1:{}", common::free_port());
    for args in [
        vec!["plan", "--remote-registry", &closed],
        vec!["publish-locally", "--local-registry", &closed],
    ] {
        let out = ws.cip_env(&args, &[("CIP_RETRY_BASE_MS", "10")]);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "cannot reach registry {closed}: connection refused (nothing listens on that port)"
            )),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("/v2/") && !err.contains("http://") && !err.contains("https://"),
            "no internal URL: {err}"
        );
    }
}

#[test]
fn a_registry_host_that_does_not_resolve_is_said_at_once_not_retried() {
    let ws = Workspace::demo();
    let out = ws.cip_env(
        &[
            "plan",
            "--remote-registry",
            "nonexistent.invalid:5000/team/sub",
        ],
        &[("CIP_RETRY_BASE_MS", "10")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cannot reach registry nonexistent.invalid:5000: no such host"),
        "{err}"
    );
    assert!(
        !err.contains("retry:"),
        "a DNS failure is not retried: {err}"
    );
    assert!(
        !err.contains("after ") && !err.contains("/v2/") && !err.contains("https://"),
        "one attempt, no internal URL: {err}"
    );
}
