//! Configuration: every setting is a flag and an environment variable (clap with `env`), parsed
//! into real types and cross-validated once at start. A bad value stops the process with one line
//! that names the variable, before any task starts.
//!
//! A leaf: it imports nothing from the rest of the crate. The value types it parses into (the
//! token key, the Mercure protocol and access policy, the health probe, the Redis URL, the CA
//! certificates of `GATEWAY_REDIS_CA_FILE`) live here, and the modules that use them import them
//! from here.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

mod args;
mod error;
mod jwt;
mod key;
mod mercure;
mod mercure_version;
mod probe;
mod redis;

pub use args::{Args, Command};
pub use error::ConfigError;
use error::{clap_error, invalid};
pub use jwt::{JwksConfig, JwtConfig};
pub(crate) use key::is_hmac;
pub use key::{ASYMMETRIC, KeyMaterial};
pub use mercure::{AccessTokenPolicy, HUB_PATH, MercureConfig};
pub use mercure_version::{MercureSetting, Protocol, UnknownSetting};
pub use probe::Probe;
pub(crate) use redis::read_ca;
pub use redis::{CaError, RedisUrl};

/// Validated configuration, built once and shared as `Arc<Config>`.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    /// `None`: demo mode, a random secret is generated at start.
    pub jwt: Option<JwtConfig>,
    /// Demo tokens signed with the configured secret (`GATEWAY_DEMO`); with no key configured
    /// the gateway is in demo mode anyway.
    pub demo: bool,
    pub auth_cookie: String,
    pub ticket_ttl: Duration,
    pub cors_origins: Vec<String>,
    pub retry: Duration,
    pub retry_jitter: Duration,
    pub heartbeat: Duration,
    /// Zero: no in-band refresh.
    pub refresh_window: Duration,
    pub revocation_ttl: Duration,
    pub client_queue: usize,
    pub write_timeout: Duration,
    pub header_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub max_topics: usize,
    pub max_body_bytes: usize,
    pub max_batch: usize,
    pub max_connections: usize,
    pub max_connections_per_subject: usize,
    pub metrics_addr: Option<SocketAddr>,
    pub history_max_len: usize,
    pub history_max_age: Duration,
    pub shutdown_grace: Duration,
    pub clock_interval: Option<Duration>,
    pub clock_topic: shared::Topic,
    pub public_url: Option<String>,
    pub json_logs: bool,
    /// `None`: the embedded bus.
    pub redis_url: Option<RedisUrl>,
    pub redis_prefix: String,
    pub redis_reconcile: Duration,
    /// CA certificates for `rediss://`, read and checked at start.
    pub redis_ca_file: Option<std::path::PathBuf>,
    /// `None`: no traces are exported.
    pub otel: Option<OtelConfig>,
    /// `None`: no Mercure hub (`GATEWAY_MERCURE=off`).
    pub mercure: Option<MercureConfig>,
}

/// Where traces go (`OTEL_EXPORTER_OTLP_ENDPOINT`) and under which service name.
#[derive(Debug, Clone)]
pub struct OtelConfig {
    pub endpoint: String,
    pub service_name: String,
}

/// What the command line asks for: serve (no subcommand), or probe a running server.
#[derive(Debug)]
pub enum Invocation {
    Serve(Box<Config>),
    HealthCheck(Probe),
}

impl Invocation {
    /// Parses flags and environment; a parse error is turned into one line naming the variable.
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_args(Args::try_parse().map_err(clap_error)?)
    }

    /// The probe reads only the listen address: it must work whatever else the server's
    /// configuration says, and it validates nothing the server would not.
    pub fn from_args(mut a: Args) -> Result<Self, ConfigError> {
        match a.command.take() {
            Some(Command::Healthcheck { timeout }) => Ok(Self::HealthCheck(Probe::for_listen_addr(a.listen_addr, timeout.into()))),
            None => Config::from_args(a).map(|c| Self::Serve(Box::new(c))),
        }
    }
}

/// The longest a revocation may stand (`GATEWAY_REVOCATION_TTL`, and a call's `duration`).
pub const MAX_REVOCATION: Duration = Duration::from_secs(30 * 24 * 3600);

impl Config {
    pub fn from_args(a: Args) -> Result<Self, ConfigError> {
        let jwt = jwt::jwt_config(&a)?;
        let mercure = mercure::mercure_config(&a)?;
        let heartbeat: Duration = a.heartbeat.into();
        if heartbeat < Duration::from_secs(1) || heartbeat > Duration::from_secs(120) {
            return Err(invalid("GATEWAY_HEARTBEAT", "must be between 1s and 120s (proxies commonly cut streams idle for 60s)"));
        }
        let revocation_ttl: Duration = a.revocation_ttl.into();
        if revocation_ttl.is_zero() || revocation_ttl > MAX_REVOCATION {
            return Err(invalid("GATEWAY_REVOCATION_TTL", "must be between 1s and 30 days"));
        }
        let grace: Duration = a.shutdown_grace.into();
        if grace > Duration::from_secs(300) {
            return Err(invalid("GATEWAY_SHUTDOWN_GRACE", "must be at most 300s"));
        }
        if a.client_queue == 0 || a.client_queue > 1 << 20 {
            return Err(invalid("GATEWAY_CLIENT_QUEUE", "must be between 1 and 1048576"));
        }
        if a.max_topics == 0 || a.max_topics > 1024 {
            return Err(invalid("GATEWAY_MAX_TOPICS", "must be between 1 and 1024"));
        }
        if a.max_batch == 0 {
            return Err(invalid("GATEWAY_MAX_BATCH", "must be at least 1"));
        }
        if a.max_body_bytes < 1024 {
            return Err(invalid("GATEWAY_MAX_BODY_BYTES", "must be at least 1024"));
        }
        let history_max_age: Duration = a.history_max_age.into();
        if history_max_age < Duration::from_secs(1) {
            return Err(invalid("GATEWAY_HISTORY_MAX_AGE", "must be at least 1s (a client could not resume at all)"));
        }
        let write_timeout: Duration = a.write_timeout.into();
        if write_timeout < Duration::from_millis(100) {
            return Err(invalid("GATEWAY_WRITE_TIMEOUT", "must be at least 100ms"));
        }
        let header_timeout: Duration = a.header_timeout.into();
        if header_timeout < Duration::from_millis(100) {
            return Err(invalid("GATEWAY_HEADER_TIMEOUT", "must be at least 100ms"));
        }
        let keepalive_timeout: Duration = a.keepalive_timeout.into();
        if keepalive_timeout < Duration::from_millis(100) {
            return Err(invalid("GATEWAY_KEEPALIVE_TIMEOUT", "must be at least 100ms"));
        }
        let clock_topic = shared::Topic::parse(&a.clock_topic).map_err(|e| invalid("GATEWAY_CLOCK_TOPIC", e.to_string()))?;
        let clock_interval: Duration = a.clock_interval.into();
        let cors_origins: Vec<String> = a.cors_origins.into_iter().map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect();
        for origin in &cors_origins {
            if origin != "*" && http::HeaderValue::from_str(origin).is_err() {
                return Err(invalid("GATEWAY_CORS_ORIGINS", format!("{origin:?} is not a valid origin")));
            }
        }
        if a.auth_cookie.is_empty() || !a.auth_cookie.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(invalid("GATEWAY_AUTH_COOKIE", "must be a non-empty cookie name of letters, digits, _ and -"));
        }
        let ticket_ttl: Duration = a.ticket_ttl.into();
        if ticket_ttl < Duration::from_secs(1) || ticket_ttl > Duration::from_secs(300) {
            return Err(invalid("GATEWAY_TICKET_TTL", "must be between 1s and 5m (a ticket is for opening a stream right away)"));
        }
        let redis_reconcile: Duration = a.redis_reconcile.into();
        if redis_reconcile < Duration::from_millis(100) {
            return Err(invalid("GATEWAY_REDIS_RECONCILE", "must be at least 100ms"));
        }
        let redis_url = a.redis_url.map(|url| RedisUrl::parse(&url).map_err(|e| invalid("GATEWAY_REDIS_URL", e))).transpose()?;
        let redis_ca_file = a.redis_ca_file;
        if let Some(path) = &redis_ca_file {
            if !redis_url.as_ref().is_some_and(RedisUrl::uses_tls) {
                return Err(invalid("GATEWAY_REDIS_CA_FILE", "is only used with a rediss:// GATEWAY_REDIS_URL"));
            }
            read_ca(path).map_err(|e| invalid("GATEWAY_REDIS_CA_FILE", e.to_string()))?;
        }
        if a.redis_prefix.is_empty() || !a.redis_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b)) {
            return Err(invalid("GATEWAY_REDIS_PREFIX", "must be non-empty ASCII letters, digits and _ - . :"));
        }
        // Empty is unset, as the OpenTelemetry specification asks (charts often render "").
        let endpoint = a.otel_exporter_otlp_endpoint.filter(|e| !e.trim().is_empty());
        let otel = endpoint.map(|endpoint| otel_config(endpoint, a.otel_service_name)).transpose()?;
        if a.demo && jwt.as_ref().is_some_and(|j| !matches!(j.key, Some(KeyMaterial::Secret(_)))) {
            return Err(invalid(
                "GATEWAY_DEMO",
                "needs GATEWAY_JWT_SECRET (or no key at all): demo tokens cannot be signed with a public key",
            ));
        }
        Ok(Self {
            listen_addr: a.listen_addr,
            jwt,
            demo: a.demo,
            auth_cookie: a.auth_cookie,
            ticket_ttl,
            cors_origins,
            retry: a.retry.into(),
            retry_jitter: a.retry_jitter.into(),
            heartbeat,
            refresh_window: a.refresh_window.into(),
            revocation_ttl,
            client_queue: a.client_queue,
            write_timeout,
            header_timeout,
            keepalive_timeout,
            max_topics: a.max_topics,
            max_body_bytes: a.max_body_bytes,
            max_batch: a.max_batch,
            max_connections: a.max_connections,
            max_connections_per_subject: a.max_connections_per_subject,
            metrics_addr: a.metrics_addr,
            history_max_len: a.history_max_len,
            history_max_age,
            shutdown_grace: grace,
            clock_interval: (!clock_interval.is_zero()).then_some(clock_interval),
            clock_topic,
            public_url: a.public_url,
            json_logs: a.log_format == "json",
            redis_url,
            redis_prefix: a.redis_prefix,
            redis_reconcile,
            redis_ca_file,
            otel,
            mercure,
        })
    }

    /// Defaults with a fixed test secret, listening on 127.0.0.1:0, clock off.
    pub fn for_tests(secret: &str) -> Self {
        let mut args = Args::defaults();
        args.listen_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        args.jwt_secret = Some(secret.to_owned());
        args.clock_interval = Duration::ZERO.into();
        Self::from_args(args).expect("test config is valid")
    }
}

fn otel_config(endpoint: String, service_name: String) -> Result<OtelConfig, ConfigError> {
    let uri: http::Uri = endpoint.parse().map_err(|e| invalid("OTEL_EXPORTER_OTLP_ENDPOINT", format!("not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => {}
        Some("https") => {
            return Err(invalid(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https is not supported (no TLS is built in): use http://, e.g. to a collector next to the gateway",
            ));
        }
        _ => return Err(invalid("OTEL_EXPORTER_OTLP_ENDPOINT", "expected http://host:port, e.g. http://otel-collector:4317")),
    }
    if service_name.trim().is_empty() {
        return Err(invalid("OTEL_SERVICE_NAME", "must not be empty"));
    }
    Ok(OtelConfig { endpoint, service_name })
}

#[cfg(test)]
mod tests;
