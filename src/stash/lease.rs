//! Leases: at most one leader per key across everything that shares a lease backend.
//!
//! # Contract
//! - [`Lease::try_acquire`] returns a guard for at most one holder of a key at a time, until the
//!   guard is released or its time-to-live passes without a renewal.
//! - [`LeaseGuard::renew`] extends the lease by a full TTL; it fails with [`LeaseError::Lost`] once
//!   the lease expired or was taken over, and the holder must then stop working for the key.
//! - [`LeaseGuard::release`] frees the key at once; releasing a lost lease is not an error.
//! - After acquiring, the holder re-checks storage: another holder may have finished in between.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

/// A lease operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The lease expired or another holder took it over.
    #[error("lease on {0} was lost")]
    Lost(String),
    /// The lease backend cannot be reached.
    #[error("lease backend unavailable: {0}")]
    Unavailable(String),
}

/// A held lease. Dropping it without `release` lets it expire after its TTL.
#[async_trait]
pub trait LeaseGuard: Send + Sync {
    /// Extends the lease by a full TTL from now.
    async fn renew(&mut self) -> Result<(), LeaseError>;
    /// Frees the key.
    async fn release(self: Box<Self>) -> Result<(), LeaseError>;
    /// The key held.
    fn key(&self) -> &str;
}

/// A lease backend.
#[async_trait]
pub trait Lease: Send + Sync {
    /// Takes the lease on `key` for `ttl` if nobody holds it; `Ok(None)` if someone does.
    async fn try_acquire(
        &self,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<Box<dyn LeaseGuard>>, LeaseError>;

    /// Name of the backend for logs and readiness.
    fn name(&self) -> &'static str;
}

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
