//! Start-up: the lease backend that [`LeaseSpec`] names, checked before it is trusted.
//!
//! - `memory`: in-process leases.
//! - `storage`: leases in the module storage; refused unless the storage honours conditional
//!   create (probed), since the lease's mutual exclusion rests on it.
//! - `redis://...`: checked with a `PING`; when Redis is unreachable at start the process logs an
//!   error and runs on in-process leases (requests for stored versions keep working, replicas may
//!   duplicate a cold fetch), and [`Lease::status`] reports
//!   [`LeaseStatus::Degraded`] for `/readyz`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Lease, LeaseError, LeaseGuard, LeaseStatus, MemoryLease, RedisLease, StorageLease};
use crate::config::LeaseSpec;
use crate::storage::probe::probe_conditional_writes;
use crate::storage::{Storage, StorageError, StorageUrl};

/// How long the start-up `PING` waits for Redis.
const REDIS_START_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// The start-up check could not run.
    #[error("lease backend start-up check failed: {0}")]
    Check(String),
}

/// Opens the lease backend `spec` names (async contexts).
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

/// Opens the lease backend `spec` names from synchronous code, inside or outside a tokio
/// runtime of either flavour: the checks run on a thread of their own.
pub fn open_blocking(
    spec: &LeaseSpec,
    storage: &Storage,
) -> Result<Arc<dyn Lease>, LeaseSetupError> {
    match spec {
        LeaseSpec::Memory => Ok(Arc::new(MemoryLease::new())),
        LeaseSpec::Storage => {
            // A second handle for the probe: object-store clients pool connections on the runtime
            // that made them, and the probe's runtime ends with the probe.
            let probe_storage = match storage.url() {
                StorageUrl::Memory => storage.clone(),
                url => Storage::open(url).map_err(|source| LeaseSetupError::Probe {
                    storage: url.redacted(),
                    source,
                })?,
            };
            let probed =
                on_own_runtime(async move { probe_conditional_writes(&probe_storage).await })?;
            check_storage(storage, probed)?;
            Ok(Arc::new(StorageLease::new(storage.clone())))
        }
        LeaseSpec::Redis(url) => {
            // The blocking client needs no runtime; the lease connects for real on first use.
            let lease = RedisLease::new(url)?;
            Ok(match lease.ping_blocking(REDIS_START_TIMEOUT) {
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

/// Runs `fut` to completion on a fresh current-thread runtime on a scoped thread, so it works
/// whether or not the caller is inside a runtime (where `block_on` would panic).
fn on_own_runtime<F>(fut: F) -> Result<F::Output, LeaseSetupError>
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| rt.block_on(fut))
                    .map_err(|e| LeaseSetupError::Check(e.to_string()))
            })
            .join()
            .map_err(|_| LeaseSetupError::Check("the check panicked".into()))?
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
