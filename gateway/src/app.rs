//! The application: built from a `Config` (binding its port, so tests can use port 0 and ask
//! which port they got), then run until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;

use crate::auth::Authenticator;
use crate::bus::Bus;
use crate::bus::BusError;
use crate::bus::fanout::Fanout;
use crate::bus::memory::MemoryBus;
use crate::bus::redis::{RedisBus, RedisSettings};
use crate::config::KeyMaterial;
use crate::config::{Config, JwtConfig};
use crate::control::{self, Control, Incoming, Link, LocalLink};
use crate::counters::Counters;
use crate::demo::{self, DemoTokens, SecretSource};
use crate::held::Node;
use crate::hyper_conn::HeadTimeouts;
use crate::limits::Limits;
use crate::listener::GatewayListener;
use crate::metrics::Metrics;
use crate::server;
use crate::shutdown::Shutdown;
use crate::state::AppState;
use crate::tickets::Tickets;
use crate::{clock, routes};

/// Connections the kernel may hold for `accept` (capped by `net.core.somaxconn`). A reconnect
/// storm after a node dies sends thousands of clients at once; the 1,024 of `TcpListener::bind`
/// overflows then, and each dropped handshake costs its client a retransmission (1 s, 3 s, …).
const LISTEN_BACKLOG: u32 = 8192;

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), BuildError> {
    let listen = || {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        // As `TcpListener::bind` does: a restarted node can bind while old sockets linger.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    let tcp = listen().map_err(|source| BuildError::Bind { addr, source })?;
    let local = tcp.local_addr().map_err(|source| BuildError::Bind { addr, source })?;
    Ok((tcp, local))
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the JWT key cannot be used")]
    Key(#[source] jsonwebtoken::errors::Error),
    #[error("cannot set up token verification")]
    Auth(#[source] crate::auth::SetupError),
    #[error("cannot use Redis")]
    Redis(#[source] BusError),
}

/// Which bus this node runs; the app owns their lifecycles (sweeping, closing).
#[derive(Debug)]
enum Backend {
    Memory(Arc<MemoryBus>),
    Redis(Arc<RedisBus>),
}

#[derive(Debug)]
pub struct App {
    listener: GatewayListener,
    addr: SocketAddr,
    /// The admin listener (`GATEWAY_METRICS_ADDR`), if configured.
    admin: Option<(TcpListener, SocketAddr)>,
    state: AppState,
    backend: Backend,
    demo: Option<DemoTokens>,
    /// What the control link reads, for the control task `run` starts.
    control_rx: Option<mpsc::Receiver<Incoming>>,
}

impl App {
    pub async fn build(config: Config) -> Result<Self, BuildError> {
        let (jwt, demo_source) = match &config.jwt {
            Some(jwt) => (jwt.clone(), config.demo.then_some(SecretSource::Configured)),
            None => {
                let key = demo::random_secret();
                let jwt = JwtConfig {
                    algorithms: vec![key.default_algorithm()],
                    key: Some(key),
                    jwks: None,
                    issuer: None,
                    audience: None,
                    leeway: Duration::from_secs(5),
                };
                (jwt, Some(SecretSource::Random))
            }
        };
        let counters = Arc::new(Counters::default());
        let auth = Authenticator::new(&jwt, &config.auth_cookie, Arc::clone(&counters)).map_err(BuildError::Auth)?;
        // `Config` refuses GATEWAY_DEMO without a secret, so demo mode always has one here.
        let demo = match (demo_source, &jwt.key) {
            (Some(source), Some(KeyMaterial::Secret(secret))) => Some(demo::tokens(secret, &jwt, source).map_err(BuildError::Key)?),
            _ => None,
        };
        let (tcp, addr) = bind(config.listen_addr).await?;
        let admin = match config.metrics_addr {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        // Fetched before the node listens, so that a node which can reach its identity provider
        // is ready at once; one that cannot starts unready (bounded by the fetch timeout).
        if let Some(jwks) = auth.jwks() {
            jwks.load().await;
        }
        let fanout = Arc::new(Fanout::new(config.client_queue, Arc::clone(&counters)));
        let shutdown = Shutdown::default();
        let (backend, bus): (Backend, Arc<dyn Bus>) = match &config.redis_url {
            None => {
                let memory = Arc::new(MemoryBus::new(Arc::clone(&fanout), config.history_max_len, config.history_max_age));
                (Backend::Memory(memory.clone()), memory)
            }
            Some(url) => {
                let settings = RedisSettings {
                    url: url.clone(),
                    prefix: config.redis_prefix.clone(),
                    max_len: config.history_max_len,
                    max_age: config.history_max_age,
                    reconcile_every: config.redis_reconcile,
                    ca_file: config.redis_ca_file.clone(),
                };
                let redis =
                    RedisBus::connect(settings, Arc::clone(&fanout), Arc::clone(&counters), &shutdown).await.map_err(BuildError::Redis)?;
                (Backend::Redis(redis.clone()), redis)
            }
        };
        let (control_tx, control_rx) = mpsc::channel(control::INCOMING_QUEUE);
        let node = control::node_name();
        let link: Arc<dyn Link> = match &backend {
            Backend::Memory(_) => Arc::new(LocalLink::new(control_tx)),
            Backend::Redis(redis) => Arc::new(redis.control_link(&node, control_tx, &shutdown).await.map_err(BuildError::Redis)?),
        };
        let control = Control::new(node, link, jwt.leeway, Arc::clone(&counters));
        // Before the node serves: it must refuse what is already revoked from its first request.
        control.reload().await.map_err(BuildError::Redis)?;
        let tickets = Arc::new(Tickets::new(bus.clone(), config.ticket_ttl, Arc::clone(&counters)).await.map_err(BuildError::Redis)?);
        let metrics = Arc::new(Metrics::new(Arc::clone(&counters), Arc::clone(&fanout)));
        let limits = Arc::new(Limits::new(config.max_connections, config.max_connections_per_subject));
        let public_url = config.public_url.as_deref().map_or("", |p| p.trim_end_matches('/')).into();
        let state = AppState {
            auth: Arc::new(auth),
            bus,
            fanout,
            counters,
            metrics,
            limits,
            control,
            tickets,
            shutdown,
            public_url,
            config: Arc::new(config),
        };
        let listener = GatewayListener::new(tcp, state.config.write_timeout);
        Ok(Self { listener, addr, admin, state, backend, demo, control_rx: Some(control_rx) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Where `/metrics` is served when `GATEWAY_METRICS_ADDR` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(_, a)| *a)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The tokens printed in demo mode (no key configured, or `GATEWAY_DEMO`).
    pub fn demo_tokens(&self) -> Option<&DemoTokens> {
        self.demo.as_ref()
    }

    /// The text `main` prints in demo mode.
    pub fn demo_banner(&self) -> Option<String> {
        let config = &self.state.config;
        let base = demo::base_url(self.addr, config.public_url.as_deref());
        self.demo.as_ref().map(|t| demo::banner(&base, config.clock_topic.as_str(), t))
    }

    pub fn router(&self) -> Router {
        routes::router(self.state.clone())
    }

    /// Serves until `signal` resolves (or `Shutdown::begin` is called), then drains within the
    /// configured grace: `Shutdown::run` owns the order.
    pub async fn run(mut self, signal: impl Future<Output = ()> + Send + 'static) {
        let state = self.state.clone();
        let shutdown = state.shutdown.clone();
        if let Some(control_rx) = self.control_rx.take() {
            self.spawn_background(control_rx);
        }
        tracing::info!(addr = %self.addr, "listening");
        let token = shutdown.token();
        if let Some((admin, addr)) = self.admin {
            tracing::info!(addr = %addr, "serving metrics and health on the admin address");
            let admin_server =
                axum::serve(admin, routes::admin_router(state.clone())).with_graceful_shutdown(token.clone().cancelled_owned());
            shutdown.tracker().spawn(async move {
                if let Err(e) = admin_server.await {
                    tracing::error!(error = %e, "the admin listener failed");
                }
            });
        }
        let timeouts = HeadTimeouts { first: state.config.header_timeout, keep_alive: state.config.keepalive_timeout };
        let node = Arc::new(Node::new(
            Arc::clone(&state.counters),
            Arc::clone(&state.fanout),
            state.config.heartbeat,
            state.config.write_timeout,
            token.clone(),
        ));
        for task in node.background() {
            shutdown.tracker().spawn(task);
        }
        let grace = state.config.shutdown_grace;
        let server = server::serve(self.listener, routes::router(state), timeouts, node, token);
        let backend = self.backend;
        let quit = async move {
            if let Backend::Redis(redis) = &backend {
                redis.quit().await;
            }
        };
        shutdown.run(signal, server, grace, quit).await;
    }

    fn spawn_background(&self, control_rx: mpsc::Receiver<Incoming>) {
        let config = &self.state.config;
        let shutdown = &self.state.shutdown;
        shutdown.tracker().spawn(Arc::clone(&self.state.control).run(control_rx, shutdown.token()));
        if let Some(jwks) = self.state.auth.jwks() {
            shutdown.tracker().spawn(Arc::clone(jwks).run(shutdown.token()));
        }
        if let Some(every) = config.clock_interval {
            shutdown.tracker().spawn(clock::run(self.state.bus.clone(), config.clock_topic.clone(), every, shutdown.token()));
        }
        if let Backend::Redis(_) = &self.backend {
            shutdown.tracker().spawn(Arc::clone(&self.state.tickets).run(shutdown.token()));
        }
        if let Backend::Memory(memory) = &self.backend {
            let every = MemoryBus::sweep_interval(config.history_max_age);
            shutdown.tracker().spawn(Arc::clone(memory).run_sweeps(every, shutdown.token()));
        }
    }
}
