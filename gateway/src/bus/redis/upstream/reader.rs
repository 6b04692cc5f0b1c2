//! The upstream's reader: reads pending streams after their last delivered id, in batches, and
//! hands what it finds to the fan-out, in order per topic.
//!
//! A read Redis answers with what the gateway cannot read ([`BusError::Malformed`]: a key of the
//! topic's stream that holds another type, a reply of an unknown shape) would fail the same way
//! every time. Retried as a whole, one such topic would stall every topic of its batch for ever.
//! So a malformed batch is read again topic by topic; the topics that still fail are logged once,
//! counted (`redis_malformed{kind="reply"}`) and set aside, backing off (see `state.rs`), while
//! every other topic flows. A malformed entry is skipped past its id, logged and counted
//! (`kind="entry"`): it is never read again.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fred::interfaces::{ClientLike, LuaInterface, StreamsInterface};
use fred::types::Value;
use shared::{StreamId, Topic};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{READ_KEYS, Upstream};
use crate::bus::redis::link::{from_fred, malformed};
use crate::bus::redis::scripts;
use crate::bus::{BusError, Delivery};
use crate::cause::cause_chain;

/// Entries read per stream per `XREAD`.
const READ_COUNT: u64 = 256;
/// A read that failed because Redis is away is tried again after this.
const RETRY: Duration = Duration::from_millis(200);

impl Upstream {
    /// Reads pending streams after their last delivered id and delivers what it finds, in order.
    pub(in crate::bus::redis) async fn run_reader(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let next_due = self.state().release_due(Instant::now());
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake_reader.notified() => {}
                _ = sleep_until(next_due) => {}
            }
            self.state().release_due(Instant::now());
            loop {
                let batch = self.state().take_batch(READ_KEYS, Instant::now());
                if batch.is_empty() {
                    break;
                }
                let away = match self.read(batch.clone()).await {
                    Ok(()) => {
                        self.recovered(batch.iter().map(|(t, _)| t));
                        false
                    }
                    Err(e @ BusError::Malformed(_)) if batch.len() == 1 => {
                        self.set_aside(&batch[0].0, &e);
                        false
                    }
                    Err(BusError::Malformed(_)) => self.read_apart(&batch).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading streams failed; retrying");
                        self.state().pending.extend(batch.into_iter().map(|(t, _)| t));
                        true
                    }
                };
                if away {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(RETRY) => {}
                    }
                }
            }
        }
    }

    /// Checks where to continue (after a reconnect), then reads.
    async fn read(&self, batch: Vec<(Topic, StreamId)>) -> Result<(), BusError> {
        let batch = self.resume_points(batch).await?;
        self.read_batch(&batch).await
    }

    /// A batch came back malformed: reads each of its topics alone (together on the pipelined
    /// link), so that only the topics Redis answers badly about are set aside. Returns whether
    /// Redis was away for some (they are pending again).
    async fn read_apart(&self, batch: &[(Topic, StreamId)]) -> bool {
        let alone: Vec<(Topic, StreamId)> = {
            // From where each topic is now: the failed pass may have delivered some of it.
            let state = self.state();
            batch.iter().filter_map(|(t, _)| state.followed.get(t).map(|f| (t.clone(), f.last))).collect()
        };
        let reads = alone.iter().map(|item| self.read(vec![item.clone()]));
        let mut away = false;
        for ((topic, _), result) in alone.iter().zip(futures::future::join_all(reads).await) {
            match result {
                Ok(()) => self.recovered([topic]),
                Err(e @ BusError::Malformed(_)) => self.set_aside(topic, &e),
                Err(e) => {
                    tracing::warn!(topic = %topic, error = %e, "reading a stream failed; retrying");
                    self.state().pending.insert(topic.clone());
                    away = true;
                }
            }
        }
        away
    }

    /// Counts and sets aside a topic whose read came back malformed; logs the first time only.
    fn set_aside(&self, topic: &Topic, e: &BusError) {
        self.counters.redis_malformed.get_or_create(&[("kind", "reply")]).inc();
        if self.state().set_aside(topic, Instant::now()) {
            tracing::warn!(topic = %topic, error = %cause_chain(e), "Redis answers about this topic's stream with what cannot be read; setting it aside, reading it again later");
        } else {
            tracing::debug!(topic = %topic, error = %cause_chain(e), "the topic's stream still cannot be read");
        }
    }

    /// These topics were read well: any set aside before is back.
    fn recovered<'a>(&self, topics: impl IntoIterator<Item = &'a Topic>) {
        let mut state = self.state();
        for topic in topics {
            if state.recovered(topic) {
                tracing::info!(topic = %topic, "the topic's stream can be read again");
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
            self.counters.redis(
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
                return Err(from_fred(e));
            }
        };
        for ((i, _), answer) in checks.iter().zip(answers) {
            let point = scripts::stream_id(&answer).map_err(malformed)?;
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
    /// slot), sent together on the pipelined link.
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
            self.counters.redis("xread", self.client.xread::<Value, _, _>(Some(READ_COUNT), None, keys, ids))
        });
        for reply in futures::future::try_join_all(reads).await.map_err(from_fred)? {
            self.deliver_reply(reply)?;
        }
        Ok(())
    }

    fn deliver_reply(&self, reply: Value) -> Result<(), BusError> {
        for (key, entries) in scripts::xread_reply(reply).map_err(malformed)? {
            let Some(topic) = self.keys.topic_of_stream(&key) else { continue };
            let full = entries.len() as u64 >= READ_COUNT;
            for entry in &entries {
                match scripts::entry(&topic, entry) {
                    Ok(entry) => self.deliver(entry),
                    Err(e) => {
                        tracing::warn!(topic = %topic, error = %e, "skipping a stream entry");
                        self.counters.redis_malformed.get_or_create(&[("kind", "entry")]).inc();
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
                self.counters.events_xadd.fetch_add(1, Ordering::Relaxed);
            }
            self.fanout.deliver(Arc::new(Delivery::new(&event, entry.trace)));
        }
    }

    /// Records `id` among the topic's recently delivered ids; false if it is there already (it
    /// was delivered before a rewind).
    fn remember(&self, topic: &Topic, id: StreamId) -> bool {
        self.state().followed.get_mut(topic).is_some_and(|f| f.remember(id))
    }

    /// Moves the topic's position to `id` if that is forward; says whether it moved.
    fn advance(&self, topic: &Topic, id: StreamId) -> bool {
        self.state().followed.get_mut(topic).is_some_and(|f| f.advance(id))
    }
}

/// Sleeps until `at`, or for ever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn entry_id(v: &Value) -> Option<StreamId> {
    match v {
        Value::Array(pair) => pair.first().and_then(|id| scripts::stream_id(id).ok()),
        _ => None,
    }
}
