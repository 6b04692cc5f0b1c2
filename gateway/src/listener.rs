//! The TCP listener, and the socket wrapper every connection hyper serves runs on.
//!
//! Each accepted socket gets TCP_NODELAY (a frame should leave at once). A socket handed to
//! hyper (`server.rs`) also gets a write timeout (a client whose socket accepts no bytes for that
//! long stopped reading) and a kill switch; the lean path (`held/`) needs neither, as it writes
//! to the socket itself.
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

use bytes::{Buf, Bytes};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::counters::Counters;

#[derive(Debug)]
pub(crate) struct GatewayListener {
    inner: TcpListener,
    write_timeout: Duration,
}

impl GatewayListener {
    pub(crate) fn new(inner: TcpListener, write_timeout: Duration) -> Self {
        Self { inner, write_timeout }
    }

    /// The next client socket. Errors are handled as `axum::serve` does: a failed handshake is
    /// skipped, running out of file descriptors waits a second rather than spinning.
    pub(crate) async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        (stream, addr)
    }

    /// How long a socket hyper serves may accept no bytes.
    pub(crate) fn write_timeout(&self) -> Duration {
        self.write_timeout
    }
}

/// Counts an open client socket in `sockets_open` while it lives.
#[derive(Debug)]
pub(crate) struct SocketCount(Arc<Counters>);

impl SocketCount {
    pub(crate) fn new(counters: &Arc<Counters>) -> Self {
        counters.sockets_open.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(counters))
    }
}

impl Drop for SocketCount {
    fn drop(&mut self) {
        self.0.sockets_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket whose first bytes were already read (a request head the lean path looked at): they
/// are read again first.
#[derive(Debug)]
pub(crate) struct Prefixed {
    prefix: Bytes,
    inner: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A client socket served by hyper, with a write timeout and a kill switch.
#[derive(Debug)]
pub(crate) struct ClientIo {
    inner: Pin<Box<TimeoutStream<Prefixed>>>,
    kill: CancellationToken,
    killed: Pin<Box<WaitForCancellationFutureOwned>>,
    counters: Arc<Counters>,
    _count: SocketCount,
}

impl ClientIo {
    /// `prefix`: bytes already read from the socket, which hyper reads first.
    pub(crate) fn new(socket: TcpStream, prefix: Bytes, write_timeout: Duration, count: SocketCount) -> Self {
        let mut stream = TimeoutStream::new(Prefixed { prefix, inner: socket });
        stream.set_write_timeout(Some(write_timeout));
        let kill = CancellationToken::new();
        let killed = Box::pin(kill.clone().cancelled_owned());
        let counters = Arc::clone(&count.0);
        Self { inner: Box::pin(stream), kill, killed, counters, _count: count }
    }
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
                self.counters.bytes_written.fetch_add(*n as u64, Ordering::Relaxed);
            }
            Poll::Ready(Err(e)) => self.count_timeout(e),
            Poll::Pending => {}
        }
        r
    }

    fn count_timeout(&self, e: &io::Error) {
        if e.kind() == io::ErrorKind::TimedOut {
            self.counters.write_timeouts.fetch_add(1, Ordering::Relaxed);
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
    // token's lock once per event per stream. A switched-off stream whose socket still has
    // room ends by itself (its `EventStream` watches the same token).
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

/// Per-connection information handed to handlers (`ConnectInfo<ClientInfo>`).
#[derive(Debug, Clone)]
pub(crate) struct ClientInfo {
    /// Fires the socket's kill switch. With HTTP/2 it closes every stream of the connection.
    pub kill: CancellationToken,
    /// The request came on the lean path (`held/`): a stream answer leaves its `EventStream` in the
    /// response for that path to hold.
    pub lean: bool,
}

impl ClientInfo {
    pub(crate) fn new(io: &ClientIo) -> Self {
        Self { kill: io.kill.clone(), lean: false }
    }

    /// A request read by the lean path. Its kill switch is its own: a stream on the lean path is
    /// cut by the fan-out itself, and until then by its `EventStream`.
    pub(crate) fn lean() -> Self {
        Self { kill: CancellationToken::new(), lean: true }
    }
}
