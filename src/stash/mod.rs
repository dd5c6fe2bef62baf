//! Fetch once: the [`Stasher`] answers every protocol question from storage, and on a miss fetches
//! from upstream through a single flight (one leader per key in this process) under a lease (one
//! leader per key across the fleet), commits, and merges the version into `@v/list`.

mod error;
pub mod fetch;
pub mod flight;
pub mod lease;
pub mod live;
pub mod merge;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::future::Cache;

pub use error::StashError;
use flight::{Flight, Joined};
use lease::{Lease, LeaseError, LeaseGuard};
use live::{LiveSlot, LiveZip};
use merge::ListMerger;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::module::{ModulePath, ModuleVersion, Version, VersionQuery, ZipLimits};
use crate::storage::{Storage, VersionFile};
use crate::upstream::{UpstreamClient, UpstreamError};

/// Results shared between the callers of one flight or cache entry.
pub type StashResult<T> = Result<T, Arc<StashError>>;

/// An upstream answer worth caching: found, or a definite "not there".
#[derive(Debug, Clone)]
enum Answer<T> {
    Found(T),
    Missing(String),
}

/// Turns an upstream result into a cacheable answer; transport failures stay errors (not cached).
fn answer<T>(r: Result<T, UpstreamError>) -> Result<Answer<T>, StashError> {
    match r {
        Ok(v) => Ok(Answer::Found(v)),
        Err(e) if e.is_not_found() => Ok(Answer::Missing(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// Where a zip is served from.
pub enum ZipSource {
    /// Committed in storage.
    Stored,
    /// Being downloaded right now: follow the spool file.
    Live(Arc<LiveZip>),
}

/// Fetch-once front of storage and upstream.
#[derive(Clone)]
pub struct Stasher {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    upstream: UpstreamClient,
    lease: Arc<dyn Lease>,
    lease_ttl: Duration,
    flight: Flight<ModuleVersion, StashResult<()>, LiveSlot>,
    merger: ListMerger,
    spool_dir: PathBuf,
    limits: ZipLimits,
    /// Versions known to be committed: immutable, so never stale.
    committed: Cache<ModuleVersion, ()>,
    /// Small committed files, weighed by size.
    small_files: Cache<(ModuleVersion, VersionFile), Bytes>,
    /// Sizes of committed zips.
    zip_sizes: Cache<ModuleVersion, u64>,
    /// Versions upstream recently said do not exist.
    missing: Cache<ModuleVersion, Arc<str>>,
    lists: Cache<ModulePath, Answer<Vec<Version>>>,
    stored_lists: Cache<ModulePath, Vec<Version>>,
    latest: Cache<ModulePath, Answer<Bytes>>,
    queries: Cache<(ModulePath, VersionQuery), Answer<ModuleVersion>>,
    metrics: Metrics,
}

impl Stasher {
    /// Builds the stasher over opened storage, an upstream client and a lease backend.
    pub fn new(
        settings: &Settings,
        storage: Storage,
        upstream: UpstreamClient,
        lease: Arc<dyn Lease>,
    ) -> Stasher {
        Stasher::with_metrics(settings, storage, upstream, lease, Metrics::new())
    }

    /// [`Stasher::new`], counting into the server's `metrics`.
    pub fn with_metrics(
        settings: &Settings,
        storage: Storage,
        upstream: UpstreamClient,
        lease: Arc<dyn Lease>,
        metrics: Metrics,
    ) -> Stasher {
        Stasher {
            inner: Arc::new(Inner {
                merger: ListMerger::new(storage.clone(), Arc::clone(&lease)),
                storage,
                upstream,
                lease,
                lease_ttl: settings.lease_ttl,
                flight: Flight::default(),
                spool_dir: std::env::temp_dir(),
                limits: ZipLimits::default(),
                committed: Cache::builder().max_capacity(1_000_000).build(),
                small_files: Cache::builder()
                    .max_capacity(settings.memory_cache_bytes)
                    .weigher(|_, v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
                    .build(),
                zip_sizes: Cache::builder().max_capacity(1_000_000).build(),
                missing: short_lived(settings.negative_ttl, 100_000),
                lists: short_lived(settings.list_ttl, 100_000),
                stored_lists: short_lived(settings.list_ttl, 100_000),
                latest: short_lived(settings.list_ttl, 100_000),
                queries: short_lived(settings.list_ttl, 100_000),
                metrics,
            }),
        }
    }

    /// The storage behind the stasher.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// True when misses may be fetched (an upstream is configured), so storage must take writes.
    pub fn can_fetch(&self) -> bool {
        !self.inner.upstream.is_off()
    }

    /// The lease backend.
    pub fn lease(&self) -> &Arc<dyn Lease> {
        &self.inner.lease
    }

    /// The upstream chain.
    pub fn upstream(&self) -> &UpstreamClient {
        &self.inner.upstream
    }

    /// True when `mv` is committed in storage (nothing is fetched).
    pub async fn is_stored(&self, mv: &ModuleVersion) -> StashResult<bool> {
        let inner = &self.inner;
        if inner.committed.contains_key(mv) {
            return Ok(true);
        }
        let stored = inner.storage.is_committed(mv).await.map_err(err)?;
        if stored {
            inner.committed.insert(mv.clone(), ()).await;
        }
        Ok(stored)
    }

    /// Fetches and stores `mv` in the background (download mode `async`); failures are logged.
    pub fn ensure_in_background(&self, mv: &ModuleVersion) {
        let this = self.clone();
        let mv = mv.clone();
        tokio::spawn(async move {
            if let Err(e) = this.ensure(&mv).await {
                tracing::warn!(module_version = %mv, error = %e, "background fetch failed");
            }
        });
    }

    /// Makes sure `mv` is committed in storage, fetching it once if needed.
    pub async fn ensure(&self, mv: &ModuleVersion) -> StashResult<()> {
        match self.check_or_join(mv).await? {
            None => Ok(()),
            Some(joined) => self.finish(mv, joined.result.await).await,
        }
    }

    /// Where to read the zip of `mv` from: storage once committed, or, while a fetch is under
    /// way, the live download (the first byte arrives before the zip is stored).
    pub async fn zip(&self, mv: &ModuleVersion) -> StashResult<ZipSource> {
        let Some(joined) = self.check_or_join(mv).await? else {
            return Ok(ZipSource::Stored);
        };
        let mut announced = joined.progress.subscribe();
        let mut result = joined.result;
        loop {
            if let Some(live) = announced.borrow_and_update().clone() {
                return Ok(ZipSource::Live(live));
            }
            tokio::select! {
                r = &mut result => {
                    self.finish(mv, r).await?;
                    return Ok(ZipSource::Stored);
                }
                changed = announced.changed() => {
                    if changed.is_err() {
                        // The flight ended without a live zip; its result says how.
                        let r = result.await;
                        self.finish(mv, r).await?;
                        return Ok(ZipSource::Stored);
                    }
                }
            }
        }
    }

    /// `None` when `mv` is committed; otherwise this caller's place in the fetch of `mv`.
    async fn check_or_join(
        &self,
        mv: &ModuleVersion,
    ) -> StashResult<Option<Joined<StashResult<()>, LiveSlot>>> {
        let inner = &self.inner;
        if inner.committed.contains_key(mv) {
            inner.metrics.stash_stored();
            return Ok(None);
        }
        if let Some(reason) = inner.missing.get(mv).await {
            return Err(Arc::new(StashError::NotFound(reason.to_string())));
        }
        if inner.storage.is_committed(mv).await.map_err(err)? {
            self.ensure_listed(mv).await;
            inner.committed.insert(mv.clone(), ()).await;
            inner.metrics.stash_stored();
            return Ok(None);
        }
        if inner.upstream.is_off() {
            return Err(Arc::new(StashError::NotFound(format!(
                "not found: {mv}: not in storage and upstream is off"
            ))));
        }
        let span = tracing::info_span!("fetch", module_version = %mv);
        let this = self.clone();
        let key = mv.clone();
        let joined = inner.flight.join(mv.clone(), span, move |live| async move {
            this.lead(&key, &live).await
        });
        tracing::debug!(leader = joined.leader, "joined fetch");
        inner.metrics.stash_fetch(!joined.leader);
        Ok(Some(joined))
    }

    async fn finish(
        &self,
        mv: &ModuleVersion,
        result: Result<StashResult<()>, flight::FlightAborted>,
    ) -> StashResult<()> {
        let result = result.map_err(|_| Arc::new(StashError::Aborted))?;
        if let Err(e) = &result
            && let StashError::NotFound(reason) = e.as_ref()
        {
            self.inner
                .missing
                .insert(mv.clone(), reason.as_str().into())
                .await;
        }
        result
    }

    /// A small file (`.info`, `.mod`, `.ziphash`) of `mv`, fetched once if needed, served from a
    /// bounded in-memory cache (a committed file never changes, so the cache is never stale).
    pub async fn read_file(&self, mv: &ModuleVersion, file: VersionFile) -> StashResult<Bytes> {
        match self.read_file_once(mv, file).await {
            Err(e) if is_missing(&e) => {
                // Removed behind our back (`modstash rm`): forget what we knew, fetch again.
                self.forget(mv).await;
                self.read_file_once(mv, file).await
            }
            other => other,
        }
    }

    async fn read_file_once(&self, mv: &ModuleVersion, file: VersionFile) -> StashResult<Bytes> {
        self.ensure(mv).await?;
        let storage = self.inner.storage.clone();
        let key = mv.clone();
        self.inner
            .small_files
            .try_get_with((mv.clone(), file), async move {
                storage
                    .read_version_file(&key, file)
                    .await?
                    .ok_or_else(|| incomplete(&key, file))
            })
            .await
    }

    /// The stored size of the zip of `mv`, fetched once if needed.
    pub async fn zip_size(&self, mv: &ModuleVersion) -> StashResult<u64> {
        match self.zip_size_once(mv).await {
            Err(e) if is_missing(&e) => {
                self.forget(mv).await;
                self.zip_size_once(mv).await
            }
            other => other,
        }
    }

    async fn zip_size_once(&self, mv: &ModuleVersion) -> StashResult<u64> {
        self.ensure(mv).await?;
        let storage = self.inner.storage.clone();
        let key = mv.clone();
        self.inner
            .zip_sizes
            .try_get_with(mv.clone(), async move {
                storage
                    .head(&crate::storage::layout::version_key(&key, VersionFile::Zip))
                    .await?
                    .map(|meta| meta.size)
                    .ok_or_else(|| incomplete(&key, VersionFile::Zip))
            })
            .await
    }

    /// Streams `range` of the committed zip of `mv`; a zip removed behind our back is fetched again.
    pub async fn stored_zip_range(
        &self,
        mv: &ModuleVersion,
        range: std::ops::Range<u64>,
    ) -> StashResult<futures::stream::BoxStream<'static, Result<Bytes, crate::storage::StorageError>>>
    {
        let key = crate::storage::layout::version_key(mv, VersionFile::Zip);
        match self.inner.storage.stream_range(&key, range.clone()).await {
            Err(crate::storage::StorageError::Missing { .. }) => {
                self.forget(mv).await;
                self.ensure(mv).await?;
                Ok(self
                    .inner
                    .storage
                    .stream_range(&key, range)
                    .await
                    .map_err(err)?)
            }
            other => other.map_err(err),
        }
    }

    /// Drops everything cached about `mv`, so the next request looks at storage again.
    pub async fn forget(&self, mv: &ModuleVersion) {
        let inner = &self.inner;
        inner.committed.invalidate(mv).await;
        inner.zip_sizes.invalidate(mv).await;
        for file in [VersionFile::Info, VersionFile::Mod, VersionFile::ZipHash] {
            inner.small_files.invalidate(&(mv.clone(), file)).await;
        }
    }

    /// The flight leader: takes the fleet-wide lease, fetches, commits, lists.
    async fn lead(&self, mv: &ModuleVersion, live: &LiveSlot) -> StashResult<()> {
        let inner = &self.inner;
        let key = format!("fetch/{}@{}", mv.path().escaped(), mv.version().escaped());
        let mut backoff = Duration::from_millis(20);
        let mut held_elsewhere = false;
        // The caller just found `mv` missing in storage; fetch_under_lease re-checks once the
        // lease is ours, so storage is looked at again only while someone else holds it.
        let spooled = loop {
            match inner.lease.try_acquire(&key, inner.lease_ttl).await {
                Ok(Some(guard)) => {
                    inner.metrics.lease_acquired(held_elsewhere);
                    match self.fetch_under_lease(mv, guard, live).await {
                        // A lost lease means another replica took over (we were too slow to
                        // renew): its commit is what our waiters need, so wait for it instead
                        // of failing them.
                        Err(e) if matches!(e.as_ref(), StashError::Lease(LeaseError::Lost(_))) => {
                            inner.metrics.lease_lost();
                        }
                        done => break done?,
                    }
                }
                Ok(None) => held_elsewhere = true,
                Err(e) => return Err(err(e)),
            }
            // Held elsewhere: wait for its commit or its expiry.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
            if inner.storage.is_committed(mv).await.map_err(err)? {
                self.ensure_listed(mv).await;
                inner.committed.insert(mv.clone(), ()).await;
                return Ok(());
            }
        };
        inner.committed.insert(mv.clone(), ()).await;
        if !mv.version().is_pseudo()
            && let Err(e) = inner.merger.append(mv.path(), mv.version().clone()).await
        {
            // The version is committed and served; only the list lags (verify --repair fixes it).
            tracing::warn!(error = %e, "committed, but @v/list could not be updated");
        }
        inner.stored_lists.invalidate(mv.path()).await;
        // Followers of the live download finish only now: a complete download means stored.
        if let Some(zip) = spooled {
            zip.accept();
        }
        Ok(())
    }

    /// Adds `mv`, found committed by another process, to `@v/list` if the list lacks it: a
    /// crash between a commit and its list merge leaves exactly that, and nothing else would ever
    /// list the version. Runs once per version per process (the `committed` cache), reading the
    /// cached list; a failure only leaves the list lagging, as after a failed merge.
    async fn ensure_listed(&self, mv: &ModuleVersion) {
        let inner = &self.inner;
        if mv.version().is_pseudo() {
            return;
        }
        let listed = |list: StashResult<Vec<Version>>| match list {
            Ok(versions) => versions.contains(mv.version()),
            Err(e) => {
                tracing::warn!(error = %e, "could not read @v/list to check it names a committed version");
                true
            }
        };
        if listed(self.stored_list(mv.path()).await) {
            return;
        }
        // The cached list may predate another replica's merge: look again before writing.
        inner.stored_lists.invalidate(mv.path()).await;
        if listed(self.stored_list(mv.path()).await) {
            return;
        }
        tracing::warn!(module_version = %mv, "committed but missing from @v/list (a crash before the list merge?); adding it");
        if let Err(e) = inner.merger.append(mv.path(), mv.version().clone()).await {
            tracing::warn!(error = %e, "@v/list could not be updated");
        }
        inner.stored_lists.invalidate(mv.path()).await;
    }

    async fn fetch_under_lease(
        &self,
        mv: &ModuleVersion,
        mut guard: Box<dyn LeaseGuard>,
        live: &LiveSlot,
    ) -> StashResult<Option<fetch::SpooledZip>> {
        let inner = &self.inner;
        let work = async {
            // Another holder may have committed between our check and our acquire.
            if inner.storage.is_committed(mv).await? {
                return Ok(None);
            }
            let fetched =
                fetch::fetch_version(&inner.upstream, mv, &inner.spool_dir, &inner.limits, live)
                    .await;
            inner
                .metrics
                .upstream_fetch(fetched.as_ref().ok().map(|(staged, spooled)| {
                    (staged.info.len() + staged.go_mod.len()) as u64 + spooled.size
                }));
            let (staged, spooled) = fetched.map_err(not_found_reason)?;
            inner.storage.commit(&staged).await?;
            tracing::info!("stashed");
            Ok::<_, StashError>(Some(spooled))
        };
        let result = tokio::select! {
            r = work => r,
            lost = renew_until_lost(guard.as_mut(), inner.lease_ttl) => Err(lost.into()),
        };
        if let Err(e) = guard.release().await {
            tracing::warn!(error = %e, "lease release failed; it will expire");
        }
        result.map_err(Arc::new)
    }

    /// `@v/list`: upstream's tagged versions (cached briefly) merged with the stored ones;
    /// from storage alone when upstream fails.
    #[tracing::instrument(skip_all, fields(module = %path))]
    pub async fn list(&self, path: &ModulePath) -> StashResult<Vec<Version>> {
        let inner = &self.inner;
        let upstream = if inner.upstream.is_off() {
            None
        } else {
            let client = inner.upstream.clone();
            let p = path.clone();
            Some(
                inner
                    .lists
                    .try_get_with(path.clone(), async move { answer(client.list(&p).await) })
                    .await,
            )
        };
        let stored = self.stored_list(path).await?;
        let mut versions = match upstream {
            Some(Ok(Answer::Found(mut from_upstream))) => {
                from_upstream.extend(stored);
                from_upstream
            }
            Some(Ok(Answer::Missing(reason))) if stored.is_empty() => {
                return Err(Arc::new(StashError::NotFound(reason)));
            }
            Some(Err(e)) if stored.is_empty() => return Err(e),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "upstream list failed; answering from storage");
                stored
            }
            None if stored.is_empty() => {
                return Err(Arc::new(StashError::NotFound(format!(
                    "not found: {path}: no versions in storage and upstream is off"
                ))));
            }
            Some(Ok(Answer::Missing(_))) | None => stored,
        };
        versions.sort();
        versions.dedup();
        Ok(versions)
    }

    /// The stored `@v/list`, cached for the list TTL; this process's own commits refresh it at once
    /// (other replicas' commits show within the TTL, and upstream's list has them anyway).
    pub async fn stored_list(&self, path: &ModulePath) -> StashResult<Vec<Version>> {
        let storage = self.inner.storage.clone();
        let key = path.clone();
        self.inner
            .stored_lists
            .try_get_with(path.clone(), async move {
                Ok::<_, StashError>(storage.read_list(&key).await?.versions)
            })
            .await
    }

    /// `@latest`: upstream's answer (cached briefly), or the highest stored version when upstream fails.
    #[tracing::instrument(skip_all, fields(module = %path))]
    pub async fn latest(&self, path: &ModulePath) -> StashResult<Bytes> {
        let inner = &self.inner;
        let upstream = if inner.upstream.is_off() {
            Err(Arc::new(StashError::NotFound(format!(
                "not found: {path}: upstream is off"
            ))))
        } else {
            let client = inner.upstream.clone();
            let p = path.clone();
            inner
                .latest
                .try_get_with(path.clone(), async move {
                    let found = answer(client.latest(&p).await)?;
                    if let Answer::Found(bytes) = &found {
                        fetch::parse_info(bytes)?;
                    }
                    Ok(found)
                })
                .await
        };
        let failure = match upstream {
            Ok(Answer::Found(bytes)) => return Ok(bytes),
            Ok(Answer::Missing(reason)) => Arc::new(StashError::NotFound(reason)),
            Err(e) => {
                tracing::warn!(error = %e, "upstream @latest failed; answering from storage");
                e
            }
        };
        match self.latest_stored(path).await.map_err(err)? {
            Some(info) => Ok(info),
            None => Err(failure),
        }
    }

    /// The `.info` of the highest stored version: releases before pre-releases before pseudo-versions.
    pub async fn latest_stored(
        &self,
        path: &ModulePath,
    ) -> Result<Option<Bytes>, crate::storage::StorageError> {
        let storage = &self.inner.storage;
        let mut candidates = storage.read_list(path).await?.versions;
        if candidates.is_empty() {
            candidates = storage.committed_versions(path).await?;
        }
        let best = candidates
            .iter()
            .filter(|v| !v.is_prerelease())
            .max()
            .or_else(|| candidates.iter().filter(|v| !v.is_pseudo()).max())
            .or_else(|| candidates.iter().max());
        let Some(version) = best else {
            return Ok(None);
        };
        let Ok(mv) = ModuleVersion::new(path.clone(), version.clone()) else {
            return Ok(None);
        };
        storage.read_version_file(&mv, VersionFile::Info).await
    }

    /// The canonical version a non-canonical query names upstream (cached briefly; not stashed).
    #[tracing::instrument(skip_all, fields(module = %path, query = %query.as_str()))]
    pub async fn resolve_query(
        &self,
        path: &ModulePath,
        query: &VersionQuery,
    ) -> StashResult<ModuleVersion> {
        let inner = &self.inner;
        if inner.upstream.is_off() {
            return Err(Arc::new(StashError::NotFound(format!(
                "not found: {path}@{}: queries need an upstream",
                query.as_str()
            ))));
        }
        let client = inner.upstream.clone();
        let (p, q) = (path.clone(), query.clone());
        let resolved = inner
            .queries
            .try_get_with((path.clone(), query.clone()), async move {
                let found = answer(client.query_info(&p, &q).await)?;
                Ok::<_, StashError>(match found {
                    Answer::Found(bytes) => {
                        let info = fetch::parse_info(&bytes)?;
                        let version = Version::parse(&info.version).map_err(|e| {
                            StashError::InvalidUpstream(format!(
                                "{p}@{}: resolved to a non-canonical version: {e}",
                                q.as_str()
                            ))
                        })?;
                        let mv = ModuleVersion::new(p, version)
                            .map_err(|e| StashError::InvalidUpstream(e.to_string()))?;
                        Answer::Found(mv)
                    }
                    Answer::Missing(reason) => Answer::Missing(reason),
                })
            })
            .await?;
        match resolved {
            Answer::Found(mv) => Ok(mv),
            Answer::Missing(reason) => Err(Arc::new(StashError::NotFound(reason))),
        }
    }
}

fn short_lived<K, V>(ttl: Duration, capacity: u64) -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(capacity)
        .time_to_live(ttl.max(Duration::from_millis(1)))
        .build()
}

async fn renew_until_lost(guard: &mut dyn LeaseGuard, ttl: Duration) -> LeaseError {
    loop {
        tokio::time::sleep(ttl / 3).await;
        if let Err(e) = guard.renew().await {
            tracing::warn!(error = %e, key = guard.key(), "lease lost; abandoning the fetch");
            return e;
        }
    }
}

/// An upstream "not found" for any of the three files means the version does not exist.
fn not_found_reason(e: StashError) -> StashError {
    match e {
        StashError::Upstream(u) if u.is_not_found() => StashError::NotFound(u.to_string()),
        other => other,
    }
}

/// True for "committed, but a file is missing": what a removal behind our back looks like.
fn is_missing(e: &StashError) -> bool {
    matches!(
        e,
        StashError::Storage(crate::storage::StorageError::Missing { .. })
    )
}

fn incomplete(mv: &ModuleVersion, file: VersionFile) -> StashError {
    StashError::Storage(crate::storage::StorageError::Missing {
        key: format!("{mv}.{}", file.extension()),
    })
}

fn err(e: impl Into<StashError>) -> Arc<StashError> {
    Arc::new(e.into())
}
