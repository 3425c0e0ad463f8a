//! Running builder programs: each in its own process group, with its output appended to a log or
//! captured, and the whole group terminated when the future running it is dropped (the scheduler
//! cancels builds that way on `--stop-on-first-error`). When the events a command is run with take
//! output ([`Events::takes_output`]: a run's display), it is read line by line into the log and
//! reported too ([`Event::Output`]).
//!
//! Cancellation sends SIGTERM to the group first, so buildah can remove its working container, and
//! SIGKILL after [`TERM_GRACE`]. That happens on a helper thread, since `Drop` cannot wait. Each
//! node's [`Supervisor`], owned through its backend by the run, counts those threads:
//! [`Supervisor::wait_for_cancelled`] lets a run that is about to end give them time to finish,
//! and [`Supervisor::hurry`] (a second Ctrl-C) turns the grace period into an immediate SIGKILL.
//!
//! A builder's helpers may leave its group (buildah runs a RUN step in a group of its own), and one
//! whose parent exits would be re-parented to init, out of sight. So cip makes itself the
//! "child subreaper" of everything it starts (Linux `PR_SET_CHILD_SUBREAPER`): such orphans become
//! its children, and a cancellation finds and ends them too.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};

use crate::events::{Event, Events};

/// How long a cancelled process group gets between SIGTERM and SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(5);
/// How long the group may take to vanish after SIGKILL before the helper thread gives up.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How many lines of the log an error message quotes.
pub const TAIL_LINES: usize = 20;
/// Longest command line quoted in an error message.
const SHORT_COMMAND_CHARS: usize = 400;

/// The cancellation of one node's processes: the process groups being ended after their
/// operation was dropped, and whether to end them at once.
#[derive(Debug, Default)]
pub struct Supervisor {
    /// Process groups being terminated by helper threads.
    pending: Mutex<usize>,
    done: Condvar,
    /// Cancelled groups get SIGKILL without waiting for [`TERM_GRACE`].
    hurry: AtomicBool,
}

impl Supervisor {
    pub fn new() -> Arc<Supervisor> {
        Arc::new(Supervisor::default())
    }

    /// Kills the processes being cancelled now rather than after their grace period.
    pub fn hurry(&self) {
        self.hurry.store(true, Ordering::Relaxed);
    }

    fn hurried(&self) -> bool {
        self.hurry.load(Ordering::Relaxed)
    }

    /// Waits (up to `timeout`) until every process group cancelled by dropping its operation is
    /// gone. A run calls it before it ends after a cancellation, so no builder outlives cip.
    /// Returns whether all were gone in time.
    pub fn wait_for_cancelled(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut n = lock(&self.pending);
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            n = self
                .done
                .wait_timeout(n, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    fn started_one(&self) {
        *lock(&self.pending) += 1;
    }

    fn finished_one(&self) {
        let mut n = lock(&self.pending);
        *n = n.saturating_sub(1);
        self.done.notify_all();
    }
}

/// A program with its arguments and environment overrides, runnable several ways.
#[derive(Debug, Clone)]
pub struct Invocation {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    /// Who ends the process group when the operation is dropped (a private one if not set).
    supervisor: Option<Arc<Supervisor>>,
    /// What else a cancellation ends: the work the command started elsewhere (a build running
    /// inside a podman service).
    on_cancel: Option<CancelHook>,
}

/// Work a cancelled command leaves running elsewhere, ended by its own means; run on the helper
/// thread that ends the command's process group (and counted by its [`Supervisor`]).
#[derive(Clone)]
pub struct CancelHook(pub Arc<dyn Fn() + Send + Sync>);

impl fmt::Debug for CancelHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CancelHook")
    }
}

impl Invocation {
    pub fn new(program: impl Into<OsString>) -> Self {
        Invocation {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            supervisor: None,
            on_cancel: None,
        }
    }

    /// Runs `hook` too when the operation is dropped before the command exited.
    pub fn on_cancel(mut self, hook: CancelHook) -> Self {
        self.on_cancel = Some(hook);
        self
    }

    /// The node whose [`Supervisor`] ends this command when its operation is dropped.
    pub fn supervised_by(mut self, supervisor: &Arc<Supervisor>) -> Self {
        self.supervisor = Some(supervisor.clone());
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    pub fn envs<'a, I>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = &'a (String, String)>,
    {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// Adds variables whose values are paths (or anything else owned).
    pub fn envs_owned<K: AsRef<OsStr>, V: AsRef<OsStr>>(mut self, vars: Vec<(K, V)>) -> Self {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// The command line, shortened for error messages.
    pub fn short(&self) -> String {
        let full = self.to_string();
        if full.chars().count() <= SHORT_COMMAND_CHARS {
            return full;
        }
        let mut s: String = full.chars().take(SHORT_COMMAND_CHARS).collect();
        s.push_str(" ...");
        s
    }

    /// The command line preceded by the environment overrides, as a shell would take it.
    pub fn with_env(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.env {
            s.push_str(&format!("{}={} ", k.to_string_lossy(), quote(v)));
        }
        s.push_str(&self.to_string());
        s
    }

    fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args);
        // Builders get the run's credentials through a private auth file, never the variables.
        for secret in SECRET_VARS {
            cmd.env_remove(secret);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            // Its own group: a terminal's Ctrl-C does not reach it directly, and cancelling
            // reaches the builder's helpers (buildah-chroot-runtime, the RUN command) as well.
            .process_group(0);
        cmd
    }

    /// Runs to completion with stdout and stderr appended to `log` (parent directories are
    /// created), preceded by a `$ command` line. A non-zero exit is an error quoting the command
    /// and the last [`TAIL_LINES`] lines this run wrote. The output lines are reported to `events`
    /// as they come if it takes them.
    pub async fn run_logged(&self, log: &Path, events: &Events) -> anyhow::Result<()> {
        if let Some(parent) = log.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::cip_dir::create_dir_all(parent)
                .with_context(|| format!("cannot create the log directory {}", parent.display()))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open the build log {}", log.display()))?;
        writeln!(file, "$ {}", self.with_env())
            .with_context(|| format!("cannot write the build log {}", log.display()))?;
        let start = file.seek(SeekFrom::End(0)).unwrap_or(0);
        let stderr = file
            .try_clone()
            .with_context(|| format!("cannot open the build log {}", log.display()))?;

        let mut cmd = self.command();
        let status = if events.takes_output() {
            drop(stderr);
            self.spawn_streaming(cmd, file, events).await?
        } else {
            cmd.stdout(Stdio::from(file)).stderr(Stdio::from(stderr));
            self.spawn_and_wait(cmd).await?
        };
        if status.success() {
            return Ok(());
        }
        Err(anyhow!(LoggedFailure {
            command: self.short(),
            status: describe_status(status),
            log: log.to_path_buf(),
            tail: read_tail(log, start, TAIL_LINES),
        }))
    }

    /// Runs to completion capturing stdout and stderr; a non-zero exit is not an error here.
    pub async fn run_captured(&self) -> anyhow::Result<Captured> {
        let mut cmd = self.command();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let (mut child, guard) = self.spawn(&mut cmd)?;
        let mut out = child.stdout.take().expect("piped stdout");
        let mut err = child.stderr.take().expect("piped stderr");
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let (r1, r2, status) = tokio::join!(
            tokio::io::AsyncReadExt::read_to_end(&mut out, &mut stdout),
            tokio::io::AsyncReadExt::read_to_end(&mut err, &mut stderr),
            child.wait()
        );
        let status = status.with_context(|| format!("cannot wait for `{}`", self.short()))?;
        guard.disarm();
        r1.and(r2)
            .with_context(|| format!("cannot read the output of `{}`", self.short()))?;
        Ok(Captured {
            command: self.short(),
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// [`run_captured`](Self::run_captured), with a non-zero exit as an error quoting stderr.
    pub async fn run_ok(&self) -> anyhow::Result<Captured> {
        let out = self.run_captured().await?;
        out.check()?;
        Ok(out)
    }

    /// Starts the command, registered as a builder leader (see [`LEADERS`]) before anything can
    /// take it for an orphan, with the guard that terminates its group if it is dropped armed.
    fn spawn(
        &self,
        cmd: &mut tokio::process::Command,
    ) -> anyhow::Result<(tokio::process::Child, GroupGuard)> {
        adopt_orphans();
        let mut leaders = lock(&LEADERS);
        let child = self.spawn_unregistered(cmd)?;
        let pgid = child.id().and_then(|id| libc::pid_t::try_from(id).ok());
        leaders.extend(pgid);
        let supervisor = self.supervisor.clone().unwrap_or_default();
        let on_cancel = self.on_cancel.clone();
        Ok((
            child,
            GroupGuard {
                pgid,
                supervisor,
                on_cancel,
            },
        ))
    }

    fn spawn_unregistered(
        &self,
        cmd: &mut tokio::process::Command,
    ) -> anyhow::Result<tokio::process::Child> {
        cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow!(
                    "cannot run `{}`: {} is not installed (not found on PATH)",
                    self.short(),
                    self.program.to_string_lossy()
                )
            } else {
                anyhow!(e).context(format!("cannot run `{}`", self.short()))
            }
        })
    }

    async fn spawn_and_wait(&self, mut cmd: tokio::process::Command) -> anyhow::Result<ExitStatus> {
        let (mut child, guard) = self.spawn(&mut cmd)?;
        let status = child
            .wait()
            .await
            .with_context(|| format!("cannot wait for `{}`", self.short()))?;
        guard.disarm();
        Ok(status)
    }
}

impl Invocation {
    /// Runs the command with its stdout and stderr read line by line: each line is appended to
    /// `file` and reported to `events`. Helpers of the builder that keep its pipes open after it
    /// exited get [`DRAIN_WAIT`] to finish writing.
    async fn spawn_streaming(
        &self,
        mut cmd: tokio::process::Command,
        file: File,
        events: &Events,
    ) -> anyhow::Result<ExitStatus> {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let (mut child, guard) = self.spawn(&mut cmd)?;
        let file = Mutex::new(file);
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let mut pump = std::pin::pin!(async {
            tokio::join!(
                pump_lines(out, &file, events),
                pump_lines(err, &file, events)
            )
        });
        let mut drained = false;
        let status = tokio::select! {
            status = child.wait() => status,
            _ = &mut pump => {
                drained = true;
                child.wait().await
            }
        };
        let status = status.with_context(|| format!("cannot wait for `{}`", self.short()))?;
        guard.disarm();
        if !drained {
            let _ = tokio::time::timeout(DRAIN_WAIT, &mut pump).await;
        }
        Ok(status)
    }
}

/// How long the output of a command that exited is still read (see
/// [`Invocation::spawn_streaming`]).
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// Copies `pipe` to `file` line by line, reporting each line (a line redrawn with `\r` as its last
/// state).
async fn pump_lines(
    pipe: Option<impl tokio::io::AsyncRead + Unpin>,
    file: &Mutex<File>,
    events: &Events,
) {
    use tokio::io::AsyncBufReadExt;
    let Some(pipe) = pipe else {
        return;
    };
    let mut reader = tokio::io::BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        // The log keeps everything, even if it cannot be written (the build goes on).
        let _ = lock(file).write_all(&buf);
        let text = String::from_utf8_lossy(&buf);
        let line = text
            .trim_end_matches(['\n', '\r'])
            .rsplit('\r')
            .next()
            .unwrap_or("");
        events.report(Event::Output(line));
    }
}

impl fmt::Display for Invocation {
    /// The command line, arguments quoted where the shell would need it (the program by its file
    /// name, environment omitted).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let program = Path::new(&self.program)
            .file_name()
            .unwrap_or(&self.program);
        write!(f, "{}", quote(program))?;
        for a in &self.args {
            write!(f, " {}", quote(a))?;
        }
        Ok(())
    }
}

/// cip's own credential variables: no builder process inherits them.
pub(crate) const SECRET_VARS: &[&str] = &[
    crate::registry::auth::USERNAME_VAR,
    crate::registry::auth::PASSWORD_VAR,
];

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// How [`Invocation::run_logged`] fails when the command exits non-zero: callers can read what it
/// printed last (`tail`) to tell a transient failure from a real one.
#[derive(Debug)]
pub struct LoggedFailure {
    pub command: String,
    pub status: String,
    pub log: PathBuf,
    pub tail: String,
}

impl fmt::Display for LoggedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` failed ({}); last lines of {}:\n{}",
            self.command,
            self.status,
            self.log.display(),
            indent(&self.tail)
        )
    }
}

impl std::error::Error for LoggedFailure {}

/// The outcome of [`Invocation::run_captured`].
#[derive(Debug, Clone)]
pub struct Captured {
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Captured {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// An error quoting the command and the end of its stderr (or stdout) when it failed.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.success() {
            return Ok(());
        }
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        Err(anyhow!(
            "`{}` failed ({}):\n{}",
            self.command,
            describe_status(self.status),
            indent(&last_lines(text, TAIL_LINES))
        ))
    }
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

fn indent(text: &str) -> String {
    if text.trim().is_empty() {
        return "  (no output)".to_string();
    }
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The last `n` non-empty lines of `text`; progress lines redrawn with `\r` keep their last state.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.rsplit('\r').find(|p| !p.trim().is_empty()).unwrap_or(""))
        .filter(|l| !l.trim().is_empty())
        .collect();
    let from = lines.len().saturating_sub(n);
    lines[from..]
        .iter()
        .map(|l| truncate_line(l))
        .collect::<Vec<_>>()
        .join("\n")
}

fn truncate_line(line: &str) -> String {
    const MAX: usize = 400;
    if line.chars().count() <= MAX {
        line.to_string()
    } else {
        let mut s: String = line.chars().take(MAX).collect();
        s.push_str(" ...");
        s
    }
}

/// The last `n` lines written to `log` after byte offset `start` (at most the last 64 KiB).
fn read_tail(log: &Path, start: u64, n: usize) -> String {
    const WINDOW: u64 = 64 * 1024;
    let Ok(mut f) = File::open(log) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = start.max(len.saturating_sub(WINDOW));
    if f.seek(SeekFrom::Start(from)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    last_lines(&String::from_utf8_lossy(&buf), n)
}

/// Terminates the child's process group when dropped while still armed, i.e. when the future
/// waiting for the child was dropped before the child exited.
struct GroupGuard {
    pgid: Option<libc::pid_t>,
    supervisor: Arc<Supervisor>,
    on_cancel: Option<CancelHook>,
}

impl GroupGuard {
    /// The child exited normally (and was reaped): nothing to clean up.
    fn disarm(mut self) {
        if let Some(pgid) = self.pgid.take() {
            forget_leader(pgid);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            terminate_group(pgid, self.supervisor.clone(), self.on_cancel.take());
        }
    }
}

/// The builder processes cip started and has not reaped yet; each leads its own process group.
/// Every other child of cip outside cip's own group is an adopted orphan (see [`adopted`]).
/// Global because [`end_children`], called on every way out of `main`, must find every group
/// whichever operation started it.
static LEADERS: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn forget_leader(pgid: libc::pid_t) {
    lock(&LEADERS).retain(|&p| p != pgid);
}

/// The process groups of short probes running now (see [`ProbeGroup`]). Global for the same reason
/// as [`LEADERS`]: [`end_children`] ends them from `main`, however cip exits.
static PROBES: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

/// A probe's process group, known to [`end_children`] while it lives.
pub struct ProbeGroup {
    pgid: Option<libc::pid_t>,
}

impl ProbeGroup {
    /// The group led by the child `pid` (started with `process_group(0)`).
    pub fn new(pid: u32) -> ProbeGroup {
        let pgid = libc::pid_t::try_from(pid).ok();
        lock(&PROBES).extend(pgid);
        ProbeGroup { pgid }
    }

    /// SIGKILL to every process of the group.
    pub fn kill(&self) {
        if let Some(pgid) = self.pgid {
            // SAFETY: kill(2) on a process group this probe leads; no memory is involved.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for ProbeGroup {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            lock(&PROBES).retain(|&p| p != pgid);
        }
    }
}

/// Ends every child process group cip still has: probes that did not answer (a node whose
/// socket accepts and never answers), and builder groups no operation waits for any more. `main`
/// calls it before cip exits, on success and on error, so that no child outlives cip.
pub fn end_children() {
    let groups: Vec<libc::pid_t> = lock(&PROBES)
        .iter()
        .chain(lock(&LEADERS).iter())
        .copied()
        .collect();
    for pgid in groups {
        // SAFETY: kill(2) on process groups cip started and has not reaped.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Makes cip the reaper of orphans among its descendants (once per process), so a builder helper
/// whose parent exits stays findable from cip instead of moving to init.
fn adopt_orphans() {
    // Once per process, since being a subreaper is a property of the process.
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes plain integers and touches no memory.
        // If it fails (not Linux 3.4+), cancellation falls back to what the process tree shows.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
    });
}

/// Live children of cip that it did not start: orphaned helpers of builders, adopted because cip is
/// their subreaper. Children in cip's own group (short probes) are not builder helpers.
fn adopted() -> Vec<Proc> {
    let me = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    // SAFETY: getpgrp has no arguments and cannot fail.
    let own_group = unsafe { libc::getpgrp() };
    let leaders = lock(&LEADERS);
    all_pids()
        .into_iter()
        .filter(|pid| !leaders.contains(pid))
        .filter_map(|pid| {
            let st = stat_of(pid)?;
            (st.ppid == me && st.pgrp != own_group && st.state != 'Z' && st.state != 'X').then_some(
                Proc {
                    pid,
                    start: st.start,
                },
            )
        })
        .collect()
}

/// SIGTERM to the group now; a helper thread reaps the leader, sends SIGKILL after
/// [`TERM_GRACE`] if anything of the group is left, and returns when the group is gone.
/// Descendants that left the group (buildah runs a RUN step in a session of its own) are recorded
/// first and get the same treatment, so none outlives a cancelled build.
fn terminate_group(pgid: libc::pid_t, supervisor: Arc<Supervisor>, on_cancel: Option<CancelHook>) {
    let mut strays = Vec::new();
    record_descendants(pgid, &mut strays);
    // SAFETY: kill(2) with a negative pid signals the process group; no memory is involved.
    unsafe {
        libc::kill(-pgid, libc::SIGTERM);
    }
    supervisor.started_one();
    let mut strays2 = strays.clone();
    let thread_supervisor = supervisor.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("cip-kill-{pgid}"))
        .spawn(move || {
            let elsewhere = on_cancel.map(|hook| std::thread::spawn(move || (hook.0)()));
            reap_group(pgid, &mut strays2, &thread_supervisor);
            if let Some(elsewhere) = elsewhere {
                let _ = elsewhere.join();
            }
            thread_supervisor.finished_one();
        });
    if spawned.is_err() {
        // No thread: do not leave the group running.
        kill_all(pgid, &strays);
        supervisor.finished_one();
    }
}

/// SIGKILL to the group and to the recorded descendants that still run.
fn kill_all(pgid: libc::pid_t, strays: &[Proc]) {
    // SAFETY: kill(2) on a process group; no memory is involved.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    kill_strays(strays);
}

/// SIGKILL to the recorded processes that still run.
fn kill_strays(strays: &[Proc]) {
    for p in strays.iter().filter(|p| p.alive()) {
        // SAFETY: kill(2) on pids just checked to be the processes we recorded.
        unsafe {
            libc::kill(p.pid, libc::SIGKILL);
        }
    }
}

/// A process, identified by pid and start time (so a reused pid is never mistaken for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Proc {
    pid: libc::pid_t,
    start: u64,
}

impl Proc {
    fn alive(&self) -> bool {
        stat_of(self.pid).is_some_and(|s| s.start == self.start && s.state != 'Z' && s.state != 'X')
    }
}

/// When process `pid` started (clock ticks after boot), if it runs: with its pid, what tells it
/// from a later process given the same pid.
pub fn start_time(pid: libc::pid_t) -> Option<u64> {
    stat_of(pid)
        .filter(|s| s.state != 'Z' && s.state != 'X')
        .map(|s| s.start)
}

/// The fields of /proc/PID/stat that matter here.
struct Stat {
    state: char,
    ppid: libc::pid_t,
    pgrp: libc::pid_t,
    start: u64,
}

fn stat_of(pid: libc::pid_t) -> Option<Stat> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    // cutime cstime priority nice threads itrealvalue starttime ...; comm may contain spaces.
    let (_, rest) = stat.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

fn all_pids() -> Vec<libc::pid_t> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Adds what is not recorded yet of: the descendants of the leader and of the recorded processes,
/// and the orphans cip adopted, with their descendants.
fn record_descendants(leader: libc::pid_t, strays: &mut Vec<Proc>) {
    for p in adopted() {
        if !strays.contains(&p) {
            strays.push(p);
        }
    }
    let roots: Vec<libc::pid_t> = std::iter::once(leader)
        .chain(strays.iter().filter(|p| p.alive()).map(|p| p.pid))
        .collect();
    for root in roots {
        for p in descendants(root) {
            if !strays.contains(&p) {
                strays.push(p);
            }
        }
    }
}

/// Every live descendant of `root`, whatever its process group.
fn descendants(root: libc::pid_t) -> Vec<Proc> {
    let procs: Vec<(libc::pid_t, Stat)> = all_pids()
        .into_iter()
        .filter_map(|p| Some((p, stat_of(p)?)))
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, st) in procs.iter().filter(|(_, st)| st.ppid == parent) {
            out.push(Proc {
                pid: *pid,
                start: st.start,
            });
            frontier.push(*pid);
        }
    }
    out
}

fn reap_group(pgid: libc::pid_t, strays: &mut Vec<Proc>, supervisor: &Supervisor) {
    let started = Instant::now();
    let mut killed_at: Option<Instant> = None;
    loop {
        // A builder still busy when it got SIGTERM may start processes meanwhile (a RUN step in a
        // group of its own), and a helper may be orphaned between two looks: keep recording until
        // the end, and kill what turns up after the SIGKILL as well.
        record_descendants(pgid, strays);
        // The leader is our child: reap it so its zombie does not keep the group alive. tokio
        // may reap it first (its orphan queue); then waitpid fails with ECHILD, which is fine.
        let mut status = 0;
        // SAFETY: plain syscalls on a pid we spawned.
        unsafe {
            libc::waitpid(pgid, &mut status, libc::WNOHANG);
        }
        reap_adopted(strays);
        if !group_alive(pgid) && !strays.iter().any(Proc::alive) {
            // Whatever the dead started was re-parented to cip before their death could be seen:
            // one more look finds every such orphan, and the loop goes on if there was one.
            record_descendants(pgid, strays);
            if !strays.iter().any(Proc::alive) {
                break;
            }
        }
        match killed_at {
            None if started.elapsed() >= TERM_GRACE || supervisor.hurried() => {
                kill_all(pgid, strays);
                killed_at = Some(Instant::now());
            }
            Some(at) if at.elapsed() >= KILL_WAIT => break,
            // Only recorded processes (pid and start time): the group's id may be reused by now.
            Some(_) => kill_strays(strays),
            None => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    forget_leader(pgid);
}

/// Collects the exit status of recorded processes that cip adopted and that have exited, so they do
/// not linger as zombies. They are not tokio's children, so nothing else waits for them.
fn reap_adopted(strays: &[Proc]) {
    let me = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    for p in strays {
        if stat_of(p.pid).is_some_and(|st| st.start == p.start && st.ppid == me && st.state == 'Z')
        {
            let mut status = 0;
            // SAFETY: waitpid on a zombie child of ours that tokio does not track.
            unsafe {
                libc::waitpid(p.pid, &mut status, libc::WNOHANG);
            }
        }
    }
}

/// Whether a process of group `pgid` still runs. Zombies do not count: once the leader is reaped,
/// its orphaned helpers belong to cip (see [`adopt_orphans`]), which reaps them.
fn group_alive(pgid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks whether any process of the group exists.
    if unsafe { libc::kill(-pgid, 0) } != 0 {
        return false;
    }
    all_pids()
        .into_iter()
        .any(|p| stat_of(p).is_some_and(|st| st.pgrp == pgid && st.state != 'Z' && st.state != 'X'))
}

/// Finds `program` on `path` (a `PATH` value; or checks it when it contains a `/`).
pub fn find_program(program: &str, path: Option<&str>) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return is_executable(&p).then_some(p);
    }
    std::env::split_paths(path?)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

/// Every `program` on `path`, in `PATH` order, each file once.
pub fn find_all_programs(program: &str, path: Option<&str>) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    let mut seen = Vec::new();
    for dir in path
        .map(|p| std::env::split_paths(p).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let candidate = dir.join(program);
        if is_executable(&candidate) {
            let real = fs::canonicalize(&candidate).unwrap_or_else(|_| candidate.clone());
            if !seen.contains(&real) {
                seen.push(real);
                found.push(candidate);
            }
        }
    }
    found
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_the_end() {
        let text = (1..=30).map(|i| format!("line {i}\n")).collect::<String>();
        let tail = last_lines(&text, 3);
        assert_eq!(tail, "line 28\nline 29\nline 30");
        assert_eq!(
            last_lines("a\r\n\nprogress 1\rprogress 2\n", 5),
            "a\nprogress 2"
        );
    }

    #[test]
    fn display_quotes_what_needs_it() {
        let inv = Invocation::new("buildah")
            .args(["bud", "--build-arg", "A=b c", "-t", "localhost/x:1"])
            .arg("it's");
        assert_eq!(
            inv.to_string(),
            r"buildah bud --build-arg 'A=b c' -t localhost/x:1 'it'\''s'"
        );
        let long = Invocation::new("x").args(std::iter::repeat_n("abcdefghij", 100));
        assert!(long.short().ends_with(" ..."));
        assert!(long.short().len() < 450);
    }

    #[tokio::test]
    async fn logged_failure_quotes_this_runs_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sub/dir/x.log");
        fs::create_dir_all(log.parent().unwrap()).unwrap();
        fs::write(&log, "old run\n").unwrap();
        let inv = Invocation::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]);
        let err = inv
            .run_logged(&log, &Events::discard())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("exit status 3"), "{err}");
        assert!(err.contains("sh -c"), "{err}");
        assert!(err.contains("out") && err.contains("err"), "{err}");
        assert!(!err.contains("old run"), "{err}");
        let text = fs::read_to_string(&log).unwrap();
        assert!(text.starts_with("old run\n$ sh -c"), "{text}");
    }

    /// Collects the output lines it is reported.
    struct Collect(Mutex<Vec<String>>);

    impl crate::events::Sink for Collect {
        fn report(&self, event: Event<'_>) {
            if let Event::Output(line) = event {
                self.0.lock().unwrap().push(line.to_string());
            }
        }

        fn takes_output(&self) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn a_streamed_log_gets_every_line_and_the_sink_too() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        let seen = Arc::new(Collect(Mutex::new(Vec::new())));
        let events = Events::new(seen.clone());
        let inv = Invocation::new("sh")
            .args(["-c", "echo STEP 1/2: FROM x; printf 'a\\rb\\n' >&2; exit 3"]);
        let err = inv.run_logged(&log, &events).await.unwrap_err().to_string();
        assert!(
            err.contains("exit status 3") && err.contains("STEP 1/2"),
            "{err}"
        );
        let mut got = seen.0.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, ["STEP 1/2: FROM x", "b"]);
        let text = fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("STEP 1/2: FROM x\n") && text.contains("a\rb\n"),
            "{text}"
        );
        // Events that take no output are not handed any: the log is written as before.
        let called = Arc::new(AtomicBool::new(false));
        let flag = called.clone();
        let no_output = Events::from_fn(move |_| flag.store(true, Ordering::Relaxed));
        Invocation::new("sh")
            .args(["-c", "echo again"])
            .run_logged(&log, &no_output)
            .await
            .unwrap();
        assert!(!called.load(Ordering::Relaxed));
        assert_eq!(seen.0.lock().unwrap().len(), 2);
        assert!(fs::read_to_string(&log).unwrap().ends_with("again\n"));
    }

    #[tokio::test]
    async fn missing_program_is_named() {
        let err = Invocation::new("cip-no-such-program-xyz")
            .run_captured()
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("cip-no-such-program-xyz"), "{err}");
        assert!(err.contains("not installed"), "{err}");
    }

    /// Runs `sh -c script` under a supervisor of its own and drops it (cancels it) once `ready`
    /// exists.
    async fn cancel_when_ready(script: &str, ready: &Path, log: &Path) -> Arc<Supervisor> {
        let supervisor = Supervisor::new();
        let inv = Invocation::new("sh")
            .args(["-c", script])
            .supervised_by(&supervisor);
        let wait_ready = async {
            while !ready.exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let quiet = Events::discard();
        tokio::select! {
            _ = inv.run_logged(log, &quiet) => panic!("the command ended on its own"),
            _ = wait_ready => {}
        }
        supervisor
    }

    #[tokio::test]
    async fn a_helper_orphaned_after_the_cancellation_is_killed_too() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pid");
        let ready = dir.path().join("ready");
        // On SIGTERM the leader starts a process in a session of its own and exits at once: the
        // new process was not there to be recorded, and its parent is gone before anyone looks.
        // Only adopting orphans keeps it in sight.
        let script = format!(
            "trap 'setsid sh -c \"echo \\$\\$ > {m}.tmp && mv {m}.tmp {m} && exec sleep 30\" & exit 0' TERM; \
             echo ready > {r}; while :; do sleep 0.05; done",
            m = marker.display(),
            r = ready.display()
        );
        let supervisor = cancel_when_ready(&script, &ready, &dir.path().join("log")).await;
        assert!(supervisor.wait_for_cancelled(Duration::from_secs(15)));
        let deadline = Instant::now() + Duration::from_secs(3);
        while !marker.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid: i32 = fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
        let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // SAFETY: clean up after a failure; the pid was just read from the orphan itself.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        assert!(
            state.is_empty() || state.contains(") Z "),
            "the orphan {pid} still runs: {state}"
        );
    }

    #[tokio::test]
    async fn a_hurried_supervisor_kills_without_the_grace_period() {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        // Ignores SIGTERM: only SIGKILL ends it, after TERM_GRACE unless hurried.
        let script = format!(
            "trap '' TERM; echo > {}; while :; do sleep 0.05; done",
            ready.display()
        );
        let supervisor = cancel_when_ready(&script, &ready, &dir.path().join("log")).await;
        let dropped = Instant::now();
        supervisor.hurry();
        assert!(supervisor.wait_for_cancelled(Duration::from_secs(15)));
        assert!(
            dropped.elapsed() < TERM_GRACE,
            "killed after {:?}, not at once",
            dropped.elapsed()
        );
        // Another node's supervisor has nothing to wait for.
        assert!(Supervisor::new().wait_for_cancelled(Duration::ZERO));
    }

    #[tokio::test]
    async fn dropping_the_future_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pid");
        // The shell's child (sleep) is what must die too: it is in the same group.
        let script = format!("sleep 30 & echo $! > {}; wait", marker.display());
        let supervisor = Supervisor::new();
        let inv = Invocation::new("sh")
            .args(["-c", &script])
            .supervised_by(&supervisor);
        let log = dir.path().join("log");
        let quiet = Events::discard();
        let fut = inv.run_logged(&log, &quiet);
        let res = tokio::time::timeout(Duration::from_millis(500), fut).await;
        assert!(res.is_err(), "the command should still run");
        let pid: i32 = fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
        assert!(supervisor.wait_for_cancelled(Duration::from_secs(10)));
        let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for a reaper that is not us.
        assert!(
            state.is_empty() || state.contains(") Z "),
            "sleep {pid} still runs: {state}"
        );
    }
}
