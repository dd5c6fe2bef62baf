//! The HTTP face: axum routes, the one error-to-status mapping, streaming bodies.

mod auth;
mod catalog;
mod error;
mod observe;
mod proxy;
mod ready;
mod respond;
mod sumdb;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as AutoBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use error::{HttpError, plain_text};

use crate::auth::Authenticator;
use crate::config::{LeaseSpec, Settings};
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::stash::Stasher;
use crate::stash::lease::{Lease, MemoryLease};
use crate::storage::{RangeReadOptions, Storage};
use crate::sumdb::SumdbProxy;
use crate::upstream::{Credentials, UpstreamClient};

/// Errors that stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Settings, storage or upstream could not be set up.
    #[error("{0}")]
    Setup(String),
    /// The listener failed.
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The fetch-once front of storage and upstream.
    pub stasher: Stasher,
    /// Freshness of mutable answers.
    pub list_ttl: Duration,
    /// Rules, download modes, deny list.
    pub policy: Arc<Policy>,
    /// The checksum-database proxy.
    pub sumdb: SumdbProxy,
    /// Client authentication, when configured.
    pub auth: Option<Arc<Authenticator>>,
    /// This server's counters.
    pub metrics: Metrics,
    /// `/metrics` is open even when authentication is on.
    pub metrics_public: bool,
    /// The storage probe behind `/readyz`.
    pub readiness: Arc<ready::Readiness>,
}

impl AppState {
    /// Opens storage, the upstream client and the lease backend that `settings` name.
    pub async fn build(settings: &Settings) -> Result<AppState, ServeError> {
        settings
            .validate()
            .map_err(|e| ServeError::Setup(e.to_string()))?;
        let storage = Storage::open(&settings.storage)
            .map_err(|e| ServeError::Setup(e.to_string()))?
            .with_range_reads(RangeReadOptions {
                chunk_size: settings.storage_read_chunk,
                window: settings.storage_read_window,
            })
            .with_range_budget(settings.storage_read_budget)
            .with_injected_latency(
                settings.inject_storage_latency,
                settings.inject_storage_bandwidth,
            );
        let setup = |e: &dyn std::fmt::Display| ServeError::Setup(e.to_string());
        let credentials = Credentials::load(
            &settings.upstream_tokens,
            settings.upstream_netrc.as_deref(),
        )
        .map_err(|e| setup(&e))?;
        let upstream = UpstreamClient::new(settings)
            .map_err(|e| setup(&e))?
            .with_credentials(Arc::new(credentials));
        let auth = Authenticator::load(
            settings.auth_users.as_deref(),
            settings.auth_tokens.as_deref(),
        )
        .map_err(|e| setup(&e))?
        .map(Arc::new);
        let metrics = Metrics::new();
        let lease: Arc<dyn Lease> = match &settings.lease {
            LeaseSpec::Memory => Arc::new(MemoryLease::new()),
            // Storage: refused unless conditional create is honoured. Redis: unreachable at
            // start falls back to in-process leases, reported by `lease.status()` (`/readyz`).
            spec @ (LeaseSpec::Storage | LeaseSpec::Redis(_)) => {
                crate::stash::lease::setup::open(spec, &storage)
                    .await
                    .map_err(|e| ServeError::Setup(e.to_string()))?
            }
        };
        let sumdb = SumdbProxy::new(
            settings.sumdb.clone(),
            settings.private.clone(),
            upstream.clone(),
            storage.clone(),
            settings.list_ttl,
            metrics.clone(),
        );
        Ok(AppState {
            stasher: Stasher::with_metrics(settings, storage, upstream, lease, metrics.clone()),
            list_ttl: settings.list_ttl,
            policy: Arc::new(settings.policy.clone()),
            sumdb,
            auth,
            metrics,
            metrics_public: settings.metrics_public,
            readiness: Arc::default(),
        })
    }
}

/// All routes: our own endpoints, and the GOPROXY protocol for every other path.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/version", get(version))
        .route("/catalog", get(catalog::catalog))
        .route("/metrics", get(observe::metrics))
        .route("/sumdb/{*rest}", get(sumdb::handle))
        .fallback(proxy::handle)
        // Layers run outside in: the log line and the counters see every answer, 401s too.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::count,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    // Hostile paths can be long: the span keeps a bounded prefix.
                    let path: String = request.uri().path().chars().take(256).collect();
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %path,
                        module = tracing::field::Empty,
                        user = tracing::field::Empty,
                    )
                })
                .on_response(observe::log_response),
        )
        .with_state(state)
}

async fn healthz() -> Response {
    plain_text(StatusCode::OK, "ok")
}

/// Ready when storage answers, and takes writes when this replica may fetch (see `ready.rs`).
/// The lease backend's state is reported but does not fail the probe: stored versions need no
/// lease, and a load balancer taking every replica out because Redis is down would turn a
/// degraded fleet into an outage.
async fn readyz(State(app): State<AppState>) -> Response {
    let lease = app.stasher.lease().status();
    match app.readiness.storage(&app.stasher).await {
        Err(why) => plain_text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("not ready: {why}; lease {lease}"),
        ),
        Ok(()) => plain_text(StatusCode::OK, &format!("ready: storage ok; lease {lease}")),
    }
}

async fn version() -> Response {
    axum::Json(serde_json::json!({
        "name": "modstash",
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

/// Serves the GOPROXY protocol on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish (for at most the configured grace period).
///
/// Connections are capped (`max-connections`; the accept loop waits for a free slot, so excess
/// clients queue in the kernel backlog instead of exhausting file descriptors) and a client must
/// send its request headers within `header-read-timeout`, so idle or slowloris connections cannot
/// starve everyone else.
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let state = AppState::build(&settings).await?;
    tracing::info!(
        listen = %listener.local_addr()?,
        storage = %settings.storage,
        upstream = %settings.upstream,
        "modstash serving"
    );
    let app = router(state);
    let slots = Arc::new(tokio::sync::Semaphore::new(settings.max_connections));
    let mut builder = AutoBuilder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Some(settings.header_read_timeout));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of descriptors or a reset before accept: back off briefly, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let first_byte_timeout = settings.header_read_timeout;
        tokio::spawn(async move {
            // hyper-util reads the first bytes to tell HTTP/1 from HTTP/2 with no timeout, and
            // HTTP/1's header-read timeout starts only after that: a client that never sends a
            // byte would otherwise keep its slot for good.
            let mut first = [0u8; 1];
            if tokio::time::timeout(first_byte_timeout, stream.peek(&mut first))
                .await
                .is_err()
            {
                tracing::debug!("connection closed: nothing sent within the header-read timeout");
                return;
            }
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(settings.shutdown_grace) => {
            tracing::warn!(grace = ?settings.shutdown_grace, "grace period over; dropping remaining connections");
        }
    }
    Ok(())
}
