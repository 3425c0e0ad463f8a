//! An engine that exists only in the test build, registered in [`super::engines::ENGINES`] under
//! `#[cfg(test)]`: this file and that line are all it takes, which is what the test below proves
//! (cip.toml names it, its address keys are checked, it is probed, the plan places builds on it,
//! its capabilities are judged).
//!
//! It is in-process: no program, no daemon, no store on disk. A build records its tag in memory
//! and nothing runs, because what is under test is the registry and the code that asks it, not an
//! engine; the real engines are tested against real programs in tests/it (`backends::`).
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::anyhow;

use super::engines::{Engine, Features, Heredocs};
use super::{Backend, BuildJob, BuilderKind, NodeEnv, Op, RegistryAccess, Supervisor};
use crate::platform::Platform;

/// The version it reports: older than its heredoc support, so that capabilities have a say.
const VERSION: &str = "1.0.0";

pub static ENGINE: Engine = Engine {
    name: "in-process",
    // Not tried by `--builder auto`: detection order stays buildah, podman, docker.
    auto: false,
    check_keys: |keys| {
        keys.refuse(
            &["host", "context", "connection"],
            "an in-process node has url = \"inproc://NAME\"",
        )?;
        keys.scheme("url", &["inproc://"], "write inproc://NAME")
    },
    reach: |keys| Ok((keys.url.unwrap_or("local").to_string(), NodeEnv::new())),
    detect: |_| Ok(Arc::new(InProcess::default()) as Arc<dyn Backend>),
    features: Features {
        heredocs: Heredocs::Since(2, 0),
    },
};

/// The engine's one node: the tags of its store.
#[derive(Debug, Default)]
pub struct InProcess {
    tags: Mutex<HashSet<String>>,
    supervisor: Supervisor,
}

impl InProcess {
    fn tags(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.tags.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Backend for InProcess {
    fn kind(&self) -> BuilderKind {
        BuilderKind::of(&ENGINE)
    }
    fn version(&self) -> &str {
        VERSION
    }
    /// A platform no machine of the suite runs natively, so that placing it shows this engine's
    /// answer was asked.
    fn native_platforms(&self) -> Vec<Platform> {
        vec![Platform::new("linux", "riscv64", None)]
    }
    fn build<'a>(&'a self, job: &'a BuildJob) -> Op<'a, ()> {
        self.tags().insert(job.tag.clone());
        Box::pin(async { Ok(()) })
    }
    fn export_oci_layout<'a>(&'a self, tag: &'a str, _: &'a Path) -> Op<'a, ()> {
        Box::pin(async move { Err(anyhow!("the in-process engine keeps {tag} in memory").into()) })
    }
    fn local_tags(&self) -> Op<'_, HashSet<String>> {
        let tags = self.tags().clone();
        Box::pin(async move { Ok(tags) })
    }
    fn image_exists<'a>(&'a self, tag: &'a str) -> Op<'a, bool> {
        let found = self.tags().contains(tag);
        Box::pin(async move { Ok(found) })
    }
    fn remove_image<'a>(&'a self, tag: &'a str) -> Op<'a, ()> {
        self.tags().remove(tag);
        Box::pin(async { Ok(()) })
    }
    fn tag_image<'a>(&'a self, src: &'a str, dst: &'a str) -> Op<'a, ()> {
        let mut tags = self.tags();
        let result = match tags.contains(src) {
            true => Ok(()),
            false => Err(super::BackendError::NotFound {
                image: src.to_string(),
                detail: "not built".into(),
            }),
        };
        if result.is_ok() {
            tags.insert(dst.to_string());
        }
        Box::pin(async move { result })
    }
    fn pull<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a Platform>,
        _: &'a RegistryAccess,
    ) -> Op<'a, ()> {
        Box::pin(async { Err(anyhow!("the in-process engine reaches no registry").into()) })
    }
    fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::file::ProjectFile;
    use crate::farm::place::{Placer, Seat};
    use crate::farm::probe::probe_all;

    /// `cip.toml` with `nodes`, read as cip reads it.
    fn read(nodes: &str) -> Result<ProjectFile, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cip.toml"), nodes).unwrap();
        ProjectFile::load(dir.path())
            .map(|f| f.expect("the file was written"))
            .map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn the_registry_serves_its_name_address_check_and_capabilities() {
        let kind: BuilderKind = "In-Process".parse().unwrap();
        assert_eq!(kind.name(), "in-process");
        assert!(BuilderKind::node_names().any(|n| n == "in-process"));

        let e = read("[nodes.x]\nkind = \"in-process\"\nhost = \"unix:///x.sock\"\n").unwrap_err();
        assert!(e.contains(":3:"), "{e}");
        assert!(
            e.contains("node \"x\" (\"in-process\") takes no host"),
            "{e}"
        );
        assert!(e.contains("inproc://NAME"), "{e}");
        let e = read("[nodes.x]\nkind = \"in-process\"\nurl = \"ssh://far\"\n").unwrap_err();
        assert!(
            e.contains("node \"x\": url \"ssh://far\" has no scheme"),
            "{e}"
        );
        let e = read("[nodes.x]\nkind = \"kaniko\"\n").unwrap_err();
        assert!(e.contains("kind is one of"), "{e}");
        assert!(e.contains("\"in-process\""), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("contexts/00-a");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(
            ctx.join("Dockerfile"),
            "FROM scratch\nRUN <<EOF\ntrue\nEOF\n",
        )
        .unwrap();
        std::fs::write(ctx.join("info.edn"), "{:version \"1.0.0\"}").unwrap();
        let project = crate::project::scan(dir.path()).unwrap();
        let engine = (ENGINE.detect)(NodeEnv::new()).unwrap();
        let problems = super::super::capabilities::problems_for(&project, [0], engine.as_ref());
        assert_eq!(problems.len(), 1, "{problems:?}");
        let text = problems[0].to_string();
        assert!(
            text.contains("which in-process 1.0.0 cannot build (they need in-process 2.0+)"),
            "{text}"
        );
    }

    #[test]
    fn a_plan_places_builds_on_its_nodes() {
        let file = read(
            "[nodes.rv]\nkind = \"in-process\"\nurl = \"inproc://rv\"\n\
             [nodes.amd]\nkind = \"in-process\"\nplatforms = [\"linux/amd64\"]\njobs = 2\n",
        )
        .unwrap();
        let nodes: Vec<_> = file.nodes.into_iter().collect();
        let probed = probe_all(
            &nodes,
            &crate::farm::probe::Probing {
                timeout: Duration::from_secs(10),
                ..Default::default()
            },
        );
        let names: Vec<&str> = probed.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["amd", "rv"]);
        for n in &probed {
            assert!(n.reachable, "{n:?}");
            assert_eq!(n.kind.name(), "in-process");
            assert_eq!(n.engine.as_deref(), Some("in-process 1.0.0"));
        }
        assert_eq!(probed[1].address, "inproc://rv");
        assert_eq!(probed[1].native_platforms[0].to_string(), "linux/riscv64");
        assert_eq!(probed[0].native_platforms[0].to_string(), "linux/amd64");

        let mut placer = Placer::new(
            probed
                .iter()
                .map(|n| Seat {
                    native: n.native_platforms.clone(),
                    emulates: n.emulates.clone(),
                    slots: n.jobs,
                })
                .collect(),
        );
        let riscv = Platform::new("linux", "riscv64", None);
        let amd = Platform::new("linux", "amd64", None);
        let on_rv = placer.place(&riscv, &[]).unwrap();
        assert_eq!((on_rv.node, on_rv.emulated), (1, false));
        let on_amd = placer.place(&amd, &[1]).unwrap();
        assert_eq!((on_amd.node, on_amd.emulated), (0, false));

        // The node the plan chose builds there.
        let backend = probed[1].backend.clone().unwrap();
        let job = BuildJob {
            context_dir: ".".into(),
            dockerfile: "Dockerfile".into(),
            platform: riscv,
            build_args: Vec::new(),
            tag: "cip.local/a:1.0.0".into(),
            extra_args: Vec::new(),
            log: "a.log".into(),
            registry: RegistryAccess::default(),
            options: Default::default(),
            events: Default::default(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(backend.build(&job)).unwrap();
        rt.block_on(backend.tag_image("cip.local/a:1.0.0", "cip.local/a:latest"))
            .unwrap();
        let tags = rt.block_on(backend.local_tags()).unwrap();
        assert_eq!(tags.len(), 2, "{tags:?}");
        assert!(rt
            .block_on(backend.image_exists("cip.local/a:latest"))
            .unwrap());
    }
}
