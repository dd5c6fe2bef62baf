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
use crate::module::{
    ModulePath, ModuleVersion, ProxyRequest, Version, VersionRef, parse_proxy_path,
};
use crate::policy::{DownloadMode, RuleAction};
use crate::stash::StashError;
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
    let module = request.module_path().clone();
    tracing::Span::current().record("module", tracing::field::display(&module));
    let policy = app.policy.for_module(&module);
    if policy.action == RuleAction::Exclude {
        let why = policy
            .reason
            .as_deref()
            .unwrap_or("excluded by the proxy's policy");
        return Err(HttpError::Forbidden(format!("forbidden: {module}: {why}")));
    }
    let serve = Serve {
        app: &app,
        cond: Conditions {
            method: &method,
            headers: &headers,
        },
        mode: policy.mode,
    };
    let short = Freshness::Short(app.list_ttl);
    match request {
        ProxyRequest::List(path) => {
            let mut versions = match serve.mode {
                DownloadMode::None => stored_or_404(app.stasher.stored_list(&path).await?, &path)?,
                _ => app.stasher.list(&path).await?,
            };
            if app.policy.has_denials_for(&path) {
                versions.retain(|v| {
                    ModuleVersion::new(path.clone(), v.clone())
                        .is_ok_and(|mv| app.policy.denied(&mv).is_none())
                });
            }
            let body: String = versions.iter().map(|v| format!("{v}\n")).collect();
            bytes_response(
                &serve.cond,
                Bytes::from(body),
                content_type::TEXT,
                short,
                None,
            )
        }
        ProxyRequest::Latest(path) => {
            let info = serve.latest(&path).await?;
            bytes_response(&serve.cond, info, content_type::JSON, short, None)
        }
        ProxyRequest::Info(path, VersionRef::Canonical(version)) => {
            let mv = serve.allowed(ModuleVersion::new(path, version)?)?;
            serve.small(&mv, VersionFile::Info).await
        }
        ProxyRequest::Info(path, VersionRef::Query(query)) => {
            if serve.mode == DownloadMode::None {
                return Err(HttpError::NotStored(format!("{path}@{}", query.as_str())));
            }
            let mv = serve.allowed(app.stasher.resolve_query(&path, &query).await?)?;
            stored_small(&app, &serve.cond, &mv, VersionFile::Info, short).await
        }
        ProxyRequest::Mod(mv) => {
            let mv = serve.allowed(mv)?;
            serve.small(&mv, VersionFile::Mod).await
        }
        ProxyRequest::Zip(mv) => {
            let mv = serve.allowed(mv)?;
            serve.zip(&mv).await
        }
    }
}

fn stored_or_404(versions: Vec<Version>, path: &ModulePath) -> Result<Vec<Version>, HttpError> {
    if versions.is_empty() {
        return Err(HttpError::NotStored(path.to_string()));
    }
    Ok(versions)
}

/// One request's view: the app, the request's conditions and the module's download mode.
struct Serve<'a> {
    app: &'a AppState,
    cond: Conditions<'a>,
    mode: DownloadMode,
}

impl Serve<'_> {
    /// `mv`, unless the deny list names it.
    fn allowed(&self, mv: ModuleVersion) -> Result<ModuleVersion, HttpError> {
        match self.app.policy.denied(&mv) {
            Some(why) => Err(HttpError::Forbidden(why)),
            None => Ok(mv),
        }
    }

    /// `@latest`; a denied answer gives way to the highest allowed listed version.
    async fn latest(&self, path: &ModulePath) -> Result<Bytes, HttpError> {
        let stasher = &self.app.stasher;
        let info = match self.mode {
            DownloadMode::None => stasher
                .latest_stored(path)
                .await?
                .ok_or_else(|| HttpError::NotStored(path.to_string()))?,
            _ => stasher.latest(path).await?,
        };
        if !self.app.policy.has_denials_for(path) {
            return Ok(info);
        }
        let named = crate::stash::fetch::parse_info(&info)
            .ok()
            .and_then(|i| Version::parse(&i.version).ok())
            .and_then(|v| ModuleVersion::new(path.clone(), v).ok());
        match named {
            Some(mv) if self.app.policy.denied(&mv).is_some() => {}
            _ => return Ok(info),
        }
        let versions = match self.mode {
            DownloadMode::None => stasher.stored_list(path).await?,
            _ => stasher.list(path).await?,
        };
        let allowed = versions
            .into_iter()
            .filter_map(|v| ModuleVersion::new(path.clone(), v).ok())
            .filter(|mv| self.app.policy.denied(mv).is_none());
        let best = allowed
            .clone()
            .filter(|mv| !mv.version().is_prerelease())
            .max_by(|a, b| a.version().cmp(b.version()))
            .or_else(|| allowed.max_by(|a, b| a.version().cmp(b.version())));
        match best {
            Some(mv) => Ok(stasher.read_file(&mv, VersionFile::Info).await?),
            None => Err(HttpError::Forbidden(format!(
                "forbidden: {path}: every version is denied by the proxy's policy"
            ))),
        }
    }

    /// `.info` or `.mod` of a canonical version, as the download mode says.
    async fn small(&self, mv: &ModuleVersion, file: VersionFile) -> Result<Response, HttpError> {
        let app = self.app;
        if self.mode != DownloadMode::Sync && !app.stasher.is_stored(mv).await? {
            match self.mode {
                DownloadMode::None => return Err(HttpError::NotStored(mv.to_string())),
                DownloadMode::Redirect => {
                    if let Some(to) = self.upstream_location(mv, file) {
                        return Ok(redirect(&to));
                    }
                }
                DownloadMode::Async => {
                    app.stasher.ensure_in_background(mv);
                    let upstream = app.stasher.upstream();
                    let fetched = match file {
                        VersionFile::Mod => upstream.go_mod(mv).await,
                        _ => upstream.info(mv).await,
                    };
                    let bytes = fetched.map_err(|e| Arc::new(StashError::from(e)))?;
                    let content_type = match file {
                        VersionFile::Mod => content_type::TEXT,
                        _ => content_type::JSON,
                    };
                    // Not checked yet: clients may use it, caches in front must not keep it.
                    let short = Freshness::Short(app.list_ttl);
                    return bytes_response(&self.cond, bytes, content_type, short, None);
                }
                DownloadMode::Sync => {}
            }
        }
        stored_small(app, &self.cond, mv, file, Freshness::Immutable).await
    }

    /// The zip, as the download mode says.
    async fn zip(&self, mv: &ModuleVersion) -> Result<Response, HttpError> {
        let app = self.app;
        if self.mode == DownloadMode::Sync {
            return stored_zip(app, &self.cond, mv).await;
        }
        let stored = app.stasher.is_stored(mv).await?;
        match self.mode {
            DownloadMode::None if !stored => Err(HttpError::NotStored(mv.to_string())),
            DownloadMode::Redirect if stored => {
                let key = crate::storage::layout::version_key(mv, VersionFile::Zip);
                match app
                    .stasher
                    .storage()
                    .presigned_get(&key, PRESIGNED_FOR)
                    .await
                {
                    Some(url) => Ok(redirect(url.as_str())),
                    None => stored_zip(app, &self.cond, mv).await,
                }
            }
            DownloadMode::Redirect => match self.upstream_location(mv, VersionFile::Zip) {
                Some(to) => Ok(redirect(&to)),
                None => stored_zip(app, &self.cond, mv).await,
            },
            DownloadMode::Async if !stored => {
                app.stasher.ensure_in_background(mv);
                let body = app
                    .stasher
                    .upstream()
                    .zip(mv)
                    .await
                    .map_err(|e| Arc::new(StashError::from(e)))?;
                Ok(passthrough_zip(body))
            }
            _ => stored_zip(app, &self.cond, mv).await,
        }
    }

    fn upstream_location(&self, mv: &ModuleVersion, file: VersionFile) -> Option<String> {
        let rel = format!(
            "{}/@v/{}.{}",
            mv.path().escaped(),
            mv.version().escaped(),
            file.extension()
        );
        self.app.stasher.upstream().redirect_url(mv.path(), &rel)
    }
}

/// How long a presigned storage URL stays valid: long enough for a slow download to start.
const PRESIGNED_FOR: std::time::Duration = std::time::Duration::from_secs(600);

fn redirect(to: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = axum::http::StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Upstream's zip streamed straight through (download mode `async`).
fn passthrough_zip(body: crate::upstream::ZipBody) -> Response {
    let length = body.content_length;
    let stream = body.stream.map(|chunk| {
        chunk.map_err(|e| {
            tracing::warn!(error = %e, "upstream zip failed mid-stream");
            std::io::Error::other(e.to_string())
        })
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type::ZIP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(n) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    response
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
