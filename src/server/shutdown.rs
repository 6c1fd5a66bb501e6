//! Shutdown on SIGTERM or SIGINT.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Tells every part of the server that shutdown has begun.
#[derive(Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

impl Shutdown {
    /// Installs the signal handlers and returns the shared signal.
    pub fn install() -> Result<Shutdown, String> {
        let (sender, receiver) = watch::channel(false);
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
        let mut int =
            signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(
                signal = name,
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
