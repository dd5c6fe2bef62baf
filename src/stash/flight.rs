//! Single flight: concurrent callers for one key share one spawned task.
//!
//! The map is a `DashMap` (sharded), so unrelated keys never contend on one lock. The work runs
//! in its own task, so it survives the disconnect of the caller that started it, and keeps the
//! tracing span it was started with. The entry is removed when the task ends, success or failure.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tracing::Instrument;

/// The shared task died without an answer (it panicked or the runtime is shutting down).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the shared fetch was aborted")]
pub struct FlightAborted;

type SharedResult<V> = Shared<BoxFuture<'static, Result<V, FlightAborted>>>;

struct InFlight<V, P> {
    result: SharedResult<V>,
    progress: Arc<P>,
}

impl<V, P> Clone for InFlight<V, P> {
    fn clone(&self) -> Self {
        InFlight {
            result: self.result.clone(),
            progress: Arc::clone(&self.progress),
        }
    }
}

/// A caller's place in a flight.
pub struct Joined<V, P> {
    /// True for the caller that started the task.
    pub leader: bool,
    /// Progress the task publishes while it runs (e.g. a live download), shared by all callers.
    pub progress: Arc<P>,
    /// The task's result.
    pub result: SharedResult<V>,
}

/// A map of in-flight tasks by key. `P` is progress the task publishes to its waiters.
pub struct Flight<K, V, P = ()> {
    inflight: Arc<DashMap<K, InFlight<V, P>>>,
}

impl<K, V, P> Default for Flight<K, V, P>
where
    K: Eq + Hash,
{
    fn default() -> Self {
        Flight {
            inflight: Arc::new(DashMap::new()),
        }
    }
}

impl<K, V, P> Flight<K, V, P>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    P: Default + Send + Sync + 'static,
{
    /// Runs `work` for `key` unless a task for it is already running, then waits for that task's result.
    /// Returns whether this call started the task (the leader) with the result.
    pub async fn run<F, Fut>(
        &self,
        key: K,
        span: tracing::Span,
        work: F,
    ) -> (bool, Result<V, FlightAborted>)
    where
        F: FnOnce(Arc<P>) -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let joined = self.join(key, span, work);
        (joined.leader, joined.result.await)
    }

    /// Starts `work` for `key` unless a task for it is already running, and returns the caller's
    /// place in it without waiting.
    pub fn join<F, Fut>(&self, key: K, span: tracing::Span, work: F) -> Joined<V, P>
    where
        F: FnOnce(Arc<P>) -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        match self.inflight.entry(key.clone()) {
            Entry::Occupied(e) => {
                let f = e.get().clone();
                Joined {
                    leader: false,
                    progress: f.progress,
                    result: f.result,
                }
            }
            Entry::Vacant(slot) => {
                let map = Arc::clone(&self.inflight);
                let progress = Arc::new(P::default());
                let fut = work(Arc::clone(&progress));
                let task = tokio::spawn(
                    async move {
                        let value = fut.await;
                        // Removed before waiters see the value, so a caller arriving after this
                        // point starts afresh (and finds the committed result in storage).
                        map.remove(&key);
                        value
                    }
                    .instrument(span),
                );
                let result = task.map(|r| r.map_err(|_| FlightAborted)).boxed().shared();
                slot.insert(InFlight {
                    result: result.clone(),
                    progress: Arc::clone(&progress),
                });
                Joined {
                    leader: true,
                    progress,
                    result,
                }
            }
        }
    }

    /// Number of keys in flight (for metrics and tests).
    pub fn len(&self) -> usize {
        self.inflight.len()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.inflight.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Notify;

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let flight: Arc<Flight<&'static str, usize>> = Arc::new(Flight::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Notify::new());
        let arrived = Arc::new(AtomicUsize::new(0));
        let mut callers = Vec::new();
        for _ in 0..50 {
            let (flight, runs, gate) = (flight.clone(), runs.clone(), gate.clone());
            let arrived = arrived.clone();
            callers.push(tokio::spawn(async move {
                // Counting and joining happen in one poll: no await point between them.
                arrived.fetch_add(1, Ordering::SeqCst);
                flight
                    .run("k", tracing::Span::none(), move |_| async move {
                        gate.notified().await;
                        runs.fetch_add(1, Ordering::SeqCst) + 41
                    })
                    .await
            }));
        }
        // Every caller has started the task or joined it before the gate opens.
        while arrived.load(Ordering::SeqCst) < 50 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        let mut leaders = 0;
        for c in callers {
            let (leader, value) = c.await.unwrap();
            leaders += usize::from(leader);
            assert_eq!(value.unwrap(), 41);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(leaders, 1);
        assert!(flight.is_empty());
    }

    #[tokio::test]
    async fn the_task_survives_its_callers_disconnect() {
        let flight: Arc<Flight<u32, u32>> = Arc::new(Flight::default());
        let gate = Arc::new(Notify::new());
        let done = Arc::new(Notify::new());
        let (g, d) = (gate.clone(), done.clone());
        let caller = tokio::spawn({
            let flight = flight.clone();
            async move {
                flight
                    .run(1, tracing::Span::none(), move |_| async move {
                        g.notified().await;
                        d.notify_one();
                        7
                    })
                    .await
            }
        });
        while flight.is_empty() {
            tokio::task::yield_now().await;
        }
        caller.abort();
        let _ = caller.await;
        gate.notify_one();
        done.notified().await;
        // The entry is gone only because the task ran to completion.
        while !flight.is_empty() {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_failed_run_is_not_remembered() {
        let flight: Flight<u8, Result<u8, String>> = Flight::default();
        let (_, first) = flight
            .run(1, tracing::Span::none(), |_| async {
                Err("boom".to_owned())
            })
            .await;
        assert!(first.unwrap().is_err());
        let (leader, second) = flight
            .run(1, tracing::Span::none(), |_| async { Ok(2) })
            .await;
        assert!(leader);
        assert_eq!(second.unwrap(), Ok(2));
    }
}
