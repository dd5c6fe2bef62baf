//! The GOPROXY endpoints: parse the path, ask the stasher, answer from storage.

use std::ops::Range;

use axum::body::Body;
use axum::extract::State;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;

use super::AppState;
use super::error::HttpError;
use super::respond::{
    Conditions, Freshness, RangeSource, bytes_response, content_type, etag_of, stream_response,
};
use crate::module::{ModuleVersion, ProxyRequest, VersionRef, parse_proxy_path};
use crate::stash::live::{LiveZip, follow};
use crate::stash::{Stasher, ZipSource};
use crate::storage::VersionFile;

/// Every path that is not one of our own endpoints is a GOPROXY request.
pub async fn handle(
    State(app): State<AppState>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, HttpError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(HttpError::MethodNotAllowed);
    }
    let request = parse_proxy_path(uri.path())?;
    tracing::Span::current().record("module", tracing::field::display(request.module_path()));
    let cond = Conditions {
        method: &method,
        headers: &headers,
    };
    let short = Freshness::Short(app.list_ttl);
    match request {
        ProxyRequest::List(path) => {
            let versions = app.stasher.list(&path).await?;
            let body: String = versions.iter().map(|v| format!("{v}\n")).collect();
            bytes_response(&cond, Bytes::from(body), content_type::TEXT, short, None)
        }
        ProxyRequest::Latest(path) => {
            let info = app.stasher.latest(&path).await?;
            bytes_response(&cond, info, content_type::JSON, short, None)
        }
        ProxyRequest::Info(path, VersionRef::Canonical(version)) => {
            let mv = ModuleVersion::new(path, version)?;
            stored_small(&app, &cond, &mv, VersionFile::Info, Freshness::Immutable).await
        }
        ProxyRequest::Info(path, VersionRef::Query(query)) => {
            let mv = app.stasher.resolve(&path, &query).await?;
            stored_small(&app, &cond, &mv, VersionFile::Info, short).await
        }
        ProxyRequest::Mod(mv) => {
            stored_small(&app, &cond, &mv, VersionFile::Mod, Freshness::Immutable).await
        }
        ProxyRequest::Zip(mv) => stored_zip(&app, &cond, &mv).await,
    }
}

async fn stored_small(
    app: &AppState,
    cond: &Conditions<'_>,
    mv: &ModuleVersion,
    file: VersionFile,
    freshness: Freshness,
) -> Result<Response, HttpError> {
    let bytes = app.stasher.read_file(mv, file).await?;
    let content_type = match file {
        VersionFile::Info => content_type::JSON,
        _ => content_type::TEXT,
    };
    bytes_response(
        cond,
        bytes,
        content_type,
        freshness,
        Some(immutable_etag(mv, file)),
    )
}

async fn stored_zip(
    app: &AppState,
    cond: &Conditions<'_>,
    mv: &ModuleVersion,
) -> Result<Response, HttpError> {
    let etag = immutable_etag(mv, VersionFile::Zip);
    // A plain GET may follow a download in progress; HEAD and Range need the stored size.
    let plain_get = cond.method == Method::GET && !cond.headers.contains_key(header::RANGE);
    if plain_get {
        if let ZipSource::Live(live) = app.stasher.zip(mv).await? {
            return Ok(live_response(live, etag));
        }
    } else {
        app.stasher.ensure(mv).await?;
    }
    let size = app.stasher.zip_size(mv).await?;
    let source = StoredZip {
        stasher: app.stasher.clone(),
        module_version: mv.clone(),
    };
    stream_response(
        cond,
        size,
        source,
        content_type::ZIP,
        Freshness::Immutable,
        etag,
    )
    .await
}

fn live_response(live: Arc<LiveZip>, etag: String) -> Response {
    let length = live.content_length;
    let mut response = Response::new(Body::from_stream(follow(live)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type::ZIP),
    );
    // This answer is live, but a range request that follows is served from storage.
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(Freshness::IMMUTABLE_HEADER),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    if let Some(n) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    response
}

/// A canonical version's file never changes, so its name is a stable validator on every replica.
fn immutable_etag(mv: &ModuleVersion, file: VersionFile) -> String {
    etag_of(format!("{mv}.{}", file.extension()).as_bytes())
}

struct StoredZip {
    stasher: Stasher,
    module_version: ModuleVersion,
}

impl RangeSource for StoredZip {
    async fn body(self, range: Range<u64>) -> Result<Body, HttpError> {
        let stream = self
            .stasher
            .stored_zip_range(&self.module_version, range)
            .await?;
        Ok(Body::from_stream(stream.map(|chunk| {
            chunk.inspect_err(|e| tracing::error!(error = %e, "stored zip read failed mid-stream"))
        })))
    }
}
