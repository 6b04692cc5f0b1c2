//! Graceful shutdown with open streams: an open SSE stream would hold axum's graceful shutdown
//! for ever unless the stream ends itself, so this is tested end to end.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use gateway::{App, Config};
use shared::sse::Item;
use tower::ServiceExt;

use support::app::*;

#[tokio::test]
async fn open_streams_get_a_last_retry_and_end_within_the_grace() {
    let app = spawn_with(|c| c.shutdown_grace = Duration::from_secs(5)).await;
    let mut streams = Vec::new();
    for topic in ["a", "b", "c"] {
        let mut s = app.subscribe(&[topic, "common"], None).await;
        assert!(matches!(s.next_item().await, Some(Item::Retry(_))));
        streams.push(s);
    }
    app.publish("common", "before").await;
    for s in &mut streams {
        assert_eq!(s.next_event().await.data, "before");
    }
    let started = Instant::now();
    let counters = app.state.counters.clone();
    app.shutdown().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}, the whole grace: streams held it");
    for s in &mut streams {
        let rest = s.until_end().await;
        assert!(
            matches!(rest.as_slice(), [Item::Retry(ms)] if (3000..=5000).contains(ms)),
            "a last jittered retry, then the end: {rest:?}"
        );
    }
    assert_eq!(gateway::counters::Counters::get(&counters.shutdown_disconnects), 3);
}

#[tokio::test]
async fn readiness_goes_false_when_the_drain_begins() {
    let app = App::build(Config::for_tests(SECRET)).await.expect("app");
    let router = app.router();
    let ready = router.clone().oneshot(Request::get("/readyz").body(Body::empty()).expect("request")).await.expect("response");
    assert_eq!(ready.status(), 200);
    app.state().shutdown.begin();
    let draining = router.clone().oneshot(Request::get("/readyz").body(Body::empty()).expect("request")).await.expect("response");
    assert_eq!(draining.status(), 503);
    let alive = router.clone().oneshot(Request::get("/healthz").body(Body::empty()).expect("request")).await.expect("response");
    assert_eq!(alive.status(), 200, "the process is still alive while it drains");
    let publish = router
        .oneshot(
            Request::post("/publish")
                .header("authorization", format!("Bearer {}", token(&[], &["*"])))
                .body(Body::from(r#"{"topic":"t","data":"x"}"#))
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(publish.status(), 503, "no new publishes while draining");
    assert!(publish.headers().contains_key("retry-after"));
}
