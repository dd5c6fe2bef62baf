//! Ordered, bounded, parallel range reads: a large object from high-latency storage is fetched as
//! fixed-size ranges, up to `window` at once, and yielded strictly in order.
//!
//! Memory per reader is at most `window x chunk`, and across readers at most the shared
//! [`RangeBudget`]. The first chunk is yielded as soon as it arrives. Dropping the stream (a
//! client disconnect) drops the outstanding range requests.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::StorageError;

/// How large objects are read from remote storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeReadOptions {
    /// Bytes per range request.
    pub chunk_size: u64,
    /// Range requests in flight per reader.
    pub window: usize,
}

impl Default for RangeReadOptions {
    fn default() -> Self {
        // Chosen by `bench/run` (S3 at 50 ms and 40 MB/s per request, a 100 MiB zip): 4 MiB x 8
        // was 4.0x one GET with the earliest first byte; 8 MiB x 4 only 2.7x, and 8 x 8 or
        // 16 x 8 (4.4x, 4.8x) cost two to four times the memory per download (window x chunk).
        RangeReadOptions {
            chunk_size: 4 * 1024 * 1024,
            window: 8,
        }
    }
}

/// Splits `range` into consecutive pieces of at most `chunk` bytes.
pub fn split(range: Range<u64>, chunk: u64) -> impl Iterator<Item = Range<u64>> {
    let chunk = chunk.max(1);
    let Range { start, end } = range;
    (0..)
        .map(move |i: u64| start.saturating_add(i.saturating_mul(chunk)))
        .take_while(move |s| *s < end)
        .map(move |s| s..s.saturating_add(chunk).min(end))
}

/// Bytes of range reads in flight (requested and not yet handed on) across every reader of one
/// storage: many concurrent downloads share it instead of each holding `window x chunk`.
#[derive(Debug, Clone)]
pub struct RangeBudget {
    /// One permit per KiB.
    kib: Arc<Semaphore>,
    total_kib: u32,
}

impl RangeBudget {
    /// A budget of `bytes`. A range larger than the whole budget reserves all of it, so a lone
    /// reader can always start.
    pub fn new(bytes: u64) -> RangeBudget {
        let total_kib = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        RangeBudget {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    async fn reserve(&self, bytes: u64) -> Option<OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib);
        Arc::clone(&self.kib).acquire_many_owned(kib).await.ok()
    }
}

/// Streams `range` of `key` as ordered parallel range reads.
///
/// With a budget, each range reserves its bytes before it is requested, in order, and frees them
/// when it is handed on. Because a reader reserves its earliest range first, the range it must
/// yield next always holds its reservation and can finish: readers waiting for the budget never
/// deadlock each other.
pub fn read_ordered(
    store: Arc<dyn ObjectStore>,
    key: Path,
    range: Range<u64>,
    options: RangeReadOptions,
    budget: Option<RangeBudget>,
) -> BoxStream<'static, Result<Bytes, StorageError>> {
    let key = Arc::new(key);
    futures::stream::iter(split(range, options.chunk_size))
        .then(move |piece| {
            let budget = budget.clone();
            async move {
                let reservation = match &budget {
                    Some(budget) => budget.reserve(piece.end - piece.start).await,
                    None => None,
                };
                (piece, reservation)
            }
        })
        .map(move |(piece, reservation)| {
            let (store, key) = (Arc::clone(&store), Arc::clone(&key));
            async move {
                let expected = piece.end - piece.start;
                let bytes = store.get_range(&key, piece).await?;
                if bytes.len() as u64 != expected {
                    return Err(StorageError::Corrupt {
                        key: key.to_string(),
                        reason: format!("range read returned {} of {expected} bytes", bytes.len()),
                    });
                }
                Ok((bytes, reservation))
            }
        })
        // `buffered` keeps at most `window` reads in flight and yields them in submission order.
        .buffered(options.window.max(1))
        .map(|read| read.map(|(bytes, _reservation)| bytes))
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use futures::stream::BoxStream;
    use object_store::memory::InMemory;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
        PutMultipartOptions, PutOptions, PutPayload, PutResult,
    };
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    /// Injects a random latency into every read and records how many reads overlap.
    #[derive(Debug)]
    struct SlowStore {
        inner: InMemory,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        started: AtomicUsize,
        rng: std::sync::Mutex<rand::rngs::StdRng>,
    }

    impl std::fmt::Display for SlowStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SlowStore")
        }
    }

    struct InFlight<'a>(&'a AtomicUsize);
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[async_trait]
    impl ObjectStore for SlowStore {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            self.inner.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &Path,
            options: GetOptions,
        ) -> object_store::Result<GetResult> {
            self.started.fetch_add(1, Ordering::SeqCst);
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            let _guard = InFlight(&self.in_flight);
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let delay = self.rng.lock().unwrap().random_range(0..15);
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            self.inner.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    async fn slow_store_with(data: &[u8], seed: u64) -> (Arc<SlowStore>, Path) {
        let store = Arc::new(SlowStore {
            inner: InMemory::new(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            rng: std::sync::Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
        });
        let key = Path::from("m/@v/v1.0.0.zip");
        store
            .put(&key, PutPayload::from(data.to_vec()))
            .await
            .unwrap();
        (store, key)
    }

    #[tokio::test]
    async fn chunks_arrive_in_order_despite_random_latencies_and_stay_within_the_window() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for seed in 0..4 {
            let (store, key) = slow_store_with(&data, seed).await;
            let options = RangeReadOptions {
                chunk_size: 4_096,
                window: 3,
            };
            let stream = read_ordered(store.clone(), key, 10..data.len() as u64, options, None);
            let chunks: Vec<Bytes> = stream.map(|c| c.unwrap()).collect().await;
            let joined: Vec<u8> = chunks.concat();
            assert_eq!(joined, &data[10..], "seed {seed}");
            let max = store.max_in_flight.load(Ordering::SeqCst);
            assert!(max <= 3, "{max} reads in flight with a window of 3");
            assert!(max > 1, "reads never overlapped: not parallel");
        }
    }

    #[tokio::test]
    async fn dropping_the_stream_cancels_outstanding_reads() {
        let data = vec![1u8; 100_000];
        let (store, key) = slow_store_with(&data, 9).await;
        let options = RangeReadOptions {
            chunk_size: 1_000,
            window: 4,
        };
        let mut stream = read_ordered(store.clone(), key, 0..data.len() as u64, options, None);
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.len(), 1_000);
        drop(stream);
        assert_eq!(store.in_flight.load(Ordering::SeqCst), 0);
        // Only the window's worth (plus the refill after the first chunk) was ever asked for.
        let started = store.started.load(Ordering::SeqCst);
        assert!(
            started <= 5,
            "{started} reads started for one consumed chunk"
        );
    }

    #[tokio::test]
    async fn a_shared_budget_bounds_reads_across_readers_without_deadlock() {
        // Whole chunks only: the budget counts bytes, so shorter last chunks would fit more reads.
        let data: Vec<u8> = (0..29 * 4_096u32).map(|i| (i * 13 % 251) as u8).collect();
        let (store, key) = slow_store_with(&data, 3).await;
        let options = RangeReadOptions {
            chunk_size: 4_096,
            window: 4,
        };
        // Three readers of window 4 would have 12 reads in flight; the budget allows 3 chunks.
        let budget = RangeBudget::new(3 * 4_096);
        let readers = (0..3).map(|_| {
            let stream = read_ordered(
                store.clone(),
                key.clone(),
                0..data.len() as u64,
                options,
                Some(budget.clone()),
            );
            stream.map(|c| c.unwrap()).collect::<Vec<Bytes>>()
        });
        for chunks in futures::future::join_all(readers).await {
            assert_eq!(chunks.concat(), data);
        }
        let max = store.max_in_flight.load(Ordering::SeqCst);
        assert!(max <= 3, "{max} reads in flight with a budget of 3 chunks");
        assert!(max > 1, "reads never overlapped under the budget");
    }

    #[tokio::test]
    async fn a_budget_smaller_than_one_chunk_still_lets_reads_through() {
        let data = vec![7u8; 50_000];
        let (store, key) = slow_store_with(&data, 5).await;
        let options = RangeReadOptions {
            chunk_size: 20_000,
            window: 4,
        };
        let stream = read_ordered(
            store.clone(),
            key,
            0..data.len() as u64,
            options,
            Some(RangeBudget::new(1_024)),
        );
        let chunks: Vec<Bytes> = stream.map(|c| c.unwrap()).collect().await;
        assert_eq!(chunks.concat(), data);
        // Each read took the whole budget: one at a time.
        assert_eq!(store.max_in_flight.load(Ordering::SeqCst), 1);
    }

    proptest! {
        #[test]
        fn split_covers_the_range_exactly(start in 0u64..10_000, len in 0u64..100_000, chunk in 1u64..5_000) {
            let pieces: Vec<_> = split(start..start + len, chunk).collect();
            let mut at = start;
            for p in &pieces {
                prop_assert_eq!(p.start, at);
                prop_assert!(p.end > p.start && p.end - p.start <= chunk);
                at = p.end;
            }
            prop_assert_eq!(at, start + len);
        }
    }
}
