//! The executor in-process, on a test backend that records what it is asked and fails on demand:
//! what runs is exactly the plan's steps, in an order the plan allows, within the node's slots.
//! (The same behaviour on real engines: tests/it/plan_steps.rs, tests/it/publish.rs,
//! tests/it/farm.rs.)
use super::*;
use crate::builders::{Backend, BuildJob, BuilderKind, Op, RegistryAccess};
use crate::plan::steps::{plan_steps, Destination, Inputs, Output, Route};
use crate::plan::ImagePlan;
use crate::registry::index;
use crate::registry::Published;
use std::collections::HashSet;

#[derive(Debug, Default)]
struct TestBackend {
    /// Builds and tags, in the order they started and ended.
    events: Mutex<Vec<String>>,
    /// Image names whose build fails.
    failing: HashSet<String>,
    running: Mutex<(usize, usize)>,
    supervisor: crate::builders::Supervisor,
    /// A node lost: every build fails and it does not answer.
    lost: bool,
}

impl TestBackend {
    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

impl Backend for TestBackend {
    fn kind(&self) -> BuilderKind {
        "buildah".parse().unwrap()
    }
    fn version(&self) -> &str {
        "0.0-test"
    }
    fn describe(&self) -> String {
        "test backend".into()
    }
    fn native_platforms(&self) -> Vec<Platform> {
        vec![Platform::new("linux", "amd64", None)]
    }
    fn build<'a>(&'a self, job: &'a BuildJob) -> crate::builders::Op<'a, ()> {
        Box::pin(async move {
            {
                let mut r = self.running.lock().unwrap();
                r.0 += 1;
                r.1 = r.1.max(r.0);
            }
            if self.lost {
                return Err(anyhow::anyhow!("Cannot connect to the Docker daemon").into());
            }
            self.events
                .lock()
                .unwrap()
                .push(format!("start {}", job.tag));
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.events.lock().unwrap().push(format!("end {}", job.tag));
            self.running.lock().unwrap().0 -= 1;
            let name = job
                .tag
                .rsplit('/')
                .next()
                .unwrap()
                .split(':')
                .next()
                .unwrap();
            if self.failing.contains(name) {
                return Err(anyhow::anyhow!("{name} does not build").into());
            }
            Ok(())
        })
    }
    fn export_oci_layout<'a>(&'a self, _: &'a str, _: &'a std::path::Path) -> Op<'a, ()> {
        unreachable!("store builds are not exported")
    }
    fn local_tags(&self) -> Op<'_, HashSet<String>> {
        Box::pin(async { Ok(HashSet::new()) })
    }
    fn image_exists<'a>(&'a self, _: &'a str) -> Op<'a, bool> {
        Box::pin(async { Ok(false) })
    }
    fn remove_image<'a>(&'a self, _: &'a str) -> Op<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn tag_image<'a>(&'a self, src: &'a str, dst: &'a str) -> Op<'a, ()> {
        self.events.lock().unwrap().push(format!("tag {src} {dst}"));
        Box::pin(async { Ok(()) })
    }
    fn pull<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a Platform>,
        _: &'a RegistryAccess,
    ) -> Op<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn supervisor(&self) -> &crate::builders::Supervisor {
        &self.supervisor
    }
    fn answers(&self) -> Op<'_, bool> {
        let lost = self.lost;
        Box::pin(async move { Ok(!lost) })
    }
}

/// base <- mid <- top, and a lone image; every one missing.
fn project() -> (tempfile::TempDir, crate::project::Project) {
    let tmp = tempfile::tempdir().unwrap();
    let contexts = [
        ("00-base", "FROM scratch\n"),
        ("01-mid", "ARG REGISTRY\nFROM ${REGISTRY}/base:1.0.0\n"),
        ("02-top", "ARG REGISTRY\nFROM ${REGISTRY}/mid:1.0.0\n"),
        ("00-lone", "FROM scratch\n"),
    ];
    for (dir, dockerfile) in contexts {
        let d = tmp.path().join("contexts").join(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("Dockerfile"), dockerfile).unwrap();
        std::fs::write(d.join("info.edn"), "{:version \"1.0.0\"}").unwrap();
    }
    let p = crate::project::scan(tmp.path()).unwrap();
    (tmp, p)
}

/// The inputs of a test plan: these nodes, to `destination`, nothing else asked for.
fn test_inputs<'a>(
    project: &'a crate::project::Project,
    destination: Destination,
    nodes: Vec<crate::plan::steps::NodeInput<'a>>,
    farm: bool,
) -> Inputs<'a> {
    Inputs {
        project,
        destination,
        nodes,
        farm,
        log_dir: std::env::temp_dir(),
        run_id: "test".into(),
        builder_args: Vec::new(),
        no_latest: false,
        arch_tags: false,
        build_args: Vec::new(),
        options: Default::default(),
    }
}

fn plan_of(project: &crate::project::Project, backend: &TestBackend, slots: usize) -> Plan {
    let graph = crate::graph::Graph::build(project);
    let amd64 = Platform::new("linux", "amd64", None);
    let images: Vec<ImagePlan> = graph
        .order()
        .into_iter()
        .map(|c| {
            let ctx = &project.contexts[c];
            ImagePlan {
                ctx: c,
                name: ctx.name.clone(),
                version: "1.0.0".into(),
                wanted: vec![amd64.clone()],
                out_of_scope: Vec::new(),
                published: None,
                forced: false,
                waits_for: graph.parents(c),
                context_digest: String::new(),
                drift: None,
                drifted_parents: Vec::new(),
                drift_only_parents: false,
                unknown_provenance: false,
                unknown_parents: Vec::new(),
                latest: None,
                in_final: None,
                blocked: Vec::new(),
            }
        })
        .collect();
    let inputs = test_inputs(
        project,
        Destination::Store {
            name: "reg.test".into(),
        },
        vec![crate::plan::steps::NodeInput::local(backend, slots)],
        false,
    );
    plan_steps(images, &inputs)
}

async fn execute(backend: Arc<TestBackend>, plan: &Plan, keep_going: bool) -> RunReport {
    run_on(vec![backend], plan, keep_going).await
}

/// Runs `plan` on these nodes (the plan's node ids index them), without a registry.
async fn run_on(nodes: Vec<Arc<TestBackend>>, plan: &Plan, keep_going: bool) -> RunReport {
    let executor = Executor {
        nodes: nodes.into_iter().map(|n| n as Arc<dyn Backend>).collect(),
        registry: None,
        access: RegistryAccess::default(),
        keep_going,
        ids_of_kept: false,
        temp_dir: std::env::temp_dir(),
        reporter: crate::progress::Reporter::new(crate::progress::Progress::Quiet, false),
    };
    executor.run(plan).await.unwrap()
}

fn position(events: &[String], event: &str) -> usize {
    events
        .iter()
        .position(|e| e == event)
        .unwrap_or_else(|| panic!("no {event:?} in {events:?}"))
}

#[tokio::test]
async fn the_executor_runs_exactly_the_planned_steps_parents_first() {
    let (_tmp, project) = project();
    let backend = Arc::new(TestBackend::default());
    let plan = plan_of(&project, &backend, 2);
    assert_eq!(
        plan.steps.len(),
        4,
        "one build per image, no index for a store"
    );
    let report = execute(backend.clone(), &plan, false).await;
    assert!(report.ok);
    let ids: Vec<StepId> = report.steps.iter().map(|s| s.id).collect();
    assert_eq!(ids, plan.steps.iter().map(|s| s.id).collect::<Vec<_>>());
    let events = backend.events();
    let builds = events.iter().filter(|e| e.starts_with("start ")).count();
    assert_eq!(builds, 4, "{events:?}");
    for (child, parent) in [("mid", "base"), ("top", "mid")] {
        assert!(
            position(&events, &format!("end reg.test/{parent}:1.0.0"))
                < position(&events, &format!("start reg.test/{child}:1.0.0")),
            "{events:?}"
        );
    }
    // The plan's extra tags, and the slots: base and lone together, never more than 2.
    assert!(events.contains(&"tag reg.test/top:1.0.0 reg.test/top:latest".to_string()));
    assert_eq!(backend.running.lock().unwrap().1, 2);
    for s in &report.steps {
        let (start, end) = s.ran.expect("every step ran");
        for dep in &plan.step(s.id).waits_for {
            assert!(report.steps[dep.0].ran.unwrap().1 <= start);
        }
        assert!(start <= end);
    }
}

/// A stage run plan where base is published in final form: base gets a link step (no build),
/// mid and top build into the stage with REGISTRY there, mid after base's link; the indexes
/// get their version tag only. (The same on a real registry: tests/it/stage.rs.)
#[test]
fn a_stage_plan_links_the_published_parent_and_builds_the_rest_in_the_stage() {
    let (_tmp, project) = project();
    let backend = TestBackend::default();
    let mut plan = plan_of(&project, &backend, 2);
    let amd64 = Platform::new("linux", "amd64", None);
    let final_base = Published {
        digest: "sha256:ix".into(),
        is_index: true,
        entries: vec![index::new_entry(&amd64, "sha256:m", 1, "m")],
        annotations: Default::default(),
    };
    for image in plan.images.iter_mut() {
        if image.name == "base" {
            image.in_final = Some(final_base.clone());
        }
    }
    let graph = crate::graph::Graph::build(&project);
    for image in plan.images.iter_mut() {
        image.waits_for = graph.parents(image.ctx);
    }
    let inputs = Inputs {
        arch_tags: true,
        ..test_inputs(
            &project,
            Destination::Stage {
                name: "reg.test/cip-stage/linux-amd64".into(),
                namespace: "cip-stage/linux-amd64".into(),
            },
            vec![crate::plan::steps::NodeInput {
                name: "local".into(),
                backend: &backend,
                slots: 2,
                emulates: None,
                reach: None,
            }],
            false,
        )
    };
    let staged = plan_steps(plan.images.clone(), &inputs);
    let name_of = |s: &crate::plan::steps::Step| staged.image(s.image).name.clone();
    let link = staged
        .steps
        .iter()
        .find(|s| matches!(s.action, Action::Link(_)))
        .expect("a link step");
    assert_eq!(name_of(link), "base");
    let Action::Link(l) = &link.action else {
        unreachable!()
    };
    assert_eq!(
        (l.from.as_str(), l.name.as_str()),
        ("reg.test/base", "cip-stage/linux-amd64/base")
    );
    let mut built: Vec<String> = staged.builds().map(|(s, _)| name_of(s)).collect();
    built.sort();
    assert_eq!(built, ["lone", "mid", "top"]);
    for (s, b) in staged.builds() {
        assert_eq!(b.build_args["REGISTRY"], "reg.test/cip-stage/linux-amd64");
        if name_of(s) == "mid" {
            assert_eq!(s.waits_for, [link.id]);
        }
    }
    for s in &staged.steps {
        if let Action::Assemble(a) = &s.action {
            assert_eq!(a.tags, ["1.0.0"], "a stage tags the version only");
            assert!(a.arch_tags.is_empty(), "per-arch tags are the merge's");
            assert!(a.name.starts_with("cip-stage/linux-amd64/"));
        }
    }
    // Without a child to build, nothing is linked.
    let only_base: Vec<ImagePlan> = plan
        .images
        .iter()
        .filter(|i| i.name == "base" || i.name == "lone")
        .cloned()
        .collect();
    let lone = plan_steps(only_base, &inputs);
    assert!(!lone
        .steps
        .iter()
        .any(|s| matches!(s.action, Action::Link(_))));
}

/// Two amd64 nodes; the first is lost before the run: each of its steps is built on the other
/// after a retry line, and the report names the node that built it.
#[tokio::test]
async fn steps_of_a_lost_node_move_to_another_that_builds_their_platform() {
    let (_tmp, project) = project();
    let lost = Arc::new(TestBackend {
        lost: true,
        ..Default::default()
    });
    let alive = Arc::new(TestBackend::default());
    let mut plan = plan_of(&project, &lost, 2);
    let inputs = test_inputs(
        &project,
        Destination::Store {
            name: "reg.test".into(),
        },
        vec![
            crate::plan::steps::NodeInput {
                name: "a".into(),
                backend: lost.as_ref(),
                slots: 2,
                emulates: None,
                reach: None,
            },
            crate::plan::steps::NodeInput {
                name: "b".into(),
                backend: alive.as_ref(),
                slots: 2,
                emulates: None,
                reach: None,
            },
        ],
        true,
    );
    plan = plan_steps(plan.images, &inputs);
    let on_a = plan.builds().filter(|(_, b)| b.node == NodeId(0)).count();
    assert!(on_a > 0, "the plan uses both nodes");
    let report = run_on(vec![lost.clone(), alive.clone()], &plan, false).await;
    assert!(report.ok, "{:?}", report.results);
    assert!(report.steps.iter().all(|s| s.node.as_deref() == Some("b")));
    let built = alive
        .events()
        .iter()
        .filter(|e| e.starts_with("end "))
        .count();
    assert_eq!(built, 4, "{:?}", alive.events());
    let top = report.results.iter().find(|r| r.name == "top").unwrap();
    assert_eq!(top.built_on, [(Platform::host(), "b".to_string())]);
}

/// A build moved to another node takes one of that node's slots: a node of one slot runs one
/// build at a time, its own or moved ones.
#[tokio::test]
async fn a_moved_build_waits_for_a_slot_of_its_new_node() {
    let (_tmp, project) = project();
    let lost = Arc::new(TestBackend {
        lost: true,
        ..Default::default()
    });
    let alive = Arc::new(TestBackend::default());
    let images = plan_of(&project, &lost, 2).images;
    fn node<'a>(
        name: &str,
        backend: &'a TestBackend,
        slots: usize,
    ) -> crate::plan::steps::NodeInput<'a> {
        crate::plan::steps::NodeInput {
            name: name.into(),
            backend,
            slots,
            emulates: None,
            reach: None,
        }
    }
    let inputs = test_inputs(
        &project,
        Destination::Store {
            name: "reg.test".into(),
        },
        vec![node("a", lost.as_ref(), 2), node("b", alive.as_ref(), 1)],
        true,
    );
    let plan = plan_steps(images, &inputs);
    let on_a = plan.builds().filter(|(_, b)| b.node == NodeId(0)).count();
    assert!(on_a >= 2, "two independent builds on the lost node");
    let report = run_on(vec![lost.clone(), alive.clone()], &plan, false).await;
    assert!(report.ok, "{:?}", report.results);
    assert_eq!(alive.running.lock().unwrap().1, 1, "{:?}", alive.events());
}

/// Each build pushes by its node's route: a farm's node on this machine directly (to a
/// staging name of the run), one elsewhere through cip for a loopback registry, directly for
/// another; the local builder of a run without a farm always through cip. A build is staged
/// when its node or a fallback node pushes directly.
#[test]
fn the_plan_gives_each_build_its_nodes_route_and_a_staging_name_when_one_pushes_directly() {
    use crate::farm::route::NodeReach;
    let (_tmp, project) = project();
    let (far, here) = (TestBackend::default(), TestBackend::default());
    let images = plan_of(&project, &far, 2).images;
    let plan_for = |registry: &str, farm: bool, nodes: &[(&'static str, bool)]| {
        let backends = [&far, &here];
        let inputs = test_inputs(
            &project,
            Destination::Registry {
                name: registry.into(),
            },
            nodes
                .iter()
                .enumerate()
                .map(|(i, (name, local))| crate::plan::steps::NodeInput {
                    name: name.to_string(),
                    backend: backends[i],
                    slots: 1,
                    emulates: None,
                    reach: Some(NodeReach {
                        local: *local,
                        declared: None,
                    }),
                })
                .collect(),
            farm,
        );
        plan_steps(images.clone(), &inputs)
    };
    let outputs = |plan: &Plan| -> Vec<(String, Route, Option<String>)> {
        plan.builds()
            .map(|(_, b)| match &b.output {
                Output::Push { route, staging, .. } => (
                    plan.nodes[b.node.0].name.clone(),
                    *route,
                    staging.as_ref().map(|s| s.reference.clone()),
                ),
                Output::Store { .. } => unreachable!("a registry run pushes"),
            })
            .collect()
    };
    let both = plan_for("127.0.0.1:5000", true, &[("far", false), ("here", true)]);
    let found = outputs(&both);
    assert!(found.iter().any(|(n, ..)| n == "far") && found.iter().any(|(n, ..)| n == "here"));
    for (node, route, staging) in &found {
        let want = if node == "here" {
            Route::Direct
        } else {
            Route::ThroughCip
        };
        assert_eq!(*route, want, "{found:?}");
        let staging = staging
            .as_deref()
            .expect("a fallback or the node pushes directly");
        assert!(
            staging.starts_with("127.0.0.1:5000/cip-stage/linux-amd64/")
                && staging.ends_with(":1.0.0-test"),
            "{staging}"
        );
    }
    let remote = plan_for("reg.example/team", true, &[("far", false)]);
    for (_, route, staging) in outputs(&remote) {
        assert_eq!(route, Route::Direct);
        assert!(staging
            .unwrap()
            .starts_with("reg.example/team/cip-stage/linux-amd64/"));
    }
    for plan in [
        plan_for("127.0.0.1:5000", true, &[("far", false)]),
        plan_for("reg.example", false, &[("local", true)]),
    ] {
        for (_, route, staging) in outputs(&plan) {
            assert_eq!((route, staging), (Route::ThroughCip, None));
        }
    }
}

/// On a farm, a failed build says which node it failed on.
#[tokio::test]
async fn a_failure_on_a_farm_names_its_node() {
    let (_tmp, project) = project();
    let backend = Arc::new(TestBackend {
        failing: HashSet::from(["lone".to_string()]),
        ..Default::default()
    });
    let plan = plan_of(&project, &backend, 2);
    let inputs = test_inputs(
        &project,
        Destination::Store {
            name: "reg.test".into(),
        },
        vec![crate::plan::steps::NodeInput {
            name: "amd-1".into(),
            backend: backend.as_ref(),
            slots: 2,
            emulates: None,
            reach: None,
        }],
        true,
    );
    let plan = plan_steps(plan.images, &inputs);
    let report = execute(backend, &plan, true).await;
    let lone = report.results.iter().find(|r| r.name == "lone").unwrap();
    assert_eq!(
        lone.error.as_deref(),
        Some("on node amd-1: lone does not build"),
        "{lone:?}"
    );
    let base = report.results.iter().find(|r| r.name == "base").unwrap();
    assert_eq!(base.error, None);
}

fn result(name: &str, result: Outcome, built: &[&str]) -> ImageResult {
    ImageResult {
        name: name.into(),
        version: "1.0.0".into(),
        built: built.iter().map(|p| p.parse().unwrap()).collect(),
        kept: Vec::new(),
        replaced: Vec::new(),
        failed_steps: Vec::new(),
        result,
        error: None,
        duration: Duration::from_millis(1500),
        repository: format!("reg.test/{name}"),
        digest: (result != Outcome::Failed)
            .then(|| format!("sha256:{}", "0123456789abcdef".repeat(4))),
        platform_digests: Vec::new(),
        tags: Vec::new(),
        built_on: Vec::new(),
    }
}

#[test]
fn a_no_op_summary_is_one_line_and_verbose_lists_every_image() {
    let all: Vec<ImageResult> = (0..1000)
        .map(|i| result(&format!("img-{i}"), Outcome::UpToDate, &[]))
        .collect();
    let s = render_summary(&all, Duration::from_millis(640), false);
    assert_eq!(s, "1000 images up to date\ntotal 0.6s\n");
    let v = render_summary(&all, Duration::from_millis(640), true);
    assert_eq!(v.lines().count(), 1000 + 2, "a header, the rows, the total");

    let mut mixed = all[..3].to_vec();
    mixed.push(result(
        "a-rather-long-image-name",
        Outcome::Built,
        &["linux/amd64", "linux/arm64", "linux/arm/v7"],
    ));
    let s = render_summary(&mixed, Duration::from_secs(75), false);
    assert!(s.contains("amd64,arm64,arm/v7"), "{s}");
    assert!(
        s.contains(
            "a-rather-long-image-name:1.0.0  amd64,arm64,arm/v7  built   1.5s  0123456789ab\n"
        ),
        "the short digest: {s}"
    );
    assert!(!s.contains("KEPT"), "no platform kept, no column: {s}");
    assert!(s.contains("3 other images up to date"), "{s}");
    assert!(!s.contains("img-0"), "{s}");
    assert!(s.lines().all(|l| l.chars().count() <= 80), "{s}");
}

#[tokio::test]
async fn an_images_time_is_its_wall_time_not_the_sum_of_its_platforms() {
    let (_tmp, project) = project();
    let backend = Arc::new(TestBackend::default());
    let mut plan = plan_of(&project, &backend, 3);
    // Give `lone` a second platform: both build at once (3 slots for the 3 ready builds).
    let arm64 = Platform::new("linux", "arm64", None);
    let lone = plan.images.iter().position(|i| i.name == "lone").unwrap();
    let mut step = plan
        .steps
        .iter()
        .find(|s| s.image == ImageId(lone))
        .unwrap()
        .clone();
    step.id = StepId(plan.steps.len());
    if let Action::Build(b) = &mut step.action {
        b.platform = arm64;
        b.tag = "reg.test/lone:1.0.0-arm64".into();
    }
    plan.steps.push(step);
    let report = execute(backend.clone(), &plan, false).await;
    assert!(report.ok);
    let ran: Vec<(Duration, Duration)> = report
        .steps
        .iter()
        .filter(|s| plan.step(s.id).image == ImageId(lone))
        .map(|s| s.ran.unwrap())
        .collect();
    assert_eq!(ran.len(), 2);
    let start = ran.iter().map(|r| r.0).min().unwrap();
    let end = ran.iter().map(|r| r.1).max().unwrap();
    let result = report.results.iter().find(|r| r.name == "lone").unwrap();
    assert_eq!(result.duration, end - start);
    let sum: Duration = ran.iter().map(|r| r.1 - r.0).sum();
    // The two platforms overlapped.
    assert!(result.duration < sum, "{:?} vs {sum:?}", result.duration);
}

#[tokio::test]
async fn one_slot_runs_one_build_at_a_time() {
    let (_tmp, project) = project();
    let backend = Arc::new(TestBackend::default());
    let plan = plan_of(&project, &backend, 1);
    assert!(execute(backend.clone(), &plan, false).await.ok);
    assert_eq!(backend.running.lock().unwrap().1, 1);
}

#[tokio::test]
async fn keep_going_skips_only_what_waits_for_a_failure() {
    let (_tmp, project) = project();
    let backend = Arc::new(TestBackend {
        failing: HashSet::from(["mid".to_string()]),
        ..Default::default()
    });
    let plan = plan_of(&project, &backend, 2);
    let report = execute(backend.clone(), &plan, true).await;
    assert!(!report.ok);
    let result = |name: &str| {
        report
            .results
            .iter()
            .find(|r| r.name == name)
            .unwrap()
            .result
    };
    assert_eq!(result("base"), Outcome::Built);
    assert_eq!(result("lone"), Outcome::Built);
    assert_eq!(result("mid"), Outcome::Failed);
    assert_eq!(result("top"), Outcome::SkippedParentFailed);
    assert!(!backend
        .events()
        .iter()
        .any(|e| e.starts_with("start reg.test/top")));
}
