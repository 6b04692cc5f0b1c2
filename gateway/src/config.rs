//! Configuration: every setting is a flag and an environment variable (clap with `env`), parsed
//! into real types and cross-validated once at start. A bad value stops the process with one line
//! that names the variable, before any task starts.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::auth::KeyMaterial;
use crate::healthcheck::Probe;

mod jwt;
mod mercure;

pub use jwt::{JwksConfig, JwtConfig};
pub use mercure::{HUB_PATH, MercureConfig};

/// The flags and variables as clap reads them. `Config::from_args` turns them into a `Config`.
#[derive(Debug, Clone, Parser)]
#[command(name = "gateway", version, about = "Redis-backed, horizontally scaled Server-Sent Events gateway")]
pub struct Args {
    /// What to do instead of serving (the default).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on.
    #[arg(long, env = "GATEWAY_LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen_addr: SocketAddr,

    /// HMAC secret for HS256/384/512 tokens (at least 32 bytes). Without it and without a public
    /// key the gateway runs in demo mode with a random secret and prints tokens.
    #[arg(long, env = "GATEWAY_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Print a demo page URL and tokens at start, signed with GATEWAY_JWT_SECRET, so that every
    /// node sharing that secret accepts them (a demo stack of several nodes behind a load
    /// balancer). The tokens grant every topic for 24 hours: never turn this on for real use.
    #[arg(long, env = "GATEWAY_DEMO", value_parser = clap::builder::BoolishValueParser::new())]
    pub demo: bool,

    /// Public key for RS*/PS*/ES*/EdDSA tokens: PEM text, or the path of a PEM file.
    #[arg(long, env = "GATEWAY_JWT_PUBLIC_KEY", hide_env_values = true)]
    pub jwt_public_key: Option<String>,

    /// Accepted token algorithms, comma-separated (e.g. "HS256" or "RS256,ES256"). They must fit
    /// the key. Default: HS256 with a secret; the key's own family with a public key.
    #[arg(long, env = "GATEWAY_JWT_ALGORITHMS", value_delimiter = ',')]
    pub jwt_algorithms: Vec<String>,

    /// JWKS URLs of identity providers, comma-separated (https://, or http:// for a provider
    /// on the same host or network). Keys are picked by the token's `kid`; HMAC (`oct`) and
    /// `none` keys are never taken from a JWKS. Works beside GATEWAY_JWT_SECRET or
    /// GATEWAY_JWT_PUBLIC_KEY (see the README for which key verifies which token).
    #[arg(long, env = "GATEWAY_JWT_JWKS_URL", value_delimiter = ',')]
    pub jwt_jwks_url: Vec<String>,

    /// Least time between two fetches of a JWKS: the floor of its cache lifetime, the retry
    /// delay after a failed fetch, and the rate limit of the fetches an unknown `kid` triggers.
    #[arg(long, env = "GATEWAY_JWT_JWKS_MIN_REFRESH", default_value = "30s")]
    pub jwt_jwks_min_refresh: humantime::Duration,

    /// Longest one JWKS fetch may take, connection, headers and body together.
    #[arg(long, env = "GATEWAY_JWT_JWKS_TIMEOUT", default_value = "5s")]
    pub jwt_jwks_timeout: humantime::Duration,

    /// Required `iss` claim value.
    #[arg(long, env = "GATEWAY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` claim value.
    #[arg(long, env = "GATEWAY_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Clock skew tolerated on `exp` and `nbf`.
    #[arg(long, env = "GATEWAY_JWT_LEEWAY", default_value = "5s")]
    pub jwt_leeway: humantime::Duration,

    /// Name of the cookie a token may come in.
    #[arg(long, env = "GATEWAY_AUTH_COOKIE", default_value = "sse_token")]
    pub auth_cookie: String,

    /// Lifetime of a one-time stream ticket (`POST /tickets`), 1s to 5m; a ticket never
    /// outlives its token either.
    #[arg(long, env = "GATEWAY_TICKET_TTL", default_value = "30s")]
    pub ticket_ttl: humantime::Duration,

    /// Origins allowed by CORS, comma-separated, or "*" for any (without credentials).
    /// Empty: no cross-origin access.
    #[arg(long, env = "GATEWAY_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Client reconnection delay sent in the `retry:` field.
    #[arg(long, env = "GATEWAY_RETRY", default_value = "3s")]
    pub retry: humantime::Duration,

    /// Random extra delay (0..this) added per connection so that reconnect storms spread out.
    #[arg(long, env = "GATEWAY_RETRY_JITTER", default_value = "2s")]
    pub retry_jitter: humantime::Duration,

    /// Interval of the heartbeat comment on idle streams (keeps proxies from cutting them).
    #[arg(long, env = "GATEWAY_HEARTBEAT", default_value = "15s")]
    pub heartbeat: humantime::Duration,

    /// How long before its token expires a stream sends `gateway.refresh` (where the client can
    /// present a fresh token to keep the stream); 0 turns in-band refresh off.
    #[arg(long, env = "GATEWAY_REFRESH_WINDOW", default_value = "60s")]
    pub refresh_window: humantime::Duration,

    /// How long a revocation (`POST /admin/disconnect`) refuses its subject, token or topic when
    /// the call gives no duration: set it to your tokens' longest lifetime.
    #[arg(long, env = "GATEWAY_REVOCATION_TTL", default_value = "24h")]
    pub revocation_ttl: humantime::Duration,

    /// Events a connection may have queued before it counts as too slow and is disconnected.
    #[arg(long, env = "GATEWAY_CLIENT_QUEUE", default_value_t = 1024)]
    pub client_queue: usize,

    /// A connection whose socket accepts no bytes for this long is closed (a client that stopped reading).
    #[arg(long, env = "GATEWAY_WRITE_TIMEOUT", default_value = "30s")]
    pub write_timeout: humantime::Duration,

    /// A new socket must send its first request head within this long, or it is closed:
    /// slowloris clients and silent sockets cannot pile up.
    #[arg(long, env = "GATEWAY_HEADER_TIMEOUT", default_value = "10s")]
    pub header_timeout: humantime::Duration,

    /// An HTTP/1 keep-alive connection idle this long between requests (or sending its next
    /// head that slowly) is closed. Longer than the idle timeout of the balancers in front
    /// (nginx upstream keepalive and cloud load balancers: 60s), so that the balancer, not the
    /// node, closes an idle connection and never sends a request on one the node is closing.
    #[arg(long, env = "GATEWAY_KEEPALIVE_TIMEOUT", default_value = "75s")]
    pub keepalive_timeout: humantime::Duration,

    /// Most topics one connection may follow.
    #[arg(long, env = "GATEWAY_MAX_TOPICS", default_value_t = 32)]
    pub max_topics: usize,

    /// Largest publish request body, in bytes.
    #[arg(long, env = "GATEWAY_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Most events in one batch publish.
    #[arg(long, env = "GATEWAY_MAX_BATCH", default_value_t = 1000)]
    pub max_batch: usize,

    /// Most event streams open at once on this node (0: no limit). Beyond it a new stream gets
    /// 503 with Retry-After, so that a load balancer tries another node.
    #[arg(long, env = "GATEWAY_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,

    /// Most event streams open at once on this node for one token subject (`sub`; 0: no limit).
    /// Beyond it a new stream gets 429 with Retry-After.
    #[arg(long, env = "GATEWAY_MAX_CONNECTIONS_PER_SUBJECT", default_value_t = 0)]
    pub max_connections_per_subject: usize,

    /// Serve `/metrics` (and `/healthz`, `/readyz`) on this address instead of the main one, e.g.
    /// 0.0.0.0:9090 for a port that is not exposed to clients. Unset: on the main address.
    #[arg(long, env = "GATEWAY_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Events kept per topic, on either bus (0: no length bound; on Redis `MAXLEN ~`, approximate).
    #[arg(long, env = "GATEWAY_HISTORY_MAX_LEN", default_value_t = 10_000)]
    pub history_max_len: usize,

    /// Age after which events leave history, on either bus; a topic with no event younger than
    /// this leaves memory altogether (on Redis its stream expires this long after its last event).
    #[arg(long, env = "GATEWAY_HISTORY_MAX_AGE", default_value = "1h")]
    pub history_max_age: humantime::Duration,

    /// Time streams and in-flight requests get to finish at shutdown.
    #[arg(long, env = "GATEWAY_SHUTDOWN_GRACE", default_value = "10s")]
    pub shutdown_grace: humantime::Duration,

    /// Interval of the built-in clock topic; "0s" turns it off.
    #[arg(long, env = "GATEWAY_CLOCK_INTERVAL", default_value = "5s")]
    pub clock_interval: humantime::Duration,

    /// Topic of the built-in clock.
    #[arg(long, env = "GATEWAY_CLOCK_TOPIC", default_value = "clock")]
    pub clock_topic: String,

    /// Base URL printed for the demo page (default: derived from the listen address).
    #[arg(long, env = "GATEWAY_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Serve a Mercure hub at /.well-known/mercure speaking this protocol version: "0.x"
    /// (draft-07: Symfony, API Platform), "1.0" (draft-08: access tokens, URL patterns) or "off".
    #[arg(long, env = "GATEWAY_MERCURE", default_value = "off")]
    pub mercure: String,

    /// Let Mercure subscribers without a token receive public updates.
    #[arg(long, env = "GATEWAY_MERCURE_ANONYMOUS", value_parser = clap::builder::BoolishValueParser::new())]
    pub mercure_anonymous: bool,

    /// Mercure 1.0: publish a private subscription event (type "mercure") when a subscription
    /// starts and when it ends, for clients that track who is subscribed to what.
    #[arg(long, env = "GATEWAY_MERCURE_SUBSCRIPTIONS", value_parser = clap::builder::BoolishValueParser::new())]
    pub mercure_subscriptions: bool,

    /// Mercure 1.0: the hub's resource identifier, the audience its access tokens must name.
    /// Default: GATEWAY_PUBLIC_URL + /.well-known/mercure.
    #[arg(long, env = "GATEWAY_MERCURE_RESOURCE")]
    pub mercure_resource: Option<String>,

    /// Mercure 1.0: the issuers (iss) whose access tokens the hub accepts, comma-separated.
    #[arg(long, env = "GATEWAY_MERCURE_ISSUERS")]
    pub mercure_issuers: Option<String>,

    // The doc comment is --help's text, where brackets mean "optional", not a doc link.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// Redis URL: redis://[user:pass@]host:port[/db], redis-cluster://host:port[?node=host:port…]
    /// or redis-sentinel://host:port[/db]?sentinelServiceName=NAME. Unset: the embedded,
    /// single-node bus.
    #[arg(long, env = "GATEWAY_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key and channel the gateway uses.
    #[arg(long, env = "GATEWAY_REDIS_PREFIX", default_value = shared::keys::DEFAULT_PREFIX)]
    pub redis_prefix: String,

    /// How often each node reads every followed stream whatever the keyspace notifications said:
    /// a safety net bounding how late a missed notification can make an event.
    #[arg(long, env = "GATEWAY_REDIS_RECONCILE", default_value = "5s")]
    pub redis_reconcile: humantime::Duration,

    /// PEM file of the CA certificate(s) a rediss:// Redis's certificate must chain to. Unset:
    /// the system's trusted roots (SSL_CERT_FILE and SSL_CERT_DIR are honoured).
    #[arg(long, env = "GATEWAY_REDIS_CA_FILE")]
    pub redis_ca_file: Option<std::path::PathBuf>,

    /// Log format: "text" or "json".
    #[arg(long, env = "GATEWAY_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// OTLP collector to export traces to, over gRPC, e.g. http://otel-collector:4317. Unset: no
    /// traces. The OpenTelemetry SDK reads the other standard OTEL_* variables itself (headers,
    /// timeout, compression, sampler, batching, resource attributes).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_exporter_otlp_endpoint: Option<String>,

    /// OTLP transport: only "grpc" is built in.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_PROTOCOL", default_value = "grpc", value_parser = ["grpc"])]
    pub otel_exporter_otlp_protocol: String,

    /// `service.name` of the exported traces.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "sse-gateway")]
    pub otel_service_name: String,
}

/// The subcommands: things the binary does besides serving.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Ask the gateway listening on GATEWAY_LISTEN_ADDR (over loopback when that is `0.0.0.0`
    /// or `[::]`) for GET /healthz and exit 0 if it answers 200 in time, 1 otherwise: the
    /// container image's HEALTHCHECK, since the image has no curl.
    Healthcheck {
        /// How long the whole probe may take.
        #[arg(long, default_value = "2s")]
        timeout: humantime::Duration,
    },
}

impl Args {
    /// The documented defaults, read without the process environment (for tests).
    pub fn defaults() -> Self {
        let cmd = Self::command().mut_args(|a| a.env(None::<&str>));
        let matches = cmd.get_matches_from(["gateway"]);
        Self::from_arg_matches(&matches).expect("the defaults parse")
    }
}

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

/// A Redis URL the gateway can use. Its `Debug` hides credentials, so a logged or printed config
/// never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
        match scheme {
            "redis" | "redis-sentinel" | "redis-cluster" | "rediss" | "rediss-sentinel" | "rediss-cluster" => {}
            _ => {
                return Err(
                    "expected redis[s]://host:port[/db], redis[s]-cluster://host:port[?node=host:port…] or redis[s]-sentinel://".into()
                );
            }
        }
        fred::types::config::Config::from_url(url).map_err(|e| e.details().to_string())?;
        Ok(Self(url.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the URL asks for TLS (`rediss://`, `rediss-cluster://`, `rediss-sentinel://`).
    pub fn uses_tls(&self) -> bool {
        self.0.starts_with("rediss")
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.split_once("://").and_then(|(scheme, rest)| rest.split_once('@').map(|(_, host)| (scheme, host))) {
            Some((scheme, host)) => write!(f, "{scheme}://***@{host}"),
            None => f.write_str(&self.0),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid {var}: {reason}")]
    Invalid { var: Cow<'static, str>, reason: String },
    /// `--help` or `--version`: print and exit 0.
    #[error("{0}")]
    Display(String),
}

fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { var: Cow::Borrowed(var), reason: reason.into() }
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
            crate::bus::redis::tls::read_ca(path).map_err(|e| invalid("GATEWAY_REDIS_CA_FILE", e.to_string()))?;
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

/// Turns a clap error into one line naming the variable (and flag) that was wrong.
fn clap_error(err: clap::Error) -> ConfigError {
    if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand) {
        return ConfigError::Display(err.to_string());
    }
    let arg = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let value = match err.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let long = arg.split_whitespace().next().unwrap_or_default().trim_start_matches("--").to_owned();
    let cmd = Args::command();
    let var = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(long.as_str()))
        .and_then(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned());
    let reason = err.to_string().lines().next().unwrap_or_default().trim_start_matches("error: ").to_owned();
    match var {
        Some(var) => ConfigError::Invalid { var: Cow::Owned(var), reason: format!("{value:?} (--{long}): {reason}") },
        None => ConfigError::Invalid { var: Cow::Borrowed("arguments"), reason },
    }
}

#[cfg(test)]
mod tests;
