//! Leases in Redis: `SET key token NX PX ttl`, renewed and released by compare-and-set scripts.
//!
//! Each acquisition gets a random token; renew (`PEXPIRE`) and release (`DEL`) act only while the
//! key still holds that token, so a holder whose lease expired and was taken over cannot extend or
//! free its successor's. Expiry is Redis's own clock: no cross-machine clock assumption.
//! Keys are `modstash:lease:{key}`.
//!
//! The connection is a [`ConnectionManager`] made on first use (so the lease can be built outside
//! an async context) that reconnects after failures; while Redis is down every call fails with
//! [`LeaseError::Unavailable`] and [`Lease::status`] reports it.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};
use tokio::sync::OnceCell;
use url::Url;

use super::{Lease, LeaseError, LeaseGuard, LeaseStatus};

/// Prefix of every lease key in Redis.
pub const KEY_PREFIX: &str = "modstash:lease:";
/// Longest wait for a TCP connection to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest wait for one command's answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnection attempts per failure: few, so a down Redis fails calls fast instead of queueing them.
const RECONNECT_RETRIES: usize = 1;

/// Extends the lease only while it still holds our token: `1` if extended, `0` if lost.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
              return redis.call('PEXPIRE', KEYS[1], ARGV[2])
          else
              return 0
          end",
    )
});

/// Deletes the lease only while it still holds our token: `1` if deleted, `0` if it was not ours.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
              return redis.call('DEL', KEYS[1])
          else
              return 0
          end",
    )
});

/// Leases in a Redis server.
#[derive(Clone)]
pub struct RedisLease {
    client: Client,
    connection: Arc<OnceCell<ConnectionManager>>,
    /// The URL with any password redacted, for messages.
    shown: Arc<str>,
    health: Arc<Health>,
}

impl std::fmt::Debug for RedisLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLease")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl RedisLease {
    /// A lease over the Redis at `url` (`redis://[:password@]host:port[/db]`); connects on first use.
    pub fn new(url: &Url) -> Result<RedisLease, LeaseError> {
        let shown: Arc<str> = Self::redacted_url(url).into();
        let client = Client::open(url.as_str())
            .map_err(|e| LeaseError::Unavailable(format!("redis {shown}: {e}")))?;
        Ok(RedisLease {
            client,
            connection: Arc::new(OnceCell::new()),
            shown,
            health: Arc::default(),
        })
    }

    /// `url` with its password, if any, replaced by `REDACTED`.
    pub fn redacted_url(url: &Url) -> String {
        let mut shown = url.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("REDACTED"));
        }
        shown.to_string()
    }

    /// One round trip (`PING`) over the shared connection.
    pub async fn ping(&self) -> Result<(), LeaseError> {
        let mut con = self.connection().await?;
        let result: Result<String, _> = redis::cmd("PING").query_async(&mut con).await;
        self.observe(result).map(|_| ())
    }

    async fn connection(&self) -> Result<ConnectionManager, LeaseError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES);
        let made = self
            .connection
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .cloned();
        self.observe(made)
    }

    /// Records the outcome for [`Lease::status`] and turns Redis errors into lease errors.
    fn observe<T>(&self, result: redis::RedisResult<T>) -> Result<T, LeaseError> {
        self.health.observe(result, &self.shown)
    }
}

#[async_trait]
impl Lease for RedisLease {
    #[tracing::instrument(skip_all, fields(key = %key, backend = "redis"))]
    async fn try_acquire(
        &self,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<Box<dyn LeaseGuard>>, LeaseError> {
        let mut con = self.connection().await?;
        let redis_key = format!("{KEY_PREFIX}{key}");
        let token = format!("{:032x}", rand::random::<u128>());
        let set: Option<String> = self.observe(
            redis::cmd("SET")
                .arg(&redis_key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(ttl_millis(ttl))
                .query_async(&mut con)
                .await,
        )?;
        if set.is_none() {
            return Ok(None);
        }
        Ok(Some(Box::new(RedisGuard {
            lease: self.clone(),
            con,
            key: key.to_owned(),
            redis_key,
            token,
            ttl,
        })))
    }

    fn name(&self) -> &'static str {
        "redis"
    }

    fn status(&self) -> LeaseStatus {
        self.health.status()
    }
}

/// A held Redis lease.
struct RedisGuard {
    lease: RedisLease,
    con: ConnectionManager,
    key: String,
    redis_key: String,
    token: String,
    ttl: Duration,
}

#[async_trait]
impl LeaseGuard for RedisGuard {
    #[tracing::instrument(skip_all, fields(key = %self.key, backend = "redis"))]
    async fn renew(&mut self) -> Result<(), LeaseError> {
        let extended: i64 = self.lease.observe(
            RENEW
                .key(&self.redis_key)
                .arg(&self.token)
                .arg(ttl_millis(self.ttl))
                .invoke_async(&mut self.con)
                .await,
        )?;
        if extended == 1 {
            Ok(())
        } else {
            Err(LeaseError::Lost(self.key.clone()))
        }
    }

    #[tracing::instrument(skip_all, fields(key = %self.key, backend = "redis"))]
    async fn release(mut self: Box<Self>) -> Result<(), LeaseError> {
        // `0` means it was no longer ours: releasing a lost lease is not an error.
        let _deleted: i64 = self.lease.observe(
            RELEASE
                .key(&self.redis_key)
                .arg(&self.token)
                .invoke_async(&mut self.con)
                .await,
        )?;
        Ok(())
    }

    fn key(&self) -> &str {
        &self.key
    }
}

/// The last outcome of a Redis call.
#[derive(Debug, Default)]
struct Health {
    last_error: Mutex<Option<String>>,
}

impl Health {
    fn observe<T>(&self, result: redis::RedisResult<T>, shown: &str) -> Result<T, LeaseError> {
        let outcome = result.map_err(|e| format!("redis {shown}: {e}"));
        if let Ok(mut last) = self.last_error.lock() {
            *last = outcome.as_ref().err().cloned();
        }
        outcome.map_err(LeaseError::Unavailable)
    }

    fn status(&self) -> LeaseStatus {
        match self.last_error.lock().ok().and_then(|last| last.clone()) {
            None => LeaseStatus::Ready,
            Some(reason) => LeaseStatus::Unavailable { reason },
        }
    }
}

/// `PX` needs a positive whole number of milliseconds.
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let url = Url::parse("redis://:s3cret@cache:6379/2").unwrap();
        let shown = RedisLease::redacted_url(&url);
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("cache:6379/2"), "{shown}");
        let lease = RedisLease::new(&url).unwrap();
        assert!(!format!("{lease:?}").contains("s3cret"));
    }

    #[test]
    fn health_follows_the_last_call() {
        let health = Health::default();
        assert_eq!(health.status(), LeaseStatus::Ready);
        let failed: redis::RedisResult<()> = Err(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        )));
        assert!(matches!(
            health.observe(failed, "redis://x"),
            Err(LeaseError::Unavailable(_))
        ));
        assert!(matches!(health.status(), LeaseStatus::Unavailable { .. }));
        assert_eq!(health.observe(Ok(1), "redis://x").unwrap(), 1);
        assert_eq!(health.status(), LeaseStatus::Ready);
    }
}
