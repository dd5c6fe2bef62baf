//! Ordered, bounded, parallel range reads: a large object from high-latency storage is fetched as
//! fixed-size ranges, up to `window` at once, and yielded strictly in order.
//!
//! Memory per reader is at most `window x chunk`. The first chunk is yielded as soon as it
//! arrives. Dropping the stream (a client disconnect) drops the outstanding range requests.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

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
        // Chosen by `bench/run` (S3 with 50 ms per request): 8 MiB x 4 keeps a 100 MiB zip
        // download within a few round trips of the link speed while bounding memory to 32 MiB.
        RangeReadOptions {
            chunk_size: 8 * 1024 * 1024,
            window: 4,
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

/// Streams `range` of `key` as ordered parallel range reads.
pub fn read_ordered(
    store: Arc<dyn ObjectStore>,
    key: Path,
    range: Range<u64>,
    options: RangeReadOptions,
) -> BoxStream<'static, Result<Bytes, StorageError>> {
    let key = Arc::new(key);
    futures::stream::iter(split(range, options.chunk_size))
        .map(move |piece| {
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
                Ok(bytes)
            }
        })
        // `buffered` keeps at most `window` reads in flight and yields them in submission order.
        .buffered(options.window.max(1))
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
