//! What every handler shares: configuration, the authenticator, the bus and the fan-out.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use crate::auth::Authenticator;
use crate::bus::Bus;
use crate::bus::fanout::Fanout;
use crate::config::Config;
use crate::control::Control;
use crate::counters::Counters;
use crate::error::ApiError;
use crate::limits::{Limits, Permit};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::tickets::Tickets;

#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub auth: Arc<Authenticator>,
    pub bus: Arc<dyn Bus>,
    pub fanout: Arc<Fanout>,
    pub counters: Arc<Counters>,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
    /// Revocation, stream counts and refresh, across nodes.
    pub control: Arc<Control>,
    pub tickets: Arc<Tickets>,
    pub shutdown: Shutdown,
    /// `GATEWAY_PUBLIC_URL` without a trailing slash, or empty: shared by every stream's refresh
    /// offer.
    pub public_url: Arc<str>,
}

impl AppState {
    /// The `retry:` value for one stream: the base plus a random share of the jitter, so
    /// that clients dropped together do not all come back in the same millisecond.
    pub fn jittered_retry_ms(&self) -> u64 {
        let base = self.config.retry.as_millis() as u64;
        let jitter = self.config.retry_jitter.as_millis() as u64;
        base + if jitter == 0 { 0 } else { rand::rng().random_range(0..=jitter) }
    }

    /// A place for one more stream under the stream limits (node-wide and per `subject`);
    /// a refusal is counted and logged here, for every stream endpoint alike.
    pub fn stream_permit(&self, subject: Option<&str>) -> Result<Permit, ApiError> {
        self.limits.acquire(subject).map_err(|e| {
            self.counters.limit_refusals.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(reason = %e, "stream refused at a connection limit");
            ApiError::Limit(e)
        })
    }

    pub fn leeway(&self) -> Duration {
        self.config.jwt.as_ref().map_or(Duration::ZERO, |j| j.leeway)
    }
}
