//! A hub request's token: where each protocol version lets it travel, and what it grants.
//!
//! - 0.x: the `Authorization` header, else the `authorization` query parameter, else (subscribe
//!   only) the `mercureAuthorization` cookie; the first one present is the one used.
//! - 1.0: the `Authorization` header, else (subscribe only) the `__Secure-mercure_access_token`
//!   cookie; a token in the query string is not part of that draft.
//!
//! Cookies are not read on publish: a cookie is ambient, so a form on any site could publish as
//! the user (the native `/publish` refuses cookies for the same reason).
//!
//! Signatures are checked with the gateway's keys (secret, public key or JWKS), the claims by
//! `crate::mercure::claims`. A token is never logged; refusals log the reason only.

use std::time::SystemTime;

use axum::http::HeaderMap;
use shared::Claims;

use super::error::HubError;
use super::settings::Hub;
use crate::auth::{self, AuthError};
use crate::config::Protocol;
use crate::error::ApiError;
use crate::mercure::claims::{self, BearerError, MercureGrant};
use crate::state::AppState;

/// The 0.x cookie name the draft recommends and Symfony sets.
pub(super) const LEGACY_COOKIE: &str = "mercureAuthorization";
/// The 1.0 cookie name.
pub(super) const V1_COOKIE: &str = "__Secure-mercure_access_token";

/// What the request is for: cookies count for subscribing only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Publish,
    Subscribe,
}

/// The request's token, if it presents one. A malformed `Authorization` header is an error, not
/// "no token": the client meant to authenticate.
pub(super) fn find<'a>(
    protocol: Protocol,
    headers: &'a HeaderMap,
    query: &'a [(String, String)],
    purpose: Purpose,
) -> Result<Option<&'a str>, HubError> {
    if let Some(token) = auth::bearer(headers).map_err(|_| HubError::Bearer(BearerError::InvalidRequest))? {
        return Ok(Some(token));
    }
    if protocol == Protocol::Legacy
        && let Some((_, token)) = query.iter().find(|(k, _)| k == "authorization")
    {
        return Ok(Some(token));
    }
    if purpose == Purpose::Publish {
        return Ok(None);
    }
    let name = match protocol {
        Protocol::Legacy => LEGACY_COOKIE,
        Protocol::V1 => V1_COOKIE,
    };
    Ok(auth::cookie(headers, name))
}

/// Verifies `token` and reads its grant for the hub's protocol.
pub(super) async fn grant(state: &AppState, hub: &Hub, token: &str) -> Result<MercureGrant, HubError> {
    let refused = |reason: &str| {
        tracing::debug!(reason, "Mercure token refused");
        state.counters.auth_failures.get_or_create(&[("reason", "mercure")]).inc();
        HubError::Bearer(BearerError::InvalidToken)
    };
    let raw = match state.auth.verify_raw(token).await {
        Ok(raw) => raw,
        Err(AuthError::KeysUnavailable) => return Err(HubError::Api(ApiError::KeysUnavailable)),
        Err(e) => return Err(refused(e.code())),
    };
    let now = SystemTime::now();
    let grant = match (&hub.config.access, hub.config.protocol) {
        (Some(policy), Protocol::V1) => {
            claims::check_access_token_type(raw.typ.as_deref()).and_then(|()| claims::access_token_grant(&raw.claims, policy, now))
        }
        _ => claims::legacy_grant(&raw.claims, now),
    };
    let grant = grant.map_err(|e| refused(&e.to_string()))?;
    // The admin API's revocations (by subject or `jti`) hold for Mercure tokens too.
    if state.control.refusing(&control_claims(Some(&grant), u64::MAX)).is_some() {
        return Err(refused(AuthError::Revoked.code()));
    }
    Ok(grant)
}

/// What the control plane knows a Mercure stream or publisher by: its subject, its token id and
/// when it ends (`exp`, seconds since the epoch), so that revocation and the admin counts cover
/// Mercure streams as they cover native ones.
pub(super) fn control_claims(grant: Option<&MercureGrant>, exp: u64) -> Claims {
    Claims { sub: grant.and_then(|g| g.subject.clone()), jti: grant.and_then(|g| g.token_id.clone()), exp, ..Claims::default() }
}
