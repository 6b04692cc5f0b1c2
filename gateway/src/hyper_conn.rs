//! A socket served by hyper: everything the lean path (`held/`) does not serve itself (other
//! routes, bodies, HTTP/2, malformed or oversized heads), with the bytes the lean path already
//! read of it replayed first.
//!
//! - **Request-head deadlines.** `axum::serve` gives hyper no timer, so hyper's header read
//!   timeout never runs and a client that opens a socket and sends its request head a byte at a
//!   time (slowloris), or nothing at all, holds the socket for ever. Here every socket must
//!   deliver its first request head within `GATEWAY_HEADER_TIMEOUT` from its accept, whatever the
//!   protocol (a partial HTTP/2 preface is held by hyper-util's version sniffing, before hyper's
//!   own timeout could start). Later heads on an HTTP/1 keep-alive connection, idle time
//!   included, get `GATEWAY_KEEPALIVE_TIMEOUT` (hyper's header read timeout), which is longer so
//!   that the balancer in front closes idle connections first.
//! - **Graceful shutdown** through hyper-util's watcher: idle keep-alive connections close, and
//!   in-flight responses finish (streams end themselves on the shutdown token).
//!
//! The per-connection `ConnectInfo<ClientInfo>` (the kill switch the fan-out fires at a slow
//! client) is put into every request's extensions, as `into_make_service_with_connect_info` did.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::Watcher;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tower::ServiceExt;

use crate::listener::{ClientInfo, ClientIo, SocketCount};

/// The largest request head (request line and headers) a socket may send, on either path.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How long a socket may take to send a request head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadTimeouts {
    /// The first head, from the socket's accept.
    pub first: Duration,
    /// Every later head on a keep-alive connection, from the end of the previous response.
    pub keep_alive: Duration,
}

/// hyper's side of the port: its connection builder, and what a socket handed to it gets.
#[derive(Debug)]
pub(crate) struct Hyper {
    builder: Builder<TokioExecutor>,
    pub timeouts: HeadTimeouts,
    write_timeout: Duration,
}

impl Hyper {
    pub(crate) fn new(timeouts: HeadTimeouts, write_timeout: Duration) -> Self {
        let mut builder = Builder::new(TokioExecutor::new());
        // A request head over 64 KiB (nginx's default allows 32 KiB) is refused with 431 before
        // it reaches a handler; hyper's default would buffer 400 KiB per socket.
        builder.http1().timer(TokioTimer::new()).header_read_timeout(timeouts.keep_alive).max_buf_size(MAX_HEAD_BYTES);
        builder.http2().timer(TokioTimer::new());
        Self { builder, timeouts, write_timeout }
    }
}

/// A socket from its first request hyper serves (`prefix`: what the lean path read of it) to its
/// close. `header_timeout`: how long the first head may still take.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve_connection(
    hyper: &Hyper,
    socket: TcpStream,
    prefix: Bytes,
    count: SocketCount,
    remote: SocketAddr,
    router: Router,
    header_timeout: Duration,
    watcher: Watcher,
) {
    let io = ClientIo::new(socket, prefix, hyper.write_timeout, count);
    let info = ClientInfo::new(&io);
    let first_request = Arc::new(Notify::new());
    let seen = Arc::clone(&first_request);
    let service = service_fn(move |mut request: hyper::Request<Incoming>| {
        // A stored permit when nobody waits yet: the deadline below sees it either way.
        seen.notify_one();
        request.extensions_mut().insert(ConnectInfo(info.clone()));
        let router = router.clone();
        async move { Ok::<_, Infallible>(router.oneshot(request).await.unwrap_or_else(|never| match never {})) }
    });
    let connection = watcher.watch(hyper.builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned());
    tokio::pin!(connection);
    let deadline = tokio::time::timeout(header_timeout, first_request.notified());
    let result = tokio::select! {
        result = &mut connection => result,
        waited = deadline => match waited {
            Ok(()) => connection.await,
            Err(_) => {
                tracing::debug!(%remote, timeout = ?header_timeout, "no request head in time, closing the socket");
                return;
            }
        },
    };
    if let Err(e) = result {
        // Peers that go away mid-request, malformed requests (hyper answered them already),
        // head timeouts: the client's doing, not an error of the node's.
        tracing::debug!(%remote, error = %e, "connection ended with an error");
    }
}
