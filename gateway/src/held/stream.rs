//! A held stream: a caught-up SSE stream that the fan-out writes to directly.
//!
//! Nothing waits per event. The fan-out calls [`Held::deliver`] for each event of a followed
//! topic, which writes the frame to the socket at once (`try_write`: the socket's send buffer
//! takes it, or the call says it would block). Two things make a stream keep a **backlog** of
//! frames instead, freed as soon as it is written:
//! - its socket is full: the stream's own task (`writer.rs`) writes the backlog as the socket
//!   drains (the stream is *behind*);
//! - events come faster than [`COALESCE`] apart, or the fan-out hands them out more than
//!   `fanout::LATE` after they were published (the node is behind): the frame waits, a few
//!   milliseconds at most,
//!   for its shard's flusher (`flusher.rs`), which writes everything the stream gathered
//!   meanwhile in one call (the stream is *dirty*). Under load that turns many small writes into few larger ones, which is where
//!   a node's CPU goes (the kernel's per-write cost, not the copy); an idle stream is written at
//!   once.
//!
//! So a stream that keeps up holds no queue at all, and one that does not holds at most
//! `GATEWAY_CLIENT_QUEUE` events before it is cut (it resumes from its `Last-Event-ID`).
//!
//! A stream's state sits behind one lock, taken by whoever writes: the fan-out (an event), the
//! schedule (a heartbeat, a refresh offer, the token's end), the control plane through the task
//! (a revocation), or the task (the backlog). One writer at a time keeps the frames in order.

use std::any::Any;
use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::{Buf, Bytes};
use shared::sse::HEARTBEAT;
use shared::{StreamId, Topic};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::flusher::Flush;
use super::node::Node;
use crate::bus::Delivery;
use crate::bus::fanout::{DirectSink, Membership, Queued};
use crate::control::Registration;
use crate::http_chunk::{CHUNKED_HEARTBEAT, LAST_CHUNK, chunk};
use crate::listener::SocketCount;
use crate::stream::{Frame, OpenStream, Positions, RefreshOffer};

/// Frames written in one call at most.
const WRITE_SLICES: usize = 64;

/// Why a held stream ends; each counts in `connections_closed{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    ClientGone,
    Slow,
    WriteTimeout,
    Expired,
    Revoked,
    Shutdown,
}

impl End {
    /// Whether the stream's last frames are still sent (it ends on the gateway's decision, not
    /// because its client cannot take more).
    pub(crate) fn flushes(self) -> bool {
        matches!(self, End::Expired | End::Revoked | End::Shutdown)
    }
}

/// What a held stream keeps only to release it when it ends.
#[derive(Debug)]
pub(crate) struct Keep {
    pub membership: Option<Membership>,
    pub control: Option<Registration>,
    // These three are never read: they are kept for their `Drop`, which releases them.
    /// The stream-limit permit, a subscription's announcement: see `event_stream.rs`.
    #[expect(dead_code, reason = "kept for its Drop")]
    pub held: Box<dyn Any + Send>,
    #[expect(dead_code, reason = "kept for its Drop")]
    pub open: OpenStream,
    #[expect(dead_code, reason = "kept for its Drop")]
    pub socket: SocketCount,
}

/// An event that reaches a stream sooner than this after its last write waits for the flusher.
pub(super) const COALESCE: Duration = Duration::from_millis(5);

/// Who writes a stream's next bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Whoever has the next frame, at once.
    Direct,
    /// Its shard's flusher: the backlog holds frames that came close together.
    Dirty,
    /// Its own task: the socket was full.
    Behind,
}

#[derive(Debug)]
pub(crate) struct State {
    pub positions: Positions,
    /// Frames waiting for the socket, and how many events they hold; `None` while writes go
    /// straight to the socket.
    backlog: Option<Box<Backlog>>,
    mode: Mode,
    pub end: Option<End>,
    /// HTTP/1.1: frames go out as chunks.
    chunked: bool,
    pub last_write: Instant,
    pub expires_at: Instant,
    /// The token `exp` the stream holds now: a refresh changes it.
    pub exp: u64,
    /// Which deadline entry of the schedule is current (an extended stream gets a new one).
    pub deadline_gen: u32,
    pub refresh: Option<RefreshOffer>,
    pub offered: bool,
    pub shutdown_retry_ms: u64,
    pub keep: Option<Keep>,
}

#[derive(Debug, Default)]
struct Backlog {
    frames: VecDeque<Bytes>,
    events: usize,
}

#[derive(Debug)]
pub(crate) struct Held {
    /// Itself, for the flusher's list (a stream becomes dirty from under `&self`).
    me: Weak<Held>,
    /// Which of the node's flushers writes it when dirty.
    shard: usize,
    pub(super) socket: TcpStream,
    pub(super) node: Arc<Node<Held>>,
    /// Wakes the stream's task: a backlog to write, an end, or the control plane (shared with the
    /// stream's registration, which notifies it on a revocation or a refresh).
    pub(super) wake: Arc<Notify>,
    state: Mutex<State>,
}

impl Held {
    pub(crate) fn new(socket: TcpStream, node: Arc<Node<Held>>, wake: Arc<Notify>, state: State) -> Arc<Self> {
        node.counters.lean_streams.fetch_add(1, Ordering::Relaxed);
        let shard = node.flushers.pick();
        Arc::new_cyclic(|me| Self { me: me.clone(), shard, socket, node, wake, state: Mutex::new(state) })
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a frame of the stream's own (a heartbeat, a refresh offer, a last frame).
    pub(crate) fn send_own(&self, st: &mut State, frame: &[u8]) {
        let piece = if st.chunked { chunk(&[frame]) } else { Bytes::copy_from_slice(frame) };
        self.send(st, &[piece], None);
    }

    pub(crate) fn heartbeat(&self, st: &mut State) {
        if st.chunked {
            self.send(st, &[Bytes::from_static(CHUNKED_HEARTBEAT)], None);
        } else {
            self.send(st, &[Bytes::from_static(HEARTBEAT)], None);
        }
    }

    /// Ends the stream for `why`, after `last` if given (written only when the reason lets the
    /// stream flush). The task finishes the rest.
    pub(crate) fn end(&self, st: &mut State, why: End, last: Option<&[u8]>) {
        if st.end.is_some() {
            return;
        }
        let counters = &self.node.counters;
        let counter = match why {
            End::ClientGone => None,
            End::Slow => Some(&counters.slow_disconnects),
            End::WriteTimeout => Some(&counters.write_timeouts),
            End::Expired => Some(&counters.token_expired_disconnects),
            End::Revoked => Some(&counters.revoked_disconnects),
            End::Shutdown => Some(&counters.shutdown_disconnects),
        };
        if let Some(c) = counter {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if why.flushes() {
            if let Some(last) = last {
                self.send_own(st, last);
            }
            if st.chunked {
                self.send(st, &[Bytes::from_static(LAST_CHUNK)], None);
            }
            // The stream's task writes what is left (within the write timeout), not a flusher.
            if st.mode == Mode::Dirty {
                st.mode = Mode::Behind;
            }
        } else {
            st.backlog = None;
            st.mode = Mode::Direct;
        }
        st.end = Some(why);
        self.wake.notify_one();
    }

    /// Writes `pieces` now if nothing waits before them, else after the backlog. `event`: when
    /// the node received the event they hold and whether the fan-out found it late; the frame
    /// counts against the client queue, and waits for the flusher if it came late or less than
    /// [`COALESCE`] after the stream's last write.
    fn send(&self, st: &mut State, pieces: &[Bytes], event: Option<(Instant, bool)>) {
        if st.end.is_some() {
            return;
        }
        let now = Instant::now();
        // Close to the previous event, or late itself (the node is behind): wait for the flusher,
        // so that the frames waiting meanwhile go out in one write.
        let coalesce = |(received, late): (Instant, bool)| late || received < st.last_write + COALESCE;
        if st.mode == Mode::Direct && event.is_some_and(coalesce) {
            st.mode = Mode::Dirty;
            st.backlog = Some(Box::default());
            if let Some(me) = self.me.upgrade() {
                self.node.flushers.mark(self.shard, me);
            }
        }
        if let Some(backlog) = &mut st.backlog {
            backlog.frames.extend(pieces.iter().cloned());
            if event.is_some() {
                backlog.events += 1;
                if backlog.events > self.node.queue_limit {
                    tracing::warn!(queue = self.node.queue_limit, "client too slow, disconnecting");
                    self.end(st, End::Slow, None);
                }
            }
            return;
        }
        let tried = match pieces {
            [one] => self.socket.try_write(one),
            [a, b] => self.socket.try_write_vectored(&[IoSlice::new(a), IoSlice::new(b)]),
            _ => self.socket.try_write_vectored(&pieces.iter().map(|p| IoSlice::new(p)).collect::<Vec<_>>()),
        };
        let written = match tried {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(_) => return self.end(st, End::ClientGone, None),
        };
        if written > 0 {
            self.node.counters.bytes_written.fetch_add(written as u64, Ordering::Relaxed);
            st.last_write = now;
        }
        let total: usize = pieces.iter().map(Bytes::len).sum();
        if written < total {
            let mut backlog = Box::<Backlog>::default();
            let mut skip = written;
            for p in pieces {
                if skip >= p.len() {
                    skip -= p.len();
                    continue;
                }
                backlog.frames.push_back(p.slice(skip..));
                skip = 0;
            }
            backlog.events = usize::from(event.is_some());
            st.backlog = Some(backlog);
            st.mode = Mode::Behind;
            self.wake.notify_one();
        }
    }

    /// Whether the stream's own task has frames to write.
    pub(crate) fn is_behind(st: &State) -> bool {
        st.mode == Mode::Behind && st.backlog.as_ref().is_some_and(|b| !b.frames.is_empty())
    }

    /// Writes as much of the backlog as the socket takes now, in one call of up to
    /// [`WRITE_SLICES`] frames; the bytes written (the backlog is gone once all are).
    pub(crate) fn write_backlog(&self, st: &mut State) -> std::io::Result<usize> {
        let Some(backlog) = &st.backlog else { return Ok(0) };
        let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
        let mut count = 0;
        for (slot, frame) in slices.iter_mut().zip(&backlog.frames) {
            *slot = IoSlice::new(frame);
            count += 1;
        }
        let written = match self.socket.try_write_vectored(&slices[..count]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        self.written(st, written);
        Ok(written)
    }

    /// Drops `n` written bytes from the front of the backlog.
    pub(crate) fn written(&self, st: &mut State, mut n: usize) {
        if n == 0 {
            return;
        }
        self.node.counters.bytes_written.fetch_add(n as u64, Ordering::Relaxed);
        st.last_write = Instant::now();
        let Some(backlog) = &mut st.backlog else { return };
        while n > 0 {
            let Some(front) = backlog.frames.front_mut() else { break };
            if n >= front.len() {
                n -= front.len();
                backlog.frames.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
        if backlog.frames.is_empty() {
            st.backlog = None;
            st.mode = Mode::Direct;
        }
    }

    /// What was queued for the stream before it went direct (see `Fanout::go_direct`).
    pub(crate) fn take_queued(&self, item: Queued) {
        match item {
            Queued::Event(d) => {
                self.deliver(&d);
            }
            Queued::Rewind { topic, to } => self.rewind(&topic, to),
        }
    }

    pub(crate) fn new_state(positions: Positions, chunked: bool, expires_at: Instant, exp: u64, keep: Keep) -> State {
        State {
            positions,
            backlog: None,
            mode: Mode::Direct,
            end: None,
            chunked,
            last_write: Instant::now(),
            expires_at,
            exp,
            deadline_gen: 0,
            refresh: None,
            offered: false,
            shutdown_retry_ms: 0,
            keep: Some(keep),
        }
    }
}

impl DirectSink for Held {
    fn deliver(&self, d: &Arc<Delivery>) -> bool {
        let mut st = self.state();
        if st.end.is_some() {
            return false;
        }
        let at = Some((Instant::from_std(d.received), d.late.load(Ordering::Relaxed)));
        match st.positions.accept(d, &self.node.counters) {
            None => {}
            Some(Frame::Shared) if st.chunked => self.send(&mut st, &[d.chunk().clone()], at),
            Some(Frame::Shared) => self.send(&mut st, &[d.frame.frame().clone()], at),
            Some(Frame::Own(frame)) if st.chunked => self.send(&mut st, &[chunk(&[&frame])], at),
            Some(Frame::WithCursor { fields, id }) if st.chunked => self.send(&mut st, &[chunk(&[&fields, &id])], at),
            Some(Frame::Own(frame)) => self.send(&mut st, &[frame], at),
            Some(Frame::WithCursor { fields, id }) => self.send(&mut st, &[fields, id], at),
        }
        true
    }

    fn rewind(&self, topic: &Topic, to: StreamId) {
        self.state().positions.rewind(topic, to);
    }
}

impl Flush for Held {
    /// Writes what a dirty stream gathered (its flusher's call): all of it if the socket takes
    /// it; what it does not take goes to the stream's own task.
    fn flush_dirty(&self) {
        let mut st = self.state();
        while st.mode == Mode::Dirty {
            match self.write_backlog(&mut st) {
                Ok(0) => {
                    st.mode = Mode::Behind;
                    self.wake.notify_one();
                }
                Ok(_) => {}
                Err(_) => self.end(&mut st, End::ClientGone, None),
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.node.counters.lean_streams.fetch_sub(1, Ordering::Relaxed);
    }
}
