//! Benchmarks of issue 3, printed as figures (run `cargo bench --bench publish`; a part whose tools or
//! busybox files are missing runs scripts/setup-env first, or is skipped with the reason):
//! 1. no-op `publish-locally` of 1000 contexts all published in a local registry, against one
//!    `skopeo inspect` after another for the same images;
//! 2. scheduling: a generated DAG of tasks that each sleep a known time, wall time against the
//!    critical path with --jobs >= the width;
//! 3. cip's overhead over one raw buildah build (and build + push) of the same context;
//! 4. a first `cip plan` of 1000 contexts, none published and all published, against the same GETs
//!    by `curl --parallel` (part `plan`).
mod common;
use common::start_registry;

use std::fs;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cip::registry::index::{new_entry, sha256_digest, OCI_INDEX};
use cip::registry::RegistryAuth;
use cip::registry::{Endpoint, Registry};
use cip::schedule::{self, Task};

/// Runs cip with `args` on the project `dir` (`-C DIR` last), checks it succeeded and returns its
/// stderr and wall time in seconds.
fn cip_on(dir: &std::path::Path, args: &[&str]) -> (String, f64) {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_cip"))
        .args(args)
        .arg("-C")
        .arg(dir)
        .output()
        .unwrap();
    let took = t.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (stderr, took)
}

/// Pushes one tiny single-layer image as `name:1.0.0` under every name: an index, like cip
/// publishes, or with `single` the platform's manifest itself, as a plain `docker push` leaves it.
async fn seed(addr: &str, names: &[String], single: bool) {
    let reg = Arc::new(
        Registry::connect(Endpoint::new(addr), RegistryAuth::Anonymous)
            .await
            .unwrap(),
    );
    let layer = b"tiny layer".to_vec();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256_digest(&layer), "size": layer.len()}],
    }))
    .unwrap();
    let platform = cip::platform::Platform::host();
    let entry = new_entry(
        &platform,
        &sha256_digest(&manifest),
        manifest.len() as u64,
        "application/vnd.oci.image.manifest.v1+json",
    );
    let index = common::one_entry_index(&entry);
    let blobs_dir = tempfile::tempdir().unwrap();
    for (bytes, d) in [
        (&layer, sha256_digest(&layer)),
        (&config, sha256_digest(&config)),
    ] {
        fs::write(blobs_dir.path().join(d.replace(':', "-")), bytes).unwrap();
    }
    let tasks = names.iter().map(|name| {
        let (reg, manifest, index, layer, config) = (
            reg.clone(),
            manifest.clone(),
            index.clone(),
            layer.clone(),
            config.clone(),
        );
        let dir = blobs_dir.path().to_path_buf();
        let name = name.clone();
        async move {
            for (bytes, d) in [
                (&layer, sha256_digest(&layer)),
                (&config, sha256_digest(&config)),
            ] {
                let path = dir.join(d.replace(':', "-"));
                cip::registry::push::upload_blob(&reg, &name, &path, &d, bytes.len() as u64)
                    .await
                    .unwrap();
            }
            let digest = sha256_digest(&manifest);
            reg.put_manifest(
                &reg.digest_ref(&name, &digest),
                manifest.clone().into(),
                "application/vnd.oci.image.manifest.v1+json",
            )
            .await
            .unwrap();
            let (tag_body, media_type) = if single {
                (
                    manifest.clone(),
                    "application/vnd.oci.image.manifest.v1+json",
                )
            } else {
                (index.to_vec(), OCI_INDEX)
            };
            reg.put_manifest(&reg.tag_ref(&name, "1.0.0"), tag_body.into(), media_type)
                .await
                .unwrap();
        }
    });
    futures_util::stream::iter(tasks)
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

use futures_util::StreamExt;

/// User plus system CPU seconds of all children waited for so far.
fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass; no other memory is touched.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn noop_publish(n: usize) {
    let reg = start_registry(None);
    let dir = tempfile::tempdir().unwrap();
    common::generate(dir.path(), n, 3, 50, 7);
    let names: Vec<String> = (0..n).map(|i| format!("img-{i}")).collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = Instant::now();
    rt.block_on(seed(&reg.addr, &names, false));
    println!("seeded {n} images in {:.1}s", t.elapsed().as_secs_f64());

    let run_cip_on = |addr: &str| {
        let args = [
            "publish-locally",
            "--builder",
            "buildah",
            "--local-registry",
            addr,
        ];
        let (stderr, took) = cip_on(dir.path(), &args);
        assert!(stderr.contains("up to date"));
        Duration::from_secs_f64(took)
    };
    let median_of_5 = |addr: &str| {
        run_cip_on(addr); // warm-up
        let mut runs: Vec<Duration> = (0..5).map(|_| run_cip_on(addr)).collect();
        runs.sort();
        runs[2].as_secs_f64()
    };
    let run_cip = || run_cip_on(&reg.addr);
    let cip_median = median_of_5(&reg.addr);
    // Where the time goes: the same project checked (no registry) and planned (no builder).
    let timed = |args: &[&str]| cip_on(dir.path(), args).1;
    let phases = Command::new(env!("CARGO_BIN_EXE_cip"))
        .args([
            "publish-locally",
            "--builder",
            "buildah",
            "--local-registry",
            &reg.addr,
            "-C",
        ])
        .arg(dir.path())
        .env("CIP_TIMINGS", "1")
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&phases.stderr)
        .lines()
        .filter(|l| l.starts_with("timing:"))
    {
        println!("    {line}");
    }
    let cpu_before = children_cpu_seconds();
    let reg_before = reg.cpu_seconds();
    run_cip();
    println!(
        "    cpu time of one no-op run (user + system): {:.3} s; the registry's meanwhile: {:.3} s",
        children_cpu_seconds() - cpu_before,
        reg.cpu_seconds() - reg_before
    );
    for c in ["8", "16", "64", "128"] {
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_cip"))
            .args(["plan", "--local-registry", &reg.addr, "-C"])
            .arg(dir.path())
            .env("CIP_QUERY_CONCURRENCY", c)
            .output()
            .unwrap();
        assert!(out.status.success());
        println!(
            "    cip plan with {c:>3} concurrent lookups: {:.3} s",
            t.elapsed().as_secs_f64()
        );
    }
    let check = timed(&["check"]);
    let plan = timed(&["plan", "--local-registry", &reg.addr]);

    // The floor: the same manifest GETs by a minimal HTTP client (curl, 32 in parallel), and as
    // many of the registry's cheapest request (`GET /v2/`), with the registry's CPU time for each.
    let manifest_urls = |addr: &str| -> Vec<String> {
        names
            .iter()
            .map(|n| format!("http://{addr}/v2/{n}/manifests/1.0.0"))
            .collect()
    };
    let (floor, floor_cpu) = curl_parallel(&reg, dir.path(), &manifest_urls(&reg.addr));
    let pings = vec![format!("http://{}/v2/", reg.addr); n];
    let (ping, ping_cpu) = curl_parallel(&reg, dir.path(), &pings);

    // The registry's own cost per request sets the floor: Debian's 2.8.2 rebuilds its whole URL
    // router (every route's regexp) for each request, and the garbage that makes keeps Go's
    // collector busy. The same storage served with a relaxed collector (GOGC=400), and by another
    // build of the registry if CIP_BENCH_REGISTRY_BIN names one (e.g. 2.8.2 with the router built
    // once, as upstream distribution/distribution#3683 does), shows cip where the registry is less
    // of a floor.
    let mut variants = vec![Variant {
        label: "the same storage served with GOGC=400".into(),
        program: "docker-registry".into(),
        env: vec![("GOGC", "400")],
    }];
    if let Ok(bin) = std::env::var("CIP_BENCH_REGISTRY_BIN") {
        variants.push(Variant {
            label: format!("the same storage served by {bin}"),
            program: bin,
            env: vec![],
        });
    }
    let mut twins = Vec::new();
    for Variant {
        label,
        program,
        env,
    } in &variants
    {
        let twin = reg.twin(program, env);
        let median = median_of_5(&twin.addr);
        let (floor, cpu) = curl_parallel(&twin, dir.path(), &manifest_urls(&twin.addr));
        let pings = vec![format!("http://{}/v2/", twin.addr); n];
        let (ping, _) = curl_parallel(&twin, dir.path(), &pings);
        twins.push((label.clone(), median, floor, cpu, ping));
    }

    let t = Instant::now();
    for name in &names {
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{}/{name}:1.0.0", reg.addr))
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    let skopeo = t.elapsed().as_secs_f64();
    println!("no-op publish-locally, {n} contexts, all published:");
    println!(
        "  cip publish-locally (median of 5): {:>8.3} s   (goal < 1 s)",
        cip_median
    );
    println!("    for comparison: cip check {check:.3} s (scan, graph), cip plan {plan:.3} s (+ digests, registry)");
    println!(
        "  the same GETs by curl --parallel:  {floor:>8.3} s   (registry cpu {floor_cpu:.3} s)"
    );
    println!("  {n} x GET /v2/ by curl --parallel: {ping:>8.3} s   (registry cpu {ping_cpu:.3} s: its per-request floor)");
    for (label, median, floor, cpu, ping) in &twins {
        println!("  {label}:");
        println!("    cip publish-locally (median of 5): {median:>8.3} s   (goal < 1 s)");
        println!(
            "    the same GETs by curl --parallel:  {floor:>8.3} s   (registry cpu {cpu:.3} s)"
        );
        println!("    {n} x GET /v2/ by curl --parallel: {ping:>8.3} s");
    }
    println!("  sequential skopeo inspect:         {:>8.3} s", skopeo);
    println!(
        "  ratio skopeo / cip:                {:>8.1}x",
        skopeo / cip_median
    );
}

/// A repeated no-op run over single-platform images (a tag pointing at one manifest, not an index):
/// the first run reads each manifest and its config (for the platform), the next ones only the
/// manifest, since a config's platform is cached. Prints the requests per image of the repeated run
/// (goal 1.0) and its time against the same manifest GETs by `curl --parallel`.
fn noop_single_platform(n: usize) {
    let seeded = start_registry(None);
    let dir = tempfile::tempdir().unwrap();
    common::generate(dir.path(), n, 3, 50, 7);
    let names: Vec<String> = (0..n).map(|i| format!("img-{i}")).collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(seed(&seeded.addr, &names, true));
    // The same storage, served with every request logged.
    let reg = seeded.twin("docker-registry", &[("REGISTRY_LOG_LEVEL", "info")]);
    let run = || {
        let before = reg.requests_logged();
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_cip"))
            .args(["publish-locally", "--local-registry", &reg.addr, "-C"])
            .arg(dir.path())
            .output()
            .unwrap();
        let took = t.elapsed().as_secs_f64();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stderr).contains("up to date"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The registry writes its log line as it answers: let the last ones land.
        std::thread::sleep(Duration::from_millis(300));
        (reg.requests_logged() - before, took)
    };
    let (first, first_time) = run();
    let (second, second_time) = run();
    let urls: Vec<String> = names
        .iter()
        .map(|n| format!("http://{}/v2/{n}/manifests/1.0.0", reg.addr))
        .collect();
    let (curl, _) = curl_parallel(&reg, dir.path(), &urls);
    println!("no-op publish-locally, {n} single-platform images:");
    println!(
        "  first run:    {:>6} requests ({:.3} per image), {first_time:.3} s",
        first,
        first as f64 / n as f64
    );
    println!(
        "  repeated run: {:>6} requests ({:.3} per image, goal 1.0), {second_time:.3} s",
        second,
        second as f64 / n as f64
    );
    println!("  the same {n} manifest GETs by curl --parallel: {curl:.3} s");
}

/// A first `cip plan` of `n` images, none published yet (each version tag and each `latest` is a
/// 404), then of the same images published (one index each), each against `curl --parallel`
/// sending the same GETs: the goal is <= 1.1x for both. Also prints the requests per image the
/// registry answered for the unpublished plan (2.0: the version tag, then `latest`).
fn first_plan(n: usize) {
    let reg = start_registry(None);
    let dir = tempfile::tempdir().unwrap();
    common::generate(dir.path(), n, 3, 50, 7);
    let names: Vec<String> = (0..n).map(|i| format!("img-{i}")).collect();
    let plan_on = |addr: &str| {
        cip_on(
            dir.path(),
            &["plan", "--builder", "buildah", "--local-registry", addr],
        )
        .1
    };
    let median = |f: &dyn Fn() -> f64| {
        f(); // warm-up
        let mut runs: Vec<f64> = (0..5).map(|_| f()).collect();
        runs.sort_by(f64::total_cmp);
        runs[2]
    };
    let addr = reg.addr.clone();
    let urls = |tags: &[&str]| -> Vec<String> {
        let mut out = Vec::new();
        for n in &names {
            for t in tags {
                out.push(format!("http://{addr}/v2/{n}/manifests/{t}"));
            }
        }
        out
    };
    let missing_urls = urls(&["1.0.0", "latest"]);
    let missing_cip = median(&|| plan_on(&reg.addr));
    let missing_curl = median(&|| curl_parallel(&reg, dir.path(), &missing_urls).0);
    let logged = reg.twin("docker-registry", &[("REGISTRY_LOG_LEVEL", "info")]);
    let before = logged.requests_logged();
    plan_on(&logged.addr);
    std::thread::sleep(Duration::from_millis(300));
    let requests = logged.requests_logged() - before;
    drop(logged);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(seed(&reg.addr, &names, false));
    let published_urls = urls(&["1.0.0"]);
    let published_cip = median(&|| plan_on(&reg.addr));
    let published_curl = median(&|| curl_parallel(&reg, dir.path(), &published_urls).0);
    println!("first cip plan, {n} contexts:");
    println!(
        "  none published: cip plan {missing_cip:>7.3} s, the same {} GETs by curl --parallel \
         {missing_curl:>7.3} s: ratio {:.2} (goal <= 1.1); {requests} requests ({:.2} per image)",
        missing_urls.len(),
        missing_cip / missing_curl,
        requests as f64 / n as f64
    );
    println!(
        "  all published:  cip plan {published_cip:>7.3} s, the same {} GETs by curl --parallel \
         {published_curl:>7.3} s: ratio {:.2} (goal <= 1.1)",
        published_urls.len(),
        published_cip / published_curl
    );
}

/// Another way to serve the registry's storage, measured like the registry as installed.
struct Variant {
    label: String,
    program: String,
    env: Vec<(&'static str, &'static str)>,
}

/// Wall time of GETs of `urls` by `curl --parallel` (32 at a time, connections reused), and the
/// registry's CPU time meanwhile.
fn curl_parallel(
    reg: &common::RegistryProcess,
    dir: &std::path::Path,
    urls: &[String],
) -> (f64, f64) {
    let list = dir.join("curl-urls.txt");
    let config: String = urls
        .iter()
        .map(|u| format!("url = \"{u}\"\noutput = \"/dev/null\"\n"))
        .collect();
    fs::write(&list, config).unwrap();
    let cpu = reg.cpu_seconds();
    let t = Instant::now();
    let status = Command::new("curl")
        .args([
            "-s",
            "--no-progress-meter",
            "--parallel",
            "--parallel-max",
            "32",
        ])
        .args([
            "-H",
            "Accept: application/vnd.oci.image.index.v1+json",
            "-K",
        ])
        .arg(&list)
        .status()
        .unwrap();
    assert!(status.success());
    (t.elapsed().as_secs_f64(), reg.cpu_seconds() - cpu)
}

fn scheduling(n: usize) {
    // A random DAG; each task sleeps a random known time between 50 and 300 ms.
    let dir = tempfile::tempdir().unwrap();
    let parents = common::generate(dir.path(), n, 3, 40, 11);
    let mut rng = common::Rng::new(99);
    let cost: Vec<f64> = (0..n)
        .map(|_| 0.05 + rng.below(250) as f64 / 1000.0)
        .collect();
    let tasks: Vec<Task> = parents
        .iter()
        .enumerate()
        .map(|(i, ps)| Task {
            deps: ps.clone(),
            pool: Some(0),
            cost: cost[i],
        })
        .collect();
    // Critical path: the heaviest chain.
    let mut finish = vec![0.0f64; n];
    for i in 0..n {
        finish[i] = cost[i] + parents[i].iter().map(|&p| finish[p]).fold(0.0, f64::max);
    }
    let critical = finish.iter().cloned().fold(0.0, f64::max);
    let width = max_width(&parents, &cost);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = Instant::now();
    let costs = cost.clone();
    let outcomes = rt.block_on(schedule::run(
        &tasks,
        schedule::Options::jobs(width, false),
        move |i| {
            let d = Duration::from_secs_f64(costs[i]);
            async move {
                tokio::time::sleep(d).await;
                Ok(())
            }
        },
    ));
    let wall = t.elapsed().as_secs_f64();
    assert!(outcomes.iter().all(|o| *o == schedule::Outcome::Succeeded));
    println!("scheduling, {n} tasks, --jobs {width} (the most tasks ever runnable at once):");
    println!("  critical path: {critical:>8.3} s");
    println!(
        "  wall time:     {wall:>8.3} s   ratio {:.3} (goal <= 1.15)",
        wall / critical
    );
}

/// The most tasks that run at once in an unbounded as-soon-as-possible schedule.
fn max_width(parents: &[Vec<usize>], cost: &[f64]) -> usize {
    let n = parents.len();
    let mut start = vec![0.0f64; n];
    let mut end = vec![0.0f64; n];
    for i in 0..n {
        start[i] = parents[i].iter().map(|&p| end[p]).fold(0.0, f64::max);
        end[i] = start[i] + cost[i];
    }
    (0..n)
        .map(|i| {
            (0..n)
                .filter(|&j| start[j] <= start[i] && start[i] < end[j])
                .count()
        })
        .max()
        .unwrap_or(1)
}

/// What the no-op publish part runs: the registry, cip's builder, and the two clients it is compared to.
const NOOP_TOOLS: &[&str] = &["docker-registry", "buildah", "skopeo", "curl"];
/// What the overhead part runs besides the demo's busybox binaries.
const OVERHEAD_TOOLS: &[&str] = &["docker-registry", "buildah"];

fn overhead() {
    let busybox = common::setup::demo_busybox_dir();
    let reg = start_registry(None);
    let store = tempfile::tempdir().unwrap();
    let global = format!(
        "--storage-driver vfs --root {} --runroot {}",
        store.path().join("root").display(),
        store.path().join("runroot").display()
    );
    let project = tempfile::tempdir().unwrap();
    let ctx = project.path().join("contexts/00-busybox");
    fs::create_dir_all(&ctx).unwrap();
    for f in ["Dockerfile", "busybox-amd64", "busybox-arm64"] {
        fs::copy(busybox.join(f), ctx.join(f)).unwrap();
    }
    fs::write(
        ctx.join("info.edn"),
        "{:version \"1.0.0\" :platforms #{\"linux/amd64\"}}\n",
    )
    .unwrap();
    let buildah = |args: &[&str]| {
        let mut cmd = Command::new("buildah");
        cmd.args(global.split_whitespace())
            .args(args)
            .env("BUILDAH_ISOLATION", "chroot");
        let t = Instant::now();
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed().as_secs_f64()
    };
    let cip = |args: &[&str]| {
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_cip"))
            .args(args)
            .args(["--builder", "buildah", "-C"])
            .arg(project.path())
            .env("CIP_BUILDAH_GLOBAL_ARGS", &global)
            .env("BUILDAH_ISOLATION", "chroot")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed().as_secs_f64()
    };
    let ctx_s = ctx.to_str().unwrap();
    let runs = 3;
    let (mut raw_build, mut raw_push, mut cip_build, mut cip_publish) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..runs {
        let tag = format!("{}/raw:{i}", reg.addr);
        raw_build += buildah(&[
            "bud",
            "--layers=false",
            "--platform",
            "linux/amd64",
            "-t",
            &tag,
            ctx_s,
        ]);
        raw_push += buildah(&[
            "push",
            "--tls-verify=false",
            &tag,
            &format!("docker://{tag}"),
        ]);
        buildah(&["rmi", "-a", "-f"]);
        fs::write(
            ctx.join("info.edn"),
            format!("{{:version \"1.0.{i}\" :platforms #{{\"linux/amd64\"}}}}\n"),
        )
        .unwrap();
        cip_build += cip(&["build", "--local-registry", "bench.local"]);
        buildah(&["rmi", "-a", "-f"]);
        cip_publish += cip(&["publish-locally", "--local-registry", &reg.addr]);
    }
    let r = runs as f64;
    println!("overhead over a raw buildah build of one context (mean of {runs}):");
    println!("  buildah bud:                  {:>7.3} s", raw_build / r);
    println!(
        "  cip build:                    {:>7.3} s   ratio {:.2}",
        cip_build / r,
        cip_build / raw_build
    );
    println!(
        "  buildah bud + buildah push:   {:>7.3} s",
        (raw_build + raw_push) / r
    );
    println!(
        "  cip publish-locally:          {:>7.3} s   ratio {:.2}",
        cip_publish / r,
        cip_publish / (raw_build + raw_push)
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    // CIP_BENCH_PARTS=noop,single,plan,schedule,overhead runs a subset.
    let parts = std::env::var("CIP_BENCH_PARTS")
        .unwrap_or_else(|_| "noop,single,plan,schedule,overhead".into());
    if full {
        if parts.contains("noop") {
            common::run_prepared("noop publish", NOOP_TOOLS, &[], || noop_publish(1000));
        }
        if parts.contains("single") {
            common::run_prepared("single-platform no-op", NOOP_TOOLS, &[], || {
                noop_single_platform(1000)
            });
        }
        if parts.contains("plan") {
            common::run_prepared("first plan", NOOP_TOOLS, &[], || first_plan(1000));
        }
        if parts.contains("schedule") {
            scheduling(300);
        }
        if parts.contains("overhead") {
            let files = common::setup::demo_busybox_files();
            common::run_prepared("overhead", OVERHEAD_TOOLS, &files, overhead);
        }
    } else {
        // `cargo test --benches`: a quick smoke run of each part.
        common::run_prepared("noop publish", NOOP_TOOLS, &[], || noop_publish(20));
        common::run_prepared("single-platform no-op", NOOP_TOOLS, &[], || {
            noop_single_platform(20)
        });
        common::run_prepared("first plan", NOOP_TOOLS, &[], || first_plan(20));
        scheduling(30);
    }
}
