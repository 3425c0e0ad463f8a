//! Credential resolution (`cip::registry::auth`) against real files and real credential helper
//! programs, and one end-to-end check against a TLS registry with htpasswd authentication.
//!
//! The environment is given to `resolve_with` as a map (HOME, DOCKER_CONFIG, XDG_RUNTIME_DIR, PATH in
//! a temp dir), so the tests run in parallel without touching the process environment.
use crate::common;

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use cip::registry::auth::{resolve_with, Anonymous, Credentials, Options, Source};
use cip::registry::RegistryAuth;
use cip::registry::{Endpoint, Registry};
use common::{RegistryOptions, TestRegistry};
use tempfile::TempDir;

const HOST: &str = "registry.example.com:5000";
const USER: &str = "cip-user";
/// Contains a colon: the `auth` form splits at the first one only.
const PASSWORD: &str = "s3cr3t:Pa55-w0rd";
const TOKEN: &str = "idt0ken-Zq8vX2";

/// Every secret a test writes anywhere; none may show up in a message.
fn secrets() -> Vec<String> {
    vec![
        PASSWORD.to_string(),
        TOKEN.to_string(),
        BASE64.encode(format!("{USER}:{PASSWORD}")),
        "wr0ng-Pa55-w0rd".to_string(),
    ]
}

fn assert_secret_free(text: &str) {
    for secret in secrets() {
        assert!(
            !text.contains(&secret),
            "a secret leaked into this text: {text}"
        );
    }
}

/// Checks every rendering of a result (Display with its chain, Debug) and returns the error text.
fn error_text(result: anyhow::Result<Credentials>) -> String {
    let err = match result {
        Ok(creds) => panic!("expected an error, got {}", creds.describe_source()),
        Err(e) => e,
    };
    let text = format!("{err:#}");
    assert_secret_free(&text);
    assert_secret_free(&format!("{err:?}"));
    text
}

fn ok(result: anyhow::Result<Credentials>) -> Credentials {
    let creds = result.unwrap_or_else(|e| panic!("{e:#}"));
    assert_secret_free(&creds.describe_source());
    assert_secret_free(&format!("{creds:?}"));
    creds
}

fn basic() -> RegistryAuth {
    RegistryAuth::Basic(USER.to_string(), PASSWORD.to_string())
}

/// A private HOME, XDG_RUNTIME_DIR and PATH directory, and the variables `resolve_with` sees.
struct Fx {
    dir: TempDir,
    vars: HashMap<String, String>,
}

impl Fx {
    fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["home", "run", "bin"] {
            fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let mut fx = Fx {
            dir,
            vars: HashMap::new(),
        };
        fx.set("HOME", fx.path("home"));
        fx.set("XDG_RUNTIME_DIR", fx.path("run"));
        fx.set(
            "PATH",
            format!("{}:/usr/bin:/bin", fx.path("bin").display()),
        );
        fx
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn set(&mut self, name: &str, value: impl AsRef<std::ffi::OsStr>) {
        self.vars.insert(
            name.to_string(),
            value.as_ref().to_string_lossy().into_owned(),
        );
    }

    fn write(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        path
    }

    /// `~/.docker/config.json`.
    fn docker_config(&self, json: &str) -> PathBuf {
        self.write("home/.docker/config.json", json)
    }

    /// An executable `docker-credential-NAME` in the PATH directory.
    fn helper(&self, name: &str, script: &str) {
        common::write_executable(&self.path(&format!("bin/docker-credential-{name}")), script);
    }

    /// A helper that knows one server: it answers `{"Username": user, "Secret": secret}` for it and
    /// "credentials not found" (exit 1) for anything else, as docker-credential-helpers do.
    fn store_helper(&self, name: &str, server: &str, user: &str, secret: &str) {
        self.helper(
            name,
            &format!(
                r#"#!/bin/sh
[ "$1" = get ] || {{ echo "unexpected arguments: $*" >&2; exit 2; }}
server=$(cat)
if [ "$server" = "{server}" ]; then
  printf '{{"ServerURL":"%s","Username":"%s","Secret":"%s"}}\n' "$server" '{user}' '{secret}'
else
  echo "credentials not found in native keychain"
  exit 1
fi
"#
            ),
        );
    }

    fn resolve_opts(&self, host: &str, opts: &Options) -> anyhow::Result<Credentials> {
        resolve_with(host, opts, &|name| self.vars.get(name).cloned())
    }

    fn resolve(&self, host: &str) -> anyhow::Result<Credentials> {
        self.resolve_opts(host, &Options::default())
    }
}

fn auth_b64(user: &str, password: &str) -> String {
    BASE64.encode(format!("{user}:{password}"))
}

fn auths_config(key: &str) -> String {
    format!(
        r#"{{"auths": {{"{key}": {{"auth": "{}"}}}}}}"#,
        auth_b64(USER, PASSWORD)
    )
}

#[test]
fn environment_variables_come_first() {
    let mut fx = Fx::new();
    fx.docker_config(&format!(
        r#"{{"auths": {{"{HOST}": {{"auth": "{}"}}}}}}"#,
        auth_b64("someone-else", "other")
    ));
    fx.set("CIP_USERNAME", USER);
    fx.set("CIP_PASSWORD", PASSWORD);
    let creds = ok(fx.resolve(HOST));
    assert_eq!(creds.auth, basic());
    assert_eq!(creds.source, Source::Env);
    assert_eq!(creds.describe_source(), "CIP_USERNAME/CIP_PASSWORD");
}

#[test]
fn half_set_environment_is_an_error() {
    let mut fx = Fx::new();
    fx.set("CIP_PASSWORD", PASSWORD);
    let text = error_text(fx.resolve(HOST));
    assert!(
        text.contains("CIP_PASSWORD is set but CIP_USERNAME is not"),
        "{text}"
    );
    assert!(text.contains(HOST), "{text}");
}

#[test]
fn docker_config_auth_base64() {
    let fx = Fx::new();
    let path = fx.docker_config(&auths_config(HOST));
    let creds = ok(fx.resolve(HOST));
    assert_eq!(creds.auth, basic());
    assert_eq!(creds.source, Source::DockerConfig(path.clone()));
    assert_eq!(
        creds.describe_source(),
        format!("credentials from {} (auths)", path.display())
    );
}

#[test]
fn docker_config_username_and_password() {
    let fx = Fx::new();
    fx.docker_config(&format!(
        r#"{{"auths": {{"{HOST}": {{"username": "{USER}", "password": "{PASSWORD}"}}}}}}"#
    ));
    assert_eq!(ok(fx.resolve(HOST)).auth, basic());
}

#[test]
fn docker_config_keys_written_as_urls() {
    for key in [
        format!("https://{HOST}"),
        format!("http://{HOST}"),
        format!("{HOST}/v1/"),
        format!("https://{HOST}/v2/"),
    ] {
        let fx = Fx::new();
        fx.docker_config(&auths_config(&key));
        assert_eq!(ok(fx.resolve(HOST)).auth, basic(), "key {key}");
        // ... but not for another port or host.
        let other = ok(fx.resolve("registry.example.com:5001"));
        assert!(other.is_anonymous(), "key {key}");
    }
}

#[test]
fn docker_config_dir_from_docker_config_variable() {
    let mut fx = Fx::new();
    let path = fx.write("elsewhere/config.json", &auths_config(HOST));
    fx.set("DOCKER_CONFIG", fx.path("elsewhere"));
    // ~/.docker/config.json is not read when DOCKER_CONFIG is set.
    fx.docker_config("not json");
    let creds = ok(fx.resolve(HOST));
    assert_eq!(creds.source, Source::DockerConfig(path));
}

#[test]
fn cred_helpers_entry_runs_the_helper_on_path() {
    let fx = Fx::new();
    fx.store_helper("test", HOST, USER, PASSWORD);
    // credHelpers wins over an auths entry of the same host.
    fx.docker_config(&format!(
        r#"{{"credHelpers": {{"{HOST}": "test"}},
            "auths": {{"{HOST}": {{"auth": "{}"}}}}}}"#,
        auth_b64("someone-else", "other")
    ));
    let creds = ok(fx.resolve(HOST));
    assert_eq!(creds.auth, basic());
    assert_eq!(
        creds.source,
        Source::CredHelper("docker-credential-test".into())
    );
    assert_eq!(
        creds.describe_source(),
        "credential helper docker-credential-test"
    );
}

#[test]
fn creds_store_is_asked_after_auths() {
    let fx = Fx::new();
    fx.store_helper("store", HOST, USER, PASSWORD);
    // docker writes an empty auths entry when the secret lives in the store.
    fx.docker_config(&format!(
        r#"{{"auths": {{"{HOST}": {{}}}}, "credsStore": "store"}}"#
    ));
    let creds = ok(fx.resolve(HOST));
    assert_eq!(creds.auth, basic());
    assert_eq!(
        creds.source,
        Source::CredHelper("docker-credential-store".into())
    );

    // A store without an entry for the host: anonymous, and the description says the store was asked.
    let creds = ok(fx.resolve("other.example.com"));
    assert!(creds.is_anonymous());
    let describe = creds.describe_source();
    assert!(
        describe.contains("docker-credential-store has no entry"),
        "{describe}"
    );
}

#[test]
fn identity_tokens_are_refused_clearly() {
    // In config.json.
    let fx = Fx::new();
    fx.docker_config(&format!(
        r#"{{"auths": {{"{HOST}": {{"auth": "{}", "identitytoken": "{TOKEN}"}}}}}}"#,
        BASE64.encode("00000000-0000-0000-0000-000000000000:")
    ));
    let text = error_text(fx.resolve(HOST));
    assert!(text.contains("identity token"), "{text}");
    assert!(text.contains("only a username and password"), "{text}");
    assert!(text.contains("config.json"), "{text}");

    // From a credential helper (Username "<token>").
    let fx = Fx::new();
    fx.store_helper("tok", HOST, "<token>", TOKEN);
    fx.docker_config(&format!(r#"{{"credHelpers": {{"{HOST}": "tok"}}}}"#));
    let text = error_text(fx.resolve(HOST));
    assert!(text.contains("identity token"), "{text}");
    assert!(text.contains("docker-credential-tok"), "{text}");
}

#[test]
fn missing_helper_is_named() {
    let fx = Fx::new();
    let path = fx.docker_config(&format!(r#"{{"credHelpers": {{"{HOST}": "absent"}}}}"#));
    let text = error_text(fx.resolve(HOST));
    assert!(text.contains("docker-credential-absent"), "{text}");
    assert!(text.contains("not installed"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");

    let fx = Fx::new();
    fx.docker_config(r#"{"credsStore": "gone"}"#);
    let text = error_text(fx.resolve(HOST));
    assert!(text.contains("docker-credential-gone"), "{text}");
    assert!(text.contains("credsStore"), "{text}");
}

#[test]
fn failing_helper_reports_its_message() {
    let fx = Fx::new();
    fx.helper(
        "broken",
        "#!/bin/sh\ncat >/dev/null\necho 'gpg: decryption failed: No secret key' >&2\nexit 3\n",
    );
    fx.docker_config(&format!(r#"{{"credHelpers": {{"{HOST}": "broken"}}}}"#));
    let text = error_text(fx.resolve(HOST));
    assert!(text.contains("docker-credential-broken"), "{text}");
    assert!(text.contains("gpg: decryption failed"), "{text}");

    // Not JSON on success: the answer is not quoted (it may hold the secret).
    let fx = Fx::new();
    fx.helper(
        "garbled",
        &format!("#!/bin/sh\ncat >/dev/null\necho 'Username={USER} Secret={PASSWORD}'\n"),
    );
    fx.docker_config(&format!(r#"{{"credHelpers": {{"{HOST}": "garbled"}}}}"#));
    let text = error_text(fx.resolve(HOST));
    assert!(text.contains("docker-credential-garbled"), "{text}");
    assert!(text.contains("\"Username\" and \"Secret\""), "{text}");
}

#[test]
fn malformed_config_names_the_file_and_the_problem() {
    let fx = Fx::new();
    let path = fx.docker_config("{\"auths\": {");
    let text = error_text(fx.resolve(HOST));
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("not valid JSON"), "{text}");
    assert!(text.contains("line 1"), "{text}");

    let fx = Fx::new();
    fx.docker_config(r#"{"auths": ["nope"]}"#);
    let text = error_text(fx.resolve(HOST));
    assert!(
        text.contains("\"auths\" must be a JSON object, found an array"),
        "{text}"
    );
}

#[test]
fn no_secret_in_any_message() {
    let b64 = auth_b64(USER, PASSWORD);
    // Secrets in places where they do not belong: every message describes, none quotes.
    let configs = [
        format!(r#"{{"auths": {{"{HOST}": "{b64}"}}}}"#),
        format!(r#"{{"auths": {{"{HOST}": {{"auth": "{PASSWORD}"}}}}}}"#),
        format!(
            r#"{{"auths": {{"{HOST}": {{"auth": "{}"}}}}}}"#,
            BASE64.encode(PASSWORD.replace(':', ""))
        ),
        format!(r#"{{"auths": {{"{HOST}": {{"auth": ["{b64}"]}}}}}}"#),
        format!(r#"{{"auths": {{"{HOST}": {{"password": "{PASSWORD}"}}}}}}"#),
        format!(r#"{{"auths": {{"{HOST}": {{"username": "{USER}", "password": 5}}}}}}"#),
        format!(r#"{{"auths": {{"{HOST}": {{"identitytoken": "{TOKEN}"}}}}}}"#),
        format!(r#"{{"credsStore": ["{PASSWORD}"]}}"#),
        format!(r#"["{PASSWORD}"]"#),
        format!(r#"{{"auths": {{"{HOST}": {{"auth": "{b64}"}}}}"#),
        format!("{{\"auths\": {{\"{HOST}\": {{\"auth\": \"{b64}\x01\"}}}}}}"),
    ];
    for config in &configs {
        let fx = Fx::new();
        fx.docker_config(config);
        let text = error_text(fx.resolve(HOST));
        assert!(text.contains("config.json"), "{config}: {text}");
    }

    // Every description, including those of successful lookups.
    let mut fx = Fx::new();
    fx.docker_config(&auths_config(HOST));
    fx.store_helper("test", "h.example.com", USER, PASSWORD);
    fx.write(
        "run/containers/auth.json",
        r#"{"credHelpers": {"h.example.com": "test"}}"#,
    );
    let mut descriptions = vec![
        ok(fx.resolve(HOST)).describe_source(),
        ok(fx.resolve("h.example.com")).describe_source(),
        ok(fx.resolve("nowhere.example.com")).describe_source(),
        ok(fx.resolve_opts(HOST, &Options { no_login: true })).describe_source(),
    ];
    fx.set("CIP_USERNAME", USER);
    fx.set("CIP_PASSWORD", PASSWORD);
    descriptions.push(ok(fx.resolve(HOST)).describe_source());
    for d in &descriptions {
        assert_secret_free(d);
    }
}

#[test]
fn registry_auth_file_comes_before_docker_config() {
    let mut fx = Fx::new();
    fx.docker_config(&format!(
        r#"{{"auths": {{"{HOST}": {{"auth": "{}"}}}}}}"#,
        auth_b64("docker-user", "other")
    ));
    let path = fx.write("podman/auth.json", &auths_config(HOST));
    fx.set("REGISTRY_AUTH_FILE", &path);
    // XDG_RUNTIME_DIR's auth.json is replaced by REGISTRY_AUTH_FILE, not read.
    fx.write("run/containers/auth.json", "not json");
    let creds = ok(fx.resolve(HOST));
    assert_eq!(creds.auth, basic());
    assert_eq!(creds.source, Source::AuthFile(path.clone()));
    assert_eq!(
        creds.describe_source(),
        format!("credentials from {} (auths)", path.display())
    );

    // Without REGISTRY_AUTH_FILE: $XDG_RUNTIME_DIR/containers/auth.json.
    let fx = Fx::new();
    fx.docker_config("{}");
    let path = fx.write("run/containers/auth.json", &auths_config(HOST));
    assert_eq!(ok(fx.resolve(HOST)).source, Source::AuthFile(path));
}

#[test]
fn no_login_is_anonymous_whatever_is_configured() {
    let mut fx = Fx::new();
    fx.docker_config(&auths_config(HOST));
    fx.set("CIP_USERNAME", USER);
    fx.set("CIP_PASSWORD", PASSWORD);
    let creds = ok(fx.resolve_opts(HOST, &Options { no_login: true }));
    assert_eq!(creds.auth, RegistryAuth::Anonymous);
    assert_eq!(creds.source, Source::Anonymous(Anonymous::NoLogin));
    assert_eq!(creds.describe_source(), "anonymous (--no-login)");
}

#[test]
fn nothing_found_is_anonymous_and_says_where_it_looked() {
    let fx = Fx::new();
    let docker = fx.docker_config(&auths_config("other.example.com"));
    let creds = ok(fx.resolve(HOST));
    assert_eq!(creds.auth, RegistryAuth::Anonymous);
    let describe = creds.describe_source();
    let run = fx.path("run/containers/auth.json");
    let config = fx.path("home/.config/containers/auth.json");
    assert_eq!(
        describe,
        format!(
            "anonymous (no credentials found for {HOST} in: CIP_USERNAME/CIP_PASSWORD (not set), \
             {} (absent), {} (absent), {} (no entry))",
            run.display(),
            config.display(),
            docker.display()
        )
    );
    match creds.source {
        Source::Anonymous(Anonymous::NotFound { host, looked }) => {
            assert_eq!(host, HOST);
            assert_eq!(looked.len(), 4);
        }
        other => panic!("{other:?}"),
    }

    // Without HOME the description says so.
    let mut fx = Fx::new();
    fx.vars.remove("HOME");
    let describe = ok(fx.resolve(HOST)).describe_source();
    assert!(
        describe.contains("~/.docker/config.json (HOME not set)"),
        "{describe}"
    );
}

fn endpoint(reg: &TestRegistry) -> Endpoint {
    let mut endpoint = Endpoint::new(&reg.addr());
    endpoint.ca_certs = vec![reg.ca_cert_path().unwrap()];
    endpoint
}

/// What a registry call answers with these credentials (connect errors included).
async fn published_nothing(
    reg: &TestRegistry,
    auth: RegistryAuth,
) -> anyhow::Result<Option<cip::registry::Published>> {
    let registry = Registry::connect(endpoint(reg), auth).await?;
    registry.published("nothing", "1.0.0").await
}

/// A docker config with an `https://HOST` entry for `user` / `password`.
fn config_for(host: &str, user: &str, password: &str) -> Fx {
    let fx = Fx::new();
    fx.docker_config(&format!(
        r#"{{"auths": {{"https://{host}": {{"auth": "{}"}}}}}}"#,
        auth_b64(user, password)
    ));
    fx
}

#[tokio::test]
async fn resolved_credentials_open_a_real_tls_registry() {
    let reg = TestRegistry::start_with(RegistryOptions::tls_auth(USER, PASSWORD));
    let host = reg.addr();

    let fx = config_for(&host, USER, PASSWORD);
    let creds = ok(fx.resolve(&host));
    assert!(matches!(creds.source, Source::DockerConfig(_)));
    let answer = published_nothing(&reg, creds.auth).await;
    assert!(
        matches!(answer, Ok(None)),
        "an authenticated 404 was expected: {:?}",
        answer.map_err(|e| format!("{e:#}"))
    );

    let wrong = config_for(&host, USER, "wr0ng-Pa55-w0rd");
    let creds = ok(wrong.resolve(&host));
    let err = published_nothing(&reg, creds.auth)
        .await
        .expect_err("wrong credentials must be refused");
    let text = format!("{err:#}");
    assert!(
        text.contains(&host),
        "the error must name the registry: {text}"
    );
    assert_secret_free(&text);
    assert_secret_free(&format!("{err:?}"));

    // Anonymous access is refused too: the registry really checks.
    let anonymous = ok(Fx::new().resolve(&host));
    assert!(anonymous.is_anonymous());
    assert!(published_nothing(&reg, anonymous.auth).await.is_err());
}
