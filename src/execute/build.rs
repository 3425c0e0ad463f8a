//! Building a step: on the node the plan gives it, holding one of that node's slots; when it fails
//! and that node no longer answers, once more on a fallback node. The built image is then
//! delivered where the step's output says (see `deliver`).
use anyhow::Context as _;

use super::deliver::Deliver;
use super::StepRunner;
use crate::builders::BuildJob;
use crate::plan::steps::{Build, ImageId, NodeId, Output, StepId};
use crate::progress::Line;

impl StepRunner {
    /// Builds on the plan's node; when that fails and the node no longer answers (lost in the
    /// middle of the run), once more on the first of the step's fallback nodes that answers.
    pub(super) async fn build_or_move(
        &self,
        id: StepId,
        image: ImageId,
        b: &Build,
        line: &Line,
    ) -> anyhow::Result<()> {
        let first = self.build(image, b, b.node, line).await;
        let Err(error) = first else {
            return Ok(());
        };
        if b.fallback_nodes.is_empty() {
            return Err(error);
        }
        if self.nodes[b.node.0].answers().await.unwrap_or(false) {
            return Err(error);
        }
        let lost = &self.plan.nodes[b.node.0].name;
        for &other in &b.fallback_nodes {
            if !self.nodes[other.0].answers().await.unwrap_or(false) {
                continue;
            }
            let img = self.plan.image(image);
            self.progress.println(&format!(
                "retry: building {}:{} for {} on node {lost} failed and the node no longer \
                 answers: building it on node {} (attempt 2/2)",
                img.name, img.version, b.platform, self.plan.nodes[other.0].name
            ));
            self.shared().moved.insert(id, other);
            return self
                .build(image, b, other, line)
                .await
                .with_context(|| format!("after node {lost} was lost ({error:#})"));
        }
        Err(error.context(format!(
            "node {lost} no longer answers, and no other node able to build {} does",
            b.platform
        )))
    }

    /// Builds on node `on` (the plan's, or a fallback); on a farm a failure names the node.
    async fn build(
        &self,
        image: ImageId,
        b: &Build,
        on: NodeId,
        line: &Line,
    ) -> anyhow::Result<()> {
        let _slot = match self.slots.get(on.0) {
            Some(slots) => Some(slots.acquire().await.context("the run is ending")?),
            None => None,
        };
        let result = self.build_on(image, b, on, line).await;
        match &self.plan.nodes[on.0].name {
            name if name == "local" => result,
            name => result.with_context(|| format!("on node {name}")),
        }
    }

    async fn build_on(
        &self,
        image: ImageId,
        b: &Build,
        on: NodeId,
        line: &Line,
    ) -> anyhow::Result<()> {
        let node = &self.nodes[on.0];
        let store = match on == b.node {
            true => b.store.clone(),
            false => node.platform_store(&b.platform),
        };
        let builder = match &store {
            Some(store) => node.with_store(store).unwrap_or_else(|| node.clone()),
            None => node.clone(),
        };
        let job = BuildJob {
            context_dir: b.context_dir.clone(),
            dockerfile: b.dockerfile.clone(),
            platform: b.platform.clone(),
            build_args: b.build_args.clone().into_iter().collect(),
            tag: b.tag.clone(),
            extra_args: b.builder_args.clone(),
            log: b.log.clone(),
            registry: self.access.clone(),
            options: b.options.clone(),
            events: line.events(&format!("{} {}", self.plan.image(image).name, b.platform)),
        };
        builder.build(&job).await?;
        let deliver = self.deliver();
        match &b.output {
            Output::Push { .. } => {
                let pushed = deliver.push(builder.as_ref(), image, b, on).await;
                if pushed.is_err() {
                    let mut s = self.shared();
                    s.push_failures
                        .entry(image)
                        .or_default()
                        .push(b.platform.clone());
                }
                pushed
            }
            Output::Store { also_tagged } => deliver.keep(builder.as_ref(), b, also_tagged).await,
        }
    }

    /// Delivering with this run's registry, access, display and hooks.
    fn deliver(&self) -> Deliver<'_> {
        Deliver {
            plan: &self.plan,
            registry: self.registry.as_deref(),
            access: &self.access,
            progress: &self.progress,
            after_push: &self.after_push,
            temp_dir: &self.temp_dir,
        }
    }
}
