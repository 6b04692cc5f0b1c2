//! A raw HTTP/1.x client, for tests where the bytes on the wire matter: several requests on one
//! socket, pipelined requests, HTTP/1.0, request heads of a given size. A response is read by its
//! own framing (`Content-Length`, chunked, or until the server closes), so whatever follows it on
//! the socket stays for the next one; an event stream's body goes through the `shared` parser.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::sse::{Body, Frames, Pull};
use crate::wait::WAIT;

/// One client socket and what it read that no response consumed yet.
#[derive(Debug)]
pub struct Wire {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A response's status and headers (names lowercased, in order).
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn chunked(&self) -> bool {
        self.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }
}

impl Wire {
    pub async fn connect(to: SocketAddr) -> Self {
        Self::connect_from(IpAddr::V4(Ipv4Addr::LOCALHOST), to).await
    }

    /// A socket from the loopback address `source` (several spread many sockets' ports).
    pub async fn connect_from(source: IpAddr, to: SocketAddr) -> Self {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(source, 0)).unwrap_or_else(|e| panic!("bind {source}: {e}"));
        let stream = tokio::time::timeout(WAIT, socket.connect(to))
            .await
            .unwrap_or_else(|_| panic!("waited {WAIT:?} to connect from {source}"))
            .unwrap_or_else(|e| panic!("connect from {source}: {e}"));
        Self { stream, buf: Vec::new() }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        tokio::time::timeout(WAIT, self.stream.write_all(bytes)).await.expect("the server reads the request in time").expect("write");
    }

    /// Writes `bytes`, which the server may refuse (and close on) before reading them all: a failed
    /// write is no failure.
    pub async fn send_refusable(&mut self, bytes: &[u8]) {
        let _ = tokio::time::timeout(WAIT, self.stream.write_all(bytes)).await;
    }

    /// Reads more bytes; false once the server closed the socket (or reset it).
    async fn read_more(&mut self, deadline: Instant, waiting_for: &str) -> bool {
        self.try_read_more(deadline)
            .await
            .unwrap_or_else(|()| panic!("waited {WAIT:?} for {waiting_for}; read so far: {:?}", String::from_utf8_lossy(&self.buf)))
    }

    /// Like `read_more`, but `Err(())` if nothing came before `deadline`.
    async fn try_read_more(&mut self, deadline: Instant) -> Result<bool, ()> {
        self.buf.reserve(4096);
        match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
            Err(_) => Err(()),
            Ok(Ok(n)) => Ok(n > 0),
            Ok(Err(_)) => Ok(false),
        }
    }

    /// The next response head.
    pub async fn head(&mut self) -> Head {
        let deadline = Instant::now() + WAIT;
        let end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p;
            }
            assert!(
                self.read_more(deadline, "a response head").await,
                "closed before a response head: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let text = String::from_utf8(self.buf[..end].to_vec()).expect("an ASCII head");
        self.buf.drain(..end + 4);
        let mut lines = text.split("\r\n");
        let status_line = lines.next().expect("a status line");
        let mut parts = status_line.splitn(3, ' ');
        assert!(parts.next().is_some_and(|v| v.starts_with("HTTP/1.")), "an HTTP/1.x status line: {status_line:?}");
        let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("a status in {status_line:?}"));
        let headers = lines
            .map(|l| {
                let (name, value) = l.split_once(':').unwrap_or_else(|| panic!("a header line: {l:?}"));
                (name.trim().to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        Head { status, headers }
    }

    /// The whole body of a response with a `Content-Length` or chunked body.
    pub async fn body(&mut self, head: &Head) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        if head.chunked() {
            let mut body = Vec::new();
            loop {
                match take_chunk(&mut self.buf) {
                    Some(Chunk::Data(d)) => body.extend_from_slice(&d),
                    Some(Chunk::Last) => return body,
                    None => assert!(self.read_more(deadline, "a chunked body").await, "closed mid-body"),
                }
            }
        }
        let len: usize = head.header("content-length").expect("a Content-Length or chunked body").parse().expect("a length");
        while self.buf.len() < len {
            assert!(self.read_more(deadline, "a body").await, "closed after {} of {len} body bytes", self.buf.len());
        }
        self.buf.drain(..len).collect()
    }

    /// Waits until the server closes the socket, discarding what it sends.
    pub async fn closes(&mut self) {
        let deadline = Instant::now() + WAIT;
        self.buf.clear();
        while self.read_more(deadline, "the server to close the socket").await {
            self.buf.clear();
        }
    }

    /// The rest of the socket as the event stream whose head is `head`.
    pub fn into_events(self, head: &Head) -> RawStream {
        Frames::new(RawBody { chunked: head.chunked(), wire: self })
    }
}

/// An event stream read from the socket's raw bytes.
pub type RawStream = Frames<RawBody>;

/// The body of an event stream on a raw socket: dechunked (HTTP/1.1) or as it comes (an HTTP/1.0
/// body, which runs until the server closes).
#[derive(Debug)]
pub struct RawBody {
    wire: Wire,
    chunked: bool,
}

impl Body for RawBody {
    async fn pull(&mut self, deadline: Instant) -> Pull {
        loop {
            if self.chunked {
                match take_chunk(&mut self.wire.buf) {
                    Some(Chunk::Data(d)) => return Pull::Bytes(d),
                    Some(Chunk::Last) => return Pull::End,
                    None => {}
                }
            } else if !self.wire.buf.is_empty() {
                return Pull::Bytes(std::mem::take(&mut self.wire.buf));
            }
            match self.wire.try_read_more(deadline).await {
                Err(()) => return Pull::Waited,
                Ok(false) => return Pull::End,
                Ok(true) => {}
            }
        }
    }
}

enum Chunk {
    Data(Vec<u8>),
    /// The last chunk (and its empty trailer): the body is complete.
    Last,
}

/// Takes one whole chunk of a chunked body from the front of `buf`, leaving what follows it.
fn take_chunk(buf: &mut Vec<u8>) -> Option<Chunk> {
    let eol = find(buf, b"\r\n")?;
    let line = std::str::from_utf8(&buf[..eol]).expect("an ASCII chunk size line");
    let size_hex = line.split(';').next().unwrap_or_default().trim();
    let size = usize::from_str_radix(size_hex, 16).unwrap_or_else(|_| panic!("a chunk size line: {line:?}"));
    if size == 0 {
        // Trailer fields, if any, end with an empty line.
        let end = eol + find(&buf[eol..], b"\r\n\r\n")? + 4;
        buf.drain(..end);
        return Some(Chunk::Last);
    }
    if buf.len() < eol + 2 + size + 2 {
        return None;
    }
    assert_eq!(&buf[eol + 2 + size..eol + 4 + size], b"\r\n", "a chunk ends with CRLF");
    let data = buf[eol + 2..eol + 2 + size].to_vec();
    buf.drain(..eol + 4 + size);
    Some(Chunk::Data(data))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
