//! What the gateway's integration tests share, apart from the suites: the app on a free port and
//! the calls a client makes ([`app`]), event streams read through the `shared` parser ([`sse`],
//! and [`wire`] for raw HTTP/1.x), real Redis shapes ([`redis`]), real processes ([`processes`], [`topology`],
//! [`e2e`], [`browser`]), stand-ins for identity providers ([`jwks`]) and the network ([`cutter`]),
//! and one way to wait for a condition ([`wait::eventually`]).
//!
//! A library rather than a module each test binary includes, so both binaries (`api` and
//! `traces`, which owns the process-wide tracing subscriber) share it as it is, and an item one
//! of them does not use is no dead code.

// Real processes, sockets and browsers, none under tokio's paused clock: wall-clock time is what
// this support code means wherever it reads `std::time::Instant` (clippy.toml bans it in the gateway).
#![allow(clippy::disallowed_methods)]

pub mod app;
pub mod browser;
pub mod control;
pub mod cutter;
pub mod e2e;
pub mod jwks;
pub mod mercure;
pub mod processes;
pub mod redis;
pub mod sse;
pub mod topology;
pub mod wait;
pub mod wire;
