//! Farm scheduling, printed as figures (`cargo bench --bench farm`): generated trees whose builds
//! each take a known time, placed by the plan on two nodes with given slots and run by the
//! executor, against in-process engines that only sleep (the engines' own build time is then known
//! exactly, so what is left is cip's). Prints:
//! - wall time against the critical path under those slots (the larger of the longest chain and
//!   the work divided by all slots), goal within 1.15x;
//! - the share of steps each node took;
//! - the overhead per step: the time a step took beyond its build, and the wall time beyond the
//!   bound divided by the steps (goal under 50 ms).
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cip::builders::{Backend, BuildJob, BuilderKind, Op, RegistryAccess, Supervisor};
use cip::execute::Executor;
use cip::plan::steps::{plan_steps, Destination, Inputs, NodeInput, Plan};
use cip::plan::ImagePlan;
use cip::platform::Platform;

/// An engine whose every build sleeps `build` and succeeds.
#[derive(Debug)]
struct Sleeper {
    build: Duration,
    supervisor: Arc<Supervisor>,
}

impl Backend for Sleeper {
    fn kind(&self) -> BuilderKind {
        BuilderKind::engine_named("docker").expect("docker is registered")
    }
    fn version(&self) -> &str {
        "bench"
    }
    fn describe(&self) -> String {
        format!("a sleeper ({} ms a build)", self.build.as_millis())
    }
    fn native_platforms(&self) -> Vec<Platform> {
        vec![Platform::host()]
    }
    fn build<'a>(&'a self, _: &'a BuildJob) -> Op<'a, ()> {
        Box::pin(async move {
            tokio::time::sleep(self.build).await;
            Ok(())
        })
    }
    fn export_oci_layout<'a>(&'a self, _: &'a str, _: &'a Path) -> Op<'a, ()> {
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
    fn tag_image<'a>(&'a self, _: &'a str, _: &'a str) -> Op<'a, ()> {
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
    fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }
}

/// `layers` layers of `width` images; an image of a layer builds on two of the layer before.
fn tree(dir: &Path, width: usize, layers: usize) {
    for l in 0..layers {
        for i in 0..width {
            let ctx = dir.join(format!("contexts/{l:02}-img-{l}-{i}"));
            std::fs::create_dir_all(&ctx).unwrap();
            let from = if l == 0 {
                "FROM scratch\n".to_string()
            } else {
                let (a, b) = (i, (i + 1) % width);
                format!(
                    "ARG REGISTRY\nFROM ${{REGISTRY}}/img-{p}-{a}:1.0.0\n\
                     COPY --from=${{REGISTRY}}/img-{p}-{b}:1.0.0 / /\n",
                    p = l - 1
                )
            };
            std::fs::write(ctx.join("Dockerfile"), from).unwrap();
            std::fs::write(ctx.join("info.edn"), "{:version \"1.0.0\"}").unwrap();
        }
    }
}

/// Every image of the project missing, for this machine's platform.
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
            context_digest: String::new(),
            drift: None,
            drifted_parents: Vec::new(),
            drift_only_parents: false,
            unknown_provenance: false,
            unknown_parents: Vec::new(),
            latest: None,
        })
        .collect()
}

/// The longest chain of the plan's steps, in steps.
fn longest_chain(plan: &Plan) -> usize {
    let mut depth = vec![0usize; plan.steps.len()];
    for s in &plan.steps {
        depth[s.id.0] = 1 + s.waits_for.iter().map(|d| depth[d.0]).max().unwrap_or(0);
    }
    depth.into_iter().max().unwrap_or(0)
}

fn scenario(name: &str, width: usize, layers: usize, slots: [usize; 2], build: Duration) {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path(), width, layers);
    let project = cip::project::scan(tmp.path()).unwrap();
    let nodes: Vec<Arc<Sleeper>> = (0..2)
        .map(|_| {
            Arc::new(Sleeper {
                build,
                supervisor: Supervisor::new(),
            })
        })
        .collect();
    let planned = Instant::now();
    let inputs = Inputs {
        project: &project,
        destination: Destination::Store {
            name: "bench.local".into(),
        },
        nodes: vec![
            NodeInput {
                name: "a".into(),
                backend: nodes[0].as_ref(),
                slots: slots[0],
                emulates: None,
                reach: None,
            },
            NodeInput {
                name: "b".into(),
                backend: nodes[1].as_ref(),
                slots: slots[1],
                emulates: None,
                reach: None,
            },
        ],
        farm: true,
        log_dir: tmp.path().join("logs"),
        run_id: "bench".into(),
        builder_args: Vec::new(),
        no_latest: false,
        arch_tags: false,
        build_args: Vec::new(),
        options: Default::default(),
    };
    let plan = plan_steps(images(&project), &inputs);
    let planning = planned.elapsed();
    let executor = Executor {
        nodes: nodes
            .iter()
            .map(|n| n.clone() as Arc<dyn Backend>)
            .collect(),
        registry: None,
        access: RegistryAccess::default(),
        keep_going: false,
        ids_of_kept: false,
        reporter: cip::progress::Reporter::new(cip::progress::Progress::Quiet, false),
        temp_dir: std::env::temp_dir(),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    let report = rt.block_on(executor.run(&plan)).unwrap();
    let wall = started.elapsed();
    assert!(report.ok);

    let steps = plan.steps.len();
    let total_slots = slots[0] + slots[1];
    let chain = longest_chain(&plan) as f64 * build.as_secs_f64();
    let work = steps as f64 * build.as_secs_f64() / total_slots as f64;
    let bound = chain.max(work);
    let share = |node: &str| {
        report
            .steps
            .iter()
            .filter(|s| s.node.as_deref() == Some(node))
            .count()
    };
    let in_step: Vec<f64> = report
        .steps
        .iter()
        .filter_map(|s| s.ran)
        .map(|(a, b)| (b - a).as_secs_f64() - build.as_secs_f64())
        .collect();
    let mean_in_step = in_step.iter().sum::<f64>() / in_step.len().max(1) as f64;
    println!(
        "{name}: {steps} steps ({width} wide, {layers} deep), nodes a:{} b:{} slots, {} ms a build",
        slots[0],
        slots[1],
        build.as_millis()
    );
    println!(
        "  wall {:.3}s, critical path under these slots {:.3}s (chain {:.3}s, work/slots {:.3}s): {:.3}x (goal <= 1.15x)",
        wall.as_secs_f64(),
        bound,
        chain,
        work,
        wall.as_secs_f64() / bound
    );
    println!(
        "  steps per node: a {} ({:.0}%), b {} ({:.0}%); slot share a {:.0}%",
        share("a"),
        100.0 * share("a") as f64 / steps as f64,
        share("b"),
        100.0 * share("b") as f64 / steps as f64,
        100.0 * slots[0] as f64 / total_slots as f64
    );
    println!(
        "  overhead per step: {:.1} ms inside a step beyond its build, {:.1} ms of wall time beyond the bound (goal < 50 ms); planning {:.1} ms in all",
        mean_in_step * 1000.0,
        (wall.as_secs_f64() - bound).max(0.0) * 1000.0 / steps as f64,
        planning.as_secs_f64() * 1000.0
    );
}

fn main() {
    // Output of the executor's progress goes to stderr; the figures to stdout.
    scenario(
        "8 independent images, 1 slot each",
        8,
        1,
        [1, 1],
        Duration::from_millis(300),
    );
    scenario(
        "a 6x5 tree, 2 + 3 slots",
        6,
        5,
        [2, 3],
        Duration::from_millis(200),
    );
    scenario(
        "a 10x4 tree, 2 + 2 slots",
        10,
        4,
        [2, 2],
        Duration::from_millis(200),
    );
}
