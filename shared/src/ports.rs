//! Loopback ports for servers that a tool or a test starts as processes (Redis, gateway nodes,
//! nginx) and must tell their port before they bind it. The load tester's chaos harness and the
//! gateway's process tests both start such servers, so the way to pick a port lives here.
//!
//! Why not a port the kernel picks (bind port 0, read it, close, hand it on): the kernel picks
//! from the ephemeral range, the range every outgoing connection also takes its local port from.
//! Between the close and the server's own bind, a client connection can take it, and the server
//! cannot start; a suite that opens 10,000 connections while clusters start did exactly that.
//! Below the ephemeral range only explicit binds take ports, so a port found free there stays
//! free unless another process picks the same one: each process walks the range from its own
//! random start, and never hands a port out twice.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out: above the well-known ports and the usual service ports.
const LOW: u16 = 10_000;
/// Linux's default ephemeral range, where its setting cannot be read.
const EPHEMERAL: (u16, u16) = (32_768, 60_999);

/// A loopback port that no socket holds now and that this process has not handed out before;
/// `None` if the whole range is taken.
pub fn free_loopback_port() -> Option<u16> {
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    let (low, high) = range();
    let span = u32::from(high - low);
    let next = NEXT.get_or_init(|| AtomicU32::new((RandomState::new().hash_one(std::process::id()) % u64::from(span)) as u32));
    (0..span).find_map(|_| {
        let port = low + (next.fetch_add(1, Ordering::Relaxed) % span) as u16;
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok().then_some(port)
    })
}

/// Ports outside the kernel's ephemeral range: below it, or above it where it starts too low.
fn range() -> (u16, u16) {
    let (start, end) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut bounds = s.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some((bounds.next()??, bounds.next()??))
        })
        .unwrap_or(EPHEMERAL);
    if start >= LOW + 1_000 { (LOW, start) } else { (end.saturating_add(1).max(LOW), u16::MAX) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_distinct_and_outside_the_ephemeral_range() {
        let (low, high) = range();
        assert!(low >= LOW && low < high);
        let ports: Vec<u16> = (0..50).map(|_| free_loopback_port().expect("a free port")).collect();
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len(), "never the same port twice: {ports:?}");
        for port in ports {
            assert!((low..high).contains(&port), "{port} outside {low}..{high}");
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("still free");
        }
    }
}
