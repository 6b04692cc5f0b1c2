//! How a node's control plane reaches the others: the [`Link`] seam, and its single-node form.
//!
//! With Redis (`bus/redis/control.rs`) messages go through one stream that every node reads, the
//! standing revocations live in one hash, and each node marks itself alive in a sorted set. On
//! the embedded bus there is one node, so a message goes straight back to its own control task.

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::bus::BusError;

/// What the control task receives.
#[derive(Debug)]
pub enum Incoming {
    /// A message from the control channel (any node's, this one's included), as sent.
    Message(String),
    /// The link may have missed messages (it was cut off): reload the standing revocations.
    Resync,
}

#[async_trait]
pub trait Link: Send + Sync + std::fmt::Debug + 'static {
    /// Sends `message` to every node sharing the bus, this one included.
    async fn broadcast(&self, message: &str) -> Result<(), BusError>;

    /// Keeps a revocation for nodes that start or reconnect while it stands.
    async fn store_revocation(&self, key: &str, until_ms: u64) -> Result<(), BusError>;

    /// The stored revocations, `(key, until_ms)`, lapsed ones included or not.
    async fn revocations(&self) -> Result<Vec<(String, u64)>, BusError>;

    /// How many nodes share the bus now, this one included: how many answers an ask waits for.
    async fn nodes(&self) -> Result<usize, BusError>;
}

/// The embedded bus's link: one node, nothing stored (the node's own table is the whole truth).
#[derive(Debug)]
pub(crate) struct LocalLink {
    tx: mpsc::Sender<Incoming>,
}

impl LocalLink {
    pub(crate) fn new(tx: mpsc::Sender<Incoming>) -> Self {
        Self { tx }
    }
}

#[async_trait]
impl Link for LocalLink {
    async fn broadcast(&self, message: &str) -> Result<(), BusError> {
        self.tx.send(Incoming::Message(message.to_owned())).await.map_err(|_| BusError::Unavailable("the control task has stopped".into()))
    }

    async fn store_revocation(&self, _key: &str, _until_ms: u64) -> Result<(), BusError> {
        Ok(())
    }

    async fn revocations(&self) -> Result<Vec<(String, u64)>, BusError> {
        Ok(Vec::new())
    }

    async fn nodes(&self) -> Result<usize, BusError> {
        Ok(1)
    }
}
