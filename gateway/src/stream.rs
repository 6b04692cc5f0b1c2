//! One SSE stream: the frames it sends, in order.
//!
//! A stream first registers with the node's fan-out (so nothing published from then on is
//! missed), then replays the history of its resumed topics after their positions, merged in id
//! order (`replay`), then sends live events, dropping any it already replayed by comparing ids.
//! It keeps one position per topic; the `id:` it sends is the event's own stream id when it
//! follows one topic (so the frame bytes are shared by every stream) and the multi-topic
//! cursor otherwise.
//!
//! The stream ends itself on shutdown (after a last jittered `retry:`), when the token expires
//! (unless a fresh one extended it: see `lifetime`), when an administrator revokes it (after a
//! last `gateway.revoked`), when the client is too slow, or when the bus fails; the client then
//! resumes from its `Last-Event-ID` on any node.
//!
//! A stream served by hyper (HTTP/2, or after other requests on its socket) is this stream
//! for its whole life, pulled frame by frame as its body. On the lean path (`held/`) the
//! stream sends its first frames and any history, then is handed over
//! (`handover.rs`): the fan-out writes to the socket from there.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use shared::cursor::{self, Cursor};
use shared::sse::{self, HEARTBEAT};
use shared::{StreamId, Topic};
use tokio::sync::futures::OwnedNotified;
use tokio::time::{Instant, Sleep, sleep_until};
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::bus::fanout::{Fanout, Inbox, Queued};
use crate::bus::{Bus, BusError, Delivery};
use crate::control::Registration;
use crate::counters::Counters;
use replay::{Merge, Step};

mod handover;
mod lifetime;
mod positions;
mod replay;
mod settings;
mod signals;

pub(crate) use handover::{OpenStream, Parts};
pub(crate) use positions::{Frame, Positions};
pub(crate) use settings::{RefreshOffer, Render, StreamSettings};
use signals::lost_frame;
pub(crate) use signals::{refresh_frame, revoked_frame};

/// Events read from history per bus call while replaying.
const REPLAY_PAGE: usize = 256;

#[derive(Debug)]
struct Refresh {
    offer: RefreshOffer,
    /// Sent for the current token (a refresh that extends the stream offers again later).
    offered: bool,
}

#[derive(Debug)]
pub(crate) struct EventStream {
    positions: Positions,
    sub: Inbox,
    bus: Arc<dyn Bus>,
    pending: VecDeque<Bytes>,
    /// The history still to send before live events; `None` once live (boxed: most streams never
    /// replay, and a live one should not carry its size).
    replay: Option<Box<Merge>>,
    heartbeat_every: Duration,
    /// Fires at the earliest time a heartbeat may be due; see `live_step`.
    heartbeat: Pin<Box<Sleep>>,
    /// When the last chunk left: a heartbeat is due `heartbeat_every` after it. Recorded per
    /// chunk instead of resetting the timer per chunk, which costs a timer-wheel update per event.
    last_write: Instant,
    /// Fires at the refresh point while a refresh is due, then at the token's end.
    expiry: Pin<Box<Sleep>>,
    expires_at: Instant,
    refresh: Option<Refresh>,
    control: Option<Registration>,
    /// Fires when the control plane revoked or extended the stream; kept like `shutdown`.
    control_wake: Option<Pin<Box<OwnedNotified>>>,
    /// Created once and kept: a fresh `cancelled()` future per event would register and drop a
    /// waiter on the token's lock for every event of every stream.
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    slow: Pin<Box<WaitForCancellationFutureOwned>>,
    shutdown_retry_ms: u64,
    counters: Arc<Counters>,
    open: OpenStream,
    done: bool,
}

impl EventStream {
    /// Whether everything due is sent: the history replayed, no frame waiting, the stream not
    /// over. Live events may still wait in the fan-out queue; the lean path takes those over.
    pub(crate) fn is_caught_up(&self) -> bool {
        self.replay.is_none() && self.pending.is_empty() && !self.done
    }

    /// The stream's state, for the lean path to hold from here on. Call only when
    /// [`Self::is_caught_up`].
    pub(crate) fn into_parts(self) -> Parts {
        Parts {
            positions: self.positions,
            sub: self.sub,
            control: self.control,
            offered: self.refresh.as_ref().is_some_and(|r| r.offered),
            refresh: self.refresh.map(|r| r.offer),
            expires_at: self.expires_at,
            last_write: self.last_write,
            shutdown_retry_ms: self.shutdown_retry_ms,
            open: self.open,
        }
    }
}

/// Why a stream could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("topics {0} and {1} share a cursor key; follow them on separate connections")]
    KeyCollision(Topic, Topic),
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl EventStream {
    /// Registers with the fan-out and fixes each topic's starting position. Fails before any
    /// byte is sent, so the route can still answer with an error status.
    pub(crate) async fn start(
        topics: Vec<Topic>,
        cursor: Option<Cursor>,
        fanout: &Arc<Fanout>,
        bus: Arc<dyn Bus>,
        settings: StreamSettings,
        counters: Arc<Counters>,
    ) -> Result<Self, StartError> {
        let mut keys: Vec<(u64, &Topic)> = topics.iter().map(|t| (cursor::topic_key(t), t)).collect();
        keys.sort();
        if let Some(w) = keys.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(StartError::KeyCollision(w[0].1.clone(), w[1].1.clone()));
        }
        let sub = fanout.join(&topics, settings.slow);
        bus.follow(&topics).await?;
        // Starting positions are independent reads: issue them together (with Redis they share
        // one link, so a stream following many topics pays one round trip, not many).
        let starts = topics.iter().map(|topic| {
            let resume = cursor.as_ref().and_then(|c| c.position(topic));
            let bus = &bus;
            async move {
                match resume {
                    Some(p) => Ok::<_, BusError>((p, true)),
                    None => Ok((bus.read(topic, None, 0).await?.tail, false)),
                }
            }
        });
        let starts = futures::future::try_join_all(starts).await?;
        let resumed = starts.iter().enumerate().filter(|(_, (_, resumed))| *resumed).map(|(i, _)| i);
        let replay = cursor.is_some().then(|| Box::new(Merge::new(resumed)));
        let positions = Positions::new(topics.into_iter().zip(starts.into_iter().map(|(position, _)| position)), settings.render);
        if cursor.is_some() {
            counters.resumptions.fetch_add(1, Ordering::Relaxed);
        }
        let open = OpenStream::new(&counters);
        let now = Instant::now();
        let slow = sub.slow.clone().cancelled_owned();
        let control_wake = settings.control.as_ref().map(|r| Box::pin(r.entry().wake().notified_owned()));
        let mut conn = Self {
            positions,
            sub,
            bus,
            pending: VecDeque::from([sse::retry_frame(settings.retry_ms)]),
            replay,
            heartbeat_every: settings.heartbeat,
            heartbeat: Box::pin(sleep_until(now + settings.heartbeat)),
            last_write: now,
            expiry: Box::pin(sleep_until(now + settings.expires_in)),
            expires_at: now + settings.expires_in,
            refresh: settings.refresh.map(|offer| Refresh { offer, offered: false }),
            control: settings.control,
            control_wake,
            shutdown: Box::pin(settings.shutdown.cancelled_owned()),
            slow: Box::pin(slow),
            shutdown_retry_ms: settings.shutdown_retry_ms,
            counters,
            open,
            done: false,
        };
        conn.schedule_expiry();
        Ok(conn)
    }

    /// The stream as a body stream of frames.
    pub(crate) fn into_stream(self) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
        futures::stream::unfold(self, |mut conn| async move {
            let chunk = conn.next_chunk().await?;
            Some((Ok(chunk), conn))
        })
    }

    /// The next bytes to send, or `None` when the stream is over.
    pub(crate) async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                self.last_write = Instant::now();
                return Some(chunk);
            }
            if self.done {
                return None;
            }
            if self.replay.is_some() {
                if self.revoked() {
                    continue;
                }
                self.replay_step().await;
            } else {
                self.live_step().await;
            }
        }
    }

    /// Queues the replayed events whose order is known, then reads the next page of each topic
    /// that needs one.
    async fn replay_step(&mut self) {
        let Some(mut merge) = self.replay.take() else { return };
        loop {
            match merge.next() {
                Step::Send(d) => self.push_delivery(&d),
                // A position beyond the topic's tail (another deployment's cursor, a clock that
                // went back) would make the stream skip future events: pull it back.
                Step::Finished { topic, tail } => self.positions.clamp(topic, tail),
                Step::Done => return,
                Step::Read => break,
            }
        }
        if !self.pending.is_empty() {
            // Send what is queued before reading on: one page per topic is held at a time.
            self.replay = Some(merge);
            return;
        }
        let wanted: Vec<(usize, Topic, StreamId)> =
            merge.wanted().map(|i| (i, self.positions.topic(i).clone(), self.positions.position(i))).collect();
        let reads = futures::future::join_all(wanted.iter().map(|(_, topic, after)| self.bus.read(topic, Some(*after), REPLAY_PAGE)));
        let pages = tokio::select! {
            biased;
            _ = self.shutdown.as_mut() => return self.close_for_shutdown(),
            pages = reads => pages,
        };
        for ((i, topic, after), page) in wanted.into_iter().zip(pages) {
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(topic = %topic, error = %e, "history read failed; closing the stream so the client resumes");
                    self.done = true;
                    return;
                }
            };
            // Another protocol has its own way of saying so (Mercure: a response header).
            if page.lost && !self.positions.renders() {
                self.counters.lost_signals.fetch_add(1, Ordering::Relaxed);
                self.pending.push_back(lost_frame(&topic, after, page.events.first().and_then(|d| d.id)));
                // Said once: the position moves past the gap with the first retained event.
            }
            merge.absorb(i, page.events, REPLAY_PAGE, page.tail);
        }
        self.replay = Some(merge);
    }

    async fn live_step(&mut self) {
        // Queued events first: while events flow, the other branches are not polled at all (each
        // poll of a cancellation future takes its token's lock). They stay registered, so an
        // idle stream still wakes on them; a busy one sees them after its queue (bounded) drains.
        tokio::select! {
            biased;
            d = self.sub.rx.recv() => match d {
                Some(Queued::Event(d)) => self.push_delivery(&d),
                Some(Queued::Rewind { topic, to }) => self.rewind(&topic, to),
                None => self.done = true,
            },
            _ = self.shutdown.as_mut() => self.close_for_shutdown(),
            _ = self.slow.as_mut() => self.done = true,
            _ = self.expiry.as_mut() => self.on_deadline(),
            _ = signals::changed(&mut self.control_wake) => self.on_control(),
            _ = self.heartbeat.as_mut() => {
                let due = self.last_write + self.heartbeat_every;
                if Instant::now() >= due {
                    self.pending.push_back(Bytes::from_static(HEARTBEAT));
                    self.heartbeat.as_mut().reset(Instant::now() + self.heartbeat_every);
                } else {
                    // Something was written since: wait for a full idle interval after it.
                    self.heartbeat.as_mut().reset(due);
                }
            }
        }
    }

    fn close_for_shutdown(&mut self) {
        self.counters.shutdown_disconnects.fetch_add(1, Ordering::Relaxed);
        self.pending.push_back(sse::retry_frame(self.shutdown_retry_ms));
        self.done = true;
    }

    /// Queues the frame for `d` unless this stream already sent it.
    fn push_delivery(&mut self, d: &Delivery) {
        match self.positions.accept(d, &self.counters) {
            None => {}
            Some(Frame::Shared) => self.pending.push_back(d.frame.frame().clone()),
            Some(Frame::Own(frame)) => self.pending.push_back(frame),
            Some(Frame::WithCursor { fields, id }) => {
                self.pending.push_back(fields);
                self.pending.push_back(id);
            }
        }
    }

    /// Moves the topic's position back to `to` (see [`Queued::Rewind`]).
    fn rewind(&mut self, topic: &Topic, to: StreamId) {
        self.positions.rewind(topic, to);
    }

    /// The `Last-Event-ID` this stream's client holds now.
    #[cfg(test)]
    pub(crate) fn cursor(&self) -> String {
        self.positions.cursor()
    }
}

#[cfg(test)]
mod tests;
