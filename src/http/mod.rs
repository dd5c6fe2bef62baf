//! The HTTP face: axum routes, the one error-to-status mapping, streaming bodies.

mod catalog;
mod error;
mod proxy;
mod respond;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use error::{HttpError, plain_text};

use crate::config::{LeaseSpec, Settings};
use crate::stash::Stasher;
use crate::stash::lease::{Lease, MemoryLease};
use crate::storage::{RangeReadOptions, Storage};
use crate::upstream::UpstreamClient;

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
            .with_injected_latency(
                settings.inject_storage_latency,
                settings.inject_storage_bandwidth,
            );
        let upstream =
            UpstreamClient::new(settings).map_err(|e| ServeError::Setup(e.to_string()))?;
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
        Ok(AppState {
            stasher: Stasher::new(settings, storage, upstream, lease),
            list_ttl: settings.list_ttl,
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
        .fallback(proxy::handle)
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                // Hostile paths can be long: the span keeps a bounded prefix.
                let path: String = request.uri().path().chars().take(256).collect();
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    path = %path,
                    module = tracing::field::Empty,
                )
            }),
        )
        .with_state(state)
}

async fn healthz() -> Response {
    plain_text(StatusCode::OK, "ok")
}

/// Ready when storage answers. The lease backend's state is reported but does not fail the
/// probe: stored versions need no lease, and a load balancer taking every replica out because
/// Redis is down would turn a degraded fleet into an outage.
async fn readyz(State(app): State<AppState>) -> Response {
    let lease = app.stasher.lease().status();
    match app.stasher.storage().check().await {
        Err(e) => {
            tracing::warn!(error = %e, "not ready: storage unreachable");
            plain_text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not ready: storage unreachable; lease {lease}"),
            )
        }
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
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stopping_tx.send(());
    };
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(signal);
    let grace = settings.shutdown_grace;
    tokio::select! {
        result = server => result.map_err(ServeError::from),
        () = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(?grace, "grace period over; dropping remaining connections");
            Ok(())
        }
    }
}
