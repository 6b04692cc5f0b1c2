//! Event streams read as a browser reads them: whatever carries the bytes (a `reqwest` response
//! body, or a raw socket in `wire.rs`), one [`Frames`] reader feeds them to the `shared` parser and
//! hands out its items, with a bound on every wait.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use shared::sse::{Item, ParsedEvent, Parser};
use tokio::time::Instant;

use crate::wait::WAIT;

/// What one pull on a stream's body gave.
#[derive(Debug)]
pub enum Pull {
    /// More of the body.
    Bytes(Vec<u8>),
    /// The body ended (the server closed it, or it failed).
    End,
    /// Nothing came before the deadline.
    Waited,
}

/// Where an event stream's bytes come from.
pub trait Body {
    /// The body's next bytes, waiting until `deadline` at most.
    fn pull(&mut self, deadline: Instant) -> impl Future<Output = Pull> + Send;
}

/// An event stream's items, parsed from a [`Body`] by the `shared` parser.
pub struct Frames<B> {
    body: B,
    parser: Parser,
    items: VecDeque<Item>,
    /// The server ended the stream.
    pub ended: bool,
}

impl<B> std::fmt::Debug for Frames<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frames").field("items", &self.items).field("ended", &self.ended).finish_non_exhaustive()
    }
}

impl<B: Body> Frames<B> {
    pub fn new(body: B) -> Self {
        Self { body, parser: Parser::new(), items: VecDeque::new(), ended: false }
    }

    /// The next parser item, or `None` once the server ended the stream. Fails after `WAIT`.
    pub async fn next_item(&mut self) -> Option<Item> {
        self.next_item_within(WAIT)
            .await
            .unwrap_or_else(|()| panic!("waited {WAIT:?} for the stream's next frame; the server sent nothing"))
    }

    /// Like `next_item`, but `Err(())` if nothing came within `d`.
    pub async fn next_item_within(&mut self, d: Duration) -> Result<Option<Item>, ()> {
        let deadline = Instant::now() + d;
        loop {
            if let Some(item) = self.items.pop_front() {
                return Ok(Some(item));
            }
            if self.ended {
                return Ok(None);
            }
            match self.body.pull(deadline).await {
                Pull::Waited => return Err(()),
                Pull::Bytes(bytes) => self.items.extend(self.parser.feed(&bytes)),
                Pull::End => {
                    self.parser.finish();
                    self.ended = true;
                }
            }
        }
    }

    /// The next event, skipping comments and `retry:` fields.
    pub async fn next_event(&mut self) -> ParsedEvent {
        loop {
            match self.next_item().await {
                Some(Item::Event(e)) => return e,
                Some(_) => continue,
                None => panic!("the stream ended while an event was expected"),
            }
        }
    }

    pub async fn events(&mut self, n: usize) -> Vec<ParsedEvent> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next_event().await);
        }
        out
    }

    /// Every event that comes until none has come for `quiet`.
    pub async fn events_until_quiet(&mut self, quiet: Duration) -> Vec<ParsedEvent> {
        let mut out = Vec::new();
        loop {
            match self.next_item_within(quiet).await {
                Ok(Some(Item::Event(e))) => out.push(e),
                Ok(Some(_)) => continue,
                Ok(None) | Err(()) => return out,
            }
        }
    }

    /// Reads until the server ends the stream, returning everything that came.
    pub async fn until_end(&mut self) -> Vec<Item> {
        let mut out = Vec::new();
        while let Some(item) = self.next_item().await {
            out.push(item);
        }
        out
    }

    /// Asserts that no event arrives within `d` (comments and retries are allowed).
    pub async fn expect_no_event(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_item_within(left).await {
                Err(()) => return,
                Ok(Some(Item::Event(e))) => panic!("unexpected event {e:?}"),
                Ok(Some(_)) => continue,
                Ok(None) => return,
            }
        }
    }

    /// Reads until a heartbeat comment; an event before it fails the test.
    pub async fn heartbeat(&mut self) {
        let heartbeat = Parser::new().feed(shared::sse::HEARTBEAT).pop().expect("the heartbeat is one comment");
        loop {
            match self.next_item().await {
                Some(item) if item == heartbeat => return,
                Some(Item::Event(e)) => panic!("an event where a heartbeat was expected: {e:?}"),
                Some(_) => continue,
                None => panic!("the stream ended while a heartbeat was expected"),
            }
        }
    }

    pub fn last_event_id(&self) -> &str {
        self.parser.last_event_id()
    }
}

/// A `reqwest` response's body.
pub struct ResponseBody(BoxStream<'static, reqwest::Result<bytes::Bytes>>);

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl Body for ResponseBody {
    async fn pull(&mut self, deadline: Instant) -> Pull {
        match tokio::time::timeout_at(deadline, self.0.next()).await {
            Err(_) => Pull::Waited,
            Ok(Some(Ok(chunk))) => Pull::Bytes(chunk.to_vec()),
            Ok(Some(Err(_)) | None) => Pull::End,
        }
    }
}

/// A streaming SSE response read through the `shared` parser: its head, and its body's
/// [`Frames`] (which it derefs to).
#[derive(Debug)]
pub struct SseClient {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    frames: Frames<ResponseBody>,
}

impl SseClient {
    pub fn new(resp: reqwest::Response) -> Self {
        Self { status: resp.status(), headers: resp.headers().clone(), frames: Frames::new(ResponseBody(resp.bytes_stream().boxed())) }
    }
}

impl Deref for SseClient {
    type Target = Frames<ResponseBody>;
    fn deref(&self) -> &Self::Target {
        &self.frames
    }
}

impl DerefMut for SseClient {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.frames
    }
}
