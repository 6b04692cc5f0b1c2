//! A stream over a socket with a small receive buffer and segment size: the chaos run's stalled
//! client. Over loopback the kernel would otherwise buffer megabytes for a client that stopped
//! reading (64 KiB segments, buffers that grow with them), and the gateway would see the stall
//! only after minutes; with these settings it sees it within seconds, as over a real network.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

/// Receive buffer asked for (the kernel doubles it).
const RECV_BUFFER: u32 = 4096;
/// Segment size: the gateway's send buffer grows with it.
const SEGMENT: u32 = 536;

/// Opens `GET {path}` on `target` (an `http://host:port` base URL), resuming after `last_id`
/// when it is not empty; the body's chunks as they come.
pub async fn open(target: &str, path: &str, token: &str, last_id: &str) -> anyhow::Result<super::subscribers::Body> {
    let authority = target.strip_prefix("http://").context("the stalled client speaks plain http:// only")?;
    let addr: SocketAddr = tokio::net::lookup_host(authority).await?.next().context("no address for the target")?;
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_mss(SEGMENT)?;
    socket.set_nonblocking(true)?;
    let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(socket));
    socket.set_recv_buffer_size(RECV_BUFFER)?;
    let stream = socket.connect(addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // Ends with the connection; aborted with the body if the reader lets go first.
    let driver = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(connection));
    let mut request =
        http::Request::get(path).header(http::header::HOST, authority).header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    if !last_id.is_empty() {
        request = request.header("Last-Event-ID", last_id);
    }
    let response = sender.send_request(request.body(http_body_util::Empty::<Bytes>::new())?).await?;
    if response.status() != 200 {
        bail!("refused: {}", response.status());
    }
    let body = response.into_body().into_data_stream();
    Ok(body
        .map(move |chunk| {
            let _ = &driver;
            chunk.map_err(anyhow::Error::from)
        })
        .boxed())
}
