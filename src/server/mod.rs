//! The gRPC edge: socket lifecycle, health and metrics endpoint, graceful
//! shutdown.

mod health;
mod remounts;
mod service;
mod shutdown;
mod socket;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_stream::wrappers::UnixListenerStream;

pub use service::{MAX_MOUNT_DURATION, ProviderService};
pub use shutdown::Shutdown;
pub use socket::ProviderSocket;

use crate::metrics::Metrics;
use crate::mount::Mounter;
use crate::proto::csi_driver_provider_server::CsiDriverProviderServer;

/// What `serve` needs.
pub struct ServeOptions {
    /// Path of the unix socket the driver dials (`--endpoint`).
    pub endpoint: PathBuf,
    /// Address of the health endpoint (`--health-addr`), which also serves
    /// `/metrics`.
    pub health_addr: String,
    /// The registry `/metrics` serves and Mounts record into; the same
    /// handle the mounter's Vault client options carry, so one scrape shows
    /// both.
    pub metrics: Metrics,
}

/// How often cached entries nothing may use any more are dropped.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Drops expired cache entries every minute until shutdown, so secrets of
/// pods that stopped mounting do not stay in memory.
async fn sweep(mounter: Arc<Mounter>, shutdown: Shutdown) {
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = every.tick() => mounter.sweep(),
        }
    }
}

/// Serves the provider until SIGTERM/SIGINT, then lets in-flight mounts
/// finish (up to [`MAX_MOUNT_DURATION`]) and removes the socket if it is
/// still ours.
pub async fn serve(options: ServeOptions, mounter: Mounter) -> Result<(), String> {
    serve_until(options, mounter, std::future::pending()).await
}

/// Like [`serve`], and also shuts down gracefully when `stop` resolves (for
/// an owner in the same process, such as the demo).
pub async fn serve_until(
    options: ServeOptions,
    mounter: Mounter,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let shutdown = Shutdown::on_signal_or(stop)?;
    let health = health::bind(&options.health_addr).await?;
    let readiness = health::Readiness::default();
    tokio::spawn(health::serve(
        health,
        readiness.clone(),
        options.metrics.clone(),
        shutdown.clone(),
    ));

    let (listener, socket) = ProviderSocket::bind(&options.endpoint)?;
    tracing::info!(
        endpoint = %socket.path().display(), health = %options.health_addr,
        version = crate::VERSION, "serving"
    );
    readiness.set(true);
    let mounter = Arc::new(mounter);
    tokio::spawn(sweep(mounter.clone(), shutdown.clone()));
    let service =
        CsiDriverProviderServer::new(ProviderService::new(mounter, options.metrics.clone()));
    let server = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown.clone().wait());
    tokio::pin!(server);
    let result = tokio::select! {
        result = &mut server => result.map_err(|e| format!("the gRPC server failed: {e}")),
        () = async {
            shutdown.wait().await;
            tokio::time::sleep(MAX_MOUNT_DURATION + std::time::Duration::from_secs(5)).await;
        } => {
            tracing::warn!("in-flight mounts did not finish in time; exiting anyway");
            Ok(())
        }
    };
    readiness.set(false);
    socket.remove_if_ours();
    tracing::info!("stopped");
    result
}
