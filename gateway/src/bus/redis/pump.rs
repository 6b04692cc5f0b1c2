//! What runs beside each subscriber link: its heartbeat, and the pump that forwards what it
//! receives to the upstream as [`Push`]es, re-arming the link after each reconnect.
//!
//! Every subscriber link turns keyspace notifications on, on its own server, before it subscribes,
//! and again after each reconnect: a server that restarted or was promoted has its default
//! configuration.

use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::interfaces::{ClientLike, EventInterface};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::channels::{Grouping, subscribe_channels};
use super::link::{self, from_fred};
use super::push::Push;
use crate::bus::BusError;
use crate::shutdown::Shutdown;

/// The heartbeat of a subscriber link and the pump that forwards what it receives, both on the
/// shutdown tracker and stopped by `stop`.
pub(super) fn spawn_link_tasks(
    link: &SubscriberClient,
    grouping: Grouping,
    pushes: mpsc::Sender<Push>,
    shutdown: &Shutdown,
    stop: CancellationToken,
) {
    link::spawn_heartbeat(shutdown, stop.clone(), link.clone());
    shutdown.tracker().spawn(pump(link.clone(), grouping, pushes, stop));
}

/// After a reconnect: notifications on (the server may be a fresh one), then every channel the
/// link was subscribed to, before the upstream's catch-up read, or events added after that read
/// would go unnoticed. A fresh link is not in subscribed mode yet, so `CONFIG` still works on it.
async fn rearm(s: &SubscriberClient, grouping: Grouping) -> Result<(), BusError> {
    link::enable_keyspace_notifications(s).await?;
    let classic: Vec<String> = s.tracked_channels().into_iter().map(|c| c.to_string()).collect();
    let sharded: Vec<String> = s.tracked_shard_channels().into_iter().map(|c| c.to_string()).collect();
    subscribe_channels(s, classic, sharded, grouping).await.map_err(from_fred)
}

async fn pump(s: SubscriberClient, grouping: Grouping, pushes: mpsc::Sender<Push>, stop: CancellationToken) {
    let mut keyspace = s.keyspace_event_rx();
    let mut messages = s.message_rx();
    let mut reconnects = s.reconnect_rx();
    loop {
        let push = tokio::select! {
            _ = stop.cancelled() => return,
            e = keyspace.recv() => match e {
                Ok(e) => Push::Keyspace(e),
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "keyspace notifications were dropped; reading every followed stream");
                    Push::Missed
                }
                Err(RecvError::Closed) => return,
            },
            m = messages.recv() => match m {
                Ok(m) => Push::Live(m),
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "live-only messages were dropped (at-most-once)");
                    continue;
                }
                Err(RecvError::Closed) => return,
            },
            r = reconnects.recv() => {
                if let Err(RecvError::Closed) = r {
                    return;
                }
                tracing::info!(server = ?r.ok(), "Redis subscriber reconnected; re-arming and reading every followed stream from its last id");
                // Until it is re-armed the node is deaf to these topics: keep trying while the
                // link is up (if it drops again, its next reconnect lands here anew).
                while let Err(e) = rearm(&s, grouping).await {
                    tracing::warn!(error = %e, "re-arming after a reconnect failed; retrying");
                    if !s.is_connected() {
                        break;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
                Push::Reconnected
            }
        };
        if pushes.send(push).await.is_err() {
            return;
        }
    }
}
