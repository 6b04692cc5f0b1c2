//! The flood: 10,000 streams opened at once and dropped at once.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use support::app::*;
use support::wait::Lazily;

use super::target::*;

/// Opens `FLOOD` streams at once (100 topics, from four loopback sources), waits until all are
/// open, then drops every socket. Returns how long opening took, and the time from the drop
/// to the node's stream count reaching the baseline.
///
/// Each client acts as an `EventSource` would: a connection refused, reset or closed before the
/// stream's first frame is tried again. A burst of 10,000 handshakes overflows the kernel's
/// accept queue (`net.core.somaxconn`) whatever the node does, and some of those handshakes
/// are lost.
pub(super) async fn flood(t: &Target, baseline: Footprint) -> (Duration, Duration) {
    let addr = t.node.addr;
    let token = token_for(&["*"], &[]);
    let start = Instant::now();
    let retries = std::sync::atomic::AtomicUsize::new(0);
    let sockets = futures::future::join_all((0..FLOOD).map(|i| {
        let (token, retries) = (&token, &retries);
        async move {
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 4) as u8));
            let head = format!("GET /events?topic=flood.{} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n", i % 100);
            loop {
                assert!(start.elapsed() < Duration::from_secs(120), "flood client {i} could not open its stream");
                if let Ok(s) = open_stream(source, addr, &head).await {
                    return s;
                }
                retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }))
    .await;
    let retries = retries.into_inner();
    let now = eventually(Lazily(|| format!("{FLOOD} streams open\n{}", t.log())), Duration::from_secs(120), async || {
        let now = t.footprint().await;
        if now.streams == baseline.streams + FLOOD as u64 { Ok(now) } else { Err(format!("{} open", now.streams)) }
    })
    .await;
    assert_eq!(now.upstream, baseline.upstream + 100, "one upstream subscription per topic");
    let opened = start.elapsed();
    if retries > 0 {
        println!("flood: {retries} handshakes were lost and tried again");
    }
    let dropped_at = Instant::now();
    drop(sockets);
    eventually("the dropped streams to close", Duration::from_secs(60), async || t.footprint().await.streams == baseline.streams).await;
    (opened, dropped_at.elapsed())
}
