//! Every accepted socket's first task: read the request head, serve a stream on the lean path or
//! hand the socket to hyper.
//!
//! A stream request is routed through the node's axum router like any other (the handler sees
//! `ClientInfo::lean` and leaves the stream in the response instead of in a body). If the answer
//! is a stream, this task writes its head and first frames, then turns it into a held stream
//! (`stream.rs`) and ends; the held stream's own task is much smaller. If the answer is anything
//! else (a 401, a 429), it is written here, and the socket may carry another request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use hyper_util::server::graceful::Watcher;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tower::ServiceExt;

use super::head::{self, Head, LeanHead};
use super::stream::{Held, Keep};
use super::{Node, writer};
use crate::event_stream::LeanStream;
use crate::http_chunk::{LAST_CHUNK, chunk};
use crate::hyper_conn::{self, Hyper};
use crate::listener::{ClientInfo, SocketCount};
use crate::stream::{EventStream, Parts};

/// The largest body of a non-stream answer on the lean path (errors are a few hundred bytes).
const MAX_ANSWER: usize = 1024 * 1024;

/// Serves one socket until it closes or goes to hyper.
pub(crate) async fn serve_socket(
    node: Arc<Node>,
    mut socket: TcpStream,
    remote: SocketAddr,
    router: Router,
    hyper: Arc<Hyper>,
    watcher: Watcher,
) {
    let count = SocketCount::new(&node.counters);
    let accepted = Instant::now();
    let mut buf = BytesMut::new();
    let mut first = true;
    loop {
        let timeout = if first { hyper.timeouts.first } else { hyper.timeouts.keep_alive };
        match head::read(&mut socket, &mut buf, timeout, &node.shutdown).await {
            Head::Gone => {
                tracing::debug!(%remote, "no complete request head, closing the socket");
                return;
            }
            Head::Hyper => {
                // The first head's deadline runs from the accept, whoever reads it.
                let left = if first { hyper.timeouts.first.saturating_sub(accepted.elapsed()) } else { hyper.timeouts.keep_alive };
                hyper_conn::serve_connection(&hyper, socket, buf.freeze(), count, remote, router, left, watcher).await;
                return;
            }
            Head::Lean(head) => {
                first = false;
                let keep_alive = head.keep_alive;
                let http11 = head.http11;
                let response = route(head, &router).await;
                match answer(&node, &mut socket, response, http11, keep_alive).await {
                    Answered::Again if keep_alive => continue,
                    Answered::Again | Answered::Close => return,
                    Answered::Stream(conn, held) => {
                        drop(watcher);
                        return stream(node, socket, *conn, held, http11, count).await;
                    }
                }
            }
        }
    }
}

async fn route(head: Box<LeanHead>, router: &Router) -> Response {
    let mut request = head.request;
    request.extensions_mut().insert(ConnectInfo(ClientInfo::lean()));
    router.clone().oneshot(request).await.unwrap_or_else(|never| match never {})
}

enum Answered {
    /// A complete answer was written; the socket may carry another request.
    Again,
    Close,
    Stream(Box<EventStream>, Box<dyn std::any::Any + Send>),
}

/// Writes the response's head, and its body unless it is a stream.
async fn answer(node: &Node, socket: &mut TcpStream, mut response: Response, http11: bool, keep_alive: bool) -> Answered {
    let stream = response.extensions_mut().remove::<LeanStream>().and_then(|s| s.take());
    let (parts, body) = response.into_parts();
    let mut out = BytesMut::with_capacity(512);
    let version = if http11 { "HTTP/1.1" } else { "HTTP/1.0" };
    let status = parts.status;
    out.extend_from_slice(format!("{version} {} {}\r\n", status.as_str(), status.canonical_reason().unwrap_or("")).as_bytes());
    for (name, value) in &parts.headers {
        if name != http::header::CONTENT_LENGTH && name != http::header::TRANSFER_ENCODING {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(format!("date: {}\r\n", httpdate::fmt_http_date(std::time::SystemTime::now())).as_bytes());
    if let Some((conn, held)) = stream {
        if http11 {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        out.extend_from_slice(b"\r\n");
        return match write(node, socket, &out).await {
            true => Answered::Stream(Box::new(conn), held),
            false => Answered::Close,
        };
    }
    let body = match axum::body::to_bytes(body, MAX_ANSWER).await {
        Ok(body) => body,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read an answer's body");
            return Answered::Close;
        }
    };
    out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    match (keep_alive, http11) {
        (false, _) => out.extend_from_slice(b"connection: close\r\n"),
        (true, false) => out.extend_from_slice(b"connection: keep-alive\r\n"),
        (true, true) => {}
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    if write(node, socket, &out).await { Answered::Again } else { Answered::Close }
}

/// Writes `bytes` within the write timeout.
async fn write(node: &Node, socket: &mut TcpStream, bytes: &[u8]) -> bool {
    match tokio::time::timeout(node.write_timeout, socket.write_all(bytes)).await {
        Ok(Ok(())) => {
            node.counters.bytes_written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            true
        }
        Ok(Err(_)) => false,
        Err(_) => {
            node.counters.write_timeouts.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// Sends the stream's first frames (its `retry:`, any history it resumes) through its
/// `EventStream`, then holds it on the lean path.
async fn stream(
    node: Arc<Node>,
    mut socket: TcpStream,
    mut conn: EventStream,
    held: Box<dyn std::any::Any + Send>,
    http11: bool,
    count: SocketCount,
) {
    while !conn.is_caught_up() {
        let next = {
            let next = conn.next_chunk();
            tokio::pin!(next);
            loop {
                tokio::select! {
                    chunk = &mut next => break chunk,
                    ready = socket.readable() => if ready.is_err() || writer::client_left(&socket) { return },
                }
            }
        };
        let framed: Bytes = match (next, http11) {
            (Some(frame), true) => chunk(&[&frame]),
            (Some(frame), false) => frame,
            (None, true) => Bytes::from_static(LAST_CHUNK),
            (None, false) => return,
        };
        if !write(&node, &mut socket, &framed).await || framed.as_ref() == LAST_CHUNK {
            return;
        }
    }
    let Parts { positions, sub, control, refresh, offered, expires_at, last_write, shutdown_retry_ms, open } = conn.into_parts();
    let wake = control.as_ref().map(|r| r.entry().wake()).unwrap_or_default();
    let exp = control.as_ref().map_or(0, |r| r.entry().exp());
    let keep = Keep { membership: None, control, held, open, socket: count };
    let mut state = Held::new_state(positions, http11, expires_at, exp, keep);
    state.refresh = refresh;
    state.offered = offered;
    state.last_write = last_write;
    state.shutdown_retry_ms = shutdown_retry_ms;
    let held = Held::new(socket, Arc::clone(&node), wake, state);
    let membership = node.fanout.go_direct(sub, held.clone(), |queued| held.take_queued(queued));
    // Dropped (if the stream is already over) outside the stream's lock: leaving takes the
    // fan-out's lock, which deliveries take before the stream's.
    let unkept = match held.state().keep.as_mut() {
        Some(keep) => keep.membership.replace(membership),
        None => Some(membership),
    };
    drop(unkept);
    node.schedule.add(&held, &node.shutdown);
    node.tasks.spawn(writer::run(held));
}
