//! The storage contract as executable cases, run against every backend by [`storage_suite!`](crate::storage_suite).
//!
//! Each `case_*` takes a fresh, empty [`Storage`] and panics when the backend breaks what the
//! stasher relies on: atomic round trips, create-if-absent, the commit protocol, multipart
//! uploads, exact ranges, conditional `@v/list` writes, and listing committed versions.
// Test support: panicking with a message is how a case reports a broken contract.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::any::Any;
use std::io::Write;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::layout::{self, VersionFile};
use super::probe::probe_conditional_writes;
use super::{ListWrite, StagedVersion, Storage};
use crate::module::{ModulePath, ModuleVersion, Version};

/// Size of the zip of the multipart case: spans three 5 MiB parts.
const LARGE_ZIP: usize = 12 * 1024 * 1024;

/// Why a suite cannot run on this machine: a service it needs is missing.
#[derive(Debug)]
pub struct Skip {
    /// The missing component (`moto`, `redis-server`).
    pub component: String,
    /// What went wrong looking for it.
    pub reason: String,
}

impl Skip {
    /// A skip for want of `component`.
    pub fn new(component: impl Into<String>, reason: impl Into<String>) -> Skip {
        Skip {
            component: component.into(),
            reason: reason.into(),
        }
    }

    /// Reports that `test` did not run: a failure when `MODSTASH_E2E=require` (CI with services),
    /// otherwise a line on stderr.
    pub fn report(&self, test: &str) {
        let (component, reason) = (&self.component, &self.reason);
        if std::env::var("MODSTASH_E2E").is_ok_and(|v| v == "require") {
            panic!(
                "{test} needs {component}, which is unavailable with MODSTASH_E2E=require: {reason}"
            );
        }
        // Straight to stderr: the test harness captures `eprintln!` of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: {test} needs {component} (set MODSTASH_E2E=require to fail instead): {reason}"
        );
    }
}

/// A storage under test and whatever must live as long as it (servers, temp dirs).
pub struct StorageFixture {
    /// The storage, empty.
    pub storage: Storage,
    keep: Vec<Box<dyn Any + Send>>,
}

impl StorageFixture {
    /// Wraps an empty storage.
    pub fn new(storage: Storage) -> StorageFixture {
        StorageFixture {
            storage,
            keep: Vec::new(),
        }
    }

    /// Keeps `thing` alive until the case ends.
    pub fn keeping(mut self, thing: impl Any + Send) -> StorageFixture {
        self.keep.push(Box::new(thing));
        self
    }
}

fn module() -> ModulePath {
    ModulePath::parse("example.com/Fleet/m").unwrap()
}

fn version(v: &str) -> Version {
    Version::parse(v).unwrap()
}

fn module_version(v: &str) -> ModuleVersion {
    ModuleVersion::new(module(), version(v)).unwrap()
}

/// Deterministic, non-repeating-looking bytes, so shifted or reordered ranges are caught.
fn pattern(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// Stages `mv` with a zip of `zip` bytes in a temp file (kept alive by the returned handle).
fn stage(mv: &ModuleVersion, zip: &[u8]) -> (StagedVersion, tempfile::NamedTempFile) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(zip).unwrap();
    file.flush().unwrap();
    let staged = StagedVersion {
        module_version: mv.clone(),
        info: Bytes::from(format!(
            "{{\"Version\":\"{}\",\"Time\":\"2024-01-02T03:04:05Z\"}}",
            mv.version().as_str()
        )),
        go_mod: Bytes::from(format!("module {}\n\ngo 1.21\n", mv.path().as_str())),
        zip_file: file.path().to_owned(),
        zip_hash: "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into(),
    };
    (staged, file)
}

/// What `put` writes, `read` returns byte for byte, and `head` sizes.
pub async fn case_put_read_round_trip(storage: &Storage) {
    let key = layout::internal_key(&["compliance", "round-trip"]);
    let body = Bytes::from(pattern(4096));
    storage.put(&key, body.clone()).await.unwrap();
    assert_eq!(storage.read(&key).await.unwrap(), Some(body.clone()));
    let meta = storage
        .head(&key)
        .await
        .unwrap()
        .expect("head of a put object");
    assert_eq!(meta.size, 4096);
    // Overwrite replaces whole.
    storage
        .put(&key, Bytes::from_static(b"short"))
        .await
        .unwrap();
    assert_eq!(
        storage.read(&key).await.unwrap(),
        Some(Bytes::from_static(b"short"))
    );
}

/// Missing objects are `None`, not errors.
pub async fn case_read_missing_is_none(storage: &Storage) {
    let key = layout::internal_key(&["compliance", "missing"]);
    assert_eq!(storage.read(&key).await.unwrap(), None);
    assert!(storage.head(&key).await.unwrap().is_none());
    assert!(
        !storage
            .is_committed(&module_version("v1.9.9"))
            .await
            .unwrap()
    );
    assert_eq!(
        storage
            .read_version_file(&module_version("v1.9.9"), VersionFile::Mod)
            .await
            .unwrap(),
        None
    );
}

/// The second create of one key is refused and leaves the first content.
pub async fn case_create_twice_second_false(storage: &Storage) {
    let key = layout::internal_key(&["compliance", "create"]);
    assert!(
        storage
            .create(&key, Bytes::from_static(b"one"))
            .await
            .unwrap()
    );
    assert!(
        !storage
            .create(&key, Bytes::from_static(b"two"))
            .await
            .unwrap()
    );
    assert_eq!(
        storage.read(&key).await.unwrap(),
        Some(Bytes::from_static(b"one"))
    );
}

/// `commit` stores all four files readable and identical, and only then is the version committed.
pub async fn case_commit_protocol(storage: &Storage) {
    let mv = module_version("v1.2.3");
    let zip = pattern(100_000);
    let (staged, _file) = stage(&mv, &zip);
    assert!(!storage.is_committed(&mv).await.unwrap());
    storage.commit(&staged).await.unwrap();
    assert!(storage.is_committed(&mv).await.unwrap());
    let read = |file| storage.read_version_file(&mv, file);
    assert_eq!(
        read(VersionFile::Info).await.unwrap(),
        Some(staged.info.clone())
    );
    assert_eq!(
        read(VersionFile::Mod).await.unwrap(),
        Some(staged.go_mod.clone())
    );
    assert_eq!(
        read(VersionFile::ZipHash).await.unwrap(),
        Some(Bytes::from(staged.zip_hash.clone()))
    );
    assert_eq!(
        read(VersionFile::Zip).await.unwrap().as_deref(),
        Some(&zip[..])
    );
    // The keys are the GOPROXY tree: the escaped path as a static file server would serve it.
    let info_key = layout::version_key(&mv, VersionFile::Info);
    assert_eq!(info_key.as_ref(), "example.com/!fleet/m/@v/v1.2.3.info");
    assert!(storage.head(&info_key).await.unwrap().is_some());
}

/// A zip larger than one upload part arrives byte-identical.
pub async fn case_large_multipart_upload(storage: &Storage) {
    let mv = module_version("v2.0.0+incompatible");
    let zip = pattern(LARGE_ZIP);
    let (staged, _file) = stage(&mv, &zip);
    storage.commit(&staged).await.unwrap();
    let key = layout::version_key(&mv, VersionFile::Zip);
    assert_eq!(
        storage.head(&key).await.unwrap().map(|m| m.size),
        Some(LARGE_ZIP as u64)
    );
    let stored = storage.read(&key).await.unwrap().expect("the zip");
    assert!(
        stored[..] == zip[..],
        "the stored zip differs from the upload"
    );
}

/// `stream_range` yields exactly the requested bytes.
pub async fn case_stream_range_exact(storage: &Storage) {
    let key = layout::internal_key(&["compliance", "ranges"]);
    let body = pattern(300_000);
    storage.put(&key, Bytes::from(body.clone())).await.unwrap();
    let len = body.len() as u64;
    for range in [0..1, 0..len, 1000..70_000, 65_535..65_537, len - 10..len] {
        let chunks: Vec<Bytes> = storage
            .stream_range(&key, range.clone())
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let got: Vec<u8> = chunks.concat();
        let want = &body[range.start as usize..range.end as usize];
        assert_eq!(got.len(), want.len(), "length of range {range:?}");
        assert!(got == want, "bytes of range {range:?} differ");
    }
}

/// `write_list` without a token creates the list only if absent.
pub async fn case_list_create_if_absent(storage: &Storage) {
    let path = module();
    let empty = storage.read_list(&path).await.unwrap();
    assert!(empty.versions.is_empty() && empty.token.is_none());
    let first = [version("v1.0.0")];
    assert_eq!(
        storage.write_list(&path, &first, None).await.unwrap(),
        ListWrite::Written
    );
    let second = [version("v1.0.0"), version("v1.1.0")];
    assert_eq!(
        storage.write_list(&path, &second, None).await.unwrap(),
        ListWrite::Conflict,
        "a create-if-absent write replaced an existing list"
    );
    let stored = storage.read_list(&path).await.unwrap();
    assert_eq!(stored.versions, first);
    assert!(stored.token.is_some());
}

/// `write_list` with a stale token conflicts where the backend has conditional update; where it
/// has none (local files) the documented fallback writes unconditionally.
pub async fn case_list_update_with_stale_token(storage: &Storage) {
    let path = module();
    storage
        .write_list(&path, &[version("v1.0.0")], None)
        .await
        .unwrap();
    let read = storage.read_list(&path).await.unwrap();
    let token = read.token.clone().expect("a token for an existing list");
    let v2 = [version("v1.0.0"), version("v1.1.0")];
    assert_eq!(
        storage
            .write_list(&path, &v2, Some(token.clone()))
            .await
            .unwrap(),
        ListWrite::Written,
        "a write with a fresh token failed"
    );
    let v3 = [version("v1.0.0"), version("v1.2.0")];
    let stale = storage.write_list(&path, &v3, Some(token)).await.unwrap();
    if supports_conditional_update(storage).await {
        assert_eq!(
            stale,
            ListWrite::Conflict,
            "a stale token overwrote the list"
        );
        assert_eq!(storage.read_list(&path).await.unwrap().versions, v2);
    } else {
        assert_eq!(stale, ListWrite::Written);
        assert_eq!(storage.read_list(&path).await.unwrap().versions, v3);
    }
}

/// Whether `PutMode::Update` is implemented, asked of the object store directly.
async fn supports_conditional_update(storage: &Storage) -> bool {
    let store = storage.object_store();
    let key = layout::internal_key(&["compliance", "update-support"]);
    let put = store
        .put(&key, PutPayload::from_static(b"a"))
        .await
        .unwrap();
    let opts = PutOptions {
        mode: PutMode::Update(UpdateVersion {
            e_tag: put.e_tag,
            version: put.version,
        }),
        ..PutOptions::default()
    };
    match store
        .put_opts(&key, PutPayload::from_static(b"b"), opts)
        .await
    {
        Ok(_) => true,
        Err(object_store::Error::NotImplemented { .. }) => false,
        Err(e) => panic!("conditional update with a fresh token failed: {e}"),
    }
}

/// `committed_versions` lists versions whose `.info` exists, nothing else.
pub async fn case_committed_versions_lists_info_only(storage: &Storage) {
    let done = module_version("v1.0.0");
    let (staged, _file) = stage(&done, b"zip");
    storage.commit(&staged).await.unwrap();
    let other = module_version("v1.1.0-rc.1");
    let (staged, _file) = stage(&other, b"zip");
    storage.commit(&staged).await.unwrap();
    // An orphan of a crashed commit: files but no `.info`.
    let orphan = module_version("v1.2.0");
    storage
        .put(
            &layout::version_key(&orphan, VersionFile::Mod),
            Bytes::from_static(b"module example.com/Fleet/m\n"),
        )
        .await
        .unwrap();
    storage
        .put(
            &layout::version_key(&orphan, VersionFile::Zip),
            Bytes::from_static(b"zip"),
        )
        .await
        .unwrap();
    storage
        .write_list(&module(), &[version("v1.0.0")], None)
        .await
        .unwrap();
    assert_eq!(
        storage.committed_versions(&module()).await.unwrap(),
        vec![version("v1.0.0"), version("v1.1.0-rc.1")]
    );
}

/// The backend honours conditional create, as the storage lease needs.
pub async fn case_probe_honours_create(storage: &Storage) {
    assert!(
        probe_conditional_writes(storage).await.unwrap(),
        "conditional create is not honoured"
    );
    let probes: Vec<_> = storage
        .object_store()
        .list(Some(&layout::internal_key(&["probe"])))
        .try_collect()
        .await
        .unwrap();
    assert!(probes.is_empty(), "the probe left {probes:?}");
}

/// One `#[tokio::test]` per storage contract case for a backend.
///
/// `$make` is an expression of type `impl Future<Output = Result<StorageFixture, Skip>>`
/// evaluated inside a child module of the caller (`use super::*` is in scope); each case gets a
/// fresh, empty storage from it, and a [`Skip`] is reported under the case's name.
#[macro_export]
macro_rules! storage_suite {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn fixture() -> Result<
                $crate::storage::compliance::StorageFixture,
                $crate::storage::compliance::Skip,
            > {
                $make.await
            }

            $crate::storage_suite!(@case put_read_round_trip, case_put_read_round_trip);
            $crate::storage_suite!(@case read_missing_is_none, case_read_missing_is_none);
            $crate::storage_suite!(@case create_twice_second_false, case_create_twice_second_false);
            $crate::storage_suite!(@case commit_protocol, case_commit_protocol);
            $crate::storage_suite!(@case large_multipart_upload, case_large_multipart_upload);
            $crate::storage_suite!(@case stream_range_exact, case_stream_range_exact);
            $crate::storage_suite!(@case list_create_if_absent, case_list_create_if_absent);
            $crate::storage_suite!(@case list_update_with_stale_token, case_list_update_with_stale_token);
            $crate::storage_suite!(@case committed_versions_lists_info_only, case_committed_versions_lists_info_only);
            $crate::storage_suite!(@case probe_honours_create, case_probe_honours_create);
        }
    };
    (@case $test:ident, $case:ident) => {
        #[tokio::test]
        async fn $test() {
            let fixture = match fixture().await {
                Ok(fixture) => fixture,
                Err(skip) => return skip.report(concat!(module_path!(), "::", stringify!($test))),
            };
            $crate::storage::compliance::$case(&fixture.storage).await;
        }
    };
}
