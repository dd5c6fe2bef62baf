//! The lease contract as executable cases, run against every backend by [`lease_suite!`](crate::lease_suite).
//!
//! Each `case_*` takes a fresh backend and panics when the backend breaks the contract. Cases use
//! their own random keys, so they may share a backend (one Redis, one bucket).
//!
//! Time: cases wait on the tokio clock. A backend on the tokio clock ([`MemoryLease`]) runs them
//! with paused time, so TTLs pass instantly; wall-clock backends (storage, Redis) run in real time
//! with short TTLs, and every wait for an expiry is a poll bounded by a deadline.
//!
//! A released guard cannot be renewed by construction: [`LeaseGuard::release`] consumes it. The
//! closest observable property, that a successor after a release holds the key alone and can
//! renew, is [`case_successor_after_release_is_exclusive`].
//!
//! [`MemoryLease`]: super::MemoryLease
// Test support: panicking with a message is how a case reports a broken contract.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep, sleep_until};

use super::{Lease, LeaseError, LeaseGuard};

/// TTL of the cases that wait for an expiry: short, since wall-clock backends really wait, but
/// long enough that the check "still held right after acquiring" cannot outlast it on a loaded
/// machine (an S3 acquisition is five round trips).
const SHORT_TTL: Duration = Duration::from_secs(2);
/// TTL of the renewal case: one renewal at half of it, then a check just after the original
/// expiry, with half a TTL to spare before the renewed expiry.
const RENEW_TTL: Duration = Duration::from_secs(4);
/// TTL that must not pass during a case.
const LONG_TTL: Duration = Duration::from_secs(30);
/// Contenders racing for one key.
const CONTENDERS: usize = 32;
/// Pause between polls for an expiry.
const POLL: Duration = Duration::from_millis(20);
/// Longest wait for an expiry before a case fails.
const EXPIRY_DEADLINE: Duration = Duration::from_secs(20);

/// How a fixture's backend tells time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// `tokio::time`: the suite pauses it.
    Tokio,
    /// Wall clock or the server's: the suite runs in real time.
    Wall,
}

/// A backend under test and whatever must live as long as it (servers, temp dirs).
pub struct LeaseFixture {
    /// The backend.
    pub lease: Arc<dyn Lease>,
    /// Its clock.
    pub clock: Clock,
    keep: Vec<Box<dyn Any + Send>>,
}

impl LeaseFixture {
    /// A backend on the tokio clock.
    pub fn tokio_clock(lease: impl Lease + 'static) -> LeaseFixture {
        LeaseFixture {
            lease: Arc::new(lease),
            clock: Clock::Tokio,
            keep: Vec::new(),
        }
    }

    /// A backend on the wall clock (or a server's).
    pub fn wall_clock(lease: impl Lease + 'static) -> LeaseFixture {
        LeaseFixture {
            lease: Arc::new(lease),
            clock: Clock::Wall,
            keep: Vec::new(),
        }
    }

    /// Keeps `thing` alive until the case ends.
    pub fn keeping(mut self, thing: impl Any + Send) -> LeaseFixture {
        self.keep.push(Box::new(thing));
        self
    }

    /// True for backends on the tokio clock: their cases run with tokio time paused. (The pause
    /// itself is in the test macro: `tokio::time::pause` exists only with tokio's `test-util`,
    /// which tests have and the library does not.)
    pub fn on_tokio_clock(&self) -> bool {
        self.clock == Clock::Tokio
    }
}

/// A key of the shape the stasher uses, unique per run, with the characters module paths allow.
pub fn unique_key(case: &str) -> String {
    format!(
        "fetch/example.com/!case~{case}+x/v2@v2.0.0-{:016x}",
        rand::random::<u64>()
    )
}

async fn acquire(lease: &dyn Lease, key: &str, ttl: Duration) -> Option<Box<dyn LeaseGuard>> {
    match lease.try_acquire(key, ttl).await {
        Ok(guard) => guard,
        Err(e) => panic!("{}: try_acquire({key}) failed: {e}", lease.name()),
    }
}

/// Polls until `key` can be acquired; fails the case after [`EXPIRY_DEADLINE`].
async fn acquire_eventually(lease: &dyn Lease, key: &str, ttl: Duration) -> Box<dyn LeaseGuard> {
    let deadline = Instant::now() + EXPIRY_DEADLINE;
    loop {
        if let Some(guard) = acquire(lease, key, ttl).await {
            return guard;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {key} never became free within {EXPIRY_DEADLINE:?}",
            lease.name()
        );
        sleep(POLL).await;
    }
}

/// Of many concurrent contenders for a free key, exactly one gets it.
pub async fn case_mutual_exclusion(lease: &dyn Lease) {
    let key = unique_key("mutex");
    let attempts = (0..CONTENDERS).map(|_| lease.try_acquire(&key, LONG_TTL));
    let results = futures::future::join_all(attempts).await;
    let mut winners = Vec::new();
    for result in results {
        match result {
            Ok(Some(guard)) => winners.push(guard),
            Ok(None) => {}
            Err(e) => panic!("{}: a contender failed: {e}", lease.name()),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "{}: {} of {CONTENDERS} contenders acquired {key}",
        lease.name(),
        winners.len()
    );
    assert!(
        acquire(lease, &key, LONG_TTL).await.is_none(),
        "{}: a late contender acquired a held key",
        lease.name()
    );
    for guard in winners {
        guard.release().await.unwrap();
    }
}

/// A renewed lease stays held past its original TTL.
pub async fn case_renewal_keeps_it(lease: &dyn Lease) {
    let key = unique_key("renew");
    let mut guard = acquire(lease, &key, RENEW_TTL)
        .await
        .expect("a free key is acquired");
    // The lease's own expiry was computed before this instant, so it is at most acquired + TTL.
    let acquired = Instant::now();
    sleep_until(acquired + RENEW_TTL / 2).await;
    let renewing = Instant::now();
    guard
        .renew()
        .await
        .unwrap_or_else(|e| panic!("{}: renewal within the TTL failed: {e}", lease.name()));
    // Past the original expiry, and before the renewed one (at least `renewing` + TTL).
    sleep_until(acquired + RENEW_TTL + RENEW_TTL / 10).await;
    let checking = Instant::now();
    let taken = acquire(lease, &key, RENEW_TTL).await.is_some();
    if checking < renewing + RENEW_TTL {
        assert!(
            !taken,
            "{}: a renewed lease was taken after its original TTL",
            lease.name()
        );
    } else {
        // A machine so loaded that this task woke after the renewed expiry proves nothing
        // either way; say so rather than fail or pass silently.
        eprintln!(
            "{}: renewal check inconclusive: woke {:?} after the renewed expiry",
            lease.name(),
            checking - (renewing + RENEW_TTL)
        );
        return;
    }
    guard
        .renew()
        .await
        .unwrap_or_else(|e| panic!("{}: second renewal failed: {e}", lease.name()));
    guard.release().await.unwrap();
}

/// A lease that is neither renewed nor released frees the key after its TTL.
pub async fn case_expiry_frees_it(lease: &dyn Lease) {
    let key = unique_key("expiry");
    let holder = acquire(lease, &key, SHORT_TTL)
        .await
        .expect("a free key is acquired");
    assert!(
        acquire(lease, &key, SHORT_TTL).await.is_none(),
        "{}: acquired a key held by a live lease",
        lease.name()
    );
    let successor = acquire_eventually(lease, &key, LONG_TTL).await;
    assert!(
        acquire(lease, &key, LONG_TTL).await.is_none(),
        "{}: the successor's lease is not exclusive",
        lease.name()
    );
    successor.release().await.unwrap();
    drop(holder);
}

/// Release frees the key at once, without waiting for the TTL.
pub async fn case_release_frees_at_once(lease: &dyn Lease) {
    let key = unique_key("release");
    let holder = acquire(lease, &key, LONG_TTL)
        .await
        .expect("a free key is acquired");
    assert!(acquire(lease, &key, LONG_TTL).await.is_none());
    holder.release().await.unwrap();
    let next = acquire(lease, &key, LONG_TTL).await;
    assert!(
        next.is_some(),
        "{}: a released key was not free at once",
        lease.name()
    );
    if let Some(next) = next {
        next.release().await.unwrap();
    }
}

/// After a release the successor holds the key alone and can renew it; the release left nothing
/// behind that lets a third party in or makes the successor's renewal fail.
pub async fn case_successor_after_release_is_exclusive(lease: &dyn Lease) {
    let key = unique_key("successor");
    let first = acquire(lease, &key, LONG_TTL).await.expect("free key");
    first.release().await.unwrap();
    let mut second = acquire(lease, &key, LONG_TTL)
        .await
        .expect("free after release");
    second
        .renew()
        .await
        .unwrap_or_else(|e| panic!("{}: successor cannot renew: {e}", lease.name()));
    assert!(
        acquire(lease, &key, LONG_TTL).await.is_none(),
        "{}: a third party acquired the successor's key",
        lease.name()
    );
    second.release().await.unwrap();
}

/// A holder whose lease expired and was taken over cannot renew it, and its release does not
/// free the successor's lease.
pub async fn case_taken_over_guard_cannot_renew(lease: &dyn Lease) {
    let key = unique_key("takeover");
    let mut stale = acquire(lease, &key, SHORT_TTL).await.expect("free key");
    let mut successor = acquire_eventually(lease, &key, LONG_TTL).await;
    match stale.renew().await {
        Err(LeaseError::Lost(lost)) => assert_eq!(lost, key),
        Err(e) => panic!("{}: renewal of a lost lease: {e}, want Lost", lease.name()),
        Ok(()) => panic!(
            "{}: a taken-over lease was renewed by its old holder",
            lease.name()
        ),
    }
    stale
        .release()
        .await
        .unwrap_or_else(|e| panic!("{}: releasing a lost lease is no error: {e}", lease.name()));
    assert!(
        acquire(lease, &key, LONG_TTL).await.is_none(),
        "{}: the old holder's release freed the successor's lease",
        lease.name()
    );
    successor
        .renew()
        .await
        .unwrap_or_else(|e| panic!("{}: the successor cannot renew: {e}", lease.name()));
    successor.release().await.unwrap();
}

/// A holder that dies (drops its guard without releasing) keeps the key until the TTL passes;
/// then another contender takes over.
pub async fn case_takeover_after_holder_death(lease: &dyn Lease) {
    let key = unique_key("death");
    let dead = acquire(lease, &key, SHORT_TTL).await.expect("free key");
    drop(dead);
    assert!(
        acquire(lease, &key, SHORT_TTL).await.is_none(),
        "{}: dropping a guard released it (it must expire instead)",
        lease.name()
    );
    let heir = acquire_eventually(lease, &key, LONG_TTL).await;
    assert_eq!(heir.key(), key);
    heir.release().await.unwrap();
}

/// Keys that share prefixes or differ only in characters a file name cannot keep are independent.
pub async fn case_distinct_keys_are_independent(lease: &dyn Lease) {
    let base = unique_key("distinct");
    let keys = [
        base.clone(),
        format!("{base}/sub"),
        format!("{base}+incompatible"),
        base.replace('!', "_"),
        base.replace('~', "_"),
        base.to_uppercase(),
    ];
    let mut guards = Vec::new();
    for key in &keys {
        let guard = acquire(lease, key, LONG_TTL).await.unwrap_or_else(|| {
            panic!(
                "{}: {key} was reported held, but only different keys are",
                lease.name()
            )
        });
        assert_eq!(guard.key(), key);
        guards.push(guard);
    }
    for key in &keys {
        assert!(
            acquire(lease, key, LONG_TTL).await.is_none(),
            "{}: {key} acquired twice",
            lease.name()
        );
    }
    for guard in guards {
        guard.release().await.unwrap();
    }
}

/// One `#[tokio::test]` per lease contract case for a backend.
///
/// `$make` is an expression of type `impl Future<Output = Result<LeaseFixture, Skip>>` evaluated
/// inside a child module of the caller (`use super::*` is in scope); a
/// [`Skip`](crate::storage::compliance::Skip) is reported under the case's name.
///
/// ```ignore
/// lease_suite!(memory, async { Ok(LeaseFixture::tokio_clock(MemoryLease::new())) });
/// ```
#[macro_export]
macro_rules! lease_suite {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn fixture() -> Result<
                $crate::stash::lease::compliance::LeaseFixture,
                $crate::storage::compliance::Skip,
            > {
                $make.await
            }

            $crate::lease_suite!(@case mutual_exclusion, case_mutual_exclusion);
            $crate::lease_suite!(@case renewal_keeps_it, case_renewal_keeps_it);
            $crate::lease_suite!(@case expiry_frees_it, case_expiry_frees_it);
            $crate::lease_suite!(@case release_frees_at_once, case_release_frees_at_once);
            $crate::lease_suite!(@case successor_after_release_is_exclusive, case_successor_after_release_is_exclusive);
            $crate::lease_suite!(@case taken_over_guard_cannot_renew, case_taken_over_guard_cannot_renew);
            $crate::lease_suite!(@case takeover_after_holder_death, case_takeover_after_holder_death);
            $crate::lease_suite!(@case distinct_keys_are_independent, case_distinct_keys_are_independent);
        }
    };
    (@case $test:ident, $case:ident) => {
        #[tokio::test]
        async fn $test() {
            let fixture = match fixture().await {
                Ok(fixture) => fixture,
                Err(skip) => return skip.report(concat!(module_path!(), "::", stringify!($test))),
            };
            // Expanded in the test crate, whose tokio has `test-util`.
            if fixture.on_tokio_clock() {
                tokio::time::pause();
            }
            $crate::stash::lease::compliance::$case(&*fixture.lease).await;
        }
    };
}
