//! Subscription events on the bus (`GATEWAY_MERCURE_SUBSCRIPTIONS`, 1.0): a subscription is
//! announced active once its stream is registered, and inactive when the stream ends, however it
//! ends (client gone, token expired, shutdown, slow-client cut): the [`Announced`] guard travels
//! with the response body and publishes the end when it is dropped.

use serde_json::Value;
use shared::Topic;
use url::Url;

use crate::bus::{Bus, NewEvent};
use crate::mercure::claims::MercureGrant;
use crate::mercure::selector::{MatcherType, TopicRef};
use crate::mercure::subscription_event::Phase;
use crate::mercure::update::Update;
use crate::mercure::{dispatch, subscription_event};
use crate::state::AppState;

/// The subscription's end, to publish when the stream is dropped.
#[derive(Debug)]
pub(super) struct Announced {
    state: AppState,
    ended: Vec<Update>,
}

/// One matcher of a subscription, as its events name it.
#[derive(Debug)]
pub(super) struct Matcher {
    kind: MatcherType,
    source: String,
    /// What the subscriber's token attaches to this matcher.
    payload: Option<Value>,
    hub_url: Url,
}

impl Matcher {
    pub(super) fn new(kind: MatcherType, source: &str, grant: Option<&MercureGrant>, hub_url: &Url) -> Self {
        let payload = grant.and_then(|g| g.payload_for(&TopicRef::on_hub(source, hub_url))).cloned();
        Self { kind, source: source.to_owned(), payload, hub_url: hub_url.clone() }
    }

    fn event(&self, subscriber: &str, phase: Phase) -> Update {
        subscription_event::update(&self.hub_url, self.kind, &self.source, subscriber, phase, self.payload.as_ref())
    }
}

/// Publishes the start of each matcher's subscription and returns the guard that publishes their
/// end. A bus failure is logged, not returned: the stream itself is open and fine.
pub(super) async fn announce(state: &AppState, matchers: &[Matcher]) -> Announced {
    let subscriber = subscription_event::subscriber_id();
    let started: Vec<Update> = matchers.iter().map(|m| m.event(&subscriber, Phase::Started)).collect();
    let ended = matchers.iter().map(|m| m.event(&subscriber, Phase::Ended)).collect();
    publish(&*state.bus, &started).await;
    Announced { state: state.clone(), ended }
}

async fn publish(bus: &dyn Bus, updates: &[Update]) {
    let events =
        updates.iter().map(|u| NewEvent { alias: Some(u.id.clone()), ..NewEvent::new(Topic::mercure(), dispatch::store(u)) }).collect();
    if let Err(e) = bus.publish(events).await {
        tracing::warn!(error = %e, "a Mercure subscription event could not be published");
    }
}

impl Drop for Announced {
    fn drop(&mut self) {
        // Streams end inside the runtime; one dropped after it stopped has nobody left to tell.
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let ended = std::mem::take(&mut self.ended);
        let bus = self.state.bus.clone();
        // Tracked, so that shutdown waits (briefly) for the last subscriptions' ends.
        self.state.shutdown.tracker().spawn(async move { publish(&*bus, &ended).await });
    }
}
