//! What cip reads from a registry is bounded: a small fake registry written here (a thread per
//! connection on a free loopback port) announces a 2 GiB manifest, sends endless chunked bodies
//! (manifest, image config, token answer, error answer), redirects to another host, and pages its
//! tag list; cip stops at its limits with a message naming the limit, the host and what was read,
//! never sends credentials to a redirected host, and follows `Link` pages.
use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cip::registry::index::sha256_digest;
use cip::registry::{Endpoint, Registry, RegistryAuth};
use common::workspace::{text, Workspace};

/// No answer of the fake server goes on longer than this, whatever the client does.
const MAX_BODY_TIME: Duration = Duration::from_secs(60);
/// Nor sends more than this.
const MAX_BODY_BYTES: u64 = 4 << 30;

/// One request the fake server got.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
}

/// What the fake server answers.
enum Body {
    Bytes(Vec<u8>),
    /// `Content-Length: N`, then zeros for as long as the client reads.
    Announced(u64),
    /// Chunked zeros until the client stops reading.
    Endless,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
}

impl Reply {
    fn new(status: u16, body: Body) -> Reply {
        Reply {
            status,
            headers: vec![(
                "Docker-Distribution-API-Version".into(),
                "registry/2.0".into(),
            )],
            body,
        }
    }

    fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

/// A fake registry on `127.0.0.1:PORT`; stopped when dropped.
struct FakeRegistry {
    addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl FakeRegistry {
    fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let (seen, stop) = (seen.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (seen, handler, stop) =
                                (seen.clone(), handler.clone(), stop.clone());
                            thread::spawn(move || serve(conn, &*handler, &seen, &stop));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        FakeRegistry { addr, seen, stop }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Answers the requests of one connection (kept alive while bodies are fixed).
fn serve(conn: TcpStream, handler: &Handler, seen: &Mutex<Vec<Seen>>, stop: &AtomicBool) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut words = line.split_whitespace();
        let (method, path) = (
            words.next().unwrap_or("").to_string(),
            words.next().unwrap_or("").to_string(),
        );
        let mut authorization = None;
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "authorization" => authorization = Some(value.trim().to_string()),
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut discard = vec![0u8; length.min(1 << 20)];
        if std::io::Read::read_exact(&mut reader, &mut discard).is_err() {
            return;
        }
        let request = Seen {
            method,
            path,
            authorization,
        };
        seen.lock().unwrap().push(request.clone());
        let reply = handler(&request);
        let mut head = format!("HTTP/1.1 {} X\r\n", reply.status);
        for (name, value) in &reply.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let started = Instant::now();
        let going = || !stop.load(Ordering::SeqCst) && started.elapsed() < MAX_BODY_TIME;
        let zeros = vec![0u8; 64 << 10];
        match reply.body {
            Body::Bytes(bytes) => {
                head.push_str(&format!("Content-Length: {}\r\n\r\n", bytes.len()));
                let sent = out.write_all(head.as_bytes());
                if sent.is_err() || (request.method != "HEAD" && out.write_all(&bytes).is_err()) {
                    return;
                }
            }
            Body::Announced(n) => {
                head.push_str(&format!("Content-Length: {n}\r\n\r\n"));
                let _ = out.write_all(head.as_bytes());
                let mut sent = 0u64;
                while going() && sent < n.min(MAX_BODY_BYTES) && out.write_all(&zeros).is_ok() {
                    sent += zeros.len() as u64;
                }
                return;
            }
            Body::Endless => {
                head.push_str("Transfer-Encoding: chunked\r\n\r\n");
                let _ = out.write_all(head.as_bytes());
                let chunk = [
                    format!("{:x}\r\n", zeros.len()).into_bytes(),
                    zeros.clone(),
                    b"\r\n".to_vec(),
                ]
                .concat();
                let mut sent = 0u64;
                while going() && sent < MAX_BODY_BYTES && out.write_all(&chunk).is_ok() {
                    sent += zeros.len() as u64;
                }
                return;
            }
        }
    }
}

/// The registry's answer to `GET /v2/`: open.
fn api_root(req: &Seen) -> Option<Reply> {
    (req.path == "/v2/").then(|| Reply::new(200, Body::Bytes(b"{}".to_vec())))
}

/// The largest resident size of the children this process waited for, in MiB.
fn children_peak_rss_mib() -> i64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss / 1024
}

/// `cip plan` against `reg`: it must fail, within `bound`, with `wanted` on stderr.
fn plan_fails_with(reg: &FakeRegistry, wanted: &[String]) -> String {
    let ws = Workspace::demo();
    let started = Instant::now();
    let out = ws.cip_env(
        &["plan", "--local-registry", &reg.addr],
        &[("CIP_RETRY_ATTEMPTS", "1")],
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    for w in wanted {
        assert!(err.contains(w.as_str()), "wanted {w:?} in: {err}");
    }
    assert!(took < Duration::from_secs(30), "took {took:?}: {err}");
    eprintln!(
        "cip plan failed in {:.2} s; peak RSS of the children so far: {} MiB",
        took.as_secs_f64(),
        children_peak_rss_mib()
    );
    err
}

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[test]
fn a_manifest_announced_at_2_gib_is_refused_before_it_is_read() {
    let reg = FakeRegistry::start(|req| {
        api_root(req).unwrap_or_else(|| {
            Reply::new(200, Body::Announced(2 << 30)).header("Content-Type", INDEX)
        })
    });
    plan_fails_with(
        &reg,
        &[
            format!(
                "registry {} sent a manifest larger than cip's limit of 4 MiB (GET manifest {}/",
                reg.addr, reg.addr
            ),
            "announced 2147483648 bytes".to_string(),
        ],
    );
}

#[test]
fn an_endless_chunked_manifest_is_cut_at_the_limit() {
    let reg = FakeRegistry::start(|req| {
        api_root(req)
            .unwrap_or_else(|| Reply::new(200, Body::Endless).header("Content-Type", INDEX))
    });
    let err = plan_fails_with(
        &reg,
        &[format!(
            "registry {} sent a manifest larger than cip's limit of 4 MiB (GET manifest {}/",
            reg.addr, reg.addr
        )],
    );
    assert!(
        err.contains("sent more; cip stopped reading after 4"),
        "{err}"
    );
}

#[test]
fn an_endless_image_config_is_cut_at_its_limit() {
    let config_digest = sha256_digest(b"a config that never ends");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": 100},
        "layers": [],
    }))
    .unwrap();
    let reg = FakeRegistry::start(move |req| {
        if let Some(root) = api_root(req) {
            root
        } else if req.path.contains("/manifests/") {
            Reply::new(200, Body::Bytes(manifest.clone())).header("Content-Type", MANIFEST)
        } else {
            Reply::new(200, Body::Endless)
        }
    });
    plan_fails_with(
        &reg,
        &[format!(
            "registry {} sent an image config larger than cip's limit of 8 MiB (GET blob {}/",
            reg.addr, reg.addr
        )],
    );
}

#[test]
fn an_endless_token_answer_is_cut_at_its_limit() {
    let realm = Arc::new(Mutex::new(String::new()));
    let reg = {
        let realm = realm.clone();
        FakeRegistry::start(move |req| {
            if req.path.starts_with("/token") {
                Reply::new(200, Body::Endless)
            } else {
                let challenge = format!(
                    "Bearer realm=\"{}\",service=\"fake\"",
                    realm.lock().unwrap()
                );
                Reply::new(401, Body::Bytes(Vec::new())).header("WWW-Authenticate", &challenge)
            }
        })
    };
    *realm.lock().unwrap() = format!("http://{}/token", reg.addr);
    plan_fails_with(
        &reg,
        &[format!(
            "registry {} sent a token answer larger than cip's limit of 256 KiB (token for GET manifest {}/",
            reg.addr, reg.addr
        )],
    );
}

#[test]
fn an_endless_error_answer_is_read_no_further_than_its_start() {
    let reg =
        FakeRegistry::start(|req| api_root(req).unwrap_or_else(|| Reply::new(500, Body::Endless)));
    plan_fails_with(
        &reg,
        &[
            format!("registry {}: {}/", reg.addr, reg.addr),
            "500 Internal Server Error".to_string(),
        ],
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

const USER: &str = "redirected-user";
const PASSWORD: &str = "n0t-f0r-an0ther-h0st";

/// A registry that wants Basic credentials for everything.
fn basic_guarded(req: &Seen) -> Option<Reply> {
    req.authorization.is_none().then(|| {
        Reply::new(401, Body::Bytes(Vec::new())).header("WWW-Authenticate", "Basic realm=\"fake\"")
    })
}

#[test]
fn credentials_never_follow_a_redirect_to_another_host() {
    let blob = b"{\"architecture\":\"amd64\",\"os\":\"linux\"}".to_vec();
    let digest = sha256_digest(&blob);
    let storage = {
        let blob = blob.clone();
        FakeRegistry::start(move |_| Reply::new(200, Body::Bytes(blob.clone())))
    };
    let elsewhere = format!("http://{}/storage/blob", storage.addr);
    let reg = FakeRegistry::start(move |req| {
        basic_guarded(req).unwrap_or_else(|| {
            if req.path.contains("/loop/") {
                // Back to itself, for ever.
                Reply::new(307, Body::Bytes(Vec::new())).header("Location", &req.path)
            } else {
                Reply::new(307, Body::Bytes(Vec::new())).header("Location", &elsewhere)
            }
        })
    });
    let rt = runtime();
    let registry = rt
        .block_on(Registry::connect(
            Endpoint::new(&reg.addr),
            RegistryAuth::Basic(USER.into(), PASSWORD.into()),
        ))
        .unwrap();
    let got = rt
        .block_on(registry.blob_bytes("app", &digest))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(got, blob);
    assert!(
        reg.seen().iter().any(|r| r
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Basic "))),
        "the registry itself got the credentials: {:?}",
        reg.seen()
    );
    let fetched = storage.seen();
    assert_eq!(fetched.len(), 1, "{fetched:?}");
    assert_eq!(
        fetched[0].authorization, None,
        "credentials went to another host"
    );

    // A redirect loop ends with an error, after a bounded number of requests.
    let before = reg.seen().len();
    let err = rt
        .block_on(registry.blob_bytes("loop", &digest))
        .expect_err("a redirect loop");
    let followed = reg.seen().len() - before;
    assert!(followed <= 12, "{followed} requests for one redirect loop");
    let text = format!("{err:#}");
    assert!(text.contains("redirect"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

#[test]
fn tags_are_read_page_after_page() {
    let reg = FakeRegistry::start(|req| {
        api_root(req).unwrap_or_else(|| {
            if req.path.contains("last=b") {
                Reply::new(200, Body::Bytes(br#"{"name":"app","tags":["c"]}"#.to_vec()))
            } else {
                Reply::new(
                    200,
                    Body::Bytes(br#"{"name":"app","tags":["a","b"]}"#.to_vec()),
                )
                .header("Link", "</v2/app/tags/list?n=2&last=b>; rel=\"next\"")
            }
        })
    });
    let rt = runtime();
    let registry = rt
        .block_on(Registry::connect(
            Endpoint::new(&reg.addr),
            RegistryAuth::Anonymous,
        ))
        .unwrap();
    let tags = rt
        .block_on(registry.tags("app"))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(tags, ["a", "b", "c"]);
    let pages: Vec<String> = reg
        .seen()
        .into_iter()
        .filter(|r| r.path.contains("/tags/list"))
        .map(|r| r.path)
        .collect();
    assert_eq!(
        pages,
        ["/v2/app/tags/list?n=1000", "/v2/app/tags/list?n=2&last=b"]
    );
}

#[test]
fn a_refused_mount_means_upload() {
    // The mount is refused outright (a token that does not cover the source, as some servers answer).
    let reg = FakeRegistry::start(|req| {
        api_root(req).unwrap_or_else(|| {
            Reply::new(
                403,
                Body::Bytes(
                    br#"{"errors":[{"code":"DENIED","message":"no pull on the source"}]}"#.to_vec(),
                ),
            )
        })
    });
    let rt = runtime();
    let registry = rt
        .block_on(Registry::connect(
            Endpoint::new(&reg.addr),
            RegistryAuth::Anonymous,
        ))
        .unwrap();
    let mounted = rt
        .block_on(registry.mount_blob("to", "from", &sha256_digest(b"x")))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(!mounted);
    assert!(reg
        .seen()
        .iter()
        .any(|r| r.method == "POST" && r.path.contains("mount=")));
}

#[test]
fn an_upload_of_unknown_size_goes_in_bounded_patches() {
    use futures_util::TryStreamExt as _;
    let reg = common::TestRegistry::start();
    // 20 MiB in 1 MiB items: three PATCHes of at most 8 MiB each, then the closing PUT.
    let blob: Vec<u8> = (0..20u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    let digest = sha256_digest(&blob);
    let items: Vec<Result<bytes::Bytes, std::io::Error>> = blob
        .chunks(1 << 20)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let rt = runtime();
    rt.block_on(async {
        let registry = Registry::connect(Endpoint::new(&reg.addr()), RegistryAuth::Anonymous)
            .await
            .unwrap();
        registry
            .transport()
            .push_blob("patched", &digest, futures_util::stream::iter(items), None)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let (size, stream) = registry.blob_stream("patched", &digest).await.unwrap();
        assert_eq!(size, blob.len() as u64);
        let back: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
        assert!(back.concat() == blob, "the registry holds the whole blob");
    });
}

#[test]
fn a_manifest_digest_comes_from_a_head_or_else_from_the_bytes() {
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let digest = sha256_digest(manifest);
    let reg = {
        let digest = digest.clone();
        FakeRegistry::start(move |req| {
            api_root(req).unwrap_or_else(|| {
                let reply =
                    Reply::new(200, Body::Bytes(manifest.to_vec())).header("Content-Type", INDEX);
                match req.path.contains("/with-header/") {
                    true => reply.header("Docker-Content-Digest", &digest),
                    false => reply,
                }
            })
        })
    };
    let rt = runtime();
    let registry = rt
        .block_on(Registry::connect(
            Endpoint::new(&reg.addr),
            RegistryAuth::Anonymous,
        ))
        .unwrap();
    for repo in ["with-header", "without-header"] {
        let found = rt
            .block_on(registry.manifest_digest(&registry.tag_ref(repo, "1.0.0")))
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(found.as_deref(), Some(digest.as_str()), "{repo}");
    }
    let methods: Vec<(String, String)> = reg
        .seen()
        .into_iter()
        .filter(|r| r.path.contains("/manifests/"))
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        methods,
        [
            ("HEAD".into(), "/v2/with-header/manifests/1.0.0".into()),
            ("HEAD".into(), "/v2/without-header/manifests/1.0.0".into()),
            ("GET".into(), "/v2/without-header/manifests/1.0.0".into()),
        ],
        "a HEAD first, a GET only where it named no digest"
    );
}
