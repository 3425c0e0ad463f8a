//! Tags that runs which are gone left behind. A run tags what it builds
//! `cip.local/run-ID/NAME:VERSION-PLATFORM` and removes the tag once the image is pushed; a node
//! that pushes directly pushes to `REG/cip-stage/.../NAME:VERSION-ID` and cip removes that tag once
//! the image is copied. A run killed (SIGKILL) or cancelled between the two leaves the tag behind,
//! and every such tag keeps its image (in a store, a full copy of a root filesystem with the vfs
//! driver). So each run that builds first removes the tags of runs that are over, and says what it
//! removed; a run that may still be alive is never touched.
//!
//! Whether a run is over is read from its id, `PID-START-WALL-SPACE`: the process and its start
//! time (so a pid used again by another process is not taken for the run), the wall-clock moment
//! the run began (nanoseconds after the Unix epoch), and the pid space it ran in (a hash of the
//! boot and the pid namespace: where its pid means something). A run of this pid space whose
//! process is gone is over; a run of another machine (a CI runner), whose pid says nothing here,
//! is over once it began longer ago than the lease ([`DEFAULT_LEASE`], `stage_lease_hours` in
//! cip.toml); a run of this pid space whose process lives is kept past any lease. Older ids (`PID-START-NANOS`, `PID-NANOS`) have no moment and no space: they are
//! judged by their pid in this machine's stores only.
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use super::process;
use super::{Backend, StoreRoots};

/// The prefix of the tags a run owns.
const PREFIX: &str = "cip.local/run-";

/// How long after its start a run of another machine may still be alive.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(24 * 3600);

/// A new run id: this process, its start time, the moment and this pid space.
pub fn new_run_id() -> String {
    let pid = std::process::id();
    let start = libc::pid_t::try_from(pid)
        .ok()
        .and_then(process::start_time)
        .unwrap_or(0);
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{pid}-{start:x}-{wall:x}-{}", pid_space())
}

/// Where a pid means one process: this boot of the kernel and this pid namespace, hashed to 8 hex
/// digits (the parts of a run id are lowercase hex, valid in tags and repository names).
pub fn pid_space() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let namespace = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let hash = Sha256::digest(format!("{}\n{namespace}", boot.trim()).as_bytes());
    hex::encode(&hash[..4])
}

/// What a run id says about its run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RunId {
    pid: libc::pid_t,
    /// The process's start time, in clock ticks after boot (ids since `PID-START-NANOS`).
    start: Option<u64>,
    /// When the run began, and where its pid means something (ids since `PID-START-WALL-SPACE`).
    began: Option<(SystemTime, String)>,
}

fn parse(id: &str) -> Option<RunId> {
    let parts: Vec<&str> = id.split('-').collect();
    let pid = parts
        .first()?
        .parse::<libc::pid_t>()
        .ok()
        .filter(|&p| p > 0)?;
    let hex = |s: &str| u128::from_str_radix(s, 16).ok();
    match parts.len() {
        2 => Some(RunId {
            pid,
            start: None,
            began: None,
        }),
        3 => Some(RunId {
            pid,
            start: Some(u64::try_from(hex(parts[1])?).ok()?),
            began: None,
        }),
        4 => {
            let space = parts[3];
            if space.len() != 8 || hex(space).is_none() {
                return None;
            }
            let nanos = u64::try_from(hex(parts[2])?).ok()?;
            Some(RunId {
                pid,
                start: Some(u64::try_from(hex(parts[1])?).ok()?),
                began: Some((UNIX_EPOCH + Duration::from_nanos(nanos), space.to_string())),
            })
        }
        _ => None,
    }
}

/// Where a tag was found: a store of this machine, or a place runs of any machine use (a
/// registry, the store of a node on another machine), where only a run id's wall-clock start and
/// pid space tell whether its run is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    ThisMachine,
    Shared,
}

/// How a sweep tells a run that is over.
#[derive(Debug, Clone)]
pub struct Judge {
    /// This run's id: never over.
    pub own: String,
    pub lease: Duration,
    pub now: SystemTime,
    pub space: String,
}

impl Judge {
    pub fn new(own: &str, lease: Duration) -> Judge {
        Judge {
            own: own.to_string(),
            lease,
            now: SystemTime::now(),
            space: pid_space(),
        }
    }

    /// Why the run `id` is over (a phrase), or None if it may be alive or cip cannot read the id.
    pub fn over(&self, id: &str, found: Found) -> Option<&'static str> {
        if id == self.own {
            return None;
        }
        let run = parse(id)?;
        match (&run.began, found) {
            // Of this pid space, the process says it all: a live run is kept past any lease.
            (Some((_, space)), _) if *space == self.space => {
                (!lives(&run)).then_some("its process is gone")
            }
            (Some((began, _)), _) => self
                .now
                .duration_since(*began)
                .is_ok_and(|age| age > self.lease)
                .then_some("began longer ago than the lease"),
            // An older id has no space: its pid is read on this machine only.
            (None, Found::ThisMachine) => (!lives(&run)).then_some("its process is gone"),
            (None, Found::Shared) => None,
        }
    }
}

/// Whether the run's process runs: its pid runs, with the start time recorded (a pid now held by a
/// process started at another time is not the run). An id without a start time lives while its
/// pid does.
fn lives(run: &RunId) -> bool {
    if run.pid == std::process::id() as libc::pid_t {
        return true;
    }
    match (process::start_time(run.pid), run.start) {
        (None, _) => false,
        (Some(now), Some(start)) => now == start,
        (Some(_), None) => true,
    }
}

/// The run a tag of the store belongs to, if it is a run tag (`[localhost/]cip.local/run-ID/..`).
fn run_of(tag: &str) -> Option<&str> {
    let tag = tag.strip_prefix("localhost/").unwrap_or(tag);
    tag.strip_prefix(PREFIX)?.split('/').next()
}

/// The run a staging tag (`VERSION-ID` in a registry) belongs to: the last four parts of the tag
/// when they read as a current run id. Older ids are not matched: their runs cannot be told
/// apart from a version's pre-release parts, nor judged from another machine.
pub fn run_of_staging_tag(tag: &str) -> Option<&str> {
    let mut cut = tag.len();
    for _ in 0..4 {
        cut = tag[..cut].rfind('-')?;
    }
    let id = &tag[cut + 1..];
    (cut > 0 && parse(id).is_some_and(|r| r.began.is_some())).then_some(id)
}

/// Whether the node's engine keeps its store on this machine, where pids tell whether a run lives.
fn on_this_machine(node: &dyn Backend) -> bool {
    node.address()
        .is_none_or(|a| a.starts_with("unix://") || a.starts_with("--url=unix://"))
}

/// The stores a sweep looks into: each node's own, and the per-platform stores of this run's
/// builds (`stores`: node index and roots; see [`Backend::platform_store`]) that exist already,
/// each with the words that say where it is.
fn stores(
    nodes: &[Arc<dyn Backend>],
    extra: &[(usize, StoreRoots)],
) -> Vec<(Arc<dyn Backend>, String)> {
    let mut out: Vec<(Arc<dyn Backend>, String)> = nodes
        .iter()
        .map(|n| (n.clone(), n.address().unwrap_or_else(|| n.describe())))
        .collect();
    let unique: BTreeSet<(usize, &std::path::Path, &std::path::Path)> = extra
        .iter()
        .map(|(i, s)| (*i, s.graph_root.as_path(), s.run_root.as_path()))
        .collect();
    for (i, graph_root, run_root) in unique {
        let Some(node) = nodes.get(i) else { continue };
        // A store that does not exist holds nothing: asking the engine would create it.
        if !graph_root.is_dir() {
            continue;
        }
        let roots = StoreRoots {
            graph_root: graph_root.to_path_buf(),
            run_root: run_root.to_path_buf(),
        };
        let place = format!(
            "{} (store {})",
            node.address().unwrap_or_else(|| node.describe()),
            graph_root.display()
        );
        // An engine without stores of its own has no per-platform store to sweep.
        if let Some(store) = node.with_store(&roots) {
            out.push((store, place));
        }
    }
    out
}

/// Removes from `node`'s store the run tags `pick` chooses (by run id), sorted; the tags removed.
async fn remove_tags(node: &dyn Backend, pick: impl Fn(&str) -> bool) -> Vec<String> {
    let Ok(tags) = node.local_tags().await else {
        return Vec::new();
    };
    let mut chosen: Vec<String> = tags
        .into_iter()
        .filter(|t| run_of(t).is_some_and(&pick))
        .collect();
    chosen.sort();
    let mut removed = Vec::new();
    for tag in chosen {
        if node.remove_image(&tag).await.is_ok() {
            removed.push(tag);
        }
    }
    removed
}

/// Removes the run tags of runs that are over from `node`'s store; the tags removed. On a node of
/// another machine, runs of any machine build: there a run is over by its pid only when it ran on
/// this machine, else once older than the lease, and an older id (no wall clock) is kept.
pub async fn sweep(node: &dyn Backend, judge: &Judge) -> Vec<String> {
    let found = match on_this_machine(node) {
        true => Found::ThisMachine,
        false => Found::Shared,
    };
    remove_tags(node, |id| judge.over(id, found).is_some()).await
}

/// Removes the tags of the run `run_id` from every node's store and the run's per-platform stores
/// (a run that was cancelled, whose builds finished but were not pushed); lines that say what was
/// removed where.
pub async fn remove_run(
    nodes: &[Arc<dyn Backend>],
    extra: &[(usize, StoreRoots)],
    run_id: &str,
) -> Vec<String> {
    let mut lines = Vec::new();
    for (node, place) in stores(nodes, extra) {
        let removed = remove_tags(node.as_ref(), |id| id == run_id).await;
        if !removed.is_empty() {
            lines.push(format!(
                "removed {} of this cancelled run from {place}: {}",
                crate::output::count(removed.len(), "tag"),
                removed.join(", ")
            ));
        }
    }
    lines
}

/// [`sweep`] of every node's store and the per-platform stores of this run's builds, as lines
/// that say what was removed where.
pub async fn sweep_all(
    nodes: &[Arc<dyn Backend>],
    extra: &[(usize, StoreRoots)],
    judge: &Judge,
) -> Vec<String> {
    let mut lines = Vec::new();
    for (node, place) in stores(nodes, extra) {
        let removed = sweep(node.as_ref(), judge).await;
        if removed.is_empty() {
            continue;
        }
        lines.push(format!(
            "removed {} left by earlier runs that are gone, from {place}: {}",
            crate::output::count(removed.len(), "tag"),
            removed.join(", ")
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge() -> Judge {
        Judge::new(&new_run_id(), DEFAULT_LEASE)
    }

    fn id_at(pid: u32, start: u64, began: SystemTime, space: &str) -> String {
        let wall = began.duration_since(UNIX_EPOCH).unwrap().as_nanos();
        format!("{pid}-{start:x}-{wall:x}-{space}")
    }

    #[test]
    fn a_run_id_names_its_process_moment_and_pid_space() {
        let me = new_run_id();
        assert!(me.starts_with(&format!("{}-", std::process::id())), "{me}");
        let run = parse(&me).unwrap();
        let (began, space) = run.began.clone().unwrap();
        assert_eq!(space, pid_space());
        assert!(SystemTime::now().duration_since(began).unwrap() < Duration::from_secs(60));
        assert!(me
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase() || c == '-'));
        assert_ne!(me, new_run_id(), "two runs of one process have two ids");
        assert_eq!(judge().over(&me, Found::Shared), None, "this run is alive");
    }

    #[test]
    fn run_tags_and_whether_their_run_is_over() {
        let j = judge();
        let local = Found::ThisMachine;
        assert_eq!(
            run_of("localhost/cip.local/run-42-a-b/app:1.0.0-linux-amd64"),
            Some("42-a-b")
        );
        assert_eq!(run_of("cip.local/run-42-b/app:1"), Some("42-b"));
        assert_eq!(run_of("localhost:5000/app:1.0.0"), None);
        // Older ids: no such process; pid 1 runs, but not since the start time recorded.
        assert!(j.over("2147483600-1-1", local).is_some());
        assert!(j.over("2147483600-1", local).is_some());
        let init = process::start_time(1).unwrap();
        assert!(j.over(&format!("1-{:x}-0", init + 1), local).is_some());
        assert!(j.over(&format!("1-{init:x}-0"), local).is_none());
        // An old id of a live pid, ids cip cannot read, and old ids in a registry are left alone.
        assert!(j.over("1-abc", local).is_none());
        assert!(j.over("x-1-1", local).is_none());
        assert!(j.over("2147483600-1-1", Found::Shared).is_none());
    }

    #[test]
    fn another_machines_run_is_over_only_after_the_lease() {
        let j = judge();
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        let elsewhere = "0badc0de";
        assert_ne!(elsewhere, j.space);
        // A pid that does not run here says nothing about a run of another machine.
        let young = id_at(2147483600, 1, now - hour, elsewhere);
        assert_eq!(j.over(&young, Found::Shared), None);
        let old = id_at(2147483600, 1, now - 25 * hour, elsewhere);
        assert_eq!(
            j.over(&old, Found::Shared),
            Some("began longer ago than the lease")
        );
        // Of this pid space: gone is over at once, alive is kept even past the lease.
        let gone = id_at(2147483600, 1, now - hour, &j.space);
        assert_eq!(j.over(&gone, Found::Shared), Some("its process is gone"));
        let init = process::start_time(1).unwrap();
        let alive = id_at(1, init, now - 48 * hour, &j.space);
        assert_eq!(j.over(&alive, Found::Shared), None);
        assert_eq!(j.over(&alive, Found::ThisMachine), None);
        // A run that began in the future (a clock behind another's) is not over.
        let ahead = id_at(2147483600, 1, now + hour, elsewhere);
        assert_eq!(j.over(&ahead, Found::Shared), None);
        let short = Judge {
            lease: hour / 2,
            ..j.clone()
        };
        assert!(short.over(&young, Found::Shared).is_some());
    }

    #[test]
    fn staging_tags_name_their_run_after_the_version() {
        let id = new_run_id();
        assert_eq!(
            run_of_staging_tag(&format!("1.0.0-{id}")),
            Some(id.as_str())
        );
        assert_eq!(
            run_of_staging_tag(&format!("1.0.0-rc.1-{id}")),
            Some(id.as_str())
        );
        assert_eq!(run_of_staging_tag(&id), None, "no version before it");
        assert_eq!(run_of_staging_tag("1.0.0"), None);
        assert_eq!(run_of_staging_tag("1.0.0-12-ab-cd"), None, "an older id");
        assert_eq!(run_of_staging_tag("1.0.0-1-2-3-xyz"), None);
    }
}
