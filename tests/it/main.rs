//! modstash integration tests: one binary, so the fixture tree is built once per run and shared.
//!
//! `fixture_tree_test` validates the fixtures themselves and passes without the server;
//! the other modules test modstash end to end. Tests needing the go command skip without
//! it unless `MODSTASH_E2E=require`.

// clippy.toml's allow-*-in-tests covers only #[test] functions; the support helpers are
// test code too, where a panic with a message is exactly how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../services/mod.rs"]
mod services;
// Shared with tests/reliability, which uses parts of it this binary does not.
#[allow(dead_code)]
mod support;

mod auth;
mod bad_input;
mod direct;
mod e2e_go;
mod exactly_once;
mod fail_fast;
mod fixture_tree_test;
mod fleet;
mod list_repair;
mod metrics;
mod policy;
mod prefetch;
mod protocol;
mod slow_clients;
mod sumdb;
