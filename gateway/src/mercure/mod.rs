//! The Mercure protocol rules: what the hub at `/.well-known/mercure` (`crate::hub`) needs to
//! speak Mercure, kept pure (no I/O, no bus, no HTTP types beyond status codes) so each rule is
//! unit-tested here and the endpoint only wires it up.
//!
//! Two protocol versions, chosen per deployment by `GATEWAY_MERCURE` (`config/mercure_version.rs`; default off):
//! - `0.x` = draft-dunglas-mercure-07, what Symfony, API Platform and 0.x hubs speak: `topic=`
//!   selectors with RFC 6570 templates, a `mercure` JWT claim, `lastEventID`.
//! - `1.0` = draft-dunglas-mercure-08: `match=` / `match_urlpattern=` matchers, RFC 9068 `at+jwt`
//!   access tokens with RFC 9396 `authorization_details`, RFC 6750 errors, `last_event_id`.
//!
//! Where each piece is used, following one update:
//! - publish (`POST`): the token's claims → `claims.rs` ([`claims::legacy_grant`] or
//!   [`claims::access_token_grant`]); the body → `update.rs` ([`update::parse_update`]); the
//!   publisher must be granted every topic ([`claims::MercureGrant::authorize_publish`]); the
//!   update is stored as JSON (`dispatch.rs`, [`dispatch::store`]) in an event of the internal
//!   `$mercure` topic and handed to the bus.
//! - subscribe (`GET`): the query → `selector.rs` ([`selector::legacy_subscription`] or
//!   [`selector::v1_subscription`]), compiled once per subscription; the token, if any → `claims.rs`.
//! - fan-out: each node decodes an update once into a [`Dispatch`] (its frame encoded once by
//!   `frame.rs`, shared by every stream); then, for each subscriber, a topic of the update must
//!   match one of the subscriber's selectors ([`selector::any_matches`]) and, for a private
//!   update, the grant must match one of its topics ([`claims::may_receive`]). Matching is linear-time in the topic for
//!   every selector form (`template.rs` and the `urlpattern` crate both compile to `regex`).
//!
//! `text.rs` holds the character rules that topics, matchers, ids and types share;
//! `subscription_event.rs` the 1.0 events announcing that a subscription started or ended.

pub(crate) mod claims;
pub(crate) mod dispatch;
pub(crate) mod frame;
pub(crate) mod intern;
pub(crate) mod selector;
pub(crate) mod subscription_event;
pub(crate) mod template;
pub(crate) mod text;
pub(crate) mod update;

pub(crate) use dispatch::Dispatch;
