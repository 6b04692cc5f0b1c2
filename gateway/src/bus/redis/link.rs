//! The one home of the gateway's links to Redis: how a link is built (timeouts, the reconnect
//! policy), kept alive (the heartbeat), armed (keyspace notifications) and how what `fred` says
//! becomes a [`BusError`]. The command link, the subscriber links, the control reader and the
//! Sentinel watchers are all built here, so they behave alike when Redis goes away.

use std::collections::HashMap;
use std::time::Duration;

use fred::clients::Client;
use fred::error::{Error as FredError, ErrorKind};
use fred::interfaces::{ClientLike, ConfigInterface, HeartbeatInterface};
use fred::types::Builder;
use fred::types::config::{Config as FredConfig, ReconnectPolicy};
use tokio_util::sync::CancellationToken;

use super::tls;
use crate::bus::BusError;
use crate::shutdown::Shutdown;

/// How long a command may wait for its reply before it fails (and a publish answers 503).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// How often an otherwise silent link pings (see [`spawn_heartbeat`]).
const HEARTBEAT: Duration = Duration::from_secs(2);

/// Reconnect for ever, at once and then backing off to 2 s: a node never gives Redis up, and a
/// failover's new master is found within seconds. Every link uses it, the Sentinel watchers too.
pub(super) fn reconnect_policy() -> ReconnectPolicy {
    ReconnectPolicy::new_exponential(0, 100, 2_000, 2)
}

/// A link builder for `config` with the gateway's policy: reconnect for ever (see
/// [`reconnect_policy`]); a command fails after [`COMMAND_TIMEOUT`] instead of waiting for ever,
/// so publishes answer 503 while Redis is away.
pub(super) fn builder(config: FredConfig) -> Builder {
    let mut builder = Builder::from_config(config);
    builder
        .set_policy(reconnect_policy())
        .with_performance_config(|p| {
            p.default_command_timeout = COMMAND_TIMEOUT;
            // Preallocated per notification channel and link; a lag is caught up from the streams.
            p.broadcast_channel_capacity = 4096;
        })
        .with_connection_config(|c| {
            c.connection_timeout = COMMAND_TIMEOUT;
            c.internal_command_timeout = COMMAND_TIMEOUT;
            c.max_command_attempts = 2;
            c.unresponsive.max_timeout = Some(Duration::from_secs(5));
            c.unresponsive.interval = Duration::from_secs(1);
        });
    builder
}

/// The configuration of `url`, with the CA certificates of `ca_file` for `rediss://` (else the
/// system's roots). Every link of the node (per-master subscribers included) is built from it.
pub(super) fn config(url: &str, ca_file: Option<&std::path::Path>) -> Result<FredConfig, BusError> {
    let mut config = FredConfig::from_url(url).map_err(from_fred)?;
    if let (Some(path), Some(_)) = (ca_file, &config.tls) {
        config.tls = Some(tls::connector(path).map_err(|e| BusError::Unavailable(e.into()))?.into());
    }
    Ok(config)
}

/// The node's command link, connected (failing if Redis cannot be reached now).
pub(super) async fn command_link(config: &FredConfig) -> Result<Client, BusError> {
    let client = builder(config.clone()).build().map_err(from_fred)?;
    client.init().await.map_err(from_fred)?;
    Ok(client)
}

/// A link that sends no commands of its own (a subscriber, an idle node) would not notice that it
/// died silently (a failover, a dropped NAT entry), and the node would stay "healthy" and deaf. A
/// PING every 2 s gives the unresponsive check (5 s) something to time out on; the reconnect that
/// follows re-arms and catches up from the last ids.
pub(super) fn spawn_heartbeat<C: HeartbeatInterface + Send + Sync + 'static>(shutdown: &Shutdown, stop: CancellationToken, link: C) {
    shutdown.tracker().spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = link.enable_heartbeat(HEARTBEAT, false) => {}
        }
    });
}

/// Keyspace notifications for stream commands (`K` + `t`, or `A`) are how nodes learn of raw
/// `XADD`s. Turn them on, keeping whatever else the server had, or say exactly what to set.
pub(super) async fn enable_keyspace_notifications<C: ConfigInterface + Sync>(link: &C) -> Result<(), BusError> {
    let current: HashMap<String, String> = link.config_get("notify-keyspace-events").await.map_err(from_fred)?;
    let flags = current.get("notify-keyspace-events").cloned().unwrap_or_default();
    if flags.contains('K') && (flags.contains('t') || flags.contains('A')) {
        return Ok(());
    }
    let wanted: String = format!("{flags}Kt");
    link.config_set::<_, _>("notify-keyspace-events", wanted.as_str()).await.map_err(|e| {
        BusError::Unavailable(
            format!(
                "keyspace notifications for streams are off and CONFIG SET was refused ({e}); set notify-keyspace-events to include Kt"
            )
            .into(),
        )
    })?;
    tracing::info!(flags = %wanted, "enabled keyspace notifications for streams");
    Ok(())
}

/// The conversion of `fred`'s errors: what a failed command means for the caller. Redis answered, but about data the gateway cannot
/// use (a key of another type than the gateway writes there: `WRONGTYPE`, which `fred` reports as
/// an invalid argument; a reply `fred` could not convert): [`BusError::Malformed`], which the same
/// command would meet again. Anything else (no link, a timeout, a failover) may pass:
/// [`BusError::Unavailable`].
pub(super) fn from_fred(e: FredError) -> BusError {
    match e.kind() {
        ErrorKind::InvalidArgument | ErrorKind::Parse => BusError::Malformed(Box::new(e)),
        _ => BusError::Unavailable(Box::new(e)),
    }
}

/// A reply (or a stream entry) whose shape the gateway does not know: see [`BusError::Malformed`].
pub(super) fn malformed(e: impl std::error::Error + Send + Sync + 'static) -> BusError {
    BusError::Malformed(Box::new(e))
}
