//! The integration tests, one binary (it links once): each module tests one area against real
//! parts (registry processes, buildah, podman, dockerd, QEMU emulation, files); `common` holds
//! what they share.
mod common;

mod auth;
mod backends;
mod bases;
mod bearer;
mod cascade;
mod cascade_props;
mod check;
mod ci_matrix;
mod config;
mod dockerfile_scan;
mod dockerma;
mod drift;
mod environment;
mod execute_hooks;
mod farm;
mod graph;
mod image_config;
mod index_writer;
mod info_props;
mod inventory;
mod layers;
mod leftovers;
mod limits;
mod merge;
mod metadata;
mod mirror;
mod package;
mod pipelines;
mod plan_steps;
mod progress;
mod publish;
mod publish_docker;
mod publish_integrity;
mod publish_podman;
mod push;
mod registry_faults;
mod registry_path;
mod release;
mod retry;
mod signing;
mod stage;
