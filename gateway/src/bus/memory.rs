//! The embedded bus: history in process memory, for a single node that needs no Redis.
//!
//! Ids have the shape of Redis stream ids (`<ms>-<seq>`) and increase across all topics, so a
//! cursor means the same thing whichever bus runs. Each topic keeps at most `max_len` events for
//! at most `max_age`; what is dropped raises the topic's floor, and a reader whose position is
//! below the floor is told that events were lost.
//!
//! A topic whose every event is older than `max_age` is dropped whole by [`MemoryBus::sweep`]
//! (its followers, if any, live in the fan-out, not here): what it held raises the floor shared
//! by every topic without a log, so a reader of a dropped topic is told of the loss if its
//! position is older than the newest event ever dropped (possibly spuriously: it may have seen
//! every event of that topic; the Redis bus says the same of an expired stream).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use shared::{Event, StreamId, Topic};
use tokio_util::sync::CancellationToken;

use super::error::BusError;
use super::event::{Delivery, NewEvent};
use super::fanout::Fanout;
use super::seam::{Bus, Replay};
use super::shrink::shrink_idle;
use super::tickets::{Stored, Taken, TicketStore, TicketTable};
use crate::epoch::now_millis;

#[derive(Debug)]
struct TopicLog {
    events: VecDeque<Arc<Delivery>>,
    /// Positions at or below this may have had events that are no longer held.
    floor: StreamId,
    /// Publisher-given names of held events (`NewEvent::alias`): the first event with a name
    /// keeps it. Pruned as events leave (see [`prune_aliases`]).
    aliases: HashMap<Box<str>, StreamId>,
}

#[derive(Debug)]
struct State {
    logs: HashMap<Topic, TopicLog>,
    /// The last id minted, over all topics: ids never go back even if the wall clock does.
    last: StreamId,
    /// Floor for topics with no log: ids minted before this process started, or dropped with a
    /// log that emptied and was removed, are unknown to it.
    floor: StreamId,
}

#[derive(Debug)]
pub(crate) struct MemoryBus {
    state: Mutex<State>,
    fanout: Arc<Fanout>,
    max_len: usize,
    max_age: Duration,
    /// Stream tickets (`bus/tickets.rs`).
    tickets: TicketTable,
}

impl MemoryBus {
    pub(crate) fn new(fanout: Arc<Fanout>, max_len: usize, max_age: Duration) -> Self {
        // Anything before now belonged to an earlier process (if any): a cursor from then may
        // point at events this process never had.
        let boot = StreamId::new(now_millis(), 0);
        Self {
            state: Mutex::new(State { logs: HashMap::new(), last: boot, floor: boot }),
            fanout,
            max_len,
            max_age,
            tickets: TicketTable::default(),
        }
    }

    /// Drops expired events from every topic and removes emptied logs. Run periodically so that
    /// topics nobody publishes to any more do not hold memory.
    pub(crate) fn sweep(&self) {
        self.tickets.sweep();
        let cutoff = self.age_cutoff();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut dropped_floor = state.floor;
        state.logs.retain(|_, log| {
            trim_age(log, cutoff);
            // A burst on a topic would otherwise keep its ring at the burst's size.
            if log.events.capacity() > 16 && log.events.len() < log.events.capacity() / 4 {
                log.events.shrink_to(log.events.len() * 2);
            }
            if log.events.is_empty() {
                dropped_floor = dropped_floor.max(log.floor);
                false
            } else {
                true
            }
        });
        state.floor = dropped_floor;
        shrink_idle(&mut state.logs);
    }

    /// How often [`MemoryBus::run_sweeps`] sweeps for a history of `max_age`: four times per max
    /// age, so an idle topic leaves memory at most a quarter of its age late, but at most once a
    /// second (a short max age would sweep in a loop) and at least every 30 s (the tickets too).
    pub(crate) fn sweep_interval(max_age: Duration) -> Duration {
        (max_age / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// Sweeps every `every` until `stop` fires: the bus's periodic job, spawned on the shutdown
    /// tracker like the clock.
    pub(crate) async fn run_sweeps(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => self.sweep(),
            }
        }
    }

    /// How many topics hold history (for tests and [`Bus::held_topics`]).
    pub(crate) fn topic_count(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).logs.len()
    }

    /// Ids below this millisecond are older than `max_age`.
    fn age_cutoff(&self) -> u64 {
        now_millis().saturating_sub(self.max_age.as_millis() as u64)
    }

    fn mint(state: &mut State) -> StreamId {
        let ms = now_millis();
        state.last = if ms > state.last.ms { StreamId::new(ms, 0) } else { state.last.successor() };
        state.last
    }
}

/// Forgets the names of events that left the log, once they are as many as the held events (so
/// the cost is amortised over the events that left, and the table stays within twice the log).
fn prune_aliases(log: &mut TopicLog) {
    if log.aliases.len() > 2 * log.events.len() + 16 {
        let floor = log.floor;
        log.aliases.retain(|_, id| *id > floor);
        shrink_idle(&mut log.aliases);
    }
}

fn trim_age(log: &mut TopicLog, cutoff_ms: u64) {
    while let Some(front) = log.events.front() {
        match front.id {
            Some(id) if id.ms < cutoff_ms => {
                log.floor = log.floor.max(id);
                log.events.pop_front();
            }
            _ => break,
        }
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, events: Vec<NewEvent>) -> Result<Vec<StreamId>, BusError> {
        let cutoff = self.age_cutoff();
        let mut ids = Vec::with_capacity(events.len());
        // One lock for the whole batch: ids are minted, stored and delivered in the same order,
        // so no stream can see a later id before an earlier one of the same topic.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for e in events {
            let id = Self::mint(&mut state);
            let event = Event { topic: e.topic, id: Some(id), name: e.name, data: e.data, retry: e.retry };
            let delivery = Arc::new(Delivery::new(&event, e.trace));
            let floor = state.floor;
            let log = state.logs.entry(delivery.topic.clone()).or_insert_with(|| TopicLog {
                events: VecDeque::new(),
                floor,
                aliases: HashMap::new(),
            });
            log.events.push_back(Arc::clone(&delivery));
            if let Some(alias) = e.alias {
                log.aliases.entry(alias.into()).or_insert(id);
            }
            if self.max_len > 0 {
                while log.events.len() > self.max_len {
                    if let Some(old) = log.events.pop_front().and_then(|d| d.id) {
                        log.floor = log.floor.max(old);
                    }
                }
            }
            trim_age(log, cutoff);
            prune_aliases(log);
            self.fanout.deliver(delivery);
            ids.push(id);
        }
        Ok(ids)
    }

    async fn read(&self, topic: &Topic, after: Option<StreamId>, limit: usize) -> Result<Replay, BusError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let tail = state.last;
        let floor = state.floor;
        let Some(after) = after else {
            return Ok(Replay { events: Vec::new(), lost: false, tail });
        };
        let Some(log) = state.logs.get_mut(topic) else {
            return Ok(Replay { events: Vec::new(), lost: after < floor, tail });
        };
        trim_age(log, self.age_cutoff());
        let start = log.events.partition_point(|d| d.id.is_some_and(|id| id <= after));
        let events = log.events.iter().skip(start).take(limit).cloned().collect();
        Ok(Replay { events, lost: after < log.floor, tail })
    }

    async fn find_alias(&self, topic: &Topic, alias: &str) -> Result<Option<StreamId>, BusError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(log) = state.logs.get_mut(topic) else { return Ok(None) };
        trim_age(log, self.age_cutoff());
        // A name whose event left history resolves to nothing, as on Redis once its key expired.
        Ok(log.aliases.get(alias).copied().filter(|id| *id > log.floor))
    }

    fn is_ready(&self) -> bool {
        true
    }

    fn held_topics(&self) -> Option<usize> {
        Some(self.topic_count())
    }
}

#[async_trait]
impl TicketStore for MemoryBus {
    async fn deployment(&self, candidate: &str, _ttl: Duration) -> Result<String, BusError> {
        Ok(candidate.to_owned())
    }

    #[expect(clippy::disallowed_methods, reason = "the embedded bus's ticket TTL is wall-clock, as Redis's own TTL is for the Redis bus")]
    async fn put_ticket(&self, key: &str, entry: String, ttl: Duration) -> Result<Stored, BusError> {
        let now = std::time::Instant::now();
        Ok(self.tickets.put_at(key, entry, now + ttl, now))
    }

    #[expect(clippy::disallowed_methods, reason = "the embedded bus's ticket TTL is wall-clock, as Redis's own TTL is for the Redis bus")]
    async fn take_ticket(&self, key: &str) -> Result<Taken, BusError> {
        Ok(self.tickets.take_at(key, std::time::Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus(max_len: usize) -> (MemoryBus, Topic) {
        (MemoryBus::new(Arc::new(Fanout::new(8, Arc::default())), max_len, Duration::from_secs(3600)), Topic::parse("t").expect("topic"))
    }

    fn new_event(topic: &Topic, data: &str) -> NewEvent {
        NewEvent::new(topic.clone(), data.into())
    }

    #[tokio::test]
    async fn ids_increase_and_reads_start_after_the_position() {
        let (bus, t) = bus(100);
        let start = bus.read(&t, None, 10).await.expect("read").tail;
        let ids = bus.publish((0..5).map(|i| new_event(&t, &i.to_string())).collect()).await.expect("publish");
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids[0] > start);
        let r = bus.read(&t, Some(start), 10).await.expect("read");
        assert_eq!(r.events.len(), 5);
        assert!(!r.lost);
        let r = bus.read(&t, Some(ids[2]), 1).await.expect("read");
        assert_eq!(r.events.iter().map(|d| d.id).collect::<Vec<_>>(), vec![Some(ids[3])]);
        assert_eq!(r.tail, ids[4]);
    }

    #[tokio::test]
    async fn trimmed_history_is_reported_lost() {
        let (bus, t) = bus(3);
        let start = bus.read(&t, None, 10).await.expect("read").tail;
        let ids = bus.publish((0..5).map(|i| new_event(&t, &i.to_string())).collect()).await.expect("publish");
        let r = bus.read(&t, Some(start), 10).await.expect("read");
        assert!(r.lost);
        assert_eq!(r.events.first().and_then(|d| d.id), Some(ids[2]), "resumes with the oldest retained");
        let r = bus.read(&t, Some(ids[1]), 10).await.expect("read");
        assert!(!r.lost, "a position at the newest trimmed event lost nothing");
    }

    #[tokio::test]
    async fn idle_topics_leave_memory_table_room_included() {
        let bus = MemoryBus::new(Arc::new(Fanout::new(8, Arc::default())), 10, Duration::from_secs(1));
        let topics: Vec<Topic> = (0..5_000).map(|i| Topic::parse(&format!("user.{i}")).expect("topic")).collect();
        let ids = bus.publish(topics.iter().map(|t| new_event(t, "x")).collect()).await.expect("publish");
        let peak = bus.state.lock().expect("lock").logs.capacity();
        assert_eq!(bus.topic_count(), 5_000);
        // Make every event older than the max age without waiting: move the ids' clock back.
        for log in bus.state.lock().expect("lock").logs.values_mut() {
            let old = log.events.iter().map(|d| aged(d, 2_000)).collect();
            log.events = old;
        }
        bus.sweep();
        let state = bus.state.lock().expect("lock");
        assert_eq!(state.logs.len(), 0, "every idle topic is dropped");
        assert!(state.logs.capacity() < peak / 10, "the table gives its room back: {} of {peak}", state.logs.capacity());
        assert!(state.floor >= aged_id(ids[4_999], 2_000), "a reader of a dropped topic is told of the loss");
    }

    fn aged_id(id: StreamId, ms: u64) -> StreamId {
        StreamId::new(id.ms - ms, id.seq)
    }

    fn aged(d: &Arc<Delivery>, ms: u64) -> Arc<Delivery> {
        let event = Event { topic: d.topic.clone(), id: d.id.map(|id| aged_id(id, ms)), name: None, data: String::new(), retry: None };
        Arc::new(Delivery::new(&event, None))
    }

    #[tokio::test]
    async fn aliases_resolve_to_the_first_event_named_so_while_it_is_held() {
        let (bus, t) = bus(3);
        let named = |alias: &str| NewEvent { alias: Some(alias.into()), ..new_event(&t, "x") };
        let ids = bus.publish(vec![named("a"), named("b"), named("a")]).await.expect("publish");
        assert_eq!(bus.find_alias(&t, "a").await.expect("find"), Some(ids[0]), "the earliest bearer wins");
        assert_eq!(bus.find_alias(&t, "b").await.expect("find"), Some(ids[1]));
        assert_eq!(bus.find_alias(&t, "c").await.expect("find"), None);
        assert_eq!(bus.find_alias(&Topic::parse("other").expect("topic"), "a").await.expect("find"), None);
        bus.publish((0..40).map(|i| named(&format!("n{i}"))).collect()).await.expect("publish");
        assert_eq!(bus.find_alias(&t, "a").await.expect("find"), None, "trimmed events lose their names");
        assert!(bus.state.lock().expect("lock").logs[&t].aliases.len() <= 2 * 3 + 16 + 1, "names are pruned with their events");
    }

    #[tokio::test]
    async fn positions_from_before_this_process_are_reported_lost() {
        let (bus, t) = bus(3);
        let r = bus.read(&t, Some(StreamId::new(1, 0)), 10).await.expect("read");
        assert!(r.lost);
    }
}
