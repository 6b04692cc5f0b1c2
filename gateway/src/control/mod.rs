//! The control plane: revocation, stream counts and in-band token refresh, on every node.
//!
//! Each node keeps a [`Registry`] of the streams it holds and a copy of the standing
//! [`Revocations`]; nodes talk over a [`Link`] (with Redis, one stream every node reads). An
//! admin call on any node becomes an *ask*: a message every node receives, this one included,
//! and answers on the same channel; the asking node waits for as many answers as there are live
//! nodes (or [`ASK_TIMEOUT`]). So when `POST /admin/disconnect` answers, every node that
//! answered has closed its matching streams and refuses them.
//!
//! A node that was cut off from Redis when a revocation was announced reads it when it
//! reconnects: the control stream is read from the last entry the node saw, and the stored
//! revocations are reloaded then (and every [`RELOAD_EVERY`] whatever happened).

mod link;
mod message;
mod registry;
mod revocations;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use shared::{Claims, Topic};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bus::BusError;
use crate::counters::Counters;
use crate::epoch::now_millis;
pub(crate) use link::{Incoming, Link, LocalLink};
pub(crate) use message::{Answer, Message, RefreshRefusal};
pub(crate) use registry::{Registry, StreamEntry, is_stream_id};
pub(crate) use revocations::{Revocations, Target};

/// How long an ask waits for the nodes' answers.
pub(crate) const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the stored revocations are reloaded, whatever the channel said.
pub(crate) const RELOAD_EVERY: Duration = Duration::from_secs(10);
/// Messages waiting for the control task.
pub(crate) const INCOMING_QUEUE: usize = 1024;

/// A name for this node on the control channel: random per process.
pub(crate) fn node_name() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A standing revocation that refuses a token or a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub target: Target,
    pub until_ms: u64,
}

/// What the nodes answered to a revoke or a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Streams closed or counted, all answering nodes together.
    pub streams: usize,
    /// Nodes that answered.
    pub nodes: usize,
    /// Nodes alive when the ask went out.
    pub expected: usize,
}

/// The outcome of presenting a fresh token for a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    Refreshed {
        exp: u64,
    },
    Refused(RefreshRefusal),
    /// No node holds a stream of that id (it ended, or never was).
    Unknown,
}

#[derive(Debug, Default)]
struct Inner {
    streams: Registry,
    revoked: Revocations,
}

type Waiting = mpsc::UnboundedSender<(String, Answer)>;

#[derive(Debug)]
pub struct Control {
    /// This node's name on the channel: random per process.
    node: String,
    link: Arc<dyn Link>,
    leeway: Duration,
    /// One lock for streams and revocations: see `registry.rs` for why.
    inner: Mutex<Inner>,
    asks: Mutex<HashMap<String, Waiting>>,
    counters: Arc<Counters>,
}

impl Control {
    pub fn new(node: String, link: Arc<dyn Link>, leeway: Duration, counters: Arc<Counters>) -> Arc<Self> {
        Arc::new(Self { node, link, leeway, inner: Mutex::default(), asks: Mutex::default(), counters })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The standing revocation that refuses this token, if any (its subject or its id).
    pub fn refusing(&self, claims: &Claims) -> Option<Refused> {
        let inner = self.inner();
        let (target, until_ms) = inner.revoked.refusing(claims.sub.as_deref(), claims.jti.as_deref(), &[], now_millis())?;
        Some(Refused { target: target.clone(), until_ms })
    }

    /// Registers a stream for `claims` and `topics`, unless a standing revocation refuses it.
    pub fn register(self: &Arc<Self>, claims: &Claims, topics: &[Topic]) -> Result<Registration, Refused> {
        let mut inner = self.inner();
        if let Some((target, until_ms)) = inner.revoked.refusing(claims.sub.as_deref(), claims.jti.as_deref(), topics, now_millis()) {
            return Err(Refused { target: target.clone(), until_ms });
        }
        let entry = inner.streams.insert(&self.node, claims, topics, self.leeway);
        Ok(Registration::new(entry, Arc::downgrade(self)))
    }

    fn unregister(&self, id: &str) {
        self.inner().streams.remove(id);
    }

    /// Streams held on this node.
    pub fn streams(&self) -> usize {
        self.inner().streams.len()
    }

    /// Closes the streams under `target` on every node and refuses it for `duration` (zero: a
    /// disconnect that refuses nothing; the clients come back with fresh credentials).
    pub async fn revoke(&self, target: Target, duration: Duration) -> Result<(Tally, Option<u64>), BusError> {
        let until_ms = (!duration.is_zero()).then(|| now_millis().saturating_add(duration.as_millis() as u64));
        if let Some(until) = until_ms {
            // Stored first: a node that misses the message (cut off, starting) loads it.
            self.link.store_revocation(&target.key(), until).await?;
        }
        let from = self.node.clone();
        let tally = self.ask_all(|ask| Message::Revoke { ask, from, target, until_ms: until_ms.unwrap_or(0) }).await?;
        Ok((tally, until_ms))
    }

    /// Counts the streams under `target` on every node.
    pub async fn count(&self, target: Target) -> Result<Tally, BusError> {
        let from = self.node.clone();
        self.ask_all(|ask| Message::Count { ask, from, target }).await
    }

    /// Extends stream `stream` (on whichever node holds it) with a fresh token's claims.
    pub async fn refresh(&self, stream: &str, claims: Claims) -> Result<RefreshOutcome, BusError> {
        let local = self.inner().streams.get(stream);
        let outcome = match local {
            Some(entry) => Self::extend(&entry, &claims),
            // This node's id and not here: the stream ended. No need to ask the others.
            None if stream.starts_with(&self.node) => RefreshOutcome::Unknown,
            None => {
                let from = self.node.clone();
                let stream = stream.to_owned();
                let answers = self.ask(|ask| Message::Refresh { ask, from, stream, claims }, 1).await?;
                match answers.into_iter().next().map(|(_, a)| a) {
                    Some(Answer::Refreshed { exp }) => RefreshOutcome::Refreshed { exp },
                    Some(Answer::RefreshRefused { reason }) => RefreshOutcome::Refused(reason),
                    Some(Answer::Streams { .. }) | None => RefreshOutcome::Unknown,
                }
            }
        };
        let label = match outcome {
            RefreshOutcome::Refreshed { .. } => "refreshed",
            RefreshOutcome::Refused(r) => r.code(),
            RefreshOutcome::Unknown => "unknown_stream",
        };
        self.counters.refreshes.get_or_create(&[("outcome", label)]).inc();
        Ok(outcome)
    }

    fn extend(entry: &StreamEntry, claims: &Claims) -> RefreshOutcome {
        match entry.extend(claims) {
            Ok(exp) => RefreshOutcome::Refreshed { exp },
            Err(r) => RefreshOutcome::Refused(r),
        }
    }

    /// Asks every live node and tallies their stream counts.
    async fn ask_all(&self, make: impl FnOnce(String) -> Message) -> Result<Tally, BusError> {
        let expected = self.link.nodes().await?.max(1);
        let answers = self.ask(make, expected).await?;
        let streams = answers.iter().map(|(_, a)| if let Answer::Streams { streams } = a { *streams } else { 0 }).sum();
        Ok(Tally { streams, nodes: answers.len(), expected })
    }

    /// Sends an ask and collects up to `want` answers (one per node) within [`ASK_TIMEOUT`].
    async fn ask(&self, make: impl FnOnce(String) -> Message, want: usize) -> Result<Vec<(String, Answer)>, BusError> {
        let ask = format!("{:016x}", rand::random::<u64>());
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.asks.lock().unwrap_or_else(|e| e.into_inner()).insert(ask.clone(), tx);
        let _forget = Forget { asks: &self.asks, ask: ask.clone() };
        self.link.broadcast(&make(ask).encode()).await?;
        let deadline = tokio::time::Instant::now() + ASK_TIMEOUT;
        let mut answers: Vec<(String, Answer)> = Vec::new();
        while answers.len() < want {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((node, answer))) if !answers.iter().any(|(n, _)| *n == node) => answers.push((node, answer)),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        Ok(answers)
    }

    /// Loads the stored revocations and applies the ones this node did not know (or knew as
    /// shorter) to the streams it holds.
    pub async fn reload(&self) -> Result<(), BusError> {
        let stored = self.link.revocations().await?;
        let now = now_millis();
        let mut inner = self.inner();
        inner.revoked.prune(now);
        for (key, until_ms) in stored {
            let Some(target) = Target::from_key(&key) else { continue };
            if until_ms <= now || inner.revoked.holds(&target, until_ms) {
                continue;
            }
            inner.revoked.insert(target.clone(), until_ms);
            let closed = Self::close_covered(&inner, &target, until_ms);
            if closed > 0 {
                tracing::info!(kind = target.kind(), streams = closed, "closed streams under a revocation loaded after a reconnect");
            }
        }
        Ok(())
    }

    /// Revokes the held streams under `target`; returns how many.
    fn close_covered(inner: &Inner, target: &Target, until_ms: u64) -> usize {
        let covered: Vec<Arc<StreamEntry>> = inner.streams.covered_by(target).cloned().collect();
        for entry in &covered {
            entry.revoke(target.clone(), until_ms);
        }
        covered.len()
    }

    /// The control task: applies what the channel brings, answers asks, reloads the stored
    /// revocations now and then.
    pub async fn run(self: Arc<Self>, mut incoming: mpsc::Receiver<Incoming>, stop: CancellationToken) {
        let mut reload = tokio::time::interval(RELOAD_EVERY);
        reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let result = tokio::select! {
                _ = stop.cancelled() => return,
                _ = reload.tick() => self.reload().await,
                m = incoming.recv() => match m {
                    None => return,
                    Some(Incoming::Resync) => self.reload().await,
                    Some(Incoming::Message(raw)) => self.on_message(&raw).await,
                },
            };
            if let Err(e) = result {
                tracing::warn!(error = %crate::cause::cause_chain(&e), "control channel step failed; the next reload catches up");
            }
        }
    }

    async fn on_message(&self, raw: &str) -> Result<(), BusError> {
        let message = match serde_json::from_str::<Message>(raw) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "skipping a control message this node cannot read");
                return Ok(());
            }
        };
        let (ask, to, answer) = match message {
            Message::Reply { ask, to, node, answer } => {
                if to == self.node {
                    self.answered(&ask, node, answer);
                }
                return Ok(());
            }
            Message::Revoke { ask, from, target, until_ms } => {
                let mut inner = self.inner();
                if until_ms > now_millis() {
                    inner.revoked.insert(target.clone(), until_ms);
                }
                let streams = Self::close_covered(&inner, &target, until_ms);
                drop(inner);
                if streams > 0 {
                    tracing::info!(kind = target.kind(), streams, "closed revoked streams");
                }
                (ask, from, Answer::Streams { streams })
            }
            Message::Count { ask, from, target } => {
                let streams = self.inner().streams.covered_by(&target).count();
                (ask, from, Answer::Streams { streams })
            }
            Message::Refresh { ask, from, stream, claims } => {
                let Some(entry) = self.inner().streams.get(&stream) else { return Ok(()) };
                let answer = match Self::extend(&entry, &claims) {
                    RefreshOutcome::Refreshed { exp } => Answer::Refreshed { exp },
                    RefreshOutcome::Refused(reason) => Answer::RefreshRefused { reason },
                    RefreshOutcome::Unknown => return Ok(()),
                };
                (ask, from, answer)
            }
        };
        if to == self.node {
            // This node's own ask: answered here. On the embedded bus this is every answer, and
            // sending it through the link would have this task wait on its own full queue.
            self.answered(&ask, self.node.clone(), answer);
            return Ok(());
        }
        self.link.broadcast(&Message::Reply { ask, to, node: self.node.clone(), answer }.encode()).await
    }

    /// Hands an answer to the ask waiting for it, if it still waits.
    fn answered(&self, ask: &str, node: String, answer: Answer) {
        if let Some(waiting) = self.asks.lock().unwrap_or_else(|e| e.into_inner()).get(ask) {
            let _ = waiting.send((node, answer));
        }
    }
}

/// Removes an ask from the waiting table however the asking call ends.
struct Forget<'a> {
    asks: &'a Mutex<HashMap<String, Waiting>>,
    ask: String,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.asks.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.ask);
    }
}

/// A stream's place in the registry; leaves it when dropped (with the stream).
#[derive(Debug)]
pub struct Registration {
    entry: Arc<StreamEntry>,
    control: Weak<Control>,
}

impl Registration {
    fn new(entry: Arc<StreamEntry>, control: Weak<Control>) -> Self {
        Self { entry, control }
    }

    pub fn entry(&self) -> &Arc<StreamEntry> {
        &self.entry
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(control) = self.control.upgrade() {
            control.unregister(self.entry.id());
        }
    }
}

#[cfg(test)]
mod tests;
