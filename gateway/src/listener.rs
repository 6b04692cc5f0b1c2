//! The TCP listener and the socket wrapper every connection runs on.
//!
//! Each accepted socket gets TCP_NODELAY (a frame should leave at once), a write timeout (a
//! client whose socket accepts no bytes for that long stopped reading), and a kill switch.
//! The kill switch exists because of how hyper drives a response: while a socket is full it
//! waits on the socket and never polls the body, so a stream cannot end itself when its client is
//! found too slow. The fan-out fires the switch instead, and the next write fails at once.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::stats::Stats;

#[derive(Debug)]
pub struct GatewayListener {
    inner: TcpListener,
    write_timeout: Duration,
    stats: Arc<Stats>,
}

impl GatewayListener {
    pub fn new(inner: TcpListener, write_timeout: Duration, stats: Arc<Stats>) -> Self {
        Self { inner, write_timeout, stats }
    }

    /// The next client socket. Errors are handled as `axum::serve` does: a failed handshake is
    /// skipped, running out of file descriptors waits a second rather than spinning.
    pub async fn accept(&mut self) -> (ClientIo, SocketAddr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(self.write_timeout));
        let kill = CancellationToken::new();
        let killed = Box::pin(kill.clone().cancelled_owned());
        self.stats.sockets_open.fetch_add(1, Ordering::Relaxed);
        (ClientIo { inner: Box::pin(stream), kill, killed, stats: Arc::clone(&self.stats) }, addr)
    }
}

/// A client socket with a write timeout and a kill switch.
#[derive(Debug)]
pub struct ClientIo {
    inner: Pin<Box<TimeoutStream<TcpStream>>>,
    kill: CancellationToken,
    killed: Pin<Box<WaitForCancellationFutureOwned>>,
    stats: Arc<Stats>,
}

impl ClientIo {
    /// Fails the write with `err` if the switch fired; registers the waker otherwise, so a
    /// write parked on a full socket wakes up when the switch fires.
    fn check_killed(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.killed.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(io::ErrorKind::ConnectionAborted, "connection closed: client too slow")),
            Poll::Pending => Ok(()),
        }
    }

    /// Counts what a write did: bytes written, or a write timeout.
    fn count_write(&self, r: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match &r {
            Poll::Ready(Ok(n)) => {
                self.stats.bytes_written.fetch_add(*n as u64, Ordering::Relaxed);
            }
            Poll::Ready(Err(e)) => self.count_timeout(e),
            Poll::Pending => {}
        }
        r
    }

    fn count_timeout(&self, e: &io::Error) {
        if e.kind() == io::ErrorKind::TimedOut {
            self.stats.write_timeouts.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("client stopped reading (write timeout), closing its connection");
        }
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.inner.as_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientIo {
    // The switch is checked only when a write would wait: that is when it matters (hyper polls
    // nothing else while the socket is full), and checking it on every write would take the
    // token's lock once per event per connection. A switched-off stream whose socket still has
    // room ends by itself (the connection watches the same token).
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = self.inner.as_mut().poll_write(cx, buf);
        if r.is_pending() {
            self.check_killed(cx)?;
        }
        self.count_write(r)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let r = self.inner.as_mut().poll_write_vectored(cx, bufs);
        if r.is_pending() {
            self.check_killed(cx)?;
        }
        self.count_write(r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = self.inner.as_mut().poll_flush(cx);
        if r.is_pending() {
            self.check_killed(cx)?;
        }
        if let Poll::Ready(Err(e)) = &r {
            self.count_timeout(e);
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.as_mut().poll_shutdown(cx)
    }
}

impl Drop for ClientIo {
    fn drop(&mut self) {
        self.stats.sockets_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Per-connection information handed to handlers (`ConnectInfo<ClientInfo>`).
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub remote: SocketAddr,
    /// Fires the socket's kill switch. With HTTP/2 it closes every stream of the connection.
    pub kill: CancellationToken,
}

impl ClientInfo {
    pub fn new(remote: SocketAddr, io: &ClientIo) -> Self {
        Self { remote, kill: io.kill.clone() }
    }
}
