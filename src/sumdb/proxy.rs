//! Answers `/sumdb/{name}/...` from cache or the allowed database: full tiles are immutable and
//! kept in storage forever; partial tiles, `latest` and lookups change as the log grows (a
//! lookup carries the current signed tree head) and are kept in memory for the list TTL.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use moka::future::Cache;

use super::request::{BadSumdbPath, SumdbRequest, parse_sumdb_path};
use super::spec::SumdbSpec;
use crate::metrics::Metrics;
use crate::module::ModulePatterns;
use crate::storage::{Storage, StorageError, layout};
use crate::upstream::{UpstreamClient, UpstreamError};

/// Largest answer accepted from a checksum database (sum.golang.org's tiles are 8 KiB).
const MAX_ANSWER: u64 = 1 << 20;
/// Bytes of full tiles kept in memory in front of storage.
const TILE_MEMORY: u64 = 32 << 20;

/// Why a checksum-database request fails.
#[derive(Debug, thiserror::Error)]
pub enum SumdbError {
    /// The database is not on the allow-list.
    #[error("not found: checksum database {0:?} is not proxied here")]
    NotAllowed(String),
    /// The module matches the private patterns: the go command must not look it up.
    #[error("not found: {0} is private")]
    Private(String),
    /// The path is not a checksum-database request.
    #[error(transparent)]
    BadPath(#[from] BadSumdbPath),
    /// The database failed or said "not found".
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A successful answer.
#[derive(Debug, Clone)]
pub enum SumdbAnswer {
    /// `supported`: yes (an empty 200).
    Supported,
    /// Bytes from the database; `immutable` for full tiles.
    Data {
        /// The body.
        bytes: Bytes,
        /// A full tile (never changes) rather than a growing answer.
        immutable: bool,
        /// A tile (binary) rather than text.
        tile: bool,
    },
}

/// The checksum-database proxy.
#[derive(Clone)]
pub struct SumdbProxy {
    inner: Arc<Inner>,
}

struct Inner {
    spec: SumdbSpec,
    private: ModulePatterns,
    upstream: UpstreamClient,
    storage: Storage,
    tiles: Cache<String, Bytes>,
    brief: Cache<String, Bytes>,
    metrics: Metrics,
}

impl SumdbProxy {
    /// A proxy for the databases in `spec`, never for modules matching `private`.
    pub fn new(
        spec: SumdbSpec,
        private: ModulePatterns,
        upstream: UpstreamClient,
        storage: Storage,
        brief_ttl: Duration,
        metrics: Metrics,
    ) -> SumdbProxy {
        SumdbProxy {
            inner: Arc::new(Inner {
                spec,
                private,
                upstream,
                storage,
                tiles: Cache::builder()
                    .max_capacity(TILE_MEMORY)
                    .weigher(|_, v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
                    .build(),
                brief: Cache::builder()
                    .max_capacity(10_000)
                    .time_to_live(brief_ttl.max(Duration::from_millis(1)))
                    .build(),
                metrics,
            }),
        }
    }

    /// Answers `rest` (the raw path after `/sumdb/{name}/`) for database `name`.
    pub async fn answer(&self, name: &str, rest: &str) -> Result<SumdbAnswer, Arc<SumdbError>> {
        let inner = &self.inner;
        let Some(base) = inner.spec.url(name) else {
            return Err(Arc::new(SumdbError::NotAllowed(
                name.chars().take(100).collect(),
            )));
        };
        let request = parse_sumdb_path(rest).map_err(|e| Arc::new(e.into()))?;
        let (rel, cache_key_path) = match &request {
            SumdbRequest::Supported => return Ok(SumdbAnswer::Supported),
            SumdbRequest::Latest => ("latest".to_owned(), None),
            SumdbRequest::Lookup(mv) => {
                if inner.private.matches(mv.path().as_str()) {
                    return Err(Arc::new(SumdbError::Private(mv.path().to_string())));
                }
                let rel = format!("lookup/{}@{}", mv.path().escaped(), mv.version().escaped());
                (rel, None)
            }
            SumdbRequest::Tile(tile) if !tile.is_partial() => {
                // `.modstash/sumdb/{name}/tile/H/L/...`: the name is from the allow-list and
                // the tile path is canonical (digits, `x`, `data`), so the key stays inside.
                let parts: Vec<&str> = ["sumdb", name]
                    .into_iter()
                    .chain(tile.as_str().split('/'))
                    .collect();
                (tile.as_str().to_owned(), Some(layout::internal_key(&parts)))
            }
            SumdbRequest::Tile(tile) => (tile.as_str().to_owned(), None),
        };
        let tile = matches!(request, SumdbRequest::Tile(_));
        let fetched = Arc::new(AtomicBool::new(false));
        let cache_key = format!("{name}/{rel}");
        let bytes = match cache_key_path {
            Some(key) => {
                let (this, base, fetched) = (self.clone(), base.clone(), Arc::clone(&fetched));
                inner
                    .tiles
                    .try_get_with(cache_key, async move {
                        if let Some(bytes) = this.inner.storage.read(&key).await? {
                            return Ok(bytes);
                        }
                        let bytes = this
                            .inner
                            .upstream
                            .get_from(&base, &rel, MAX_ANSWER)
                            .await?;
                        fetched.store(true, Ordering::Relaxed);
                        // Served even when storing fails: the next request tries again.
                        if let Err(e) = this.inner.storage.put(&key, bytes.clone()).await {
                            tracing::warn!(error = %e, "checksum tile not stored");
                        }
                        Ok::<_, SumdbError>(bytes)
                    })
                    .await?
            }
            None => {
                let (upstream, base, fetched) =
                    (inner.upstream.clone(), base.clone(), Arc::clone(&fetched));
                inner
                    .brief
                    .try_get_with(cache_key, async move {
                        let bytes = upstream.get_from(&base, &rel, MAX_ANSWER).await?;
                        fetched.store(true, Ordering::Relaxed);
                        Ok::<_, SumdbError>(bytes)
                    })
                    .await?
            }
        };
        inner.metrics.sumdb_answer(!fetched.load(Ordering::Relaxed));
        Ok(SumdbAnswer::Data {
            bytes,
            immutable: tile && !matches!(&request, SumdbRequest::Tile(t) if t.is_partial()),
            tile,
        })
    }
}
