//! One-time stream tickets: `POST /tickets` trades a token (header or cookie) for a short-lived,
//! single-use ticket, and `GET /events?ticket=…` opens a stream with it, on any node sharing the
//! bus. Browsers' `EventSource` cannot set headers, so without tickets a page puts its token in
//! the event-stream URL, where proxies log it and the browser's history keeps it; a ticket there
//! is worth nothing once used, and nothing after `GATEWAY_TICKET_TTL` (30 s by default).
//!
//! A ticket is bound to the claims its token verified to (after `{sub}` was filled in), narrowed
//! to the topics the client asked for if it did, and never outlives the token's `exp`. The
//! stream it opens runs exactly as if the token had been presented: grants, subject limits,
//! expiry at the token's `exp`.
//!
//! Why each refusal is what it is, and in which order they are checked (`redeem`): the string's
//! form (`ticket_malformed`), its deployment tag (`ticket_foreign`), its expiry time
//! (`ticket_expired`), all without asking the store; then the store, which hands the entry out
//! once (`ticket_used` afterwards, `ticket_unknown` for one it never had). A ticket is spent when
//! it is presented, whatever follows authentication (a `403` for a topic it does not open, a
//! `429` or `503` at a limit): the client asks for a new one.

pub(crate) mod format;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use shared::{Claims, Topic, TopicPattern};
use tokio_util::sync::CancellationToken;

use crate::auth::AuthError;
use crate::bus::tickets::{Stored, Taken};
use crate::bus::{Bus, BusError};
use crate::counters::Counters;
use crate::epoch::now_millis;
use format::Ticket;

/// How long the deployment's tag outlives the last refresh of any node: short, so that Redis
/// forgets it soon after the deployment's last node stopped.
pub(crate) const DEPLOYMENT_TTL: Duration = Duration::from_secs(30);
/// How often each node refreshes the tag: a node stalled for less than `DEPLOYMENT_TTL` minus
/// this, with every other node stopped, does not let it lapse.
const DEPLOYMENT_REFRESH: Duration = Duration::from_secs(10);

/// Why a ticket could not be issued or redeemed.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// Presented, and refused: `401` with the reason (`AuthError::Ticket*`).
    #[error(transparent)]
    Refused(AuthError),
    /// The embedded bus holds its maximum of unexpired tickets.
    #[error("this node holds its maximum of {0} unexpired tickets")]
    Full(usize),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// A ticket just issued.
#[derive(Debug)]
pub struct Issued {
    pub ticket: String,
    /// Whole seconds left, rounded down (so a client never counts on time it does not have).
    pub expires_in: u64,
}

/// Issues and redeems tickets through the bus's ticket store.
#[derive(Debug)]
pub struct Tickets {
    bus: Arc<dyn Bus>,
    ttl: Duration,
    /// This deployment's tag, as the store last said.
    deployment: RwLock<String>,
    counters: Arc<Counters>,
}

impl Tickets {
    /// Learns (or, first in the deployment, chooses) the deployment's tag.
    pub async fn new(bus: Arc<dyn Bus>, ttl: Duration, counters: Arc<Counters>) -> Result<Self, BusError> {
        let deployment = bus.deployment(&format::new_deployment(), DEPLOYMENT_TTL).await?;
        Ok(Self { bus, ttl, deployment: RwLock::new(deployment), counters })
    }

    fn deployment(&self) -> String {
        self.deployment.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn count(&self, outcome: &'static str) {
        self.counters.tickets.get_or_create(&[("outcome", outcome)]).inc();
    }

    /// A ticket for `claims`, opening only `topics` when given (each already checked to be
    /// granted by the claims), expiring after the TTL or at the token's `exp`, whichever is first.
    pub async fn issue(&self, claims: &Claims, topics: Option<&[Topic]>) -> Result<Issued, TicketError> {
        let now = now_millis();
        let expires_ms = (now + self.ttl.as_millis() as u64).min(claims.exp.saturating_mul(1000));
        if expires_ms <= now {
            // Still inside the verifier's leeway: a ticket would be born expired.
            return Err(TicketError::Refused(AuthError::Expired));
        }
        let mut claims = claims.clone();
        if let Some(topics) = topics {
            // A topic name is a pattern that matches only itself.
            claims.subscribe = topics.iter().filter_map(|t| TopicPattern::parse(t.as_str()).ok()).collect();
        }
        let entry = serde_json::to_string(&claims).map_err(|e| BusError::Unavailable(e.into()))?;
        let ticket = format::mint(&self.deployment(), expires_ms);
        let digest = Ticket::parse(&ticket).map_err(|e| BusError::Unavailable(e.into()))?.digest();
        match self.bus.put_ticket(&digest, entry, Duration::from_millis(expires_ms - now)).await? {
            Stored::Kept => {}
            Stored::Full(max) => {
                self.count("full");
                return Err(TicketError::Full(max));
            }
        }
        self.count("issued");
        Ok(Issued { ticket, expires_in: (expires_ms - now) / 1000 })
    }

    /// The claims `raw` was issued for, if it is a live ticket of this deployment never
    /// presented before. Never logs the ticket: only why it was refused.
    pub async fn redeem(&self, raw: &str) -> Result<Claims, TicketError> {
        let result = self.check(raw).await;
        match &result {
            Ok(_) => self.count("redeemed"),
            Err(TicketError::Refused(e)) => {
                tracing::debug!(reason = e.code(), "ticket refused");
                self.count(e.code());
            }
            Err(_) => {}
        }
        result
    }

    async fn check(&self, raw: &str) -> Result<Claims, TicketError> {
        let refused = |e| Err(TicketError::Refused(e));
        let Ok(ticket) = Ticket::parse(raw) else { return refused(AuthError::TicketMalformed) };
        if ticket.deployment != self.deployment() {
            return refused(AuthError::TicketForeign);
        }
        if ticket.expires_ms <= now_millis() {
            return refused(AuthError::TicketExpired);
        }
        match self.bus.take_ticket(&ticket.digest()).await? {
            Taken::Entry(entry) => serde_json::from_str(&entry).map_err(|e| {
                tracing::warn!(error = %e, "a stored ticket's claims do not parse");
                TicketError::Refused(AuthError::TicketUnknown)
            }),
            Taken::Used => refused(AuthError::TicketUsed),
            Taken::Unknown => refused(AuthError::TicketUnknown),
        }
    }

    /// Keeps the deployment's tag alive in the store, and adopts the stored one if it changed
    /// (see `bus/redis/tickets.rs`). Only the Redis bus needs it.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        // `new` has just done the first refresh.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + DEPLOYMENT_REFRESH, DEPLOYMENT_REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let ours = self.deployment();
            match self.bus.deployment(&ours, DEPLOYMENT_TTL).await {
                Ok(stored) if stored != ours => {
                    tracing::warn!(
                        "the deployment's ticket tag changed in Redis (its key was lost); tickets issued here before now are refused as foreign"
                    );
                    *self.deployment.write().unwrap_or_else(|e| e.into_inner()) = stored;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %crate::cause::cause_chain(&e), "cannot refresh the deployment's ticket tag"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::fanout::Fanout;
    use crate::bus::memory::MemoryBus;

    async fn tickets(ttl: Duration) -> Tickets {
        let bus = Arc::new(MemoryBus::new(Arc::new(Fanout::new(8, Arc::default())), 10, Duration::from_secs(60)));
        Tickets::new(bus, ttl, Arc::default()).await.expect("the embedded bus always answers")
    }

    fn claims(exp_in: u64) -> Claims {
        let subscribe = vec![TopicPattern::parse("user.*").expect("pattern")];
        Claims { sub: Some("alice".into()), exp: crate::epoch::now_secs() + exp_in, subscribe, ..Claims::default() }
    }

    fn refusal(r: Result<Claims, TicketError>) -> AuthError {
        match r {
            Err(TicketError::Refused(e)) => e,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_ticket_opens_once_with_the_claims_it_was_issued_for() {
        let t = tickets(Duration::from_secs(30)).await;
        let claims = claims(3600);
        let issued = t.issue(&claims, None).await.expect("issued");
        assert_eq!(issued.expires_in, 30);
        assert_eq!(t.redeem(&issued.ticket).await.expect("redeemed"), claims);
        assert_eq!(refusal(t.redeem(&issued.ticket).await), AuthError::TicketUsed);
        let outcomes: Vec<u64> =
            ["issued", "redeemed", "ticket_used"].iter().map(|o| t.counters.tickets.get_or_create(&[("outcome", *o)]).get()).collect();
        assert_eq!(outcomes, [1, 1, 1]);
    }

    #[tokio::test]
    async fn a_narrowed_ticket_grants_exactly_its_topics() {
        let t = tickets(Duration::from_secs(30)).await;
        let topics = [Topic::parse("user.1").expect("topic"), Topic::parse("user.2").expect("topic")];
        let issued = t.issue(&claims(3600), Some(&topics)).await.expect("issued");
        let opened = t.redeem(&issued.ticket).await.expect("redeemed");
        assert!(topics.iter().all(|topic| opened.may_subscribe(topic)));
        assert!(!opened.may_subscribe(&Topic::parse("user.3").expect("topic")));
    }

    #[tokio::test]
    async fn a_ticket_never_outlives_its_token_and_none_is_born_expired() {
        let t = tickets(Duration::from_secs(300)).await;
        let issued = t.issue(&claims(20), None).await.expect("issued");
        assert!(issued.expires_in <= 20, "{}", issued.expires_in);
        let expiring = Claims { exp: crate::epoch::now_secs(), ..claims(0) };
        assert_eq!(refusal(t.issue(&expiring, None).await.map(|_| Claims::default())), AuthError::Expired);
    }

    #[tokio::test]
    async fn refusals_that_need_no_lookup_come_first() {
        let t = tickets(Duration::from_secs(30)).await;
        assert_eq!(refusal(t.redeem("nonsense").await), AuthError::TicketMalformed);
        let foreign = format::mint(&format::new_deployment(), now_millis() + 10_000);
        assert_eq!(refusal(t.redeem(&foreign).await), AuthError::TicketForeign);
        let expired = format::mint(&t.deployment(), now_millis() - 1);
        assert_eq!(refusal(t.redeem(&expired).await), AuthError::TicketExpired);
        let guessed = format::mint(&t.deployment(), now_millis() + 10_000);
        assert_eq!(refusal(t.redeem(&guessed).await), AuthError::TicketUnknown);
    }

    #[tokio::test]
    async fn a_ticket_whose_expiry_was_changed_is_unknown() {
        let t = tickets(Duration::from_secs(30)).await;
        let issued = t.issue(&claims(3600), None).await.expect("issued");
        let parts: Vec<&str> = issued.ticket.split('.').collect();
        let later = format::mint(parts[0], now_millis() + 3_600_000);
        let extended = format!("{}.{}.{}", parts[0], later.split('.').nth(1).expect("expiry"), parts[2]);
        assert_eq!(refusal(t.redeem(&extended).await), AuthError::TicketUnknown);
        assert!(t.redeem(&issued.ticket).await.is_ok(), "the real one still works");
    }
}
