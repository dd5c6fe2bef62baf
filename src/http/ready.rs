//! `/readyz`: can this replica do its job? It must read storage, and, when it may fetch (an
//! upstream is configured), write to it: a read-only, full or unreachable storage makes every
//! cold request fail, so a load balancer should prefer other replicas until it recovers.
//!
//! The probe writes one tiny object; its result is reused for a short while so a flood of probes
//! (many balancers, a tight interval) costs at most one storage round trip per interval.

use std::time::{Duration, Instant};

use crate::stash::Stasher;
use crate::storage::StorageError;
use crate::storage::probe::probe_writable;

/// How long a probe result is reused.
const REUSE: Duration = Duration::from_secs(1);
/// A storage slower than this to answer a probe counts as unreachable: probes must answer
/// promptly, and S3 clients retry unreachable endpoints for much longer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the storage is not ready, for the probe's body (no paths, keys or credentials).
#[derive(Debug, Clone)]
pub enum NotReady {
    /// Reading or writing failed; the OS condition when it is known (full, read-only, ...).
    Failed(Option<std::io::ErrorKind>),
    /// No answer within the probe timeout.
    Timeout,
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Timeout => write!(f, "storage not answering"),
            NotReady::Failed(kind) => match kind.and_then(super::error::io_condition) {
                Some(condition) => write!(f, "storage {condition}"),
                None => write!(f, "storage unreachable"),
            },
        }
    }
}

/// The last probe's result, shared by all requests.
#[derive(Debug, Default)]
pub struct Readiness {
    last: tokio::sync::Mutex<Option<(Instant, Result<(), NotReady>)>>,
}

impl Readiness {
    /// The storage's state, probed at most once per [`REUSE`] (concurrent callers share a probe).
    pub async fn storage(&self, stasher: &Stasher) -> Result<(), NotReady> {
        let mut last = self.last.lock().await;
        if let Some((at, result)) = last.as_ref()
            && at.elapsed() < REUSE
        {
            return result.clone();
        }
        let result = match tokio::time::timeout(PROBE_TIMEOUT, probe(stasher)).await {
            Err(_) => Err(NotReady::Timeout),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "not ready: storage probe failed");
                Err(NotReady::Failed(e.io_kind()))
            }
            Ok(Ok(())) => Ok(()),
        };
        *last = Some((Instant::now(), result.clone()));
        result
    }
}

async fn probe(stasher: &Stasher) -> Result<(), StorageError> {
    let storage = stasher.storage();
    storage.check().await?;
    if stasher.can_fetch() {
        probe_writable(storage).await?;
    }
    Ok(())
}
