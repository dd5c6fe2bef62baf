//! The one mapping from errors to HTTP statuses.
//!
//! The go command treats only 200 as success, falls through to the next GOPROXY entry on 404/410
//! and aborts on anything else. So whatever we do not have or cannot resolve, including malformed
//! paths, is 404 with a one-line plain-text reason; 5xx is only for our own or upstream failure.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::AuthError;
use crate::module::ModuleError;
use crate::stash::StashError;
use crate::stash::lease::LeaseError;
use crate::storage::StorageError;
use crate::sumdb::SumdbError;
use crate::upstream::UpstreamError;

/// A response extension marking an answer that failed because storage did (counted by metrics).
#[derive(Debug, Clone, Copy)]
pub struct StorageFailure;

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
    /// The policy refuses this module or version (the message says why).
    #[error("{0}")]
    Forbidden(String),
    /// Download mode `none`: storage does not hold it and nothing is fetched.
    #[error("not found: {0}: not in storage (download mode none)")]
    NotStored(String),
    /// Authentication is on and the request has no valid credentials.
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    /// The checksum-database proxy refused or failed.
    #[error(transparent)]
    Sumdb(#[from] Arc<SumdbError>),
}

impl HttpError {
    fn status(&self) -> StatusCode {
        match self {
            HttpError::BadPath(_) => StatusCode::NOT_FOUND,
            HttpError::Stash(e) => stash_status(e),
            HttpError::Storage(e) => storage_status(e),
            HttpError::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            HttpError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::Forbidden(_) => StatusCode::FORBIDDEN,
            HttpError::NotStored(_) => StatusCode::NOT_FOUND,
            HttpError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            HttpError::Sumdb(e) => sumdb_status(e),
        }
    }

    fn is_storage_failure(&self) -> bool {
        match self {
            HttpError::Storage(_) => true,
            HttpError::Stash(e) => matches!(e.as_ref(), StashError::Storage(_)),
            HttpError::Sumdb(e) => matches!(e.as_ref(), SumdbError::Storage(_)),
            _ => false,
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
            HttpError::Sumdb(e) => match e.as_ref() {
                SumdbError::Storage(s) => storage_message(s),
                _ => self.to_string(),
            },
            HttpError::Unauthorized(_) => self.to_string(),
            HttpError::BadPath(_)
            | HttpError::RangeNotSatisfiable(_)
            | HttpError::MethodNotAllowed
            | HttpError::Forbidden(_)
            | HttpError::NotStored(_) => self.to_string(),
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

fn sumdb_status(e: &SumdbError) -> StatusCode {
    match e {
        // The go command goes no further on 404: a private module is never looked up.
        SumdbError::NotAllowed(_) | SumdbError::Private(_) | SumdbError::BadPath(_) => {
            StatusCode::NOT_FOUND
        }
        SumdbError::Upstream(u) => upstream_status(u),
        SumdbError::Storage(s) => storage_status(s),
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
        if self.is_storage_failure() {
            response.extensions_mut().insert(StorageFailure);
        }
        if let HttpError::Unauthorized(_) = self {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"modstash\""),
            );
        }
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
