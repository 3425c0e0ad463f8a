//! Where each external base points now: one manifest request per distinct reference, all at once,
//! one connection per registry, through the mirror cip.toml names for the base's host.
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures_util::future::{BoxFuture, Shared};
use futures_util::stream::{self, StreamExt};
use futures_util::FutureExt;

use super::BaseRef;
use crate::registry::{Reference, Registry};

/// `[registry.mirrors]`: the registry to ask instead of a host (`"docker.io" = "HOST[:PORT]"`),
/// the same mirror the builders pull through.
#[derive(Debug, Clone, Default)]
pub struct Mirrors(pub BTreeMap<String, String>);

impl Mirrors {
    /// The registry asked for `base`: its host's mirror, else the host's own registry API.
    pub fn address_for(&self, base: &BaseRef) -> String {
        self.0
            .get(&base.host)
            .cloned()
            .unwrap_or_else(|| base.api_host().to_string())
    }
}

/// What a base's registry says of it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The manifest digest the reference names now.
    Digest(String),
    /// The registry answered: it has no such tag.
    Missing { registry: String },
    /// The registry could not be asked (connection, TLS, authentication): the reason.
    Unreachable { registry: String, reason: String },
}

/// Connects to a registry by address, with the credentials cip has for that host.
pub type Connect<'a> =
    dyn Fn(String) -> BoxFuture<'a, anyhow::Result<Arc<Registry>>> + Send + Sync + 'a;

type Connection<'a> = Shared<BoxFuture<'a, Result<Arc<Registry>, String>>>;

/// Resolves each of `refs` (unpinned: see [`super::Bases::to_resolve`]), `concurrency` requests at
/// a time. Two references that come to one request (`docker.io/library/debian:12` through a mirror
/// and the mirror's own address) are asked once; each registry is connected to once, by the first
/// request that needs it.
pub async fn resolve<'a>(
    refs: &[BaseRef],
    mirrors: &Mirrors,
    connect: &'a Connect<'a>,
    concurrency: usize,
) -> BTreeMap<BaseRef, Resolution> {
    let mut requests: BTreeMap<(String, String, String), Vec<BaseRef>> = BTreeMap::new();
    for base in refs {
        let key = (
            mirrors.address_for(base),
            base.repository.clone(),
            base.asked().to_string(),
        );
        requests.entry(key).or_default().push(base.clone());
    }
    let mut connections: HashMap<String, Connection<'a>> = HashMap::new();
    let asks: Vec<_> = requests
        .into_iter()
        .map(|((address, repository, asked), bases)| {
            let connection = connections
                .entry(address.clone())
                .or_insert_with(|| {
                    let fut = connect(address.clone());
                    async move { fut.await.map_err(|e| format!("{e:#}")) }
                        .boxed()
                        .shared()
                })
                .clone();
            async move {
                let found = ask(&address, &repository, &asked, connection).await;
                bases.into_iter().map(move |b| (b, found.clone()))
            }
        })
        .collect();
    stream::iter(asks)
        .buffer_unordered(concurrency.max(1))
        .flat_map(stream::iter)
        .collect()
        .await
}

async fn ask(
    address: &str,
    repository: &str,
    asked: &str,
    connection: Connection<'_>,
) -> Resolution {
    let unreachable = |reason: String| Resolution::Unreachable {
        registry: address.to_string(),
        reason,
    };
    let registry = match connection.await {
        Ok(r) => r,
        Err(reason) => return unreachable(reason),
    };
    let reference = Reference::with_tag(
        registry.address().to_string(),
        repository.to_string(),
        asked.to_string(),
    );
    match registry.manifest_digest(&reference).await {
        Ok(Some(digest)) => Resolution::Digest(digest),
        Ok(None) => Resolution::Missing {
            registry: address.to_string(),
        },
        Err(e) => unreachable(format!("{e:#}")),
    }
}
