//! The health endpoint (`GET /health/ready`) and the metrics
//! (`GET /metrics`), both on `--health-addr`: one port for the kubelet probe
//! and the scraper keeps the DaemonSet's ports and policies simple.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

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

/// What the endpoint's handlers read.
#[derive(Clone)]
struct Endpoints {
    /// Answers `/health/ready`.
    readiness: Readiness,
    /// Answers `/metrics`.
    metrics: Metrics,
}

impl FromRef<Endpoints> for Readiness {
    fn from_ref(endpoints: &Endpoints) -> Self {
        endpoints.readiness.clone()
    }
}

impl FromRef<Endpoints> for Metrics {
    fn from_ref(endpoints: &Endpoints) -> Self {
        endpoints.metrics.clone()
    }
}

/// Serves the health and metrics endpoints until shutdown.
pub async fn serve(
    listener: TcpListener,
    readiness: Readiness,
    metrics: Metrics,
    shutdown: super::Shutdown,
) {
    let app = Router::new()
        .route("/health/ready", get(ready))
        .route("/metrics", get(scrape))
        .with_state(Endpoints { readiness, metrics });
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

/// `GET /metrics`: every metric in OpenMetrics text.
async fn scrape(State(metrics): State<Metrics>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        metrics.encode(),
    )
}
