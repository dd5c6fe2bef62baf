//! Leases: at most one leader per key across everything that shares a lease backend.
//!
//! # Contract
//! - [`Lease::try_acquire`] returns a guard for at most one holder of a key at a time, until the
//!   guard is released or its time-to-live passes without a renewal.
//! - [`LeaseGuard::renew`] extends the lease by a full TTL; it fails with [`LeaseError::Lost`] once
//!   the lease expired or was taken over, and the holder must then stop working for the key.
//! - [`LeaseGuard::release`] frees the key at once; releasing a lost lease is not an error.
//! - After acquiring, the holder re-checks storage: another holder may have finished in between.
//!
//! # Backends
//! - [`MemoryLease`]: one process.
//! - [`StorageLease`]: a lease log of conditionally created objects in the module storage itself,
//!   so a fleet sharing a bucket (or a directory) needs nothing else.
//! - [`RedisLease`]: `SET NX PX` with compare-and-set scripts.
//!
//! [`setup::open`] picks one from [`LeaseSpec`](crate::config::LeaseSpec); [`Lease::status`] tells
//! readiness whether the configured backend is the one in use.

#[doc(hidden)]
pub mod compliance;
mod memory;
mod redis;
pub mod setup;
mod storage;

use std::time::Duration;

use async_trait::async_trait;

pub use self::redis::RedisLease;
pub use memory::MemoryLease;
pub use storage::{StaleLogs, StorageLease, collect_stale_logs};

/// A lease operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The lease expired or another holder took it over.
    #[error("lease on {0} was lost")]
    Lost(String),
    /// The lease backend cannot be reached.
    #[error("lease backend unavailable: {0}")]
    Unavailable(String),
}

/// A held lease. Dropping it without `release` lets it expire after its TTL.
#[async_trait]
pub trait LeaseGuard: Send + Sync {
    /// Extends the lease by a full TTL from now.
    async fn renew(&mut self) -> Result<(), LeaseError>;
    /// Frees the key.
    async fn release(self: Box<Self>) -> Result<(), LeaseError>;
    /// The key held.
    fn key(&self) -> &str;
}

/// A lease backend.
#[async_trait]
pub trait Lease: Send + Sync {
    /// Takes the lease on `key` for `ttl` if nobody holds it; `Ok(None)` if someone does.
    async fn try_acquire(
        &self,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<Box<dyn LeaseGuard>>, LeaseError>;

    /// Name of the backend for logs and readiness.
    fn name(&self) -> &'static str;

    /// Health of the backend as last seen, for readiness; cheap, never does I/O.
    fn status(&self) -> LeaseStatus {
        LeaseStatus::Ready
    }
}

/// Health of the lease backend, as `/readyz` reports it.
///
/// Only cold fetches take leases: requests for stored versions are served in every state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseStatus {
    /// The configured backend is in use and its last operation succeeded.
    Ready,
    /// The configured backend was unreachable at start; this process runs on in-process leases,
    /// so replicas may fetch the same version at once (harmless: commits are idempotent) until a
    /// restart reaches the backend.
    Degraded {
        /// The backend that was configured, password redacted.
        configured: String,
        /// Why it is not in use.
        reason: String,
    },
    /// The configured backend's last operation failed: cold fetches fail until it answers again.
    Unavailable {
        /// The last error.
        reason: String,
    },
}

impl LeaseStatus {
    /// True when cold fetches are coordinated fleet-wide as configured.
    pub fn is_ready(&self) -> bool {
        matches!(self, LeaseStatus::Ready)
    }
}

impl std::fmt::Display for LeaseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaseStatus::Ready => f.write_str("ready"),
            LeaseStatus::Degraded { configured, reason } => write!(
                f,
                "degraded: lease {configured} unreachable at start ({reason}); using in-process leases"
            ),
            LeaseStatus::Unavailable { reason } => write!(f, "unavailable: {reason}"),
        }
    }
}
