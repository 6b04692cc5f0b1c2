//! The `text/event-stream` wire format: an encoder the gateway uses once per event, and an
//! incremental parser that follows the WHATWG HTML "event stream interpretation" rules, used by
//! the load tester and the tests to read streams exactly as a browser would.

use bytes::{BufMut, Bytes, BytesMut};

use crate::event::Event;

/// An event encoded once, whose bytes every connection that receives it shares.
///
/// The `id:` line comes first so that a connection following several topics can send the same
/// bytes without it ([`EncodedEvent::fields_without_id`]) followed by its own cursor: field order
/// inside an event does not matter to the parser, only the blank line that ends it.
#[derive(Debug, Clone)]
pub struct EncodedEvent {
    frame: Bytes,
    id_line: usize,
}

impl EncodedEvent {
    /// Encodes `event` once: `id:`, `event:`, `retry:`, then its data split into `data:` lines
    /// at every CR, LF and CRLF, so no payload can inject a field or end the event early.
    pub fn new(event: &Event) -> Self {
        let mut buf = BytesMut::with_capacity(event.data.len() + 64);
        if let Some(id) = event.id {
            buf.put_slice(format!("id: {id}\n").as_bytes());
        }
        let id_line = buf.len();
        if let Some(name) = &event.name {
            put_field(&mut buf, "event", name.as_str());
        }
        if let Some(retry) = event.retry {
            put_field(&mut buf, "retry", &retry.to_string());
        }
        put_data(&mut buf, &event.data);
        buf.put_u8(b'\n');
        Self { frame: buf.freeze(), id_line }
    }

    /// The whole frame: `id:` (if any), the other fields, and the terminating blank line.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    /// The fields after the `id:` line, without the terminating blank line (a cheap slice).
    pub fn fields_without_id(&self) -> Bytes {
        self.frame.slice(self.id_line..self.frame.len() - 1)
    }
}

/// Writes one `name: value` line. The caller guarantees `value` holds no CR, LF or NUL (a validated
/// newtype, a number); payloads that may hold line breaks go through [`put_data`].
pub fn put_field(buf: &mut BytesMut, name: &str, value: &str) {
    buf.put_slice(name.as_bytes());
    buf.put_slice(b": ");
    buf.put_slice(value.as_bytes());
    buf.put_u8(b'\n');
}

/// Writes `data` as one `data:` line per line of the payload, splitting on CRLF, CR and LF (the
/// three line ends the parser recognises), so that no payload can end an event or inject a field.
pub fn put_data(buf: &mut BytesMut, data: &str) {
    let mut rest = data;
    loop {
        match rest.find(['\r', '\n']) {
            Some(i) => {
                put_field(buf, "data", &rest[..i]);
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
            None => {
                put_field(buf, "data", rest);
                return;
            }
        }
    }
}

/// A `retry:` field on its own: sets the client's reconnection delay without dispatching an event.
pub fn retry_frame(ms: u64) -> Bytes {
    Bytes::from(format!("retry: {ms}\n\n"))
}

/// A named event without an id: the gateway's own signals ([`crate::event::LOST_EVENT`],
/// [`crate::event::REVOKED_EVENT`], [`crate::event::REFRESH_EVENT`]), which must not move the
/// client's `Last-Event-ID`. `name` holds no CR, LF or NUL (a constant); `data` is split like any
/// payload.
pub fn signal_frame(name: &str, data: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(name.len() + data.len() + 16);
    put_field(&mut buf, "event", name);
    put_data(&mut buf, data);
    buf.put_u8(b'\n');
    buf.freeze()
}

/// The `id:` line and the blank line that end an event whose other fields were sent already
/// ([`EncodedEvent::fields_without_id`]): how a stream following several topics gives each shared
/// event its own cursor. `id` holds no CR, LF or NUL (a cursor).
pub fn id_and_end(id: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(id.len() + 6);
    put_field(&mut buf, "id", id);
    buf.put_u8(b'\n');
    buf.freeze()
}

/// A comment line, ignored by clients; the gateway's heartbeat.
pub const HEARTBEAT: &[u8] = b":\n";

/// An event as a client sees it after the parser dispatched it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEvent {
    /// The event type; `message` when the stream gave none.
    pub event: String,
    /// The `data:` lines joined by LF, as the spec's data buffer holds them.
    pub data: String,
    /// The last event ID string at dispatch (it persists across events until a new `id:` sets it).
    pub last_event_id: String,
}

/// What the parser produced from a chunk of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A complete event (a blank line ended it, and it had data).
    Event(ParsedEvent),
    /// A comment line (text after the colon); heartbeats are empty comments.
    Comment(String),
    /// A valid `retry:` field set the reconnection time.
    Retry(u64),
}

/// Incremental event-stream parser. Feed it bytes as they arrive; it keeps partial lines and
/// partial events between calls, as the spec's interpretation of a stream requires.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    started: bool,
    /// A CR ended the previous line; an LF right after it belongs to the same line end.
    after_cr: bool,
    data: String,
    event_type: String,
    last_event_id: String,
    id_buffer: String,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Parser {
    /// A parser at the start of a stream (a leading BOM is still to be skipped).
    pub fn new() -> Self {
        Self::default()
    }

    /// The last event ID string so far (what a browser would send as `Last-Event-ID`).
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// Feeds bytes and returns what they completed. An event is returned only once its blank
    /// line arrived; a stream that ends mid-event never dispatches it (see [`Parser::finish`]).
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Item> {
        self.buf.extend_from_slice(chunk);
        if !self.started {
            // One leading U+FEFF is skipped; wait until we can tell whether it is there.
            if self.buf.len() < BOM.len() && BOM.starts_with(&self.buf) {
                return Vec::new();
            }
            if self.buf.starts_with(BOM) {
                self.buf.drain(..BOM.len());
            }
            self.started = true;
        }
        let mut out = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < self.buf.len() {
            let b = self.buf[i];
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' && i == start {
                    start = i + 1;
                    i += 1;
                    continue;
                }
            }
            if b == b'\n' || b == b'\r' {
                let line = String::from_utf8_lossy(&self.buf[start..i]).into_owned();
                self.after_cr = b == b'\r';
                self.line(&line, &mut out);
                start = i + 1;
            }
            i += 1;
        }
        self.buf.drain(..start);
        out
    }

    /// Ends the stream: a pending partial line or event is discarded, as the spec requires.
    pub fn finish(&mut self) {
        self.buf.clear();
        self.data.clear();
        self.event_type.clear();
    }

    fn line(&mut self, line: &str, out: &mut Vec<Item>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            out.push(Item::Comment(comment.to_owned()));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event_type = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => self.id_buffer = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    out.push(Item::Retry(ms));
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Item>) {
        self.last_event_id = self.id_buffer.clone();
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the trailing LF added by the last data line
        let event = match std::mem::take(&mut self.event_type) {
            t if t.is_empty() => "message".to_owned(),
            t => t,
        };
        out.push(Item::Event(ParsedEvent { event, data, last_event_id: self.last_event_id.clone() }));
    }
}

/// The events among parser items.
pub fn events(items: Vec<Item>) -> Vec<ParsedEvent> {
    items
        .into_iter()
        .filter_map(|i| match i {
            Item::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
