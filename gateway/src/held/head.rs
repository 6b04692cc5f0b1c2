//! Reading a request head on a fresh socket, and deciding who serves it.
//!
//! The head is read into a buffer that starts small (most `EventSource` heads, cookies included,
//! fit in 2 KiB) and grows up to [`MAX_HEAD_BYTES`]; it is released once the head is parsed, so a
//! held stream keeps none of it. Parsing is `httparse`, hyper's own parser.
//!
//! Only a plain HTTP/1.x `GET` of a stream endpoint takes the lean path. Everything else (other
//! routes, bodies, upgrades, HTTP/2's preface, malformed or oversized heads) is handed to hyper
//! with the bytes read so far, so hyper answers it exactly as it would have.

use std::time::Duration;

use axum::body::Body;
use bytes::BytesMut;
use http::{HeaderName, HeaderValue, Method, Request, Uri, Version};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::config::HUB_PATH;
use crate::hyper_conn::MAX_HEAD_BYTES;

/// Headers a head may have on the lean path; a head with more goes to hyper (which has the same
/// limit and answers 431).
const MAX_HEADERS: usize = 100;
/// The buffer's first size.
const FIRST_READ: usize = 2048;
/// The paths served on the lean path.
const STREAM_PATHS: [&str; 2] = ["/events", HUB_PATH];

/// What the socket sent first.
#[derive(Debug)]
pub(crate) enum Head {
    /// A stream request for the lean path.
    Lean(Box<LeanHead>),
    /// Anything else: hyper serves the socket from here, starting with these bytes.
    Hyper,
    /// The socket closed, timed out or failed before a complete head (or shutdown began).
    Gone,
}

/// A parsed stream request.
#[derive(Debug)]
pub(crate) struct LeanHead {
    pub request: Request<Body>,
    /// HTTP/1.1: the body is chunked, and the socket may carry another request after an error.
    pub http11: bool,
    /// The client allows another request on the socket after this one's response.
    pub keep_alive: bool,
}

/// Reads until `buf` holds a complete head (after any bytes already in it), within `timeout`.
/// On [`Head::Lean`] the head's bytes are removed from `buf`; what follows them (a pipelined
/// request) stays.
pub(crate) async fn read(socket: &mut TcpStream, buf: &mut BytesMut, timeout: Duration, stop: &CancellationToken) -> Head {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if !buf.is_empty() {
            match classify(buf) {
                Some(head) => return head,
                None if buf.len() >= MAX_HEAD_BYTES => return Head::Hyper,
                None => {}
            }
        }
        if buf.capacity() == buf.len() {
            buf.reserve(if buf.is_empty() { FIRST_READ } else { buf.len().min(MAX_HEAD_BYTES) });
        }
        let read = tokio::select! {
            read = tokio::time::timeout_at(deadline, socket.read_buf(buf)) => read,
            _ = stop.cancelled() => return Head::Gone,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Head::Gone,
            Ok(Ok(_)) => {}
        }
    }
}

/// `None`: the head is not complete yet.
fn classify(buf: &mut BytesMut) -> Option<Head> {
    // HTTP/2 with prior knowledge starts with `PRI * HTTP/2.0`.
    if buf.starts_with(b"PRI") || b"PRI".starts_with(&buf[..buf.len().min(3)]) {
        return Some(Head::Hyper);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return None,
        Err(_) => return Some(Head::Hyper),
    };
    let Some(head) = lean_request(&parsed) else { return Some(Head::Hyper) };
    let _ = buf.split_to(len);
    Some(Head::Lean(Box::new(head)))
}

/// The request, if it is one the lean path serves: `GET` of a stream path over HTTP/1.x, with
/// no body and no upgrade.
fn lean_request(parsed: &httparse::Request<'_, '_>) -> Option<LeanHead> {
    if parsed.method? != "GET" {
        return None;
    }
    let target = parsed.path?;
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if !STREAM_PATHS.contains(&path) {
        return None;
    }
    let version = match parsed.version? {
        0 => Version::HTTP_10,
        1 => Version::HTTP_11,
        _ => return None,
    };
    let mut request = Request::builder().method(Method::GET).uri(Uri::try_from(target).ok()?).version(version);
    let mut close = false;
    let mut keep_alive_header = false;
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let body = (name == http::header::CONTENT_LENGTH && h.value.trim_ascii() != b"0") || name == http::header::TRANSFER_ENCODING;
        if body || name == http::header::UPGRADE || name == http::header::EXPECT {
            return None;
        }
        if name == http::header::CONNECTION {
            let value = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            close |= value.split(',').any(|t| t.trim() == "close");
            keep_alive_header |= value.split(',').any(|t| t.trim() == "keep-alive");
        }
        request = request.header(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    let http11 = version == Version::HTTP_11;
    let keep_alive = !close && (http11 || keep_alive_header);
    Some(LeanHead { request: request.body(Body::empty()).ok()?, http11, keep_alive })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_str(s: &str) -> (Option<Head>, usize) {
        let mut buf = BytesMut::from(s);
        let head = classify(&mut buf);
        (head, buf.len())
    }

    #[test]
    fn stream_gets_take_the_lean_path_and_leave_what_follows() {
        let (head, left) = classify_str("GET /events?topic=a HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 1-0\r\n\r\nGET /health");
        let Some(Head::Lean(head)) = head else { panic!("lean") };
        assert!(head.http11 && head.keep_alive);
        assert_eq!(head.request.uri().query(), Some("topic=a"));
        assert_eq!(head.request.headers()["last-event-id"], "1-0");
        assert_eq!(left, "GET /health".len());
    }

    #[test]
    fn everything_else_goes_to_hyper() {
        for head in [
            "POST /events HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
            "GET /events HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            "GET /events HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "GET /health HTTP/1.1\r\n\r\n",
            "HEAD /events HTTP/1.1\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "PR",
            "GET /ev ents HTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(classify_str(head).0, Some(Head::Hyper)), "{head:?}");
        }
    }

    #[test]
    fn partial_heads_wait_and_http_1_0_closes_unless_asked() {
        assert!(classify_str("GET /events HTTP/1.1\r\nHost").0.is_none());
        let Some(Head::Lean(head)) = classify_str("GET /events HTTP/1.0\r\n\r\n").0 else { panic!("lean") };
        assert!(!head.http11 && !head.keep_alive);
        let Some(Head::Lean(head)) = classify_str("GET /events HTTP/1.1\r\nConnection: close\r\n\r\n").0 else { panic!("lean") };
        assert!(!head.keep_alive);
    }
}
