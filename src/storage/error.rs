//! Errors of the storage layer.

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The backend (filesystem, S3, ...) failed.
    #[error("storage backend: {0}")]
    Backend(#[from] object_store::Error),
    /// Local spool or file I/O failed.
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A stored object is not what the commit protocol promises.
    #[error("stored object {key} is corrupt: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A committed version lacks one of its files (removed behind the server's back, or damage).
    #[error("stored {key} is missing although its version is committed")]
    Missing {
        /// The file, as `module@version.ext`.
        key: String,
    },
    /// The storage URL cannot be opened.
    #[error("cannot open storage {url}: {reason}")]
    Open {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

impl StorageError {
    /// The operating-system condition behind the failure, if an I/O error caused it (a full or
    /// read-only filesystem, a permission): what an operator needs to know to fix it.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                return Some(io.kind());
            }
            source = e.source();
        }
        None
    }
}
