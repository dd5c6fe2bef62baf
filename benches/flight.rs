//! Single-flight map under many distinct keys: the sharded `Flight` against a one-lock map,
//! measured in the same run. Run with `cargo bench --bench flight`.
//!
//! Each task runs flights for keys drawn from a key space; a flight's work is a yield, so the map
//! itself is what is measured. With one global lock every start and finish of any key contends;
//! the sharded map should not collapse as tasks and keys grow.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use modstash::stash::flight::Flight;

/// The baseline: the same single flight over one `Mutex<HashMap>`.
#[derive(Default)]
struct GlobalLockFlight {
    inflight: Arc<Mutex<HashMap<u64, Shared<BoxFuture<'static, u64>>>>>,
}

impl GlobalLockFlight {
    async fn run<Fut>(&self, key: u64, work: Fut) -> u64
    where
        Fut: Future<Output = u64> + Send + 'static,
    {
        let shared = {
            let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(f) = map.get(&key) {
                f.clone()
            } else {
                let map2 = Arc::clone(&self.inflight);
                let task = tokio::spawn(async move {
                    let v = work.await;
                    map2.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
                    v
                });
                let f = task.map(|r| r.unwrap_or(0)).boxed().shared();
                map.insert(key, f.clone());
                f
            }
        };
        shared.await
    }
}

const TASKS: u64 = 256;
const PER_TASK: u64 = 2_000;

async fn drive<F, Fut>(keys: u64, run: F) -> f64
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = u64> + Send,
{
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let run = run.clone();
        handles.push(tokio::spawn(async move {
            let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            for _ in 0..PER_TASK {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                run(x % keys).await;
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
    (TASKS * PER_TASK) as f64 / start.elapsed().as_secs_f64()
}

fn measure(keys: u64) -> (f64, f64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    rt.block_on(async {
        let sharded: Arc<Flight<u64, u64>> = Arc::new(Flight::default());
        let sharded_rate = drive(keys, move |k| {
            let f = Arc::clone(&sharded);
            async move {
                f.run(k, tracing::Span::none(), move |_| async move {
                    tokio::task::yield_now().await;
                    k
                })
                .await
                .1
                .unwrap_or(0)
            }
        })
        .await;
        let global = Arc::new(GlobalLockFlight::default());
        let global_rate = drive(keys, move |k| {
            let g = Arc::clone(&global);
            async move {
                g.run(k, async move {
                    tokio::task::yield_now().await;
                    k
                })
                .await
            }
        })
        .await;
        (sharded_rate, global_rate)
    })
}

fn main() {
    // Warm up allocators and the runtime.
    let _ = measure(1_000);
    println!("| distinct keys | sharded flights/s | one-lock flights/s | sharded / one-lock |");
    println!("|---:|---:|---:|---:|");
    for keys in [1u64, 100, 10_000, 1_000_000] {
        let (sharded, global) = measure(keys);
        println!(
            "| {keys} | {sharded:.0} | {global:.0} | {:.2} |",
            sharded / global.max(1.0)
        );
    }
}
