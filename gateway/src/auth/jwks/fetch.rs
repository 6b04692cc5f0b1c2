//! One JWKS fetch: bounded in time (the client's timeout covers connecting, the head and the
//! body) and in size (the body is read chunk by chunk and refused past [`MAX_BYTES`], never
//! buffered whole first), and how long the answer may be cached, from its HTTP caching headers.

use std::time::{Duration, SystemTime};

use reqwest::Url;
use reqwest::header::{CACHE_CONTROL, CONTENT_LENGTH, DATE, EXPIRES, HeaderMap};

/// Largest JWKS accepted. A key set of a few dozen RSA-4096 keys is well under 100 KiB.
pub(super) const MAX_BYTES: usize = 256 * 1024;
/// Cache lifetime of an answer without caching headers.
pub(super) const DEFAULT_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Longest cache lifetime, whatever the headers say: a key the provider withdrew (a leaked
/// one) stops verifying within this.
pub(super) const MAX_LIFETIME: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, thiserror::Error)]
pub(super) enum FetchError {
    /// Connection, TLS or timeout; the URL is stripped (it is logged apart, without its query).
    #[error("the request failed")]
    Request(#[source] reqwest::Error),
    #[error("the server answered HTTP {0}")]
    Status(u16),
    #[error("the response exceeds {MAX_BYTES} bytes")]
    TooLarge,
    #[error("the response is not a JWK set")]
    Json(#[source] serde_json::Error),
}

impl From<reqwest::Error> for FetchError {
    fn from(e: reqwest::Error) -> Self {
        Self::Request(e.without_url())
    }
}

/// The keys of a JWK set, each still raw JSON: one key the library cannot read must not cost
/// the others.
#[derive(Debug, serde::Deserialize)]
pub(super) struct RawSet {
    pub keys: Vec<serde_json::Value>,
}

#[derive(Debug)]
pub(super) struct Fetched {
    pub set: RawSet,
    /// `None`: the answer said nothing about caching.
    pub lifetime: Option<Duration>,
}

pub(super) async fn fetch(client: &reqwest::Client, url: &Url) -> Result<Fetched, FetchError> {
    let mut response = client.get(url.clone()).header(reqwest::header::ACCEPT, "application/json").send().await?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    let announced = response.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BYTES as u64) {
        return Err(FetchError::TooLarge);
    }
    let lifetime = lifetime(response.headers(), SystemTime::now());
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    let set = serde_json::from_slice(&body).map_err(FetchError::Json)?;
    Ok(Fetched { set, lifetime })
}

/// How long an answer may be cached (RFC 9111): `Cache-Control: max-age` wins over `Expires`
/// (counted from the answer's `Date`, else `now`); `no-store`, `no-cache` and an unreadable
/// `Expires` mean "already stale". The caller clamps the result.
pub(super) fn lifetime(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let directives = headers.get_all(CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
    let mut max_age = None;
    for directive in directives.map(|d| d.trim().to_ascii_lowercase()) {
        if directive == "no-store" || directive == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(secs) = directive.strip_prefix("max-age=").and_then(|s| s.trim_matches('"').parse::<u64>().ok()) {
            max_age = Some(Duration::from_secs(secs));
        }
    }
    if max_age.is_some() {
        return max_age;
    }
    let expires = headers.get(EXPIRES)?;
    let Some(expires) = expires.to_str().ok().and_then(|s| httpdate::parse_http_date(s).ok()) else {
        return Some(Duration::ZERO);
    };
    let date = headers.get(DATE).and_then(|v| httpdate::parse_http_date(v.to_str().ok()?).ok()).unwrap_or(now);
    Some(expires.duration_since(date).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, value.parse().expect("a header value"));
        }
        h
    }

    #[test]
    fn max_age_wins_over_expires() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let h = headers(&[("cache-control", "public, max-age=600, must-revalidate"), ("expires", &httpdate::fmt_http_date(now))]);
        assert_eq!(lifetime(&h, now), Some(Duration::from_secs(600)));
    }

    #[test]
    fn expires_counts_from_the_date_header_or_now() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(120));
        assert_eq!(lifetime(&headers(&[("expires", &later)]), now), Some(Duration::from_secs(120)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(20));
        assert_eq!(lifetime(&headers(&[("expires", &later), ("date", &date)]), now), Some(Duration::from_secs(100)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(5));
        assert_eq!(lifetime(&headers(&[("expires", &past)]), now), Some(Duration::ZERO));
        assert_eq!(lifetime(&headers(&[("expires", "0")]), now), Some(Duration::ZERO), "an invalid date is already stale");
    }

    #[test]
    fn no_store_is_stale_and_no_header_is_unknown() {
        let now = SystemTime::now();
        assert_eq!(lifetime(&headers(&[("cache-control", "no-store")]), now), Some(Duration::ZERO));
        assert_eq!(lifetime(&headers(&[("cache-control", "max-age=60"), ("cache-control", "no-cache")]), now), Some(Duration::ZERO));
        assert_eq!(lifetime(&headers(&[("cache-control", "max-age=banana")]), now), None);
        assert_eq!(lifetime(&HeaderMap::new(), now), None);
    }
}
