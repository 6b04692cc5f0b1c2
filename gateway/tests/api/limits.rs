//! Connection limits per node and per token subject.

use std::time::Duration;

use support::app::*;

/// Opens a stream on "t" with a token for `subject`.
async fn open(app: &TestApp, subject: &str) -> reqwest::Response {
    let mut c = claims(&["*"], &[]);
    c.sub = Some(subject.to_owned());
    let token = gateway::mint(SECRET.as_bytes(), &c).expect("mint");
    app.client.get(app.events_url(&["t"])).bearer_auth(token).send().await.expect("request")
}

#[tokio::test]
async fn a_subject_over_its_limit_gets_429_and_others_are_unaffected() {
    let app = spawn_with(|c| {
        c.max_connections_per_subject = 2;
        c.heartbeat = Duration::from_millis(100);
    })
    .await;
    let a1 = open(&app, "alice").await;
    let a2 = open(&app, "alice").await;
    assert_eq!((a1.status().as_u16(), a2.status().as_u16()), (200, 200));
    let a3 = open(&app, "alice").await;
    assert_eq!(a3.status(), 429);
    assert!(a3.headers().contains_key("retry-after"));
    let body: serde_json::Value = a3.json().await.expect("json");
    assert_eq!(body["error"], "too_many_connections");
    assert_eq!(open(&app, "bob").await.status(), 200, "another subject has its own budget");

    // Closing one of alice's streams gives her place back once the node notices (heartbeat).
    drop(a1);
    eventually("the closed stream's place to come back", WAIT, async || {
        let again = open(&app, "alice").await;
        if again.status() == 200 {
            return true;
        }
        assert_eq!(again.status(), 429);
        false
    })
    .await;
    let m = app.metrics().await;
    assert!(m.value(r#"sse_gateway_connections_closed_total{reason="limit"}"#) >= 1.0, "{}", m.0);
    drop(a2);
}

#[tokio::test]
async fn a_node_at_its_limit_answers_503_so_the_balancer_tries_another() {
    let app = spawn_with(|c| c.max_connections = 2).await;
    let s1 = open(&app, "a").await;
    let s2 = open(&app, "b").await;
    assert_eq!((s1.status().as_u16(), s2.status().as_u16()), (200, 200));
    let refused = open(&app, "c").await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "at_capacity");
    // Publishing and health are not streams: still served.
    app.publish("t", "still publishing").await;
    assert_eq!(app.client.get(app.url("/healthz")).send().await.expect("healthz").status(), 200);
}
