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
                StashError::Storage(_) => "storage unavailable".into(),
                StashError::Lease(_) => "lease backend unavailable".into(),
                StashError::Aborted => "internal error".into(),
                StashError::NotFound(_)
                | StashError::Upstream(_)
                | StashError::InvalidUpstream(_) => self.to_string(),
            },
            HttpError::Storage(_) => "storage unavailable".into(),
            HttpError::Sumdb(e) if matches!(e.as_ref(), SumdbError::Storage(_)) => {
                "storage unavailable".into()
            }
            HttpError::Sumdb(_) | HttpError::Unauthorized(_) => self.to_string(),
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
