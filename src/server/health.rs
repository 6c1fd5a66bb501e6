//! The health endpoint (`GET /health/ready`), on `--health-addr`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;

/// Whether the gRPC server is serving.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the server ready (or not).
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }
}

/// Binds `addr` (Go syntax: `:8080` means every interface).
pub async fn bind(addr: &str) -> Result<TcpListener, String> {
    let candidates: Vec<String> = match addr.strip_prefix(':') {
        Some(port) => vec![format!("[::]:{port}"), format!("0.0.0.0:{port}")],
        None => vec![addr.to_string()],
    };
    let mut last = String::new();
    for candidate in &candidates {
        match TcpListener::bind(candidate).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("cannot listen on --health-addr {addr}: {last}"))
}

/// Serves the health endpoint until shutdown.
pub async fn serve(listener: TcpListener, readiness: Readiness, shutdown: super::Shutdown) {
    let app = Router::new()
        .route("/health/ready", get(ready))
        .with_state(readiness);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.wait())
        .await
    {
        tracing::error!(error = %e, "the health endpoint stopped");
    }
}

/// `GET /health/ready`: 200 while serving, 503 before and during shutdown.
async fn ready(State(readiness): State<Readiness>) -> StatusCode {
    if readiness.0.load(Ordering::SeqCst) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}
