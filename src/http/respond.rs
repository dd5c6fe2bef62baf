//! Responses for protocol files: content types, caching, ETag/304, byte ranges and HEAD.

use std::ops::Range;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::error::HttpError;

/// How long clients and caches may keep an answer.
#[derive(Debug, Clone, Copy)]
pub enum Freshness {
    /// A canonical version's file: it never changes.
    Immutable,
    /// `list`, `@latest`, resolved queries: change upstream, cached briefly.
    Short(std::time::Duration),
}

impl Freshness {
    /// `Cache-Control` of immutable files.
    pub const IMMUTABLE_HEADER: &'static str = "public, max-age=31536000, immutable";

    fn header(self) -> String {
        match self {
            Freshness::Immutable => Self::IMMUTABLE_HEADER.into(),
            Freshness::Short(d) => format!("public, max-age={}", d.as_secs()),
        }
    }
}

/// Content types of the protocol's files.
pub mod content_type {
    /// `.info` and `@latest`.
    pub const JSON: &str = "application/json";
    /// `list` and `.mod`.
    pub const TEXT: &str = "text/plain; charset=utf-8";
    /// `.zip`.
    pub const ZIP: &str = "application/zip";
}

/// A strong ETag from some identity bytes (content, or a module@version file name for immutable files).
pub fn etag_of(identity: &[u8]) -> String {
    let digest = Sha256::digest(identity);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// What the client asked about the representation.
pub struct Conditions<'a> {
    /// GET or HEAD.
    pub method: &'a Method,
    /// Request headers.
    pub headers: &'a HeaderMap,
}

impl Conditions<'_> {
    fn not_modified(&self, etag: &str) -> bool {
        self.headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag)
    }

    /// The single byte range asked for, if any and if `If-Range` (when present) still matches.
    fn range(&self, size: u64, etag: &str) -> Result<Option<Range<u64>>, HttpError> {
        let Some(value) = self
            .headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
        else {
            return Ok(None);
        };
        if let Some(if_range) = self.headers.get(header::IF_RANGE)
            && if_range.to_str().ok().map(str::trim) != Some(etag)
        {
            return Ok(None);
        }
        let Ok(parsed) = http_range_header::parse_range_header(value) else {
            // A range we cannot parse is ignored, as RFC 9110 allows: the whole file follows.
            return Ok(None);
        };
        let ranges = parsed
            .validate(size)
            .map_err(|_| HttpError::RangeNotSatisfiable(size))?;
        match ranges.as_slice() {
            [one] => Ok(Some(*one.start()..one.end() + 1)),
            // Several ranges would need multipart/byteranges; the whole file is a valid answer.
            _ => Ok(None),
        }
    }
}

/// Source of a large body: fetches a byte range as a stream.
pub trait RangeSource {
    /// A body for `range` of the object.
    fn body(
        self,
        range: Range<u64>,
    ) -> impl std::future::Future<Output = Result<Body, HttpError>> + Send;
}

/// Answers with an in-memory body.
pub fn bytes_response(
    cond: &Conditions<'_>,
    bytes: Bytes,
    content_type: &'static str,
    freshness: Freshness,
    etag: Option<String>,
) -> Result<Response, HttpError> {
    let etag = etag.unwrap_or_else(|| etag_of(&bytes));
    let size = bytes.len() as u64;
    let (status, range) = match precheck(cond, &etag) {
        Some(early) => return Ok(finish(early, content_type, freshness, &etag)),
        None => range_or_all(cond, size, &etag)?,
    };
    let body = if cond.method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(bytes.slice(range.start as usize..range.end as usize))
    };
    Ok(finish(
        with_length(status, body, &range, size),
        content_type,
        freshness,
        &etag,
    ))
}

/// Answers with a body streamed from `source`, of `size` bytes in all.
pub async fn stream_response(
    cond: &Conditions<'_>,
    size: u64,
    source: impl RangeSource,
    content_type: &'static str,
    freshness: Freshness,
    etag: String,
) -> Result<Response, HttpError> {
    let (status, range) = match precheck(cond, &etag) {
        Some(early) => return Ok(finish(early, content_type, freshness, &etag)),
        None => range_or_all(cond, size, &etag)?,
    };
    let body = if cond.method == Method::HEAD || range.is_empty() {
        Body::empty()
    } else {
        source.body(range.clone()).await?
    };
    Ok(finish(
        with_length(status, body, &range, size),
        content_type,
        freshness,
        &etag,
    ))
}

/// `304` when the client already has this representation.
fn precheck(cond: &Conditions<'_>, etag: &str) -> Option<Response> {
    cond.not_modified(etag)
        .then(|| StatusCode::NOT_MODIFIED.into_response())
}

fn range_or_all(
    cond: &Conditions<'_>,
    size: u64,
    etag: &str,
) -> Result<(StatusCode, Range<u64>), HttpError> {
    Ok(match cond.range(size, etag)? {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r),
        None => (StatusCode::OK, 0..size),
    })
}

fn with_length(status: StatusCode, body: Body, range: &Range<u64>, size: u64) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(range.end - range.start),
    );
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{size}",
            range.start,
            range.end.saturating_sub(1)
        ))
    {
        headers.insert(header::CONTENT_RANGE, v);
    }
    response
}

fn finish(
    mut response: Response,
    content_type: &'static str,
    freshness: Freshness,
    etag: &str,
) -> Response {
    let modified = response.status() != StatusCode::NOT_MODIFIED;
    let headers = response.headers_mut();
    if modified {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    if let Ok(v) = HeaderValue::from_str(&freshness.header()) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    if let Ok(v) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, v);
    }
    response
}
