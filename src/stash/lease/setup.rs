//! Start-up: the lease backend that [`LeaseSpec`] names, checked before it is trusted.
//!
//! - `memory`: in-process leases.
//! - `storage`: leases in the module storage; refused unless the storage honours conditional
//!   create (probed), since the lease's mutual exclusion rests on it.
//! - `redis://...`: checked with a `PING`; when Redis is unreachable at start the process logs an
//!   error and runs on in-process leases (requests for stored versions keep working, replicas may
//!   duplicate a cold fetch), and [`Lease::status`] reports
//!   [`LeaseStatus::Degraded`] for `/readyz`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Lease, LeaseError, LeaseGuard, LeaseStatus, MemoryLease, RedisLease, StorageLease};
use crate::config::LeaseSpec;
use crate::storage::probe::probe_conditional_writes;
use crate::storage::{Storage, StorageError, StorageUrl};

/// The lease backend cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LeaseSetupError {
    /// The storage silently overwrites where it should refuse, so it cannot hold leases.
    #[error(
        "lease = \"storage\" needs conditional writes, but storage {storage} does not honour \
         create-if-absent (a second create of the same object succeeded or is not supported); \
         use an S3 service with If-None-Match support, a local directory, or lease = \"redis://...\""
    )]
    NotConditional {
        /// The storage URL.
        storage: String,
    },
    /// The storage could not be probed.
    #[error("lease = \"storage\": cannot probe storage {storage} for conditional writes: {source}")]
    Probe {
        /// The storage URL.
        storage: String,
        /// Why.
        source: StorageError,
    },
    /// The lease backend's settings are unusable.
    #[error("lease backend: {0}")]
    Backend(#[from] LeaseError),
}

/// Opens the lease backend `spec` names.
pub async fn open(spec: &LeaseSpec, storage: &Storage) -> Result<Arc<dyn Lease>, LeaseSetupError> {
    match spec {
        LeaseSpec::Memory => Ok(Arc::new(MemoryLease::new())),
        LeaseSpec::Storage => {
            check_storage(storage, probe_conditional_writes(storage).await)?;
            Ok(Arc::new(StorageLease::new(storage.clone())))
        }
        LeaseSpec::Redis(url) => {
            let lease = RedisLease::new(url)?;
            Ok(match lease.ping().await {
                Ok(()) => Arc::new(lease),
                Err(e) => fall_back(spec, &e),
            })
        }
    }
}

fn check_storage(
    storage: &Storage,
    probed: Result<bool, StorageError>,
) -> Result<(), LeaseSetupError> {
    let shown = storage.url().redacted();
    match probed {
        Ok(true) => {
            if matches!(storage.url(), StorageUrl::Memory) {
                tracing::warn!(
                    "lease = \"storage\" over memory:// storage coordinates this process only"
                );
            }
            Ok(())
        }
        Ok(false) => Err(LeaseSetupError::NotConditional { storage: shown }),
        Err(source) => Err(LeaseSetupError::Probe {
            storage: shown,
            source,
        }),
    }
}

fn fall_back(spec: &LeaseSpec, error: &LeaseError) -> Arc<dyn Lease> {
    tracing::error!(
        lease = %spec,
        error = %error,
        "lease backend unreachable at start; falling back to in-process leases: stored versions \
         are served, but replicas may fetch the same version at once until a restart reaches it"
    );
    Arc::new(FallbackLease {
        inner: MemoryLease::new(),
        status: LeaseStatus::Degraded {
            configured: spec.redacted(),
            reason: error.to_string(),
        },
    })
}

/// In-process leases standing in for a backend that was unreachable at start.
struct FallbackLease {
    inner: MemoryLease,
    status: LeaseStatus,
}

#[async_trait]
impl Lease for FallbackLease {
    async fn try_acquire(
        &self,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<Box<dyn LeaseGuard>>, LeaseError> {
        self.inner.try_acquire(key, ttl).await
    }

    fn name(&self) -> &'static str {
        "memory"
    }

    fn status(&self) -> LeaseStatus {
        self.status.clone()
    }
}
