//! Where modules live: typed operations over `object_store` with the GOPROXY-tree key layout.
//!
//! One implementation over `Arc<dyn ObjectStore>`; local directory, S3 and memory are configurations.
//! Commit protocol: `.mod`, `.zip`, `.ziphash` are written first, each atomically; `.info` last.
//! Readers treat a version as present only when its `.info` exists.

#[doc(hidden)]
pub mod compliance;
mod error;
pub mod layout;
pub mod probe;
pub mod ranged;
mod url;

use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, GetResultPayload, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload, UpdateVersion, WriteMultipart,
};
use tokio::io::AsyncReadExt;

pub use error::StorageError;
pub use layout::VersionFile;
pub use ranged::{RangeBudget, RangeReadOptions};
pub use url::StorageUrl;

use crate::module::{ModulePath, ModuleVersion, Version};

/// Part size of multipart uploads: S3's minimum, which keeps upload memory small.
const UPLOAD_PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts uploaded at once per zip.
const UPLOAD_CONCURRENCY: usize = 2;

/// A version fetched from upstream and checked, ready to commit.
#[derive(Debug)]
pub struct StagedVersion {
    /// Module and version.
    pub module_version: ModuleVersion,
    /// The `.info` JSON exactly as stored.
    pub info: Bytes,
    /// The go.mod bytes.
    pub go_mod: Bytes,
    /// The zip, spooled to a local file.
    pub zip_file: std::path::PathBuf,
    /// The `h1:` hash of the zip.
    pub zip_hash: String,
}

/// The stored `@v/list` with the version token for a conditional update.
#[derive(Debug, Default)]
pub struct StoredList {
    /// Versions in the file, in file order, invalid lines dropped.
    pub versions: Vec<Version>,
    /// `None` when the file does not exist yet.
    pub token: Option<UpdateVersion>,
}

/// Outcome of a conditional write of `@v/list`.
#[derive(Debug, PartialEq, Eq)]
pub enum ListWrite {
    /// Written.
    Written,
    /// Someone else wrote it since it was read: read again and merge.
    Conflict,
}

/// Module storage.
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    url: StorageUrl,
    reads: RangeReadOptions,
    range_budget: Option<RangeBudget>,
    throttled: bool,
    /// Signs GET URLs for clients (S3), with the key prefix the store adds.
    signer: Option<(Arc<dyn object_store::signer::Signer>, String)>,
}

impl Storage {
    /// Opens the storage a URL names; a local directory is created if missing.
    pub fn open(url: &StorageUrl) -> Result<Storage, StorageError> {
        let open_err = |reason: String| StorageError::Open {
            url: url.to_string(),
            reason,
        };
        let store: Arc<dyn ObjectStore> = match url {
            StorageUrl::Memory => Arc::new(InMemory::new()),
            StorageUrl::File(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
                let fs = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| open_err(e.to_string()))?
                    // A commit must survive power loss before `.info` claims it exists.
                    .with_fsync(true);
                Arc::new(fs)
            }
            StorageUrl::S3 { bucket, prefix } => {
                let s3 = Arc::new(
                    object_store::aws::AmazonS3Builder::from_env()
                        .with_bucket_name(bucket)
                        .build()
                        .map_err(|e| open_err(e.to_string()))?,
                );
                let signer: Arc<dyn object_store::signer::Signer> = s3.clone();
                let s3: Arc<dyn ObjectStore> = s3;
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    s3
                } else {
                    Arc::new(object_store::prefix::PrefixStore::new(
                        s3,
                        Path::from_iter(prefix.split('/')),
                    ))
                };
                let mut storage = Storage::from_store(store, url.clone());
                storage.signer = Some((signer, prefix.clone()));
                return Ok(storage);
            }
        };
        Ok(Storage::from_store(store, url.clone()))
    }

    /// Wraps an existing object store (tests, wrappers such as latency injection).
    pub fn from_store(store: Arc<dyn ObjectStore>, url: StorageUrl) -> Storage {
        Storage {
            store,
            url,
            reads: RangeReadOptions::default(),
            range_budget: None,
            throttled: false,
            signer: None,
        }
    }

    /// A presigned URL that lets a client GET `key` directly from the bucket for `expires`;
    /// `None` where the storage cannot sign (local directories, memory).
    pub async fn presigned_get(
        &self,
        key: &Path,
        expires: std::time::Duration,
    ) -> Option<::url::Url> {
        let (signer, prefix) = self.signer.as_ref()?;
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            Path::parse(format!("{prefix}/{key}")).ok()?
        };
        match signer.signed_url(http::Method::GET, &full, expires).await {
            Ok(url) => Some(url),
            Err(e) => {
                tracing::warn!(error = %e, "cannot presign a storage URL; serving directly");
                None
            }
        }
    }

    /// Slows every read down like a remote bucket: a fixed latency per request and a per-request
    /// bandwidth. For benchmarks of the ordered parallel reader; the storage counts as remote.
    pub fn with_injected_latency(
        mut self,
        latency: std::time::Duration,
        bytes_per_sec: u64,
    ) -> Storage {
        if latency.is_zero() && bytes_per_sec == 0 {
            return self;
        }
        let per_byte = if bytes_per_sec == 0 {
            std::time::Duration::ZERO
        } else {
            std::time::Duration::from_nanos(1_000_000_000 / bytes_per_sec.max(1))
        };
        let config = object_store::throttle::ThrottleConfig {
            wait_get_per_call: latency,
            wait_get_per_byte: per_byte,
            ..Default::default()
        };
        self.store = Arc::new(object_store::throttle::ThrottledStore::new(
            Arc::clone(&self.store),
            config,
        ));
        self.throttled = true;
        self
    }

    /// Sets how large objects are read from remote storage.
    pub fn with_range_reads(mut self, reads: RangeReadOptions) -> Storage {
        self.reads = reads;
        self
    }

    /// Caps the bytes of range reads in flight across every download from remote storage.
    pub fn with_range_budget(mut self, bytes: u64) -> Storage {
        self.range_budget = Some(RangeBudget::new(bytes));
        self
    }

    /// The underlying object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// True when `@v/list` can be updated with compare-and-swap (S3, memory); local files cannot,
    /// so writers there serialise on a lease instead.
    pub fn has_conditional_update(&self) -> bool {
        !matches!(self.url, StorageUrl::File(_))
    }

    /// The URL this storage was opened from.
    pub fn url(&self) -> &StorageUrl {
        &self.url
    }

    /// Reads a whole small object; `None` if it does not exist.
    pub async fn read(&self, key: &Path) -> Result<Option<Bytes>, StorageError> {
        match self.store.get(key).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Metadata of an object; `None` if it does not exist.
    pub async fn head(&self, key: &Path) -> Result<Option<ObjectMeta>, StorageError> {
        match self.store.head(key).await {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// True when the version is committed (its `.info`, the commit marker, exists).
    pub async fn is_committed(&self, mv: &ModuleVersion) -> Result<bool, StorageError> {
        Ok(self
            .head(&layout::version_key(mv, VersionFile::Info))
            .await?
            .is_some())
    }

    /// Reads one small file of a committed version (`.info`, `.mod`, `.ziphash`).
    pub async fn read_version_file(
        &self,
        mv: &ModuleVersion,
        file: VersionFile,
    ) -> Result<Option<Bytes>, StorageError> {
        self.read(&layout::version_key(mv, file)).await
    }

    /// Streams a byte range of an object: a local file is read directly in large chunks; a
    /// remote object larger than one chunk is read as ordered parallel ranges.
    pub async fn stream_range(
        &self,
        key: &Path,
        range: Range<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes, StorageError>>, StorageError> {
        let remote =
            self.throttled || !matches!(self.url, StorageUrl::File(_) | StorageUrl::Memory);
        if remote && range.end - range.start > self.reads.chunk_size {
            return Ok(ranged::read_ordered(
                Arc::clone(&self.store),
                key.clone(),
                range,
                self.reads,
                self.range_budget.clone(),
            ));
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(range.clone())),
            ..GetOptions::default()
        };
        let result = match self.store.get_opts(key, options).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StorageError::Missing {
                    key: key.to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        match result.payload {
            GetResultPayload::File(file, _) => Ok(local_file_stream(file, result.range)),
            GetResultPayload::Stream(stream) => {
                Ok(stream.map(|c| c.map_err(StorageError::from)).boxed())
            }
        }
    }

    /// Commits a staged version: `.mod`, `.zip` and `.ziphash` first, `.info` last.
    #[tracing::instrument(skip_all, fields(module_version = %staged.module_version))]
    pub async fn commit(&self, staged: &StagedVersion) -> Result<(), StorageError> {
        let mv = &staged.module_version;
        let (mod_key, zip_key, hash_key) = (
            layout::version_key(mv, VersionFile::Mod),
            layout::version_key(mv, VersionFile::Zip),
            layout::version_key(mv, VersionFile::ZipHash),
        );
        futures::try_join!(
            self.put(&mod_key, staged.go_mod.clone()),
            self.upload_file(&zip_key, &staged.zip_file),
            self.put(&hash_key, Bytes::from(staged.zip_hash.clone())),
        )?;
        self.put(
            &layout::version_key(mv, VersionFile::Info),
            staged.info.clone(),
        )
        .await
    }

    /// Writes a small object atomically, replacing any previous one.
    pub async fn put(&self, key: &Path, bytes: Bytes) -> Result<(), StorageError> {
        self.store.put(key, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// Creates a small object only if it does not exist: `Ok(false)` when it already does.
    pub async fn create(&self, key: &Path, bytes: Bytes) -> Result<bool, StorageError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(key, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Uploads a local file as one object, streamed in parts; visible only when complete.
    async fn upload_file(&self, key: &Path, file: &FsPath) -> Result<(), StorageError> {
        let mut source = tokio::fs::File::open(file).await?;
        let upload = self.store.put_multipart(key).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, UPLOAD_PART_SIZE);
        let mut buf = vec![0u8; 256 * 1024];
        let result: Result<(), StorageError> = async {
            loop {
                let n = source.read(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                writer.wait_for_capacity(UPLOAD_CONCURRENCY).await?;
                writer.write(&buf[..n]);
            }
        }
        .await;
        match result {
            Ok(()) => {
                writer.finish().await?;
                Ok(())
            }
            Err(e) => {
                // Nothing of a failed upload may stay visible or billed.
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// Reads `@v/list` with its version token.
    pub async fn read_list(&self, path: &ModulePath) -> Result<StoredList, StorageError> {
        let key = layout::list_key(path);
        let result = match self.store.get(&key).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(StoredList::default()),
            Err(e) => return Err(e.into()),
        };
        let token = UpdateVersion {
            e_tag: result.meta.e_tag.clone(),
            version: result.meta.version.clone(),
        };
        let bytes = result.bytes().await?;
        Ok(StoredList {
            versions: parse_list(&bytes),
            token: Some(token),
        })
    }

    /// Writes `@v/list` if nobody changed it since `token` was read (`None`: if it still does not exist).
    pub async fn write_list(
        &self,
        path: &ModulePath,
        versions: &[Version],
        token: Option<UpdateVersion>,
    ) -> Result<ListWrite, StorageError> {
        let key = layout::list_key(path);
        let body = Bytes::from(format_list(versions));
        let mode = match token {
            Some(t) => PutMode::Update(t),
            None => PutMode::Create,
        };
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&key, PutPayload::from(body.clone()), opts)
            .await
        {
            Ok(_) => Ok(ListWrite::Written),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(ListWrite::Conflict),
            Err(object_store::Error::NotImplemented { .. }) => {
                // Local files have no compare-and-swap; the caller serialises writers instead.
                self.put(&key, body).await?;
                Ok(ListWrite::Written)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Versions committed in storage, found by listing `.info` keys (slower than `@v/list`, but
    /// authoritative: used when the list file may be behind).
    pub async fn committed_versions(
        &self,
        path: &ModulePath,
    ) -> Result<Vec<Version>, StorageError> {
        let dir = layout::version_dir(path);
        let listing = self.store.list_with_delimiter(Some(&dir)).await?;
        let mut versions: Vec<Version> = listing
            .objects
            .iter()
            .filter_map(|o| o.location.filename())
            .filter_map(|name| name.strip_suffix(".info"))
            .filter_map(|v| Version::from_escaped(v).ok())
            .collect();
        versions.sort();
        Ok(versions)
    }

    /// A cheap round trip to the backend, for readiness.
    pub async fn check(&self) -> Result<(), StorageError> {
        self.head(&layout::internal_key(&["ready"]))
            .await
            .map(|_| ())
    }
}

/// Parses `@v/list` text: one version per line; blank and invalid lines are skipped.
pub fn parse_list(bytes: &[u8]) -> Vec<Version> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|l| Version::parse(l.trim()).ok())
        .collect()
}

/// Formats `@v/list` text: sorted in Go's order, one version per line.
pub fn format_list(versions: &[Version]) -> String {
    let mut sorted: Vec<&Version> = versions.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut out = String::new();
    for v in sorted {
        out.push_str(v.as_str());
        out.push('\n');
    }
    out
}

/// Read size for local files: object_store's own stream uses 8 KiB reads, one blocking-pool hop
/// each, which caps throughput far below the disk; 128 KiB positioned reads keep up with the
/// network while 100 concurrent downloads hold only a few MiB of buffers.
const LOCAL_READ_SIZE: u64 = 128 * 1024;

/// Streams `range` of an open local file: each chunk is one `pread` straight into the buffer that
/// is sent (no intermediate copy), on the blocking pool.
fn local_file_stream(
    file: std::fs::File,
    range: Range<u64>,
) -> BoxStream<'static, Result<Bytes, StorageError>> {
    let file = Arc::new(file);
    futures::stream::try_unfold(range, move |range| {
        let file = Arc::clone(&file);
        async move {
            if range.start >= range.end {
                return Ok(None);
            }
            let want = (range.end - range.start).min(LOCAL_READ_SIZE) as usize;
            let offset = range.start;
            let chunk = tokio::task::spawn_blocking(move || read_exact_at(&file, offset, want))
                .await
                .map_err(|e| StorageError::Io(std::io::Error::other(e)))??;
            let next = range.start + chunk.len() as u64..range.end;
            Ok(Some((chunk, next)))
        }
    })
    .boxed()
}

fn read_exact_at(file: &std::fs::File, offset: u64, len: usize) -> Result<Bytes, StorageError> {
    use std::os::unix::fs::FileExt;
    let mut buf = bytes::BytesMut::zeroed(len);
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf.freeze())
}
