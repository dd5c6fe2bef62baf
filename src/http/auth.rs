//! Client authentication in front of every route but the probes (and `/metrics` when public).

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::HttpError;

/// Paths a load balancer or orchestrator probes without credentials.
const OPEN: [&str; 2] = ["/healthz", "/readyz"];

/// Lets the request through when authentication is off, the path is open, or the
/// `Authorization` header names a known user or token; otherwise 401.
pub async fn require(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let Some(auth) = &app.auth else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if OPEN.contains(&path) || (path == "/metrics" && app.metrics_public) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match auth.check(presented).await {
        Ok(user) => {
            tracing::Span::current().record("user", tracing::field::display(&user));
            next.run(request).await
        }
        Err(e) => HttpError::from(e).into_response(),
    }
}
