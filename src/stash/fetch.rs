//! The leader's fetch: `.info`, `.mod` and `.zip` concurrently and fail-fast, checked, ready to commit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use super::error::StashError;
use super::live::{LiveSlot, LiveZip, SpoolState};
use crate::module::{ModuleVersion, ZipLimits, check_zip_file};
use crate::storage::{StagedVersion, StorageError};
use crate::upstream::UpstreamClient;

/// The fields of `.info` we rely on.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InfoFields {
    /// The canonical version.
    pub version: String,
    /// The commit time (RFC 3339).
    pub time: Option<String>,
}

/// Parses `.info` JSON and checks it has a `Version` and an RFC 3339 `Time`.
pub fn parse_info(bytes: &[u8]) -> Result<InfoFields, StashError> {
    let info: InfoFields = serde_json::from_slice(bytes)
        .map_err(|e| StashError::InvalidUpstream(format!(".info is not valid JSON: {e}")))?;
    match &info.time {
        Some(t) if looks_like_rfc3339(t) => Ok(info),
        Some(t) => Err(StashError::InvalidUpstream(format!(
            ".info has an invalid Time {t:?}"
        ))),
        None => Err(StashError::InvalidUpstream(".info has no Time".into())),
    }
}

fn looks_like_rfc3339(t: &str) -> bool {
    // A cheap structural check of RFC 3339 (`2006-01-02T15:04:05Z` or with offset/fraction).
    let b = t.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't')
        && b[13] == b':'
        && b[16] == b':'
        && b[..4].iter().all(u8::is_ascii_digit)
}

/// How often a long zip download logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// A zip spooled to a local temporary file; the file is deleted when this and every follower
/// are dropped. Dropping it without [`SpooledZip::accept`] tells followers the zip failed.
pub struct SpooledZip {
    file: Arc<tempfile::TempPath>,
    progress: watch::Sender<SpoolState>,
    /// Bytes written.
    pub size: u64,
}

impl SpooledZip {
    /// Where the zip is.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// The zip passed its checks and is committed: followers may send the last byte.
    pub fn accept(&self) {
        self.progress.send_modify(|s| s.verdict = Some(true));
    }
}

/// Fetches and checks the three files of `mv`. The first failure cancels the other downloads
/// (dropping their futures aborts the HTTP requests) and nothing is returned to commit.
#[tracing::instrument(skip_all, fields(module_version = %mv))]
pub async fn fetch_version(
    upstream: &UpstreamClient,
    mv: &ModuleVersion,
    spool_dir: &Path,
    limits: &ZipLimits,
    live: &LiveSlot,
) -> Result<(StagedVersion, SpooledZip), StashError> {
    // Followers see the zip only once `.info` and `.mod` arrived: a version whose metadata
    // fails is then a clean 502 for everyone, not a transfer broken halfway.
    let (metadata_ok, metadata_ok_rx) = watch::channel(false);
    let metadata = async {
        let both = tokio::try_join!(fetch_info(upstream, mv), async {
            Ok::<_, StashError>(upstream.go_mod(mv).await?)
        })?;
        metadata_ok.send_replace(true);
        Ok::<_, StashError>(both)
    };
    let ((info, go_mod), zip) = tokio::try_join!(
        metadata,
        spool_zip(
            upstream,
            mv,
            spool_dir,
            limits.max_zip_size,
            live,
            metadata_ok_rx
        ),
    )?;

    let zip_path: PathBuf = zip.path().to_owned();
    let check_mv = mv.clone();
    let zip_limits = limits.clone();
    let summary =
        tokio::task::spawn_blocking(move || check_zip_file(&zip_path, &check_mv, &zip_limits))
            .await
            .map_err(|_| StashError::Aborted)?
            .map_err(|e| StashError::InvalidUpstream(format!("{mv}: {e}")))?;
    if let Some(zip_go_mod) = &summary.go_mod
        && zip_go_mod.as_slice() != go_mod.as_ref()
    {
        return Err(StashError::InvalidUpstream(format!(
            "{mv}: .mod differs from the go.mod inside the zip"
        )));
    }
    tracing::debug!(size = zip.size, files = summary.files, h1 = %summary.h1, "fetched and checked");
    let staged = StagedVersion {
        module_version: mv.clone(),
        info,
        go_mod,
        zip_file: zip.path().to_owned(),
        zip_hash: summary.h1,
    };
    Ok((staged, zip))
}

async fn fetch_info(upstream: &UpstreamClient, mv: &ModuleVersion) -> Result<Bytes, StashError> {
    let bytes = upstream.info(mv).await?;
    let info = parse_info(&bytes)?;
    if info.version != mv.version().as_str() {
        return Err(StashError::InvalidUpstream(format!(
            "{mv}: .info names version {:?}",
            info.version
        )));
    }
    Ok(bytes)
}

async fn spool_zip(
    upstream: &UpstreamClient,
    mv: &ModuleVersion,
    spool_dir: &Path,
    max_size: u64,
    live: &LiveSlot,
    mut metadata_ok: watch::Receiver<bool>,
) -> Result<SpooledZip, StashError> {
    let mut body = upstream.zip(mv).await?;
    if body.content_length.is_some_and(|n| n > max_size) {
        return Err(StashError::InvalidUpstream(format!(
            "{mv}: zip is larger than {max_size} bytes"
        )));
    }
    let (file, path) = tempfile::Builder::new()
        .prefix(".modstash-spool-")
        .suffix(".zip")
        .tempfile_in(spool_dir)
        .map_err(StorageError::from)?
        .into_parts();
    let path = Arc::new(path);
    let (progress, state) = watch::channel(SpoolState::default());
    let mut announcement = Some(Arc::new(LiveZip {
        file: Arc::clone(&path),
        content_length: body.content_length,
        state,
    }));
    let mut file = tokio::fs::File::from_std(file);
    let mut size: u64 = 0;
    let started = Instant::now();
    let mut reported = started;
    loop {
        if *metadata_ok.borrow()
            && let Some(zip) = announcement.take()
        {
            live.publish(zip);
        }
        let chunk = tokio::select! {
            chunk = body.stream.next() => chunk,
            changed = metadata_ok.changed(), if announcement.is_some() => {
                if changed.is_err() {
                    // The metadata side ended without success; try_join is cancelling us.
                    std::future::pending::<()>().await;
                }
                continue;
            }
        };
        let Some(chunk) = chunk else {
            break;
        };
        let chunk = chunk?;
        size += chunk.len() as u64;
        if size > max_size {
            return Err(StashError::InvalidUpstream(format!(
                "{mv}: zip is larger than {max_size} bytes"
            )));
        }
        file.write_all(&chunk).await.map_err(StorageError::from)?;
        // Followers read the file through their own handle: publish only flushed bytes.
        file.flush().await.map_err(StorageError::from)?;
        progress.send_modify(|s| s.written = size);
        if reported.elapsed() >= PROGRESS_EVERY {
            reported = Instant::now();
            let secs = started.elapsed().as_secs_f64().max(0.001);
            tracing::info!(
                bytes = size,
                total = ?body.content_length,
                bytes_per_sec = (size as f64 / secs) as u64,
                url = %body.url,
                "zip download in progress"
            );
        }
    }
    if let Some(expected) = body.content_length
        && expected != size
    {
        return Err(StashError::InvalidUpstream(format!(
            "{mv}: zip body has {size} bytes, Content-Length said {expected}"
        )));
    }
    Ok(SpooledZip {
        file: path,
        progress,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_needs_version_and_time() {
        assert!(parse_info(br#"{"Version":"v1.0.0","Time":"2024-01-02T15:04:05Z"}"#).is_ok());
        assert!(parse_info(br#"{"Version":"v1.0.0"}"#).is_err());
        assert!(parse_info(br#"{"Version":"v1.0.0","Time":"yesterday"}"#).is_err());
        assert!(parse_info(b"not json").is_err());
    }
}
