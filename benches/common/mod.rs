//! Shared pieces of the benchmarks: generated project trees (`n` contexts with a random, seeded DAG),
//! a real registry process, and the machine setup a part needs (`setup`).
#![allow(dead_code)]
pub mod setup;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A small deterministic PRNG (xorshift64*), so every run measures the same trees.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Writes `root/contexts/NNNNN-img-i` for i in 0..n. Context i depends on up to `max_parents` earlier
/// ones; `width` bounds how far back a parent may be (smaller = deeper graph). Returns parents per image.
pub fn generate(
    root: &Path,
    n: usize,
    max_parents: usize,
    width: usize,
    seed: u64,
) -> Vec<Vec<usize>> {
    let mut rng = Rng::new(seed);
    let mut all = Vec::with_capacity(n);
    for i in 0..n {
        let mut parents = Vec::new();
        if i > 0 {
            for _ in 0..rng.below(max_parents as u64 + 1) {
                let lo = i.saturating_sub(width);
                let p = lo + rng.below((i - lo) as u64) as usize;
                if !parents.contains(&p) {
                    parents.push(p);
                }
            }
        }
        write_context(root, i, &parents);
        all.push(parents);
    }
    all
}

pub fn context_dir(root: &Path, i: usize) -> std::path::PathBuf {
    root.join("contexts").join(format!("{i:05}-img-{i}"))
}

fn write_context(root: &Path, i: usize, parents: &[usize]) {
    let dir = context_dir(root, i);
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("info.edn"),
        "{:version \"1.0.0\" :platforms #{\"linux/amd64\"}}\n",
    )
    .unwrap();
    let mut df = String::from("# generated\nARG REGISTRY\n");
    match parents.split_first() {
        None => df.push_str("FROM scratch\n"),
        Some((first, rest)) => {
            df.push_str(&format!(
                "FROM ${{REGISTRY}}/img-{first}:1.0.0 AS base\nARG REGISTRY\n"
            ));
            for p in rest {
                df.push_str(&format!(
                    "COPY --from=${{REGISTRY}}/img-{p}:1.0.0 /x /x-{p}\n"
                ));
            }
        }
    }
    df.push_str("COPY payload /payload\n");
    fs::write(dir.join("Dockerfile"), df).unwrap();
    fs::write(dir.join("payload"), format!("{i}\n")).unwrap();
}

/// Runs the bench part `part` once `tools` and `files` are there (see `prepare`), else prints why
/// it is skipped.
pub fn run_prepared(part: &str, tools: &[&str], files: &[std::path::PathBuf], run: impl FnOnce()) {
    match setup::prepare(part, tools, files) {
        Ok(()) => run(),
        Err(why) => println!("{part}: skipped: {why}"),
    }
}

/// A real registry process on a free loopback port, stopped when dropped.
pub struct RegistryProcess {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl RegistryProcess {
    /// How many requests the registry logged as answered (it logs them at level info, which
    /// `REGISTRY_LOG_LEVEL=info` in its environment turns on).
    pub fn requests_logged(&self) -> usize {
        fs::read_to_string(self._dir.path().join("registry.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("msg=\"response completed"))
            .count()
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RegistryProcess {
    /// CPU seconds (user + system) the registry process has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which is in parentheses): utime and stime are 14 and 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // SAFETY: sysconf only reads a system constant.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        (ticks(11) + ticks(12)) / hz
    }
}

/// Starts `docker-registry serve` with its storage in a temporary directory (under `root` if given),
/// configured as Debian's packaged default (in-memory blob descriptor cache), without access log.
pub fn start_registry(root: Option<&Path>) -> RegistryProcess {
    let dir = match root {
        Some(r) => tempfile::tempdir_in(r).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let data = dir.path().join("data");
    serve(dir, &data, "docker-registry", &[])
}

impl RegistryProcess {
    /// A second registry process serving this one's storage: `program` (another build of the
    /// registry, or `docker-registry`) with extra environment variables (for the Go runtime, e.g.
    /// `GOGC`).
    pub fn twin(&self, program: &str, env: &[(&str, &str)]) -> RegistryProcess {
        serve(
            tempfile::tempdir().unwrap(),
            &self._dir.path().join("data"),
            program,
            env,
        )
    }
}

fn serve(
    dir: tempfile::TempDir,
    data: &Path,
    program: &str,
    env: &[(&str, &str)],
) -> RegistryProcess {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("config.yml");
    fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            data.display()
        ),
    )
    .unwrap();
    let child = Command::new(program)
        .arg("serve")
        .arg(&config)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(
            fs::File::create(dir.path().join("registry.log"))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        )
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (run scripts/setup-env)"));
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    RegistryProcess {
        child,
        addr,
        _dir: dir,
    }
}

/// An OCI index of one entry, as another tool would have pushed it (the benches seed registries
/// with it; cip's own indexes come from its index writer).
pub fn one_entry_index(entry: &cip::registry::index::Entry) -> bytes::Bytes {
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": cip::registry::index::OCI_INDEX,
        "manifests": [entry.descriptor],
    });
    serde_json::to_vec_pretty(&index).unwrap().into()
}
