//! Counters the gateway keeps about itself. Plain atomics so that the hot path pays one relaxed
//! add; they are what tests assert on and what a metrics endpoint exports.

use std::sync::atomic::AtomicU64;

#[derive(Debug, Default)]
pub struct Stats {
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    pub slow_disconnects: AtomicU64,
    pub write_timeouts: AtomicU64,
    pub token_expired_disconnects: AtomicU64,
    pub shutdown_disconnects: AtomicU64,
    pub events_published: AtomicU64,
    pub frames_sent: AtomicU64,
    pub resumptions: AtomicU64,
    pub lost_signals: AtomicU64,
}

impl Stats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(std::sync::atomic::Ordering::Relaxed)
    }
}
