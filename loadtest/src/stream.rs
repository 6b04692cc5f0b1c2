//! One stream's life: open it (on a raw socket for `http://` targets, `wire.rs`; with reqwest
//! otherwise), read its events in place (`frames.rs`) and check each one (sequence, duplicates,
//! order, latency), reopen it with its `Last-Event-ID` when it ends, stall it when asked.
//!
//! The checks run once per read, not once per event, where they need not be per event: the clock
//! is read once per read (every event of a read was in the socket when it returned, so its arrival
//! time is that moment, up to the few microseconds the batch takes), the latency shard locked once,
//! the shared counters added to once.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use shared::event::LOST_EVENT;
use tokio_util::sync::CancellationToken;

use crate::frames::Scanner;
use crate::streams::{Histograms, Interruption, Live, Outcome, StreamSpec, lock, record};
use crate::tracker::Tracker;
use crate::{payload, wire};

pub(crate) struct Stream {
    /// For targets `wire` does not speak.
    pub client: reqwest::Client,
    pub source: IpAddr,
    pub targets: Arc<Vec<String>>,
    pub spec: StreamSpec,
    /// Position in `Plan::streams`.
    pub index: usize,
    pub reconnect: bool,
    pub silence: Option<Duration>,
    pub live: Arc<Live>,
    pub histograms: Arc<Histograms>,
    pub shard: usize,
    pub stop: CancellationToken,
    pub opened: tokio::sync::mpsc::UnboundedSender<()>,
}

/// An open stream's body.
enum Body {
    Raw(wire::RawBody),
    Other(futures::stream::BoxStream<'static, reqwest::Result<Bytes>>),
}

impl Body {
    /// Hands the next bytes to `on_body`; false once the body is over or failed. Cancel-safe.
    async fn read(&mut self, on_body: impl FnOnce(&mut dyn Iterator<Item = &[u8]>)) -> bool {
        match self {
            Body::Raw(raw) => raw.read(on_body).await,
            Body::Other(body) => match body.next().await {
                Some(Ok(chunk)) => {
                    on_body(&mut std::iter::once(&chunk[..]));
                    true
                }
                _ => false,
            },
        }
    }
}

/// A stream lost and not yet caught up: when, in which phase, and when it was reopened.
struct Gap {
    phase: usize,
    at: Instant,
    reopened: Option<Duration>,
}

/// What a stream knows of its deliveries so far.
struct Checks {
    tracker: Tracker,
    scanner: Scanner,
    gap: Option<Gap>,
    last_event: Option<Instant>,
}

impl Stream {
    pub(crate) async fn run(self) -> Outcome {
        let mut checks = Checks { tracker: Tracker::default(), scanner: Scanner::new(), gap: None, last_event: None };
        let mut first_open = true;
        let mut attempt = 0usize;
        let mut pause = self.live.pause.subscribe();
        // Made once: a `cancelled()` future per read would join and leave the token's waiter list.
        let stopped = self.stop.cancelled();
        tokio::pin!(stopped);
        loop {
            if self.stop.is_cancelled() {
                break;
            }
            let target = &self.targets[(self.spec.target + attempt) % self.targets.len()];
            let started = Instant::now();
            let opened = tokio::select! {
                _ = &mut stopped => break,
                r = self.open(target, checks.scanner.last_event_id()) => r,
            };
            let mut body = match opened {
                Ok(body) => body,
                Err(e) => {
                    if first_open && !self.reconnect {
                        self.live.failed.fetch_add(1, Ordering::Relaxed);
                        let _ = self.opened.send(());
                        note_failure(target, &e);
                        break;
                    }
                    attempt += 1;
                    if first_open && attempt > 20 {
                        self.live.failed.fetch_add(1, Ordering::Relaxed);
                        let _ = self.opened.send(());
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // A stream opened while paused starts stalled; an older one is reopened first (below).
            let mut fresh = *pause.borrow();
            let mut reopen = false;
            if first_open {
                first_open = false;
                record(&self.histograms.connect, started.elapsed());
                self.live.established.fetch_add(1, Ordering::Relaxed);
                let _ = self.opened.send(());
            } else if let Some(g) = checks.gap.as_mut()
                && g.reopened.is_none()
            {
                self.live.reconnects.fetch_add(1, Ordering::Relaxed);
                let took = g.at.elapsed();
                record(&self.histograms.resume, took);
                g.reopened = Some(took);
            }
            loop {
                if self.spec.pausable && *pause.borrow_and_update() {
                    if !fresh {
                        // The stall starts on a new connection: the gateway's send buffer grew
                        // with what this one carried, and would hold minutes of events.
                        reopen = true;
                        break;
                    }
                    // The stalled client: no reading until the pause is over.
                    tokio::select! {
                        _ = &mut stopped => break,
                        _ = pause.wait_for(|on| !on) => {}
                    }
                    // Carries data from now on: a later stall reopens it first.
                    fresh = false;
                }
                let more = tokio::select! {
                    biased;
                    _ = &mut stopped => false,
                    more = body.read(|segments| self.check(&mut checks, segments)) => more,
                    _ = pause.changed(), if self.spec.pausable => continue,
                };
                if !more {
                    break;
                }
                if self.spec.stall && checks.tracker.received > 0 {
                    // Hold the stream without reading until the run ends (or the gateway cuts it).
                    (&mut stopped).await;
                    break;
                }
            }
            // An event cut off with its stream is discarded (as a browser does): its bytes must
            // not run into the next stream's, which replays it whole.
            checks.scanner.finish();
            if self.stop.is_cancelled() || !self.reconnect || self.spec.stall {
                break;
            }
            if reopen {
                // Chosen, not an interruption: same node, at once.
                continue;
            }
            if checks.gap.is_none() {
                checks.gap = Some(Gap { phase: self.live.phase.load(Ordering::Relaxed), at: Instant::now(), reopened: None });
            }
            attempt += 1;
        }
        if first_open {
            // Never opened and never reported (stopped first).
            let _ = self.opened.send(());
        }
        if let Some(g) = checks.gap {
            self.interrupted(g, true, None);
        }
        Outcome { topic: self.spec.topic, tracker: checks.tracker }
    }

    /// Reads the events in one read's body bytes and checks each.
    fn check(&self, checks: &mut Checks, segments: &mut dyn Iterator<Item = &[u8]>) {
        let now_us = payload::now_micros();
        let now = Instant::now();
        let mut latency = None;
        let mut counted = 0;
        let Checks { tracker, scanner, gap, last_event } = checks;
        for bytes in segments {
            scanner.feed(bytes, &mut |e| {
                if e.event == LOST_EVENT.as_bytes() {
                    self.live.lost_signals.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let Some((seq, ts)) = payload::parse_bytes(e.data) else { return };
                if self.spec.mercure && !crate::mercure::id_matches(&String::from_utf8_lossy(e.last_event_id), seq) {
                    // Not counted: the update shows as lost.
                    return;
                }
                let shard = latency.get_or_insert_with(|| lock(&self.histograms.latency[self.shard]));
                let _ = shard.record(now_us.saturating_sub(ts).clamp(1, 600_000_000));
                tracker.record(seq);
                counted += 1;
                if let Some(g) = gap.take() {
                    let took = now - g.at;
                    self.interrupted(g, true, Some(took));
                } else if let (Some(limit), Some(at)) = (self.silence, *last_event)
                    && now - at > limit
                {
                    let phase = self.live.phase.load(Ordering::Relaxed);
                    self.interrupted(Gap { phase, at, reopened: None }, false, Some(now - at));
                }
                *last_event = Some(now);
            });
        }
        if counted > 0 {
            self.live.received.fetch_add(counted, Ordering::Relaxed);
            if !self.spec.stall {
                self.live.received_by_readers.fetch_add(counted, Ordering::Relaxed);
            }
        }
    }

    fn interrupted(&self, g: Gap, broke: bool, caught_up: Option<Duration>) {
        let record = Interruption { phase: g.phase, stream: self.index, broke, reopened: g.reopened, caught_up };
        lock(&self.live.interruptions).push(record);
    }

    /// Opens the stream on `target`, resuming after `last_id` if it is not empty.
    async fn open(&self, target: &str, last_id: &[u8]) -> anyhow::Result<Body> {
        let path = &self.spec.path;
        if wire::speaks(target) {
            let request = wire::Request {
                target,
                path,
                token: &self.spec.token,
                last_event_id: last_id,
                source: Some(self.source),
                small_socket: self.spec.pausable,
            };
            return Ok(Body::Raw(wire::open(request).await?));
        }
        if self.spec.pausable {
            anyhow::bail!("the stalled client speaks plain http:// only");
        }
        let mut req = self.client.get(format!("{target}{path}")).bearer_auth(&self.spec.token);
        if !last_id.is_empty() {
            req = req.header("Last-Event-ID", last_id);
        }
        let response = req.send().await?;
        if response.status() != 200 {
            anyhow::bail!("refused: {}", response.status());
        }
        Ok(Body::Other(response.bytes_stream().boxed()))
    }
}

/// Says why a stream could not open, for the first few only.
fn note_failure(target: &str, e: &anyhow::Error) {
    static SAID: AtomicU64 = AtomicU64::new(0);
    if SAID.fetch_add(1, Ordering::Relaxed) >= 5 {
        return;
    }
    eprintln!("stream on {target} failed: {e:#}");
}
