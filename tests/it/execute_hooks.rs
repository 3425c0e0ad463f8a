//! The executor's hook points through the library, on a real registry and a real buildah build:
//! a hook after each pushed image sees the image's repository, platform and manifest digest as the
//! registry holds them, before the index hook sees the index its version tag points at; a push
//! hook that fails fails the image as `push failed`, and its version is not tagged.
use crate::common;

use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};

use cip::builders::{Backend, BuilderKind, NodeEnv, RegistryAccess};
use cip::execute::index_writer::{AfterIndexWritten, Written};
use cip::execute::{AfterImagePushed, Executor, Hooks, Outcome, Pushed};
use cip::plan::steps::{plan_steps, Destination, Inputs, NodeInput, Plan};
use cip::plan::ImagePlan;
use cip::platform::Platform;
use cip::registry::{Endpoint, Registry, RegistryAuth};
use common::{busybox_path, is_tagged, raw_manifest, Buildah, TestRegistry};
use futures_util::future::BoxFuture;

/// What the hooks were called with, in order: `push REPO PLATFORM DIGEST`, `index LABEL DIGEST`.
#[derive(Default)]
struct Calls {
    seen: Mutex<Vec<String>>,
    /// The push hook refuses.
    refuse_pushes: bool,
}

impl Calls {
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl AfterImagePushed for Calls {
    fn after_image_pushed<'a>(
        &'a self,
        _reg: &'a Registry,
        pushed: &'a Pushed,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        self.seen.lock().unwrap().push(format!(
            "push {} {} {}",
            pushed.repository,
            pushed.platform,
            pushed.digest()
        ));
        let refuse = self.refuse_pushes;
        Box::pin(async move {
            anyhow::ensure!(!refuse, "the signer is unavailable");
            Ok(())
        })
    }
}

impl AfterIndexWritten for Calls {
    fn after_index_written<'a>(
        &'a self,
        _reg: &'a Registry,
        written: &'a Written,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("index {} {}", written.label, written.digest));
        Box::pin(async { Ok(()) })
    }
}

/// One context, `hello`, `FROM scratch` with busybox.
fn project(dir: &Path) -> cip::project::Project {
    let ctx = dir.join("contexts/00-hello");
    fs::create_dir_all(&ctx).unwrap();
    fs::copy(busybox_path("amd64"), ctx.join("busybox")).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\n",
    )
    .unwrap();
    fs::write(ctx.join("info.edn"), "{:version \"1.0.0\"}").unwrap();
    cip::project::scan(dir).unwrap()
}

/// Every image missing, for this machine's platform.
fn images(project: &cip::project::Project) -> Vec<ImagePlan> {
    let graph = cip::graph::Graph::build(project);
    graph
        .order()
        .into_iter()
        .map(|c| ImagePlan {
            ctx: c,
            name: project.contexts[c].name.clone(),
            version: "1.0.0".into(),
            wanted: vec![Platform::host()],
            out_of_scope: Vec::new(),
            published: None,
            in_final: None,
            blocked: Vec::new(),
            forced: false,
            waits_for: graph.parents(c),
            context_digest: "sha256:test".into(),
            drift: None,
            drifted_parents: Vec::new(),
            drift_only_parents: false,
            unknown_provenance: false,
            unknown_parents: Vec::new(),
            latest: None,
        })
        .collect()
}

/// buildah on the test's private store.
fn buildah(store: &Buildah) -> Arc<dyn Backend> {
    let env = NodeEnv::new()
        .set("STORAGE_DRIVER", "vfs")
        .set("BUILDAH_ISOLATION", "chroot")
        .set(
            "CIP_BUILDAH_GLOBAL_ARGS",
            format!(
                "--root {} --runroot {}",
                store.root().display(),
                store.runroot().display()
            ),
        );
    cip::builders::detect_with("buildah".parse::<BuilderKind>().unwrap(), env)
        .expect("buildah is usable")
}

fn plan(project: &cip::project::Project, registry: &str, builder: &dyn Backend) -> Plan {
    let inputs = Inputs {
        project,
        destination: Destination::Registry {
            name: registry.into(),
        },
        nodes: vec![NodeInput::local(builder, 1)],
        farm: false,
        log_dir: project.root.join(".cip/logs"),
        run_id: format!("hooks-{}", std::process::id()),
        builder_args: Vec::new(),
        no_latest: false,
        arch_tags: false,
        build_args: Vec::new(),
        options: Default::default(),
    };
    plan_steps(images(project), &inputs)
}

#[test]
fn the_hooks_see_each_pushed_image_then_its_index_and_a_failing_push_hook_fails_the_push() {
    let reg = TestRegistry::start();
    let store = Buildah::new();
    let dir = tempfile::tempdir().unwrap();
    let project = project(dir.path());
    let builder = buildah(&store);
    let plan = plan(&project, &reg.addr(), builder.as_ref());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let registry = Arc::new(
        rt.block_on(Registry::connect(
            Endpoint::new(&reg.addr()),
            RegistryAuth::Anonymous,
        ))
        .unwrap(),
    );
    let executor = Executor {
        nodes: vec![builder.clone()],
        registry: Some(registry),
        access: RegistryAccess::default(),
        keep_going: false,
        ids_of_kept: false,
        temp_dir: std::env::temp_dir(),
        reporter: cip::progress::Reporter::new(cip::progress::Progress::Quiet, false),
    };
    let hooks = |calls: &Arc<Calls>| Hooks {
        after_push: vec![calls.clone()],
        after_index: vec![calls.clone()],
    };
    let host = Platform::host();

    // A push hook that fails: the build succeeded, so the image is `push failed`, and its
    // index is neither written nor announced.
    let refusing = Arc::new(Calls {
        refuse_pushes: true,
        ..Default::default()
    });
    let report = rt
        .block_on(executor.run_with(&plan, hooks(&refusing)))
        .unwrap();
    assert!(!report.ok);
    let hello = &report.results[0];
    assert_eq!(hello.result, Outcome::PushFailed, "{hello:?}");
    let error = hello.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("after pushing hello@sha256:")
            && error.contains("the signer is unavailable"),
        "{error}"
    );
    let seen = refusing.seen();
    assert!(
        seen.len() == 1 && seen[0].starts_with(&format!("push hello {host} sha256:")),
        "{seen:?}"
    );
    assert!(!is_tagged(&reg, "hello:1.0.0"));

    // Hooks that accept: the pushed image is the one the index holds, announced before it.
    let calls = Arc::new(Calls::default());
    let report = rt
        .block_on(executor.run_with(&plan, hooks(&calls)))
        .unwrap();
    assert!(report.ok, "{:?}", report.results);
    let hello = &report.results[0];
    assert_eq!(hello.result, Outcome::Built);
    let index = raw_manifest(&reg, "hello:1.0.0");
    let manifest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let index_digest = hello.digest.clone().expect("the index digest");
    assert_eq!(
        calls.seen(),
        [
            format!("push hello {host} {manifest}"),
            format!("index hello:1.0.0 {index_digest}"),
        ]
    );
    assert_eq!(hello.platform_digests, [(host, manifest)]);
}
