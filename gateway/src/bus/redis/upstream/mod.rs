//! This node's upstream: its one following of each topic on Redis, however many local streams
//! follow the topic.
//!
//! For every topic at least one local stream follows, the node subscribes (see `subscriber.rs`)
//! to the keyspace channel of the topic's stream and to its live channel.
//! A keyspace `xadd` notification marks the topic pending; one reader task (`reader.rs`) reads every
//! pending stream after the last id it delivered, with one `XREAD` for up to `READ_KEYS` topics
//! (in a cluster, one per hash slot, sent together), and hands the events to the fan-out. Cost:
//! one pushed notification per event per node that follows the topic, and at most one `XREAD`
//! per event (fewer when events arrive together): the work follows the events, not the number of
//! followed topics.
//!
//! Because the reader always continues from the last id it delivered, anything it missed (a
//! reconnection, a lost notification, an outage) is read on the next pass: after a reconnect,
//! and every `reconcile_every` as a safety net, every followed topic is marked pending.
//!
//! After a reconnect the server may also hold a different history: a failover to a replica that
//! had not received the newest writes. The node then holds positions the new master never had,
//! and reading after them would skip the new master's entries with lower ids. So after every
//! reconnect the reader first asks the server where to continue ([`scripts::RESUME_POINT`]),
//! given the position and the last ids it delivered; on a divergence it rewinds there, tells the
//! topic's streams to move back too, and delivers only what it had not delivered.
//!
//! Positions, pending topics and the topics set aside (Redis answers about them with what cannot be
//! read: see `reader.rs`) are `state.rs`.

mod reader;
mod state;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::clients::Client;
use fred::interfaces::LuaInterface;
use fred::types::Value;
use shared::keys::KeyLayout;
use shared::{Event, Topic};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::link::{from_fred, malformed};
use super::push::Push;
use super::scripts;
use super::subscriber::SubscriberLinks;
use crate::bus::fanout::Fanout;
use crate::bus::{BusError, Delivery, shrink_idle};
use crate::counters::Counters;
use state::{Follow, State};

/// Streams per `XREAD`.
const READ_KEYS: usize = 512;
/// How long a stream waits for its topics to be armed before the bus counts as unavailable.
const ARM_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(super) struct Upstream {
    client: Client,
    subscriber: Arc<SubscriberLinks>,
    keys: KeyLayout,
    db: u8,
    reconcile_every: Duration,
    fanout: Arc<Fanout>,
    counters: Arc<Counters>,
    state: Mutex<State>,
    armed: Notify,
    wake_reader: Notify,
}

impl Upstream {
    pub(super) fn new(
        client: Client,
        subscriber: Arc<SubscriberLinks>,
        keys: KeyLayout,
        db: u8,
        reconcile_every: Duration,
        fanout: Arc<Fanout>,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            client,
            subscriber,
            keys,
            db,
            reconcile_every,
            fanout,
            counters,
            state: Mutex::default(),
            armed: Notify::new(),
            wake_reader: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until every topic is armed: subscribed, with its starting position read after the
    /// `SUBSCRIBE` took effect. A stream reads its own starting position only after this,
    /// so the upstream delivers everything after that position.
    pub(super) async fn follow(&self, topics: &[Topic]) -> Result<(), BusError> {
        let deadline = tokio::time::Instant::now() + ARM_TIMEOUT;
        loop {
            let notified = self.armed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if topics.iter().all(|t| self.state().followed.contains_key(t)) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(BusError::Unavailable("topics were not armed in time (is Redis reachable?)".into()));
            }
        }
    }

    /// Keeps the upstreams equal to the fan-out's set of followed topics.
    pub(super) async fn run_sync(self: Arc<Self>, stop: CancellationToken) {
        loop {
            if let Err(e) = self.sync().await {
                tracing::warn!(error = %e, "cannot update Redis subscriptions; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.fanout.topics_changed.notified() => {}
            }
        }
    }

    async fn sync(&self) -> Result<(), BusError> {
        let wanted: HashSet<Topic> = self.fanout.active_topics().into_iter().collect();
        let (added, removed): (Vec<Topic>, Vec<Topic>) = {
            let state = self.state();
            (
                wanted.iter().filter(|t| !state.followed.contains_key(*t)).cloned().collect(),
                state.followed.keys().filter(|t| !wanted.contains(*t)).cloned().collect(),
            )
        };
        if !removed.is_empty() {
            let removed: Vec<Topic> = {
                let mut state = self.state();
                // Ask the fan-out again under the lock: a stream may have started following
                // since `wanted` was read, and `follow` has then already found the topic armed.
                // Dropping it now would leave that stream deaf until the next pass re-arms it
                // at a later position.
                let removed: Vec<Topic> = removed.into_iter().filter(|t| !self.fanout.is_followed(t)).collect();
                for t in &removed {
                    state.followed.remove(t);
                    state.pending.remove(t);
                    state.verify.remove(t);
                }
                shrink_idle(&mut state.followed);
                removed
            };
            if !removed.is_empty() {
                self.subscriber.unsubscribe(&removed).await?;
            }
        }
        for chunk in added.chunks(READ_KEYS) {
            // Subscribe first, then read the tail: an event added in between is both after the
            // tail and notified, so it is delivered once.
            self.subscriber.subscribe(chunk).await?;
            // Concurrent commands share the one command link, so this is one pipelined round trip.
            let tails = chunk.iter().map(|topic| {
                self.counters.redis(
                    "read",
                    self.client.eval::<Value, _, _, _>(scripts::READ, self.keys.stream(topic), vec![String::new(), "0".into()]),
                )
            });
            let replies = futures::future::try_join_all(tails).await.map_err(from_fred)?;
            let mut state = self.state();
            for (topic, reply) in chunk.iter().zip(replies) {
                let tail = scripts::read_reply(reply).map_err(malformed)?.tail;
                state.followed.insert(topic.clone(), Follow::new(tail));
                // A notification may have come before the tail was known: read once to be sure.
                state.pending.insert(topic.clone());
            }
        }
        if !added.is_empty() {
            self.armed.notify_waiters();
            self.wake_reader.notify_one();
        }
        Ok(())
    }

    /// Routes what the subscriber links push: keyspace notifications mark topics pending,
    /// live-channel messages are delivered at once as live-only events, and a reconnect, a lag or
    /// a slot move has the reader catch up from the last ids.
    pub(super) async fn run_messages(self: Arc<Self>, mut pushed: mpsc::Receiver<Push>, stop: CancellationToken) {
        let mut reconcile = tokio::time::interval(self.reconcile_every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                p = pushed.recv() => match p {
                    None => return,
                    Some(Push::Keyspace(e)) => self.on_keyspace(e.db, &e.operation, &e.key),
                    Some(Push::Live(m)) => self.on_message(&m.channel, &m.value),
                    Some(Push::Missed) => self.mark_all_pending(),
                    // A server the node was not reading from a moment ago: check its history first.
                    Some(Push::Reconnected) => {
                        let all: Vec<Topic> = self.state().followed.keys().cloned().collect();
                        self.verify_and_read(all);
                    }
                    Some(Push::Moved(topics)) => self.verify_and_read(topics),
                },
                _ = reconcile.tick() => self.mark_all_pending(),
            }
        }
    }

    fn on_keyspace(&self, db: u8, operation: &str, key: &fred::types::Key) {
        if db != self.db || operation != "xadd" {
            return;
        }
        if let Some(topic) = key.as_str().and_then(|k| self.keys.topic_of_stream(k)) {
            let mut state = self.state();
            // Something wrote a stream there: a topic set aside is worth reading again now.
            state.release(&topic, tokio::time::Instant::now());
            state.pending.insert(topic);
            drop(state);
            self.wake_reader.notify_one();
        }
    }

    fn on_message(&self, channel: &str, value: &Value) {
        if let Some(topic) = self.keys.topic_of_live(channel) {
            let data = scripts::string(value).unwrap_or_default();
            self.counters.events_live.fetch_add(1, Ordering::Relaxed);
            let event = Event { topic, id: None, name: None, data, retry: None };
            self.fanout.deliver(Arc::new(Delivery::new(&event, None)));
        }
    }

    fn mark_all_pending(&self) {
        let all: Vec<Topic> = self.state().followed.keys().cloned().collect();
        self.mark_pending(all);
    }

    fn verify_and_read(&self, topics: Vec<Topic>) {
        self.state().verify.extend(topics.iter().cloned());
        self.mark_pending(topics);
    }

    fn mark_pending(&self, topics: Vec<Topic>) {
        let mut state = self.state();
        let followed: Vec<Topic> = topics.into_iter().filter(|t| state.followed.contains_key(t)).collect();
        state.pending.extend(followed);
        drop(state);
        self.wake_reader.notify_one();
    }
}
