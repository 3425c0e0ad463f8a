//! Tags that runs which are gone left in the stores of their nodes. A run tags what it builds
//! `cip.local/run-ID/NAME:VERSION-PLATFORM` and removes the tag once the image is pushed; a run
//! killed (SIGKILL) or cancelled between the build and the removal leaves it behind, and every
//! such tag keeps its image (a full copy of a root filesystem with the vfs driver). So each run
//! that builds first removes the run tags of runs no longer alive, from the stores of the nodes on
//! this machine (the local buildah or podman store, a daemon or service on a unix socket), and
//! says what it removed. The run id is `PID-START-NANOS`: the process and its start time (so a pid
//! used again by another process is not taken for the run), and the moment. A run that is alive,
//! and a node of another machine (whose pids mean nothing here), are never touched.
use std::sync::Arc;

use super::process;
use super::Backend;

/// The prefix of the tags a run owns.
const PREFIX: &str = "cip.local/run-";

/// A new run id: this process, its start time and the moment.
pub fn new_run_id() -> String {
    let pid = std::process::id();
    let start = libc::pid_t::try_from(pid)
        .ok()
        .and_then(process::start_time)
        .unwrap_or(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{pid}-{start:x}-{nanos:x}")
}

/// The run a tag of the store belongs to, if it is a run tag (`[localhost/]cip.local/run-ID/..`).
fn run_of(tag: &str) -> Option<&str> {
    let tag = tag.strip_prefix("localhost/").unwrap_or(tag);
    tag.strip_prefix(PREFIX)?.split('/').next()
}

/// Whether the run `id` is gone: its process does not run, or runs with another start time. An
/// id cip cannot read is taken for alive.
fn gone(id: &str) -> bool {
    let mut parts = id.split('-');
    let Some(pid) = parts.next().and_then(|p| p.parse::<libc::pid_t>().ok()) else {
        return false;
    };
    if pid <= 0 || pid == std::process::id() as libc::pid_t {
        return false;
    }
    let recorded = parts.next().and_then(|s| u64::from_str_radix(s, 16).ok());
    let third = parts.next();
    match (process::start_time(pid), recorded, third) {
        (None, _, _) => true,
        // PID-START-NANOS: gone if that pid now belongs to a process started at another time.
        (Some(now), Some(start), Some(_)) => now != start,
        // An older PID-NANOS id: a live pid may be the run.
        (Some(_), _, _) => false,
    }
}

/// Whether the node's engine keeps its store on this machine, where pids tell whether a run lives.
fn on_this_machine(node: &dyn Backend) -> bool {
    node.address()
        .is_none_or(|a| a.starts_with("unix://") || a.starts_with("--url=unix://"))
}

/// Removes the run tags of runs that are gone from `node`'s store; the tags removed.
pub async fn sweep(node: &dyn Backend) -> Vec<String> {
    if !on_this_machine(node) {
        return Vec::new();
    }
    let Ok(tags) = node.local_tags().await else {
        return Vec::new();
    };
    let mut stale: Vec<String> = tags
        .into_iter()
        .filter(|t| run_of(t).is_some_and(gone))
        .collect();
    stale.sort();
    let mut removed = Vec::new();
    for tag in stale {
        if node.remove_image(&tag).await.is_ok() {
            removed.push(tag);
        }
    }
    removed
}

/// Removes the tags of the run `run_id` from every node's store (a run that was cancelled, whose
/// builds finished but were not pushed); lines that say what was removed where.
pub async fn remove_run(nodes: &[Arc<dyn Backend>], run_id: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for node in nodes {
        let Ok(tags) = node.local_tags().await else {
            continue;
        };
        let mut own: Vec<String> = tags
            .into_iter()
            .filter(|t| run_of(t) == Some(run_id))
            .collect();
        own.sort();
        let mut removed = Vec::new();
        for tag in own {
            if node.remove_image(&tag).await.is_ok() {
                removed.push(tag);
            }
        }
        if !removed.is_empty() {
            let place = node.address().unwrap_or_else(|| node.describe());
            lines.push(format!(
                "removed {} of this cancelled run from {place}: {}",
                crate::output::count(removed.len(), "tag"),
                removed.join(", ")
            ));
        }
    }
    lines
}

/// [`sweep`] of every node, as lines that say what was removed where.
pub async fn sweep_all(nodes: &[Arc<dyn Backend>]) -> Vec<String> {
    let mut lines = Vec::new();
    for node in nodes {
        let removed = sweep(node.as_ref()).await;
        if removed.is_empty() {
            continue;
        }
        let place = node.address().unwrap_or_else(|| node.describe());
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

    #[test]
    fn run_tags_and_whether_their_run_is_gone() {
        let me = new_run_id();
        assert!(me.starts_with(&format!("{}-", std::process::id())), "{me}");
        assert_eq!(me.split('-').count(), 3, "{me}");
        assert!(!gone(&me), "this run is alive");
        assert_eq!(
            run_of("localhost/cip.local/run-42-a-b/app:1.0.0-linux-amd64"),
            Some("42-a-b")
        );
        assert_eq!(run_of("cip.local/run-42-b/app:1"), Some("42-b"));
        assert_eq!(run_of("localhost:5000/app:1.0.0"), None);
        // No such process.
        assert!(gone("2147483600-1-1"));
        assert!(gone("2147483600-1"));
        // pid 1 runs, but not since the start time recorded: another process has the pid.
        let init = process::start_time(1).unwrap();
        assert!(gone(&format!("1-{:x}-0", init + 1)));
        assert!(!gone(&format!("1-{init:x}-0")));
        // An old id of a live pid, and ids cip cannot read, are left alone.
        assert!(!gone("1-abc"));
        assert!(!gone("x-1-1"));
    }
}
