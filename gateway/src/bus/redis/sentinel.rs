//! Following a Sentinel failover at once.
//!
//! After a failover the old master keeps accepting writes until Sentinel converts it into a
//! replica (on its next poll, up to ~10 s later), and that conversion throws those writes away.
//! Links are not dropped by the failover itself, so a node would keep publishing to, and
//! listening on, a server that is about to forget. Sentinels announce the switch on their
//! `+switch-master` channel: the node listens there and moves both its links to the new
//! master at once (a reconnect asks Sentinel for the master; `pump.rs` then re-arms and `upstream/`
//! catches up from the last delivered ids).

use std::time::Duration;

use std::sync::Arc;

use fred::clients::Client;
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::types::Builder;
use fred::types::config::{Config as FredConfig, Server, ServerConfig};
use tokio_util::sync::CancellationToken;

use super::link;
use super::subscriber::SubscriberLinks;
use crate::shutdown::Shutdown;

/// Starts one watcher per known Sentinel (any of them announcing the switch is enough).
pub(super) fn spawn_watchers(config: &FredConfig, client: &Client, subscriber: &Arc<SubscriberLinks>, shutdown: &Shutdown) {
    let ServerConfig::Sentinel { hosts, service_name, .. } = &config.server else { return };
    for host in hosts {
        let task = watch(host.clone(), service_name.clone(), client.clone(), Arc::clone(subscriber), shutdown.token());
        shutdown.tracker().spawn(task);
    }
}

async fn watch(sentinel: Server, service: String, client: Client, subscriber: Arc<SubscriberLinks>, stop: CancellationToken) {
    let config = FredConfig { server: ServerConfig::new_centralized(sentinel.host.to_string(), sentinel.port), ..FredConfig::default() };
    let mut builder = Builder::from_config(config);
    // Not `link::builder`: a watcher talks to a Sentinel, not to a data server, so only the
    // reconnect policy is the links' own.
    builder.set_policy(link::reconnect_policy());
    let watcher = match builder.build_subscriber_client() {
        Ok(w) => w,
        Err(e) => return tracing::warn!(error = %e, "cannot watch a Sentinel for failovers"),
    };
    let mut messages = watcher.message_rx();
    // Keep trying: a Sentinel that is down now may come back, and until it does the others watch.
    loop {
        let ready = async {
            watcher.init().await?;
            watcher.subscribe("+switch-master").await
        };
        match ready.await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(sentinel = %sentinel.host, error = %e, "cannot subscribe to a Sentinel's failover announcements; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }
    let _resubscriber = watcher.manage_subscriptions();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            m = messages.recv() => match m {
                // "<service> <old-ip> <old-port> <new-ip> <new-port>"
                Ok(m) if m.value.as_str().is_some_and(|v| v.split(' ').next() == Some(service.as_str())) => {
                    tracing::warn!(announcement = ?m.value.as_str(), "Sentinel switched the master; moving to the new one");
                    if let Err(e) = client.force_reconnection().await {
                        tracing::warn!(error = %e, "reconnecting the command connection failed; it will retry");
                    }
                    subscriber.reconnect().await;
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    let _ = watcher.quit().await;
}
