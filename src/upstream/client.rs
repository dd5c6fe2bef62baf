//! The GOPROXY HTTP client: walks the upstream chain with the go command's fallthrough rules.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::credentials::Credentials;
use super::direct::{DirectFetcher, DirectOptions};
use super::error::{UpstreamError, reason_line};
use super::spec::{Fallthrough, ProxyEntry, UpstreamSpec};
use crate::config::Settings;
use crate::module::{ModulePath, ModulePatterns, ModuleVersion, Version, VersionQuery};

/// Largest `.info`/`@latest` answer accepted.
const MAX_INFO: u64 = 1 << 20;
/// Largest `@v/list` answer accepted.
const MAX_LIST: u64 = 16 << 20;
/// Largest go.mod accepted (golang.org/x/mod/zip's limit).
pub const MAX_GO_MOD: u64 = 16 << 20;
/// Least a zip body must deliver per read-timeout window: a drip of bytes, each arriving within
/// the read timeout, would otherwise hold a fetch (and its waiting clients) forever.
const MIN_BYTES_PER_WINDOW: u64 = 64 * 1024;

/// A zip body streaming from upstream; holds an upstream-concurrency permit until dropped.
pub struct ZipBody {
    /// The bytes as they arrive.
    pub stream: BoxStream<'static, Result<Bytes, UpstreamError>>,
    /// `Content-Length`, when upstream sent one.
    pub content_length: Option<u64>,
    /// The URL the zip came from (redacted), for logs.
    pub url: String,
    /// An upstream-concurrency permit, released when the body is dropped.
    _permit: Option<OwnedSemaphorePermit>,
}

/// Client for the configured upstream chain.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    spec: UpstreamSpec,
    http: reqwest::Client,
    permits: Arc<Semaphore>,
    metadata_timeout: Duration,
    /// The go command, when the chain ends in `direct` or some modules always go direct.
    direct: Option<DirectFetcher>,
    /// Modules that skip the proxies and go direct (private patterns and `direct` rules).
    always_direct: ModulePatterns,
    credentials: Arc<Credentials>,
    read_timeout: Duration,
}

/// Where one module is fetched from.
enum Route<'a> {
    /// Only by the go command.
    Direct(&'a DirectFetcher),
    /// The proxy chain, then (as its end allows) the go command.
    Proxies(Option<&'a DirectFetcher>),
}

impl UpstreamClient {
    /// Builds the client: bounded pool, timeouts, and a user agent naming modstash.
    pub fn new(settings: &Settings) -> Result<UpstreamClient, UpstreamError> {
        let always_direct = settings.always_direct();
        let direct = (settings.upstream.ends_in_direct() || !always_direct.is_empty()).then(|| {
            DirectFetcher::new(DirectOptions {
                go_binary: settings.go_binary.clone(),
                concurrency: settings.direct_concurrency,
                timeout: settings.direct_timeout,
                private: settings.private.clone(),
                env: settings.direct_env.clone(),
            })
        });
        let http = reqwest::Client::builder()
            .user_agent(concat!("modstash/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.upstream_connect_timeout)
            .read_timeout(settings.upstream_read_timeout)
            .pool_max_idle_per_host(settings.upstream_concurrency)
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| UpstreamError::Transport {
                url: String::new(),
                message: format!("cannot build HTTP client: {e}"),
                timeout: false,
            })?;
        Ok(UpstreamClient {
            spec: settings.upstream.clone(),
            http,
            permits: Arc::new(Semaphore::new(settings.upstream_concurrency)),
            metadata_timeout: settings.upstream_timeout,
            direct,
            always_direct,
            credentials: Arc::new(Credentials::default()),
            read_timeout: settings.upstream_read_timeout,
        })
    }

    /// Sends `credentials` (tokens, netrc logins) to the hosts they name.
    pub fn with_credentials(mut self, credentials: Arc<Credentials>) -> UpstreamClient {
        self.credentials = credentials;
        self
    }

    /// GETs `rel` below one base URL rather than the chain (the checksum-database proxy's
    /// upstream), with the same credentials, limits and timeouts as metadata requests.
    pub async fn get_from(
        &self,
        base: &url::Url,
        rel: &str,
        limit: u64,
    ) -> Result<Bytes, UpstreamError> {
        let entry = ProxyEntry {
            url: base.clone(),
            fallthrough: Fallthrough::OnNotFound,
        };
        let (response, url, _permit) = self
            .get_one(&entry, rel, Some(self.metadata_timeout))
            .await?;
        read_limited(response, url, limit).await
    }

    /// True when no upstream is configured.
    pub fn is_off(&self) -> bool {
        self.spec.is_off() && self.direct.is_none()
    }

    /// True when `path` is fetched only by the go command (never from a proxy).
    pub fn goes_direct(&self, path: &ModulePath) -> bool {
        self.direct.is_some() && self.always_direct.matches(path.as_str())
    }

    /// Where a client can fetch `rel` (e.g. `{module}/@v/{version}.zip`) from upstream itself, for
    /// download mode `redirect`: the first proxy, unless it needs credentials (never handed to
    /// clients) or the module goes direct.
    pub fn redirect_url(&self, path: &ModulePath, rel: &str) -> Option<String> {
        if self.goes_direct(path) {
            return None;
        }
        let first = self.spec.entries().first()?;
        if !first.url.username().is_empty() || first.url.password().is_some() {
            return None;
        }
        Some(format!(
            "{}/{rel}",
            first.url.as_str().trim_end_matches('/')
        ))
    }

    fn route(&self, path: &ModulePath) -> Route<'_> {
        match &self.direct {
            Some(direct) if self.always_direct.matches(path.as_str()) => Route::Direct(direct),
            Some(direct) if self.spec.ends_in_direct() => Route::Proxies(Some(direct)),
            _ => Route::Proxies(None),
        }
    }

    /// The go command, when the proxies' result lets the chain fall through to `direct`.
    fn fallback<'a, T>(
        &self,
        from_proxies: &Result<T, UpstreamError>,
        direct: Option<&'a DirectFetcher>,
    ) -> Option<&'a DirectFetcher> {
        match from_proxies {
            Err(e) if self.spec.falls_to_direct(e.is_not_found()) => direct,
            _ => None,
        }
    }

    /// `@v/list`: canonical tagged versions (pseudo-versions and junk lines dropped).
    #[tracing::instrument(skip_all, fields(module = %path))]
    pub async fn list(&self, path: &ModulePath) -> Result<Vec<Version>, UpstreamError> {
        let direct = match self.route(path) {
            Route::Direct(d) => return d.list(path).await,
            Route::Proxies(direct) => direct,
        };
        let r = self.list_from_proxies(path).await;
        match self.fallback(&r, direct) {
            Some(d) => d.list(path).await,
            None => r,
        }
    }

    async fn list_from_proxies(&self, path: &ModulePath) -> Result<Vec<Version>, UpstreamError> {
        let body = self
            .get_small(&format!("{}/@v/list", path.escaped()), MAX_LIST)
            .await?;
        let mut versions: Vec<Version> = crate::storage::parse_list(&body)
            .into_iter()
            .filter(|v| !v.is_pseudo())
            .collect();
        versions.sort();
        versions.dedup();
        Ok(versions)
    }

    /// `@latest`: the `.info` JSON of the latest version.
    #[tracing::instrument(skip_all, fields(module = %path))]
    pub async fn latest(&self, path: &ModulePath) -> Result<Bytes, UpstreamError> {
        let direct = match self.route(path) {
            Route::Direct(d) => return d.latest(path).await,
            Route::Proxies(direct) => direct,
        };
        let r = self
            .get_small(&format!("{}/@latest", path.escaped()), MAX_INFO)
            .await;
        match self.fallback(&r, direct) {
            Some(d) => d.latest(path).await,
            None => r,
        }
    }

    /// `.info` of a canonical version.
    #[tracing::instrument(skip_all, fields(module_version = %mv))]
    pub async fn info(&self, mv: &ModuleVersion) -> Result<Bytes, UpstreamError> {
        let direct = match self.route(mv.path()) {
            Route::Direct(d) => return d.info(mv).await,
            Route::Proxies(direct) => direct,
        };
        let r = self
            .get_small(
                &version_url(mv.path(), &mv.version().escaped(), "info"),
                MAX_INFO,
            )
            .await;
        match self.fallback(&r, direct) {
            Some(d) => d.info(mv).await,
            None => r,
        }
    }

    /// `.info` of a non-canonical query (branch, commit, `v1.2`): names the canonical version.
    #[tracing::instrument(skip_all, fields(module = %path, query = %query.as_str()))]
    pub async fn query_info(
        &self,
        path: &ModulePath,
        query: &VersionQuery,
    ) -> Result<Bytes, UpstreamError> {
        let direct = match self.route(path) {
            Route::Direct(d) => return d.query_info(path, query).await,
            Route::Proxies(direct) => direct,
        };
        // The go command path-escapes a query, so a branch like `feature/x` is one URL segment.
        let escaped = query.escaped().replace('/', "%2F");
        let r = self
            .get_small(&version_url(path, &escaped, "info"), MAX_INFO)
            .await;
        match self.fallback(&r, direct) {
            Some(d) => d.query_info(path, query).await,
            None => r,
        }
    }

    /// `.mod` of a canonical version.
    #[tracing::instrument(skip_all, fields(module_version = %mv))]
    pub async fn go_mod(&self, mv: &ModuleVersion) -> Result<Bytes, UpstreamError> {
        let direct = match self.route(mv.path()) {
            Route::Direct(d) => return d.go_mod(mv).await,
            Route::Proxies(direct) => direct,
        };
        let r = self
            .get_small(
                &version_url(mv.path(), &mv.version().escaped(), "mod"),
                MAX_GO_MOD,
            )
            .await;
        match self.fallback(&r, direct) {
            Some(d) => d.go_mod(mv).await,
            None => r,
        }
    }

    /// `.zip` of a canonical version, as a stream.
    #[tracing::instrument(skip_all, fields(module_version = %mv))]
    pub async fn zip(&self, mv: &ModuleVersion) -> Result<ZipBody, UpstreamError> {
        let direct = match self.route(mv.path()) {
            Route::Direct(d) => return direct_zip(d, mv).await,
            Route::Proxies(direct) => direct,
        };
        let r = self.zip_from_proxies(mv).await;
        match self.fallback(&r, direct) {
            Some(d) => direct_zip(d, mv).await,
            None => r,
        }
    }

    async fn zip_from_proxies(&self, mv: &ModuleVersion) -> Result<ZipBody, UpstreamError> {
        let rel = version_url(mv.path(), &mv.version().escaped(), "zip");
        let (response, url, permit) = self.get(&rel, None).await?;
        let content_length = response.content_length();
        let stream_url = url.clone();
        let mut pace = Pace::new(self.read_timeout, url.clone());
        let stream = response
            .bytes_stream()
            .map_err(move |e| transport_error(&stream_url, &e))
            .map(move |chunk| {
                let chunk = chunk?;
                pace.check(chunk.len())?;
                Ok(chunk)
            })
            .boxed();
        Ok(ZipBody {
            stream,
            content_length,
            url,
            _permit: Some(permit),
        })
    }

    async fn get_small(&self, rel: &str, limit: u64) -> Result<Bytes, UpstreamError> {
        let (response, url, _permit) = self.get(rel, Some(self.metadata_timeout)).await?;
        read_limited(response, url, limit).await
    }

    /// GETs `rel` from the first upstream that has it, following GOPROXY fallthrough rules:
    /// after `,` only a 404/410 moves on, after `|` any error does.
    async fn get(
        &self,
        rel: &str,
        timeout: Option<Duration>,
    ) -> Result<(reqwest::Response, String, OwnedSemaphorePermit), UpstreamError> {
        let mut last = UpstreamError::Off;
        for entry in self.spec.entries() {
            match self.get_one(entry, rel, timeout).await {
                Ok(ok) => return Ok(ok),
                Err(e) => {
                    let fall = e.is_not_found() || entry.fallthrough == Fallthrough::OnAnyError;
                    tracing::debug!(error = %e, fall, "upstream miss");
                    last = e;
                    if !fall {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    async fn get_one(
        &self,
        entry: &ProxyEntry,
        rel: &str,
        timeout: Option<Duration>,
    ) -> Result<(reqwest::Response, String, OwnedSemaphorePermit), UpstreamError> {
        let url = format!("{}/{rel}", entry.url.as_str().trim_end_matches('/'));
        let shown = format!("{}/{rel}", entry.redacted_url());
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| UpstreamError::Transport {
                url: shown.clone(),
                message: "shutting down".into(),
                timeout: false,
            })?;
        let mut request = self.credentials.apply(self.http.get(url), &entry.url);
        if let Some(t) = timeout {
            request = request.timeout(t);
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(&shown, &e))?;
        let status = response.status();
        if status.is_success() {
            return Ok((response, shown, permit));
        }
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            // The go command shows this reason to the user; keep it short and single-line, and
            // take it only from plain text (an HTML error page's first line says nothing).
            let plain = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("text/plain"));
            let text = if plain {
                response.text().await.unwrap_or_default()
            } else {
                String::new()
            };
            let reason = reason_line(&text, "");
            return Err(UpstreamError::NotFound(if reason.is_empty() {
                format!("not found: {shown} answered {}", status.as_u16())
            } else {
                reason
            }));
        }
        Err(UpstreamError::Status {
            url: shown,
            status: status.as_u16(),
        })
    }
}

async fn direct_zip(direct: &DirectFetcher, mv: &ModuleVersion) -> Result<ZipBody, UpstreamError> {
    let (stream, size) = direct.zip(mv).await?;
    Ok(ZipBody {
        stream,
        content_length: Some(size),
        url: format!("direct {mv}"),
        _permit: None,
    })
}

async fn read_limited(
    mut response: reqwest::Response,
    url: String,
    limit: u64,
) -> Result<Bytes, UpstreamError> {
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(UpstreamError::TooLarge { url, limit });
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(&url, &e))?
    {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(UpstreamError::TooLarge { url, limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Measures a body's progress in windows of the read timeout (a stall inside a window is the
/// read timeout's job; this catches bodies that never stall but barely move).
struct Pace {
    window: Duration,
    started: std::time::Instant,
    bytes: u64,
    url: String,
}

impl Pace {
    fn new(window: Duration, url: String) -> Pace {
        Pace {
            window,
            started: std::time::Instant::now(),
            bytes: 0,
            url,
        }
    }

    fn check(&mut self, arrived: usize) -> Result<(), UpstreamError> {
        self.bytes += arrived as u64;
        if self.started.elapsed() < self.window {
            return Ok(());
        }
        if self.bytes < MIN_BYTES_PER_WINDOW {
            return Err(UpstreamError::Transport {
                url: self.url.clone(),
                message: format!(
                    "too slow: {} bytes in {:?}, at least {MIN_BYTES_PER_WINDOW} required",
                    self.bytes, self.window
                ),
                timeout: true,
            });
        }
        self.started = std::time::Instant::now();
        self.bytes = 0;
        Ok(())
    }
}

fn version_url(path: &ModulePath, escaped_version: &str, ext: &str) -> String {
    format!("{}/@v/{escaped_version}.{ext}", path.escaped())
}

fn transport_error(url: &str, e: &reqwest::Error) -> UpstreamError {
    // reqwest's Display may include the URL with credentials; build our own message.
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "broken response body"
    } else if e.is_redirect() {
        "too many redirects"
    } else {
        "request failed"
    };
    let detail = std::error::Error::source(e)
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    UpstreamError::Transport {
        url: url.to_owned(),
        message: format!("{kind}{detail}"),
        timeout: e.is_timeout(),
    }
}
