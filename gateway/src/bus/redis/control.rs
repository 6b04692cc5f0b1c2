//! The control plane's Redis link (see `control/`): one stream every node reads, a hash of the
//! standing revocations, and a sorted set of live nodes.
//!
//! Why a stream and not pub/sub: a node that loses its link reads on from the last entry it
//! saw when it comes back, so a revocation announced meanwhile still reaches it (the hash covers
//! the rest, for a node away longer than the stream is kept). Each node reads it on a link
//! of its own with a blocking `XREAD`, which answers as soon as an entry is added; the same loop
//! marks the node alive every [`PRESENCE_EVERY`].

use std::time::Duration;

use async_trait::async_trait;
use fred::clients::Client;
use fred::interfaces::{ClientLike, HashesInterface, KeysInterface, LuaInterface, SortedSetsInterface, StreamsInterface};
use fred::types::Value;
use fred::types::config::Blocking;
use shared::keys::KeyLayout;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::link::{self, from_fred, malformed};
use super::scripts;
use crate::bus::BusError;
use crate::control::{Incoming, Link};
use crate::counters::Counters;
use crate::epoch::now_millis;
use crate::shutdown::Shutdown;

/// How long a blocking read waits before it returns empty (below the 3 s command timeout).
const BLOCK: Duration = Duration::from_secs(1);
/// How often a node marks itself alive, and how long after its last mark it still counts.
pub(crate) const PRESENCE_EVERY: Duration = Duration::from_secs(2);
const PRESENCE_LAPSE: Duration = Duration::from_secs(6);
/// Control messages kept (approximately) and how long the stream outlives its last message.
const KEEP_MESSAGES: usize = 10_000;
const KEEP_FOR: Duration = Duration::from_secs(600);
/// The stored revocations' and the node set's expiry follow their contents (see the scripts).
const NODES_KEPT: Duration = Duration::from_secs(60);
/// A failed read is retried after this (the link reconnects on its own meanwhile).
const RETRY: Duration = Duration::from_millis(200);
/// Entries per read.
const READ_COUNT: u64 = 256;

/// Appends a message and keeps the stream bounded in length and lifetime.
const BROADCAST: &str = r"
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'm', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return id";

/// Stores a revocation (never shortening one), drops the lapsed ones and has the hash expire
/// with the last that stands.
const STORE_REVOCATION: &str = r"
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > cur then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
local all = redis.call('HGETALL', KEYS[1])
local last = 0
for i = 1, #all, 2 do
  local u = tonumber(all[i + 1]) or 0
  if u <= tonumber(ARGV[3]) then redis.call('HDEL', KEYS[1], all[i]) elseif u > last then last = u end
end
if last > 0 then redis.call('PEXPIREAT', KEYS[1], last) end
return last";

#[derive(Debug, Clone)]
pub(crate) struct RedisLink {
    client: Client,
    keys: KeyLayout,
    node: String,
    counters: std::sync::Arc<Counters>,
}

impl RedisLink {
    /// Starts reading the control stream (from its current end) on a link of its own, on
    /// the shutdown tracker; what it reads goes to `tx`.
    pub(crate) async fn start(
        client: &Client,
        keys: KeyLayout,
        node: &str,
        tx: mpsc::Sender<Incoming>,
        counters: std::sync::Arc<Counters>,
        shutdown: &Shutdown,
    ) -> Result<Self, BusError> {
        // Its own link, where a command sent while a read waits interrupts the wait instead
        // of queueing behind it, so that shutdown does not wait out a `BLOCK`.
        let mut config = client.client_config();
        config.blocking = Blocking::Interrupt;
        let reader = link::builder(config).build().map_err(from_fred)?;
        reader.init().await.map_err(from_fred)?;
        let link = Self { client: client.clone(), keys, node: node.to_owned(), counters };
        let start = link.last_id().await?;
        link.mark_alive().await?;
        let stop = shutdown.token();
        let task = Reader { reader, link: link.clone(), tx };
        shutdown.tracker().spawn(task.run(start, stop));
        Ok(link)
    }

    /// The id of the newest message, or `0-0`: where a starting node begins to read.
    async fn last_id(&self) -> Result<String, BusError> {
        let last: Value = self.client.xrevrange(self.keys.control(), "+", "-", Some(1)).await.map_err(from_fred)?;
        let Value::Array(entries) = last else { return Ok("0-0".into()) };
        Ok(entries.first().and_then(entry_id).unwrap_or_else(|| "0-0".into()))
    }

    async fn mark_alive(&self) -> Result<(), BusError> {
        let now = now_millis();
        let key = self.keys.nodes();
        let calls = async {
            let _: Value = self.client.zadd(&key, None, None, false, false, (now as f64, self.node.as_str())).await?;
            let lapsed = (now.saturating_sub(NODES_KEPT.as_millis() as u64)) as f64;
            let _: Value = self.client.zremrangebyscore(&key, f64::NEG_INFINITY, lapsed).await?;
            self.client.pexpire::<Value, _>(&key, NODES_KEPT.as_millis() as i64, None).await
        };
        self.counters.redis("presence", calls).await.map(drop).map_err(from_fred)
    }

    /// Takes this node off the live set (at shutdown), so asks stop waiting for it at once.
    pub(crate) async fn leave(&self) {
        let _ = self.client.zrem::<Value, _, _>(self.keys.nodes(), self.node.as_str()).await;
    }
}

#[async_trait]
impl Link for RedisLink {
    async fn broadcast(&self, message: &str) -> Result<(), BusError> {
        let args = vec![message.to_owned(), KEEP_MESSAGES.to_string(), KEEP_FOR.as_millis().to_string()];
        let call = self.client.eval::<Value, _, _, _>(BROADCAST, vec![self.keys.control()], args);
        self.counters.redis("control", call).await.map(drop).map_err(from_fred)
    }

    async fn store_revocation(&self, key: &str, until_ms: u64) -> Result<(), BusError> {
        let args = vec![key.to_owned(), until_ms.to_string(), now_millis().to_string()];
        let call = self.client.eval::<Value, _, _, _>(STORE_REVOCATION, vec![self.keys.revoked()], args);
        self.counters.redis("revoke", call).await.map(drop).map_err(from_fred)
    }

    async fn revocations(&self) -> Result<Vec<(String, u64)>, BusError> {
        let all: std::collections::HashMap<String, String> =
            self.counters.redis("revocations", self.client.hgetall(self.keys.revoked())).await.map_err(from_fred)?;
        Ok(all.into_iter().filter_map(|(k, v)| Some((k, v.parse().ok()?))).collect())
    }

    async fn nodes(&self) -> Result<usize, BusError> {
        let since = now_millis().saturating_sub(PRESENCE_LAPSE.as_millis() as u64) as f64;
        let n: u64 = self.counters.redis("nodes", self.client.zcount(self.keys.nodes(), since, f64::INFINITY)).await.map_err(from_fred)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

/// The loop that reads the control stream.
struct Reader {
    reader: Client,
    link: RedisLink,
    tx: mpsc::Sender<Incoming>,
}

impl Reader {
    async fn run(self, mut after: String, stop: CancellationToken) {
        let mut alive_at = tokio::time::Instant::now();
        let mut failing = false;
        loop {
            if alive_at.elapsed() >= PRESENCE_EVERY {
                alive_at = tokio::time::Instant::now();
                if let Err(e) = self.link.mark_alive().await {
                    tracing::debug!(error = %e, "could not mark this node alive");
                }
            }
            let read = self.reader.xread::<Value, _, _>(
                Some(READ_COUNT),
                Some(BLOCK.as_millis() as u64),
                self.link.keys.control(),
                after.as_str(),
            );
            let reply = tokio::select! {
                _ = stop.cancelled() => break,
                r = read => r,
            };
            let entries = match reply.map_err(from_fred).and_then(|r| scripts::xread_reply(r).map_err(malformed)) {
                Ok(streams) => streams.into_iter().flat_map(|(_, entries)| entries),
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %crate::cause::cause_chain(&e), "reading the control channel failed; retrying");
                    }
                    failing = true;
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(RETRY) => continue,
                    }
                }
            };
            if failing {
                // Back: what was announced while away is read on from `after`; what was trimmed
                // meanwhile is in the stored revocations.
                failing = false;
                let _ = self.tx.send(Incoming::Resync).await;
            }
            for entry in entries {
                let Some(id) = entry_id(&entry) else { continue };
                after = id;
                if let Some(message) = message_of(&entry)
                    && self.tx.send(Incoming::Message(message)).await.is_err()
                {
                    return;
                }
            }
        }
        self.link.leave().await;
        // A command interrupts the read still waiting on the server (`CLIENT UNBLOCK`, see
        // `start`); `QUIT` alone would queue behind it for up to `BLOCK`.
        let _ = self.reader.ping::<Value>(None).await;
        let _ = self.reader.quit().await;
    }
}

fn entry_id(entry: &Value) -> Option<String> {
    match entry {
        Value::Array(parts) => parts.first().and_then(scripts::string),
        _ => None,
    }
}

/// The `m` field of an entry.
fn message_of(entry: &Value) -> Option<String> {
    let Value::Array(parts) = entry else { return None };
    let Some(Value::Array(fields)) = parts.get(1) else { return None };
    fields
        .chunks(2)
        .find(|kv| kv.first().and_then(scripts::string).as_deref() == Some("m"))
        .and_then(|kv| kv.get(1))
        .and_then(scripts::string)
}
