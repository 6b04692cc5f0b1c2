//! Tail reads shared by the streams that start on a topic at the same time.
//!
//! A stream without a cursor starts at its topic's tail, read *after* it registered for live
//! events: a tail read before that could be passed by events that the stream then never
//! gets. Read per stream, a flood of new streams (or clients reconnecting without an id)
//! sends one script call each, and they queue on the node's command link ahead of its
//! publishes: 10,000 streams opening at once on a busy 2-core machine kept publishes waiting
//! past the command timeout (503s).
//!
//! So a topic has at most one tail read in flight. A caller never joins a read already sent
//! (it could be older than the caller's registration); it waits for the next one, which is sent
//! when the one in flight completes, after every caller it serves arrived. A burst of N callers
//! on a topic costs two or three reads instead of N.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::clients::Client;
use fred::interfaces::LuaInterface;
use fred::types::Value;
use shared::keys::KeyLayout;
use shared::{StreamId, Topic};
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

use super::link::{from_fred, malformed};
use super::scripts;
use crate::bus::BusError;
use crate::counters::Counters;

/// What a waiting caller gets: the tail, or the read's error (one error, many callers).
type Answer = Result<StreamId, Failed>;

/// A failed tail read, for every caller it served: which [`BusError`] it was, and its text.
#[derive(Debug, Clone)]
enum Failed {
    Unavailable(String),
    Malformed(String),
}

impl From<BusError> for Failed {
    fn from(e: BusError) -> Self {
        match e {
            BusError::Malformed(cause) => Self::Malformed(crate::cause::cause_chain(&*cause)),
            BusError::Unavailable(cause) => Self::Unavailable(crate::cause::cause_chain(&*cause)),
        }
    }
}

#[derive(Debug)]
pub(super) struct Tails {
    /// Topics with a reader task; a topic's entry goes with its task.
    waiting: Mutex<HashMap<Topic, Vec<oneshot::Sender<Answer>>>>,
    client: Client,
    keys: KeyLayout,
    /// The history's age, which the read script needs to judge a missing stream.
    max_age: Duration,
    counters: Arc<Counters>,
    /// The reader tasks: each lives while callers wait, and each of its reads is bounded by the
    /// link's command timeout.
    tracker: TaskTracker,
}

impl Tails {
    pub(super) fn new(client: Client, keys: KeyLayout, max_age: Duration, counters: Arc<Counters>, tracker: TaskTracker) -> Arc<Self> {
        Arc::new(Self { waiting: Mutex::default(), client, keys, max_age, counters, tracker })
    }

    /// The tail of `topic`, from a read sent after this call began.
    pub(super) async fn read(self: &Arc<Self>, topic: &Topic) -> Result<StreamId, BusError> {
        let (tx, rx) = oneshot::channel();
        let start_reader = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            match waiting.get_mut(topic) {
                Some(callers) => {
                    callers.push(tx);
                    false
                }
                None => {
                    waiting.insert(topic.clone(), vec![tx]);
                    true
                }
            }
        };
        if start_reader {
            // A task, not the first caller: the reads must go on for the others if that caller
            // goes away (its client disconnected while the stream was starting).
            self.tracker.spawn(Arc::clone(self).reader(topic.clone()));
        }
        match rx.await {
            Ok(Ok(tail)) => Ok(tail),
            Ok(Err(Failed::Unavailable(e))) => Err(BusError::Unavailable(e.into())),
            Ok(Err(Failed::Malformed(e))) => Err(BusError::Malformed(e.into())),
            Err(_) => Err(BusError::Unavailable("the tail reader stopped".into())),
        }
    }

    /// Serves `topic`'s callers batch by batch: takes the callers waiting now, sends one read,
    /// answers them all; ends when nobody arrived meanwhile.
    async fn reader(self: Arc<Self>, topic: Topic) {
        loop {
            let batch = {
                let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
                match waiting.get_mut(&topic) {
                    Some(callers) if !callers.is_empty() => std::mem::take(callers),
                    _ => {
                        waiting.remove(&topic);
                        return;
                    }
                }
            };
            let answer = self.read_now(&topic).await;
            for caller in batch {
                // A caller that went away needs no answer.
                let _ = caller.send(answer.clone());
            }
        }
    }

    /// The READ script with no position: only the tail.
    async fn read_now(&self, topic: &Topic) -> Answer {
        let args = vec![String::new(), "0".to_owned(), self.max_age.as_millis().to_string()];
        let reply: Value =
            self.counters.redis("read", self.client.eval(scripts::READ, self.keys.stream(topic), args)).await.map_err(from_fred)?;
        Ok(scripts::read_reply(reply).map_err(malformed)?.tail)
    }
}
