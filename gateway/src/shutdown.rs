//! The one place that owns shutdown and its order (`Shutdown::run`):
//! 1. readiness goes false and every stream gets a last jittered `retry:` and ends (an open SSE
//!    stream would otherwise hold the server's graceful shutdown forever): [`Shutdown::begin`]
//!    fires the token every stream and task selects on;
//! 2. the server stops accepting and lets in-flight requests finish, within the configured grace;
//! 3. the tracked tasks drain, within [`TASKS_GRACE`];
//! 4. the Redis links quit;
//! 5. `main` flushes the spans still buffered for export (bounded too), last, so that the
//!    shutdown's own spans are in it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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

    /// Serves until `signal` resolves (or [`Shutdown::begin`] is called), then stops in the order
    /// above: `server` must stop accepting once the token fires and return when its requests and
    /// streams are done, and is given `grace` for that; `quit` closes the Redis links.
    pub(crate) async fn run(
        &self,
        signal: impl Future<Output = ()> + Send + 'static,
        server: impl Future<Output = ()>,
        grace: Duration,
        quit: impl Future<Output = ()>,
    ) {
        let on_signal = self.clone();
        let stop = self.token();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = signal => on_signal.begin(),
                _ = stop.cancelled() => {}
            }
        });
        let token = self.token();
        let forced = async {
            token.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            () = server => {}
            _ = forced => tracing::warn!(grace = ?grace, "shutdown grace elapsed; dropping the connections left"),
        }
        self.tracker.close();
        if tokio::time::timeout(TASKS_GRACE, self.tracker.wait()).await.is_err() {
            tracing::warn!("background tasks did not finish in time");
        }
        quit.await;
        tracing::info!("stopped");
    }
}

/// How long the tracked tasks get to finish once the server has stopped. They were told to stop
/// when the drain began, and every one of them selects on that token, so by now most are gone;
/// what can remain is a task's last Redis round trip: the control reader taking the node off the
/// live set, a tail read in flight, or the Mercure hub's announcement that its last subscriptions
/// ended (`hub/announce.rs`). Those take milliseconds when Redis answers, but only the command
/// timeout (3 s, a command sent twice) bounds them when it does not, which would add seconds to
/// every exit while Redis is away. One second covers them when Redis is there and bounds the exit
/// when it is not; what is cut short is best effort (a node's presence lapses by itself).
pub const TASKS_GRACE: Duration = Duration::from_secs(1);

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
