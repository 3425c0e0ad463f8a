//! `cip check` on generated trees of 100, 1000 and 5000 contexts with a random DAG.
//! Goal (issue 2): under 100 ms for 1000 contexts on a 2-core machine. Run: `cargo bench --bench check`.
mod common;
use common as gen;

use std::process::Command;
use std::time::{Duration, Instant};

fn time_check(dir: &std::path::Path) -> Duration {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_cip"))
        .args(["check", "-C"])
        .arg(dir)
        .output()
        .expect("run cip");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run a quick smoke there.
    let sizes: &[usize] = if std::env::args().any(|a| a == "--bench") {
        &[100, 1000, 5000]
    } else {
        &[100]
    };
    println!(
        "{:>8}  {:>10}  {:>10}  {:>10}",
        "contexts", "min ms", "median ms", "max ms"
    );
    for &n in sizes {
        let dir = tempfile::tempdir().unwrap();
        gen::generate(dir.path(), n, 3, 50, 42 + n as u64);
        time_check(dir.path()); // warm the page cache
        let mut runs: Vec<Duration> = (0..7).map(|_| time_check(dir.path())).collect();
        runs.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{n:>8}  {:>10.1}  {:>10.1}  {:>10.1}",
            ms(runs[0]),
            ms(runs[runs.len() / 2]),
            ms(runs[runs.len() - 1])
        );
    }
}
