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
//! the same `EventStream` with a Mercure rendering.

mod app;
mod auth;
mod body_limit;
mod bus;
mod cause;
mod clock;
mod control;
mod demo;
mod epoch;
mod error;
mod event_stream;
mod healthcheck;
mod held;
mod http_chunk;
mod hub;
mod hyper_conn;
mod limits;
mod listener;
mod mercure;
mod metrics;
mod routes;
mod server;
mod state;
mod stream;
mod tickets;

// The library's surface: what the binary (`main.rs`), the integration tests and their support
// crate use; everything else is the crate's own (`pub(crate)`, held to it by `unreachable_pub`).

// The configuration: tests build `Config` values directly, the binary loads it from flags and
// the environment.
pub mod config;
// The node's counters, which the tests assert on.
pub mod counters;
// The shutdown order and the signal the binary waits for.
pub mod shutdown;
// Logs and traces, set up by the binary and by the traces tests.
pub mod telemetry;

pub use app::{App, BuildError};
pub use auth::{Authenticator, mint};
pub use bus::fanout::Fanout;
pub use config::Config;
pub use demo::DemoTokens;
pub use epoch::now_secs;
pub use state::AppState;
