//! podman: the containers engine of [`super::buildah`], on this machine or as a service elsewhere
//! (`url`, `connection`), whose images come back through `podman save`.
use std::sync::Arc;

use super::buildah::{detect, Program};
use super::engines::{Engine, Features, Heredocs};
use super::{Backend, NodeEnv};

pub static ENGINE: Engine = Engine {
    name: "podman",
    auto: true,
    check_keys: |keys| {
        let hint = "a podman node has url = \"unix://...\" | \"ssh://...\" or connection = \
                    \"NAME\", or neither for the local podman";
        keys.refuse(&["host", "context"], hint)?;
        keys.scheme(
            "url",
            &["unix://", "tcp://", "ssh://"],
            "write unix:///path/podman.sock, ssh://USER@HOST[:PORT]/path/podman.sock or \
             tcp://HOST:PORT",
        )?;
        keys.one_of("url", "connection")
    },
    reach: |keys| {
        let env = NodeEnv::new();
        match (keys.url, keys.connection) {
            (Some(_), Some(_)) => Err("both url and connection: name one".into()),
            // One argument each (`--url=VALUE`): never split, never read as two options.
            (Some(url), None) => Ok((
                url.to_string(),
                env.with_global_args(vec![format!("--url={url}")]),
            )),
            (None, Some(c)) => Ok((
                format!("connection {c}"),
                env.with_global_args(vec![format!("--connection={c}")]),
            )),
            (None, None) => Ok(("local".into(), env)),
        }
    },
    detect: |env| detect(Program::Podman, env).map(|b| Arc::new(b) as Arc<dyn Backend>),
    features: Features {
        heredocs: Heredocs::Since(5, 0),
    },
};
