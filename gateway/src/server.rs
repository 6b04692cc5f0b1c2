//! Accepting sockets and serving HTTP on them until shutdown. Every socket starts on the lean
//! path (`held/accept.rs`), which serves stream requests itself and hands everything else to
//! hyper (`hyper_conn.rs`) on the same port.
//!
//! Graceful shutdown: once the shutdown token fires, no socket is accepted; hyper's connections
//! close when idle and finish their in-flight responses (hyper-util's watcher), and the lean
//! path's tasks end with their streams (see `shutdown.rs`). `serve` returns when all are done.

use std::sync::Arc;

use axum::Router;
use hyper_util::server::graceful::GracefulShutdown;
use tokio_util::sync::CancellationToken;

use crate::held::{self, Node};
use crate::hyper_conn::Hyper;
use crate::listener::GatewayListener;

use crate::hyper_conn::HeadTimeouts;

/// Accepts sockets and serves `router` on each until `stop` fires, then waits for the
/// connections to finish (the caller bounds that wait with the shutdown grace).
pub(crate) async fn serve(mut listener: GatewayListener, router: Router, timeouts: HeadTimeouts, node: Arc<Node>, stop: CancellationToken) {
    let hyper = Arc::new(Hyper::new(timeouts, listener.write_timeout()));
    let graceful = GracefulShutdown::new();
    loop {
        let (socket, remote) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => break,
        };
        let serve = held::accept::serve_socket(Arc::clone(&node), socket, remote, router.clone(), Arc::clone(&hyper), graceful.watcher());
        node.tasks.spawn(serve);
    }
    drop(listener);
    graceful.shutdown().await;
    node.drained().await;
}
