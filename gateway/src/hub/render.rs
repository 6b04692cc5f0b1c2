//! What a Mercure stream sends of each `$mercure` event: the update's frame when one of its
//! topics matches the stream's selectors and, for a private update, the stream's grant allows
//! one of its topics; nothing otherwise.

use bytes::Bytes;
use url::Url;

use crate::bus::Delivery;
use crate::config::Protocol;
use crate::mercure::claims::{MercureGrant, may_receive};
use crate::mercure::selector::{Selector, TopicRef, any_matches};
use crate::stream::Render;

#[derive(Debug)]
pub(super) struct MercureRender {
    pub protocol: Protocol,
    pub selectors: Vec<Selector>,
    /// `None`: an anonymous subscriber, who receives public updates only.
    pub grant: Option<MercureGrant>,
    pub hub_url: Url,
}

impl Render for MercureRender {
    fn frame(&self, d: &Delivery) -> Option<Bytes> {
        let update = d.mercure()?;
        let topics: Vec<TopicRef<'_>> = match self.protocol {
            Protocol::V1 => update.topic_refs(&self.hub_url),
            Protocol::Legacy => update.topics.iter().map(|t| TopicRef::plain(t)).collect(),
        };
        let chosen = topics.iter().any(|t| any_matches(&self.selectors, t));
        (chosen && may_receive(self.grant.as_ref(), update.private, &topics)).then(|| update.frame.clone())
    }
}
