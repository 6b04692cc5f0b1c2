//! Integration tests: the real gateway on 127.0.0.1:0, driven by a real HTTP client, streams read
//! with the `shared` parser exactly as a browser would read them.

// Real processes, sockets and browsers, none under tokio's paused clock: wall-clock time is what
// these tests mean wherever they read `std::time::Instant` (clippy.toml bans it in the gateway).
#![allow(clippy::disallowed_methods)]

mod auth;
mod browser;
mod browser_auth;
mod clients;
mod conformance;
mod docs;
mod errors;
mod expiry;
mod healthcheck;
mod hostile;
mod jwks;
mod lean;
mod limits;
mod mercure;
mod mercure_browser;
mod mercure_redis;
mod mercure_v1;
mod metrics;
mod personal;
mod redis;
mod redis_malformed;
mod redis_outage;
mod redis_shapes;
mod refresh;
mod resume;
mod revocation;
mod shutdown;
mod shutdown_redis;
mod slow;
mod streaming;
mod surface;
mod tickets;
mod topology;
