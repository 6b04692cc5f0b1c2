//! Reading `text/event-stream` events in place: the bytes of a read are scanned where they lie
//! and each event is handed out as slices of them, with no allocation per event. The tool reads
//! over a million events a second on one core; `shared::sse::Parser` (a `String` per line and per
//! event, a `Vec` per chunk) is its reference, and the tests hold the two to the same output.
//!
//! Lines ending in LF, as the gateway writes them, are read here. The spec also allows CR and CRLF;
//! a stream in which a CR appears is handed, state and all, to the spec parser from then on, so
//! that what is read stays exactly what a browser would read.

use memchr::{memchr, memmem};
use shared::sse::{Item, Parser};

/// An event as dispatched: slices valid for the call that receives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Event<'a> {
    /// The event type; `message` when the stream gave none.
    pub event: &'a [u8],
    /// The data lines' values joined by LF.
    pub data: &'a [u8],
    /// The last event ID string at dispatch.
    pub last_event_id: &'a [u8],
}

const BOM: &[u8] = b"\xEF\xBB\xBF";
const MESSAGE: &[u8] = b"message";

/// Incremental, allocation-free event scanner; feed it a stream's body bytes as they come.
#[derive(Debug, Default)]
pub(crate) struct Scanner {
    /// The unfinished event's bytes, from its first line, when a read ended inside it.
    carry: Vec<u8>,
    /// The leading byte-order mark (if any) is behind us.
    started: bool,
    /// The spec's "last event ID buffer" (set by `id:` lines) and "last event ID string" (set
    /// from it at each dispatch).
    id_buffer: Vec<u8>,
    last_event_id: Vec<u8>,
    /// An event's data when it has more than one `data:` line.
    joined: Vec<u8>,
    /// The spec parser, once a CR was seen.
    fallback: Option<Box<Parser>>,
}

/// Fields of the event being scanned, as slices of the scanned bytes.
#[derive(Default)]
struct Fields<'a> {
    event: &'a [u8],
    data: &'a [u8],
    data_lines: usize,
}

impl Scanner {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// What a browser would send as `Last-Event-ID` now.
    pub(crate) fn last_event_id(&self) -> &[u8] {
        match &self.fallback {
            Some(p) => p.last_event_id().as_bytes(),
            None => &self.last_event_id,
        }
    }

    /// Feeds the next bytes of the stream and calls `on` with every event they complete.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], on: &mut impl FnMut(Event<'_>)) {
        if self.fallback.is_none() && memchr(b'\r', bytes).is_some() {
            self.fall_back();
        }
        if let Some(parser) = &mut self.fallback {
            for item in parser.feed(bytes) {
                if let Item::Event(e) = item {
                    on(Event { event: e.event.as_bytes(), data: e.data.as_bytes(), last_event_id: e.last_event_id.as_bytes() });
                }
            }
            return;
        }
        if !self.started && self.carry.is_empty() && bytes.len() >= BOM.len() {
            bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
            self.started = true;
        }
        if !self.started || !self.carry.is_empty() {
            // Complete the carried event (or the byte-order mark) first, then go on in place.
            let end = match self.started {
                true => event_end(self.carry.last() == Some(&b'\n'), bytes).unwrap_or(bytes.len()),
                false => bytes.len(),
            };
            self.carry.extend_from_slice(&bytes[..end]);
            bytes = &bytes[end..];
            if !self.started {
                if self.carry.len() < BOM.len() && BOM.starts_with(&self.carry) {
                    return;
                }
                if self.carry.starts_with(BOM) {
                    self.carry.drain(..BOM.len());
                }
                self.started = true;
            }
            let carry = std::mem::take(&mut self.carry);
            let used = self.scan(&carry, on);
            self.carry = carry;
            self.carry.drain(..used);
            if !self.carry.is_empty() {
                // Still unfinished: then it took all of `bytes`.
                return;
            }
        }
        let used = self.scan(bytes, on);
        self.carry.extend_from_slice(&bytes[used..]);
    }

    /// The stream ended: an unfinished event is discarded, as the spec requires.
    pub(crate) fn finish(&mut self) {
        self.carry.clear();
        if let Some(p) = &mut self.fallback {
            p.finish();
        }
    }

    /// Dispatches the complete events of `buf` (which starts at an event's first line) and
    /// returns where the unfinished one starts. `id:` lines count as they come, as in the spec.
    fn scan(&mut self, buf: &[u8], on: &mut impl FnMut(Event<'_>)) -> usize {
        let mut start = 0;
        let mut pos = 0;
        let mut fields = Fields::default();
        while let Some(n) = memchr(b'\n', &buf[pos..]) {
            let line = &buf[pos..pos + n];
            pos += n + 1;
            if line.is_empty() {
                self.dispatch(&fields, on);
                fields = Fields::default();
                start = pos;
                continue;
            }
            if line[0] == b':' {
                continue; // a comment: the heartbeat
            }
            let (field, value) = match memchr(b':', line) {
                Some(c) => (&line[..c], line[c + 1..].strip_prefix(b" ").unwrap_or(&line[c + 1..])),
                None => (line, &[][..]),
            };
            match field {
                b"data" => {
                    if fields.data_lines == 1 {
                        self.joined.clear();
                        self.joined.extend_from_slice(fields.data);
                    }
                    if fields.data_lines >= 1 {
                        self.joined.push(b'\n');
                        self.joined.extend_from_slice(value);
                    }
                    fields.data = value;
                    fields.data_lines += 1;
                }
                b"event" => fields.event = value,
                b"id" if memchr(0, value).is_none() => {
                    self.id_buffer.clear();
                    self.id_buffer.extend_from_slice(value);
                }
                _ => {} // `retry:` sets a delay the tool does not use; unknown fields are ignored
            }
        }
        start
    }

    fn dispatch(&mut self, fields: &Fields<'_>, on: &mut impl FnMut(Event<'_>)) {
        self.last_event_id.clone_from(&self.id_buffer);
        let data = match fields.data_lines {
            0 => return,
            1 => fields.data,
            _ => &self.joined,
        };
        let event = if fields.event.is_empty() { MESSAGE } else { fields.event };
        on(Event { event, data, last_event_id: &self.last_event_id });
    }

    /// Hands the stream to the spec parser: the same last event ID string and buffer, then the
    /// unfinished event's bytes (re-reading its `id:` lines sets the buffer to what it is).
    fn fall_back(&mut self) {
        let mut parser = Parser::new();
        if self.started {
            let mut state = b"id: ".to_vec();
            state.extend_from_slice(&self.last_event_id);
            state.extend_from_slice(b"\n\nid: ");
            state.extend_from_slice(&self.id_buffer);
            state.push(b'\n');
            let _ = parser.feed(&state);
        }
        let _ = parser.feed(&self.carry);
        self.carry.clear();
        self.fallback = Some(Box::new(parser));
    }
}

/// Where the first event ends in `bytes` (just after its blank line), when what came before
/// `bytes` was an unfinished event whose last line `after_lf` ended.
fn event_end(after_lf: bool, bytes: &[u8]) -> Option<usize> {
    if after_lf && bytes.first() == Some(&b'\n') {
        return Some(1);
    }
    memmem::find(bytes, b"\n\n").map(|i| i + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event of `input` fed in pieces of `step` bytes, as owned (event, data, id) triples.
    fn scan(input: &[u8], step: usize) -> (Vec<(String, String, String)>, Vec<u8>) {
        let mut s = Scanner::new();
        let mut out = Vec::new();
        for piece in input.chunks(step.max(1)) {
            s.feed(piece, &mut |e| {
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                out.push((text(e.event), text(e.data), text(e.last_event_id)));
            });
        }
        (out, s.last_event_id().to_vec())
    }

    /// The reference: what `shared::sse::Parser` makes of the same bytes.
    fn reference(input: &[u8]) -> (Vec<(String, String, String)>, Vec<u8>) {
        let mut p = Parser::new();
        let events = shared::sse::events(p.feed(input)).into_iter().map(|e| (e.event, e.data, e.last_event_id)).collect();
        (events, p.last_event_id().as_bytes().to_vec())
    }

    const STREAMS: &[&[u8]] = &[
        b"retry: 3000\n\n:\nid: 1-0\ndata: {\"seq\":0}\n\n:\n:\nid: 2-0\ndata: {\"seq\":1}\n\n",
        b"data: one\ndata: two\ndata:\ndata:three\n\nevent: gateway.lost\ndata: {\"after\":\"1-0\"}\n\n",
        b"\xEF\xBB\xBFid: a\n\ndata: x\n\n\n\nid\ndata\n\nid: b\0c\ndata: y\n\n",
        b"event: e\ndata: p\nid: 7\n\ndata: q\n\nid: 9\nbogus\nfield: value\nevent\ndata:  two spaces\n\n",
        b"id: 1\ndata: a\r\n\r\nid: 2\rdata: b\r\rdata: c\n\nid: 3\r\ndata: d\r\n\r\n",
        b"id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: cut off\n",
    ];

    #[test]
    fn reads_what_the_spec_parser_reads_however_the_bytes_are_split() {
        for input in STREAMS {
            let want = reference(input);
            for step in [1, 2, 3, 5, 7, 16, 64, input.len()] {
                assert_eq!(scan(input, step), want, "{} in pieces of {step}", String::from_utf8_lossy(input));
            }
        }
    }

    #[test]
    fn random_streams_split_at_random_read_the_same() {
        const LINES: &[&[u8]] = &[
            b"id: 1-0\n",
            b"id: 22-1\n",
            b"data: {\"seq\":1}\n",
            b"data: x\n",
            b"data\n",
            b"event: gateway.lost\n",
            b":\n",
            b"retry: 5\n",
            b"\n",
            b"\n",
            b"\n",
            b"id\n",
            b"data:  y\n",
            b"\xEF\xBB\xBF",
            b"x\r\n",
            b"\r",
        ];
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for round in 0..2000 {
            // Mostly LF-only streams; every eighth may carry a CR (and so goes to the fallback).
            let kinds = if round % 8 == 0 { LINES.len() } else { LINES.len() - 2 };
            let input: Vec<u8> = (0..next(40)).flat_map(|_| LINES[next(kinds)].iter().copied()).collect();
            let want = reference(&input);
            let mut s = Scanner::new();
            let (mut got, mut rest) = (Vec::new(), &input[..]);
            while !rest.is_empty() {
                let (piece, tail) = rest.split_at(1 + next(rest.len().min(48)));
                s.feed(piece, &mut |e| got.push((e.event.to_vec(), e.data.to_vec(), e.last_event_id.to_vec())));
                rest = tail;
            }
            let want_events: Vec<_> =
                want.0.iter().map(|(e, d, i)| (e.clone().into_bytes(), d.clone().into_bytes(), i.clone().into_bytes())).collect();
            assert_eq!((got, s.last_event_id().to_vec()), (want_events, want.1), "{}", String::from_utf8_lossy(&input));
        }
    }

    #[test]
    fn a_cut_event_is_discarded_and_its_id_kept_for_the_next_event_as_the_spec_parser_does() {
        let mut s = Scanner::new();
        let mut p = Parser::new();
        let mut got = Vec::new();
        for piece in [&b"id: 1\ndata: a\n\nid: 2\ndata: b"[..], b"\nid: 3\n"] {
            s.feed(piece, &mut |e| got.push(e.data.to_vec()));
            let _ = p.feed(piece);
        }
        s.finish();
        p.finish();
        let next = b"event: gateway.lost\ndata: {}\n\n";
        s.feed(next, &mut |e| got.push(e.last_event_id.to_vec()));
        let want = shared::sse::events(p.feed(next));
        assert_eq!(got, [b"a".to_vec(), want[0].last_event_id.as_bytes().to_vec()]);
        assert_eq!(s.last_event_id(), p.last_event_id().as_bytes());
    }

    #[test]
    fn an_event_is_handed_out_as_slices_of_the_read() {
        let input = b"id: 5-0\ndata: {\"seq\":5}\n\n";
        let mut s = Scanner::new();
        let mut seen = 0;
        s.feed(input, &mut |e| {
            assert_eq!(e.data.as_ptr(), input[14..].as_ptr(), "not copied");
            assert_eq!((e.event, e.last_event_id), (&b"message"[..], &b"5-0"[..]));
            seen += 1;
        });
        assert_eq!(seen, 1);
    }
}
