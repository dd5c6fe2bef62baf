//! The one mapping from errors to HTTP statuses.
//!
//! The go command treats only 200 as success, falls through to the next GOPROXY entry on 404/410
//! and aborts on anything else. So whatever we do not have or cannot resolve, including malformed
//! paths, is 404 with a one-line plain-text reason; 5xx is only for our own or upstream failure.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::module::ModuleError;
use crate::stash::StashError;
use crate::stash::lease::LeaseError;
use crate::storage::StorageError;
use crate::upstream::UpstreamError;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The path is not a valid GOPROXY request.
    #[error("not found: {0}")]
    BadPath(#[from] ModuleError),
    /// The stasher failed.
    #[error(transparent)]
    Stash(#[from] Arc<StashError>),
    /// Reading storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The requested byte range is outside the file.
    #[error("requested range not satisfiable")]
    RangeNotSatisfiable(u64),
    /// The method is not GET or HEAD.
    #[error("method not allowed: only GET and HEAD")]
    MethodNotAllowed,
}

impl HttpError {
    fn status(&self) -> StatusCode {
        match self {
            HttpError::BadPath(_) => StatusCode::NOT_FOUND,
            HttpError::Stash(e) => stash_status(e),
            HttpError::Storage(e) => storage_status(e),
            HttpError::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            HttpError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// The body shown to the client: specific for 4xx and upstream failures (the go command prints
    /// it), generic for our own failures, whose details go to the log once.
    fn public_message(&self) -> String {
        match self {
            HttpError::Stash(e) => match e.as_ref() {
                StashError::Storage(s) => storage_message(s),
                StashError::Lease(_) => "lease backend unavailable".into(),
                StashError::Aborted => "internal error".into(),
                StashError::NotFound(_)
                | StashError::Upstream(_)
                | StashError::InvalidUpstream(_) => self.to_string(),
            },
            HttpError::Storage(s) => storage_message(s),
            HttpError::BadPath(_)
            | HttpError::RangeNotSatisfiable(_)
            | HttpError::MethodNotAllowed => self.to_string(),
        }
    }
}

fn stash_status(e: &StashError) -> StatusCode {
    match e {
        StashError::NotFound(_) => StatusCode::NOT_FOUND,
        StashError::Upstream(u) => upstream_status(u),
        StashError::InvalidUpstream(_) => StatusCode::BAD_GATEWAY,
        StashError::Storage(s) => storage_status(s),
        StashError::Lease(LeaseError::Lost(_)) => StatusCode::SERVICE_UNAVAILABLE,
        StashError::Lease(LeaseError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
        StashError::Aborted => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn upstream_status(e: &UpstreamError) -> StatusCode {
    match e {
        UpstreamError::NotFound(_) | UpstreamError::Off => StatusCode::NOT_FOUND,
        UpstreamError::Transport { timeout: true, .. } => StatusCode::GATEWAY_TIMEOUT,
        UpstreamError::Transport { timeout: false, .. }
        | UpstreamError::Status { .. }
        | UpstreamError::TooLarge { .. } => StatusCode::BAD_GATEWAY,
    }
}

/// Generic (no keys or paths), but naming the condition an operator must fix when one is known.
fn storage_message(e: &StorageError) -> String {
    match e.io_kind().and_then(io_condition) {
        Some(condition) => format!("storage unavailable: storage {condition}"),
        None => "storage unavailable".into(),
    }
}

/// The storage conditions worth telling a client or a probe about, as `storage {condition}`.
pub(super) fn io_condition(kind: std::io::ErrorKind) -> Option<&'static str> {
    use std::io::ErrorKind;
    match kind {
        ErrorKind::StorageFull => Some("is full"),
        ErrorKind::QuotaExceeded => Some("is over its quota"),
        ErrorKind::ReadOnlyFilesystem => Some("is read-only"),
        ErrorKind::PermissionDenied => Some("denies access"),
        _ => None,
    }
}

fn storage_status(e: &StorageError) -> StatusCode {
    match e {
        StorageError::Backend(_) | StorageError::Io(_) | StorageError::Open { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        StorageError::Corrupt { .. } | StorageError::Missing { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, status = status.as_u16(), "request failed");
        } else {
            tracing::debug!(error = %self, status = status.as_u16(), "request refused");
        }
        let mut response = plain_text(status, &self.public_message());
        if let HttpError::RangeNotSatisfiable(size) = self
            && let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}"))
        {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        response
    }
}

/// A one-line `text/plain` answer (the go command shows up to 8 lines of such bodies).
pub fn plain_text(status: StatusCode, message: &str) -> Response {
    let line: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect();
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        format!("{line}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local_failure(kind: std::io::ErrorKind) -> StorageError {
        // The shape object_store's local backend gives: Generic { source: local error { source: io } }.
        #[derive(Debug, thiserror::Error)]
        #[error("unable to copy data to file: {source}")]
        struct LocalError {
            source: std::io::Error,
        }
        StorageError::Backend(object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(LocalError {
                source: std::io::Error::from(kind),
            }),
        })
    }

    #[test]
    fn storage_failures_name_a_full_or_read_only_storage_and_nothing_else() {
        use std::io::ErrorKind;
        for (kind, message) in [
            (
                ErrorKind::StorageFull,
                "storage unavailable: storage is full",
            ),
            (
                ErrorKind::ReadOnlyFilesystem,
                "storage unavailable: storage is read-only",
            ),
            (ErrorKind::ConnectionRefused, "storage unavailable"),
        ] {
            let e = HttpError::Storage(local_failure(kind));
            assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(e.public_message(), message);
        }
        let stash = HttpError::Stash(Arc::new(StashError::Storage(local_failure(
            ErrorKind::StorageFull,
        ))));
        assert_eq!(
            stash.public_message(),
            "storage unavailable: storage is full"
        );
    }
}
