//! `cip cascade-version-updates` and `cip bump` on fixture trees: rewritten files equal the expected
//! ones byte for byte, a second run changes nothing, and failures leave every file untouched.
use crate::common::Immutable;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cascade")
}

/// cip `args` on the project in `dir`.
fn cip(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let dir = dir.to_str().expect("a UTF-8 test path");
    let all: Vec<&str> = args.iter().copied().chain(["-C", dir]).collect();
    crate::common::cip(&all)
}

/// Files by relative path, with their content.
type Files = BTreeMap<String, Vec<u8>>;

/// Every file below `dir`, by relative path.
fn snapshot(dir: &Path) -> Files {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir).into_iter().map(Result::unwrap) {
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            out.insert(rel, fs::read(e.path()).unwrap());
        }
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    for (rel, bytes) in snapshot(from) {
        let dest = to.join(rel);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::write(dest, bytes).unwrap();
    }
}

fn assert_same(actual: &BTreeMap<String, Vec<u8>>, expected: &BTreeMap<String, Vec<u8>>) {
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (k, v) in expected {
        assert_eq!(
            String::from_utf8_lossy(&actual[k]),
            String::from_utf8_lossy(v),
            "{k} differs from the expected file"
        );
    }
}

fn run_case(case: &str) {
    let base = fixtures().join(case);
    let command = fs::read_to_string(base.join("command")).unwrap();
    let args: Vec<&str> = command.split_whitespace().collect();
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&base.join("before"), tmp.path());

    let (code, stdout, stderr) = cip(tmp.path(), &args);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_same(&snapshot(tmp.path()), &snapshot(&base.join("expected")));

    // Idempotent: nothing left to do.
    let (code, _, stderr) = cip(tmp.path(), &["cascade-version-updates"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("nothing to change"), "{stderr}");
    assert_same(&snapshot(tmp.path()), &snapshot(&base.join("expected")));
    // And the result is a valid project without stale references.
    let (code, _, stderr) = cip(tmp.path(), &["check"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("stale-reference"), "{stderr}");
}

#[test]
fn chain() {
    run_case("chain");
}

#[test]
fn diamond_bumps_the_shared_descendant_once() {
    run_case("diamond");
}

#[test]
fn multi_stage_copy_from_and_mount_from() {
    run_case("multi-stage");
}

#[test]
fn version_file_layout() {
    run_case("version-file");
}

#[test]
fn formatting_comments_and_crlf_survive() {
    run_case("formatting");
}

#[test]
fn only_the_live_top_level_version_is_edited() {
    run_case("edn-decoys");
    // The dry run's diff shows the same single edit per info.edn.
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("edn-decoys/before"), tmp.path());
    let (code, stdout, stderr) = cip(tmp.path(), &["bump", "base", "minor", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    let changed: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            (l.starts_with('-') || l.starts_with('+'))
                && !l.starts_with("--- ")
                && !l.starts_with("+++ ")
        })
        .collect();
    assert_eq!(
        changed,
        [
            "- :version \"3.0.0\"}",
            "+ :version \"3.1.0\"}",
            "-FROM ${REGISTRY}/base:3.0.0",
            "+FROM ${REGISTRY}/base:3.1.0",
            "- :version \"1.0.0\"}",
            "+ :version \"1.0.1\"}",
        ],
        "{stdout}"
    );
}

#[test]
fn summary_says_who_moved_and_why() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("diamond/before"), tmp.path());
    let (code, stdout, _) = cip(tmp.path(), &["bump", "base", "minor"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("base 1.0.0 -> 1.1.0 (requested)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("left 0.1.0 -> 0.1.1 (base -> 1.1.0)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("top 1.1.1 -> 1.1.2 (left -> 0.1.1, right -> 3.0.1)"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("top ").count(),
        1,
        "top is bumped exactly once: {stdout}"
    );
}

#[test]
fn dry_run_prints_a_diff_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("chain/before"), tmp.path());
    let before = snapshot(tmp.path());
    let (code, stdout, stderr) = cip(tmp.path(), &["bump", "a", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("-FROM ${REGISTRY}/a:1.0.0\n+FROM ${REGISTRY}/a:1.0.1\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("-{:version \"2.3.4\"\n+{:version \"2.3.5\"\n"),
        "{stdout}"
    );
    assert!(stdout.contains("--- a/"), "{stdout}");
    assert!(stderr.contains("c 2.3.4 -> 2.3.5 (b -> 1.0.1)"), "{stderr}");
    assert!(
        stderr.contains("dry run: 5 file(s) would change"),
        "{stderr}"
    );
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn backup_writes_bk_copies() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("chain/before"), tmp.path());
    let before = snapshot(tmp.path());
    let (code, _, stderr) = cip(tmp.path(), &["bump", "a", "--backup"]);
    assert_eq!(code, 0, "{stderr}");
    let after = snapshot(tmp.path());
    let key = "contexts/01-b/Dockerfile";
    assert_eq!(after[&format!("{key}.bk")], before[key]);
    assert_ne!(after[key], before[key]);
}

#[test]
fn a_second_backup_keeps_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("chain/before"), tmp.path());
    let key = "contexts/01-b/Dockerfile";
    let mut versions = vec![snapshot(tmp.path())];
    let mut outputs = Vec::new();
    for _ in 0..3 {
        let (code, stdout, stderr) = cip(tmp.path(), &["bump", "a", "--backup"]);
        assert_eq!(code, 0, "{stderr}");
        versions.push(snapshot(tmp.path()));
        outputs.push(stdout);
    }
    let after = &versions[3];
    for (n, bk) in ["bk", "bk.1", "bk.2"].iter().enumerate() {
        assert_eq!(
            String::from_utf8_lossy(&after[&format!("{key}.{bk}")]),
            String::from_utf8_lossy(&versions[n][key]),
            "{key}.{bk} holds the original of bump {}",
            n + 1
        );
        let path = tmp.path().join(key).display().to_string();
        let line = format!("rewrote {path}, original kept as {path}.{bk}\n");
        assert!(outputs[n].contains(&line), "{}", outputs[n]);
    }
    assert_eq!(
        String::from_utf8_lossy(&after[key]),
        "ARG REGISTRY\nFROM ${REGISTRY}/a:1.0.3\nRUN echo b\n"
    );
    // Every rewritten file has its three backups, and nothing else was left.
    let first = &versions[0];
    let rewritten = first.keys().filter(|k| first[*k] != after[*k]).count();
    assert_eq!(
        after.len(),
        first.len() + 3 * rewritten,
        "{:?}",
        after.keys()
    );
}

#[test]
fn unrewritable_references_are_all_reported_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("diamond/before"), tmp.path());
    let left = tmp.path().join("contexts/01-left/Dockerfile");
    fs::write(&left, "ARG REGISTRY\nFROM ${REGISTRY}/base:1.0.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n").unwrap();
    let right = tmp.path().join("contexts/01-right/Dockerfile");
    fs::write(&right, "ARG REGISTRY\nFROM ${REGISTRY}/base:stable\n").unwrap();
    let before = snapshot(tmp.path());
    let (code, _, stderr) = cip(tmp.path(), &["bump", "base"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("01-left/Dockerfile:2") && stderr.contains("pinned by digest"),
        "{stderr}"
    );
    assert!(
        stderr.contains("01-right/Dockerfile:2")
            && stderr.contains("\"stable\" of base is not a version"),
        "{stderr}"
    );
    assert!(stderr.contains("no file was changed"), "{stderr}");
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn a_directory_that_cannot_be_written_leaves_every_file_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("chain/before"), tmp.path());
    let before = snapshot(tmp.path());
    let (code, _, stderr) = {
        let _guard = Immutable::new(&tmp.path().join("contexts/02-c"));
        cip(tmp.path(), &["bump", "a"])
    };
    assert_eq!(code, 1);
    assert!(
        stderr.contains("02-c") && stderr.contains("no file was changed"),
        "{stderr}"
    );
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn a_failed_rename_puts_back_the_files_already_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("chain/before"), tmp.path());
    let before = snapshot(tmp.path());
    // Files are replaced in path order; 02-c's info.edn comes after 00-a's and 01-b's files.
    let (code, _, stderr) = {
        let _guard = Immutable::new(&tmp.path().join("contexts/02-c/info.edn"));
        cip(tmp.path(), &["bump", "a"])
    };
    assert_eq!(code, 1);
    assert!(stderr.contains("every file was left as it was"), "{stderr}");
    let after = snapshot(tmp.path());
    assert_eq!(
        after, before,
        "no temporary file left behind, every original restored"
    );
}

#[test]
fn a_project_directory_that_cannot_hold_the_staging_directory_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("chain/before"), tmp.path());
    let before = snapshot(tmp.path());
    let (code, _, stderr) = {
        let _guard = Immutable::new(tmp.path());
        cip(tmp.path(), &["bump", "a"])
    };
    assert_eq!(code, 1, "{stderr}");
    let staging = tmp.path().join(".cip/staging-");
    assert!(
        stderr.contains(&format!("cannot create {}", staging.display()))
            && stderr.contains("make ")
            && stderr.contains(" writable (no file was changed)"),
        "{stderr}"
    );
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn bump_refuses_the_flags_of_building_commands_and_registry_flags_without_changed() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("chain/before"), dir.path());
    let before = snapshot(dir.path());
    for (args, refused) in [
        (
            &["bump", "a", "--stage"][..],
            "unexpected argument '--stage'",
        ),
        (
            &["bump", "a", "--platform", "linux/amd64"],
            "unexpected argument '--platform'",
        ),
        (
            &["bump", "a", "--only-local-platform"],
            "unexpected argument '--only-local-platform'",
        ),
        (
            &["bump", "--changed", "--stage-namespace", "x"],
            "unexpected argument '--stage-namespace'",
        ),
        (
            &["bump", "a", "--remote-registry", "127.0.0.1:1"],
            "cannot be used with",
        ),
        (
            &["bump", "a", "--local-registry", "127.0.0.1:1"],
            "cannot be used with",
        ),
        (&["bump", "a", "--remote"], "cannot be used with"),
    ] {
        let (code, _, stderr) = cip(dir.path(), args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(refused), "{args:?}: {stderr}");
    }
    // Nothing was bumped, and a bump as it should be still works.
    assert_eq!(snapshot(dir.path()), before);
    let (code, _, stderr) = cip(dir.path(), &["bump", "a", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn bump_of_unknown_image_is_a_clear_error() {
    let (code, _, stderr) = cip(&fixtures().join("chain/before"), &["bump", "nope"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no context produces an image named \"nope\""),
        "{stderr}"
    );
    let (code, _, stderr) = cip(
        &fixtures().join("chain/before"),
        &["bump", "01-bb", "--dry-run"],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("did you mean \"01-b\"?"), "{stderr}");
}

#[test]
fn bump_takes_an_image_name_or_its_context_directory() {
    for name in ["b", "01-b", "contexts/01-b/"] {
        let (code, stdout, stderr) = cip(
            &fixtures().join("chain/before"),
            &["bump", name, "--dry-run"],
        );
        assert_eq!(code, 0, "{name}: {stderr}");
        assert!(
            stdout.contains("a/contexts/01-b/info.edn")
                || stdout.contains("contexts/01-b/info.edn"),
            "{name}: the diff edits b: {stdout}"
        );
    }
}

/// The chain fixture with these versions of a, b and c.
fn chain_with_versions(a: &str, b: &str, c: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("chain/before"), tmp.path());
    let ctx = tmp.path().join("contexts");
    fs::write(ctx.join("00-a/info.edn"), format!("{{:version \"{a}\"}}\n")).unwrap();
    let b_info = format!("{{:version \"{b}\" :platforms #{{\"linux/amd64\"}}}}\n");
    fs::write(ctx.join("01-b/info.edn"), b_info).unwrap();
    let c_info = format!(";; c\n{{:version \"{c}\"\n :platforms #{{\"linux/amd64\"}}}}\n");
    fs::write(ctx.join("02-c/info.edn"), c_info).unwrap();
    let b_df = format!("ARG REGISTRY\nFROM ${{REGISTRY}}/a:{a}\n");
    fs::write(ctx.join("01-b/Dockerfile"), b_df).unwrap();
    let c_df = format!("ARG REGISTRY\nFROM ${{REGISTRY}}/b:{b}\n");
    fs::write(ctx.join("02-c/Dockerfile"), c_df).unwrap();
    tmp
}

const MAX: &str = "18446744073709551615";

#[test]
fn a_version_part_at_its_maximum_cannot_be_bumped() {
    for (version, part, name) in [
        (format!("{MAX}.0.0"), "major", "MAJOR"),
        (format!("1.{MAX}.0"), "minor", "MINOR"),
        (format!("1.0.{MAX}"), "patch", "PATCH"),
    ] {
        let tmp = chain_with_versions(&version, "1.0.0", "2.3.4");
        let before = snapshot(tmp.path());
        let (code, stdout, stderr) = cip(tmp.path(), &["bump", "a", part]);
        assert_eq!(code, 1, "{stdout}{stderr}");
        let expected = format!(
            "contexts/00-a/info.edn:1: version {version} cannot be bumped: {name} would overflow"
        );
        assert!(stderr.contains(&expected), "{stderr}");
        assert!(stderr.contains("no file was changed"), "{stderr}");
        assert_eq!(snapshot(tmp.path()), before);
    }
}

#[test]
fn a_descendant_at_its_maximum_stops_the_cascade() {
    let tmp = chain_with_versions("1.0.0", "1.0.0", &format!("2.3.{MAX}"));
    let before = snapshot(tmp.path());
    let (code, stdout, stderr) = cip(tmp.path(), &["bump", "a", "major"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let expected = format!(
        "contexts/02-c/info.edn:2: version 2.3.{MAX} cannot be bumped: PATCH would overflow"
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert_eq!(snapshot(tmp.path()), before);
    // The dry run says the same and shows no diff.
    let (code, stdout, stderr) = cip(tmp.path(), &["bump", "a", "--dry-run"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&expected) && stdout.is_empty(),
        "{stdout}{stderr}"
    );
}

/// base, and x and y whose Dockerfiles are symlinks to one file, `shared/child.Dockerfile`.
fn shared_dockerfile_project() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for (dir, version) in [("00-base", "1.0.0"), ("01-x", "0.1.0"), ("01-y", "0.2.0")] {
        fs::create_dir_all(root.join("contexts").join(dir)).unwrap();
        let info = format!("{{:version \"{version}\"}}\n");
        fs::write(root.join("contexts").join(dir).join("info.edn"), info).unwrap();
    }
    fs::write(root.join("contexts/00-base/Dockerfile"), "FROM scratch\n").unwrap();
    fs::create_dir_all(root.join("shared")).unwrap();
    let child = "ARG REGISTRY\nFROM ${REGISTRY}/base:1.0.0\n";
    fs::write(root.join("shared/child.Dockerfile"), child).unwrap();
    for dir in ["01-x", "01-y"] {
        let link = root.join("contexts").join(dir).join("Dockerfile");
        std::os::unix::fs::symlink("../../shared/child.Dockerfile", link).unwrap();
    }
    tmp
}

fn is_symlink(p: &Path) -> bool {
    fs::symlink_metadata(p).unwrap().file_type().is_symlink()
}

#[test]
fn a_symlinked_dockerfile_is_edited_at_its_target_once() {
    let tmp = shared_dockerfile_project();
    let root = tmp.path();
    let (code, stdout, stderr) = cip(root, &["bump", "base", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.matches("+++ b/").count(), 4, "{stdout}");
    assert_eq!(
        stdout.matches("/shared/child.Dockerfile").count(),
        2,
        "{stdout}"
    );
    assert!(!stdout.contains("contexts/01-x/Dockerfile"), "{stdout}");

    let (code, stdout, stderr) = cip(root, &["bump", "base"]);
    assert_eq!(code, 0, "{stderr}");
    for dir in ["01-x", "01-y"] {
        let link = root.join("contexts").join(dir).join("Dockerfile");
        assert!(
            is_symlink(&link),
            "{} was replaced by a copy",
            link.display()
        );
    }
    assert_eq!(
        fs::read_to_string(root.join("shared/child.Dockerfile")).unwrap(),
        "ARG REGISTRY\nFROM ${REGISTRY}/base:1.0.1\n"
    );
    assert!(
        stdout.contains("x 0.1.0 -> 0.1.1 (base -> 1.0.1)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("y 0.2.0 -> 0.2.1 (base -> 1.0.1)"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("rewrote").count(), 4, "{stdout}");
    assert!(
        stdout.contains("shared/child.Dockerfile (linked from")
            && stdout.contains("contexts/01-x/Dockerfile")
            && stdout.contains("contexts/01-y/Dockerfile"),
        "{stdout}"
    );
    let (code, _, stderr) = cip(root, &["cascade-version-updates"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("nothing to change"), "{stderr}");
}

#[test]
fn a_dockerfile_linked_from_another_context_is_written_once_by_its_own_path() {
    let tmp = shared_dockerfile_project();
    let root = tmp.path();
    let x = root.join("contexts/01-x/Dockerfile");
    let y = root.join("contexts/01-y/Dockerfile");
    fs::remove_file(&x).unwrap();
    fs::copy(root.join("shared/child.Dockerfile"), &x).unwrap();
    fs::remove_file(&y).unwrap();
    std::os::unix::fs::symlink("../01-x/Dockerfile", &y).unwrap();
    let (code, stdout, stderr) = cip(root, &["bump", "base"]);
    assert_eq!(code, 0, "{stderr}");
    let line = format!("rewrote {} (linked from {})\n", x.display(), y.display());
    assert!(stdout.contains(&line), "{stdout}");
    assert!(is_symlink(&y));
    assert!(fs::read_to_string(&x).unwrap().contains("base:1.0.1"));
}

#[test]
fn a_shared_info_file_that_would_need_two_versions_is_refused() {
    let tmp = shared_dockerfile_project();
    let root = tmp.path();
    fs::write(root.join("shared/info.edn"), "{:version \"0.1.0\"}\n").unwrap();
    for dir in ["01-x", "01-y"] {
        let info = root.join("contexts").join(dir).join("info.edn");
        fs::remove_file(&info).unwrap();
        std::os::unix::fs::symlink("../../shared/info.edn", info).unwrap();
    }
    let before = snapshot(root);
    let (code, _, stderr) = cip(root, &["bump", "x"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("contexts/01-x/info.edn and")
            && stderr.contains("contexts/01-y/info.edn are the same file")
            && stderr.contains("no file was changed"),
        "{stderr}"
    );
    assert_eq!(snapshot(root), before);
    // Both moving together is fine: one write.
    let (code, stdout, stderr) = cip(root, &["bump", "base"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        fs::read_to_string(root.join("shared/info.edn")).unwrap(),
        "{:version \"0.1.1\"}\n"
    );
    assert!(is_symlink(&root.join("contexts/01-x/info.edn")));
    assert_eq!(stdout.matches("shared/info.edn").count(), 1, "{stdout}");
}

#[test]
fn a_link_to_a_file_outside_the_project_is_refused() {
    let tmp = shared_dockerfile_project();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("Dockerfile");
    fs::write(&target, "ARG REGISTRY\nFROM ${REGISTRY}/base:1.0.0\n").unwrap();
    let link = tmp.path().join("contexts/01-y/Dockerfile");
    fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let before = (snapshot(tmp.path()), fs::read(&target).unwrap());
    let (code, _, stderr) = cip(tmp.path(), &["bump", "base"]);
    assert_eq!(code, 1, "{stderr}");
    // The scan refuses it first (a Dockerfile is never read from outside the project); the
    // cascade's own check says "links to" for the files it would edit.
    assert!(
        (stderr.contains("contexts/01-y/Dockerfile: links to")
            || stderr.contains("contexts/01-y/Dockerfile is a symlink to"))
            && stderr.contains("outside the project"),
        "{stderr}"
    );
    assert_eq!((snapshot(tmp.path()), fs::read(&target).unwrap()), before);
}

// ---------------------------------------------------------------------------------------------
// Signals: a cascade of ~6,000 files is all or nothing whenever SIGINT, SIGTERM or SIGKILL arrives.

/// Children of `base` in the fan-out project: 3,000 contexts, 5,999 files rewritten by `bump base`.
const FAN_OUT: usize = 2999;

/// A directory for thousands of small files: on tmpfs when there is one, since a disk shared with
/// parallel builds makes each run of the cascade take many seconds.
fn scratch_dir() -> tempfile::TempDir {
    match Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    }
}

/// `base` and FAN_OUT children referring to it, every version 1.0.0.
fn write_fan_out(root: &Path) {
    let dir = root.join("contexts/00-base");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
    fs::write(dir.join("info.edn"), "{:version \"1.0.0\"}\n").unwrap();
    for i in 1..=FAN_OUT {
        let dir = root.join(format!("contexts/01-c{i:04}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("Dockerfile"),
            "ARG REGISTRY\nFROM ${REGISTRY}/base:1.0.0\n",
        )
        .unwrap();
        fs::write(dir.join("info.edn"), "{:version \"1.0.0\"}\n").unwrap();
    }
}

/// When to send the signal to a running `cip bump base`.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// This long after cip started.
    After(Duration),
    /// Once the staged file number K exists: cip is staging.
    Staging(usize),
    /// Once replacing has begun and staged file K was renamed into place.
    Replacing(usize),
}

/// Polls `ready` until it holds (true) or the child has exited (false).
fn wait_for(child: &mut std::process::Child, ready: impl Fn() -> bool) -> bool {
    loop {
        if ready() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// How one interrupted run ended.
struct Run {
    code: Option<i32>,
    stderr: String,
    contexts: Files,
    /// The signal was sent (the run had not finished before the moment came).
    sent: bool,
}

/// Runs `cip bump base` on `root` and sends `sig` at `moment`.
fn bump_with_signal(root: &Path, moment: Moment, sig: i32) -> Run {
    let logs = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cip"))
        .args(["bump", "base", "-C"])
        .arg(root)
        .env("NO_COLOR", "1")
        .stdout(fs::File::create(logs.path().join("out")).unwrap())
        .stderr(fs::File::create(logs.path().join("err")).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    let staging = root.join(format!(".cip/staging-{pid}"));
    let staged = |k: usize| staging.join(format!("{k}.new"));
    let replacing = || staging.join("replacing").exists() || staging.join("replaced").exists();
    let sent = match moment {
        Moment::After(delay) => {
            std::thread::sleep(delay);
            true
        }
        Moment::Staging(k) => wait_for(&mut child, || staged(k).exists()),
        Moment::Replacing(k) => wait_for(&mut child, || replacing() && !staged(k).exists()),
    };
    if sent {
        // SAFETY: a plain kill(2) of our child (if it already exited, this does nothing).
        unsafe { libc::kill(pid as i32, sig) };
    }
    let status = child.wait().unwrap();
    Run {
        code: status.code(),
        stderr: fs::read_to_string(logs.path().join("err")).unwrap(),
        contexts: snapshot(&root.join("contexts")),
        sent,
    }
}

/// Staging directories left in the project.
fn staging_dirs(root: &Path) -> Vec<String> {
    match fs::read_dir(root.join(".cip")) {
        Ok(list) => list
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("staging-"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The contexts before and after an uninterrupted `cip bump base`, and how long it ran.
fn fan_out_reference() -> (Files, Files, Duration) {
    let dir = scratch_dir();
    write_fan_out(dir.path());
    let old = snapshot(&dir.path().join("contexts"));
    let started = std::time::Instant::now();
    let (code, _, stderr) = cip(dir.path(), &["bump", "base"]);
    let took = started.elapsed();
    assert_eq!(code, 0, "{stderr}");
    let new = snapshot(&dir.path().join("contexts"));
    assert_ne!(old, new);
    assert!(staging_dirs(dir.path()).is_empty());
    (old, new, took)
}

#[test]
fn a_signal_never_leaves_a_cascade_half_applied() {
    let (old, new, took) = fan_out_reference();
    // Spread over the run: reading and computing, staging, replacing, the end.
    let moments = [
        Moment::After(took.mul_f64(0.15)),
        Moment::After(took.mul_f64(0.5)),
        Moment::After(took.mul_f64(0.8)),
        Moment::After(took.mul_f64(0.95)),
        Moment::Staging(0),
        Moment::Staging(3000),
        Moment::Staging(5990),
        Moment::Replacing(0),
        Moment::Replacing(3000),
        Moment::Replacing(5990),
    ];
    let (mut stopped_while_staging, mut deferred) = (0, 0);
    for (i, moment) in moments.into_iter().enumerate() {
        let (sig, code) = if i % 2 == 0 {
            (libc::SIGINT, 130)
        } else {
            (libc::SIGTERM, 143)
        };
        let dir = scratch_dir();
        write_fan_out(dir.path());
        let run = bump_with_signal(dir.path(), moment, sig);
        let what = format!(
            "{moment:?}, signal {sig}: exit {:?}\n{}",
            run.code, run.stderr
        );
        let outcome = if run.contexts == old { "old" } else { "new" };
        eprintln!(
            "{moment:?} signal {sig}: exit {:?}, every file {outcome}",
            run.code
        );
        assert!(
            run.contexts == old || run.contexts == new,
            "half applied (or stray files in contexts/): {what}"
        );
        assert!(staging_dirs(dir.path()).is_empty(), "staging left: {what}");
        if run.contexts == old {
            assert_eq!(
                run.code,
                Some(code),
                "nothing written, so it was stopped: {what}"
            );
            assert!(run.stderr.contains("no file was changed"), "{what}");
            stopped_while_staging += matches!(moment, Moment::Staging(_)) as usize;
        } else if run.code == Some(code) {
            assert!(
                run.stderr.contains("cip replaced every file first"),
                "{what}"
            );
            deferred += 1;
        } else {
            // The signal came after the last file (or the run had ended).
            assert_eq!(run.code, Some(0), "{what}");
        }
        if let Moment::Replacing(_) = moment {
            assert!(run.contexts == new, "replacing had begun: {what}");
        }
    }
    assert!(
        stopped_while_staging > 0,
        "no run was stopped while staging"
    );
    assert!(deferred > 0, "no signal arrived while files were replaced");
}

#[test]
fn a_killed_cascade_is_cleaned_up_or_undone_by_the_next_one() {
    let old = {
        let dir = scratch_dir();
        write_fan_out(dir.path());
        snapshot(&dir.path().join("contexts"))
    };
    for moment in [
        Moment::Staging(3000),
        Moment::Replacing(0),
        Moment::Replacing(3000),
    ] {
        let dir = scratch_dir();
        write_fan_out(dir.path());
        let run = bump_with_signal(dir.path(), moment, libc::SIGKILL);
        let what = format!("{moment:?}: exit {:?}\n{}", run.code, run.stderr);
        assert!(run.sent && run.code.is_none(), "not killed: {what}");
        assert_eq!(staging_dirs(dir.path()).len(), 1, "{what}");
        let (code, _, stderr) = cip(dir.path(), &["cascade-version-updates"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(staging_dirs(dir.path()).is_empty(), "{stderr}");
        let after = snapshot(&dir.path().join("contexts"));
        match moment {
            Moment::Staging(_) => {
                assert!(
                    stderr.contains("killed before it replaced any file"),
                    "{stderr}"
                );
                assert!(after == old, "{stderr}");
            }
            _ => {
                assert!(
                    stderr.contains("killed while it replaced files"),
                    "{stderr}"
                );
                assert!(
                    stderr.contains("the project is as it was before it"),
                    "{stderr}"
                );
                assert!(after == old, "{stderr}");
            }
        }
    }
}

/// A dry run's diff names files relative to the project, so `git apply` in the project makes
/// exactly the edit the real run makes.
#[test]
fn a_dry_run_diff_applies_with_git_apply() {
    let dry = tempfile::tempdir().unwrap();
    let real = tempfile::tempdir().unwrap();
    for d in [&dry, &real] {
        copy_tree(&fixtures().join("chain/before"), d.path());
    }
    let (code, patch, stderr) = cip(dry.path(), &["bump", "a", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(patch.starts_with("--- a/contexts/"), "{patch}");
    let patch_file = dry.path().join("bump.patch");
    fs::write(&patch_file, &patch).unwrap();
    let applied = Command::new("git")
        .args(["apply", "bump.patch"])
        .current_dir(dry.path())
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    fs::remove_file(&patch_file).unwrap();
    let (code, _, stderr) = cip(real.path(), &["bump", "a"]);
    assert_eq!(code, 0, "{stderr}");
    assert_same(&snapshot(dry.path()), &snapshot(real.path()));
}

/// `--json` on bump and cascade-version-updates: the bumps with their reasons, the files relative to
/// the project, their backups; with --dry-run nothing is written.
#[test]
fn bump_and_cascade_print_json() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("chain/before"), tmp.path());
    let before = snapshot(tmp.path());
    let (code, out, err) = cip(tmp.path(), &["bump", "a", "--dry-run", "--json"]);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["dry_run"], true);
    let names: Vec<&str> = doc["bumps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(doc["bumps"][0]["because"], "requested");
    assert_eq!(doc["bumps"][1]["because"][0]["parent"], "a");
    assert_eq!(snapshot(tmp.path()), before, "a dry run writes nothing");

    let (code, out, err) = cip(tmp.path(), &["bump", "a", "--backup", "--json"]);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["dry_run"], false);
    let files = doc["files"].as_array().unwrap();
    assert!(
        files.iter().any(|f| f["path"] == "contexts/00-a/info.edn"),
        "{doc}"
    );
    assert!(
        files
            .iter()
            .all(|f| f["backup"].as_str().is_some_and(|b| b.ends_with(".bk"))),
        "{doc}"
    );

    let (code, out, err) = cip(tmp.path(), &["cascade-version-updates", "--json"]);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        doc["bumps"],
        serde_json::json!([]),
        "nothing left to cascade"
    );
}
