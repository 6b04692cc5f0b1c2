//! The one place that owns shutdown and its order:
//! readiness goes false → every stream gets a last jittered `retry:` and ends (an open SSE stream
//! would otherwise hold the server's graceful shutdown forever) → the server stops accepting and lets
//! in-flight requests finish → background tasks drain → all of it within the configured grace.
//! Then `App::run` closes the Redis connections and returns, and `main` flushes the spans still
//! buffered for export (bounded too), last, so that the shutdown's own spans are in it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, Clone)]
pub struct Shutdown {
    token: CancellationToken,
    draining: Arc<AtomicBool>,
    tracker: TaskTracker,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self { token: CancellationToken::new(), draining: Arc::new(AtomicBool::new(false)), tracker: TaskTracker::new() }
    }
}

impl Shutdown {
    /// Starts the drain: readiness off, then every stream and task is told to finish.
    pub fn begin(&self) {
        if !self.draining.swap(true, Ordering::SeqCst) {
            tracing::info!("shutting down: readiness off, closing streams");
        }
        self.token.cancel();
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Fires when shutdown begins; streams and background tasks select on it.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Background tasks are spawned here, never bare, so that shutdown can wait for them.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("received SIGINT"),
        _ = term => tracing::info!("received SIGTERM"),
    }
}
