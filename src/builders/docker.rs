//! docker: `docker buildx build --load` when the buildx plugin is there, else the daemon's embedded
//! BuildKit (`DOCKER_BUILDKIT=1 docker build`). Exports go through skopeo (`docker-daemon:` to `oci:`),
//! since `docker save` of older daemons does not write an OCI layout.
//!
//! Plain-HTTP and private-CA registries are daemon settings for docker (`insecure-registries` in
//! `daemon.json`, `/etc/docker/certs.d/HOST:PORT/ca.crt`); 127.0.0.0/8 is insecure by default.
//! A daemon without a bridge network (`--bridge=none`) can only run RUN steps with
//! `--network=host`, which cip then adds unless the extra arguments choose a network.
//!
//! Verified with dockerd 20.10.24 (Debian 12, `--storage-driver vfs --iptables=false --bridge=none`):
//! Debian's client builds with `DOCKER_BUILDKIT=1 docker build --platform linux/arm64` under qemu;
//! a docker 28 client without buildx refuses `DOCKER_BUILDKIT=1`, so detection skips such clients.
//!
//! BuildKit does not expand variables in `COPY --from=${REGISTRY}/...` (nor `RUN --mount=from=`), so a
//! Dockerfile using them is built through its translation (see [`super::buildkit`]), written next to
//! the build log as `NAME-VERSION-PLATFORM.HASH.Dockerfile` (content-addressed, so concurrent runs
//! never build each other's); the log says so in a `cip:` line before the command.
use std::collections::HashSet;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use sha2::{Digest as _, Sha256};

use super::buildkit;
use super::engines::{Engine, Features, Heredocs};
use super::process::{find_all_programs, find_program, Invocation};
use super::{
    prepare_layout_dir, probe, run_build, run_exists, run_export, run_image_id, run_listing,
    run_on_image, run_pull, run_remove, Backend, BuildJob, BuilderKind, NodeEnv, NotUsable, Op,
    RegistryAccess, Supervisor, PROBE_TIMEOUT,
};
use crate::platform::Platform;

/// docker: a daemon on this machine or elsewhere (`host`, `context`).
pub static ENGINE: Engine = Engine {
    name: "docker",
    auto: true,
    check_keys: |keys| {
        let hint = "a docker node has host = \"unix://...\" | \"tcp://...\" | \"ssh://...\" or \
                    context = \"NAME\"";
        keys.refuse(&["url", "connection"], hint)?;
        keys.one_of("host", "context")?;
        keys.scheme(
            "host",
            &SCHEMES,
            "write unix:///path/docker.sock, tcp://HOST:PORT or ssh://USER@HOST",
        )
    },
    reach: |keys| {
        let env = NodeEnv::new();
        match (keys.host, keys.context) {
            (Some(_), Some(_)) => Err("both host and context: name one".into()),
            (Some(host), None) => {
                if !SCHEMES.iter().any(|s| host.starts_with(s)) {
                    return Err(format!(
                        "host {host:?} is not a docker address: use unix:///PATH, tcp://HOST:PORT \
                         or ssh://USER@HOST"
                    ));
                }
                Ok((host.to_string(), env.set("DOCKER_HOST", host)))
            }
            (None, Some(context)) => Ok((
                format!("context {context}"),
                env.set("DOCKER_CONTEXT", context),
            )),
            (None, None) => Ok(("local".into(), env)),
        }
    },
    detect: |env| detect(env).map(|b| Arc::new(b) as Arc<dyn Backend>),
    features: Features {
        heredocs: Heredocs::FrontendSince(23, 0),
    },
};

/// The schemes of a daemon address (`DOCKER_HOST`).
const SCHEMES: [&str; 3] = ["unix://", "tcp://", "ssh://"];

/// A docker daemon, reached by a docker client that can build with BuildKit.
#[derive(Debug, Clone)]
pub struct Docker {
    /// The client as found on PATH (or `$CIP_DOCKER`).
    program: PathBuf,
    /// The daemon's version.
    version: String,
    env: NodeEnv,
    /// The daemon's own platform.
    native: Vec<Platform>,
    /// Whether `docker buildx` is available (else `DOCKER_BUILDKIT=1 docker build`).
    buildx: bool,
    /// The daemon address when not the default socket.
    docker_host: Option<String>,
    /// The daemon has no bridge network: builds get `--network=host`.
    host_network: bool,
    /// Ends the processes of cancelled operations.
    supervisor: Arc<Supervisor>,
}

impl Docker {
    /// skopeo reads a daemon on `unix://` and `tcp://` itself; one over ssh or behind a context
    /// is exported through `docker save`, which the client writes here.
    fn exports_by_save(&self) -> bool {
        let over_ssh = self
            .docker_host
            .as_deref()
            .is_some_and(|h| h.starts_with("ssh://"));
        over_ssh || (self.docker_host.is_none() && self.env.get("DOCKER_CONTEXT").is_some())
    }

    /// A call of the client, with the node's environment.
    fn invocation(&self) -> Invocation {
        Invocation::new(&self.program)
            .envs(self.env.overrides())
            .supervised_by(&self.supervisor)
    }
}

impl Backend for Docker {
    fn kind(&self) -> BuilderKind {
        BuilderKind::of(&ENGINE)
    }

    fn version(&self) -> &str {
        &self.version
    }

    fn describe(&self) -> String {
        let mut notes = vec![if self.buildx { "buildx" } else { "BuildKit" }.to_string()];
        if self.host_network {
            notes.push("--network=host: the daemon has no bridge network".to_string());
        }
        if let Some(host) = &self.docker_host {
            notes.push(host.clone());
        }
        super::describe("docker", &self.version, &notes)
    }

    fn native_platforms(&self) -> Vec<Platform> {
        self.native.clone()
    }

    fn build<'a>(&'a self, job: &'a BuildJob) -> Op<'a, ()> {
        Box::pin(run_build(build(self, job), job))
    }

    fn export_oci_layout<'a>(&'a self, tag: &'a str, dir: &'a Path) -> Op<'a, ()> {
        Box::pin(async move {
            prepare_layout_dir(dir)?;
            if self.exports_by_save() {
                let archive = super::archive_path(dir);
                let save = self
                    .invocation()
                    .arg("save")
                    .arg("-o")
                    .arg(&archive)
                    .arg(tag);
                let source = "docker-archive";
                return super::run_export_archive(save, &self.env, source, &archive, tag, dir)
                    .await;
            }
            run_export(export(self, tag, dir)?, tag, dir).await
        })
    }

    /// `docker tag` + `docker push` (the daemon pushes; docker without buildx pushes tags only),
    /// then the staging tag is removed from the daemon. Plain-HTTP and private-CA registries are
    /// daemon settings; of `access`, only the credentials are used.
    fn push_to<'a>(
        &'a self,
        tag: &'a str,
        destination: &'a str,
        access: &'a RegistryAccess,
        log: &'a Path,
    ) -> Op<'a, ()> {
        Box::pin(async move {
            run_on_image(self.invocation().args(["tag", tag, destination]), tag).await?;
            let push = self
                .invocation()
                .envs_owned(access.env())
                .args(["push", destination]);
            let pushed = super::run_push(push, destination, log).await;
            let _ = run_remove(self.invocation().args(["image", "rm", destination])).await;
            pushed
        })
    }

    fn local_tags(&self) -> Op<'_, HashSet<String>> {
        let inv = self
            .invocation()
            .args(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        Box::pin(run_listing(inv))
    }

    fn image_exists<'a>(&'a self, tag: &'a str) -> Op<'a, bool> {
        let inv = self
            .invocation()
            .args(["image", "inspect", "--format", "{{.Id}}", tag]);
        Box::pin(run_exists(inv))
    }

    fn image_id<'a>(&'a self, tag: &'a str) -> Op<'a, Option<String>> {
        let inv = self
            .invocation()
            .args(["image", "inspect", "--format", "{{.Id}}", tag]);
        Box::pin(run_image_id(inv))
    }

    fn remove_image<'a>(&'a self, tag: &'a str) -> Op<'a, ()> {
        Box::pin(run_remove(self.invocation().args(["image", "rm", tag])))
    }

    fn tag_image<'a>(&'a self, src: &'a str, dst: &'a str) -> Op<'a, ()> {
        let inv = self.invocation().args(["tag", src, dst]);
        Box::pin(run_on_image(inv, src))
    }

    fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    fn address(&self) -> Option<String> {
        match (&self.docker_host, self.env.get("DOCKER_CONTEXT")) {
            (Some(host), _) => Some(host.clone()),
            (None, Some(context)) => Some(format!("context {context}")),
            (None, None) => None,
        }
    }

    fn cpus(&self) -> Op<'_, Option<usize>> {
        let inv = self.invocation().args(["info", "--format", "{{.NCPU}}"]);
        Box::pin(async move {
            let out = inv.run_ok().await?;
            Ok(out.stdout.trim().parse().ok())
        })
    }

    fn answers(&self) -> Op<'_, bool> {
        let inv = self
            .invocation()
            .args(["version", "--format", "{{.Server.Version}}"]);
        Box::pin(async move { Ok(inv.run_captured().await.is_ok_and(|o| o.success())) })
    }

    /// Plain-HTTP and private-CA registries are daemon settings for docker (`insecure-registries`,
    /// `/etc/docker/certs.d`): of `access`, only the credentials are used.
    fn pull<'a>(
        &'a self,
        reference: &'a str,
        platform: Option<&'a Platform>,
        access: &'a RegistryAccess,
    ) -> Op<'a, ()> {
        let mut inv = self
            .invocation()
            .envs_owned(access.env())
            .args(["pull", "--quiet"]);
        if let Some(p) = platform {
            inv = inv.arg(format!("--platform={p}"));
        }
        Box::pin(run_pull(inv.arg(reference), reference))
    }
}

const HINT: &str =
    "Install docker (`apt-get install -y docker.io` on Debian/Ubuntu) and start its daemon \
                    (`systemctl start docker`), or point DOCKER_HOST at a running one";

/// The client is here but its daemon does not answer: installing docker again is no fix.
const NO_DAEMON_HINT: &str =
    "The docker client is installed; start the docker daemon (`systemctl start docker`, or run \
     `dockerd`), install the daemon if this machine has only the client (`apt-get install -y \
     docker.io` on Debian/Ubuntu has dockerd), or point DOCKER_HOST at a daemon that runs";

/// Environment variable naming the docker client to use (default: found on PATH, see [`detect`]).
pub const DOCKER_PROGRAM_ENV: &str = "CIP_DOCKER";

/// The first docker client that can build with BuildKit: one with the buildx plugin, or one older
/// than 23 (whose `DOCKER_BUILDKIT=1 docker build` uses the daemon's embedded BuildKit; newer clients
/// refuse that without buildx). Every `docker` on PATH is considered, or only `$CIP_DOCKER`.
pub(super) fn detect(env: NodeEnv) -> Result<Docker, NotUsable> {
    let not_usable = |reason: String| NotUsable {
        program: "docker",
        reason,
        hint: HINT,
    };
    let path = env.get("PATH");
    let candidates = match env.get(DOCKER_PROGRAM_ENV) {
        Some(p) => find_program(&p, path.as_deref()).into_iter().collect(),
        None => find_all_programs("docker", path.as_deref()),
    };
    let Some(first) = candidates.first() else {
        return Err(not_usable(match env.get(DOCKER_PROGRAM_ENV) {
            Some(p) => format!("{DOCKER_PROGRAM_ENV}={p} is not an executable program"),
            None => "not found on PATH".to_string(),
        }));
    };
    let (version, native) = server(first, &env).map_err(|reason| NotUsable {
        program: "docker",
        reason,
        hint: NO_DAEMON_HINT,
    })?;

    let mut rejected = Vec::new();
    for program in &candidates {
        let buildx = probe(program, &["buildx", "version"], &env, PROBE_TIMEOUT)
            .map(|o| o.status.success())
            .unwrap_or(false);
        let client = output_of(
            program,
            &["version", "--format", "{{.Client.Version}}"],
            &env,
        );
        let major = client
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok())
            .unwrap_or(0);
        if !buildx && major >= 23 {
            rejected.push(format!(
                "{} (client {client} without the buildx plugin)",
                program.display()
            ));
            continue;
        }
        // The embedded BuildKit runs RUN steps on the daemon's default network; a daemon started
        // with `--bridge=none` has none, and only `--network=host` works there.
        let host_network = !buildx
            && !probe(
                program,
                &["network", "inspect", "bridge"],
                &env,
                PROBE_TIMEOUT,
            )
            .map(|o| o.status.success())
            .unwrap_or(false);
        return Ok(Docker {
            program: program.clone(),
            version: version.clone(),
            docker_host: env.get("DOCKER_HOST"),
            env,
            native,
            buildx,
            host_network,
            supervisor: Supervisor::new(),
        });
    }
    Err(not_usable(format!(
        "no docker client here can build with BuildKit: {}; docker 23 and later need the buildx \
         plugin (`apt-get install -y docker-buildx`, or docker-buildx-plugin from Docker's \
         repository), or set {DOCKER_PROGRAM_ENV} to a client that has it",
        rejected.join(", ")
    )))
}

/// The daemon's version and platform, or why it does not answer.
fn server(program: &Path, env: &NodeEnv) -> Result<(String, Vec<Platform>), String> {
    let format = "{{.Server.Version}} {{.Server.Os}}/{{.Server.Arch}}";
    let out = probe(
        program,
        &["version", "--format", format],
        env,
        PROBE_TIMEOUT,
    )?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let reason = err
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("`docker version` failed")
            .to_string();
        return Err(format!("the daemon does not answer ({reason})"));
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (version, platform) = text.split_once(' ').unwrap_or((text.as_str(), ""));
    let native = platform
        .parse::<Platform>()
        .map(|p| vec![p])
        .unwrap_or_else(|_| vec![Platform::host()]);
    Ok((version.to_string(), native))
}

/// Trimmed stdout of a probe, empty when it fails to run.
fn output_of(program: &Path, args: &[&str], env: &NodeEnv) -> String {
    probe(program, args, env, PROBE_TIMEOUT)
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn build(b: &Docker, job: &BuildJob) -> Invocation {
    let base = b.invocation().envs_owned(job.registry.env());
    let mut inv = if b.buildx {
        base.args(["buildx", "build", "--load"])
    } else {
        base.env("DOCKER_BUILDKIT", "1").arg("build")
    };
    inv = inv
        .arg("--progress=plain")
        .arg(format!("--platform={}", job.platform));
    for (k, v) in &job.build_args {
        inv = inv.arg("--build-arg").arg(format!("{k}={v}"));
    }
    let chooses_network = job
        .extra_args
        .iter()
        .any(|a| a == "--network" || a.starts_with("--network="));
    if b.host_network && !chooses_network {
        inv = inv.arg("--network=host");
    }
    inv.arg("-f")
        .arg(dockerfile_for_buildkit(job))
        .arg("-t")
        .arg(&job.tag)
        .args(job.options.flags("--pull"))
        .args(&job.extra_args)
        .arg(&job.context_dir)
}

/// The Dockerfile BuildKit builds for `job`: its own, or its translation when it has `--from` /
/// `from=` references to `${REGISTRY}` images (BuildKit does not expand them). The translation is
/// written next to the log, and a line of the log tells which file is built and why. When it cannot
/// be written, the job's Dockerfile is built as it is (and BuildKit's error follows that line).
fn dockerfile_for_buildkit(job: &BuildJob) -> PathBuf {
    let original = job.dockerfile.clone();
    let Some((_, registry)) = job.build_args.iter().find(|(k, _)| k == "REGISTRY") else {
        return original;
    };
    // An unreadable Dockerfile is the builder's to report.
    let Ok(text) = fs::read_to_string(&job.dockerfile) else {
        return original;
    };
    let Some(t) = buildkit::translation(&text, registry) else {
        return original;
    };
    let path = translation_path(&job.log, &t.dockerfile);
    let declared = t
        .stages
        .iter()
        .map(|(name, image)| format!("FROM {image} AS {name}"))
        .collect::<Vec<_>>()
        .join(", ");
    let (note, dockerfile) = match write_translation(job, &path, &t.dockerfile) {
        Ok(()) => (
            format!(
                "cip: BuildKit does not expand variables in --from, so this builds {}: {} with \
                 `{declared}` declared before its first FROM and those stage names as the \
                 --from/from= values naming these images",
                path.display(),
                job.dockerfile.display()
            ),
            path,
        ),
        Err(e) => (
            format!(
                "cip: BuildKit does not expand variables in --from, but the translation of {} \
                 cannot be written ({e:#}): building it as it is",
                job.dockerfile.display()
            ),
            original,
        ),
    };
    // Best effort: the build itself reports a log that cannot be written.
    if let Some(parent) = job.log.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = crate::cip_dir::create_dir_all(parent);
    }
    if let Ok(mut log) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&job.log)
    {
        let _ = writeln!(log, "{note}");
    }
    dockerfile
}

/// `DIR/NAME.HASH.Dockerfile` for the log `DIR/NAME.log`, HASH from `content`.
fn translation_path(log: &Path, content: &str) -> PathBuf {
    let name = log
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".log").unwrap_or(&name);
    let hash = hex::encode(Sha256::digest(content.as_bytes()));
    log.with_file_name(format!("{stem}.{}.Dockerfile", &hash[..12]))
}

/// Writes the translated Dockerfile atomically (a reader never sees a partial file), with a copy of
/// the job's `Dockerfile.dockerignore` if there is one (BuildKit reads it next to the Dockerfile).
fn write_translation(job: &BuildJob, path: &Path, content: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    crate::cip_dir::create_dir_all(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |path: &Path, content: &[u8]| -> anyhow::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        tmp.write_all(content)
            .with_context(|| format!("cannot write {}", tmp.path().display()))?;
        // Readable like the logs next to it (a temporary file is created private).
        let _ = tmp
            .as_file()
            .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
        tmp.persist(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    };
    let mut ignore = job.dockerfile.clone().into_os_string();
    ignore.push(".dockerignore");
    let mut copy = path.to_path_buf().into_os_string();
    copy.push(".dockerignore");
    match fs::read(&ignore) {
        Ok(rules) => write(Path::new(&copy), &rules)?,
        // Not one left from a run when there was one.
        Err(_) => match fs::remove_file(&copy) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(anyhow::Error::new(e)
                    .context(format!("cannot remove {}", Path::new(&copy).display())))
            }
            _ => {}
        },
    }
    write(path, content.as_bytes())
}

/// `skopeo copy docker-daemon:TAG oci:DIR`, layers compressed as a registry push would have them.
fn export(b: &Docker, tag: &str, dir: &Path) -> anyhow::Result<Invocation> {
    let Some(skopeo) = find_program("skopeo", b.env.get("PATH").as_deref()) else {
        bail!(
            "exporting images from docker needs skopeo, which is not on PATH: install it with \
             `apt-get install -y skopeo` (Debian/Ubuntu) or `dnf install -y skopeo` (Fedora/RHEL)"
        );
    };
    let mut inv = Invocation::new(skopeo)
        .envs(b.env.overrides())
        .supervised_by(&b.supervisor)
        // Docker's manifest and config kept as the daemon has them: OCI's config has no
        // `Shell`, `Healthcheck`, `OnBuild` or `StopSignal`.
        .args(["copy", "--quiet", "--dest-compress", "--format=v2s2"]);
    if let Some(host) = &b.docker_host {
        // skopeo does not read DOCKER_HOST.
        inv = inv.arg(format!("--src-daemon-host={host}"));
    }
    let mut dest = std::ffi::OsString::from("oci:");
    dest.push(dir);
    Ok(inv
        .arg(format!("docker-daemon:{}", daemon_ref(tag)))
        .arg(dest))
}

/// `docker-daemon:` needs `NAME:TAG` (or a digest); a reference without a tag means `latest`.
fn daemon_ref(tag: &str) -> String {
    let last = tag.rsplit('/').next().unwrap_or(tag);
    if last.contains(':') || last.contains('@') {
        tag.to_string()
    } else {
        format!("{tag}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_refs_get_a_tag() {
        assert_eq!(
            daemon_ref("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(
            daemon_ref("localhost:5000/app:1.0"),
            "localhost:5000/app:1.0"
        );
        assert_eq!(daemon_ref("app@sha256:abc"), "app@sha256:abc");
    }

    fn job(dir: &Path, dockerfile: &str) -> BuildJob {
        let ctx = dir.join("ctx");
        fs::create_dir_all(&ctx).unwrap();
        fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        BuildJob {
            context_dir: ctx.clone(),
            dockerfile: ctx.join("Dockerfile"),
            platform: Platform::host(),
            build_args: vec![("REGISTRY".into(), "127.0.0.1:5000".into())],
            tag: "cip.local/app:1.0.0-linux-amd64".into(),
            extra_args: Vec::new(),
            options: Default::default(),
            log: dir.join("logs/app-1.0.0-linux-amd64.log"),
            registry: super::super::RegistryAccess::default(),
            events: Default::default(),
        }
    }

    #[test]
    fn copy_from_registry_builds_a_translation_next_to_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let text = "ARG REGISTRY\nFROM ${REGISTRY}/hello:1.0.0\nARG REGISTRY\n\
                    COPY --from=${REGISTRY}/tools:1.0.0 /t /t\n";
        let job = job(dir.path(), text);
        fs::write(dir.path().join("ctx/Dockerfile.dockerignore"), "*.md\n").unwrap();
        let used = dockerfile_for_buildkit(&job);
        assert_eq!(used.parent(), Some(dir.path().join("logs").as_path()));
        let name = used.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("app-1.0.0-linux-amd64.") && name.ends_with(".Dockerfile"),
            "{name}"
        );
        let expected = buildkit::translate(text, "127.0.0.1:5000").unwrap();
        assert_eq!(fs::read_to_string(&used).unwrap(), expected);
        let mut ignore = used.clone().into_os_string();
        ignore.push(".dockerignore");
        assert_eq!(fs::read_to_string(&ignore).unwrap(), "*.md\n");
        fs::remove_file(dir.path().join("ctx/Dockerfile.dockerignore")).unwrap();
        assert_eq!(dockerfile_for_buildkit(&job), used);
        assert!(!Path::new(&ignore).exists());
        fs::write(dir.path().join("ctx/Dockerfile.dockerignore"), "*.md\n").unwrap();
        fs::remove_file(&job.log).unwrap();
        assert_eq!(dockerfile_for_buildkit(&job), used);
        assert!(Path::new(&ignore).exists());
        let log = fs::read_to_string(&job.log).unwrap();
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.starts_with("cip: BuildKit does not expand"), "{log}");
        assert!(log.contains(&used.display().to_string()), "{log}");
        assert!(
            log.contains("FROM 127.0.0.1:5000/tools:1.0.0 AS cip-from-1"),
            "{log}"
        );
        // The same content lands in the same file; the command line names it.
        assert_eq!(dockerfile_for_buildkit(&job), used);
        let b = Docker {
            program: PathBuf::from("docker"),
            version: "20.10.24".into(),
            env: NodeEnv::new(),
            native: vec![Platform::host()],
            buildx: false,
            docker_host: None,
            host_network: false,
            supervisor: Supervisor::new(),
        };
        let command = build(&b, &job).to_string();
        assert!(
            command.contains(&format!("-f {}", used.display())),
            "{command}"
        );
        assert!(
            command.contains("--build-arg REGISTRY=127.0.0.1:5000"),
            "{command}"
        );
    }

    #[test]
    fn other_dockerfiles_are_built_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let job = job(
            dir.path(),
            "ARG REGISTRY\nFROM ${REGISTRY}/hello:1.0.0\nCOPY --from=0 / /\n",
        );
        assert_eq!(dockerfile_for_buildkit(&job), job.dockerfile);
        assert!(!dir.path().join("logs").exists());
        let mut missing = job.clone();
        missing.dockerfile = dir.path().join("nope/Dockerfile");
        assert_eq!(dockerfile_for_buildkit(&missing), missing.dockerfile);
    }
}
