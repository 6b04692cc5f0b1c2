//! What a verified Mercure token grants, and the two authorization decisions built on it.
//!
//! The signature is checked elsewhere (the gateway's `Authenticator`, with its configured keys);
//! this module reads the already-verified claims as JSON and turns them into a [`MercureGrant`]:
//!
//! - 0.x: a `mercure` claim (also accepted under the name `https://mercure.rocks/`, which 0.x
//!   hubs read too) holding `publish` and `subscribe` arrays of selectors and an optional
//!   `payload`. `exp` is optional and may be a float; `aud` and `iss` are not Mercure's concern.
//! - 1.0: an RFC 9068 access token: `iss` one of the trusted issuers, `aud` holding the hub's
//!   resource identifier, `exp` required, and grants in RFC 9396 `authorization_details` entries
//!   of type [`AUTHORIZATION_DETAIL_TYPE`].
//!
//! Errors carry the RFC 6750 code the 1.0 draft prescribes ([`BearerError`]), so the endpoint maps
//! them to a `WWW-Authenticate` challenge in one place.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use url::Url;

use super::selector::{MAX_SELECTORS, MatcherType, Selector, SelectorError, TopicRef};
use crate::config::AccessTokenPolicy;

/// The claim that holds a 0.x grant, and the other name 0.x hubs accept for it.
pub(crate) const LEGACY_CLAIM: &str = "mercure";
pub(crate) const LEGACY_CLAIM_URI: &str = "https://mercure.rocks/";
/// The `type` of a Mercure entry in `authorization_details` (draft-08), compared byte for byte.
pub(crate) const AUTHORIZATION_DETAIL_TYPE: &str = "https://mercure.rocks/authorization-detail";
/// Most Mercure entries read from one token's `authorization_details`.
pub(crate) const MAX_DETAILS: usize = 32;

/// The RFC 6750 error codes, carried in a `WWW-Authenticate: Bearer` challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BearerError {
    /// 400: the token or its presentation is malformed.
    InvalidRequest,
    /// 401: the token failed validation (why is not disclosed to the client).
    InvalidToken,
    /// 403: a valid token that does not allow the operation.
    InsufficientScope,
}

impl BearerError {
    pub(crate) fn code(self) -> &'static str {
        match self {
            BearerError::InvalidRequest => "invalid_request",
            BearerError::InvalidToken => "invalid_token",
            BearerError::InsufficientScope => "insufficient_scope",
        }
    }

    pub(crate) fn status(self) -> http::StatusCode {
        match self {
            BearerError::InvalidRequest => http::StatusCode::BAD_REQUEST,
            BearerError::InvalidToken => http::StatusCode::UNAUTHORIZED,
            BearerError::InsufficientScope => http::StatusCode::FORBIDDEN,
        }
    }
}

/// Why a token grants nothing, or not this. The messages are for logs; clients only see the
/// [`BearerError`] code, as the draft recommends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GrantError {
    #[error("the token type is {0:?}, not at+jwt")]
    TokenType(Option<String>),
    #[error("the token claims are not a JSON object")]
    NotAnObject,
    #[error("the {0} claim is malformed")]
    Malformed(&'static str),
    #[error("the token has no exp claim")]
    MissingExpiry,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token issuer is not trusted")]
    UntrustedIssuer,
    #[error("the token audience does not include this hub")]
    WrongAudience,
    #[error("more than {MAX_DETAILS} Mercure authorization details")]
    TooManyDetails,
    #[error("a granted selector is invalid: {0}")]
    Selector(#[source] SelectorError),
    #[error("the token does not grant {0} on the update's topics")]
    NotGranted(&'static str),
}

impl GrantError {
    /// The RFC 6750 code for this failure: every defect of a presented token is `invalid_token`
    /// (including bad authorization details: partial acceptance is forbidden), a valid token that
    /// does not reach far enough is `insufficient_scope`.
    pub(crate) fn bearer(&self) -> BearerError {
        match self {
            GrantError::NotGranted(_) => BearerError::InsufficientScope,
            _ => BearerError::InvalidToken,
        }
    }
}

/// What one subscription's payload comes from: the first entry whose selectors match the
/// subscription's own selector string wins (1.0); a 0.x token has at most one, for every topic.
#[derive(Debug)]
pub(crate) struct PayloadGrant {
    pub selectors: Vec<Selector>,
    pub payload: Value,
}

/// The rights a verified token carries.
#[derive(Debug, Default)]
pub(crate) struct MercureGrant {
    pub publish: Vec<Selector>,
    pub subscribe: Vec<Selector>,
    pub payloads: Vec<PayloadGrant>,
    /// `exp` as the token gave it, in seconds since the epoch (a 0.x token may use a fraction).
    pub exp: Option<f64>,
    pub subject: Option<String>,
    /// The token's `jti`: what an administrator revokes to cut off one token.
    pub token_id: Option<String>,
}

impl MercureGrant {
    /// When a subscription under this token must end.
    pub(crate) fn expires_at(&self) -> Option<SystemTime> {
        self.exp.map(|exp| UNIX_EPOCH + Duration::from_secs_f64(exp))
    }

    /// Whether this grant may publish an update with `topics`: every topic, canonical and
    /// alternate, must be granted, or the update is refused whole.
    pub(crate) fn authorize_publish(&self, topics: &[TopicRef<'_>]) -> Result<(), GrantError> {
        let granted = |t: &TopicRef<'_>| self.publish.iter().any(|s| s.matches(t));
        if !topics.is_empty() && topics.iter().all(granted) { Ok(()) } else { Err(GrantError::NotGranted("publish")) }
    }

    /// Whether this grant may receive a private update with `topics`: one granted topic is enough,
    /// which is what lets a publisher reach one subscriber through an alternate topic.
    pub(crate) fn may_receive_private(&self, topics: &[TopicRef<'_>]) -> bool {
        topics.iter().any(|t| self.subscribe.iter().any(|s| s.matches(t)))
    }

    /// The payload to attach to the subscription whose selector is `selector`.
    pub(crate) fn payload_for(&self, selector: &TopicRef<'_>) -> Option<&Value> {
        self.payloads.iter().find(|p| p.selectors.iter().any(|s| s.matches(selector))).map(|p| &p.payload)
    }
}

/// Whether a subscriber (with its grant, or none when anonymous) receives an update: public
/// updates reach everyone whose selectors chose them, private ones only a granted subscriber.
pub(crate) fn may_receive(grant: Option<&MercureGrant>, private: bool, topics: &[TopicRef<'_>]) -> bool {
    !private || grant.is_some_and(|g| g.may_receive_private(topics))
}

/// The 0.x grant in `claims`, checked against `now`. A token without a `mercure` claim is valid
/// and grants nothing (its bearer is treated like an anonymous subscriber).
pub(crate) fn legacy_grant(claims: &Value, now: SystemTime) -> Result<MercureGrant, GrantError> {
    let claims = claims.as_object().ok_or(GrantError::NotAnObject)?;
    let exp = check_times(claims, now)?;
    let subject = claims.get("sub").and_then(Value::as_str).map(str::to_owned);
    let token_id = claims.get("jti").and_then(Value::as_str).map(str::to_owned);
    let Some(mercure) = claims.get(LEGACY_CLAIM).or_else(|| claims.get(LEGACY_CLAIM_URI)) else {
        return Ok(MercureGrant { exp, subject, token_id, ..MercureGrant::default() });
    };
    let mercure = mercure.as_object().ok_or(GrantError::Malformed("mercure"))?;
    let list = |key: &'static str| -> Result<Vec<Selector>, GrantError> {
        match mercure.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => {
                if items.len() > MAX_SELECTORS {
                    return Err(GrantError::Selector(SelectorError::TooMany));
                }
                items
                    .iter()
                    .map(|v| Selector::legacy(v.as_str().ok_or(GrantError::Malformed(key))?).map_err(GrantError::Selector))
                    .collect()
            }
            Some(_) => Err(GrantError::Malformed(key)),
        }
    };
    let payloads = match mercure.get("payload") {
        None | Some(Value::Null) => Vec::new(),
        Some(payload) => vec![PayloadGrant { selectors: vec![Selector::Any], payload: payload.clone() }],
    };
    Ok(MercureGrant { publish: list("publish")?, subscribe: list("subscribe")?, payloads, exp, subject, token_id })
}

/// Checks the JOSE header's `typ`: `at+jwt`, or `application/at+jwt`, case-insensitively, so that
/// a token minted for something else (an OpenID Connect ID token) is not accepted as access.
pub(crate) fn check_access_token_type(typ: Option<&str>) -> Result<(), GrantError> {
    let t = typ.unwrap_or_default();
    let short = if t.len() > 12 && t[..12].eq_ignore_ascii_case("application/") { &t[12..] } else { t };
    if short.eq_ignore_ascii_case("at+jwt") { Ok(()) } else { Err(GrantError::TokenType(typ.map(str::to_owned))) }
}

/// The 1.0 grant in an access token's `claims`, checked against `policy` and `now`. Any malformed
/// Mercure entry invalidates the whole token; entries of other types are someone else's.
pub(crate) fn access_token_grant(claims: &Value, policy: &AccessTokenPolicy, now: SystemTime) -> Result<MercureGrant, GrantError> {
    let claims = claims.as_object().ok_or(GrantError::NotAnObject)?;
    let exp = check_times(claims, now)?.ok_or(GrantError::MissingExpiry)?;
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if policy.issuers.iter().any(|t| t == iss) => {}
        _ => return Err(GrantError::UntrustedIssuer),
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == policy.resource,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(&policy.resource)),
        _ => false,
    };
    if !audience_ok {
        return Err(GrantError::WrongAudience);
    }
    let mut grant = MercureGrant {
        exp: Some(exp),
        subject: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
        token_id: claims.get("jti").and_then(Value::as_str).map(str::to_owned),
        ..MercureGrant::default()
    };
    let details = match claims.get("authorization_details") {
        None | Some(Value::Null) => return Ok(grant),
        Some(Value::Array(details)) => details,
        Some(_) => return Err(GrantError::Malformed("authorization_details")),
    };
    let mut count = 0;
    for detail in details {
        let detail = detail.as_object().ok_or(GrantError::Malformed("authorization_details"))?;
        if detail.get("type").and_then(Value::as_str) != Some(AUTHORIZATION_DETAIL_TYPE) {
            continue;
        }
        count += 1;
        if count > MAX_DETAILS {
            return Err(GrantError::TooManyDetails);
        }
        read_detail(detail, &policy.hub_url, &mut grant)?;
    }
    Ok(grant)
}

/// One Mercure authorization detail: `actions` (unknown ones grant nothing), `topics` (matcher
/// objects), and an optional `payload` object for `subscribe`.
fn read_detail(detail: &serde_json::Map<String, Value>, hub: &Url, grant: &mut MercureGrant) -> Result<(), GrantError> {
    let actions = match detail.get("actions") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        _ => return Err(GrantError::Malformed("actions")),
    };
    let mut publish = false;
    let mut subscribe = false;
    for action in actions {
        match action.as_str().ok_or(GrantError::Malformed("actions"))? {
            "publish" => publish = true,
            "subscribe" => subscribe = true,
            _ => {}
        }
    }
    let topics = match detail.get("topics") {
        Some(Value::Array(t)) if !t.is_empty() => t,
        _ => return Err(GrantError::Malformed("topics")),
    };
    if topics.len() > MAX_SELECTORS {
        return Err(GrantError::Selector(SelectorError::TooMany));
    }
    let mut selectors = Vec::with_capacity(topics.len());
    for topic in topics {
        let topic = topic.as_object().ok_or(GrantError::Malformed("topics"))?;
        let pattern = topic.get("match").and_then(Value::as_str).ok_or(GrantError::Malformed("topics"))?;
        let kind = match topic.get("match_type") {
            None => MatcherType::Exact,
            Some(Value::String(name)) => MatcherType::from_name(name).map_err(GrantError::Selector)?,
            Some(_) => return Err(GrantError::Malformed("topics")),
        };
        selectors.push(Selector::v1(kind, pattern, hub).map_err(GrantError::Selector)?);
    }
    let payload = match detail.get("payload") {
        None => None,
        Some(p @ Value::Object(_)) => Some(p.clone()),
        Some(_) => return Err(GrantError::Malformed("payload")),
    };
    if publish {
        grant.publish.extend(selectors.iter().cloned());
    }
    if subscribe {
        if let Some(payload) = payload {
            grant.payloads.push(PayloadGrant { selectors: selectors.clone(), payload });
        }
        grant.subscribe.extend(selectors);
    }
    Ok(())
}

/// `exp` (optional here, possibly a float NumericDate) and `nbf`, against `now`.
fn check_times(claims: &serde_json::Map<String, Value>, now: SystemTime) -> Result<Option<f64>, GrantError> {
    let now = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let date = |key: &'static str| match claims.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().filter(|d| d.is_finite() && *d >= 0.0).map(Some).ok_or(GrantError::Malformed(key)),
    };
    let exp = date("exp")?;
    if exp.is_some_and(|exp| exp <= now) {
        return Err(GrantError::Expired);
    }
    if date("nbf")?.is_some_and(|nbf| nbf > now) {
        return Err(GrantError::NotYetValid);
    }
    Ok(exp)
}

#[cfg(test)]
mod tests;
