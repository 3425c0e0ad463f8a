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
use std::path::Path;

use anyhow::bail;

use super::process::{find_all_programs, find_program, Invocation};
use super::{probe, BuildJob, Builder, Engine, NodeEnv, NotUsable, PROBE_TIMEOUT};
use crate::platform::Platform;

const HINT: &str =
    "Install docker (`apt-get install -y docker.io` on Debian/Ubuntu) and start its daemon \
                    (`systemctl start docker`), or point DOCKER_HOST at a running one";

/// Environment variable naming the docker client to use (default: found on PATH, see [`detect`]).
pub const DOCKER_PROGRAM_ENV: &str = "CIP_DOCKER";

/// The first docker client that can build with BuildKit: one with the buildx plugin, or one older
/// than 23 (whose `DOCKER_BUILDKIT=1 docker build` uses the daemon's embedded BuildKit; newer clients
/// refuse that without buildx). Every `docker` on PATH is considered, or only `$CIP_DOCKER`.
pub(super) fn detect(env: NodeEnv) -> Result<Builder, NotUsable> {
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
    let (version, native) = server(first, &env).map_err(&not_usable)?;

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
        return Ok(Builder {
            engine: Engine::Docker,
            program: program.clone(),
            version: version.clone(),
            global_args: Vec::new(),
            docker_host: env.get("DOCKER_HOST"),
            env,
            native,
            buildx,
            host_network,
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

pub(super) fn build(b: &Builder, job: &BuildJob) -> Invocation {
    let mut inv = if b.buildx {
        b.invocation().args(["buildx", "build", "--load"])
    } else {
        b.invocation().env("DOCKER_BUILDKIT", "1").arg("build")
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
        .arg(&job.dockerfile)
        .arg("-t")
        .arg(&job.tag)
        .args(&job.extra_args)
        .arg(&job.context_dir)
}

/// `skopeo copy docker-daemon:TAG oci:DIR`, layers compressed as a registry push would have them.
pub(super) fn export(b: &Builder, tag: &str, dir: &Path) -> anyhow::Result<Invocation> {
    let Some(skopeo) = find_program("skopeo", b.env.get("PATH").as_deref()) else {
        bail!(
            "exporting images from docker needs skopeo, which is not on PATH: install it with \
             `apt-get install -y skopeo` (Debian/Ubuntu) or `dnf install -y skopeo` (Fedora/RHEL)"
        );
    };
    let mut inv = Invocation::new(skopeo).envs(b.env.overrides()).args([
        "copy",
        "--quiet",
        "--dest-compress",
    ]);
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

pub(super) fn image_exists(b: &Builder, tag: &str) -> Invocation {
    b.invocation()
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
}

pub(super) fn remove(b: &Builder, tag: &str) -> Invocation {
    b.invocation().args(["image", "rm", tag])
}

pub(super) fn tag(b: &Builder, src: &str, dst: &str) -> Invocation {
    b.invocation().args(["tag", src, dst])
}

pub(super) fn pull(b: &Builder, reference: &str, platform: Option<&Platform>) -> Invocation {
    let mut inv = b.invocation().args(["pull", "--quiet"]);
    if let Some(p) = platform {
        inv = inv.arg(format!("--platform={p}"));
    }
    inv.arg(reference)
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
}
