//! Probes of what a storage backend really does: honour conditional create (leases in storage
//! depend on it), accept writes (readiness: a storage that only reads cannot stash anything).
//!
//! Some S3-compatible services ignore `If-None-Match: *` and overwrite silently; object_store
//! cannot tell, so we try it: create one probe object twice and expect the second to be refused.

use bytes::Bytes;
use object_store::ObjectStoreExt;

use super::{Storage, StorageError, layout};

/// True when creating an existing object fails with "already exists" and leaves it unchanged.
///
/// `false` for a store that overwrites or does not implement conditional create. The probe
/// object (`.modstash/probe/{random}`) is deleted afterwards.
#[tracing::instrument(skip_all, fields(storage = %storage.url().redacted()))]
pub async fn probe_conditional_writes(storage: &Storage) -> Result<bool, StorageError> {
    let key = layout::internal_key(&["probe", &format!("{:032x}", rand::random::<u128>())]);
    let first = Bytes::from_static(b"first");
    let verdict = async {
        match storage.create(&key, first.clone()).await {
            Ok(true) => {}
            // A random key that "exists" already: the store's answers cannot be trusted.
            Ok(false) => return Ok(false),
            Err(StorageError::Backend(object_store::Error::NotImplemented { .. })) => {
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
        if storage.create(&key, Bytes::from_static(b"second")).await? {
            return Ok(false);
        }
        // Refused, but did it overwrite anyway?
        Ok(storage.read(&key).await?.as_ref() == Some(&first))
    }
    .await;
    match storage.object_store().delete(&key).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => tracing::warn!(key = %key, error = %e, "could not delete the probe object"),
    }
    let honoured = verdict?;
    if !honoured {
        tracing::warn!("storage does not honour conditional create");
    }
    Ok(honoured)
}

/// Writes one tiny object (`.modstash/ready`, overwritten each time, so probes never pile up):
/// fails when the storage is read-only, full or unreachable.
pub async fn probe_writable(storage: &Storage) -> Result<(), StorageError> {
    storage
        .put(
            &layout::internal_key(&["ready"]),
            Bytes::from_static(b"ok\n"),
        )
        .await
}
