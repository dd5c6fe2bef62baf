//! Errors of the stasher.

use crate::storage::StorageError;
use crate::upstream::UpstreamError;

use super::lease::LeaseError;

/// Fetching or stashing a module failed.
#[derive(Debug, thiserror::Error)]
pub enum StashError {
    /// Neither storage nor upstream has it (or the request names something that cannot exist).
    #[error("{0}")]
    NotFound(String),
    /// The upstream failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The upstream answered something we refuse to store (bad zip, mismatched go.mod, ...).
    #[error("upstream sent an invalid module: {0}")]
    InvalidUpstream(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The lease backend failed.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// The shared fetch task died without an answer.
    #[error("the shared fetch was aborted")]
    Aborted,
}
