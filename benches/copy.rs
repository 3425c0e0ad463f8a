//! Registry-to-registry copy (issue 5): a set of images, several layers each, one layer of 1 GiB of
//! random data, copied by `cip upload-all-to-local-registry` and by `skopeo copy --all` (one image after
//! another) between real registry processes; prints both wall times and cip's peak RSS.
//! Run: `cargo bench --bench copy` (about 4 GiB of free disk; runs scripts/setup-env first when the
//! registry or skopeo is missing, or skips with the reason).
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cip::registry::index::{new_entry, sha256_digest, OCI_INDEX};
use cip::registry::push::upload_blob;
use cip::registry::RegistryAuth;
use cip::registry::{Endpoint, Registry};
use sha2::{Digest, Sha256};

mod common;
use common::start_registry;

/// Writes `size` bytes of random data to `path` and returns its digest.
fn random_blob(path: &Path, size: u64) -> String {
    let mut src = fs::File::open("/dev/urandom").unwrap();
    let mut out = std::io::BufWriter::new(fs::File::create(path).unwrap());
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        src.read_exact(&mut buf[..n]).unwrap();
        h.update(&buf[..n]);
        out.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    out.flush().unwrap();
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Pushes `name:1.0.0` as an index of one amd64 image made of `layers` (path, digest, size).
async fn push_image(reg: &Registry, name: &str, layers: &[(PathBuf, String, u64)]) {
    let config = serde_json::to_vec(&serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.1.clone()).collect::<Vec<_>>()}}))
    .unwrap();
    let config_digest = sha256_digest(&config);
    let tmp = tempfile::NamedTempFile::new().unwrap();
    fs::write(tmp.path(), &config).unwrap();
    upload_blob(reg, name, tmp.path(), &config_digest, config.len() as u64)
        .await
        .unwrap();
    for (path, digest, size) in layers {
        if !reg.blob_exists(name, digest).await.unwrap() {
            upload_blob(reg, name, path, digest, *size).await.unwrap();
        }
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layers.iter().map(|(_, d, s)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let md = sha256_digest(&manifest);
    reg.put_manifest(
        &reg.digest_ref(name, &md),
        manifest.clone().into(),
        "application/vnd.oci.image.manifest.v1+json",
    )
    .await
    .unwrap();
    let entry = new_entry(
        &cip::platform::Platform::new("linux", "amd64", None),
        &md,
        manifest.len() as u64,
        "application/vnd.oci.image.manifest.v1+json",
    );
    let index = common::one_entry_index(&entry);
    reg.put_manifest(&reg.tag_ref(name, "1.0.0"), index, OCI_INDEX)
        .await
        .unwrap();
}

/// Peak RSS (KiB) of the largest child waited for so far.
fn children_max_rss_kib() -> i64 {
    // SAFETY: getrusage fills the struct we pass; no other memory is touched.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u.ru_maxrss
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    // `cargo test --benches` runs a small version.
    let big: u64 = if full { 1 << 30 } else { 8 << 20 };
    if let Err(why) = common::setup::prepare("copy", &["docker-registry", "skopeo"], &[]) {
        println!("copy: skipped: {why}");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let src = start_registry(Some(work.path()));
    let dst_cip = start_registry(Some(work.path()));
    let dst_skopeo = start_registry(Some(work.path()));
    let rt = tokio::runtime::Runtime::new().unwrap();

    // Images: base (4 small layers + the big one), and three children sharing base's layers plus 2 own.
    let blobs = work.path().join("blobs");
    fs::create_dir_all(&blobs).unwrap();
    let layer = |i: usize, size: u64| {
        let p = blobs.join(format!("layer-{i}"));
        let d = random_blob(&p, size);
        (p, d, size)
    };
    let t = Instant::now();
    let mut base: Vec<_> = (0..4).map(|i| layer(i, 4 << 20)).collect();
    base.push(layer(4, big));
    let reg = rt
        .block_on(Registry::connect(
            Endpoint::new(&src.addr),
            RegistryAuth::Anonymous,
        ))
        .unwrap();
    let names = ["base", "app-a", "app-b", "app-c"];
    rt.block_on(push_image(&reg, "base", &base));
    for (k, name) in names.iter().enumerate().skip(1) {
        let mut layers = base.clone();
        layers.push(layer(10 + 2 * k, 16 << 20));
        layers.push(layer(11 + 2 * k, 2 << 20));
        rt.block_on(push_image(&reg, name, &layers));
    }
    let total_mib = (big + 4 * (4 << 20) + 3 * (18 << 20)) as f64 / (1 << 20) as f64;
    println!("source: 4 images, {total_mib:.0} MiB of distinct blobs (largest layer {} MiB), seeded in {:.1}s", big >> 20, t.elapsed().as_secs_f64());

    // A project naming those images, for cip.
    let project = work.path().join("project");
    for (i, name) in names.iter().enumerate() {
        let d = project.join(format!("contexts/{i:02}-{name}"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
        fs::write(
            d.join("info.edn"),
            "{:version \"1.0.0\" :platforms #{\"linux/amd64\"}}\n",
        )
        .unwrap();
    }

    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_cip"))
        .args([
            "upload-all-to-local-registry",
            "--remote-registry",
            &src.addr,
            "--local-registry",
            &dst_cip.addr,
            "-C",
        ])
        .arg(&project)
        .output()
        .unwrap();
    let cip_time = t.elapsed().as_secs_f64();
    let cip_rss = children_max_rss_kib();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let t = Instant::now();
    for name in names {
        let status = Command::new("skopeo")
            .args([
                "copy",
                "--all",
                "--quiet",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
            ])
            .arg(format!("docker://{}/{name}:1.0.0", src.addr))
            .arg(format!("docker://{}/{name}:1.0.0", dst_skopeo.addr))
            .status()
            .unwrap();
        assert!(status.success());
    }
    let skopeo_time = t.elapsed().as_secs_f64();

    println!("registry-to-registry copy of the set:");
    println!("  cip upload-all-to-local-registry: {cip_time:>7.2} s   peak RSS {:.1} MiB (goal < 100 MiB)", cip_rss as f64 / 1024.0);
    println!("  skopeo copy --all, one by one:    {skopeo_time:>7.2} s");
    println!(
        "  ratio skopeo / cip:               {:>7.2}x (goal >= 1)",
        skopeo_time / cip_time
    );
}
