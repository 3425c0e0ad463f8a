//! A node whose native platforms cip.toml declares: the engine as detected, but native for what
//! the user says (as `docker buildx create --platform` does), for a daemon that cannot know or one
//! kept to some platforms.
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use crate::builders::{Backend, BuildJob, BuilderKind, Op, RegistryAccess, StoreRoots, Supervisor};
use crate::platform::Platform;

/// `inner`, native for `native`.
#[derive(Debug)]
pub struct Declared {
    pub inner: Arc<dyn Backend>,
    pub native: Vec<Platform>,
}

impl Backend for Declared {
    fn kind(&self) -> BuilderKind {
        self.inner.kind()
    }
    fn version(&self) -> &str {
        self.inner.version()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn native_platforms(&self) -> Vec<Platform> {
        self.native.clone()
    }
    fn platform_store(&self, platform: &Platform) -> Option<StoreRoots> {
        self.inner.platform_store(platform)
    }
    fn with_store(&self, store: &StoreRoots) -> Option<Arc<dyn Backend>> {
        let inner = self.inner.with_store(store)?;
        Some(Arc::new(Declared {
            inner,
            native: self.native.clone(),
        }))
    }
    fn build<'a>(&'a self, job: &'a BuildJob) -> Op<'a, ()> {
        self.inner.build(job)
    }
    fn export_oci_layout<'a>(&'a self, tag: &'a str, dir: &'a Path) -> Op<'a, ()> {
        self.inner.export_oci_layout(tag, dir)
    }
    fn push_to<'a>(
        &'a self,
        tag: &'a str,
        destination: &'a str,
        access: &'a RegistryAccess,
        log: &'a Path,
    ) -> Op<'a, ()> {
        self.inner.push_to(tag, destination, access, log)
    }
    fn local_tags(&self) -> Op<'_, HashSet<String>> {
        self.inner.local_tags()
    }
    fn image_exists<'a>(&'a self, tag: &'a str) -> Op<'a, bool> {
        self.inner.image_exists(tag)
    }
    fn remove_image<'a>(&'a self, tag: &'a str) -> Op<'a, ()> {
        self.inner.remove_image(tag)
    }
    fn tag_image<'a>(&'a self, src: &'a str, dst: &'a str) -> Op<'a, ()> {
        self.inner.tag_image(src, dst)
    }
    fn pull<'a>(
        &'a self,
        reference: &'a str,
        platform: Option<&'a Platform>,
        access: &'a RegistryAccess,
    ) -> Op<'a, ()> {
        self.inner.pull(reference, platform, access)
    }
    fn supervisor(&self) -> &Supervisor {
        self.inner.supervisor()
    }
    fn address(&self) -> Option<String> {
        self.inner.address()
    }
    fn cpus(&self) -> Op<'_, Option<usize>> {
        self.inner.cpus()
    }
    fn answers(&self) -> Op<'_, bool> {
        self.inner.answers()
    }
}
