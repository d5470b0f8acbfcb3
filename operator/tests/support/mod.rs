//! Test support shared by the operator's integration tests and its benchmark.
pub mod fake_api;
