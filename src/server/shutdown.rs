//! Shutdown: on SIGTERM or SIGINT, or when an owner's stop future resolves.

use std::future::Future;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Tells every part of the server that shutdown has begun.  Cheap to clone.
#[derive(Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

impl Shutdown {
    /// Begins shutdown on SIGTERM, SIGINT, or when `stop` resolves.
    pub fn on_signal_or(
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Shutdown, String> {
        let (sender, receiver) = watch::channel(false);
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
        let mut int =
            signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
        tokio::spawn(async move {
            let why = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                () = stop => "stop requested",
            };
            tracing::info!(
                reason = why,
                "shutting down: no new connections, finishing in-flight mounts"
            );
            let _ = sender.send(true);
        });
        Ok(Shutdown { receiver })
    }

    /// Resolves once shutdown has begun.
    pub async fn wait(mut self) {
        let _ = self.receiver.wait_for(|stop| *stop).await;
    }
}
