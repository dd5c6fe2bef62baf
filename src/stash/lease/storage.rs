//! Leases kept in module storage itself: a log of conditionally created generations per key.
//!
//! Works on every backend that honours `PutMode::Create` (S3 `If-None-Match: *`, a hard link
//! locally, the in-memory store); it never needs `PutMode::Update`, which local files lack.
//! [`probe_conditional_writes`](crate::storage::probe::probe_conditional_writes) checks a backend
//! before it is trusted with leases.
//!
//! # Layout
//! `.modstash/leases/{segment}/{generation:020}`: `segment` is one path segment made of a
//! readable prefix of the key (characters other than `[A-Za-z0-9._-]` become `_`) and the hex
//! SHA-256 of the whole key, so keys with `/`, `!`, `~`, `+` never nest or collide. Generations are
//! zero-padded so that lexical order is numeric order. Each generation holds
//! `{"owner", "token", "expires_at_unix_ms", "released"}` as JSON.
//!
//! # Protocol
//! The state of a key is its highest generation `n`; the key is free when there is none, or when
//! generation `n` has expired or is a release marker.
//! - **acquire**: list, read `n`; if free, create `n+1` with `PutMode::Create`: exactly one
//!   contender's create succeeds, everyone else sees `AlreadyExists` and gets `None`.
//! - **renew**: the holder of `n` creates `n+1` with a new expiry; if someone else created it (the
//!   lease had expired and was taken over), the create fails and the lease is lost.
//! - **release**: the holder of `n` creates `n+1` as a release marker (`released: true`, expired),
//!   so waiters take over at once without waiting for the TTL.
//! - **garbage collection**: whoever creates generation `m` deletes every generation below `m`,
//!   so a key at rest keeps one small object (its release marker or its last, expired, lease).
//!
//! Deleting old generations makes one race possible: a contender that read generation `k-1` long
//! ago may create `k` after `k` was created *and collected* by others, who are by then at `k+2` or
//! beyond. So after every create the creator lists again and counts as holder only if no higher
//! generation exists (S3 and local listings are consistent after a write).
//!
//! # Clocks
//! Expiry is wall-clock time (`expires_at_unix_ms`), because it is compared across processes and
//! machines. The replicas' clocks are assumed to agree to well within the TTL (NTP keeps them to
//! milliseconds; the default TTL is 30 s and the holder renews every TTL/3). A replica whose clock
//! runs ahead by more than the remaining lease time could take over a live lease; the cost is one
//! duplicate fetch of the same immutable version, never a wrong commit.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Lease, LeaseError, LeaseGuard};
use crate::storage::Storage;
use crate::storage::layout::internal_key;

/// Folder under `.modstash/` holding the lease logs.
const LEASES: &str = "leases";
/// Characters of the key kept readable in its segment (the hash makes it unique).
const READABLE_PREFIX: usize = 40;
/// Digits of a generation's name: `u64::MAX` has 20.
const GENERATION_DIGITS: usize = 20;

/// Leases as conditionally created objects in module storage.
#[derive(Debug, Clone)]
pub struct StorageLease {
    storage: Storage,
    owner: Arc<str>,
}

impl StorageLease {
    /// Leases kept in `storage`, which must honour `PutMode::Create` (see the module docs).
    pub fn new(storage: Storage) -> StorageLease {
        StorageLease {
            storage,
            owner: default_owner().into(),
        }
    }

    /// Names the holder in lease objects (default: `{hostname}:{pid}`), for people reading them.
    pub fn with_owner(mut self, owner: impl Into<String>) -> StorageLease {
        self.owner = owner.into().into();
        self
    }

    /// The folder of a key's lease log.
    pub fn key_dir(key: &str) -> Path {
        internal_key(&[LEASES, &segment(key)])
    }

    fn store(&self) -> &Arc<dyn ObjectStore> {
        self.storage.object_store()
    }

    /// The key's generations, ascending.
    async fn generations(&self, dir: &Path) -> Result<Vec<u64>, LeaseError> {
        let listing = self
            .store()
            .list_with_delimiter(Some(dir))
            .await
            .map_err(unavailable)?;
        let mut generations: Vec<u64> = listing
            .objects
            .iter()
            .filter_map(|o| o.location.filename())
            .filter(|name| name.len() == GENERATION_DIGITS)
            .filter_map(|name| name.parse().ok())
            .collect();
        generations.sort_unstable();
        Ok(generations)
    }

    /// Reads one generation; `None` if it was collected since it was listed.
    async fn read(&self, dir: &Path, generation: u64) -> Result<Option<Record>, LeaseError> {
        let key = generation_key(dir, generation);
        let Some(bytes) = self.storage.read(&key).await.map_err(unavailable)? else {
            return Ok(None);
        };
        match serde_json::from_slice(&bytes) {
            Ok(record) => Ok(Some(record)),
            Err(e) => {
                // Nothing we write is partial (puts are atomic), so this is foreign: treat it as
                // an expired lease rather than blocking the key forever.
                tracing::warn!(key = %key, error = %e, "unreadable lease object; treating it as expired");
                Ok(Some(Record::expired()))
            }
        }
    }

    /// Creates a generation; `false` when someone else already created it.
    async fn create(
        &self,
        dir: &Path,
        generation: u64,
        record: &Record,
    ) -> Result<bool, LeaseError> {
        let body = serde_json::to_vec(record).map_err(unavailable)?;
        self.storage
            .create(&generation_key(dir, generation), Bytes::from(body))
            .await
            .map_err(unavailable)
    }

    /// After creating `mine`: true if it is still the highest generation (see the module docs on
    /// collected generations); deletes every generation below it either way.
    async fn settle(&self, dir: &Path, mine: u64) -> Result<bool, LeaseError> {
        let generations = self.generations(dir).await?;
        for &old in generations.iter().filter(|&&g| g < mine) {
            // Best effort: a leftover old generation is only clutter; the next creator retries.
            if let Err(e) = self.store().delete(&generation_key(dir, old)).await
                && !matches!(e, object_store::Error::NotFound { .. })
            {
                tracing::debug!(error = %e, generation = old, "could not collect an old lease generation");
            }
        }
        Ok(generations.last().is_none_or(|&latest| latest <= mine))
    }
}

/// Lease logs at rest for longer than a grace period: their last generation expired (or was
/// released) that long ago.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StaleLogs {
    /// Logs found at rest.
    pub found: usize,
    /// Logs deleted (with `delete`).
    pub deleted: usize,
}

/// Finds (and with `delete`, removes) the lease logs whose last generation expired more than
/// `idle_for` ago: one small object per key ever fetched under storage leases would otherwise
/// stay forever.
///
/// Deleting a key's whole log restarts its generations at 1, which weakens the check against a
/// contender that read the old last generation and creates its successor much later (see the
/// module docs): hence the grace period, far above any read-to-create delay. At worst two
/// replicas fetch the same immutable version once each; a commit is never wrong.
pub async fn collect_stale_logs(
    storage: &Storage,
    idle_for: Duration,
    delete: bool,
) -> Result<StaleLogs, LeaseError> {
    let root = internal_key(&[LEASES]);
    let objects: Vec<object_store::ObjectMeta> = storage
        .object_store()
        .list(Some(&root))
        .try_collect()
        .await
        .map_err(unavailable)?;
    let mut logs: std::collections::BTreeMap<Path, Vec<u64>> = std::collections::BTreeMap::new();
    for meta in objects {
        let Some(name) = meta.location.filename() else {
            continue;
        };
        let Ok(generation) = name.parse::<u64>() else {
            continue;
        };
        let dir: Path = meta
            .location
            .parts()
            .take(meta.location.parts().count().saturating_sub(1))
            .collect();
        logs.entry(dir).or_default().push(generation);
    }
    let lease = StorageLease::new(storage.clone());
    let cutoff = now_unix_ms().saturating_sub(millis(idle_for));
    let mut stale = StaleLogs::default();
    for (dir, mut generations) in logs {
        generations.sort_unstable();
        let Some(&last) = generations.last() else {
            continue;
        };
        let at_rest = match lease.read(&dir, last).await? {
            Some(record) => record.expires_at_unix_ms < cutoff,
            None => false,
        };
        if !at_rest {
            continue;
        }
        stale.found += 1;
        if delete {
            // Lowest first: while this runs, the log's highest generation is the last to go.
            for generation in generations {
                match lease
                    .store()
                    .delete(&generation_key(&dir, generation))
                    .await
                {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(unavailable(e)),
                }
            }
            stale.deleted += 1;
        }
    }
    Ok(stale)
}

#[async_trait]
impl Lease for StorageLease {
    #[tracing::instrument(skip_all, fields(key = %key, backend = "storage"))]
    async fn try_acquire(
        &self,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<Box<dyn LeaseGuard>>, LeaseError> {
        let dir = Self::key_dir(key);
        let generation = match self.generations(&dir).await?.last() {
            None => 1,
            Some(&latest) => match self.read(&dir, latest).await? {
                // Collected between our list and read: someone is creating generations right now.
                None => return Ok(None),
                Some(record) if record.is_live(now_unix_ms()) => return Ok(None),
                Some(_) => latest
                    .checked_add(1)
                    .ok_or_else(|| unavailable("lease generations exhausted"))?,
            },
        };
        let token = format!("{:032x}", rand::random::<u128>());
        let record = Record {
            owner: self.owner.to_string(),
            token: token.clone(),
            expires_at_unix_ms: now_unix_ms().saturating_add(millis(ttl)),
            released: false,
        };
        if !self.create(&dir, generation, &record).await? {
            return Ok(None);
        }
        if !self.settle(&dir, generation).await? {
            tracing::debug!(
                generation,
                "created a stale generation; the lease is held elsewhere"
            );
            return Ok(None);
        }
        Ok(Some(Box::new(StorageGuard {
            lease: self.clone(),
            key: key.to_owned(),
            dir,
            generation,
            record,
            ttl,
        })))
    }

    fn name(&self) -> &'static str {
        "storage"
    }
}

/// A held storage lease: generation `generation` of the key's log is ours.
struct StorageGuard {
    lease: StorageLease,
    key: String,
    dir: Path,
    generation: u64,
    record: Record,
    ttl: Duration,
}

impl StorageGuard {
    fn lost(&self) -> LeaseError {
        LeaseError::Lost(self.key.clone())
    }
}

#[async_trait]
impl LeaseGuard for StorageGuard {
    #[tracing::instrument(skip_all, fields(key = %self.key, backend = "storage", generation = self.generation))]
    async fn renew(&mut self) -> Result<(), LeaseError> {
        let now = now_unix_ms();
        if now >= self.record.expires_at_unix_ms {
            // Past its expiry anyone may have taken it over; the contract says stop.
            return Err(self.lost());
        }
        let next = self.generation.checked_add(1).ok_or_else(|| self.lost())?;
        let record = Record {
            expires_at_unix_ms: now.saturating_add(millis(self.ttl)),
            ..self.record.clone()
        };
        if !self.lease.create(&self.dir, next, &record).await? {
            return Err(self.lost());
        }
        self.generation = next;
        self.record = record;
        if !self.lease.settle(&self.dir, next).await? {
            return Err(self.lost());
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(key = %self.key, backend = "storage", generation = self.generation))]
    async fn release(self: Box<Self>) -> Result<(), LeaseError> {
        let Some(next) = self.generation.checked_add(1) else {
            return Ok(());
        };
        let marker = Record {
            expires_at_unix_ms: 0,
            released: true,
            ..self.record.clone()
        };
        // If the create fails someone took the lease over: releasing a lost lease is no error.
        if self.lease.create(&self.dir, next, &marker).await? {
            self.lease.settle(&self.dir, next).await?;
        }
        Ok(())
    }

    fn key(&self) -> &str {
        &self.key
    }
}

/// One generation of a lease log, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    /// Who holds it, for people reading the bucket.
    owner: String,
    /// Random per acquisition: tells one holder's generations from another's.
    token: String,
    /// Wall-clock expiry.
    expires_at_unix_ms: u64,
    /// A release marker: free at once.
    #[serde(default)]
    released: bool,
}

impl Record {
    fn expired() -> Record {
        Record {
            owner: String::new(),
            token: String::new(),
            expires_at_unix_ms: 0,
            released: false,
        }
    }

    fn is_live(&self, now_unix_ms: u64) -> bool {
        !self.released && self.expires_at_unix_ms > now_unix_ms
    }
}

/// One safe path segment per key: readable prefix + SHA-256 of the whole key.
fn segment(key: &str) -> String {
    let readable: String = key
        .chars()
        .take(READABLE_PREFIX)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{readable}-{}", hex::encode(Sha256::digest(key.as_bytes())))
}

fn generation_key(dir: &Path, generation: u64) -> Path {
    dir.clone()
        .join(format!("{generation:0width$}", width = GENERATION_DIGITS).as_str())
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn unavailable(e: impl std::fmt::Display) -> LeaseError {
    LeaseError::Unavailable(format!("storage lease: {e}"))
}

/// `{hostname}:{pid}`: enough for a person to find the holder of a lease.
fn default_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    format!("{host}:{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_one_distinct_safe_segment() {
        let keys = [
            "fetch/example.com/m@v1.0.0",
            "fetch/example.com/m@v1.0.0+incompatible",
            "fetch/example.com/!m@v1.0.0",
            "fetch/example.com/m~x@v1.0.0",
            "fetch/example.com_m@v1.0.0",
            "..",
            "",
        ];
        let mut seen = std::collections::HashSet::new();
        for key in keys {
            let dir = StorageLease::key_dir(key);
            let parts: Vec<_> = dir.parts().collect();
            assert_eq!(parts.len(), 3, "{key:?} -> {dir}");
            let seg = parts[2].as_ref();
            assert!(
                seg.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')),
                "{seg}"
            );
            assert!(seen.insert(seg.to_owned()), "collision for {key:?}");
        }
        assert!(
            StorageLease::key_dir("fetch/example.com/m@v1.0.0")
                .as_ref()
                .starts_with(".modstash/leases/fetch_example.com_m_v1.0.0-")
        );
    }

    #[test]
    fn generations_sort_lexically_as_numbers() {
        let dir = StorageLease::key_dir("k");
        let a = generation_key(&dir, 9);
        let b = generation_key(&dir, 10);
        assert!(a.as_ref() < b.as_ref());
        assert_eq!(a.filename().map(str::len), Some(GENERATION_DIGITS));
    }

    #[test]
    fn released_and_expired_records_are_free() {
        let live = Record {
            owner: "o".into(),
            token: "t".into(),
            expires_at_unix_ms: 2_000,
            released: false,
        };
        assert!(live.is_live(1_999));
        assert!(!live.is_live(2_000));
        let released = Record {
            released: true,
            ..live
        };
        assert!(!released.is_live(0));
    }
}
