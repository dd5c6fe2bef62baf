//! modstash: a Go module proxy that fetches each `module@version` from upstream exactly once
//! and keeps it forever in storage (a local directory or any S3-compatible bucket).
//!
//! Module map (see ARCHITECTURE.md for the concept-to-file index):
//! - [`module`]: the Go module vocabulary, pure: paths, versions, escaping, zip checks, `h1:` hashes.
//! - [`storage`]: typed operations over `object_store` with the GOPROXY-tree key layout and atomic commit.
//! - [`upstream`]: where modules come from: the GOPROXY client chain and `direct` (the go command).
//! - [`policy`]: per-module rules (include/exclude/direct, download mode) and the version deny list.
//! - [`stash`]: fetch once: single flight, leases, merged list writes.
//! - [`sumdb`]: the checksum-database proxy: path grammar, allow-list, tile cache.
//! - [`http`]: axum routes, the one error-to-status mapping, streaming bodies.
//! - [`prefetch`]: `modstash prefetch`: fetch what a go.sum, go.mod or list names, check go.sum hashes.
//! - [`inspect`]: storage inspection: `ls`, `verify`, `rm` and the `/catalog` listing.
//! - [`metrics`]: Prometheus counters, one registry per server.
//! - [`auth`]: client authentication from user and token files.
//! - [`config`] and [`cli`]: settings from file, env and flags; the `modstash` commands.

pub mod auth;
pub mod cli;
pub mod config;
pub mod http;
pub mod inspect;
pub mod metrics;
pub mod module;
pub mod policy;
pub mod prefetch;
pub mod stash;
pub mod storage;
pub mod sumdb;
pub mod upstream;

pub use config::Settings;
pub use http::serve;
