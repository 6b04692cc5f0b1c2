//! The streams this node holds, as the control plane sees them: who holds each (subject, token
//! id), what it follows, when it ends, and how to tell it that it was revoked or extended.
//!
//! A stream registers before it starts and leaves when its [`Registration`] drops. The
//! registration and the revocation check happen under the same lock as a revocation's insert
//! and scan (see `Control`), so a stream opening while a revocation arrives is either refused
//! or found and closed: never missed.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared::{Claims, Topic};
use tokio::sync::Notify;

use super::message::RefreshRefusal;
use super::revocations::Target;

/// One held stream.
#[derive(Debug)]
pub struct StreamEntry {
    id: Box<str>,
    sub: Option<String>,
    topics: Vec<Topic>,
    /// The token currently keeping the stream alive: a refresh replaces it.
    token: Mutex<TokenState>,
    leeway: Duration,
    revoked: AtomicBool,
    /// Wakes the stream after a revocation or a refresh (one waiter: the stream itself).
    wake: Arc<Notify>,
}

#[derive(Debug, Clone)]
struct TokenState {
    jti: Option<String>,
    exp: u64,
    /// The revocation that closed the stream, for its last frame.
    revoked_by: Option<(Target, u64)>,
}

impl StreamEntry {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn topics(&self) -> &[Topic] {
        &self.topics
    }

    /// Whether a revocation closed the stream (it sends `gateway.revoked` and ends).
    pub fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }

    /// The revocation that closed it, and until when (Unix ms) it stands.
    pub fn revoked_by(&self) -> Option<(Target, u64)> {
        self.state().revoked_by.clone()
    }

    /// The current token's `exp` (Unix seconds): a refresh raises it.
    pub fn exp(&self) -> u64 {
        self.state().exp
    }

    /// How long the current token keeps the stream alive from now (with the verifier's leeway).
    pub fn expires_in(&self) -> Duration {
        crate::auth::time_left_until(self.state().exp, self.leeway)
    }

    /// What the stream waits on; fires once per change (a permit is kept if it is busy).
    pub fn wake(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    pub(super) fn covered_by(&self, target: &Target) -> bool {
        let state = self.state();
        target.covers(self.sub.as_deref(), state.jti.as_deref(), &self.topics)
    }

    pub(super) fn revoke(&self, target: Target, until_ms: u64) {
        self.state().revoked_by = Some((target, until_ms));
        self.revoked.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Extends the stream to `claims.exp` if the new token may hold it: the same subject, every
    /// topic granted, and a later expiry.
    pub(super) fn extend(&self, claims: &Claims) -> Result<u64, RefreshRefusal> {
        use RefreshRefusal as R;
        if claims.sub != self.sub {
            return Err(R::Subject);
        }
        if !self.topics.iter().all(|t| claims.may_subscribe(t)) {
            return Err(R::Topics);
        }
        let mut state = self.state();
        if claims.exp <= state.exp {
            return Err(R::NotLater);
        }
        state.exp = claims.exp;
        state.jti = claims.jti.clone();
        drop(state);
        self.wake.notify_one();
        Ok(claims.exp)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, TokenState> {
        self.token.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The node's streams by id. A set keyed by the entry's own id, so that a stream pays for its
/// id once rather than again as a map key.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    streams: HashSet<ById>,
}

#[derive(Debug)]
struct ById(Arc<StreamEntry>);

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}
impl Eq for ById {}
impl Hash for ById {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}
impl Borrow<str> for ById {
    fn borrow(&self) -> &str {
        &self.0.id
    }
}

impl Registry {
    pub(super) fn insert(&mut self, node: &str, claims: &Claims, topics: &[Topic], leeway: Duration) -> Arc<StreamEntry> {
        let entry = Arc::new(StreamEntry {
            id: new_stream_id(node).into_boxed_str(),
            sub: claims.sub.clone(),
            topics: topics.to_vec(),
            token: Mutex::new(TokenState { jti: claims.jti.clone(), exp: claims.exp, revoked_by: None }),
            leeway,
            revoked: AtomicBool::new(false),
            wake: Arc::new(Notify::new()),
        });
        self.streams.insert(ById(Arc::clone(&entry)));
        entry
    }

    pub(super) fn remove(&mut self, id: &str) {
        self.streams.remove(id);
        if self.streams.capacity() > 64 && self.streams.len() < self.streams.capacity() / 4 {
            // As `bus::shrink_idle` does for maps: a crowd that left gives its room back.
            self.streams.shrink_to(self.streams.len() * 2);
        }
    }

    pub(super) fn get(&self, id: &str) -> Option<Arc<StreamEntry>> {
        self.streams.get(id).map(|e| Arc::clone(&e.0))
    }

    /// The streams under `target` (a scan: revocations and counts are rare next to events).
    pub(super) fn covered_by<'a>(&'a self, target: &'a Target) -> impl Iterator<Item = &'a Arc<StreamEntry>> + 'a {
        self.streams.iter().map(|e| &e.0).filter(move |e| !e.is_revoked() && e.covered_by(target))
    }

    pub(crate) fn len(&self) -> usize {
        self.streams.len()
    }
}

/// A stream id: the holding node's name (16 hex digits), so that a refresh reaches the node that
/// can answer it, then 128 random bits, so that the refresh URL that names it cannot be guessed.
fn new_stream_id(node: &str) -> String {
    format!("{node}{:032x}", rand::random::<u128>())
}

/// Whether `id` has the form `new_stream_id` gives (48 lowercase hex digits).
pub(crate) fn is_stream_id(id: &str) -> bool {
    id.len() == 48 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
