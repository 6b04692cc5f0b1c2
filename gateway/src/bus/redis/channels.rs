//! The channels a node subscribes to per followed topic, and the `SUBSCRIBE` commands that do it.
//!
//! Per followed topic: the keyspace channel of the topic's stream ([`KeyLayout::keyspace`]: how raw
//! `XADD`s are noticed) and its live channel `{prefix}:live:{T}`, both as a classic channel
//! (`PUBLISH`) and as a sharded one (`SPUBLISH`), so a publisher's code is the same whatever the
//! Redis shape.

use std::collections::HashMap;

use fred::clients::SubscriberClient;
use fred::interfaces::PubsubInterface;
use shared::Topic;
use shared::keys::KeyLayout;

/// Channels per `SUBSCRIBE`.
const SUBSCRIBE_CHUNK: usize = 1024;

/// How sharded channels are grouped into commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Grouping {
    /// In chunks of [`SUBSCRIBE_CHUNK`] (standalone, Sentinel).
    Chunks,
    /// One command per hash slot: in a Cluster, a command's sharded channels must share a slot.
    BySlot,
}

/// The channel names of topics.
#[derive(Debug, Clone)]
pub(super) struct Channels {
    pub(super) keys: KeyLayout,
    pub(super) db: u8,
}

impl Channels {
    /// Classic channels: the stream's keyspace channel and the live channel.
    fn classic(&self, topics: &[Topic]) -> Vec<String> {
        topics.iter().flat_map(|t| [self.keys.keyspace(self.db, t), self.keys.live(t)]).collect()
    }

    /// Sharded channels: the live channel.
    fn sharded(&self, topics: &[Topic]) -> Vec<String> {
        topics.iter().map(|t| self.keys.live(t)).collect()
    }

    /// Subscribes `link` to the channels of `topics`. Concurrent commands share the link, so these
    /// go out pipelined.
    pub(super) async fn subscribe(&self, link: &SubscriberClient, topics: &[Topic], grouping: Grouping) -> Result<(), fred::error::Error> {
        subscribe_channels(link, self.classic(topics), self.sharded(topics), grouping).await
    }

    pub(super) async fn unsubscribe(
        &self,
        link: &SubscriberClient,
        topics: &[Topic],
        grouping: Grouping,
    ) -> Result<(), fred::error::Error> {
        let classic = self.classic(topics);
        let classic = futures::future::try_join_all(classic.chunks(SUBSCRIBE_CHUNK).map(|c| link.unsubscribe(c.to_vec())));
        let sharded =
            futures::future::try_join_all(sharded_groups(self.sharded(topics), grouping).into_iter().map(|g| link.sunsubscribe(g)));
        futures::try_join!(classic, sharded).map(|_| ())
    }
}

/// Subscribes `link` to these channels (a re-armed link's, after a reconnect).
pub(super) async fn subscribe_channels(
    link: &SubscriberClient,
    classic: Vec<String>,
    sharded: Vec<String>,
    grouping: Grouping,
) -> Result<(), fred::error::Error> {
    let classic = futures::future::try_join_all(classic.chunks(SUBSCRIBE_CHUNK).map(|c| link.subscribe(c.to_vec())));
    let sharded = futures::future::try_join_all(sharded_groups(sharded, grouping).into_iter().map(|g| link.ssubscribe(g)));
    futures::try_join!(classic, sharded).map(|_| ())
}

fn sharded_groups(channels: Vec<String>, grouping: Grouping) -> Vec<Vec<String>> {
    match grouping {
        Grouping::BySlot => {
            let mut groups: HashMap<u16, Vec<String>> = HashMap::new();
            for c in channels {
                groups.entry(fred::util::redis_keyslot(c.as_bytes())).or_default().push(c);
            }
            groups.into_values().collect()
        }
        Grouping::Chunks => channels.chunks(SUBSCRIBE_CHUNK).map(<[String]>::to_vec).collect(),
    }
}
