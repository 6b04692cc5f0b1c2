//! Identity providers' key sets (`GATEWAY_JWT_JWKS_URL`): fetched at start, cached, refreshed on
//! their caching headers and on an unknown `kid`.
//!
//! Bounds, so that neither a provider nor a client can make the gateway misbehave:
//! - a fetch is bounded in time and size (`fetch.rs`); a failed one keeps the last good keys;
//! - no URL is fetched on schedule more often than once per `min_refresh` (the floor of the
//!   cache lifetime, and the retry delay after a failure), nor less often than once an hour;
//! - an unknown `kid` triggers at most one fetch per `min_refresh`, shared by every request that
//!   waits for it (single flight): a flood of tokens with made-up `kid`s costs the provider one
//!   request per interval per node.
//!
//! Until every URL has answered once the node is not ready (`/readyz` 503), and a token that
//! needs a key the gateway does not have yet gets 503 `keys_unavailable` rather than 401.

mod fetch;
mod key;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, Validation};
use reqwest::Url;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::key::{JwksKey, Refusal};
use super::error::AuthError;
use crate::cause::cause_chain;
use crate::config::JwksConfig;
use crate::counters::Counters;

/// The keys of every configured URL, and when each is due for a fetch.
pub struct Jwks {
    urls: Vec<Url>,
    client: reqwest::Client,
    accepted: Vec<Algorithm>,
    checks: Validation,
    min_refresh: Duration,
    sources: RwLock<Vec<Source>>,
    /// Held for the whole of a fetch, so that fetches never overlap (single flight); holds when
    /// the last fetch an unknown `kid` asked for began.
    flight: tokio::sync::Mutex<Option<Instant>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(shown).collect();
        f.debug_struct("Jwks").field("urls", &urls).finish_non_exhaustive()
    }
}

/// One URL's keys: `None` until it first answers.
struct Source {
    keys: Option<HashMap<String, Arc<JwksKey>>>,
    due: Instant,
    failing: bool,
}

/// A URL as logged: no query string (it might hold an API key).
fn shown(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

impl Jwks {
    pub(super) fn new(
        config: &JwksConfig,
        accepted: &[Algorithm],
        checks: Validation,
        counters: Arc<Counters>,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("sse-gateway/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let now = Instant::now();
        let sources = config.urls.iter().map(|_| Source { keys: None, due: now, failing: false }).collect();
        Ok(Self {
            urls: config.urls.clone(),
            client,
            accepted: accepted.to_vec(),
            checks,
            min_refresh: config.min_refresh,
            sources: RwLock::new(sources),
            flight: tokio::sync::Mutex::new(None),
            counters,
        })
    }

    /// The first fetch of every URL, at start. A failure is logged and leaves the node unready;
    /// [`Jwks::run`] retries.
    pub async fn load(&self) {
        let _flight = self.flight.lock().await;
        self.fetch(|_| true).await;
    }

    /// Whether every URL has answered at least once.
    pub fn ready(&self) -> bool {
        self.sources.read().unwrap_or_else(PoisonError::into_inner).iter().all(|s| s.keys.is_some())
    }

    pub(super) fn find(&self, kid: &str) -> Option<Arc<JwksKey>> {
        let sources = self.sources.read().unwrap_or_else(PoisonError::into_inner);
        sources.iter().find_map(|s| s.keys.as_ref()?.get(kid).cloned())
    }

    /// The key `kid` after fetching the sets again, unless a fetch for an unknown `kid` began
    /// less than `min_refresh` ago. Requests arriving during a fetch wait for it and use its
    /// result.
    pub(super) async fn find_after_refresh(&self, kid: &str) -> Result<Arc<JwksKey>, AuthError> {
        let mut last = self.flight.lock().await;
        if let Some(key) = self.find(kid) {
            return Ok(key);
        }
        if last.is_none_or(|t| t.elapsed() >= self.min_refresh) {
            *last = Some(Instant::now());
            self.fetch(|_| true).await;
            if let Some(key) = self.find(kid) {
                return Ok(key);
            }
        }
        if self.ready() { Err(AuthError::UnknownKey) } else { Err(AuthError::KeysUnavailable) }
    }

    /// Refetches each URL when its cache lifetime (or retry delay) runs out, until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let next = self.sources.read().unwrap_or_else(PoisonError::into_inner).iter().map(|s| s.due).min();
            let Some(next) = next else { return };
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep_until(next) => {}
            }
            let refresh = async {
                let _flight = self.flight.lock().await;
                let now = Instant::now();
                // A fetch for an unknown `kid` may have renewed it meanwhile.
                self.fetch(|s| s.due <= now).await;
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = refresh => {}
            }
        }
    }

    /// Fetches the URLs whose source `pick` selects, concurrently, and applies the answers. The
    /// caller holds `flight`.
    async fn fetch(&self, pick: impl Fn(&Source) -> bool) {
        let picked: Vec<usize> = {
            let sources = self.sources.read().unwrap_or_else(PoisonError::into_inner);
            (0..sources.len()).filter(|&i| pick(&sources[i])).collect()
        };
        let answers = futures::future::join_all(picked.iter().map(|&i| fetch::fetch(&self.client, &self.urls[i]))).await;
        for (i, answer) in picked.into_iter().zip(answers) {
            self.apply(i, answer);
        }
        self.publish_gauges();
    }

    fn apply(&self, i: usize, answer: Result<fetch::Fetched, fetch::FetchError>) {
        let url = shown(&self.urls[i]);
        let now = Instant::now();
        let result = if answer.is_ok() { "ok" } else { "error" };
        self.counters.jwks_fetches.get_or_create(&[("result", result)]).inc();
        match answer {
            Ok(fetched) => {
                let keys = self.usable_keys(&url, fetched.set);
                let lifetime =
                    fetched.lifetime.unwrap_or(fetch::DEFAULT_LIFETIME).clamp(self.min_refresh, fetch::MAX_LIFETIME.max(self.min_refresh));
                tracing::info!(url, keys = keys.len(), next_in = ?lifetime, "JWKS fetched");
                let mut sources = self.sources.write().unwrap_or_else(PoisonError::into_inner);
                sources[i] = Source { keys: Some(keys), due: now + lifetime, failing: false };
            }
            Err(e) => {
                let mut sources = self.sources.write().unwrap_or_else(PoisonError::into_inner);
                let kept = sources[i].keys.as_ref().map(HashMap::len);
                tracing::warn!(url, error = %cause_chain(&e), kept_keys = ?kept, retry_in = ?self.min_refresh, "JWKS fetch failed; the last good keys stay in use");
                sources[i].failing = true;
                sources[i].due = now + self.min_refresh;
            }
        }
    }

    /// The keys of a set the gateway may verify with; every other one is logged and ignored.
    fn usable_keys(&self, url: &str, set: fetch::RawSet) -> HashMap<String, Arc<JwksKey>> {
        let mut keys = HashMap::new();
        for raw in set.keys {
            let kid = raw.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
            let jwk = match serde_json::from_value::<Jwk>(raw) {
                Ok(jwk) => jwk,
                Err(e) => {
                    tracing::warn!(url, kid, error = %e, "JWKS key ignored: unreadable");
                    continue;
                }
            };
            match key::from_jwk(&jwk, &self.accepted, &self.checks) {
                Ok((kid, key)) if !keys.contains_key(&kid) => {
                    keys.insert(kid, Arc::new(key));
                }
                Ok((kid, _)) => tracing::warn!(url, kid, "JWKS key ignored: its kid is taken by an earlier key of the set"),
                // Providers publish encryption keys beside signing ones: not worth a warning.
                Err(Refusal::NotForSigning) => tracing::debug!(url, kid, "JWKS key ignored: not a signing key"),
                Err(reason) => tracing::warn!(url, kid, %reason, "JWKS key ignored"),
            }
        }
        keys
    }

    fn publish_gauges(&self) {
        let sources = self.sources.read().unwrap_or_else(PoisonError::into_inner);
        let keys: usize = sources.iter().filter_map(|s| s.keys.as_ref().map(HashMap::len)).sum();
        let failing = sources.iter().filter(|s| s.failing || s.keys.is_none()).count();
        self.counters.jwks_keys.store(keys as u64, Ordering::Relaxed);
        self.counters.jwks_failing.store(failing as u64, Ordering::Relaxed);
    }
}
