//! The SSE gateway as a library: `main` is a thin wrapper, and the integration tests build the
//! same `App` on a loopback port.
//!
//! Sockets: `listener.rs` (accept) → `server.rs` (the accept loop, graceful close) → every socket
//! starts on the lean path, `held/` (reads the first request head; holds streams without hyper's
//! buffers, written to by the fan-out directly) or goes to hyper, `hyper_conn.rs` (everything
//! else; head timeouts, write timeout, kill switch).
//!
//! Data flow, by file: `routes/publish.rs` (HTTP publish) → `bus/` (history and ids:
//! `memory.rs`) → `bus/fanout.rs` (one entry per topic per node) → `stream.rs` (replay, cursor; live and
//! heartbeats for streams served by hyper) → `held/` (a caught-up stream on the lean path, written
//! to by the fan-out directly), with frames encoded once by `shared::sse`. The Mercure hub (`hub/`, protocol rules
//! in `mercure/`) stores its updates as events of an internal topic and streams them through
//! the same connection with a Mercure rendering.

pub mod app;
pub mod auth;
pub mod body_limit;
pub mod bus;
mod cause;
pub mod clock;
pub mod config;
pub mod control;
pub mod counters;
pub mod demo;
mod epoch;
pub mod error;
pub mod event_stream;
pub mod healthcheck;
pub mod held;
pub mod http_chunk;
pub mod hub;
pub mod hyper_conn;
pub mod limits;
pub mod listener;
pub mod mercure;
pub mod metrics;
pub mod routes;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod stream;
pub mod telemetry;
pub mod tickets;

pub use app::App;
pub use config::Config;
