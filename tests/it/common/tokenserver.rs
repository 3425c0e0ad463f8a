//! A token server for the distribution token protocol, the bearer-token scheme of Docker Hub and
//! Harbor: a registry configured with `auth.token` answers 401 with
//! `WWW-Authenticate: Bearer realm=..,service=..,scope=..`; the client asks the realm
//! (`GET /token?service=S&scope=repository:NAME:pull,push`, HTTP Basic credentials) for a JWT and
//! sends it to the registry as `Authorization: Bearer JWT`.
//!
//! This server runs in a thread on `127.0.0.1:0`, plain HTTP, one request per connection:
//! - the right user and password get a token granting every action they asked for;
//! - a wrong user or password (or a non-Basic `Authorization`) gets 401 and no token;
//! - a request without credentials gets a token that grants nothing (as Harbor does for a private
//!   project), so the registry then refuses the request with 401 `insufficient_scope`;
//! - a `service` other than [`TokenServer::service`] gets 400.
//!
//! Tokens are ES256 JWTs whose header carries the signing certificate as `x5c`. The certificate is
//! self-signed (P-256, made with the `openssl` CLI at start) and is the registry's
//! `auth.token.rootcertbundle` ([`TokenServer::root_cert_bundle`]): docker-registry 2.8 verifies
//! an `x5c` chain against that bundle, and also accepts a libtrust `kid` of a key in it; `x5c` needs
//! no libtrust key-id computation, so it is what is used here.
//!
//! Every request is logged ([`TokenServer::requests`]; the username, never the password) and every
//! token counted ([`TokenServer::tokens_issued`]), so a test can prove that the bearer flow ran.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};
use tempfile::TempDir;

use super::run_ok;

/// `service` of the registry and `aud` of every token.
pub const SERVICE: &str = "cip-test-registry";
/// `iss` of every token; the registry's `auth.token.issuer`.
pub const ISSUER: &str = "cip-test-token-issuer";
/// Lifetime of a token (`expires_in`, `exp - iat`).
pub const TOKEN_LIFETIME_SECS: u64 = 300;
/// Largest request head read; token requests are a few hundred bytes.
const MAX_HEAD: usize = 64 * 1024;

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `METHOD /path` (without the query).
    pub request: String,
    /// The `User-Agent` header: tells oci-client (cip) from containers/image (buildah, skopeo).
    pub user_agent: String,
    /// The Basic username given, if any (the password is never kept).
    pub user: Option<String>,
    /// Whether the user and password were right.
    pub authenticated: bool,
    /// The `service` parameter, if any.
    pub service: Option<String>,
    /// The `scope` parameters, decoded, in order.
    pub scopes: Vec<String>,
    /// HTTP status answered (200 with a token, 400, 401, 404).
    pub status: u16,
    /// What the token granted, `type:name:action,action` per entry (empty for anonymous tokens).
    pub granted: Vec<String>,
}

struct Shared {
    user: String,
    password: String,
    key: EcdsaKeyPair,
    /// DER of the signing certificate, standard base64 (the `x5c` entry).
    cert_b64: String,
    issued: AtomicUsize,
    log: Mutex<Vec<TokenRequest>>,
}

/// A running token server; stopped when dropped.
pub struct TokenServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    dir: TempDir,
}

impl TokenServer {
    /// Serves tokens to `user` / `password` on a free loopback port.
    pub fn start(user: &str, password: &str) -> TokenServer {
        let dir = tempfile::Builder::new()
            .prefix("cip-tokenserver-")
            .tempdir()
            .expect("create token server temp dir");
        let (key, cert_der) = signing_key(dir.path());
        let shared = Arc::new(Shared {
            user: user.to_string(),
            password: password.to_string(),
            key,
            cert_b64: STANDARD.encode(cert_der),
            issued: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("token server address");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name("token-server".into())
                .spawn(move || serve(listener, shared, stop))
                .expect("spawn token server thread")
        };
        TokenServer {
            addr,
            shared,
            stop,
            thread: Some(thread),
            dir,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/token`, the registry's `auth.token.realm`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    pub fn service(&self) -> &'static str {
        SERVICE
    }

    pub fn issuer(&self) -> &'static str {
        ISSUER
    }

    /// PEM file with the certificate that signs the tokens: the registry's
    /// `auth.token.rootcertbundle`.
    pub fn root_cert_bundle(&self) -> PathBuf {
        self.dir.path().join("signing.crt")
    }

    /// `USER:PASSWORD`, for `--creds` of skopeo and buildah.
    pub fn creds(&self) -> String {
        format!("{}:{}", self.shared.user, self.shared.password)
    }

    /// Tokens handed out so far (anonymous ones included).
    pub fn tokens_issued(&self) -> usize {
        self.shared.issued.load(Ordering::SeqCst)
    }

    /// Tokens handed out to the right user and password.
    pub fn authenticated_tokens(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.status == 200 && r.authenticated)
            .count()
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared.log.lock().unwrap().clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if thread::panicking() {
            eprintln!("--- requests to the token server at {}", self.addr);
            for r in self.requests() {
                eprintln!("{r:?}");
            }
        }
    }
}

/// A fresh P-256 key (PKCS#8) and a self-signed certificate for it (DER), made with openssl.
fn signing_key(dir: &Path) -> (EcdsaKeyPair, Vec<u8>) {
    let cnf = dir.join("openssl.cnf");
    std::fs::write(
        &cnf,
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = cip test token signer\n",
    )
    .expect("write openssl.cnf");
    let key_path = dir.join("signing.key");
    let cert_path = dir.join("signing.crt");
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec"])
            .args(["-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .arg("-config")
            .arg(&cnf)
            .args(["-days", "7", "-keyout"])
            .arg(&key_path)
            .arg("-out")
            .arg(&cert_path),
    );
    let key_der = pem_body(&key_path, "PRIVATE KEY");
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key_der)
        .unwrap_or_else(|e| panic!("openssl's P-256 key is not usable PKCS#8: {e}"));
    (key, pem_body(&cert_path, "CERTIFICATE"))
}

/// The DER inside the first `-----BEGIN LABEL-----` block of a PEM file.
fn pem_body(path: &Path, label: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(path).expect("read PEM file");
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body: String = text
        .lines()
        .skip_while(|l| l.trim() != begin)
        .skip(1)
        .take_while(|l| l.trim() != end)
        .map(str::trim)
        .collect();
    STANDARD
        .decode(body)
        .unwrap_or_else(|e| panic!("{}: no {label} PEM block: {e}", path.display()))
}

fn serve(listener: TcpListener, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let shared = Arc::clone(&shared);
        // One thread per connection: a client that never finishes its request blocks no one.
        thread::spawn(move || handle(stream, &shared));
    }
}

struct Response {
    status: u16,
    extra_headers: Vec<String>,
    body: String,
}

impl Response {
    fn error(status: u16, code: &str, message: &str) -> Response {
        Response {
            status,
            extra_headers: Vec::new(),
            body: json!({"errors": [{"code": code, "message": message}]}).to_string(),
        }
    }
}

fn handle(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(head) = read_head(&mut stream) else {
        return;
    };
    let (entry, response) = answer(&head, shared);
    let reason = match response.status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        response.status,
        response.body.len()
    );
    for h in &response.extra_headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&response.body);
    // Log before answering: a client that got its answer may ask for the log at once.
    shared.log.lock().unwrap().push(entry);
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}

/// The request line and headers, up to the blank line (token requests have no body).
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > MAX_HEAD {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn answer(head: &str, shared: &Shared) -> (TokenRequest, Response) {
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split_whitespace();
    let method = request_line.next().unwrap_or("").to_string();
    let target = request_line.next().unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers: Vec<(&str, &str)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(name, value)| (name.trim(), value.trim()))
        .collect();
    let header = |wanted: &str| {
        headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, value)| value.to_string())
    };
    let authorization = header("authorization");

    let params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let service = params
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone());
    // Clients send one `scope` per resource; one value may also list several, space-separated.
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();

    let (user, authenticated, auth_error) = match authorization.as_deref() {
        None => (None, false, None),
        Some(value) => match basic_credentials(value) {
            Some((user, password)) => {
                let ok = user == shared.user && password == shared.password;
                let error = (!ok).then_some("invalid username or password");
                (Some(user), ok, error)
            }
            None => (
                None,
                false,
                Some("only HTTP Basic credentials are accepted"),
            ),
        },
    };
    let mut entry = TokenRequest {
        request: format!("{method} {path}"),
        user_agent: header("user-agent").unwrap_or_default(),
        user,
        authenticated,
        service: service.clone(),
        scopes: scopes.clone(),
        status: 0,
        granted: Vec::new(),
    };

    let response = if method != "GET" || path != "/token" {
        Response::error(404, "NOT_FOUND", "only GET /token is served here")
    } else if let Some(message) = auth_error {
        let mut r = Response::error(401, "UNAUTHORIZED", message);
        r.extra_headers
            .push("WWW-Authenticate: Basic realm=\"cip test token server\"".to_string());
        r
    } else if service.as_deref().is_some_and(|s| s != SERVICE) {
        Response::error(400, "INVALID_SERVICE", "unknown service")
    } else {
        let access: Vec<Value> = if authenticated {
            scopes.iter().filter_map(|s| parse_scope(s)).collect()
        } else {
            Vec::new()
        };
        entry.granted = access
            .iter()
            .map(|a| {
                let actions: Vec<&str> = a["actions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                format!(
                    "{}:{}:{}",
                    a["type"].as_str().unwrap_or(""),
                    a["name"].as_str().unwrap_or(""),
                    actions.join(",")
                )
            })
            .collect();
        let n = shared.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let subject = entry.user.clone().filter(|_| authenticated);
        let token = sign_token(shared, subject.as_deref().unwrap_or(""), access, n);
        Response {
            status: 200,
            extra_headers: Vec::new(),
            body: json!({
                "token": token,
                "access_token": token,
                "expires_in": TOKEN_LIFETIME_SECS,
            })
            .to_string(),
        }
    };
    entry.status = response.status;
    (entry, response)
}

/// `(user, password)` of an `Authorization: Basic ..` value.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// `repository:NAME:pull,push` (NAME may hold `:` only in theory; the actions follow the last one)
/// as a token `access` entry. `registry:catalog:*` is granted too.
fn parse_scope(scope: &str) -> Option<Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let actions: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
    if name.is_empty() || actions.is_empty() {
        return None;
    }
    Some(json!({"type": kind, "name": name, "actions": actions}))
}

/// An ES256 JWT for `subject` with `access`, signed by the server's key, `x5c` in the header.
fn sign_token(shared: &Shared, subject: &str, access: Vec<Value>, n: usize) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [shared.cert_b64]});
    let claims = json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": SERVICE,
        "exp": now + TOKEN_LIFETIME_SECS,
        "nbf": now.saturating_sub(1),
        "iat": now,
        "jti": format!("cip-test-{}-{n}", std::process::id()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = shared
        .key
        .sign(&SystemRandom::new(), signing_input.as_bytes())
        .expect("sign token");
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    )
}

/// `%XX` escapes and `+` (a space in query strings) decoded; invalid escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
