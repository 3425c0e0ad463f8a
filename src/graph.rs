//! The dependency DAG of a project.
