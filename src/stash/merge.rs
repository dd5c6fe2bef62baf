//! Merged writes of `@v/list`: many commits append versions at once and none is lost.
//!
//! In-process, appends for one module are coalesced: a caller adds its version to the module's
//! pending set and queues for the module's writer lock; whoever holds the lock writes everything
//! pending in one read-merge-write. So N concurrent commits cause at most two writes. Across
//! processes the write is conditional (ETag / create-if-absent) and retried on conflict.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use dashmap::DashMap;

use std::time::Duration;

use super::error::StashError;
use super::lease::Lease;
use crate::module::{ModulePath, Version};
use crate::storage::{ListWrite, Storage, StorageError};

/// Retries of one merged write when other processes keep winning the race.
const MAX_CONFLICTS: usize = 32;

#[derive(Default)]
struct ModuleQueue {
    pending: Mutex<BTreeSet<Version>>,
    writer: tokio::sync::Mutex<()>,
}

/// How long a writer holds the list lock; a list write takes milliseconds.
const LIST_LOCK_TTL: Duration = Duration::from_secs(10);
/// How long a writer waits for the list lock before giving up (the list then lags, nothing else).
const LIST_LOCK_WAIT: Duration = Duration::from_secs(30);

/// Coalesces appends to each module's `@v/list`.
#[derive(Clone)]
pub struct ListMerger {
    storage: Storage,
    lease: Arc<dyn Lease>,
    queues: Arc<DashMap<ModulePath, Arc<ModuleQueue>>>,
}

impl ListMerger {
    /// A merger writing to `storage`. Where storage has no conditional update (local files), the
    /// read-merge-write runs under `lease`, so replicas sharing a directory serialise on it.
    pub fn new(storage: Storage, lease: Arc<dyn Lease>) -> Self {
        ListMerger {
            storage,
            lease,
            queues: Arc::new(DashMap::new()),
        }
    }

    /// Adds `version` to the module's `@v/list`; returns once it is written (by us or by a
    /// concurrent writer that took it along).
    pub async fn append(&self, path: &ModulePath, version: Version) -> Result<(), StashError> {
        let queue = Arc::clone(self.queues.entry(path.clone()).or_default().value());
        lock(&queue.pending).insert(version);
        let result = {
            let _writer = queue.writer.lock().await;
            let batch = std::mem::take(&mut *lock(&queue.pending));
            if batch.is_empty() {
                // The writer before us took our version along and wrote it.
                Ok(())
            } else {
                let written = self.write_merged(path, &batch).await;
                if written.is_err() {
                    // Give the batch back: the next writer retries it, nothing is dropped.
                    lock(&queue.pending).extend(batch);
                }
                written
            }
        };
        // Forget idle modules so the map does not grow with every module ever seen.
        self.queues.remove_if(path, |_, q| {
            Arc::strong_count(q) <= 2 && lock(&q.pending).is_empty()
        });
        result
    }

    async fn write_merged(
        &self,
        path: &ModulePath,
        batch: &BTreeSet<Version>,
    ) -> Result<(), StashError> {
        if self.storage.has_conditional_update() {
            return Ok(self.write_conditionally(path, batch).await?);
        }
        let key = format!("list/{}", path.escaped());
        let deadline = tokio::time::Instant::now() + LIST_LOCK_WAIT;
        let mut backoff = Duration::from_millis(5);
        let guard = loop {
            if let Some(guard) = self.lease.try_acquire(&key, LIST_LOCK_TTL).await? {
                break guard;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StashError::Storage(StorageError::Corrupt {
                    key: format!("{}/@v/list", path.escaped()),
                    reason: format!("list lock still held after {LIST_LOCK_WAIT:?}"),
                }));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        };
        let written = self.write_conditionally(path, batch).await;
        if let Err(e) = guard.release().await {
            tracing::warn!(error = %e, "list lock release failed; it will expire");
        }
        Ok(written?)
    }

    async fn write_conditionally(
        &self,
        path: &ModulePath,
        batch: &BTreeSet<Version>,
    ) -> Result<(), StorageError> {
        for _ in 0..MAX_CONFLICTS {
            let stored = self.storage.read_list(path).await?;
            if batch.iter().all(|v| stored.versions.contains(v)) {
                return Ok(());
            }
            let mut merged: Vec<Version> = stored.versions;
            merged.extend(batch.iter().cloned());
            match self.storage.write_list(path, &merged, stored.token).await? {
                ListWrite::Written => return Ok(()),
                ListWrite::Conflict => continue,
            }
        }
        Err(StorageError::Corrupt {
            key: format!("{}/@v/list", path.escaped()),
            reason: format!("still conflicting after {MAX_CONFLICTS} merged writes"),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the set half-updated (insert/take/extend are
    // single calls), so a poisoned lock is safe to keep using.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stash::lease::MemoryLease;
    use crate::storage::StorageUrl;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_lose_nothing() {
        let storage = Storage::open(&StorageUrl::Memory).unwrap();
        let merger = ListMerger::new(storage.clone(), Arc::new(MemoryLease::new()));
        let path = ModulePath::parse("example.com/m").unwrap();
        let mut tasks = Vec::new();
        for i in 0..100 {
            let (merger, path) = (merger.clone(), path.clone());
            tasks.push(tokio::spawn(async move {
                let v = Version::parse(&format!("v1.{i}.0")).unwrap();
                merger.append(&path, v).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let stored = storage.read_list(&path).await.unwrap();
        assert_eq!(stored.versions.len(), 100);
        for i in 0..100 {
            assert!(
                stored
                    .versions
                    .contains(&Version::parse(&format!("v1.{i}.0")).unwrap())
            );
        }
    }

    /// Appends `count` versions through two mergers (two replicas) alternately, then returns
    /// how many versions the stored list holds.
    async fn append_through_two(
        storage: &Storage,
        a: ListMerger,
        b: ListMerger,
        count: usize,
    ) -> usize {
        let path = ModulePath::parse("example.com/m").unwrap();
        let mut tasks = Vec::new();
        for i in 0..count {
            let merger = if i % 2 == 0 { a.clone() } else { b.clone() };
            let path = path.clone();
            tasks.push(tokio::spawn(async move {
                merger
                    .append(&path, Version::parse(&format!("v0.{i}.0")).unwrap())
                    .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        storage.read_list(&path).await.unwrap().versions.len()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_mergers_over_one_store_lose_nothing() {
        // Separate lease tables: nothing but the conditional write keeps them from losing versions.
        let storage = Storage::open(&StorageUrl::Memory).unwrap();
        let a = ListMerger::new(storage.clone(), Arc::new(MemoryLease::new()));
        let b = ListMerger::new(storage.clone(), Arc::new(MemoryLease::new()));
        assert_eq!(append_through_two(&storage, a, b, 60).await, 60);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mergers_over_local_files_serialise_on_the_lease() {
        // Local files cannot compare-and-swap: two mergers sharing a directory and a lease
        // backend (as replicas share a storage lease) still lose nothing.
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&StorageUrl::File(dir.path().to_owned())).unwrap();
        assert!(!storage.has_conditional_update());
        let lease: Arc<dyn Lease> = Arc::new(MemoryLease::new());
        let a = ListMerger::new(storage.clone(), lease.clone());
        let b = ListMerger::new(storage.clone(), lease);
        assert_eq!(append_through_two(&storage, a, b, 40).await, 40);
    }
}
