//! A stream over plain HTTP/1.1 on a socket of its own: the request head written here, the
//! response head read with `httparse`, then the body's framing (chunked, by length, or to the
//! close) undone as bytes come. The tool reads over a million events a second on one core; a
//! hyper client costs a task, a body channel and a buffer per stream and several wakeups per
//! chunk, where this costs one read per wakeup into a buffer each runtime thread shares.
//!
//! The chaos run's stalled client also opens its streams here, on a socket with a small receive
//! buffer and segment size. Over loopback the kernel would otherwise buffer megabytes for a client
//! that stopped reading (64 KiB segments, buffers that grow with them), and the gateway would see
//! the stall only after minutes; with these settings it sees it within seconds, as over a network.

use std::cell::RefCell;
use std::future::poll_fn;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Poll, ready};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

/// Bytes read at once. One buffer per runtime thread, lent to a stream for one read.
const READ_SIZE: usize = 64 * 1024;
/// Longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Receive buffer asked for by a stalled client's socket (the kernel doubles it).
const SMALL_RECV_BUFFER: u32 = 4096;
/// A stalled client's segment size: the gateway's send buffer grows with it.
const SMALL_SEGMENT: u32 = 536;

thread_local! {
    static READ_BUFFER: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_SIZE].into_boxed_slice());
}

/// How to reach a stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    /// An `http://host:port` base URL (perhaps with a path prefix).
    pub target: &'a str,
    /// Path and query, appended to the target's.
    pub path: &'a str,
    pub token: &'a str,
    /// Sent as `Last-Event-ID` unless empty.
    pub last_event_id: &'a [u8],
    /// Local address to connect from.
    pub source: Option<IpAddr>,
    /// A stalled client's socket (small receive buffer and segments).
    pub small_socket: bool,
}

/// A stream's body, undone of its framing as it is read.
#[derive(Debug)]
pub(crate) struct RawBody {
    socket: TcpStream,
    framing: Framing,
    /// Body bytes that came in with the response head.
    early: Vec<u8>,
}

/// Whether `target` is one this module opens (plain `http://`).
pub(crate) fn speaks(target: &str) -> bool {
    target.starts_with("http://")
}

/// Opens `GET path` on the target and reads the response head; a status other than 200 is an error.
pub(crate) async fn open(req: Request<'_>) -> anyhow::Result<RawBody> {
    let rest = req.target.strip_prefix("http://").context("plain http:// targets only")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let prefix = &rest[authority.len()..];
    let addr: SocketAddr = tokio::net::lookup_host(authority).await?.next().context("no address for the target")?;
    let socket = socket_for(addr, req.small_socket)?;
    if let Some(ip) = req.source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let mut socket = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(addr)).await.context("connect timed out")??;

    let mut head = Vec::with_capacity(256 + req.token.len() + req.path.len());
    head.extend_from_slice(format!("GET {prefix}{} HTTP/1.1\r\nHost: {authority}\r\n", req.path).as_bytes());
    head.extend_from_slice(format!("Authorization: Bearer {}\r\nAccept: text/event-stream\r\n", req.token).as_bytes());
    if !req.last_event_id.is_empty() {
        head.extend_from_slice(b"Last-Event-ID: ");
        head.extend_from_slice(req.last_event_id);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    socket.write_all(&head).await?;

    let mut buf = Vec::with_capacity(1024);
    loop {
        if buf.len() >= MAX_HEAD {
            bail!("response head longer than {MAX_HEAD} bytes");
        }
        let mut more = [0; 1024];
        let n = socket.read(&mut more).await?;
        if n == 0 {
            bail!("closed before the response head");
        }
        buf.extend_from_slice(&more[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(len) = response.parse(&buf)? else { continue };
        let status = response.code.unwrap_or(0);
        if status != 200 {
            bail!("refused: {status}");
        }
        let framing = framing(response.headers)?;
        return Ok(RawBody { socket, framing, early: buf.split_off(len) });
    }
}

fn socket_for(addr: SocketAddr, small: bool) -> std::io::Result<TcpSocket> {
    if !small {
        return if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() };
    }
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_mss(SMALL_SEGMENT)?;
    socket.set_nonblocking(true)?;
    let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(socket));
    socket.set_recv_buffer_size(SMALL_RECV_BUFFER)?;
    Ok(socket)
}

/// The body's framing, from the response headers (RFC 9112 §6.3).
fn framing(headers: &[httparse::Header<'_>]) -> anyhow::Result<Framing> {
    let header = |name: &'static str| headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value);
    if let Some(codings) = header("transfer-encoding").next_back() {
        let last = codings.rsplit(|&b| b == b',').next().unwrap_or_default();
        if !last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            bail!("unsupported transfer-encoding");
        }
        return Ok(Framing::Chunked(Chunk::Size { size: 0, digits: 0 }));
    }
    match header("content-length").next() {
        Some(v) => Ok(Framing::Length(std::str::from_utf8(v)?.trim().parse().context("bad content-length")?)),
        None => Ok(Framing::Close),
    }
}

impl RawBody {
    /// Waits for the next bytes and hands the body's part of them to `on_body` (as the slices
    /// between chunk headers, in order). Returns false once the body is over, the connection was
    /// closed or the framing broken. Cancel-safe: it waits only before reading.
    pub(crate) async fn read(&mut self, on_body: impl FnOnce(&mut dyn Iterator<Item = &[u8]>)) -> bool {
        if !self.early.is_empty() {
            let early = std::mem::take(&mut self.early);
            on_body(&mut Segments { framing: &mut self.framing, bytes: &early });
            return self.framing.open();
        }
        let mut on_body = Some(on_body);
        let socket = &mut self.socket;
        let framing = &mut self.framing;
        poll_fn(|cx| {
            READ_BUFFER.with_borrow_mut(|buf| {
                let mut read = ReadBuf::new(buf);
                // tokio's read clears the socket's readiness after a short read: one syscall a wakeup.
                match ready!(Pin::new(&mut *socket).poll_read(cx, &mut read)) {
                    Ok(()) if read.filled().is_empty() => return Poll::Ready(false),
                    Ok(()) => {}
                    Err(_) => return Poll::Ready(false),
                }
                if let Some(f) = on_body.take() {
                    f(&mut Segments { framing: &mut *framing, bytes: read.filled() });
                }
                Poll::Ready(framing.open())
            })
        })
        .await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Chunked(Chunk),
    Length(u64),
    /// Until the connection closes.
    Close,
    Done,
    Broken,
}

/// Where the chunked decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk's size in hex.
    Size {
        size: u64,
        digits: u8,
    },
    /// After the size: extensions, up to the line end.
    Extension {
        size: u64,
    },
    Data {
        left: u64,
    },
    /// The line end after a chunk's data.
    DataEnd {
        cr: bool,
    },
    /// After the last chunk: trailer lines up to an empty one.
    Trailer {
        line_start: bool,
    },
}

impl Framing {
    fn open(&self) -> bool {
        !matches!(self, Framing::Done | Framing::Broken)
    }
}

/// The body's slices of one read.
struct Segments<'a> {
    framing: &'a mut Framing,
    bytes: &'a [u8],
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if self.bytes.is_empty() {
                return None;
            }
            let chunk = match self.framing {
                Framing::Close => return Some(std::mem::take(&mut self.bytes)),
                Framing::Length(left) => {
                    let (body, rest) = self.bytes.split_at(self.bytes.len().min(usize::try_from(*left).unwrap_or(usize::MAX)));
                    *left -= body.len() as u64;
                    if *left == 0 {
                        *self.framing = Framing::Done;
                    }
                    self.bytes = rest;
                    return Some(body);
                }
                Framing::Done | Framing::Broken => return None,
                Framing::Chunked(c) => c,
            };
            if let Chunk::Data { left } = chunk {
                let (body, rest) = self.bytes.split_at(self.bytes.len().min(usize::try_from(*left).unwrap_or(usize::MAX)));
                *left -= body.len() as u64;
                if *left == 0 {
                    *chunk = Chunk::DataEnd { cr: false };
                }
                self.bytes = rest;
                return Some(body);
            }
            let b = self.bytes[0];
            self.bytes = &self.bytes[1..];
            *self.framing = match step(*chunk, b) {
                Some(Some(next)) => Framing::Chunked(next),
                Some(None) => Framing::Done,
                None => Framing::Broken,
            };
        }
    }
}

/// One byte of chunk framing: the next state, `Some(None)` at the end of the body, `None` if broken.
fn step(state: Chunk, b: u8) -> Option<Option<Chunk>> {
    let line_end = |size: u64| if size == 0 { Chunk::Trailer { line_start: true } } else { Chunk::Data { left: size } };
    Some(Some(match state {
        Chunk::Size { size, digits } => match (b as char).to_digit(16) {
            Some(d) if digits < 16 => Chunk::Size { size: size << 4 | u64::from(d), digits: digits + 1 },
            _ if digits == 0 => return None,
            None if b == b'\n' => line_end(size),
            None if matches!(b, b';' | b'\r' | b' ' | b'\t') => Chunk::Extension { size },
            _ => return None,
        },
        Chunk::Extension { size } => match b {
            b'\n' => line_end(size),
            _ => Chunk::Extension { size },
        },
        Chunk::Data { .. } => unreachable!("data is taken whole"),
        Chunk::DataEnd { cr } => match b {
            b'\r' if !cr => Chunk::DataEnd { cr: true },
            b'\n' => Chunk::Size { size: 0, digits: 0 },
            _ => return None,
        },
        Chunk::Trailer { line_start } => match b {
            b'\n' if line_start => return Some(None),
            b'\n' => Chunk::Trailer { line_start: true },
            b'\r' => Chunk::Trailer { line_start },
            _ => Chunk::Trailer { line_start: false },
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body of `wire` fed in pieces of `step` bytes, and whether the framing ended.
    fn unframe(mut framing: Framing, wire: &[u8], step: usize) -> (Vec<u8>, Framing) {
        let mut body = Vec::new();
        for piece in wire.chunks(step) {
            body.extend(Segments { framing: &mut framing, bytes: piece }.flatten());
        }
        (body, framing)
    }

    const CHUNKED: Framing = Framing::Chunked(Chunk::Size { size: 0, digits: 0 });

    #[test]
    fn chunked_bodies_are_undone_however_the_reads_split_them() {
        let wire = b"9\r\ndata: x\n\n\r\n2\r\n:\n\r\n1a;ext=1\r\nid: 1\ndata: abcdefghijkl\n\n\r\n0\r\nx-trailer: 1\r\n\r\nignored";
        let body = b"data: x\n\n:\nid: 1\ndata: abcdefghijkl\n\n";
        for step in [1, 2, 3, 7, 64, wire.len()] {
            assert_eq!(unframe(CHUNKED, wire, step), (body.to_vec(), Framing::Done), "pieces of {step}");
        }
        assert_eq!(unframe(CHUNKED, b"5\r\nabcdeXX", 64).1, Framing::Broken, "data must end with a line end");
        assert_eq!(unframe(CHUNKED, b"zz\r\n", 64).1, Framing::Broken);
        assert_eq!(unframe(CHUNKED, b"11111111111111111\r\n", 64).1, Framing::Broken, "sizes beyond 64 bits");
    }

    #[test]
    fn length_and_close_delimited_bodies() {
        assert_eq!(unframe(Framing::Length(4), b"abcdef", 3), (b"abcd".to_vec(), Framing::Done));
        assert_eq!(unframe(Framing::Close, b"abcdef", 4), (b"abcdef".to_vec(), Framing::Close));
    }

    #[test]
    fn framing_follows_the_headers() {
        let h = |name, value| httparse::Header { name, value };
        assert_eq!(framing(&[h("Transfer-Encoding", b"chunked")]).ok(), Some(CHUNKED));
        assert_eq!(framing(&[h("content-length", b"12")]).ok(), Some(Framing::Length(12)));
        assert_eq!(framing(&[h("content-type", b"text/event-stream")]).ok(), Some(Framing::Close));
        assert!(framing(&[h("transfer-encoding", b"gzip")]).is_err());
    }

    #[tokio::test]
    async fn a_stream_is_opened_with_its_headers_and_read_to_its_end() {
        use tokio::io::AsyncBufReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let target = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            let mut socket = tokio::io::BufReader::new(socket);
            let mut head = String::new();
            while !head.ends_with("\r\n\r\n") {
                socket.read_line(&mut head).await.expect("head");
            }
            let reply = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n9\r\ndata: x\n\n\r\n";
            socket.get_mut().write_all(reply.as_bytes()).await.expect("write");
            socket.get_mut().write_all(b"9\r\ndata: y\n\n\r\n0\r\n\r\n").await.expect("write");
            head
        });
        let req = Request {
            target: &target,
            path: "/events?topic=a",
            token: "t0k",
            last_event_id: b"1-0",
            source: Some("127.0.0.1".parse().expect("ip")),
            small_socket: true,
        };
        let mut body = open(req).await.expect("opens");
        let mut got = Vec::new();
        while body.read(|segments| segments.for_each(|s| got.extend_from_slice(s))).await {}
        assert_eq!(got, b"data: x\n\ndata: y\n\n");
        let head = server.await.expect("server");
        assert!(head.starts_with("GET /events?topic=a HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("\r\nAuthorization: Bearer t0k\r\n") && head.contains("\r\nLast-Event-ID: 1-0\r\n"), "{head}");
    }
}
