//! The Mercure hub settings: `GATEWAY_MERCURE` (which protocol, or off), who may subscribe
//! without a token, and for 1.0 the resource identifier and trusted issuers.

use url::Url;

use super::args::Args;
use super::error::{ConfigError, invalid};
use super::mercure_version::{MercureSetting, Protocol, UnknownSetting};

/// The hub's path, the same on every Mercure hub (the drafts' well-known URI).
pub const HUB_PATH: &str = "/.well-known/mercure";

/// Most trusted issuers: each is compared with every 1.0 token's `iss`.
const MAX_ISSUERS: usize = 16;

/// How the hub endpoint runs, when it is on.
#[derive(Debug, Clone)]
pub struct MercureConfig {
    pub protocol: Protocol,
    /// Subscribers without a token receive public updates.
    pub anonymous: bool,
    /// 1.0: publish subscription events (a subscription started or ended).
    pub subscriptions: bool,
    /// The hub's own URL: relative topics and URL patterns resolve on it, and 1.0 reserves the
    /// topics under its path.
    pub hub_url: Url,
    /// 1.0 only: the audience tokens must name and the issuers whose tokens are accepted.
    pub access: Option<AccessTokenPolicy>,
}

/// Who a 1.0 hub trusts: its resource identifier (the audience tokens must name), the issuers
/// whose tokens it accepts, and its own URL (relative URL patterns resolve on it).
#[derive(Debug, Clone)]
pub struct AccessTokenPolicy {
    pub resource: String,
    pub issuers: Vec<String>,
    pub hub_url: Url,
}

pub(super) fn mercure_config(a: &Args) -> Result<Option<MercureConfig>, ConfigError> {
    let setting: MercureSetting = a.mercure.parse().map_err(|e: UnknownSetting| invalid("GATEWAY_MERCURE", e.to_string()))?;
    let Some(protocol) = setting.protocol() else {
        for (var, set) in [
            ("GATEWAY_MERCURE_ANONYMOUS", a.mercure_anonymous),
            ("GATEWAY_MERCURE_SUBSCRIPTIONS", a.mercure_subscriptions),
            ("GATEWAY_MERCURE_RESOURCE", a.mercure_resource.is_some()),
            ("GATEWAY_MERCURE_ISSUERS", a.mercure_issuers.is_some()),
        ] {
            if set {
                return Err(invalid(var, "is only used with GATEWAY_MERCURE=0.x or 1.0"));
            }
        }
        return Ok(None);
    };
    let hub_url = hub_url(a.public_url.as_deref())?;
    let access = match protocol {
        Protocol::Legacy => {
            for (var, set) in [
                ("GATEWAY_MERCURE_RESOURCE", a.mercure_resource.is_some()),
                ("GATEWAY_MERCURE_ISSUERS", a.mercure_issuers.is_some()),
                ("GATEWAY_MERCURE_SUBSCRIPTIONS", a.mercure_subscriptions),
            ] {
                if set {
                    return Err(invalid(var, "is only used with GATEWAY_MERCURE=1.0"));
                }
            }
            None
        }
        Protocol::V1 => Some(access_policy(a, &hub_url)?),
    };
    Ok(Some(MercureConfig { protocol, anonymous: a.mercure_anonymous, subscriptions: a.mercure_subscriptions, hub_url, access }))
}

/// `GATEWAY_PUBLIC_URL` + the hub path; without a public URL, a placeholder origin (only paths
/// matter for the reserved namespace, and relative topics are rare).
fn hub_url(public_url: Option<&str>) -> Result<Url, ConfigError> {
    let base = public_url.unwrap_or("http://localhost").trim_end_matches('/');
    Url::parse(&format!("{base}{HUB_PATH}"))
        .map_err(|e| invalid("GATEWAY_PUBLIC_URL", format!("is not a URL the hub URL can be built on ({e})")))
}

fn access_policy(a: &Args, hub_url: &Url) -> Result<AccessTokenPolicy, ConfigError> {
    let resource = match a.mercure_resource.as_deref().map(str::trim) {
        Some("") => return Err(invalid("GATEWAY_MERCURE_RESOURCE", "must not be empty")),
        Some(r) => r.to_owned(),
        None if a.public_url.is_some() => hub_url.to_string(),
        None => {
            return Err(invalid(
                "GATEWAY_MERCURE_RESOURCE",
                "is required with GATEWAY_MERCURE=1.0 (the audience tokens must name, e.g. https://example.com/.well-known/mercure), or set GATEWAY_PUBLIC_URL",
            ));
        }
    };
    let issuers: Vec<String> =
        a.mercure_issuers.as_deref().unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    if issuers.is_empty() {
        return Err(invalid(
            "GATEWAY_MERCURE_ISSUERS",
            "is required with GATEWAY_MERCURE=1.0: the issuers (iss) whose tokens the hub accepts, comma-separated",
        ));
    }
    if issuers.len() > MAX_ISSUERS {
        return Err(invalid("GATEWAY_MERCURE_ISSUERS", format!("at most {MAX_ISSUERS} issuers")));
    }
    Ok(AccessTokenPolicy { resource, issuers, hub_url: hub_url.clone() })
}
