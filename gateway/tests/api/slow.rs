//! Backpressure: a client that stops reading is disconnected (counted), never slowing the others
//! or growing the server's memory, and can resume from history afterwards. Two ways to be cut:
//! its queue overflows (the fan-out marks it slow and the socket's kill switch fires), or its
//! socket accepts nothing for the write timeout.

use std::time::Duration;

use gateway::counters::Counters;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use support::app::*;

/// A raw client with a small receive buffer that sends the request and never reads a byte.
async fn stalled_client(app: &TestApp, topic: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stream = socket.connect(app.addr).await.expect("connect");
    let request =
        format!("GET /events?topic={topic} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n", app.addr, token(&["*"], &[]));
    stream.write_all(request.as_bytes()).await.expect("request");
    stream
}

async fn wait_for_open_connections(app: &TestApp, n: u64) {
    eventually(format!("{n} open connections"), WAIT, async || Counters::get(&app.counters().streams_open) == n).await;
}

/// Publishes 64 KiB events in batches until the stalled client is gone, checking that a fast
/// client receives every one in order meanwhile. Returns how many were published and the first id.
async fn flood_until_stalled_client_is_cut(app: &TestApp, fast: &mut SseClient) -> (usize, String) {
    let payload = "x".repeat(64 * 1024);
    let mut published = 0usize;
    let mut first_id = None;
    while Counters::get(&app.counters().streams_open) > 1 {
        assert!(published < 4000, "the stalled client was not cut after {published} events of 64 KiB");
        let batch: Vec<_> = (0..8).map(|i| json!({ "topic": "firehose", "data": format!("{}:{payload}", published + i) })).collect();
        let r = app.publish_raw(json!(batch)).await;
        assert_eq!(r.status(), 200);
        let ids: serde_json::Value = r.json().await.expect("json");
        first_id.get_or_insert_with(|| ids["ids"][0].as_str().expect("id").to_owned());
        for e in fast.events(8).await {
            let seq: usize = e.data.split(':').next().expect("seq").parse().expect("number");
            assert_eq!(seq, published, "the fast client gets every event in order");
            published += 1;
        }
    }
    (published, first_id.expect("published at least once"))
}

async fn resume_gets_everything_after(app: &TestApp, first_id: &str, published: usize) {
    app.publish("firehose", "after").await;
    let mut resumed = app.subscribe(&["firehose"], Some(first_id)).await;
    let events = resumed.events(published).await;
    assert!(events[0].data.starts_with("1:"), "replay starts right after the given id");
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("after"), "nothing still in history was lost");
}

/// A gateway with the given queue and write timeout, a stalled client and a fast one on "firehose".
async fn stalled_and_fast(queue: usize, write_timeout: Duration) -> (TestApp, TcpStream, SseClient) {
    let app = spawn_with(|c| {
        c.client_queue = queue;
        c.write_timeout = write_timeout;
        c.max_body_bytes = 4 << 20;
    })
    .await;
    let stalled = stalled_client(&app, "firehose").await;
    wait_for_open_connections(&app, 1).await;
    let fast = app.subscribe(&["firehose"], None).await;
    (app, stalled, fast)
}

#[tokio::test]
async fn a_client_whose_queue_overflows_is_cut_at_once_and_others_get_everything() {
    // A write timeout far beyond the test: only the overflow and the kill switch can cut it.
    let (app, _stalled, mut fast) = stalled_and_fast(256, Duration::from_secs(600)).await;
    let (published, first_id) = flood_until_stalled_client_is_cut(&app, &mut fast).await;
    assert_eq!(Counters::get(&app.counters().slow_disconnects), 1, "counted as slow");
    assert_eq!(Counters::get(&app.counters().write_timeouts), 0);
    app.publish("firehose", "still live").await;
    assert_eq!(fast.next_event().await.data, "still live");
    resume_gets_everything_after(&app, &first_id, published + 1).await;
}

#[tokio::test]
async fn a_client_whose_socket_stays_full_is_cut_by_the_write_timeout() {
    // A queue too large to overflow here: only the write timeout can cut it.
    let (app, _stalled, mut fast) = stalled_and_fast(1 << 20, Duration::from_millis(300)).await;
    let (published, first_id) = flood_until_stalled_client_is_cut(&app, &mut fast).await;
    assert_eq!(Counters::get(&app.counters().write_timeouts), 1, "counted as a write timeout");
    assert_eq!(Counters::get(&app.counters().slow_disconnects), 0);
    resume_gets_everything_after(&app, &first_id, published).await;
}
