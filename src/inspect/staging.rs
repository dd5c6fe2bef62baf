//! object_store's local staging files (`{file}#{n}`): a write in progress, or left by a crash.
//!
//! `LocalFileSystem` writes every object to `{file}#{n}` and renames it into place; its `list`
//! hides such names, so they are found by walking the directory itself. Other backends have no
//! visible staging objects (an unfinished S3 multipart upload is not an object).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::storage::StorageUrl;
use crate::storage::layout::INTERNAL_PREFIX;

use super::InspectError;

/// A staging file found in a local storage directory.
#[derive(Debug, Clone)]
pub struct StagingFile {
    /// The file on disk.
    pub file: PathBuf,
    /// Its name relative to the storage root, with `/` separators (like a key).
    pub key: String,
    /// Time since it was last written.
    pub age: Duration,
}

/// True for object_store's staging names: `#` followed by digits only at the end.
pub fn is_staging_name(name: &str) -> bool {
    match name.rsplit_once('#') {
        Some((_, suffix)) => !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// Staging files under a `file://` storage (none for other backends), `.modstash/` excepted.
pub async fn find(url: &StorageUrl) -> Result<Vec<StagingFile>, InspectError> {
    let StorageUrl::File(root) = url else {
        return Ok(Vec::new());
    };
    let root = root.clone();
    tokio::task::spawn_blocking(move || {
        let mut found = Vec::new();
        walk(&root, &root, &mut found)?;
        found.sort_by(|a: &StagingFile, b| a.key.cmp(&b.key));
        Ok(found)
    })
    .await
    .map_err(|e| InspectError::Task(e.to_string()))?
}

fn walk(root: &Path, dir: &Path, found: &mut Vec<StagingFile>) -> Result<(), InspectError> {
    let now = SystemTime::now();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_type = entry.file_type()?;
        let path = entry.path();
        if dir == root && entry.file_name() == INTERNAL_PREFIX {
            continue;
        }
        if file_type.is_dir() {
            walk(root, &path, found)?;
        } else if file_type.is_file() && is_staging_name(&entry.file_name().to_string_lossy()) {
            let modified = entry.metadata()?.modified()?;
            let key = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            found.push(StagingFile {
                file: path,
                key,
                age: now.duration_since(modified).unwrap_or_default(),
            });
        }
    }
    Ok(())
}

/// Deletes a staging file; one already gone (renamed into place or cleaned up) is fine.
pub async fn delete(file: &StagingFile) -> Result<(), InspectError> {
    match tokio::fs::remove_file(&file.file).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names_are_object_stores() {
        assert!(is_staging_name("v1.0.0.zip#3"));
        assert!(is_staging_name("list#12"));
        assert!(!is_staging_name("v1.0.0.zip"));
        assert!(!is_staging_name("v1.0.0.zip#"));
        assert!(!is_staging_name("a#b"));
    }
}
