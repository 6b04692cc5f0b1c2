//! The command line as clap reads it: every setting a flag and an environment variable, with its
//! documented default. `Config::from_args` turns these raw values into a validated `Config`.

use std::net::SocketAddr;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    /// GATEWAY_JWT_PUBLIC_KEY (see docs/api.md for which key verifies which token).
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

    /// Random extra delay (0..this) added per stream so that reconnect storms spread out.
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

    /// Events a stream may have queued before it counts as too slow and is disconnected.
    #[arg(long, env = "GATEWAY_CLIENT_QUEUE", default_value_t = 1024)]
    pub client_queue: usize,

    /// A stream whose socket accepts no bytes for this long is closed (a client that stopped reading).
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

    /// Most topics one stream may follow.
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
