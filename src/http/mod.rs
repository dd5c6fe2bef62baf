//! The HTTP face: axum routes, the one error-to-status mapping, streaming bodies.

use std::future::Future;

use tokio::net::TcpListener;

use crate::config::Settings;

/// Errors that stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Settings or storage could not be set up.
    #[error("{0}")]
    Setup(String),
    /// The listener failed.
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves the GOPROXY protocol on `listener` until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let _ = (listener, settings);
    shutdown.await;
    Err(ServeError::Setup("not implemented yet".into()))
}
