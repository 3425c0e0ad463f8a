//! cip.toml and the precedence of settings (flag > environment > cip.toml > default), run through
//! the real binary against real registries and the real buildah.
use crate::common;

use std::fs;

use common::workspace::{results, set_info, text, Workspace};
use common::TestRegistry;
use serde_json::Value;

fn write_config(ws: &Workspace, text: &str) {
    fs::write(ws.project().join("cip.toml"), text).unwrap();
}

/// `cip ARGS --json` as JSON, checked to succeed.
fn json(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ws.cip_env(&all, env);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

#[test]
fn the_local_registry_of_cip_toml_is_used_and_a_flag_or_the_environment_wins() {
    let from_file = TestRegistry::start();
    let from_env = TestRegistry::start();
    let from_flag = TestRegistry::start();
    let ws = Workspace::demo();
    write_config(
        &ws,
        &format!("[registry]\nlocal = \"{}\"\n", from_file.addr()),
    );

    // publish-locally with no registry named publishes where cip.toml says.
    let out = ws.cip(&["publish-locally", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        results(&out).iter().all(|r| r.1 == "built"),
        "{}",
        text(&out)
    );
    assert!(common::is_tagged(&from_file, "app:1.0.0"));

    // plan asks the same registry: nothing to build there; the environment and then a flag point
    // it elsewhere, where everything is missing.
    let plan = json(&ws, &["plan"], &[]);
    assert_eq!(plan["registry"], from_file.addr().as_str(), "{plan}");
    assert_eq!(plan["builds_needed"], 0, "{plan}");
    let env = [("CIP_LOCAL_REGISTRY", from_env.addr())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let plan = json(&ws, &["plan"], &env);
    assert_eq!(plan["registry"], from_env.addr().as_str(), "{plan}");
    assert_eq!(plan["builds_needed"], 4, "{plan}");
    let plan = json(&ws, &["plan", "--local-registry", &from_flag.addr()], &env);
    assert_eq!(plan["registry"], from_flag.addr().as_str(), "{plan}");

    // cip config says where each value came from.
    let config = json(&ws, &["config"], &env);
    let local = &config["settings"]["local_registry"];
    assert_eq!(local["value"], from_env.addr().as_str(), "{config}");
    assert_eq!(
        local["source"], "environment CIP_LOCAL_REGISTRY",
        "{config}"
    );
    let config = json(&ws, &["config"], &[]);
    let source = config["settings"]["local_registry"]["source"]
        .as_str()
        .unwrap();
    assert!(source.ends_with("cip.toml:2"), "{config}");
    assert_eq!(
        config["settings"]["builder"]["source"], "default",
        "{config}"
    );
}

#[test]
fn publish_takes_its_remote_registry_from_cip_toml_or_says_how_to_give_one() {
    let reg = TestRegistry::start();
    let local = TestRegistry::start();
    let ws = Workspace::demo();

    let out = ws.cip(&["publish", "--dry-run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no remote registry given"), "{err}");
    assert!(
        err.contains("--remote-registry") && err.contains("CIP_REMOTE_REGISTRY"),
        "{err}"
    );

    // The default platforms come from cip.toml too: images without :platforms get linux/amd64
    // only, so the remote publish needs no emulation.
    for dir in ["00-busybox", "01-hello", "01-tools", "02-app"] {
        set_info(&ws, dir, "{:version \"1.0.0\"}");
    }
    write_config(
        &ws,
        &format!(
            "[registry]\nremote = \"{}/team\"\nlocal = \"{}\"\n\n[build]\nplatforms = [\"linux/amd64\"]\njobs = 2\n",
            reg.addr(),
            local.addr()
        ),
    );
    let plan = json(&ws, &["plan", "--remote"], &[]);
    assert_eq!(plan["registry"], format!("{}/team", reg.addr()), "{plan}");
    let out = ws.cip(&["publish", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let index = common::raw_manifest(&reg, "team/hello:1.0.0");
    let platforms = common::index_platforms(&index);
    assert_eq!(platforms, ["linux/amd64"], "{index}");
    // `plan` without --remote still asks the local registry: cip.toml does not change its meaning.
    let plan = json(&ws, &["plan"], &[]);
    assert_eq!(plan["registry"], local.addr().as_str(), "{plan}");
}

#[test]
fn a_bad_cip_toml_stops_every_project_command_with_file_line_and_fix() {
    let ws = Workspace::demo();
    write_config(&ws, "[build]\njobs = 4\nbuilder = \"kaniko\"\n");
    for args in [
        &["graph"][..],
        &["plan"],
        &["publish-locally", "--dry-run"],
        &["config"],
    ] {
        let out = ws.cip(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("cip.toml:3:11: unknown builder \"kaniko\""),
            "{err}"
        );
        assert!(err.contains("hint: builder is one of"), "{err}");
    }
    assert_eq!(ws.builds(), 0);

    write_config(
        &ws,
        "[farms.ci]\nnodes = [\"amd-1\"]\n[nodes.amd-2]\nkind = \"docker\"\nhost = \"unix:///x\"\n",
    );
    let out = ws.cip(&["config"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cip.toml:2:"), "{err}");
    assert!(err.contains("did you mean \"amd-2\"?"), "{err}");

    // A bad environment value names its variable, before anything runs.
    write_config(&ws, "");
    let out = ws.cip_env(&["plan"], &[("CIP_JOBS", "many")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("CIP_JOBS: \"many\" is not a number from 1 to 1024"),
        "{}",
        text(&out)
    );
}

#[test]
fn cip_config_lists_nodes_farms_and_runners_and_works_from_a_subdirectory() {
    let ws = Workspace::demo();
    write_config(
        &ws,
        "[nodes.amd-1]\nkind = \"docker\"\nhost = \"ssh://builder@amd-1.example\"\njobs = 4\n\n\
         [nodes.arm-1]\nkind = \"docker\"\nhost = \"unix:///run/arm-1/docker.sock\"\n\
         platforms = [\"linux/arm64\"]\npush = \"through-cip\"\n\n\
         [farms.ci]\nnodes = [\"amd-1\", \"arm-1\"]\n\n\
         [ci.runners]\n\"linux/arm64\" = \"ubuntu-24.04-arm\"\n",
    );
    // No -C: the project is found upward from a context directory, as git finds its repository.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cip"));
    cmd.arg("config").current_dir(ws.context("01-hello"));
    let out = common::run_output(&mut cmd);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("  amd-1  docker  ssh://builder@amd-1.example    jobs 4\n"),
        "{shown}"
    );
    assert!(
        shown.contains("  arm-1  docker  unix:///run/arm-1/docker.sock  platforms linux/arm64 push through-cip\n"),
        "{shown}"
    );
    assert!(shown.contains("  ci  amd-1, arm-1\n"), "{shown}");
    assert!(
        shown.contains("  linux/arm64  ubuntu-24.04-arm\n"),
        "{shown}"
    );
    assert!(shown.contains("jobs "), "{shown}");
}

/// Where `needle` starts on the line of `shown` that starts with `prefix`.
fn column(shown: &str, prefix: &str, needle: &str) -> usize {
    let line = shown
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in {shown}"));
    line.find(needle)
        .unwrap_or_else(|| panic!("no {needle:?} in {line:?}"))
}

#[test]
fn cip_config_keeps_its_columns_apart_when_values_are_long() {
    let ws = Workspace::demo();
    let remote = "registry.example.com:5443/platform-team/container-images/base-layers/nightly";
    let node = "arm64-builder-in-the-other-datacenter";
    let url = "unix:///run/user/1000/podman/a-socket-with-a-rather-long-path.sock";
    write_config(
        &ws,
        &format!(
            "[registry]\nremote = \"{remote}\"\n\n\
             [nodes.{node}]\nkind = \"podman\"\nurl = \"{url}\"\njobs = 2\n\n\
             [nodes.amd]\nkind = \"docker\"\nhost = \"unix:///d.sock\"\njobs = 3\n"
        ),
    );
    let out = ws.cip(&["config"]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    // The value and its source never touch: two blanks at least between them.
    assert!(shown.contains(&format!("  {remote}  ")), "{shown}");
    let file = ws.project().join("cip.toml").display().to_string();
    let source = column(&shown, "  remote registry", &format!("{file}:2"));
    assert!(source > remote.len(), "{shown}");
    for (setting, from) in [("  jobs", "default"), ("  builder", "default")] {
        assert_eq!(column(&shown, setting, from), source, "{shown}");
    }
    // Node rows: each column starts where the longest cell before it ends, plus two.
    assert_eq!(
        column(&shown, &format!("  {node}"), "podman"),
        column(&shown, "  amd ", "docker"),
        "{shown}"
    );
    assert_eq!(
        column(&shown, &format!("  {node}"), "jobs 2"),
        column(&shown, "  amd ", "jobs 3"),
        "{shown}"
    );
    assert!(shown.contains(&format!("{url}  jobs 2")), "{shown}");
}

/// Runs cip, checking it ended with `code` and a message holding each of `expected`, without a
/// panic.
fn refused(ws: &Workspace, args: &[&str], env: &[(&str, &str)], code: i32, expected: &[&str]) {
    let out = ws.cip_env(args, env);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(code), "{args:?} {env:?}: {shown}");
    assert!(!shown.contains("panicked"), "{args:?} {env:?}: {shown}");
    for e in expected {
        assert!(shown.contains(e), "{args:?} {env:?}: no {e:?} in {shown}");
    }
}

#[test]
fn numbers_out_of_range_are_refused_with_their_range_never_a_panic() {
    let ws = Workspace::demo();
    let reg = "127.0.0.1:9";
    // Flags: clap's usage error, exit 2.
    for jobs in ["2305843009213693952", "0", "1025"] {
        refused(
            &ws,
            &["publish", "--remote-registry", reg, "--jobs", jobs],
            &[],
            2,
            &["--jobs", "is not a number from 1 to 1024"],
        );
    }
    // cip.toml: file, line, column and the range (exit 1, as every bad cip.toml).
    write_config(&ws, "[build]\njobs = 9223372036854775807\n");
    refused(
        &ws,
        &["plan"],
        &[],
        1,
        &[
            "cip.toml:2:8: jobs = 9223372036854775807 is out of range",
            "1 to 1024",
        ],
    );
    write_config(
        &ws,
        "[nodes.n]\nkind = \"buildah\"\njobs = 2305843009213693952\n",
    );
    refused(&ws, &["farm"], &[], 1, &["cip.toml:3:8:", "1 to 1024"]);
    // The environment: the variable and its range (exit 1, as every bad setting there).
    write_config(&ws, "");
    for (var, value, says) in [
        ("CIP_JOBS", "9223372036854775807", "from 1 to 1024"),
        (
            "CIP_QUERY_CONCURRENCY",
            "18446744073709551615",
            "from 1 to 1024",
        ),
        ("CIP_FARM_PROBE_SECONDS", "1e300", "at most 86400"),
        ("CIP_FARM_PROBE_SECONDS", "inf", "at most 86400"),
        (
            "CIP_RETRY_ATTEMPTS",
            "99999999999999999999",
            "CIP_RETRY_ATTEMPTS",
        ),
        (
            "CIP_REQUEST_TIMEOUT_SECONDS",
            "1e300",
            "CIP_REQUEST_TIMEOUT_SECONDS",
        ),
        ("CIP_RETRY_MAX_SECONDS", "1e300", "CIP_RETRY_MAX_SECONDS"),
    ] {
        refused(&ws, &["plan"], &[(var, value)], 1, &[var, says]);
    }
}

#[test]
fn a_stage_namespace_must_be_a_repository_path() {
    let ws = Workspace::demo();
    for ns in ["", "/", "a//b", "Stage", "../x"] {
        refused(
            &ws,
            &[
                "publish",
                "--remote-registry",
                "127.0.0.1:9",
                "--stage",
                "--only-local-platform",
                "--stage-namespace",
                ns,
            ],
            &[],
            2,
            &[
                "--stage-namespace",
                "is not a repository path",
                "separated by '/'",
            ],
        );
    }
    assert_eq!(ws.builds(), 0);
}

#[test]
fn a_nodes_address_is_one_argument_and_never_an_option() {
    let ws = Workspace::demo();
    for (kind, key, value) in [
        ("podman", "url", "--url=unix:///tmp/evil.sock"),
        ("podman", "connection", "--remote"),
        ("docker", "context", "-H"),
        ("docker", "host", "ssh://-oProxyCommand=touch /tmp/pwned@h"),
    ] {
        write_config(
            &ws,
            &format!("[nodes.n]\nkind = \"{kind}\"\n{key} = {value:?}\n"),
        );
        refused(
            &ws,
            &["farm"],
            &[],
            1,
            &[&format!("cip.toml:3:{}:", key.len() + 4), "'-'", "hint:"],
        );
    }
}
