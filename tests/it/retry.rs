//! Retries of registry requests against a real registry behind a fault-injecting proxy: resets,
//! 503 answers and uploads cut midway are retried and recovered from; a registry that is down fails
//! after a bounded number of attempts and time; 401 and 404 are never retried.
use crate::common;

use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cip::registry::push::upload_blob;
use cip::registry::retry::RetryPolicy;
use cip::registry::RegistryAuth;
use cip::registry::{Endpoint, Registry, Timeouts};
use common::faultproxy::{Fault, FaultProxy};
use common::workspace::{results, text, Workspace};
use common::{RegistryOptions, TestRegistry};
use futures_util::TryStreamExt;
use serde_json::json;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A fast policy whose retry lines are collected instead of printed.
fn captured(attempts: u32) -> (RetryPolicy, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let policy = RetryPolicy {
        attempts,
        max_total: Duration::from_secs(20),
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        events: Default::default(),
    }
    .with_log(move |line| sink.lock().unwrap().push(line.to_string()));
    (policy, lines)
}

async fn connect(addr: &str, policy: RetryPolicy) -> Registry {
    let mut reg = Registry::connect(Endpoint::new(addr), RegistryAuth::Anonymous)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e:#}"));
    assert!(reg.plain_http(), "a plain-HTTP loopback registry");
    reg.set_retry_policy(policy);
    reg
}

fn sha256(bytes: &[u8]) -> String {
    cip::registry::index::sha256_digest(bytes)
}

/// Writes `bytes` as a blob file in `dir` and uploads it to `repo`; returns its digest.
async fn upload(reg: &Registry, repo: &str, dir: &Path, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let path = dir.join(digest.replace(':', "-"));
    fs::write(&path, bytes).unwrap();
    upload_blob(reg, repo, &path, &digest, bytes.len() as u64)
        .await
        .unwrap_or_else(|e| panic!("upload {digest}: {e:#}"));
    digest
}

/// Pushes a one-layer linux/amd64 image as `repo:tag`; returns the layer's digest.
async fn push_small_image(reg: &Registry, repo: &str, tag: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let layer = format!("layer of {repo}:{tag}").into_bytes();
    let layer_digest = upload(reg, repo, dir.path(), &layer).await;
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "config": {}
    }))
    .unwrap();
    let config_digest = upload(reg, repo, dir.path(), &config).await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len()
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len()
        }]
    }))
    .unwrap();
    reg.put_manifest(&reg.tag_ref(repo, tag), Bytes::from(manifest), MANIFEST)
        .await
        .unwrap_or_else(|e| panic!("put manifest {repo}:{tag}: {e:#}"));
    layer_digest
}

fn lines_of(lines: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    lines.lock().unwrap().clone()
}

#[test]
fn library_requests_recover_from_resets_and_503() {
    let reg = TestRegistry::start();
    let rt = runtime();
    rt.block_on(async {
        let direct = connect(&reg.addr(), RetryPolicy::no_retry()).await;
        push_small_image(&direct, "app", "1.0.0").await;
    });

    // The first connection is `connect`'s plain-HTTP sniff (`GET /v2/`): let it through, so that
    // the faults hit the library request.
    let proxy = FaultProxy::start(
        &reg.addr(),
        vec![Fault::Pass, Fault::Reset, Fault::Status503, Fault::Reset],
    );
    let (policy, lines) = captured(5);
    let published = rt.block_on(async {
        let flaky = connect(&proxy.addr(), policy).await;
        flaky.published("app", "1.0.0").await
    });
    let published = published
        .unwrap_or_else(|e| panic!("published through the flaky proxy: {e:#}"))
        .expect("app:1.0.0 is published");
    assert_eq!(published.platforms().len(), 1);
    assert_eq!(published.platforms()[0].to_string(), "linux/amd64");
    // A request only succeeds on a connection without a fault, and faults go to the first ones.
    assert_eq!(proxy.fault_count(), 3);
    let lines = lines_of(&lines);
    assert!(!lines.is_empty(), "no retry was logged");
    for line in &lines {
        assert!(
            line.starts_with(&format!(
                "retry: GET manifest {}/app:1.0.0 failed (",
                proxy.addr()
            )) && line.contains("), attempt ")
                && line.contains("/5 in 0."),
            "{lines:?}"
        );
    }
}

#[test]
fn an_upload_cut_midway_restarts_from_the_first_byte() {
    let reg = TestRegistry::start();
    // The plain-HTTP sniff of `connect` takes the first connection (let through); the registry is
    // open, so the upload starts with its POST. Whether the PUT reuses that connection depends on
    // timing, so the PUT is on the second or third connection: both are reset once a megabyte went
    // through (the 3 MiB body, not the small requests before it). Either way two faults apply.
    let proxy = FaultProxy::start(
        &reg.addr(),
        vec![
            Fault::Pass,
            Fault::ResetAfter(1 << 20),
            Fault::ResetAfter(1 << 20),
        ],
    );
    let blob: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (policy, lines) = captured(5);
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let digest = rt.block_on(async {
        let flaky = connect(&proxy.addr(), policy).await;
        upload(&flaky, "big", dir.path(), &blob).await
    });
    assert_eq!(proxy.fault_count(), 2);
    let lines = lines_of(&lines);
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "retry: PUT blob {}/big@{digest} failed",
            proxy.addr()
        ))),
        "{lines:?}"
    );
    let stored = rt.block_on(async {
        let direct = connect(&reg.addr(), RetryPolicy::no_retry()).await;
        direct.blob_bytes("big", &digest).await.unwrap()
    });
    assert!(stored == blob, "the registry holds the whole blob");
}

#[test]
fn an_upload_that_stops_moving_is_cut_after_the_read_timeout_and_retried() {
    let reg = TestRegistry::start();
    // As in the test above, the PUT's body goes over the second or third connection; whichever it
    // is stops moving once a megabyte went through, and stays open.
    let proxy = FaultProxy::start(
        &reg.addr(),
        vec![
            Fault::Pass,
            Fault::StallAfter(1 << 20),
            Fault::StallAfter(1 << 20),
        ],
    );
    let blob: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let (policy, lines) = captured(4);
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let started = Instant::now();
    let digest = rt.block_on(async {
        let mut flaky = connect(&proxy.addr(), policy).await;
        flaky.set_timeouts(Timeouts {
            request: Duration::from_secs(30),
            read: Duration::from_secs(1),
        });
        upload(&flaky, "stalled", dir.path(), &blob).await
    });
    // Without a bound on pauses, the stalled PUT would wait for the HTTP client's own timeout.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let lines = lines_of(&lines);
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "retry: PUT blob {}/stalled@{digest} failed (no answer)",
            proxy.addr()
        ))),
        "{lines:?}"
    );
    let stored = rt.block_on(async {
        let direct = connect(&reg.addr(), RetryPolicy::no_retry()).await;
        direct.blob_bytes("stalled", &digest).await.unwrap()
    });
    assert!(stored == blob, "the registry holds the whole blob");
}

#[test]
fn publish_locally_through_a_flaky_registry_completes_and_logs_retries() {
    let reg = TestRegistry::start();
    let faults: Vec<Fault> = [Fault::Reset, Fault::Status503].repeat(4);
    let proxy = FaultProxy::start(&reg.addr(), faults);
    let ws = Workspace::demo();
    let out = ws.cip_env(
        &[
            "publish-locally",
            "--local-registry",
            &proxy.addr(),
            "--json",
        ],
        &[("CIP_RETRY_ATTEMPTS", "10"), ("CIP_RETRY_BASE_MS", "50")],
    );
    assert!(out.status.success(), "{}", text(&out));
    let r = results(&out);
    assert_eq!(r.len(), 4, "{r:?}");
    assert!(r.iter().all(|x| x.1 == "built"), "{r:?}");
    assert_eq!(proxy.fault_count(), 8);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let retries: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("retry: "))
        .collect();
    assert!(!retries.is_empty(), "no retry line: {}", text(&out));
    for l in &retries {
        assert!(l.contains(&proxy.addr()) && l.contains("/10 in "), "{l}");
    }

    // Everything is there: a second run through the (now healthy) proxy finds it all.
    let again = ws.cip_env(
        &[
            "publish-locally",
            "--local-registry",
            &proxy.addr(),
            "--json",
        ],
        &[("CIP_RETRY_BASE_MS", "50")],
    );
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        results(&again).iter().all(|x| x.1 == "up to date"),
        "{}",
        text(&again)
    );
}

#[test]
fn a_registry_that_is_down_fails_after_the_attempts() {
    // Connected while it ran; then it stops, and its port is closed.
    let reg = TestRegistry::start();
    let closed = reg.addr();
    let (policy, lines) = captured(3);
    let rt = runtime();
    let down = rt.block_on(connect(&closed, policy));
    drop(reg);
    let started = Instant::now();
    let err = rt
        .block_on(down.published("app", "1.0.0"))
        .expect_err("nothing listens there");
    let msg = format!("{err:#}");
    assert!(msg.starts_with("after 3 attempts over "), "{msg}");
    assert!(
        msg.contains(&format!("cannot reach registry {closed}")),
        "{msg}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let lines = lines_of(&lines);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("retry: GET manifest {closed}/app:1.0.0 failed (")),
        "{lines:?}"
    );
    assert!(lines[0].contains("attempt 2/3"), "{lines:?}");
    assert!(lines[1].contains("attempt 3/3"), "{lines:?}");
}

#[test]
fn retries_stop_when_the_time_budget_is_spent() {
    // The proxy lets cip's first look through, then resets every connection.
    let reg = TestRegistry::start();
    let mut faults = vec![Fault::Pass];
    faults.extend(std::iter::repeat_n(Fault::Reset, 5000));
    let proxy = FaultProxy::start(&reg.addr(), faults);
    let (mut policy, lines) = captured(1000);
    policy.max_total = Duration::from_secs(1);
    let rt = runtime();
    let started = Instant::now();
    let err = rt
        .block_on(async {
            let down = connect(&proxy.addr(), policy).await;
            down.blob_exists("app", &sha256(b"x")).await
        })
        .expect_err("the registry is down");
    let elapsed = started.elapsed();
    let msg = format!("{err:#}");
    assert!(msg.starts_with("after "), "{msg}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}: {msg}");
    let attempts = lines_of(&lines).len() + 1;
    assert!(
        attempts > 2 && attempts < 1000,
        "{attempts} attempts: {msg}"
    );
    assert!(
        msg.starts_with(&format!("after {attempts} attempts over ")),
        "{msg}"
    );
}

#[test]
fn cip_reports_the_attempts_against_a_registry_that_is_down() {
    let closed = format!("127.0.0.1:{}", common::free_port());
    let ws = Workspace::new(&common::demo_fixture());
    let started = Instant::now();
    let out = ws.cip_env(
        &["plan", "--local-registry", &closed],
        &[
            ("CIP_RETRY_ATTEMPTS", "3"),
            ("CIP_RETRY_MAX_SECONDS", "10"),
            ("CIP_RETRY_BASE_MS", "50"),
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(started.elapsed() < Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("after 3 attempts over "), "{}", text(&out));
    // Found out once, when connecting: no image's lookup retries on its own.
    assert!(
        stderr.contains(&format!("retry: connect to {closed} failed"))
            && stderr.contains("attempt 3/3"),
        "{}",
        text(&out)
    );
    assert!(
        !stderr.contains("GET manifest"),
        "no lookup ran: {}",
        text(&out)
    );

    let bad = ws.cip_env(
        &["plan", "--local-registry", &closed],
        &[("CIP_RETRY_ATTEMPTS", "many")],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("CIP_RETRY_ATTEMPTS"),
        "{}",
        text(&bad)
    );
}

#[test]
fn not_found_and_unauthorized_are_not_retried() {
    let reg = TestRegistry::start();
    let proxy = FaultProxy::start(&reg.addr(), vec![]);
    let (policy, lines) = captured(5);
    let rt = runtime();
    rt.block_on(async {
        let r = connect(&proxy.addr(), policy).await;
        assert!(r.published("nothing", "1.0.0").await.unwrap().is_none());
        assert!(!r.blob_exists("nothing", &sha256(b"x")).await.unwrap());
        let err = r
            .blob_bytes("nothing", &sha256(b"x"))
            .await
            .expect_err("no such blob");
        let msg = format!("{err:#}");
        assert!(!msg.contains("attempt"), "{msg}");
    });
    assert!(lines_of(&lines).is_empty(), "{:?}", lines_of(&lines));
    assert_eq!(proxy.fault_count(), 0);

    let auth_reg = TestRegistry::start_with(RegistryOptions {
        tls: false,
        auth: Some(("user".into(), "secret".into())),
    });
    let (policy, lines) = captured(5);
    let err = rt
        .block_on(async {
            let r = connect(&auth_reg.addr(), policy).await;
            r.published("app", "1.0.0").await
        })
        .expect_err("anonymous access is refused");
    let msg = format!("{err:#}");
    assert!(msg.contains("refused access"), "{msg}");
    assert!(!msg.contains("attempt"), "{msg}");
    assert!(lines_of(&lines).is_empty(), "{:?}", lines_of(&lines));
}

#[test]
fn blobs_mount_across_repositories_and_stream_out() {
    let reg = TestRegistry::start();
    let rt = runtime();
    rt.block_on(async {
        let r = connect(&reg.addr(), captured(2).0).await;
        let dir = tempfile::tempdir().unwrap();
        let data = b"a blob to mount and to stream".repeat(1000);
        let digest = upload(&r, "one", dir.path(), &data).await;

        assert!(r.mount_blob("two", "one", &digest).await.unwrap());
        assert!(r.blob_exists("two", &digest).await.unwrap());
        // The source lacks this one: the registry opens an upload session instead.
        let absent = sha256(b"not uploaded anywhere");
        assert!(!r.mount_blob("three", "one", &absent).await.unwrap());
        assert!(!r.blob_exists("three", &absent).await.unwrap());

        let (size, stream) = r.blob_stream("two", &digest).await.unwrap();
        assert_eq!(size, data.len() as u64);
        let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
        assert_eq!(chunks.concat(), data);

        let err = r
            .blob_stream("two", &absent)
            .await
            .err()
            .expect("no such blob");
        assert!(!format!("{err:#}").contains("attempt"), "{err:#}");
    });
}

#[test]
fn an_open_plain_registry_costs_one_sniff_and_no_tls_attempt() {
    let reg = TestRegistry::start();
    let proxy = FaultProxy::start(&reg.addr(), vec![]);
    let rt = runtime();
    rt.block_on(async {
        let r = connect(&proxy.addr(), RetryPolicy::no_retry()).await;
        assert_eq!(proxy.connection_count(), 1, "only the plain GET /v2/");
        for _ in 0..3 {
            assert!(r.published("nothing", "1.0.0").await.unwrap().is_none());
        }
    });
    // The lookups share one kept-alive connection.
    assert_eq!(proxy.connection_count(), 2);
}
