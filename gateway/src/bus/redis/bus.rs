//! The Redis bus itself: the node's command link, what it starts (its upstream, the subscriber
//! links, the Sentinel watchers), and the [`Bus`] calls, each one script or command.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::clients::Client;
use fred::interfaces::{ClientLike, KeysInterface, LuaInterface};
use fred::types::Value;
use fred::types::{Expiration, SetOptions};
use shared::keys::KeyLayout;
use shared::{StreamId, Topic};

use super::control;
use super::link::{self, from_fred, malformed};
use super::scripts;
use super::sentinel;
use super::subscriber::SubscriberLinks;
use super::tails::Tails;
use super::upstream::Upstream;
use crate::bus::fanout::Fanout;
use crate::bus::{Bus, BusError, Delivery, NewEvent, Replay};
use crate::config::RedisUrl;
use crate::counters::Counters;
use crate::shutdown::Shutdown;
use crate::telemetry::TraceContext;

/// What the Redis bus needs from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct RedisSettings {
    pub url: RedisUrl,
    pub prefix: String,
    /// Approximate stream length bound (0: none).
    pub max_len: usize,
    /// Approximate age bound of stream entries, and how long a stream outlives its last event
    /// (it expires then, see `scripts::PUBLISH`).
    pub max_age: Duration,
    /// How often every followed stream is read whatever the notifications said (a safety net).
    pub reconcile_every: Duration,
    /// CA certificates for `rediss://` (else the system's roots).
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug)]
pub(crate) struct RedisBus {
    pub(super) client: Client,
    subscriber: Arc<SubscriberLinks>,
    pub(super) keys: KeyLayout,
    settings: RedisSettings,
    upstream: Arc<Upstream>,
    /// Tail reads (streams starting without a cursor), shared per topic.
    tails: Arc<Tails>,
    pub(super) counters: Arc<Counters>,
}

/// How long a publish's receipt is kept: longer than the link may hold a command before it
/// gives up on it (`default_command_timeout`), after which it never sends it again.
const RECEIPT_TTL: Duration = Duration::from_secs(10);

/// Pushed messages waiting for the upstream (beyond this, the subscriber links wait).
const PUSH_QUEUE: usize = 4096;

impl RedisBus {
    /// Connects (failing if Redis cannot be reached now), makes sure keyspace notifications for
    /// streams are on, and starts this node's upstream tasks on the shutdown tracker.
    pub(crate) async fn connect(
        settings: RedisSettings,
        fanout: Arc<Fanout>,
        counters: Arc<Counters>,
        shutdown: &Shutdown,
    ) -> Result<Arc<Self>, BusError> {
        let config = link::config(settings.url.as_str(), settings.ca_file.as_deref())?;
        let db = config.database.unwrap_or(0);
        let client = link::command_link(&config).await?;
        let keys = KeyLayout::new(&settings.prefix);
        let (pushes, pushed) = tokio::sync::mpsc::channel(PUSH_QUEUE);
        let subscriber = SubscriberLinks::connect(&config, &client, keys.clone(), db, pushes, shutdown).await?;
        sentinel::spawn_watchers(&config, &client, &subscriber, shutdown);
        let upstream = Arc::new(Upstream::new(
            client.clone(),
            Arc::clone(&subscriber),
            keys.clone(),
            db,
            settings.reconcile_every,
            fanout,
            Arc::clone(&counters),
        ));
        let tails = Tails::new(client.clone(), keys.clone(), settings.max_age, Arc::clone(&counters), shutdown.tracker().clone());
        let stop = shutdown.token();
        link::spawn_heartbeat(shutdown, stop.clone(), client.clone());
        shutdown.tracker().spawn(Arc::clone(&upstream).run_sync(stop.clone()));
        shutdown.tracker().spawn(Arc::clone(&upstream).run_messages(pushed, stop.clone()));
        shutdown.tracker().spawn(Arc::clone(&upstream).run_reader(stop));
        Ok(Arc::new(Self { client, subscriber, keys, settings, upstream, tails, counters }))
    }

    /// The control plane's link over this Redis (see `control.rs`), reading on its own
    /// link from now on.
    pub(crate) async fn control_link(
        &self,
        node: &str,
        tx: tokio::sync::mpsc::Sender<crate::control::Incoming>,
        shutdown: &Shutdown,
    ) -> Result<control::RedisLink, BusError> {
        control::RedisLink::start(&self.client, self.keys.clone(), node, tx, Arc::clone(&self.counters), shutdown).await
    }

    /// Closes every link (the last step of shutdown).
    pub(crate) async fn quit(&self) {
        self.subscriber.quit().await;
        let _ = self.client.quit().await;
    }

    async fn publish_topic(&self, topic: &Topic, events: &[&NewEvent]) -> Result<Vec<StreamId>, BusError> {
        let mut args: Vec<String> =
            vec![self.settings.max_len.to_string(), self.settings.max_age.as_millis().to_string(), RECEIPT_TTL.as_millis().to_string()];
        for e in events {
            let mut fields = vec!["data".to_owned(), e.data.clone()];
            if let Some(name) = &e.name {
                fields.extend(["event".to_owned(), name.to_string()]);
            }
            if let Some(retry) = e.retry {
                fields.extend(["retry".to_owned(), retry.to_string()]);
            }
            fields.extend([scripts::VIA_FIELD.to_owned(), scripts::VIA_GATEWAY.to_owned()]);
            if let Some(trace) = &e.trace {
                fields.extend([TraceContext::TRACEPARENT.to_owned(), trace.traceparent.clone()]);
                if let Some(state) = &trace.tracestate {
                    fields.extend([TraceContext::TRACESTATE.to_owned(), state.clone()]);
                }
            }
            args.push((fields.len() / 2).to_string());
            args.extend(fields);
            args.push(if e.alias.is_some() { "1" } else { "0" }.to_owned());
        }
        let receipt = self.keys.receipt(topic, &format!("{:016x}", rand::random::<u64>()));
        let mut keys = vec![self.keys.stream(topic), receipt];
        keys.extend(events.iter().filter_map(|e| e.alias.as_deref()).map(|alias| self.keys.alias(topic, alias)));
        let reply: Value = self.counters.redis("publish", self.client.eval(scripts::PUBLISH, keys, args)).await.map_err(from_fred)?;
        let Value::Array(ids) = reply else { return Err(malformed(scripts::ReplyError("the publish script's ids"))) };
        ids.iter().map(|v| scripts::stream_id(v).map_err(malformed)).collect()
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, events: Vec<NewEvent>) -> Result<Vec<StreamId>, BusError> {
        // One atomic script call per topic (a topic's keys live on one shard); ids go back in
        // the order the events came.
        let mut by_topic: Vec<(Topic, Vec<usize>)> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            match by_topic.iter_mut().find(|(t, _)| *t == e.topic) {
                Some((_, idx)) => idx.push(i),
                None => by_topic.push((e.topic.clone(), vec![i])),
            }
        }
        // Topics are independent: their script calls go out together (one round trip).
        let calls = by_topic.iter().map(|(topic, idx)| {
            let group: Vec<&NewEvent> = idx.iter().map(|&i| &events[i]).collect();
            async move { self.publish_topic(topic, &group).await }
        });
        let mut ids = vec![StreamId::ZERO; events.len()];
        for ((_, idx), assigned) in by_topic.iter().zip(futures::future::try_join_all(calls).await?) {
            for (&i, id) in idx.iter().zip(assigned) {
                ids[i] = id;
            }
        }
        Ok(ids)
    }

    async fn read(&self, topic: &Topic, after: Option<StreamId>, limit: usize) -> Result<Replay, BusError> {
        if after.is_none() {
            return Ok(Replay { tail: self.tails.read(topic).await?, ..Replay::default() });
        }
        let args = vec![after.map(|a| a.to_string()).unwrap_or_default(), limit.to_string(), self.settings.max_age.as_millis().to_string()];
        let reply: Value =
            self.counters.redis("read", self.client.eval(scripts::READ, self.keys.stream(topic), args)).await.map_err(from_fred)?;
        let reply = scripts::read_reply(reply).map_err(malformed)?;
        let mut events = Vec::with_capacity(reply.entries.len());
        for entry in &reply.entries {
            match scripts::entry(topic, entry) {
                // A replay goes to one stream, not through the fan-out: no `deliver` span.
                Ok(entry) => events.push(Arc::new(Delivery::new(&entry.event, None))),
                Err(e) => tracing::warn!(topic = %topic, error = %e, "skipping a stream entry"),
            }
        }
        let lost = after.is_some_and(|a| reply.lost_after(a));
        Ok(Replay { events, lost, tail: reply.tail })
    }

    async fn find_alias(&self, topic: &Topic, alias: &str) -> Result<Option<StreamId>, BusError> {
        let key = self.keys.alias(topic, alias);
        let id: Option<String> = self.counters.redis("find_alias", self.client.get(key)).await.map_err(from_fred)?;
        // A value that is not an id was not written by a gateway: as good as no alias.
        Ok(id.and_then(|id| StreamId::parse(&id).ok()))
    }

    async fn follow(&self, topics: &[Topic]) -> Result<(), BusError> {
        self.upstream.follow(topics).await
    }

    async fn claim(&self, name: &str, ttl: Duration) -> Result<bool, BusError> {
        let key = format!("{}:claim:{name}", self.settings.prefix);
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let set: Option<String> = self
            .counters
            .redis("claim", self.client.set(key, "1", Some(Expiration::PX(ms)), Some(SetOptions::NX), false))
            .await
            .map_err(from_fred)?;
        Ok(set.is_some())
    }

    fn is_ready(&self) -> bool {
        self.client.is_connected() && self.subscriber.is_connected()
    }
}
