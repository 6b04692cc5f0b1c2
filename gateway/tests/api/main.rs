//! Integration tests: the real gateway on 127.0.0.1:0, driven by a real HTTP client, streams read
//! with the `shared` parser exactly as a browser would read them.

mod auth;
mod browser;
mod browser_auth;
mod clients;
mod conformance;
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
mod redis_outage;
mod redis_shapes;
mod refresh;
mod resume;
mod revocation;
mod shutdown;
mod slow;
mod streaming;
mod surface;
mod tickets;
mod topology;
