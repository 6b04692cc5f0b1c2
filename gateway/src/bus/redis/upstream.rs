//! This node's one upstream subscription per followed topic.
//!
//! For every topic at least one local connection follows, the node subscribes (see
//! `subscriptions.rs`) to the keyspace channel of the topic's stream and to its live channel.
//! A keyspace `xadd` notification marks the topic pending; one reader task then reads every
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
//! topic's connections to move back too, and delivers only what it had not delivered.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::clients::Client;
use fred::interfaces::{ClientLike, LuaInterface, StreamsInterface};
use fred::types::Value;
use shared::keys::KeyLayout;
use shared::{Event, StreamId, Topic};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::scripts;
use super::subscriptions::{Push, Subscriptions};
use crate::bus::fanout::Fanout;
use crate::bus::{BusError, Delivery};
use crate::stats::Stats;

/// Entries read per stream per `XREAD`.
const READ_COUNT: u64 = 256;
/// Streams per `XREAD`.
const READ_KEYS: usize = 512;
/// How long a connection waits for its topics to be armed before the bus counts as unavailable.
const ARM_TIMEOUT: Duration = Duration::from_secs(5);
/// Ids remembered per topic to find, after a failover, where the server's history and what the
/// node delivered part (and not to deliver an event twice across a rewind).
const RECENT: usize = 32;

#[derive(Debug)]
struct Follow {
    /// The newest id read (delivered to the fan-out, or skipped), or the tail when the topic was
    /// armed.
    last: StreamId,
    /// The ids delivered last, oldest first.
    recent: VecDeque<StreamId>,
}

impl Follow {
    fn new(tail: StreamId) -> Self {
        Self { last: tail, recent: VecDeque::new() }
    }
}

#[derive(Debug, Default)]
struct State {
    followed: HashMap<Topic, Follow>,
    pending: HashSet<Topic>,
    /// Topics whose position must be checked against the server before the next read.
    verify: HashSet<Topic>,
}

#[derive(Debug)]
pub struct Upstream {
    client: Client,
    subscriptions: Arc<Subscriptions>,
    keys: KeyLayout,
    db: u8,
    reconcile_every: Duration,
    fanout: Arc<Fanout>,
    stats: Arc<Stats>,
    state: Mutex<State>,
    armed: Notify,
    wake_reader: Notify,
}

impl Upstream {
    pub fn new(
        client: Client,
        subscriptions: Arc<Subscriptions>,
        keys: KeyLayout,
        db: u8,
        reconcile_every: Duration,
        fanout: Arc<Fanout>,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            client,
            subscriptions,
            keys,
            db,
            reconcile_every,
            fanout,
            stats,
            state: Mutex::default(),
            armed: Notify::new(),
            wake_reader: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until every topic is armed: subscribed, with its starting position read after the
    /// subscription took effect. A connection reads its own starting position only after this,
    /// so the upstream delivers everything after that position.
    pub async fn follow(&self, topics: &[Topic]) -> Result<(), BusError> {
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

    /// Keeps the subscriptions equal to the fan-out's set of followed topics.
    pub async fn run_sync(self: Arc<Self>, stop: CancellationToken) {
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
                // Ask the fan-out again under the lock: a connection may have started following
                // since `wanted` was read, and `follow` has then already found the topic armed.
                // Dropping it now would leave that connection deaf until the next pass re-arms it
                // at a later position.
                let removed: Vec<Topic> = removed.into_iter().filter(|t| !self.fanout.is_followed(t)).collect();
                for t in &removed {
                    state.followed.remove(t);
                    state.pending.remove(t);
                    state.verify.remove(t);
                }
                crate::bus::shrink_idle(&mut state.followed);
                removed
            };
            if !removed.is_empty() {
                self.subscriptions.unsubscribe(&removed).await?;
            }
        }
        for chunk in added.chunks(READ_KEYS) {
            // Subscribe first, then read the tail: an event added in between is both after the
            // tail and notified, so it is delivered once.
            self.subscriptions.subscribe(chunk).await?;
            // Concurrent commands share the one connection, so this is one pipelined round trip.
            let tails = chunk.iter().map(|topic| {
                self.stats.redis(
                    "read",
                    self.client.eval::<Value, _, _, _>(scripts::READ, self.keys.stream(topic), vec![String::new(), "0".into()]),
                )
            });
            let replies = futures::future::try_join_all(tails).await.map_err(unavailable)?;
            let mut state = self.state();
            for (topic, reply) in chunk.iter().zip(replies) {
                let tail = scripts::read_reply(reply).map_err(|e| BusError::Unavailable(e.into()))?.tail;
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

    /// Routes what the subscriber connections push: keyspace notifications mark topics pending,
    /// live-channel messages are delivered at once as live-only events, and a reconnect, a lag or
    /// a slot move has the reader catch up from the last ids.
    pub async fn run_messages(self: Arc<Self>, mut pushed: mpsc::Receiver<Push>, stop: CancellationToken) {
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
            self.state().pending.insert(topic);
            self.wake_reader.notify_one();
        }
    }

    fn on_message(&self, channel: &str, value: &Value) {
        if let Some(topic) = self.keys.topic_of_live(channel) {
            let data = scripts::string(value).unwrap_or_default();
            self.stats.events_live.fetch_add(1, Ordering::Relaxed);
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

    /// Reads pending streams after their last delivered id and delivers what it finds, in order.
    pub async fn run_reader(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake_reader.notified() => {}
            }
            loop {
                let batch: Vec<(Topic, StreamId)> = {
                    let mut state = self.state();
                    let take: Vec<Topic> = state.pending.iter().take(READ_KEYS).cloned().collect();
                    take.into_iter()
                        .filter_map(|t| {
                            state.pending.remove(&t);
                            state.followed.get(&t).map(|f| (t, f.last))
                        })
                        .collect()
                };
                if batch.is_empty() {
                    break;
                }
                let read = async {
                    let batch = self.resume_points(batch.clone()).await?;
                    self.read_batch(&batch).await
                };
                if let Err(e) = read.await {
                    tracing::warn!(error = %e, "reading streams failed; retrying");
                    self.state().pending.extend(batch.into_iter().map(|(t, _)| t));
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
            }
        }
    }

    /// For the topics of `batch` marked for verification (after a reconnect): asks the server
    /// where to continue and rewinds where its history diverged from what was delivered. Returns
    /// the batch with the positions to read from.
    async fn resume_points(&self, mut batch: Vec<(Topic, StreamId)>) -> Result<Vec<(Topic, StreamId)>, BusError> {
        let checks: Vec<(usize, Vec<String>)> = {
            let mut state = self.state();
            let mut checks = Vec::new();
            for (i, (topic, last)) in batch.iter().enumerate() {
                if !state.verify.remove(topic) {
                    continue;
                }
                let Some(f) = state.followed.get(topic) else { continue };
                let mut recent: Vec<StreamId> = f.recent.iter().copied().filter(|id| id < last).collect();
                recent.sort();
                checks.push((i, std::iter::once(last).chain(&recent).map(StreamId::to_string).collect()));
            }
            checks
        };
        if checks.is_empty() {
            return Ok(batch);
        }
        let calls = checks.iter().map(|(i, args)| {
            self.stats.redis(
                "resume_point",
                self.client.eval::<Value, _, _, _>(scripts::RESUME_POINT, self.keys.stream(&batch[*i].0), args.clone()),
            )
        });
        let answers = match futures::future::try_join_all(calls).await {
            Ok(answers) => answers,
            Err(e) => {
                // Check again on the next attempt.
                let mut state = self.state();
                state.verify.extend(checks.iter().map(|(i, _)| batch[*i].0.clone()));
                return Err(unavailable(e));
            }
        };
        for ((i, _), answer) in checks.iter().zip(answers) {
            let point = scripts::stream_id(&answer).map_err(|e| BusError::Unavailable(e.into()))?;
            let (topic, last) = &mut batch[*i];
            if point < *last {
                tracing::warn!(topic = %topic, delivered = %last, server = %point, "Redis holds a different history than this node delivered (a failover lost writes); rewinding");
                if let Some(f) = self.state().followed.get_mut(topic) {
                    f.last = point;
                }
                self.fanout.rewind(topic, point);
                *last = point;
            }
        }
        Ok(batch)
    }

    /// One `XREAD` for the batch; in a cluster one per hash slot (a command's keys must share a
    /// slot), sent together on the pipelined connection.
    async fn read_batch(&self, batch: &[(Topic, StreamId)]) -> Result<(), BusError> {
        let groups: Vec<Vec<&(Topic, StreamId)>> = if self.client.is_clustered() {
            let mut by_slot: HashMap<u16, Vec<&(Topic, StreamId)>> = HashMap::new();
            for item in batch {
                by_slot.entry(fred::util::redis_keyslot(self.keys.stream(&item.0).as_bytes())).or_default().push(item);
            }
            by_slot.into_values().collect()
        } else {
            vec![batch.iter().collect()]
        };
        let reads = groups.iter().map(|group| {
            let keys: Vec<String> = group.iter().map(|(t, _)| self.keys.stream(t)).collect();
            let ids: Vec<String> = group.iter().map(|(_, id)| id.to_string()).collect();
            self.stats.redis("xread", self.client.xread::<Value, _, _>(Some(READ_COUNT), None, keys, ids))
        });
        for reply in futures::future::try_join_all(reads).await.map_err(unavailable)? {
            self.deliver_reply(reply)?;
        }
        Ok(())
    }

    fn deliver_reply(&self, reply: Value) -> Result<(), BusError> {
        for (key, entries) in scripts::xread_reply(reply).map_err(|e| BusError::Unavailable(e.into()))? {
            let Some(topic) = self.keys.topic_of_stream(&key) else { continue };
            let full = entries.len() as u64 >= READ_COUNT;
            for entry in &entries {
                match scripts::entry(&topic, entry) {
                    Ok(entry) => self.deliver(entry),
                    Err(e) => {
                        tracing::warn!(topic = %topic, error = %e, "skipping a stream entry");
                        if let Some(id) = entry_id(entry) {
                            self.advance(&topic, id);
                        }
                    }
                }
            }
            if full {
                self.state().pending.insert(topic);
            }
        }
        Ok(())
    }

    /// Delivers a stream event once: only if it is after the topic's position and was not
    /// delivered before a rewind.
    fn deliver(&self, entry: scripts::Entry) {
        let event = entry.event;
        let Some(id) = event.id else { return };
        if self.advance(&event.topic, id) && self.remember(&event.topic, id) {
            if !entry.from_gateway {
                self.stats.events_xadd.fetch_add(1, Ordering::Relaxed);
            }
            self.fanout.deliver(Arc::new(Delivery::new(&event, entry.trace)));
        }
    }

    /// Records `id` among the topic's recently delivered ids; false if it is there already (it
    /// was delivered before a rewind).
    fn remember(&self, topic: &Topic, id: StreamId) -> bool {
        let mut state = self.state();
        let Some(f) = state.followed.get_mut(topic) else { return false };
        if f.recent.contains(&id) {
            return false;
        }
        if f.recent.len() == RECENT {
            f.recent.pop_front();
        }
        f.recent.push_back(id);
        true
    }

    /// Moves the topic's position to `id` if that is forward; says whether it moved.
    fn advance(&self, topic: &Topic, id: StreamId) -> bool {
        let mut state = self.state();
        match state.followed.get_mut(topic) {
            Some(f) if id > f.last => {
                f.last = id;
                true
            }
            _ => false,
        }
    }
}

fn entry_id(v: &Value) -> Option<StreamId> {
    match v {
        Value::Array(pair) => pair.first().and_then(|id| scripts::stream_id(id).ok()),
        _ => None,
    }
}

pub fn unavailable(e: fred::error::Error) -> BusError {
    BusError::Unavailable(Box::new(e))
}
