//! Mirroring, without a Docker daemon in the middle: [`upload_all`] copies every context's current
//! version registry to registry (`upload-all-to-local-registry`); [`pull_latest`] pulls each one
//! into the builder's local store and tags it latest (`pull-latest-from-*-registry`). Each reports
//! what it did per image ([`report`]: a table, or JSON on stdout with `--json`) and returns the
//! exit code.
pub mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::builders::{Backend, BuilderKind, RegistryAccess};
use crate::interrupt::{self, Signal};
use crate::load::Loaded;
use crate::options::MirrorOptions;
use crate::registry::copy::{copy_image, Copied, MountIndex};
use crate::registry::Registry;
use crate::session::{runtime, Session};
use report::{Outcome, Record, Report};

/// Images copied at once.
const IMAGE_CONCURRENCY: usize = 4;

/// Copies every context's current version from `remote` to `local`. Both addresses are checked
/// before either is connected to (and named in output).
pub fn upload_all(
    loaded: &Loaded,
    remote: &str,
    local: &str,
    m: &MirrorOptions,
) -> anyhow::Result<i32> {
    let started = Instant::now();
    let rt = runtime()?;
    let events = m.connect.events.clone();
    let src = rt
        .block_on(Session::open(remote, &m.connect, &events))?
        .registry;
    let dst = rt
        .block_on(Session::open(local, &m.connect, &events))?
        .registry;
    let mounts = Arc::new(MountIndex::default());
    let jobs = versions(loaded).into_iter().map(|(name, version)| {
        let (src, dst, mounts) = (src.clone(), dst.clone(), mounts.clone());
        async move {
            let began = Instant::now();
            let r = copy_image(&src, &dst, &name, &version, &["latest"], &mounts).await;
            copy_record(&name, &version, r, began.elapsed())
        }
    });
    let mut done = Vec::new();
    let copies = futures_util::stream::iter(jobs)
        .buffer_unordered(IMAGE_CONCURRENCY)
        .for_each(|record| {
            done.push(record);
            std::future::ready(())
        });
    let stopped = rt.block_on(until_stopped(copies)).err();
    let report = Report {
        command: "upload-all-to-local-registry",
        source: remote,
        target: dst.address().to_string(),
        records: in_project_order(loaded, done),
        duration: started.elapsed(),
    };
    if let Some(signal) = stopped {
        // A tag moves only after its manifest's blobs are all there: nothing was half-copied.
        eprintln!(
            "{}: stopped; the copies under way were abandoned before any of their tags moved",
            signal.name()
        );
    }
    finish(&report, stopped, m)
}

/// The record of one copy.
fn copy_record(name: &str, version: &str, r: anyhow::Result<Copied>, took: Duration) -> Record {
    let (outcome, source, stats) = match r {
        Ok(Copied::AlreadyThere(source)) => (Outcome::UpToDate, Some(source), None),
        Ok(Copied::Copied(source, stats)) => (Outcome::Copied, Some(source), Some(stats)),
        Ok(Copied::MissingOnSource) => (Outcome::MissingOnSource, None, None),
        Err(e) => {
            let mut record = Record::new(name, version, Outcome::Failed, took);
            record.error = Some(format!("{e:#}"));
            return record;
        }
    };
    let mut record = Record::new(name, version, outcome, took);
    if let Some(source) = source {
        record.digest = Some(source.digest);
        record.platforms = source.platforms;
        // Found done: nothing moved.
        record.stats = Some(stats.unwrap_or_default());
    }
    record
}

/// Each context's name and current version, in the project's order.
fn versions(loaded: &Loaded) -> Vec<(String, String)> {
    loaded
        .project
        .contexts
        .iter()
        .map(|c| (c.name.clone(), c.version.to_string()))
        .collect()
}

/// `done` in the project's order, with a `cancelled` record for each version not in it.
fn in_project_order(loaded: &Loaded, mut done: Vec<Record>) -> Vec<Record> {
    versions(loaded)
        .into_iter()
        .map(
            |(name, version)| match done.iter().position(|r| r.name == name) {
                Some(i) => done.swap_remove(i),
                None => Record::new(&name, &version, Outcome::Cancelled, Duration::ZERO),
            },
        )
        .collect()
}

/// Prints the report (JSON on stdout with `--json`, the table on stderr then; the table on stdout
/// otherwise) and says what is missing; the exit code.
fn finish(report: &Report, stopped: Option<Signal>, m: &MirrorOptions) -> anyhow::Result<i32> {
    let (missing, failed) = (
        report.count(Outcome::MissingOnSource),
        report.count(Outcome::Failed),
    );
    let code = match stopped {
        Some(signal) => signal.exit_code(),
        None if failed > 0 || (m.strict && missing > 0) => 1,
        None => 0,
    };
    if m.json {
        eprint!("{}", report.table());
        println!("{}", serde_json::to_string_pretty(&report.to_json(code))?);
    } else {
        print!("{}", report.table());
    }
    if missing > 0 {
        eprintln!("{missing} image version(s) missing on {}", report.source);
    }
    Ok(code)
}

/// Pulls each context's current version from `registry` into the store of `builder`, tagged
/// latest.
pub fn pull_latest(
    loaded: &Loaded,
    registry: &str,
    builder: BuilderKind,
    m: &MirrorOptions,
    command: &str,
) -> anyhow::Result<i32> {
    let started = Instant::now();
    let rt = runtime()?;
    let events = m.connect.events.clone();
    let session = rt.block_on(Session::open_for_builds(registry, &m.connect, &events))?;
    let reg = session.registry.clone();
    let builder = crate::builders::detect_with(builder, m.builder_env.clone())?;
    eprintln!("pulling into the local store of {}", builder.describe());
    let access = session.access();
    let mut done = Vec::new();
    let pulls = async {
        // One pull at a time: two pulls of the same image under different names into one
        // containers store race for its name list, and one of the names is lost.
        for ctx in &loaded.project.contexts {
            let version = ctx.version.to_string();
            let began = Instant::now();
            let r = pull_one(&reg, builder.as_ref(), &access, &ctx.name, &version).await;
            done.push(pull_record(&ctx.name, &version, r, began.elapsed()));
        }
    };
    let stopped = rt.block_on(until_stopped(pulls)).err();
    if stopped.is_some() {
        // The pull under way was cancelled: let its builder process end before cip does.
        builder.wait_cancelled(Duration::from_secs(10));
    }
    let report = Report {
        command,
        source: registry,
        target: builder.describe(),
        records: in_project_order(loaded, done),
        duration: started.elapsed(),
    };
    if let Some(signal) = stopped {
        eprintln!(
            "{}: stopped after {} of {} image(s)",
            signal.name(),
            report.records.len() - report.count(Outcome::Cancelled),
            report.records.len()
        );
    }
    finish(&report, stopped, m)
}

/// What one pull brought into the store.
struct Pulled {
    digest: String,
    platform: Option<crate::platform::Platform>,
    tagged: String,
}

fn pull_record(
    name: &str,
    version: &str,
    r: anyhow::Result<Option<Pulled>>,
    took: Duration,
) -> Record {
    match r {
        Ok(Some(p)) => {
            let mut record = Record::new(name, version, Outcome::Pulled, took);
            record.digest = Some(p.digest);
            record.platforms = p.platform.into_iter().collect();
            record.tagged = Some(p.tagged);
            record
        }
        Ok(None) => Record::new(name, version, Outcome::MissingOnSource, took),
        Err(e) => {
            let mut record = Record::new(name, version, Outcome::Failed, took);
            record.error = Some(format!("{e:#}"));
            record
        }
    }
}

/// Pulls `HOST[/PATH]/name:version` for this machine's platform into the builder's store and tags
/// it latest; None if the registry does not have it.
async fn pull_one(
    reg: &Registry,
    builder: &dyn Backend,
    access: &RegistryAccess,
    name: &str,
    version: &str,
) -> anyhow::Result<Option<Pulled>> {
    let Some(published) = reg.published(name, version).await? else {
        return Ok(None);
    };
    let registry = reg.address();
    let reference = format!("{registry}/{name}:{version}");
    // The store receives the platform its node runs.
    let native = builder.native_platforms();
    builder.pull(&reference, native.first(), access).await?;
    let tagged = format!("{registry}/{name}:latest");
    builder.tag_image(&reference, &tagged).await?;
    Ok(Some(Pulled {
        digest: published.digest,
        platform: native.first().cloned(),
        tagged,
    }))
}

/// Runs `work` unless SIGINT or SIGTERM comes first; then `work` is dropped (cancelling what it
/// started) and the signal returned.
async fn until_stopped<T>(work: impl std::future::Future<Output = T>) -> Result<T, Signal> {
    tokio::select! {
        out = work => Ok(out),
        signal = interrupt::requested() => Err(signal),
    }
}
