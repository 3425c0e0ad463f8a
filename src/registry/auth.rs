//! Which credentials cip uses for one registry host, and where they came from.
//!
//! Lookup order (documented for users in `docs/auth.md`):
//! 1. `--no-login`: anonymous.
//! 2. `CIP_USERNAME` and `CIP_PASSWORD` (both set and non-empty).
//! 3. Credential files, the first one with an answer wins:
//!    - `$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json` (podman, buildah, skopeo);
//!    - `${XDG_CONFIG_HOME:-$HOME/.config}/containers/auth.json`;
//!    - `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
//!
//!    In each file: `credHelpers[host]` (runs `docker-credential-NAME get`), then `auths[host]`
//!    (`auth` = base64 `user:password`, or `username` / `password`), then the `credsStore` helper.
//!    Keys match when they name the host, also as `https://host`, `http://host` or `host/v1/`.
//! 4. Anonymous, with the list of places looked at.
//!
//! Secrets never reach an error message, a description or `Debug` output: errors describe what is
//! wrong (a key's JSON type, "not valid base64") without quoting the values, and the JSON of config files
//! and helper answers is parsed as untyped values so that serde's messages cannot quote them either.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::{Map, Value};

/// Environment variables holding a username and password for the registry.
pub const USERNAME_VAR: &str = "CIP_USERNAME";
pub const PASSWORD_VAR: &str = "CIP_PASSWORD";

/// How long a credential helper may take to answer (it may ask gpg-agent or a keychain).
const HELPER_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the credentials of a run came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `CIP_USERNAME` / `CIP_PASSWORD`.
    Env,
    /// The `auths` entry of a docker config file (`config.json`).
    DockerConfig(PathBuf),
    /// A credential helper program, e.g. `docker-credential-pass`.
    CredHelper(String),
    /// The `auths` entry of a containers auth file (podman, buildah, skopeo: `auth.json`).
    AuthFile(PathBuf),
    /// No credentials: why.
    Anonymous(Anonymous),
}

/// Why a run is anonymous.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anonymous {
    /// `--no-login`.
    NoLogin,
    /// Nothing was found for `host`; `looked` lists the places searched, in order, each with what was
    /// found there (e.g. `/root/.docker/config.json (no entry)`).
    NotFound { host: String, looked: Vec<String> },
}

/// What cip sends a registry (or its token server) to prove who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    Anonymous,
    /// A username and password: HTTP Basic, to the registry or to its token server.
    Basic(String, String),
    /// A bearer token sent as it is.
    Bearer(String),
}

/// Never the secret: a username at most.
impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryAuth::Anonymous => f.write_str("Anonymous"),
            RegistryAuth::Basic(user, _) => write!(f, "Basic({user:?}, <redacted>)"),
            RegistryAuth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// Credentials for one registry host.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// What cip sends (its `Debug` redacts secrets).
    pub auth: RegistryAuth,
    pub source: Source,
}

impl Credentials {
    /// Where the credentials came from, for progress output and error messages; never the secret.
    pub fn describe_source(&self) -> String {
        match &self.source {
            Source::Env => format!("{USERNAME_VAR}/{PASSWORD_VAR}"),
            Source::DockerConfig(path) | Source::AuthFile(path) => {
                format!("credentials from {} (auths)", path.display())
            }
            Source::CredHelper(program) => format!("credential helper {program}"),
            Source::Anonymous(Anonymous::NoLogin) => "anonymous (--no-login)".to_string(),
            Source::Anonymous(Anonymous::NotFound { host, looked }) => format!(
                "anonymous (no credentials found for {host} in: {})",
                looked.join(", ")
            ),
        }
    }

    /// The short form for the credentials line: who (never the secret), and from where in a few
    /// words: `anonymous`, `user alice (from docker's config.json)`.
    pub fn summary(&self) -> String {
        let from = match &self.source {
            Source::Anonymous(Anonymous::NoLogin) => return "anonymous (--no-login)".into(),
            Source::Anonymous(Anonymous::NotFound { .. }) => return "anonymous".into(),
            Source::Env => format!("{USERNAME_VAR}/{PASSWORD_VAR}"),
            Source::DockerConfig(_) => "docker's config.json".into(),
            Source::AuthFile(_) => "podman's auth.json".into(),
            Source::CredHelper(program) => format!("credential helper {program}"),
        };
        match &self.auth {
            RegistryAuth::Basic(user, _) => format!("user {user} (from {from})"),
            _ => format!("a token (from {from})"),
        }
    }

    pub fn is_anonymous(&self) -> bool {
        matches!(self.source, Source::Anonymous(_))
    }

    fn anonymous(reason: Anonymous) -> Credentials {
        Credentials {
            auth: RegistryAuth::Anonymous,
            source: Source::Anonymous(reason),
        }
    }
}

/// Options of the lookup, from the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--no-login`: do not look for credentials at all.
    pub no_login: bool,
}

/// The credentials for `host` (`host[:port]`), from the process environment and the user's files.
pub fn resolve(host: &str, opts: &Options) -> anyhow::Result<Credentials> {
    resolve_with(host, opts, &|name| std::env::var(name).ok())
}

/// [`resolve`] with the environment given by `env` (variables, including `PATH` and `HOME`, are read
/// only through it; files and helper programs are real).
pub fn resolve_with(
    host: &str,
    opts: &Options,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Credentials> {
    let env = Env(env);
    lookup(host, opts, &env).with_context(|| format!("cannot get credentials for registry {host}"))
}

/// Reads variables through the caller's closure; empty values count as unset.
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.is_empty())
    }
}

fn lookup(host: &str, opts: &Options, env: &Env) -> anyhow::Result<Credentials> {
    if opts.no_login {
        return Ok(Credentials::anonymous(Anonymous::NoLogin));
    }
    let mut looked = Vec::new();
    match (env.get(USERNAME_VAR), env.get(PASSWORD_VAR)) {
        (Some(user), Some(password)) => {
            return Ok(Credentials {
                auth: RegistryAuth::Basic(user, password),
                source: Source::Env,
            })
        }
        (Some(_), None) => {
            bail!("{USERNAME_VAR} is set but {PASSWORD_VAR} is not (set both, or neither)")
        }
        (None, Some(_)) => {
            bail!("{PASSWORD_VAR} is set but {USERNAME_VAR} is not (set both, or neither)")
        }
        (None, None) => looked.push(format!("{USERNAME_VAR}/{PASSWORD_VAR} (not set)")),
    }
    let helper_env = HelperEnv {
        path: env.get("PATH"),
        home: env.get("HOME"),
    };
    let mut seen = Vec::new();
    for place in credential_files(env) {
        let file = match place {
            Ok(file) if seen.contains(&file.path) => continue,
            Ok(file) => file,
            Err(note) => {
                looked.push(note);
                continue;
            }
        };
        seen.push(file.path.clone());
        match search_file(&file, host, &helper_env)? {
            FileAnswer::Found(creds) => return Ok(creds),
            FileAnswer::Nothing(note) => looked.push(format!("{} ({note})", file.path.display())),
        }
    }
    Ok(Credentials::anonymous(Anonymous::NotFound {
        host: host.to_string(),
        looked,
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    /// containers-auth.json(5): podman, buildah, skopeo.
    Containers,
    /// docker's config.json.
    Docker,
}

struct CredentialFile {
    path: PathBuf,
    kind: FileKind,
}

/// The credential files to search, in order; `Err` notes a place that cannot be named because a
/// variable is unset (where a user would expect it to be searched).
fn credential_files(env: &Env) -> Vec<Result<CredentialFile, String>> {
    let mut files = Vec::new();
    let home = env.get("HOME").map(PathBuf::from);
    let containers = |path: PathBuf| {
        Ok(CredentialFile {
            path,
            kind: FileKind::Containers,
        })
    };
    if let Some(file) = env.get("REGISTRY_AUTH_FILE") {
        files.push(containers(PathBuf::from(file)));
    } else if let Some(dir) = env.get("XDG_RUNTIME_DIR") {
        files.push(containers(Path::new(&dir).join("containers/auth.json")));
    }
    if let Some(dir) = env.get("XDG_CONFIG_HOME") {
        files.push(containers(Path::new(&dir).join("containers/auth.json")));
    } else if let Some(home) = &home {
        files.push(containers(home.join(".config/containers/auth.json")));
    }
    if let Some(dir) = env.get("DOCKER_CONFIG") {
        files.push(Ok(CredentialFile {
            path: Path::new(&dir).join("config.json"),
            kind: FileKind::Docker,
        }));
    } else if let Some(home) = &home {
        files.push(Ok(CredentialFile {
            path: home.join(".docker/config.json"),
            kind: FileKind::Docker,
        }));
    } else {
        files.push(Err("~/.docker/config.json (HOME not set)".to_string()));
    }
    files
}

enum FileAnswer {
    Found(Credentials),
    /// Nothing for the host in this file: a short note of why, for the anonymous description.
    Nothing(String),
}

/// `credHelpers[host]`, then `auths[host]`, then `credsStore` of one file.
fn search_file(
    file: &CredentialFile,
    host: &str,
    helper_env: &HelperEnv,
) -> anyhow::Result<FileAnswer> {
    let path = &file.path;
    let shown = path.display();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(FileAnswer::Nothing("absent".to_string()))
        }
        Err(e) => return Err(anyhow!("cannot read {shown}: {e}")),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(FileAnswer::Nothing("empty".to_string()));
    }
    // Untyped first: serde_json's syntax errors name a line and column, never a value.
    let root: Value =
        serde_json::from_slice(&bytes).map_err(|e| anyhow!("{shown} is not valid JSON: {e}"))?;
    let Value::Object(root) = root else {
        bail!(
            "{shown}: expected a JSON object at the top level, found {}",
            type_name(&root)
        );
    };
    let mut notes = Vec::new();

    if let Some((key, helper)) = string_entry(&root, "credHelpers", host, &shown)? {
        let origin = format!("credHelpers[{key:?}] in {shown}");
        match run_helper(helper, host, &origin, helper_env)? {
            HelperAnswer::Found(auth) => {
                return Ok(found(auth, Source::CredHelper(program(helper))))
            }
            HelperAnswer::NotFound => notes.push(format!("{} has no entry", program(helper))),
        }
    }

    if let Some((key, entry)) = section_entry(&root, "auths", host, &shown)? {
        let at = format!("auths[{key:?}] in {shown}");
        if let Some(auth) = auths_entry(entry, host, &at)? {
            let source = match file.kind {
                FileKind::Docker => Source::DockerConfig(path.clone()),
                FileKind::Containers => Source::AuthFile(path.clone()),
            };
            return Ok(found(auth, source));
        }
        notes.push(format!("auths[{key:?}] holds no credentials"));
    }

    match root.get("credsStore") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(store)) => {
            let origin = format!("credsStore in {shown}");
            match run_helper(store, host, &origin, helper_env)? {
                HelperAnswer::Found(auth) => {
                    return Ok(found(auth, Source::CredHelper(program(store))))
                }
                HelperAnswer::NotFound => notes.push(format!("{} has no entry", program(store))),
            }
        }
        Some(other) => bail!(
            "{shown}: \"credsStore\" must be a string, found {}",
            type_name(other)
        ),
    }

    if notes.is_empty() {
        notes.push("no entry".to_string());
    }
    Ok(FileAnswer::Nothing(notes.join("; ")))
}

fn found(auth: RegistryAuth, source: Source) -> FileAnswer {
    FileAnswer::Found(Credentials { auth, source })
}

/// The credentials of an `auths` entry; None when it holds none (e.g. `{}`, written by docker when a
/// credential store keeps the secret).
fn auths_entry(entry: &Value, host: &str, at: &str) -> anyhow::Result<Option<RegistryAuth>> {
    let Value::Object(entry) = entry else {
        bail!("{at}: expected a JSON object, found {}", type_name(entry));
    };
    let field = |name: &str| -> anyhow::Result<Option<&str>> {
        match entry.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => bail!(
                "{at}: \"{name}\" must be a string, found {}",
                type_name(other)
            ),
        }
    };
    if field("identitytoken")?.is_some() {
        return Err(identity_token_error(host, at));
    }
    if let Some(encoded) = field("auth")? {
        // No detail from the decoder: its messages quote the offending bytes.
        let decoded = BASE64
            .decode(encoded.trim())
            .map_err(|_| anyhow!("{at}: \"auth\" is not valid base64"))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| anyhow!("{at}: \"auth\" does not decode to UTF-8 text"))?;
        let Some((user, password)) = decoded.split_once(':') else {
            bail!("{at}: \"auth\" does not decode to USERNAME:PASSWORD (no colon)");
        };
        if user.is_empty() || password.is_empty() {
            bail!("{at}: \"auth\" decodes to an empty username or password");
        }
        return Ok(Some(RegistryAuth::Basic(
            user.to_string(),
            password.to_string(),
        )));
    }
    match (field("username")?, field("password")?) {
        (Some(user), Some(password)) => Ok(Some(RegistryAuth::Basic(
            user.to_string(),
            password.to_string(),
        ))),
        (Some(_), None) => bail!("{at}: \"username\" without \"password\""),
        (None, Some(_)) => bail!("{at}: \"password\" without \"username\""),
        (None, None) => Ok(None),
    }
}

/// Padding is optional in the `auth` values tools write.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn identity_token_error(host: &str, origin: &str) -> anyhow::Error {
    anyhow!(
        "{origin} holds an identity token for {host} (from a token or OAuth login), which cip cannot use: \
         cip's registry client supports only a username and password. Log in with a username \
         and password (docker login / podman login), or set {USERNAME_VAR} and {PASSWORD_VAR}"
    )
}

/// The entry for `host` in the object `root[section]`, if any.
fn section_entry<'a>(
    root: &'a Map<String, Value>,
    section: &str,
    host: &str,
    file: &impl std::fmt::Display,
) -> anyhow::Result<Option<(&'a String, &'a Value)>> {
    match root.get(section) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(match_key(map, host)),
        Some(other) => bail!(
            "{file}: \"{section}\" must be a JSON object, found {}",
            type_name(other)
        ),
    }
}

/// A non-empty string entry for `host` in `root[section]` (credHelpers maps hosts to helper names).
fn string_entry<'a>(
    root: &'a Map<String, Value>,
    section: &str,
    host: &str,
    file: &impl std::fmt::Display,
) -> anyhow::Result<Option<(&'a String, &'a str)>> {
    match section_entry(root, section, host, file)? {
        None => Ok(None),
        Some((_, Value::String(s))) if s.is_empty() => Ok(None),
        Some((key, Value::String(s))) => Ok(Some((key, s.as_str()))),
        Some((key, other)) => bail!(
            "{file}: {section}[{key:?}] must be a string (a helper name), found {}",
            type_name(other)
        ),
    }
}

/// The key naming `host`: the exact key first, then keys written as a URL or with a path
/// (`https://host`, `http://host`, `host/v1/`), the shortest of them first.
fn match_key<'a>(map: &'a Map<String, Value>, host: &str) -> Option<(&'a String, &'a Value)> {
    if let Some(entry) = map.get_key_value(host) {
        return Some(entry);
    }
    let wanted = canonical_host(host);
    map.iter()
        .filter(|(key, _)| canonical_host(key_host(key)) == wanted)
        .min_by_key(|(key, _)| (key.len(), key.as_str()))
}

/// The `host[:port]` part of a config key: without scheme and path.
pub fn key_host(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

/// Host names compare case-insensitively; Docker Hub's names are one registry.
fn canonical_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        _ => host,
    }
}

/// What a credential helper is asked for: the host, except for Docker Hub, which docker stores under
/// its historical URL.
fn helper_server(host: &str) -> String {
    if canonical_host(host) == "docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        host.to_string()
    }
}

fn program(helper: &str) -> String {
    format!("docker-credential-{helper}")
}

/// What helper programs see of the caller's environment.
struct HelperEnv {
    path: Option<String>,
    home: Option<String>,
}

enum HelperAnswer {
    Found(RegistryAuth),
    NotFound,
}

/// Runs `docker-credential-HELPER get` with the server on stdin and reads its JSON answer
/// `{"Username": .., "Secret": ..}`. The helper is looked up on the caller's `PATH`.
fn run_helper(
    helper: &str,
    host: &str,
    origin: &str,
    env: &HelperEnv,
) -> anyhow::Result<HelperAnswer> {
    let name = program(helper);
    if helper.contains('/') || helper.contains(std::path::MAIN_SEPARATOR) {
        bail!("{origin}: {helper:?} is not a helper name (it must not contain '/')");
    }
    let Some(path) = &env.path else {
        bail!("credential helper {name} (named by {origin}) cannot be found: PATH is not set");
    };
    let Some(exe) = find_program(&name, path) else {
        bail!(
            "credential helper {name} (named by {origin}) is not installed: no executable {name} in \
             PATH ({path}); install it, or remove the entry"
        );
    };
    let mut cmd = Command::new(&exe);
    cmd.arg("get")
        .env("PATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(home) = &env.home {
        cmd.env("HOME", home);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run credential helper {}", exe.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that does not read its input closes the pipe: its answer still counts.
        let _ = stdin.write_all(helper_server(host).as_bytes());
    }
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let deadline = Instant::now() + HELPER_TIMEOUT;
    let status: ExitStatus = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "credential helper {name} (named by {origin}) did not answer within {} s",
                    HELPER_TIMEOUT.as_secs()
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => bail!("credential helper {name}: cannot wait for it: {e}"),
        }
    };
    // Output is complete once the helper exited, unless it left a process holding the pipes.
    let collect = |rx: mpsc::Receiver<Vec<u8>>| rx.recv_timeout(Duration::from_secs(5)).ok();
    let stdout = collect(stdout).unwrap_or_default();
    let stderr = collect(stderr).unwrap_or_default();

    if !status.success() {
        let out = String::from_utf8_lossy(&stdout);
        let err = String::from_utf8_lossy(&stderr);
        // docker-credential-helpers' ErrCredentialsNotFound.
        if out.contains("credentials not found") || err.contains("credentials not found") {
            return Ok(HelperAnswer::NotFound);
        }
        // A failing helper prints a message, not a secret: show its first line.
        let message = first_line(&err).or_else(|| first_line(&out)).unwrap_or("");
        bail!("credential helper {name} (named by {origin}) failed ({status}): {message}");
    }
    // Untyped parse and no serde detail: the answer holds the secret.
    let bad = || {
        anyhow!(
            "credential helper {name} (named by {origin}) answered with something other than a JSON \
             object with string fields \"Username\" and \"Secret\""
        )
    };
    let answer: Value = serde_json::from_slice(&stdout).map_err(|_| bad())?;
    let (Some(Value::String(user)), Some(Value::String(secret))) =
        (answer.get("Username"), answer.get("Secret"))
    else {
        return Err(bad());
    };
    if secret.is_empty() {
        return Ok(HelperAnswer::NotFound);
    }
    if user == "<token>" {
        return Err(identity_token_error(
            host,
            &format!("credential helper {name} (named by {origin})"),
        ));
    }
    if user.is_empty() {
        bail!("credential helper {name} (named by {origin}) answered with an empty username");
    }
    Ok(HelperAnswer::Found(RegistryAuth::Basic(
        user.clone(),
        secret.clone(),
    )))
}

fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    }
    rx
}

fn first_line(text: &str) -> Option<&str> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(match line.char_indices().nth(300) {
        Some((cut, _)) => &line[..cut],
        None => line,
    })
}

/// The first executable file `name` in the directories of `path`.
fn find_program(name: &str, path: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_forms_name_their_host() {
        for key in [
            "reg.example.com:5000",
            "https://reg.example.com:5000",
            "http://reg.example.com:5000",
            "reg.example.com:5000/v1/",
            "https://reg.example.com:5000/v2/",
        ] {
            assert_eq!(key_host(key), "reg.example.com:5000", "{key}");
        }
    }

    #[test]
    fn exact_key_wins_then_shortest() {
        let map: Map<String, Value> = serde_json::from_str(
            r#"{"https://h:1/v1/": 1, "https://h:1": 2, "h:10": 3, "other": 4}"#,
        )
        .unwrap();
        assert_eq!(match_key(&map, "h:1").unwrap().1, &Value::from(2));
        assert!(match_key(&map, "h").is_none());
        let map: Map<String, Value> =
            serde_json::from_str(r#"{"https://index.docker.io/v1/": 1}"#).unwrap();
        assert!(match_key(&map, "docker.io").is_some());
    }

    #[test]
    fn first_line_is_bounded() {
        let long = "x".repeat(1000);
        assert_eq!(first_line(&format!("\n  {long}\nmore")).unwrap().len(), 300);
        assert_eq!(first_line(" \n"), None);
    }
}
