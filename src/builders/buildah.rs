//! buildah and podman: the same engine (containers/buildah and containers/storage), the same flags.
//!
//! Verified with buildah 1.28.2 on Debian 12:
//! - `STORAGE_DRIVER` is only honoured when a `storage.conf` exists; cip passes it as `--storage-driver`.
//! - `BUILDAH_ISOLATION=chroot` is honoured (needed where the default OCI runtime fails on cgroups).
//! - `FROM ${REGISTRY}/parent:1.0.0` from a plain-HTTP registry needs `--tls-verify=false` on `bud`.
//! - With `--platform`, an image of another platform under the same name in the store is not
//!   reused: the right one is pulled, and the name moves to it. Two builds for different platforms
//!   that pull one parent into one store at once therefore fail ("locating pulled image ... image
//!   not known"): see [`Backend::platform_store`].
//! - `push TAG oci:DIR` writes an OCI layout whose `index.json` lists the one manifest (gzip layers).
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::engines::{Engine, Features, Heredocs, NodeKeys};
use super::process::{find_program, CancelHook, Invocation};
use super::service_cancel;
use super::{
    prepare_layout_dir, probe, run_build, run_exists, run_export, run_image_id, run_listing,
    run_on_image, run_remove, Backend, BuildJob, BuilderKind, NodeEnv, NotUsable, Op,
    RegistryAccess, StoreRoots, Supervisor, PROBE_TIMEOUT,
};
use super::{BUILDAH_GLOBAL_ARGS_ENV, PODMAN_GLOBAL_ARGS_ENV};
use crate::platform::Platform;

/// buildah: builds on this machine only, in the store its global options select.
pub static ENGINE: Engine = Engine {
    name: "buildah",
    auto: true,
    check_keys: |keys| {
        keys.refuse(
            &NodeKeys::NAMES,
            "a buildah node is this machine's buildah: it takes no address",
        )
    },
    reach: |keys| {
        if keys.host.is_some() || keys.url.is_some() || keys.connection.is_some() {
            return Err(
                "buildah builds on this machine only: for another machine use kind = \
                 \"podman\" with url or connection"
                    .into(),
            );
        }
        Ok(("local".into(), NodeEnv::new()))
    },
    detect: |env| detect(Program::Buildah, env).map(|b| Arc::new(b) as Arc<dyn Backend>),
    features: Features {
        heredocs: Heredocs::Since(1, 35),
    },
};

/// The two programs of the containers engine behind [`Buildah`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Program {
    Buildah,
    Podman,
}

impl Program {
    fn name(self) -> &'static str {
        match self {
            Program::Buildah => "buildah",
            Program::Podman => "podman",
        }
    }
}

/// buildah or podman on this machine, with the store its global options select.
#[derive(Debug, Clone)]
pub struct Buildah {
    /// Buildah or Podman.
    engine: Program,
    /// The program as found on PATH.
    program: PathBuf,
    version: String,
    /// Options before the subcommand.
    global_args: Vec<String>,
    env: NodeEnv,
    native: Vec<Platform>,
    /// The store's graph root and run root, from which private per-platform stores are derived
    /// (see [`Backend::platform_store`]).
    store: StoreRoots,
    /// Ends the processes of cancelled operations (shared by the per-platform copies).
    supervisor: Arc<Supervisor>,
    /// podman talking to a service (`--url`, `--connection`): its options that say where. The
    /// store is the service's, on its machine: no per-platform stores, and exports come back
    /// through `podman save`.
    remote: Option<String>,
}

pub(super) fn detect(engine: Program, env: NodeEnv) -> Result<Buildah, NotUsable> {
    let name = engine.name();
    let hint = match engine {
        Program::Podman => {
            "Install it with `apt-get install -y podman` (Debian/Ubuntu) or `dnf install -y podman` \
             (Fedora/RHEL)"
        }
        _ => {
            "Install it with `apt-get install -y buildah` (Debian/Ubuntu) or `dnf install -y buildah` \
             (Fedora/RHEL)"
        }
    };
    let not_usable = |reason: String| NotUsable {
        program: name,
        reason,
        hint,
    };
    let program = find_program(name, env.get("PATH").as_deref())
        .ok_or_else(|| not_usable("not found on PATH".to_string()))?;
    let out = probe(&program, &["--version"], &env, PROBE_TIMEOUT).map_err(not_usable)?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(not_usable(format!(
            "`{name} --version` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let version = parse_version(&text).unwrap_or_else(|| text.trim().to_string());
    let global_args = global_args(engine, &env);
    let remote = remote_of(engine, &global_args);
    let store = store_roots(engine, &program, &global_args, &env).map_err(not_usable)?;
    let native = match &remote {
        Some(_) => vec![remote_platform(&program, &global_args, &env).map_err(not_usable)?],
        None => vec![super::local_platform()],
    };
    Ok(Buildah {
        engine,
        program,
        version,
        global_args,
        env,
        native,
        store,
        supervisor: Supervisor::new(),
        remote,
    })
}

/// The options of podman's global arguments that point it at a service, if any.
fn remote_of(engine: Program, global_args: &[String]) -> Option<String> {
    if engine != Program::Podman {
        return None;
    }
    let is_remote = |a: &str| {
        ["--url", "--connection", "--remote"]
            .iter()
            .any(|f| a == *f || a.starts_with(&format!("{f}=")))
    };
    global_args
        .iter()
        .any(|a| is_remote(a))
        .then(|| global_args.join(" "))
}

/// The platform of the machine a podman service runs on, as it reports it.
fn remote_platform(
    program: &Path,
    global_args: &[String],
    env: &NodeEnv,
) -> Result<Platform, String> {
    let mut args: Vec<&str> = global_args.iter().map(String::as_str).collect();
    args.extend(["info", "--format", "{{.Host.OS}}/{{.Host.Arch}}"]);
    let out = probe(program, &args, env, PROBE_TIMEOUT)?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        return Err(format!(
            "the podman service does not answer ({})",
            super::process::last_lines(&String::from_utf8_lossy(&out.stderr), 1).trim()
        ));
    }
    text.parse()
        .map_err(|e| format!("`podman info` reported the platform {text:?}: {e}"))
}

impl Buildah {
    /// A call of the program: its global options and node environment applied.
    fn invocation(&self) -> Invocation {
        Invocation::new(&self.program)
            .args(&self.global_args)
            .envs(self.env.overrides())
            .supervised_by(&self.supervisor)
    }
}

impl Backend for Buildah {
    fn kind(&self) -> BuilderKind {
        match self.engine {
            Program::Podman => BuilderKind::of(&super::podman::ENGINE),
            Program::Buildah => BuilderKind::of(&ENGINE),
        }
    }

    fn version(&self) -> &str {
        &self.version
    }

    fn describe(&self) -> String {
        let mut notes = Vec::new();
        if !self.global_args.is_empty() {
            notes.push(self.global_args.join(" "));
        }
        if let Some(iso) = self.env.get("BUILDAH_ISOLATION") {
            notes.push(format!("isolation {iso}"));
        }
        super::describe(self.engine.name(), &self.version, &notes)
    }

    fn native_platforms(&self) -> Vec<Platform> {
        self.native.clone()
    }

    /// buildah and podman keep one image per name in a store: two builds for different platforms
    /// that pull the same parent (`FROM reg/base:1.0.0`) in one store move that name between the
    /// platforms' images under each other's feet ("image not known"). So every pushed platform but
    /// the node's native one builds in a store of its own, a sibling of the configured one.
    fn platform_store(&self, platform: &Platform) -> Option<StoreRoots> {
        (self.remote.is_none() && !self.native.contains(platform))
            .then(|| self.store.for_platform(platform))
    }

    fn with_store(&self, store: &StoreRoots) -> Option<Arc<dyn Backend>> {
        let mut b = self.clone();
        // The last `--root`/`--runroot` wins, so these override the user's global options.
        b.global_args.extend([
            "--root".to_string(),
            store.graph_root.display().to_string(),
            "--runroot".to_string(),
            store.run_root.display().to_string(),
        ]);
        Some(Arc::new(b))
    }

    fn build<'a>(&'a self, job: &'a BuildJob) -> Op<'a, ()> {
        Box::pin(run_build(build(self, job), job))
    }

    fn export_oci_layout<'a>(&'a self, tag: &'a str, dir: &'a Path) -> Op<'a, ()> {
        Box::pin(async move {
            prepare_layout_dir(dir)?;
            if self.remote.is_some() {
                let archive = super::archive_path(dir);
                let save = self
                    .invocation()
                    .args(["save", "--format", "docker-archive", "-o"])
                    .arg(&archive)
                    .arg(tag);
                let source = "docker-archive";
                return super::run_export_archive(save, &self.env, source, &archive, tag, dir)
                    .await;
            }
            run_export(export(self, tag, dir), tag, dir).await
        })
    }

    /// `buildah push` / `podman push TAG docker://DEST` (a podman service pushes from its
    /// machine). No local tag is made.
    fn push_to<'a>(
        &'a self,
        tag: &'a str,
        destination: &'a str,
        access: &'a RegistryAccess,
        log: &'a Path,
    ) -> Op<'a, ()> {
        Box::pin(super::run_push(
            push_to(self, tag, destination, access),
            destination,
            log,
        ))
    }

    fn local_tags(&self) -> Op<'_, HashSet<String>> {
        Box::pin(run_listing(list_tags(self)))
    }

    fn image_exists<'a>(&'a self, tag: &'a str) -> Op<'a, bool> {
        Box::pin(async move {
            if self.engine == Program::Podman {
                // `podman image exists`: 1 = absent, with nothing on stderr.
                let out = image_exists(self, tag).run_captured().await?;
                if out.status.code() == Some(1) && out.stderr.trim().is_empty() {
                    return Ok(false);
                }
            }
            run_exists(image_exists(self, tag)).await
        })
    }

    fn image_id<'a>(&'a self, tag: &'a str) -> Op<'a, Option<String>> {
        let inv = match self.engine {
            Program::Podman => self
                .invocation()
                .args(["image", "inspect", "--format", "{{.Id}}", tag]),
            _ => image_exists(self, tag),
        };
        Box::pin(run_image_id(inv))
    }

    fn remove_image<'a>(&'a self, tag: &'a str) -> Op<'a, ()> {
        Box::pin(run_remove(self.invocation().args(["rmi", tag])))
    }

    fn tag_image<'a>(&'a self, src: &'a str, dst: &'a str) -> Op<'a, ()> {
        let inv = self.invocation().args(["tag", src, dst]);
        Box::pin(run_on_image(inv, src))
    }

    fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    fn address(&self) -> Option<String> {
        self.remote.clone()
    }

    fn cpus(&self) -> Op<'_, Option<usize>> {
        Box::pin(async move {
            if self.remote.is_none() {
                return Ok(std::thread::available_parallelism().ok().map(|n| n.get()));
            }
            let inv = self
                .invocation()
                .args(["info", "--format", "{{.Host.CPUs}}"]);
            Ok(inv.run_ok().await?.stdout.trim().parse().ok())
        })
    }

    fn answers(&self) -> Op<'_, bool> {
        Box::pin(async move {
            if self.remote.is_none() {
                return Ok(true);
            }
            let inv = self
                .invocation()
                .args(["info", "--format", "{{.Host.Arch}}"]);
            Ok(inv.run_captured().await.is_ok_and(|o| o.success()))
        })
    }

    fn pull<'a>(
        &'a self,
        reference: &'a str,
        platform: Option<&'a Platform>,
        access: &'a RegistryAccess,
    ) -> Op<'a, ()> {
        let inv = pull(self, reference, platform, access);
        Box::pin(super::run_pull(inv, reference))
    }
}

/// The store the global options select, as `buildah info` / `podman info` report it.
fn store_roots(
    engine: Program,
    program: &Path,
    global_args: &[String],
    env: &NodeEnv,
) -> Result<StoreRoots, String> {
    let format = match engine {
        Program::Podman => "{{.Store.GraphRoot}}\n{{.Store.RunRoot}}",
        _ => "{{.store.GraphRoot}}\n{{.store.RunRoot}}",
    };
    let mut args: Vec<&str> = global_args.iter().map(String::as_str).collect();
    args.extend(["info", "--format", format]);
    let out = probe(program, &args, env, PROBE_TIMEOUT)?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "`{} {}` failed: {}",
            engine.name(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_store_roots(&text).ok_or_else(|| {
        format!(
            "`{} info` did not name the store's roots: {:?}",
            engine.name(),
            text.trim()
        )
    })
}

fn parse_store_roots(text: &str) -> Option<StoreRoots> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let graph_root = PathBuf::from(lines.next()?);
    let run_root = PathBuf::from(lines.next()?);
    (graph_root.is_absolute() && run_root.is_absolute()).then_some(StoreRoots {
        graph_root,
        run_root,
    })
}

/// `buildah version 1.28.2 (image-spec ..)` / `podman version 4.3.1` -> `1.28.2`.
fn parse_version(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let i = words.iter().position(|w| *w == "version")?;
    words
        .get(i + 1)
        .map(|v| v.trim_end_matches(',').to_string())
}

/// `$CIP_BUILDAH_GLOBAL_ARGS` (or `$CIP_PODMAN_GLOBAL_ARGS`), and `--storage-driver $STORAGE_DRIVER`
/// unless those already choose a driver.
fn global_args(engine: Program, env: &NodeEnv) -> Vec<String> {
    let var = match engine {
        Program::Podman => PODMAN_GLOBAL_ARGS_ENV,
        _ => BUILDAH_GLOBAL_ARGS_ENV,
    };
    // A node's own options are arguments as they are; the variable is a list of options.
    let mut args: Vec<String> = match env.global_args() {
        Some(node) => node.to_vec(),
        None => env
            .get(var)
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
    };
    let has_driver = args
        .iter()
        .any(|a| a == "--storage-driver" || a.starts_with("--storage-driver="));
    // A podman service has its own store: the client takes no storage options.
    let remote = remote_of(engine, &args).is_some();
    if let (false, false, Some(driver)) = (remote, has_driver, env.get("STORAGE_DRIVER")) {
        args.insert(0, format!("--storage-driver={}", driver.trim()));
    }
    args
}

fn registry_flags(access: &RegistryAccess) -> Vec<String> {
    let mut args = Vec::new();
    if access.insecure {
        args.push("--tls-verify=false".to_string());
    }
    if let Some(dir) = &access.cert_dir {
        args.push(format!("--cert-dir={}", dir.display()));
    }
    args
}

/// `buildah bud` / `podman build`: platform, build args, Dockerfile, tag, registry access, the
/// user's extra arguments, then the context directory.
fn build(b: &Buildah, job: &BuildJob) -> Invocation {
    let sub = match b.engine {
        Program::Podman => "build",
        _ => "bud",
    };
    let mut inv = b
        .invocation()
        .envs_owned(job.registry.env())
        .arg(sub)
        .arg(format!("--platform={}", job.platform));
    for (k, v) in &job.build_args {
        inv = inv.arg("--build-arg").arg(format!("{k}={v}"));
    }
    // The service does not see this process's BUILDAH_ISOLATION: say it on the command line.
    if let (Some(_), Some(isolation)) = (&b.remote, b.env.get("BUILDAH_ISOLATION")) {
        inv = inv.arg(format!("--isolation={}", isolation.trim()));
    }
    // A build inside a podman service outlives its client: mark its RUN steps so that a
    // cancellation can end them there (see `service_cancel`).
    // sweep: a service over ssh too, reached with podman's own key (CONTAINER_SSHKEY).
    if let Some(service) = b
        .remote
        .as_ref()
        .and_then(|_| service_cancel::service(&b.global_args, b.env.get("CONTAINER_SSHKEY")))
    {
        let marker = service_cancel::marker(&job.tag);
        inv = inv.arg(format!("--add-host={marker}:127.0.0.1"));
        inv = inv.on_cancel(CancelHook(Arc::new(move || {
            service_cancel::cancel_on(&service, &marker);
        })));
    }
    // Docker's image format: OCI's has no SHELL, HEALTHCHECK, ONBUILD or STOPSIGNAL, which buildah
    // would drop (and children built FROM the image would run their RUN steps without them).
    inv.arg("--format=docker")
        .arg("-f")
        .arg(&job.dockerfile)
        .arg("-t")
        .arg(&job.tag)
        .args(registry_flags(&job.registry))
        .args(job.options.flags("--pull-always"))
        .args(&job.extra_args)
        .arg(&job.context_dir)
}

fn export(b: &Buildah, tag: &str, dir: &Path) -> Invocation {
    let mut dest = std::ffi::OsString::from("oci:");
    dest.push(dir);
    // An OCI layout holding a Docker manifest and config: converting to OCI would drop the fields
    // only Docker's config has (`Shell`, `Healthcheck`, `OnBuild`, `StopSignal`).
    b.invocation()
        .args(["push", "--quiet", "--format=v2s2", tag])
        .arg(dest)
}

/// `push TAG docker://DEST` with the run's registry access. A service reads no certificate
/// directory of this machine: a remote node trusts what its own machine trusts.
fn push_to(b: &Buildah, tag: &str, destination: &str, access: &RegistryAccess) -> Invocation {
    let mut access = access.clone();
    if b.remote.is_some() {
        access.cert_dir = None;
    }
    b.invocation()
        .envs_owned(access.env())
        .args(["push", "--quiet", "--format=v2s2"])
        .args(registry_flags(&access))
        .arg(tag)
        .arg(format!("docker://{destination}"))
}

fn image_exists(b: &Buildah, tag: &str) -> Invocation {
    match b.engine {
        Program::Podman => b.invocation().args(["image", "exists", tag]),
        _ => b.invocation().args([
            "inspect",
            "--type",
            "image",
            "--format",
            "{{.FromImageID}}",
            tag,
        ]),
    }
}

/// Every image name and tag of the store, one `name:tag` per line.
fn list_tags(b: &Buildah) -> Invocation {
    let format = match b.engine {
        Program::Podman => "{{.Repository}}:{{.Tag}}",
        _ => "{{.Name}}:{{.Tag}}",
    };
    b.invocation().args(["images", "--format", format])
}

fn pull(
    b: &Buildah,
    reference: &str,
    platform: Option<&Platform>,
    access: &RegistryAccess,
) -> Invocation {
    let mut inv = b
        .invocation()
        .envs_owned(access.env())
        .args(["pull", "--quiet"]);
    if let Some(p) = platform {
        inv = inv.arg(format!("--platform={p}"));
    }
    inv.args(registry_flags(access)).arg(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_version(
                "buildah version 1.28.2 (image-spec 1.1.0-rc2, runtime-spec 1.0.2-dev)\n"
            )
            .as_deref(),
            Some("1.28.2")
        );
        assert_eq!(
            parse_version("podman version 4.3.1\n").as_deref(),
            Some("4.3.1")
        );
    }

    #[test]
    fn store_roots_are_two_absolute_paths() {
        assert_eq!(
            parse_store_roots("/var/lib/containers/storage\n/run/containers/storage\n"),
            Some(StoreRoots {
                graph_root: "/var/lib/containers/storage".into(),
                run_root: "/run/containers/storage".into(),
            })
        );
        assert_eq!(parse_store_roots("/var/lib/containers/storage\n"), None);
        assert_eq!(parse_store_roots("storage\nrun\n"), None);
    }

    #[test]
    fn podman_pointed_at_a_service_is_remote_and_takes_no_storage_options() {
        let env = NodeEnv::new()
            .set("STORAGE_DRIVER", "vfs")
            .set(PODMAN_GLOBAL_ARGS_ENV, "--url unix:///run/p.sock");
        let args = global_args(Program::Podman, &env);
        assert_eq!(args, ["--url", "unix:///run/p.sock"]);
        assert_eq!(
            remote_of(Program::Podman, &args).as_deref(),
            Some("--url unix:///run/p.sock")
        );
        assert!(remote_of(Program::Podman, &["--connection=far".to_string()]).is_some());
        assert_eq!(remote_of(Program::Podman, &["--root".to_string()]), None);
        assert_eq!(remote_of(Program::Buildah, &["--url".to_string()]), None);
    }

    #[test]
    fn a_remote_podman_pushes_with_the_runs_access_but_no_local_cert_dir() {
        let access = RegistryAccess {
            insecure: true,
            cert_dir: Some("/tmp/certs".into()),
            auth_dir: None,
        };
        let mut b = Buildah {
            engine: Program::Podman,
            program: "podman".into(),
            version: "4.3.1".into(),
            global_args: vec!["--url".into(), "unix:///run/p.sock".into()],
            env: NodeEnv::new(),
            native: vec![Platform::host()],
            store: StoreRoots {
                graph_root: "/s".into(),
                run_root: "/r".into(),
            },
            supervisor: Supervisor::new(),
            remote: Some("--url unix:///run/p.sock".into()),
        };
        let dest = "reg.example/cip-stage/linux-amd64/app:1.0.0-RUN";
        let remote = push_to(&b, "cip.local/t", dest, &access).to_string();
        assert!(
            remote.contains(
                "push --quiet --format=v2s2 --tls-verify=false cip.local/t docker://reg.example/"
            ),
            "{remote}"
        );
        assert!(!remote.contains("--cert-dir"), "{remote}");
        b.remote = None;
        let local = push_to(&b, "cip.local/t", dest, &access).to_string();
        assert!(local.contains("--cert-dir=/tmp/certs"), "{local}");
    }

    #[test]
    fn a_nodes_url_is_one_argument() {
        let env = NodeEnv::new()
            .set(PODMAN_GLOBAL_ARGS_ENV, "--root /elsewhere")
            .with_global_args(vec!["--url=unix:///a b.sock --hooks-dir=/x".into()]);
        let args = global_args(Program::Podman, &env);
        assert_eq!(args, ["--url=unix:///a b.sock --hooks-dir=/x"]);
        assert!(remote_of(Program::Podman, &args).is_some());
    }

    #[test]
    fn storage_driver_becomes_a_flag_unless_given() {
        let env = NodeEnv::new()
            .set("STORAGE_DRIVER", "vfs")
            .set(BUILDAH_GLOBAL_ARGS_ENV, "--root /a  --runroot /b");
        assert_eq!(
            global_args(Program::Buildah, &env),
            ["--storage-driver=vfs", "--root", "/a", "--runroot", "/b"]
        );
        let env = env.set(BUILDAH_GLOBAL_ARGS_ENV, "--storage-driver overlay");
        assert_eq!(
            global_args(Program::Buildah, &env),
            ["--storage-driver", "overlay"]
        );
    }
}
