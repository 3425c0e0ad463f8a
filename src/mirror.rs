//! Mirroring, without a Docker daemon in the middle: [`upload_all`] copies every context's current
//! version registry to registry (`upload-all-to-local-registry`); [`pull_latest`] pulls each one
//! into the builder's local store and tags it latest (`pull-latest-from-*-registry`). Each prints
//! a table of what it did and returns the exit code.
use std::sync::Arc;

use futures_util::StreamExt;

use crate::build::{Backend, BuilderKind, RegistryAccess};
use crate::cli::MirrorArgs;
use crate::interrupt::{self, Signal};
use crate::load::Loaded;
use crate::registry::copy::{copy_image, Copied, MountIndex};
use crate::registry::Registry;
use crate::session::{runtime, Session};

/// Images copied at once.
const IMAGE_CONCURRENCY: usize = 4;

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Copies every context's current version from `remote` to `local`. Both addresses are checked
/// before either is connected to (and named in output).
pub fn upload_all(
    loaded: &Loaded,
    remote: &str,
    local: &str,
    m: &MirrorArgs,
) -> anyhow::Result<i32> {
    let rt = runtime()?;
    let src = rt.block_on(Session::open(remote, &m.connect))?.registry;
    let dst = rt.block_on(Session::open(local, &m.connect))?.registry;
    let mounts = Arc::new(MountIndex::default());
    let images: Vec<(String, String)> = loaded
        .project
        .contexts
        .iter()
        .map(|c| (c.name.clone(), c.version.to_string()))
        .collect();
    let jobs = images.into_iter().map(|(name, version)| {
        let (src, dst, mounts) = (src.clone(), dst.clone(), mounts.clone());
        async move {
            let r = copy_image(&src, &dst, &name, &version, &["latest"], &mounts).await;
            (name, version, r)
        }
    });
    let copies = futures_util::stream::iter(jobs)
        .buffer_unordered(IMAGE_CONCURRENCY)
        .collect::<Vec<_>>();
    let mut results = match rt.block_on(until_stopped(copies)) {
        Ok(results) => results,
        Err(signal) => {
            // A tag moves only after its manifest's blobs are all there: nothing was half-copied.
            eprintln!(
                "{}: stopped; the copies under way were abandoned before any of their tags moved",
                signal.name()
            );
            return Ok(signal.exit_code());
        }
    };
    results.sort_by(|a, b| a.0.cmp(&b.0));

    let mut rows = vec![["IMAGE".to_string(), "VERSION".into(), "RESULT".into()]];
    let (mut missing, mut failed) = (0, 0);
    for (name, version, r) in &results {
        let what = match r {
            Ok(Copied::AlreadyThere) => "already there".to_string(),
            Ok(Copied::MissingOnSource) => {
                missing += 1;
                format!("missing on {remote}")
            }
            Ok(Copied::Copied(s)) => format!(
                "copied: {} blob(s), {}; {} skipped, {} mounted",
                s.blobs_copied,
                mib(s.bytes_copied),
                s.blobs_skipped,
                s.blobs_mounted
            ),
            Err(e) => {
                failed += 1;
                format!("FAILED: {e:#}")
            }
        };
        rows.push([name.clone(), version.clone(), what]);
    }
    print!("{}", crate::output::table(&rows));
    finish(missing, failed, m.strict, remote)
}

fn finish(missing: usize, failed: usize, strict: bool, registry: &str) -> anyhow::Result<i32> {
    if missing > 0 {
        eprintln!("{missing} image version(s) missing on {registry}");
    }
    if failed > 0 || (strict && missing > 0) {
        return Ok(1);
    }
    Ok(0)
}

/// Pulls each context's current version from `registry` into the store of `builder`, tagged
/// latest.
pub fn pull_latest(
    loaded: &Loaded,
    registry: &str,
    builder: BuilderKind,
    m: &MirrorArgs,
) -> anyhow::Result<i32> {
    let rt = runtime()?;
    let session = rt.block_on(Session::open_for_builds(registry, &m.connect))?;
    let reg = session.registry.clone();
    let builder = crate::build::detect(builder)?;
    eprintln!("pulling into the local store of {}", builder.describe());
    let access = session.access();
    let mut rows = vec![["IMAGE".to_string(), "VERSION".into(), "RESULT".into()]];
    let (mut missing, mut failed) = (0, 0);
    let pulls = async {
        // One pull at a time: two pulls of the same image under different names into one
        // containers store race for its name list, and one of the names is lost.
        for ctx in &loaded.project.contexts {
            let version = ctx.version.to_string();
            let what = match pull_one(&reg, builder.as_ref(), &access, &ctx.name, &version).await {
                Ok(true) => format!("pulled, tagged {}/{}:latest", reg.address(), ctx.name),
                Ok(false) => {
                    missing += 1;
                    format!("missing on {registry}")
                }
                Err(e) => {
                    failed += 1;
                    format!("FAILED: {e:#}")
                }
            };
            rows.push([ctx.name.clone(), version, what]);
        }
    };
    let stopped = rt.block_on(until_stopped(pulls)).err();
    if stopped.is_some() {
        // The pull under way was cancelled: let its builder process end before cip does.
        builder.wait_cancelled(std::time::Duration::from_secs(10));
    }
    print!("{}", crate::output::table(&rows));
    match stopped {
        Some(signal) => {
            eprintln!(
                "{}: stopped after {} of {} image(s)",
                signal.name(),
                rows.len() - 1,
                loaded.project.contexts.len()
            );
            Ok(signal.exit_code())
        }
        None => finish(missing, failed, m.strict, registry),
    }
}

/// Pulls `HOST[/PATH]/name:version` for this machine's platform into the builder's store and tags
/// it latest; false if the registry does not have it.
async fn pull_one(
    reg: &Registry,
    builder: &dyn Backend,
    access: &RegistryAccess,
    name: &str,
    version: &str,
) -> anyhow::Result<bool> {
    if reg.published(name, version).await?.is_none() {
        return Ok(false);
    }
    let registry = reg.address();
    let reference = format!("{registry}/{name}:{version}");
    // The store receives the platform its node runs.
    let native = builder.native_platforms();
    builder.pull(&reference, native.first(), access).await?;
    builder
        .tag_image(&reference, &format!("{registry}/{name}:latest"))
        .await?;
    Ok(true)
}

/// Runs `work` unless SIGINT or SIGTERM comes first; then `work` is dropped (cancelling what it
/// started) and the signal returned.
async fn until_stopped<T>(work: impl std::future::Future<Output = T>) -> Result<T, Signal> {
    tokio::select! {
        out = work => Ok(out),
        signal = interrupt::requested() => Err(signal),
    }
}
