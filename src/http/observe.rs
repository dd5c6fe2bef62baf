//! Observability at the HTTP edge: per-request metrics, `/metrics`, and the request log line.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::StorageFailure;
use crate::metrics::Route;

/// Counts the request by route and status, its body bytes, and storage failures.
pub async fn count(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let route = Route::of(request.uri().path());
    let head = request.method() == Method::HEAD;
    let response = next.run(request).await;
    let bytes = if head { None } else { body_bytes(&response) };
    app.metrics
        .request(route, response.status().as_u16(), bytes.unwrap_or(0));
    if response.extensions().get::<StorageFailure>().is_some() {
        app.metrics.storage_error();
    }
    response
}

/// `/metrics`: OpenMetrics text.
pub async fn metrics(State(app): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        app.metrics.encode(),
    )
        .into_response()
}

/// The request log line, inside the request span (method, bounded path, module, user).
pub fn log_response<B: http_body::Body>(
    response: &http::Response<B>,
    latency: Duration,
    _span: &tracing::Span,
) {
    tracing::info!(
        status = response.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        bytes = body_bytes(response),
        "request"
    );
}

/// The body length as declared (`Content-Length`, or an exact size hint); `None` when streamed
/// without a known length. Counting declared bytes costs nothing per chunk.
fn body_bytes<B: http_body::Body>(response: &http::Response<B>) -> Option<u64> {
    response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .or_else(|| response.body().size_hint().exact())
}
