//! Fleet components against real backends: the lease contract on every lease backend, the
//! storage contract on every storage backend, the conditional-write probe, lease start-up
//! (refusal, fallback, readiness status) and S3 configured from the standard environment.
//!
//! moto and redis-server are started by `services`; without them those tests print
//! `skipped: ...` (or fail, with `MODSTASH_E2E=require`).

// A test crate: panicking on a broken fixture is the right failure, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod services;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use modstash::Settings;
use modstash::config::LeaseSpec;
use modstash::http::AppState;
use modstash::stash::lease::compliance::LeaseFixture;
use modstash::stash::lease::{
    Lease, LeaseError, LeaseStatus, MemoryLease, RedisLease, StorageLease, setup,
};
use modstash::storage::compliance::StorageFixture;
use modstash::storage::probe::probe_conditional_writes;
use modstash::storage::{Storage, StorageUrl};
use modstash::{lease_suite, storage_suite};
use services::{MotoServer, RedisServer};

fn memory_storage() -> Storage {
    Storage::open(&StorageUrl::Memory).unwrap()
}

fn file_storage() -> (Storage, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&StorageUrl::File(dir.path().join("store"))).unwrap();
    (storage, dir)
}

// ---- The lease contract on every backend ----

lease_suite!(memory_lease, async {
    Ok(LeaseFixture::tokio_clock(MemoryLease::new()))
});

lease_suite!(storage_lease_on_memory, async {
    Ok(LeaseFixture::wall_clock(
        StorageLease::new(memory_storage()),
    ))
});

lease_suite!(storage_lease_on_files, async {
    let (storage, dir) = file_storage();
    Ok(LeaseFixture::wall_clock(StorageLease::new(storage)).keeping(dir))
});

lease_suite!(storage_lease_on_s3, async {
    let moto = MotoServer::shared()?;
    Ok(LeaseFixture::wall_clock(StorageLease::new(
        moto.fresh_storage(),
    )))
});

lease_suite!(redis_lease, async {
    let redis = RedisServer::shared()?;
    Ok(LeaseFixture::wall_clock(
        RedisLease::new(&redis.url()).unwrap(),
    ))
});

// ---- The storage contract on every backend ----

storage_suite!(storage_on_memory, async {
    Ok(StorageFixture::new(memory_storage()))
});

storage_suite!(storage_on_files, async {
    let (storage, dir) = file_storage();
    Ok(StorageFixture::new(storage).keeping(dir))
});

storage_suite!(storage_on_s3, async {
    let moto = MotoServer::shared()?;
    Ok(StorageFixture::new(moto.fresh_storage()))
});

// ---- A store that misbehaves on purpose ----

/// Wraps a store: optionally turns conditional creates into overwrites (as some S3-compatible
/// services do), and runs a hook before each create (to interleave a "concurrent" writer).
#[derive(Debug)]
struct Hooked {
    inner: Arc<dyn ObjectStore>,
    overwrite_creates: bool,
    before_create: Option<BeforeCreate>,
}

/// Given the key being created, another object to write first.
type BeforeCreate = fn(&Path) -> Option<(Path, Bytes)>;

impl std::fmt::Display for Hooked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hooked({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Hooked {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        mut opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if matches!(opts.mode, PutMode::Create) {
            if let Some((key, body)) = self.before_create.and_then(|hook| hook(location)) {
                self.inner.put(&key, PutPayload::from(body)).await?;
            }
            if self.overwrite_creates {
                opts.mode = PutMode::Overwrite;
            }
        }
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
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
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

fn hooked_storage(overwrite_creates: bool, before_create: Option<BeforeCreate>) -> Storage {
    let store = Hooked {
        inner: Arc::new(InMemory::new()),
        overwrite_creates,
        before_create,
    };
    Storage::from_store(Arc::new(store), StorageUrl::Memory)
}

// ---- The probe and lease start-up ----

#[tokio::test]
async fn probe_detects_a_store_that_overwrites() {
    let honest = hooked_storage(false, None);
    assert!(probe_conditional_writes(&honest).await.unwrap());
    let overwriting = hooked_storage(true, None);
    assert!(!probe_conditional_writes(&overwriting).await.unwrap());
    let refused = setup::open(&LeaseSpec::Storage, &overwriting)
        .await
        .err()
        .expect("a storage lease over an overwriting store is refused");
    let message = refused.to_string();
    assert!(
        message.contains("conditional") && message.contains("memory://"),
        "{message}"
    );
}

#[tokio::test]
async fn probe_detects_s3_without_conditional_put() {
    let moto = match MotoServer::shared() {
        Ok(moto) => moto,
        Err(skip) => return skip.report("probe_detects_s3_without_conditional_put"),
    };
    let bucket = moto.create_bucket();
    let s3 = moto
        .s3_builder(&bucket)
        .with_conditional_put(object_store::aws::S3ConditionalPut::Disabled)
        .build()
        .unwrap();
    let storage = Storage::from_store(
        Arc::new(s3),
        StorageUrl::S3 {
            bucket,
            prefix: String::new(),
        },
    );
    assert!(!probe_conditional_writes(&storage).await.unwrap());
    assert!(setup::open(&LeaseSpec::Storage, &storage).await.is_err());
}

/// A contender that created generation `k` after others created and collected it (they are at
/// `k+2`) must not count as holder; neither may a renewal that lands the same way.
#[tokio::test]
async fn storage_lease_stale_generation_is_not_a_hold() {
    const KEY: &str = "fetch/example.com/stale@v1.0.0";
    /// Before generation 2 is created, "another replica" writes a live generation 4.
    fn racing_replica(key: &Path) -> Option<(Path, Bytes)> {
        if key.filename() != Some("00000000000000000002") {
            return None;
        }
        let expires = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            + 60_000;
        let record = format!(
            r#"{{"owner":"other","token":"other","expires_at_unix_ms":{expires},"released":false}}"#
        );
        Some((
            StorageLease::key_dir(KEY).join("00000000000000000004"),
            Bytes::from(record),
        ))
    }

    // Acquire: generation 1 is an expired lease, our create of 2 succeeds, but 4 exists.
    let storage = hooked_storage(false, Some(racing_replica));
    let lease = StorageLease::new(storage.clone());
    let dir = StorageLease::key_dir(KEY);
    let expired = r#"{"owner":"gone","token":"gone","expires_at_unix_ms":1,"released":false}"#;
    assert!(
        storage
            .create(
                &dir.clone().join("00000000000000000001"),
                Bytes::from(expired)
            )
            .await
            .unwrap()
    );
    assert!(
        lease
            .try_acquire(KEY, Duration::from_secs(30))
            .await
            .unwrap()
            .is_none(),
        "a stale generation counted as a hold"
    );
    assert!(
        lease
            .try_acquire(KEY, Duration::from_secs(30))
            .await
            .unwrap()
            .is_none()
    );

    // Renew: we hold generation 1, our renewal creates 2, but 4 exists.
    let storage = hooked_storage(false, Some(racing_replica));
    let lease = StorageLease::new(storage);
    let mut guard = lease
        .try_acquire(KEY, Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a free key");
    assert!(matches!(guard.renew().await, Err(LeaseError::Lost(_))));
}

/// The generations a key's lease log holds right now.
async fn lease_log(storage: &Storage, dir: &object_store::path::Path) -> Vec<ObjectMeta> {
    storage
        .object_store()
        .list(Some(dir))
        .try_collect()
        .await
        .unwrap()
}

/// Renewals and releases collect old generations: a key at rest keeps one object, a release marker.
#[tokio::test]
async fn storage_lease_collects_old_generations() {
    let storage = memory_storage();
    let lease = StorageLease::new(storage.clone()).with_owner("test-owner");
    let key = "fetch/example.com/gc@v1.0.0";
    let mut guard = lease
        .try_acquire(key, Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a free key");
    for _ in 0..3 {
        guard.renew().await.unwrap();
    }
    let dir = StorageLease::key_dir(key);
    let held = lease_log(&storage, &dir).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].location.filename(), Some("00000000000000000004"));
    let record: serde_json::Value =
        serde_json::from_slice(&storage.read(&held[0].location).await.unwrap().unwrap()).unwrap();
    assert_eq!(record["owner"], "test-owner");
    assert_eq!(record["released"], false);

    guard.release().await.unwrap();
    let at_rest = lease_log(&storage, &dir).await;
    assert_eq!(at_rest.len(), 1, "{at_rest:?}");
    assert_eq!(at_rest[0].location.filename(), Some("00000000000000000005"));
    let marker: serde_json::Value =
        serde_json::from_slice(&storage.read(&at_rest[0].location).await.unwrap().unwrap())
            .unwrap();
    assert_eq!(marker["released"], true);
}

fn settings_with(storage: StorageUrl, lease: LeaseSpec) -> Settings {
    Settings {
        storage,
        lease,
        upstream: "off".parse().unwrap(),
        ..Settings::default()
    }
}

/// `AppState::build` probes the storage and opens a storage lease over it.
#[tokio::test]
async fn app_state_uses_a_storage_lease_on_files() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_with(
        StorageUrl::File(dir.path().join("store")),
        LeaseSpec::Storage,
    );
    let state = AppState::build(&settings).await.unwrap();
    let lease = state.stasher.lease();
    assert_eq!(lease.name(), "storage");
    assert_eq!(lease.status(), LeaseStatus::Ready);
    let guard = lease
        .try_acquire("fetch/example.com/m@v1.0.0", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a free key");
    guard.release().await.unwrap();
    // The probe cleaned up after itself.
    assert!(
        !dir.path()
            .join("store/.modstash/probe")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
}

#[tokio::test]
async fn redis_unreachable_at_start_falls_back_to_memory() {
    // Nothing listens on a port that was just free.
    let url: LeaseSpec = format!("redis://:secret@127.0.0.1:{}/0", services::free_port())
        .parse()
        .unwrap();
    let state = AppState::build(&settings_with(StorageUrl::Memory, url.clone()))
        .await
        .unwrap();
    let lease = state.stasher.lease();
    assert_eq!(lease.name(), "memory");
    match lease.status() {
        LeaseStatus::Degraded { configured, reason } => {
            assert!(configured.starts_with("redis://"), "{configured}");
            assert!(!configured.contains("secret") && !reason.contains("secret"));
        }
        other => panic!("want Degraded, got {other:?}"),
    }
    assert!(!lease.status().is_ready());
    // Cold fetches still get (in-process) leases.
    let guard = lease
        .try_acquire("fetch/example.com/m@v1.0.0", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a free key");
    guard.release().await.unwrap();
    // The async variant falls back the same way.
    let lease = setup::open(&url, &memory_storage()).await.unwrap();
    assert!(matches!(lease.status(), LeaseStatus::Degraded { .. }));
}

#[tokio::test]
async fn redis_reachable_at_start_is_used() {
    let redis = match RedisServer::shared() {
        Ok(redis) => redis,
        Err(skip) => return skip.report("redis_reachable_at_start_is_used"),
    };
    let spec = LeaseSpec::Redis(redis.url());
    let state = AppState::build(&settings_with(StorageUrl::Memory, spec))
        .await
        .unwrap();
    let lease = state.stasher.lease();
    assert_eq!(lease.name(), "redis");
    let guard = lease
        .try_acquire(
            "fetch/example.com/app-state@v1.0.0",
            Duration::from_secs(30),
        )
        .await
        .unwrap()
        .expect("a free key");
    assert_eq!(lease.status(), LeaseStatus::Ready);
    guard.release().await.unwrap();
}

#[tokio::test]
async fn redis_down_after_start_is_unavailable_not_lost() {
    let redis = match RedisServer::start() {
        Ok(redis) => redis,
        Err(skip) => return skip.report("redis_down_after_start_is_unavailable_not_lost"),
    };
    let lease = RedisLease::new(&redis.url()).unwrap();
    lease.ping().await.unwrap();
    let mut guard = lease
        .try_acquire("fetch/example.com/down@v1.0.0", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a free key");
    drop(redis); // stops the server and waits until it is gone
    match lease
        .try_acquire("fetch/example.com/other@v1.0.0", Duration::from_secs(30))
        .await
    {
        Err(LeaseError::Unavailable(reason)) => assert!(reason.contains("redis"), "{reason}"),
        other => panic!("want Unavailable, got {:?}", other.map(|g| g.is_some())),
    }
    assert!(matches!(lease.status(), LeaseStatus::Unavailable { .. }));
    assert!(matches!(
        guard.renew().await,
        Err(LeaseError::Unavailable(_))
    ));
}

// ---- S3 from the standard environment ----

/// `Storage::open` for `s3://` reads object_store's standard `AWS_*` variables, and conditional
/// create works with its defaults. Environment variables cannot be set safely inside a threaded
/// test binary, so the check runs in a child process of this binary with them set.
#[test]
fn s3_storage_opens_from_standard_env() {
    let moto = match MotoServer::shared() {
        Ok(moto) => moto,
        Err(skip) => return skip.report("s3_storage_opens_from_standard_env"),
    };
    let bucket = moto.create_bucket();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "s3_storage_opens_from_standard_env_child"])
        .args(["--ignored", "--nocapture", "--test-threads=1"])
        .env("MODSTASH_TEST_S3_BUCKET", &bucket)
        .env("AWS_ENDPOINT", moto.endpoint())
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "modstash-test")
        .env("AWS_SECRET_ACCESS_KEY", "modstash-test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "child failed:\n{log}");
    assert!(
        log.contains("1 passed"),
        "the child test did not run:\n{log}"
    );

    // The child wrote under the prefix, as seen by an independently configured client.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s3 = moto.s3_builder(&bucket).build().unwrap();
    let got = rt
        .block_on(async {
            s3.get(&Path::from("pre/fix/.modstash/from-env"))
                .await?
                .bytes()
                .await
        })
        .unwrap();
    assert_eq!(&got[..], b"hello from the environment");
}

#[tokio::test]
#[ignore = "run by s3_storage_opens_from_standard_env in a child process"]
async fn s3_storage_opens_from_standard_env_child() {
    let Ok(bucket) = std::env::var("MODSTASH_TEST_S3_BUCKET") else {
        return;
    };
    let url: StorageUrl = format!("s3://{bucket}/pre/fix").parse().unwrap();
    let storage = Storage::open(&url).unwrap();
    let key = modstash::storage::layout::internal_key(&["from-env"]);
    storage
        .put(&key, Bytes::from_static(b"hello from the environment"))
        .await
        .unwrap();
    assert!(probe_conditional_writes(&storage).await.unwrap());
    assert!(
        !storage
            .create(&key, Bytes::from_static(b"again"))
            .await
            .unwrap()
    );
    let lease = setup::open(&LeaseSpec::Storage, &storage).await.unwrap();
    assert_eq!(lease.name(), "storage");
}
