//! Reading a project directory: its contexts, their info.edn / VERSION files and Dockerfile references.
pub mod dockerfile;
