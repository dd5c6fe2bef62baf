//! In-process leases: a table of key -> (token, expiry) on the tokio clock.
//!
//! Expiry uses `tokio::time::Instant`, so tests can pause and advance time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{Lease, LeaseError, LeaseGuard};

/// Leases inside one process.
#[derive(Debug, Default, Clone)]
pub struct MemoryLease {
    held: Arc<Mutex<HashMap<String, (u64, Instant)>>>,
    next_token: Arc<std::sync::atomic::AtomicU64>,
}

impl MemoryLease {
    /// A new, empty lease table.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Lease for MemoryLease {
    #[tracing::instrument(level = "debug", skip_all, fields(key = %key))]
    async fn try_acquire(
        &self,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<Box<dyn LeaseGuard>>, LeaseError> {
        let now = Instant::now();
        let token = self
            .next_token
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut held = self.held.lock().map_err(|_| poisoned())?;
        if let Some((_, expiry)) = held.get(key)
            && *expiry > now
        {
            return Ok(None);
        }
        held.insert(key.to_owned(), (token, now + ttl));
        Ok(Some(Box::new(MemoryGuard {
            table: Arc::clone(&self.held),
            key: key.to_owned(),
            token,
            ttl,
        })))
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

struct MemoryGuard {
    table: Arc<Mutex<HashMap<String, (u64, Instant)>>>,
    key: String,
    token: u64,
    ttl: Duration,
}

#[async_trait]
impl LeaseGuard for MemoryGuard {
    #[tracing::instrument(level = "debug", skip_all, fields(key = %self.key))]
    async fn renew(&mut self) -> Result<(), LeaseError> {
        let now = Instant::now();
        let mut held = self.table.lock().map_err(|_| poisoned())?;
        match held.get_mut(&self.key) {
            Some((token, expiry)) if *token == self.token && *expiry > now => {
                *expiry = now + self.ttl;
                Ok(())
            }
            _ => Err(LeaseError::Lost(self.key.clone())),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(key = %self.key))]
    async fn release(self: Box<Self>) -> Result<(), LeaseError> {
        let mut held = self.table.lock().map_err(|_| poisoned())?;
        if held.get(&self.key).is_some_and(|(t, _)| *t == self.token) {
            held.remove(&self.key);
        }
        Ok(())
    }

    fn key(&self) -> &str {
        &self.key
    }
}

fn poisoned() -> LeaseError {
    LeaseError::Unavailable("in-process lease table poisoned by a panic".into())
}
